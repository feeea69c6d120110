'use strict';

// Test plumbing: connected Unix socket pairs, and a "raw" peer that reads and writes frames
// directly, for sending what a well-behaved Connection never would.

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');
const { FrameDecoder, encode } = require('../../src/codec');
const { schemaErrors } = require('./schema');

/** A fresh directory for socket files, removed by the returned cleanup. */
function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dscode-node-host-'));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** @returns {Promise<[net.Socket, net.Socket]>} two connected sockets */
async function socketPair() {
  const { dir, cleanup } = tempDir();
  const server = net.createServer();
  server.listen(path.join(dir, 'pair.sock'));
  await once(server, 'listening');
  const client = net.createConnection(path.join(dir, 'pair.sock'));
  const [accepted] = await once(server, 'connection');
  await once(client, 'connect');
  server.close();
  cleanup();
  return [client, accepted];
}

/**
 * Reads frames from a socket into a queue. Every message that arrives is checked against
 * message.schema.json; `schemaViolations` collects the failures.
 */
class RawPeer {
  #socket;
  #queue = [];
  #waiters = [];
  #ended = null;
  schemaViolations = [];
  decodeErrors = [];

  /** @param {net.Socket} socket */
  constructor(socket) {
    this.#socket = socket;
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => {
      for (const result of decoder.push(chunk)) {
        if (!result.ok) {
          this.decodeErrors.push(result.error);
          continue;
        }
        const violations = schemaErrors(result.message);
        if (violations.length > 0) this.schemaViolations.push({ message: result.message, violations });
        this.#queue.push(result.message);
        this.#wake();
      }
    });
    socket.on('close', () => {
      this.#ended = 'the connection closed';
      this.#wake();
    });
  }

  get socket() {
    return this.#socket;
  }

  /** Sends one message. */
  send(type, id, payload) {
    this.#socket.write(encode({ id, type, payload }));
  }

  /** Writes raw bytes, frame header included. */
  write(bytes) {
    this.#socket.write(bytes);
  }

  /**
   * Takes the first received message matching `predicate`, waiting for it if needed.
   * Rejects if the connection closes first, with `explain()` appended (for example the
   * host's stderr).
   */
  next(predicate, what = 'a message', explain = () => '') {
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const index = this.#queue.findIndex(predicate);
        if (index !== -1) {
          resolve(this.#queue.splice(index, 1)[0]);
          return true;
        }
        if (this.#ended !== null) {
          reject(new Error(`${this.#ended} before ${what} arrived${explain()}`));
          return true;
        }
        return false;
      };
      if (!waiter()) this.#waiters.push(waiter);
    });
  }

  /** The response to request `id`. */
  response(id, explain) {
    return this.next((m) => m.type === 'response' && m.id === id, `the response to request ${id}`, explain);
  }

  #wake() {
    this.#waiters = this.#waiters.filter((waiter) => !waiter());
  }
}

module.exports = { RawPeer, socketPair, tempDir };
