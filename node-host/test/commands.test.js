'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { CommandRegistry, cancellationToken } = require('../src/commands');

test('registration is silent during activation and announced after it', () => {
  const registry = new CommandRegistry();
  const announced = [];
  const early = registry.register('a.early', () => 1);
  assert.deepEqual(registry.startAnnouncing((method, id) => announced.push([method, id])), ['a.early']);
  const late = registry.register('a.late', () => 2);
  late.dispose();
  early.dispose();
  assert.deepEqual(announced, [
    ['commands/registered', 'a.late'],
    ['commands/unregistered', 'a.late'],
    ['commands/unregistered', 'a.early'],
  ]);
  assert.equal(registry.get('a.early'), undefined);
});

test('refuses a second registration of one id, and a stale disposable cannot remove the new one', () => {
  const registry = new CommandRegistry();
  const first = registry.register('a.cmd', () => 'first');
  assert.throws(() => registry.register('a.cmd', () => 'again'), /already registered/);
  first.dispose();
  registry.register('a.cmd', () => 'second');
  first.dispose();
  assert.equal(registry.get('a.cmd')(), 'second');
});

test('refuses a bad id or handler with a message naming the mistake', () => {
  const registry = new CommandRegistry();
  assert.throws(() => registry.register('', () => {}), { name: 'TypeError', message: /non-empty string/ });
  assert.throws(() => registry.register('a.cmd', 'nope'), { name: 'TypeError', message: /handler must be a function/ });
});

test('the token follows its signal, and a disposed listener is not called', async () => {
  const controller = new AbortController();
  const token = cancellationToken(controller.signal);
  const calls = [];
  token.onCancellationRequested(() => calls.push('kept'));
  token.onCancellationRequested(() => calls.push('disposed')).dispose();
  assert.equal(token.isCancellationRequested, false);
  controller.abort();
  assert.equal(token.isCancellationRequested, true);
  assert.equal(token.signal, controller.signal);
  assert.deepEqual(calls, ['kept']);
});

test('a listener added after cancellation runs on the next microtask', async () => {
  const token = cancellationToken(AbortSignal.abort());
  let called = false;
  token.onCancellationRequested(() => {
    called = true;
  });
  assert.equal(called, false);
  await Promise.resolve();
  assert.equal(called, true);
});
