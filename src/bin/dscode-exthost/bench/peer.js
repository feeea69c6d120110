'use strict';

// The Node↔Node baseline of `dscode-exthost bench`: two Node processes talking over a Unix
// socket with the host's own framing and request code (node-host/src/connection.js), so the
// figure is what the JavaScript side alone can do.
//
//   node peer.js server <host-src-dir> <socket>
//       Listens on <socket> and answers `command/execute` with `args[0]`, as hello.echo does.
//       Prints "ready" once listening.
//   node peer.js client <host-src-dir> <socket> <round-trips> <payload-bytes>
//       Connects, warms up, then sends one request at a time and prints one JSON line:
//       {"samplesNs": [...]}, each the time from sending a request to its result.

const net = require('node:net');
const path = require('node:path');

const [role, hostSrc, socketPath, roundTrips, payloadBytes] = process.argv.slice(2);
const { Connection, RequestError } = require(path.join(hostSrc, 'connection.js'));

function connection(socket, onRequest) {
  return new Connection(socket, {
    onRequest,
    onNotification: () => {},
    onControl: () => {},
    onClose: () => {},
    log: (line) => process.stderr.write(`${line}\n`),
  });
}

function serve() {
  const server = net.createServer((socket) => {
    connection(socket, (method, params) => {
      if (method !== 'command/execute') {
        throw new RequestError('MethodNotFound', `no method ${method}`);
      }
      return params.args.length > 0 ? params.args[0] : null;
    });
  });
  server.listen(socketPath, () => process.stdout.write('ready\n'));
}

async function measure() {
  const socket = net.connect(socketPath);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const peer = connection(socket, () => {
    throw new RequestError('MethodNotFound', 'the client serves nothing');
  });
  const params = { command: 'bench.echo', args: ['x'.repeat(Number(payloadBytes))] };
  const n = Number(roundTrips);
  for (let i = 0; i < Math.min(200, n); i += 1) await peer.request('command/execute', params);
  const samples = new Array(n);
  for (let i = 0; i < n; i += 1) {
    const start = process.hrtime.bigint();
    await peer.request('command/execute', params);
    samples[i] = Number(process.hrtime.bigint() - start);
  }
  process.stdout.write(`${JSON.stringify({ samplesNs: samples })}\n`);
  peer.end();
  socket.end();
}

if (role === 'server') {
  serve();
} else if (role === 'client') {
  measure().catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: peer.js server|client <host-src-dir> <socket> [...]\n');
  process.exit(2);
}
