'use strict';

// The host session of PROTOCOL.md: handshake, activation, serving the supervisor's requests,
// heartbeats, and shutdown. One Host per process, running one extension.

const fs = require('node:fs');
const path = require('node:path');
const { inspect } = require('node:util');
const { CommandRegistry, cancellationToken } = require('./commands');
const { Connection, RequestError } = require('./connection');
const { createContext } = require('./context');
const { nextBeatDelay, timerDelay } = require('./delay');
const { isPlainObject } = require('./envelope');

const PROTOCOL_VERSION = 1;

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
// EX_CONFIG from sysexits.h, as PROTOCOL.md requires for a protocol version mismatch.
const EXIT_PROTOCOL_MISMATCH = 78;

const DEACTIVATE_TIMED_OUT = Symbol('deactivate timed out');
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET']);

/**
 * The fields of whatever extension code threw, including non-Error values.
 *
 * @returns {{name: string, message: string, stack?: string}}
 */
function describeThrown(value) {
  if (typeof value?.message === 'string') {
    return {
      name: typeof value.name === 'string' ? value.name : 'Error',
      message: value.message,
      stack: typeof value.stack === 'string' ? value.stack : undefined,
    };
  }
  return { name: typeof value, message: `a non-Error value was thrown: ${inspect(value)}` };
}

function extensionError(thrown) {
  const { name, message, stack } = describeThrown(thrown);
  return new RequestError('ExtensionError', message, { name, stack });
}

/**
 * Loads the extension's entry point named by `main` in its package.json.
 *
 * @throws {Error} with a message naming the file, if the manifest or the module is unusable
 */
function loadExtension(extensionPath) {
  const manifestPath = path.join(extensionPath, 'package.json');
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the extension manifest ${manifestPath}: ${err.message}`);
  }
  if (typeof manifest?.main !== 'string' || manifest.main === '') {
    throw new Error(`${manifestPath} must name the extension's entry point in "main"`);
  }
  const mainPath = path.resolve(extensionPath, manifest.main);
  const module = require(mainPath);
  if (typeof module?.activate !== 'function') {
    throw new Error(`${mainPath} must export an activate(context) function`);
  }
  return module;
}

class Host {
  #connection;
  #extensionId;
  #log;
  // handshaking -> ready -> activating -> running | failed; any of them -> stopping
  #state = 'handshaking';
  #config = null;
  #commands = new CommandRegistry();
  #module = null;
  #context = null;
  #heartbeat = null;

  /**
   * @param {import('node:net').Socket} socket connected to the supervisor
   * @param {object} options
   * @param {string} options.extensionId what DSCODE_EXTENSION_ID said (informational: the
   *   supervisor's handshake carries the authoritative id)
   * @param {(line: string) => void} options.log diagnostics (stderr)
   */
  constructor(socket, { extensionId, log }) {
    this.#extensionId = extensionId;
    this.#log = log;
    this.#connection = new Connection(socket, {
      onRequest: (method, params, signal) => this.#serve(method, params, signal),
      // Protocol 1 defines no supervisor-to-host notifications; ignoring unknown ones lets a
      // later supervisor add some without breaking this host.
      onNotification: () => {},
      onControl: (message) => this.#control(message),
      onClose: (error) => this.#connectionClosed(error),
      log,
    });
  }

  /** Sends the host's handshake; the session proceeds as the supervisor's messages arrive. */
  start() {
    this.#connection.send('handshake', null, {
      protocolVersion: PROTOCOL_VERSION,
      extensionId: this.#extensionId,
      pid: process.pid,
      runtime: 'node',
      runtimeVersion: process.version,
    });
  }

  /**
   * Reports an uncaught exception or unhandled rejection to the supervisor. The host keeps
   * running: one stray callback should not take down every command of the extension.
   *
   * @param {'uncaughtException' | 'unhandledRejection'} kind
   */
  reportError(kind, thrown) {
    const { message, stack } = describeThrown(thrown);
    this.#log(`${kind}: ${stack ?? message}`);
    // This runs inside process-level error handlers, where a throw would kill the process.
    try {
      this.#connection.notify('host/error', { kind, message, stack });
    } catch (err) {
      this.#log(`could not report the ${kind} to the supervisor: ${err.message}`);
    }
  }

  #control(message) {
    switch (message.type) {
      case 'handshake':
        this.#handshake(message.payload);
        break;
      case 'shutdown':
        this.#shutdown(message.payload.graceMs);
        break;
      default:
        // The supervisor's own heartbeats, if it sends any, need no answer.
        break;
    }
  }

  #handshake({ protocolVersion, extensionId, config }) {
    if (this.#state !== 'handshaking') {
      this.#log('ignored a second handshake from the supervisor');
      return;
    }
    if (protocolVersion !== PROTOCOL_VERSION) {
      this.#log(
        `the supervisor speaks protocol version ${protocolVersion}; this host speaks ${PROTOCOL_VERSION}`,
      );
      process.exit(EXIT_PROTOCOL_MISMATCH);
    }
    if (config === undefined) {
      this.#log('the supervisor handshake carried no config; cannot load the extension');
      process.exit(EXIT_FAILURE);
    }
    this.#extensionId = extensionId;
    this.#config = config;
    this.#state = 'ready';
    // Heartbeats run on the event loop that runs extension code, so an extension that blocks
    // the loop stops them and the supervisor sees the hang.
    let seq = 0;
    const interval = timerDelay(config.heartbeatIntervalMs);
    const beat = () => {
      // Scheduled first, so a failed send cannot end the heartbeats.
      this.#heartbeat = setTimeout(beat, nextBeatDelay(Date.now(), interval));
      seq += 1;
      this.#connection.send('heartbeat', null, { seq });
    };
    this.#heartbeat = setTimeout(beat, nextBeatDelay(Date.now(), interval));
  }

  #serve(method, params, signal) {
    if (this.#state === 'handshaking') {
      throw new RequestError('InvalidRequest', 'requests must wait for the supervisor handshake');
    }
    if (this.#state === 'stopping') {
      throw new RequestError('ShuttingDown', 'the host is shutting down');
    }
    switch (method) {
      case 'extension/activate':
        return this.#activate();
      case 'command/execute':
        return this.#execute(params, signal);
      case 'host/echo':
        return params;
      default:
        throw new RequestError('MethodNotFound', `the host has no method "${method}"`);
    }
  }

  async #activate() {
    if (this.#state !== 'ready') {
      throw new RequestError(
        'InvalidRequest',
        this.#state === 'failed'
          ? 'activation already failed; restart the host to try again'
          : 'the extension is already activated',
      );
    }
    this.#state = 'activating';
    const { extensionPath, storagePath } = this.#config;
    try {
      this.#module = loadExtension(extensionPath);
      this.#context = createContext({
        extensionId: this.#extensionId,
        extensionPath,
        storagePath,
        commands: this.#commands,
        connection: this.#connection,
      });
      await this.#module.activate(this.#context);
    } catch (err) {
      if (this.#state === 'activating') this.#state = 'failed';
      throw extensionError(err);
    }
    if (this.#state !== 'activating') {
      throw new RequestError('ShuttingDown', 'the host began shutting down during activation');
    }
    this.#state = 'running';
    const commands = this.#commands.startAnnouncing((method, command) =>
      this.#connection.notify(method, { command }));
    return { commands };
  }

  async #execute(params, signal) {
    if (!isPlainObject(params) || typeof params.command !== 'string') {
      throw new RequestError('InvalidParams', 'command/execute takes {"command": string, "args": array}');
    }
    const { command, args = [] } = params;
    if (!Array.isArray(args)) {
      throw new RequestError('InvalidParams', `command/execute "${command}": args must be an array`);
    }
    const handler = this.#commands.get(command);
    if (handler === undefined) {
      throw new RequestError('CommandNotFound', `command "${command}" is not registered`);
    }
    try {
      return await handler(...args, cancellationToken(signal));
    } catch (err) {
      // A handler that gives up because it was cancelled usually throws; that is the
      // cancellation taking effect, not a bug in the extension.
      if (signal.aborted) throw new RequestError('Cancelled', `command "${command}" was cancelled`);
      throw extensionError(err);
    }
  }

  async #shutdown(graceMs) {
    if (this.#state === 'stopping') return;
    this.#state = 'stopping';
    await this.#deactivate(graceMs);
    this.#disposeSubscriptions();
    clearTimeout(this.#heartbeat);
    await this.#connection.end();
    process.exit(EXIT_OK);
  }

  async #deactivate(graceMs) {
    if (typeof this.#module?.deactivate !== 'function') return;
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(resolve, timerDelay(graceMs), DEACTIVATE_TIMED_OUT);
    });
    try {
      const outcome = await Promise.race([(async () => this.#module.deactivate())(), deadline]);
      if (outcome === DEACTIVATE_TIMED_OUT) {
        this.#log(`deactivate() did not finish within ${graceMs} ms; stopping without it`);
      }
    } catch (err) {
      const { message, stack } = describeThrown(err);
      this.#log(`deactivate() failed: ${stack ?? message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  #disposeSubscriptions() {
    const subscriptions = this.#context?.subscriptions ?? [];
    // Last in, first out: later subscriptions may depend on earlier ones.
    for (const subscription of subscriptions.splice(0).reverse()) {
      try {
        subscription.dispose();
      } catch (err) {
        this.#log(`disposing a subscription failed: ${describeThrown(err).message}`);
      }
    }
  }

  #connectionClosed(error) {
    // End of stream means the supervisor is gone or done with us: exit at once, without
    // deactivate, as PROTOCOL.md requires. A write that races the supervisor's close fails
    // with EPIPE or ECONNRESET before the end of stream is read; that is the same departure.
    const supervisorLeft = error === null || PEER_GONE.has(error.code);
    if (supervisorLeft || this.#state === 'stopping') process.exit(EXIT_OK);
    this.#log(`the connection to the supervisor broke: ${error.message}`);
    process.exit(EXIT_FAILURE);
  }
}

module.exports = { Host };
