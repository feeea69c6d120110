'use strict';

// Runs the real host (`node src/main.js`) as a child process and plays the supervisor's side
// of the protocol against it over a real Unix socket.

const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { once } = require('node:events');
const { RawPeer, tempDir } = require('./peer');

const MAIN = path.join(__dirname, '..', '..', 'src', 'main.js');
const REPO = path.join(__dirname, '..', '..', '..');

/** Extension folders the tests run. */
const EXTENSIONS = {
  hello: path.join(REPO, 'examples', 'extensions', 'hello'),
  wordCount: path.join(REPO, 'examples', 'extensions', 'word-count'),
  faulty: path.join(REPO, 'tests', 'fixtures', 'extensions', 'faulty'),
  activateThrows: path.join(REPO, 'tests', 'fixtures', 'extensions', 'activate-throws'),
  ignoreSigterm: path.join(REPO, 'tests', 'fixtures', 'extensions', 'ignore-sigterm'),
};

class HostProcess {
  #child;
  #peer;
  #cleanup;
  #nextId = 1;
  stderr = '';
  /** @type {Promise<{code: number | null, signal: string | null}>} */
  exited;

  /**
   * Starts a host and waits until it has connected.
   *
   * @param {object} [options]
   * @param {'path' | 'fd'} [options.via] connect through DSCODE_IPC_PATH, or inherit the
   *   socket as fd 3 the way the supervisor starts hosts
   * @param {string} [options.extensionId] what DSCODE_EXTENSION_ID says
   */
  static async start({ via = 'path', extensionId = 'test.extension' } = {}) {
    const host = new HostProcess();
    const { dir, cleanup } = tempDir();
    host.#cleanup = cleanup;
    const socketPath = path.join(dir, 'host.sock');
    const server = net.createServer();
    server.listen(socketPath);
    await once(server, 'listening');

    const env = { ...process.env, DSCODE_EXTENSION_ID: extensionId };
    delete env.DSCODE_IPC_FD;
    delete env.DSCODE_IPC_PATH;
    const stdio = ['ignore', 'pipe', 'pipe'];
    const accepted = once(server, 'connection');
    let inherited = null;
    if (via === 'path') {
      env.DSCODE_IPC_PATH = socketPath;
    } else {
      inherited = net.createConnection(socketPath);
      await once(inherited, 'connect');
      stdio.push(inherited);
    }
    host.#child = spawn(process.execPath, [MAIN], { env, stdio });
    // The child holds its own copy of the descriptor now.
    inherited?.destroy();
    host.#child.stderr.setEncoding('utf8').on('data', (text) => {
      host.stderr += text;
    });
    host.#child.stdout.resume();
    host.exited = new Promise((resolve) => {
      host.#child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    const [socket] = await Promise.race([
      accepted,
      host.exited.then(({ code }) => {
        throw new Error(`the host exited (${code}) before connecting${host.explain()}`);
      }),
    ]);
    server.close();
    host.#peer = new RawPeer(socket);
    return host;
  }

  get pid() {
    return this.#child.pid;
  }

  /** Every message the host sent that broke message.schema.json. */
  get schemaViolations() {
    return this.#peer.schemaViolations;
  }

  explain() {
    return this.stderr === '' ? '' : `\nhost stderr:\n${this.stderr}`;
  }

  next(predicate, what) {
    return this.#peer.next(predicate, what, () => this.explain());
  }

  notification(method) {
    return this.next((m) => m.type === 'notification' && m.payload.method === method, `a ${method} notification`);
  }

  send(type, id, payload) {
    this.#peer.send(type, id, payload);
  }

  write(bytes) {
    this.#peer.write(bytes);
  }

  /** Sends the supervisor's handshake. */
  handshake(extensionPath, { protocolVersion = 1, heartbeatIntervalMs = 60_000 } = {}) {
    this.send('handshake', null, {
      protocolVersion,
      extensionId: 'test.extension',
      pid: process.pid,
      runtime: 'dscode-exthost',
      config: { extensionPath, heartbeatIntervalMs, shutdownGraceMs: 1000 },
    });
  }

  /** Sends a request and returns its id without waiting. */
  request(method, params) {
    const id = this.#nextId;
    this.#nextId += 1;
    this.send('request', id, { method, params });
    return id;
  }

  /** The payload of the response to request `id`. */
  async response(id) {
    return (await this.#peer.response(id, () => this.explain())).payload;
  }

  /** Sends a request and returns its response payload. */
  call(method, params) {
    return this.response(this.request(method, params));
  }

  execute(command, ...args) {
    return this.call('command/execute', { command, args });
  }

  /** Handshakes and activates `extensionPath`; returns the activation response payload. */
  async activate(extensionPath, options) {
    await this.next((m) => m.type === 'handshake', "the host's handshake");
    this.handshake(extensionPath, options);
    return this.call('extension/activate', {});
  }

  /** Closes the supervisor's end of the connection. */
  endConnection() {
    this.#peer.socket.end();
  }

  close() {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
    this.#peer.socket.destroy();
    this.#cleanup();
  }
}

module.exports = { EXTENSIONS, HostProcess };
