'use strict';

// Pins the wire shape of every extension API call; node-host/README.md documents the same.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { CommandRegistry } = require('../src/commands');
const { createContext } = require('../src/context');

function recordingContext() {
  const sent = [];
  const connection = {
    request: async (method, params, options) => {
      sent.push({ method, params, options });
      return 'answer';
    },
    notify: (method, params) => sent.push({ method, params }),
  };
  const context = createContext({
    extensionId: 'test.api',
    extensionPath: '/ext/api',
    storagePath: '/data/api',
    commands: new CommandRegistry(),
    connection,
  });
  return { context, sent };
}

test('describes the extension', () => {
  const { context } = recordingContext();
  assert.deepEqual(context.extension, { id: 'test.api', path: '/ext/api' });
  assert.equal(context.storagePath, '/data/api');
  assert.deepEqual(context.subscriptions, []);
});

test('each API call is one request with named params, resolving to the broker result', async () => {
  const { context, sent } = recordingContext();
  const signal = new AbortController().signal;
  const calls = [
    [() => context.fs.readFile('a.txt'), 'fs/readFile', { path: 'a.txt', encoding: 'utf8' }],
    [() => context.fs.readFile('a.bin', { encoding: 'base64' }), 'fs/readFile', { path: 'a.bin', encoding: 'base64' }],
    [() => context.fs.writeFile('a.txt', 'hé'), 'fs/writeFile', { path: 'a.txt', data: 'hé', encoding: 'utf8' }],
    [() => context.fs.writeFile('a.bin', new Uint8Array([0, 255])), 'fs/writeFile',
      { path: 'a.bin', data: 'AP8=', encoding: 'base64' }],
    [() => context.fs.readDirectory('dir'), 'fs/readDirectory', { path: 'dir' }],
    [() => context.fs.stat('a.txt'), 'fs/stat', { path: 'a.txt' }],
    [() => context.fs.delete('dir', { recursive: true }), 'fs/delete', { path: 'dir', recursive: true }],
    [() => context.fs.delete('a.txt'), 'fs/delete', { path: 'a.txt', recursive: false }],
    [() => context.secrets.get('token'), 'secrets/get', { key: 'token' }],
    [() => context.secrets.store('token', 's3cret'), 'secrets/store', { key: 'token', value: 's3cret' }],
    [() => context.secrets.delete('token'), 'secrets/delete', { key: 'token' }],
    [() => context.clipboard.readText(), 'clipboard/readText', {}],
    [() => context.clipboard.writeText('copied'), 'clipboard/writeText', { text: 'copied' }],
    [() => context.terminal.create('build'), 'terminal/create', { name: 'build' }],
    [() => context.terminal.sendText('t1', 'make\n'), 'terminal/sendText', { id: 't1', text: 'make\n' }],
    [() => context.window.showMessage('warning', 'careful'), 'window/showMessage', { level: 'warning', message: 'careful' }],
    [() => context.window.showInputBox(), 'window/showInputBox',
      { title: undefined, prompt: undefined, placeHolder: undefined, value: undefined, password: undefined }],
    [() => context.window.showInputBox({ prompt: 'Name?', placeHolder: 'ada', password: true, validateInput: () => null }),
      'window/showInputBox', { title: undefined, prompt: 'Name?', placeHolder: 'ada', value: undefined, password: true }],
    [() => context.commands.executeCommand('git.commit', 1, 'two'), 'commands/execute', { command: 'git.commit', args: [1, 'two'] }],
    [() => context.commands.executeCommand('git.status'), 'commands/execute', { command: 'git.status', args: [] }],
    [() => context.network.fetch('https://example.com/'), 'network/fetch',
      { url: 'https://example.com/', method: 'GET', headers: {}, body: undefined }],
    [() => context.network.fetch('https://example.com/', { method: 'POST', headers: { a: 'b' }, body: '{}', signal }),
      'network/fetch', { url: 'https://example.com/', method: 'POST', headers: { a: 'b' }, body: '{}' }],
  ];
  for (const [call, method, params] of calls) {
    sent.length = 0;
    assert.equal(await call(), 'answer', method);
    assert.equal(sent.length, 1, method);
    assert.equal(sent[0].method, method);
    assert.deepEqual(sent[0].params, params, method);
  }
  assert.equal(sent[0].options.signal, signal);
});

test("executeCommand runs the extension's own commands itself, with a token last", async () => {
  const { context, sent } = recordingContext();
  context.commands.registerCommand('test.own', (a, b, token) => ({ sum: a + b, cancelled: token.isCancellationRequested }));
  assert.deepEqual(await context.commands.executeCommand('test.own', 2, 3), { sum: 5, cancelled: false });
  assert.deepEqual(sent, []);
});

test('writeFile rejects data that is neither text nor bytes', async () => {
  const { context, sent } = recordingContext();
  await assert.rejects(context.fs.writeFile('a', 42), { name: 'TypeError', message: /string or a Uint8Array/ });
  assert.deepEqual(sent, []);
});

test('the logger sends log notifications, formatting its arguments like console.log', () => {
  const { context, sent } = recordingContext();
  for (const level of ['trace', 'debug', 'info', 'warn', 'error']) context.logger[level]('%s=%d', 'n', 7, { x: 1 });
  assert.deepEqual(sent.map(({ method, params }) => [method, params.level, params.message]), [
    ['log', 'trace', 'n=7 { x: 1 }'],
    ['log', 'debug', 'n=7 { x: 1 }'],
    ['log', 'info', 'n=7 { x: 1 }'],
    ['log', 'warn', 'n=7 { x: 1 }'],
    ['log', 'error', 'n=7 { x: 1 }'],
  ]);
});
