'use strict';

// Entry point: `node node-host/src/main.js`, started by the supervisor with
//   DSCODE_IPC_FD        the inherited socket's descriptor (default 3), or
//   DSCODE_IPC_PATH      a socket path to connect to instead (tests, debugging)
//   DSCODE_EXTENSION_ID  the extension id, echoed in the handshake (informational)
// Exit codes: 0 after shutdown or when the supervisor closes the socket, 1 on a broken
// connection or unusable environment, 78 on a protocol version mismatch.

const net = require('node:net');
const { Host } = require('./host');

function log(line) {
  process.stderr.write(`[dscode-node-host] ${line}\n`);
}

function openSocket(env) {
  if (env.DSCODE_IPC_PATH) return net.createConnection(env.DSCODE_IPC_PATH);
  const fd = env.DSCODE_IPC_FD ?? '3';
  if (!/^[0-9]+$/.test(fd)) {
    throw new Error(`DSCODE_IPC_FD must be a file descriptor number, got "${fd}"`);
  }
  return new net.Socket({ fd: Number(fd), readable: true, writable: true });
}

let socket;
try {
  socket = openSocket(process.env);
} catch (err) {
  log(`cannot open the connection to the supervisor: ${err.message}`);
  process.exit(1);
}

const host = new Host(socket, { extensionId: process.env.DSCODE_EXTENSION_ID ?? '', log });
process.on('uncaughtException', (err) => host.reportError('uncaughtException', err));
process.on('unhandledRejection', (reason) => host.reportError('unhandledRejection', reason));
host.start();
