'use strict';

// End to end: a real `node src/main.js` running real extensions, with the test playing the
// supervisor over a real Unix socket.

const assert = require('node:assert/strict');
const { afterEach, describe, test } = require('node:test');
const { EXTENSIONS, HostProcess } = require('./helpers/host-process');

describe('node host', () => {
  let host;
  afterEach(() => {
    if (host !== undefined) {
      assert.deepEqual(host.schemaViolations, [], 'every message the host sent must satisfy the schema');
      host.close();
    }
    host = undefined;
  });

  test('introduces itself in its handshake', async () => {
    host = await HostProcess.start({ extensionId: 'dscode.hello' });
    const { id, payload } = await host.next((m) => m.type === 'handshake');
    assert.equal(id, null);
    assert.deepEqual(payload, {
      protocolVersion: 1,
      extensionId: 'dscode.hello',
      pid: host.pid,
      runtime: 'node',
      runtimeVersion: process.version,
    });
  });

  test('activates an extension and runs its commands', async () => {
    host = await HostProcess.start();
    const activation = await host.activate(EXTENSIONS.hello);
    assert.deepEqual(activation, { result: { commands: ['hello.greet', 'hello.add', 'hello.slow', 'hello.echo'] } });
    assert.equal((await host.notification('log')).payload.params.message, 'hello activated');
    assert.deepEqual(await host.execute('hello.greet', 'Ada'), { result: 'Hello, Ada!' });
    assert.deepEqual(await host.execute('hello.add', 2, 3), { result: 5 });
    assert.deepEqual(await host.execute('hello.echo', { nested: ['ünï', null] }), { result: { nested: ['ünï', null] } });
    assert.deepEqual(await host.execute('hello.echo'), { result: null });
  });

  test('works on a socket inherited as fd 3, as the supervisor starts it', async () => {
    host = await HostProcess.start({ via: 'fd' });
    await host.activate(EXTENSIONS.hello);
    assert.deepEqual(await host.execute('hello.greet', 'fd'), { result: 'Hello, fd!' });
  });

  test('answers host/echo with its params, and null without', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    const params = { text: '😀', list: [1, 2.5, true, null], nested: { deep: {} } };
    assert.deepEqual(await host.call('host/echo', params), { result: params });
    assert.deepEqual(await host.call('host/echo'), { result: null });
  });

  test('answers unknown methods, unknown commands and bad params with their error codes', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    assert.equal((await host.call('no/such-method', {})).error.code, 'MethodNotFound');
    assert.equal((await host.execute('hello.missing')).error.code, 'CommandNotFound');
    assert.equal((await host.call('command/execute', { command: 7 })).error.code, 'InvalidParams');
    assert.equal((await host.call('command/execute', { command: 'hello.add', args: 'x' })).error.code, 'InvalidParams');
    assert.equal((await host.call('extension/activate', {})).error.code, 'InvalidRequest');
  });

  test('refuses requests before the supervisor handshake', async () => {
    host = await HostProcess.start();
    const answer = await host.call('extension/activate', {});
    assert.equal(answer.error.code, 'InvalidRequest');
  });

  test('reports a thrown error as ExtensionError with its name and stack', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.faulty);
    const { error } = await host.execute('faulty.throw');
    assert.equal(error.code, 'ExtensionError');
    assert.equal(error.message, 'boom');
    assert.equal(error.data.name, 'Error');
    assert.match(error.data.stack, /Error: boom\n\s+at /);
  });

  test('reports an activate() that throws as ExtensionError', async () => {
    host = await HostProcess.start();
    const { error } = await host.activate(EXTENSIONS.activateThrows);
    assert.equal(error.code, 'ExtensionError');
    assert.equal(error.message, 'activation failed on purpose');
  });

  test('reports an extension folder without a manifest as ExtensionError naming the file', async () => {
    host = await HostProcess.start();
    const { error } = await host.activate('/nonexistent/extension');
    assert.equal(error.code, 'ExtensionError');
    assert.match(error.message, /cannot read the extension manifest \/nonexistent\/extension\/package\.json/);
  });

  test('a cancel reaches the command token, and a slow command does not block a fast one', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.faulty);
    const waiting = host.request('command/execute', { command: 'faulty.cancellable', args: [] });
    assert.deepEqual(await host.execute('faulty.fast'), { result: 'fast' });
    assert.deepEqual(await host.execute('faulty.wasCancelled'), { result: false });
    host.send('cancel', waiting, { reason: 'test' });
    assert.deepEqual(await host.response(waiting), { result: { cancelled: true } });
    assert.deepEqual(await host.execute('faulty.wasCancelled'), { result: true });
  });

  test('a command that gives up because it was cancelled answers Cancelled', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    const slow = host.request('command/execute', { command: 'hello.slow', args: [600_000] });
    // A round trip guarantees the slow command has started before the cancel arrives.
    await host.call('host/echo');
    host.send('cancel', slow, {});
    assert.equal((await host.response(slow)).error.code, 'Cancelled');
  });

  test('an API call becomes a request to the supervisor, and its answer comes back', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.wordCount);
    const command = host.request('command/execute', { command: 'wordCount.readWorkspaceFile', args: ['notes.txt'] });
    const readFile = await host.next((m) => m.type === 'request');
    assert.deepEqual(readFile.payload, { method: 'fs/readFile', params: { path: 'notes.txt', encoding: 'utf8' } });
    host.send('response', readFile.id, { result: 'one two\nthree\n' });
    assert.deepEqual(await host.response(command), { result: { words: 3, lines: 2, chars: 14 } });
  });

  test('a broker error reaches the extension with its code', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.wordCount);
    const command = host.request('command/execute', { command: 'wordCount.readWorkspaceFile', args: ['/etc/shadow'] });
    const readFile = await host.next((m) => m.type === 'request');
    host.send('response', readFile.id, {
      error: { code: 'PermissionDenied', message: 'fileSystem.read is not granted to test.extension' },
    });
    const { error } = await host.response(command);
    assert.equal(error.code, 'ExtensionError');
    assert.equal(error.message, 'fileSystem.read is not granted to test.extension');
    assert.equal(error.data.name, 'PermissionDenied');
  });

  test('sends heartbeats with increasing seq', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello, { heartbeatIntervalMs: 5 });
    const first = await host.next((m) => m.type === 'heartbeat');
    const second = await host.next((m) => m.type === 'heartbeat');
    assert.equal(first.id, null);
    assert.equal(second.payload.seq, first.payload.seq + 1);
  });

  test('reports an unhandled rejection and an uncaught exception as host/error, and keeps serving', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.faulty);
    assert.deepEqual(await host.execute('faulty.reject'), { result: 'ok' });
    const rejection = (await host.notification('host/error')).payload.params;
    assert.equal(rejection.kind, 'unhandledRejection');
    assert.equal(rejection.message, 'rejected on purpose');
    assert.match(rejection.stack, /Error: rejected on purpose/);

    assert.deepEqual(await host.execute('faulty.throwAsync'), { result: 'ok' });
    const exception = (await host.notification('host/error')).payload.params;
    assert.equal(exception.kind, 'uncaughtException');
    assert.equal(exception.message, 'thrown on purpose');

    assert.deepEqual(await host.execute('faulty.fast'), { result: 'fast' });
  });

  test('on shutdown calls deactivate(), flushes, and exits 0', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    await host.notification('log');
    host.send('shutdown', null, { reason: 'test', graceMs: 60_000 });
    assert.equal((await host.notification('log')).payload.params.message, 'hello deactivated');
    assert.deepEqual(await host.exited, { code: 0, signal: null });
  });

  test('stops waiting for a deactivate() that never settles once graceMs has passed', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.ignoreSigterm);
    host.send('shutdown', null, { graceMs: 10 });
    assert.deepEqual(await host.exited, { code: 0, signal: null });
    assert.match(host.stderr, /deactivate\(\) did not finish within 10 ms/);
  });

  test('exits 0 at once when the supervisor closes the connection', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    host.endConnection();
    assert.deepEqual(await host.exited, { code: 0, signal: null });
  });

  test('exits 78 when the supervisor speaks another protocol version', async () => {
    host = await HostProcess.start();
    await host.next((m) => m.type === 'handshake');
    host.handshake(EXTENSIONS.hello, { protocolVersion: 2 });
    assert.deepEqual(await host.exited, { code: 78, signal: null });
    assert.match(host.stderr, /supervisor speaks protocol version 2; this host speaks 1/);
  });

  test('answers a malformed request with InvalidRequest and keeps going', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    const body = Buffer.from('{"id":41,"type":"request","payload":{"method":"host/echo","params":1,"extra":2}}');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    host.write(Buffer.concat([header, body]));
    const { error } = await host.response(41);
    assert.equal(error.code, 'InvalidRequest');
    assert.match(error.message, /unknown key "extra"/);
    assert.deepEqual(await host.call('host/echo', 'alive'), { result: 'alive' });
  });

  test('exits 1 on a frame-level error', async () => {
    host = await HostProcess.start();
    await host.activate(EXTENSIONS.hello);
    host.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.deepEqual(await host.exited, { code: 1, signal: null });
    assert.match(host.stderr, /exceeds the maximum of 1048576 bytes/);
  });
});
