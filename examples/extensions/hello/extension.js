'use strict';

// Example extension: commands that need no permissions. `hello.slow` shows how a
// long-running command honours cancellation through the token every handler receives last.

let logger;

function sleep(ms, token) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve();
    }, ms);
    const subscription = token.onCancellationRequested(() => {
      clearTimeout(timer);
      const error = new Error(`hello.slow was cancelled before ${ms} ms had passed`);
      error.name = 'Cancelled';
      reject(error);
    });
  });
}

function activate(context) {
  logger = context.logger;
  const { registerCommand } = context.commands;
  context.subscriptions.push(
    registerCommand('hello.greet', (name) => `Hello, ${name}!`),
    registerCommand('hello.add', (a, b) => a + b),
    registerCommand('hello.slow', async (ms, token) => {
      if (typeof ms !== 'number') throw new TypeError('hello.slow(ms): ms must be a number');
      await sleep(ms, token);
      return 'done';
    }),
    // The token always comes last, so without arguments the first parameter is the token.
    registerCommand('hello.echo', (...args) => (args.length > 1 ? args[0] : null)),
  );
  logger.info('hello activated');
}

function deactivate() {
  logger.info('hello deactivated');
}

module.exports = { activate, deactivate };
