'use strict';

// The `context` passed to an extension's activate(). Every privileged operation is a request
// to the supervisor, whose broker checks it against the extension's granted permissions; the
// host itself grants nothing. Parameter shapes are documented in node-host/README.md.

const { format } = require('node:util');
const { cancellationToken } = require('./commands');

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** @param {string | Uint8Array} data */
function fileData(data) {
  if (typeof data === 'string') return { data, encoding: 'utf8' };
  if (data instanceof Uint8Array) {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return { data: bytes.toString('base64'), encoding: 'base64' };
  }
  throw new TypeError('fs.writeFile(path, data): data must be a string or a Uint8Array');
}

/**
 * @param {object} options
 * @param {string} options.extensionId the id the supervisor assigned (authoritative)
 * @param {string} options.extensionPath
 * @param {string | undefined} options.storagePath
 * @param {import('./commands').CommandRegistry} options.commands
 * @param {import('./connection').Connection} options.connection
 */
function createContext({ extensionId, extensionPath, storagePath, commands, connection }) {
  // API calls reject with a RequestError carrying the broker's `code` and `data`.
  const call = (method, params, options) => connection.request(method, params, options);

  const logger = {};
  for (const level of LOG_LEVELS) {
    logger[level] = (...args) => connection.notify('log', { level, message: format(...args) });
  }

  return {
    extension: Object.freeze({ id: extensionId, path: extensionPath }),
    storagePath,
    subscriptions: [],
    commands: {
      registerCommand: (id, handler) => commands.register(id, handler),
      // The extension's own commands run here, as its own code; any other command is a request
      // the broker checks against `commands.execute` and the embedder routes to its host.
      executeCommand: async (id, ...args) => {
        const own = commands.get(id);
        if (own !== undefined) return own(...args, cancellationToken(new AbortController().signal));
        return call('commands/execute', { command: id, args });
      },
    },
    logger: Object.freeze(logger),
    fs: {
      readFile: (path, { encoding = 'utf8' } = {}) => call('fs/readFile', { path, encoding }),
      writeFile: async (path, data) => call('fs/writeFile', { path, ...fileData(data) }),
      readDirectory: (path) => call('fs/readDirectory', { path }),
      stat: (path) => call('fs/stat', { path }),
      delete: (path, { recursive = false } = {}) => call('fs/delete', { path, recursive }),
    },
    secrets: {
      get: (key) => call('secrets/get', { key }),
      store: (key, value) => call('secrets/store', { key, value }),
      delete: (key) => call('secrets/delete', { key }),
    },
    clipboard: {
      readText: () => call('clipboard/readText', {}),
      writeText: (text) => call('clipboard/writeText', { text }),
    },
    window: {
      showMessage: (level, message) => call('window/showMessage', { level, message }),
      // Only the options the broker knows are sent: VS Code's others (validateInput, ...) have
      // no meaning across the wire.
      showInputBox: ({ title, prompt, placeHolder, value, password } = {}) =>
        call('window/showInputBox', { title, prompt, placeHolder, value, password }),
    },
    terminal: {
      create: (name) => call('terminal/create', { name }),
      sendText: (id, text) => call('terminal/sendText', { id, text }),
    },
    network: {
      fetch: (url, { method = 'GET', headers = {}, body, signal } = {}) =>
        call('network/fetch', { url, method, headers, body }, { signal }),
    },
  };
}

module.exports = { createContext };
