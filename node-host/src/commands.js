'use strict';

// The commands an extension registers, and the cancellation token their handlers receive.

class CommandRegistry {
  /** @type {Map<string, {handler: Function}>} */
  #registrations = new Map();
  #announce = null;

  /**
   * @param {string} id
   * @param {(...args: unknown[]) => unknown} handler
   * @returns {{dispose(): void}} unregisters the command; disposing twice is harmless
   * @throws {TypeError | Error} on a bad id or handler, or an id that is already registered
   */
  register(id, handler) {
    if (typeof id !== 'string' || id === '') {
      throw new TypeError('registerCommand(id, handler): id must be a non-empty string');
    }
    if (typeof handler !== 'function') {
      throw new TypeError(`registerCommand("${id}", handler): handler must be a function`);
    }
    if (this.#registrations.has(id)) {
      throw new Error(`command "${id}" is already registered; dispose the earlier registration first`);
    }
    const registration = { handler };
    this.#registrations.set(id, registration);
    this.#announce?.('commands/registered', id);
    return {
      dispose: () => {
        // Only remove our own registration: after a dispose and re-register, a stale
        // disposable must not remove the new one.
        if (this.#registrations.get(id) !== registration) return;
        this.#registrations.delete(id);
        this.#announce?.('commands/unregistered', id);
      },
    };
  }

  /** @returns {Function | undefined} */
  get(id) {
    return this.#registrations.get(id)?.handler;
  }

  /**
   * Called once activation has succeeded. The activation result reports the commands
   * registered so far; later changes are announced through `announce(method, id)`.
   *
   * @param {(method: 'commands/registered' | 'commands/unregistered', id: string) => void} announce
   * @returns {string[]} the ids registered now
   */
  startAnnouncing(announce) {
    this.#announce = announce;
    return [...this.#registrations.keys()];
  }
}

/**
 * The token passed as the last argument of a command handler. It mirrors VS Code's
 * CancellationToken and also exposes the AbortSignal for APIs that take one.
 *
 * @param {AbortSignal} signal aborted when the supervisor cancels the request
 */
function cancellationToken(signal) {
  return {
    get isCancellationRequested() {
      return signal.aborted;
    },
    /**
     * @param {() => void} listener called once when cancellation is requested; if it
     *   already was, on the next microtask rather than inside this call
     * @returns {{dispose(): void}} stops the listener from being called
     */
    onCancellationRequested(listener) {
      let disposed = false;
      const onAbort = () => {
        if (!disposed) listener();
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else signal.addEventListener('abort', onAbort, { once: true });
      return {
        dispose: () => {
          disposed = true;
          signal.removeEventListener('abort', onAbort);
        },
      };
    },
    signal,
  };
}

module.exports = { CommandRegistry, cancellationToken };
