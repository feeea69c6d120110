'use strict';

// One protocol connection: frames in and out of a socket, outgoing requests matched to their
// responses, incoming requests served concurrently. It knows nothing about extensions; the
// session layer (host.js) supplies the handlers.

const { DEFAULT_MAX_FRAME, FrameDecoder, encode } = require('./codec');
const { timerDelay } = require('./delay');

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_INCOMING_REQUESTS = 1024;

/**
 * A structured protocol error `{code, message, data?}`: what an outgoing request rejects
 * with, and what a request handler throws to answer with a specific code.
 */
class RequestError extends Error {
  /**
   * @param {string} code an error code from PROTOCOL.md (receivers accept unknown ones too)
   * @param {string} message
   * @param {unknown} [data]
   */
  constructor(code, message, data) {
    super(message);
    // The code doubles as the name so an uncaught one reads "PermissionDenied: ..." in a stack.
    this.name = code;
    this.code = code;
    if (data !== undefined) this.data = data;
  }
}

function errorPayload(err, log) {
  if (err instanceof RequestError) {
    return { code: err.code, message: err.message, data: err.data };
  }
  log(`request handler failed unexpectedly: ${err?.stack ?? String(err)}`);
  return { code: 'Internal', message: `the host failed unexpectedly: ${err?.message ?? String(err)}` };
}

// Sockets corked in the current turn. An exit cannot wait for the next tick, so the 'exit'
// handler uncorks them: a write to a local socket that does not block completes right away.
const flushOnExit = new Set();
process.on('exit', () => {
  for (const socket of flushOnExit) socket.uncork();
});

class Connection {
  #socket;
  #decoder;
  #maxFrame;
  #requestTimeoutMs;
  #maxIncomingRequests;
  #onRequest;
  #onNotification;
  #onControl;
  #onClose;
  #log;
  #nextId = 1;
  /** @type {Map<number, {method: string, settle: (payload: object) => void, fail: (err: Error) => void}>} */
  #outgoing = new Map();
  /** @type {Map<number, AbortController>} */
  #incoming = new Map();
  #closed = false;
  #corked = false;

  /**
   * @param {import('node:net').Socket} socket a connected stream socket
   * @param {object} options
   * @param {(method: string, params: unknown, signal: AbortSignal) => unknown} options.onRequest
   *   serves one incoming request; its return value (or promise) is the result, a thrown
   *   RequestError the error answer. `signal` aborts when the peer cancels.
   * @param {(method: string, params: unknown) => void} options.onNotification
   * @param {(message: object) => void} options.onControl handshake, heartbeat and shutdown
   * @param {(error: Error | null) => void} options.onClose called once when the connection
   *   ends: null for a clean end of stream or a local `end()`, otherwise why it broke
   * @param {(line: string) => void} options.log diagnostics for humans (stderr)
   * @param {number} [options.maxFrame]
   * @param {number} [options.requestTimeoutMs] default deadline of outgoing requests
   * @param {number} [options.maxIncomingRequests] beyond this many in flight, answer Busy
   */
  constructor(socket, {
    onRequest,
    onNotification,
    onControl,
    onClose,
    log,
    maxFrame = DEFAULT_MAX_FRAME,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
    maxIncomingRequests = DEFAULT_MAX_INCOMING_REQUESTS,
  }) {
    this.#socket = socket;
    this.#decoder = new FrameDecoder({ maxFrame });
    this.#maxFrame = maxFrame;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.#maxIncomingRequests = maxIncomingRequests;
    this.#onRequest = onRequest;
    this.#onNotification = onNotification;
    this.#onControl = onControl;
    this.#onClose = onClose;
    this.#log = log;

    socket.on('data', (chunk) => {
      for (const decoded of this.#decoder.push(chunk)) {
        if (this.#closed) return;
        this.#receive(decoded);
      }
    });
    socket.on('end', () => this.#close(this.#decoder.end()?.error ?? null));
    socket.on('error', (err) => this.#close(err));
    socket.on('close', () => this.#close(null));
  }

  /**
   * Sends a request and waits for its response.
   *
   * @param {string} method
   * @param {unknown} [params]
   * @param {{timeoutMs?: number, signal?: AbortSignal}} [options] on timeout or abort the
   *   request is abandoned: the promise rejects and a `cancel` tells the peer to stop
   * @returns {Promise<unknown>} the result
   * @throws {RequestError} the peer's error, or `Timeout`, `Cancelled`, `ShuttingDown` (the
   *   connection closed first), `InvalidParams` (the request cannot be framed)
   */
  request(method, params, { timeoutMs = this.#requestTimeoutMs, signal } = {}) {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new RequestError('ShuttingDown', `cannot send ${method}: the connection is closed`));
        return;
      }
      if (signal?.aborted) {
        reject(new RequestError('Cancelled', `${method} was cancelled before it was sent`));
        return;
      }
      const id = this.#nextId;
      this.#nextId += 1;
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#outgoing.delete(id);
      };
      const abandon = (error) => {
        finish();
        reject(error);
        this.send('cancel', id, { reason: error.message });
      };
      const onAbort = () => abandon(new RequestError('Cancelled', `${method} was cancelled`));
      const timer = setTimeout(
        () => abandon(new RequestError('Timeout', `${method} got no response within ${timeoutMs} ms`)),
        timerDelay(timeoutMs),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#outgoing.set(id, {
        method,
        settle: ({ result, error }) => {
          finish();
          if (error === undefined) resolve(result);
          else reject(new RequestError(error.code, error.message, error.data));
        },
        fail: (err) => {
          finish();
          reject(err);
        },
      });
      try {
        this.#write('request', id, { method, params });
      } catch (err) {
        finish();
        reject(new RequestError('InvalidParams', `cannot send ${method}: ${err.message}`));
      }
    });
  }

  /**
   * Sends a notification. Does nothing once the connection is closed.
   *
   * @throws {import('./codec').ProtocolError} if the notification cannot be framed
   */
  notify(method, params) {
    this.send('notification', null, { method, params });
  }

  /**
   * Sends one message as is (handshake, heartbeat, cancel). Does nothing once the connection
   * is closed.
   *
   * @throws {import('./codec').ProtocolError} if the message cannot be framed
   */
  send(type, id, payload) {
    if (!this.#closed) this.#write(type, id, payload);
  }

  /**
   * Flushes what was written and closes the sending side. Nothing is sent afterwards.
   *
   * @returns {Promise<void>} settles once the data has been handed to the kernel or the
   *   socket has closed
   */
  end() {
    this.#closed = true;
    return new Promise((resolve) => {
      if (this.#socket.destroyed) {
        resolve();
        return;
      }
      this.#socket.once('close', resolve);
      this.#socket.end(resolve);
    });
  }

  #write(type, id, payload) {
    const frame = encode({ id, type, payload }, { maxFrame: this.#maxFrame });
    // Frames written in one turn of the event loop leave in one system call: under load the
    // supervisor then reads many answers per wake-up instead of one. `end()` flushes too, and
    // so does an exit in the same turn (extension code may log, then call process.exit()).
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      flushOnExit.add(this.#socket);
      process.nextTick(() => {
        this.#corked = false;
        flushOnExit.delete(this.#socket);
        this.#socket.uncork();
      });
    }
    this.#socket.write(frame);
  }

  #receive(decoded) {
    if (!decoded.ok) {
      this.#rejectFrame(decoded.error);
      return;
    }
    const { id, type, payload } = decoded.message;
    switch (type) {
      case 'request':
        this.#serve(id, payload.method, payload.params);
        break;
      case 'response':
        this.#settle(id, payload);
        break;
      case 'cancel':
        // A cancel for a request that already finished is normal (the two crossed), so an
        // unknown id is not an error.
        this.#incoming.get(id)?.abort(
          new RequestError('Cancelled', payload.reason ?? 'the request was cancelled by the peer'),
        );
        break;
      case 'notification':
        this.#onNotification(payload.method, payload.params);
        break;
      default:
        this.#onControl(decoded.message);
    }
  }

  #rejectFrame(error) {
    if (error.fatal) {
      this.#log(`closing the connection: ${error.message}`);
      this.#socket.destroy();
      this.#close(error);
      return;
    }
    this.#log(`dropped an invalid frame (${error.kind}): ${error.message}`);
    if (error.requestId !== null) {
      this.#respond(error.requestId, { error: { code: 'InvalidRequest', message: error.message } });
    }
  }

  async #serve(id, method, params) {
    if (this.#incoming.has(id)) {
      this.#respond(id, {
        error: { code: 'InvalidRequest', message: `request id ${id} is already in flight` },
      });
      return;
    }
    if (this.#incoming.size >= this.#maxIncomingRequests) {
      this.#respond(id, {
        error: {
          code: 'Busy',
          message: `${this.#maxIncomingRequests} requests are already in flight; retry later`,
        },
      });
      return;
    }
    const controller = new AbortController();
    this.#incoming.set(id, controller);
    let payload;
    try {
      const result = await this.#onRequest(method, params, controller.signal);
      // PROTOCOL.md: a handler that returns undefined answers null.
      payload = { result: result === undefined ? null : result };
    } catch (err) {
      payload = { error: errorPayload(err, this.#log) };
    } finally {
      this.#incoming.delete(id);
    }
    this.#respond(id, payload);
  }

  #respond(id, payload) {
    if (this.#closed) return;
    try {
      this.#write('response', id, payload);
      return;
    } catch (err) {
      this.#log(`could not send the response to request ${id}: ${err.message}`);
      payload = { error: { code: 'Internal', message: `the response could not be sent: ${err.message}` } };
    }
    // The answer could not be framed (too large, not serializable); the requester still gets
    // one instead of waiting for its deadline, unless even this error cannot be framed.
    try {
      this.#write('response', id, payload);
    } catch {
      // Already logged above.
    }
  }

  #settle(id, payload) {
    const pending = this.#outgoing.get(id);
    if (pending !== undefined) {
      pending.settle(payload);
      return;
    }
    // Ids from 1 to #nextId - 1 were issued; a late answer to one that timed out or was
    // cancelled is expected. Anything else is a peer bug worth a line in the log.
    if (id === 0 || id >= this.#nextId) {
      this.#log(`dropped a response to request id ${id}, which was never sent`);
    }
  }

  #close(error) {
    if (this.#onClose === null) return;
    const onClose = this.#onClose;
    this.#onClose = null;
    this.#closed = true;
    for (const pending of this.#outgoing.values()) {
      pending.fail(new RequestError('ShuttingDown', `${pending.method} was lost: the connection closed`));
    }
    for (const controller of this.#incoming.values()) {
      controller.abort(new RequestError('Cancelled', 'the connection closed'));
    }
    onClose(error);
  }
}

module.exports = { Connection, RequestError };
