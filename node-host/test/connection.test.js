'use strict';

const assert = require('node:assert/strict');
const { once } = require('node:events');
const { afterEach, describe, test } = require('node:test');
const { Connection, RequestError } = require('../src/connection');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const { RawPeer, socketPair, tempDir } = require('./helpers/peer');

const sockets = [];
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy();
});

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A Connection on one socket; `logs` and `closed` record what it reported. */
function connect(socket, options = {}) {
  const logs = [];
  const closed = deferred();
  const connection = new Connection(socket, {
    onRequest: () => null,
    onNotification: () => {},
    onControl: () => {},
    onClose: closed.resolve,
    log: (line) => logs.push(line),
    ...options,
  });
  return { connection, logs, closed: closed.promise };
}

async function pair() {
  const [a, b] = await socketPair();
  sockets.push(a, b);
  return [a, b];
}

/** A Connection under test, talking to a RawPeer. */
async function withRawPeer(options) {
  const [a, b] = await pair();
  return { ...connect(a, options), peer: new RawPeer(b) };
}

describe('Connection', () => {
  test('matches concurrent responses to their requests whatever the order they finish in', async () => {
    const [a, b] = await pair();
    const gates = new Map();
    connect(b, {
      onRequest: (method, params) => {
        gates.set(params, deferred());
        return gates.get(params).promise;
      },
    });
    const { connection } = connect(a);
    const calls = [1, 2, 3, 4, 5].map((n) => connection.request('work', n));
    while (gates.size < 5) await new Promise(setImmediate);
    for (const n of [4, 2, 5, 1, 3]) gates.get(n).resolve(n * 10);
    assert.deepEqual(await Promise.all(calls), [10, 20, 30, 40, 50]);
  });

  test('answers null for a handler that returns undefined', async () => {
    const [a, b] = await pair();
    connect(b, { onRequest: () => undefined });
    assert.equal(await connect(a).connection.request('nothing'), null);
  });

  test('carries a structured error to the requester; any other throw becomes Internal', async () => {
    const [a, b] = await pair();
    const server = connect(b, {
      onRequest: (method) => {
        if (method === 'denied') throw new RequestError('PermissionDenied', 'not granted', { permission: 'x' });
        throw new TypeError('a bug');
      },
    });
    const { connection } = connect(a);
    await assert.rejects(connection.request('denied'), (err) => {
      assert.ok(err instanceof RequestError);
      assert.equal(err.code, 'PermissionDenied');
      assert.equal(err.name, 'PermissionDenied');
      assert.equal(err.message, 'not granted');
      assert.deepEqual(err.data, { permission: 'x' });
      return true;
    });
    await assert.rejects(connection.request('buggy'), { code: 'Internal', message: /a bug/ });
    assert.match(server.logs.join('\n'), /TypeError: a bug/);
  });

  test('cancelling a request rejects it at once and aborts the handler on the other side', async () => {
    const [a, b] = await pair();
    const aborted = deferred();
    connect(b, {
      onRequest: (method, params, signal) => {
        signal.addEventListener('abort', () => aborted.resolve(signal.reason));
        return new Promise(() => {});
      },
    });
    const controller = new AbortController();
    const call = connect(a).connection.request('forever', null, { signal: controller.signal });
    controller.abort();
    await assert.rejects(call, { code: 'Cancelled' });
    const reason = await aborted.promise;
    assert.equal(reason.code, 'Cancelled');
  });

  test('a request past its deadline rejects with Timeout, is cancelled remotely, and its late answer is ignored', async () => {
    const [a, b] = await pair();
    const cancelled = deferred();
    connect(b, {
      onRequest: (method, params, signal) => {
        if (method === 'ping') return 'pong';
        return new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            resolve('too late');
            cancelled.resolve();
          });
        });
      },
    });
    const client = connect(a, { requestTimeoutMs: 1 });
    await assert.rejects(client.connection.request('slow'), { code: 'Timeout', message: /slow got no response/ });
    await cancelled.promise;
    // The late answer was sent before the pong, so it has arrived (and been ignored) by now.
    assert.equal(await client.connection.request('ping', null, { timeoutMs: 60_000 }), 'pong');
    assert.deepEqual(client.logs, []);
  });

  test('answers Busy beyond the in-flight limit and serves again once there is room', async () => {
    const gate = deferred();
    const { peer } = await withRawPeer({ maxIncomingRequests: 2, onRequest: () => gate.promise });
    for (const id of [1, 2, 3]) peer.send('request', id, { method: 'wait' });
    assert.equal((await peer.response(3)).payload.error.code, 'Busy');
    gate.resolve('done');
    assert.equal((await peer.response(1)).payload.result, 'done');
    assert.equal((await peer.response(2)).payload.result, 'done');
    peer.send('request', 4, { method: 'wait' });
    assert.equal((await peer.response(4)).payload.result, 'done');
  });

  test('answers InvalidRequest to an id that is already in flight', async () => {
    const gate = deferred();
    const { peer } = await withRawPeer({ onRequest: () => gate.promise });
    peer.send('request', 7, { method: 'wait' });
    peer.send('request', 7, { method: 'wait' });
    const duplicate = await peer.response(7);
    assert.equal(duplicate.payload.error.code, 'InvalidRequest');
    assert.match(duplicate.payload.error.message, /already in flight/);
    gate.resolve('first');
    assert.equal((await peer.response(7)).payload.result, 'first');
  });

  test('drops a malformed request, answers InvalidRequest, and stays in sync', async () => {
    const { peer, logs } = await withRawPeer({ onRequest: (method, params) => params });
    const body = Buffer.from('{"id":3,"type":"request","payload":{"method":"a","method":"b"}}');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    peer.write(Buffer.concat([header, body]));
    const answer = await peer.response(3);
    assert.equal(answer.payload.error.code, 'InvalidRequest');
    assert.match(answer.payload.error.message, /duplicate key "method"/);
    peer.send('request', 4, { method: 'echo', params: 'still here' });
    assert.equal((await peer.response(4)).payload.result, 'still here');
    assert.match(logs.join('\n'), /dropped an invalid frame \(invalid_message\)/);
  });

  test('logs and drops a response to an id it never sent', async () => {
    const { peer, logs } = await withRawPeer();
    peer.send('response', 99, { result: 1 });
    peer.send('request', 1, { method: 'ping' });
    await peer.response(1);
    assert.deepEqual(logs, ['dropped a response to request id 99, which was never sent']);
  });

  test('closes on a frame-level error and fails what was in flight', async () => {
    const { connection, peer, closed } = await withRawPeer();
    const pending = connection.request('never answered');
    await peer.next((m) => m.type === 'request');
    peer.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const error = await closed;
    assert.equal(error.kind, 'frame_too_large');
    await assert.rejects(pending, { code: 'ShuttingDown' });
    await assert.rejects(connection.request('after'), { code: 'ShuttingDown' });
  });

  test('reports a clean end of stream as null and a stream cut inside a frame as truncated', async () => {
    const clean = await withRawPeer();
    clean.peer.socket.end();
    assert.equal(await clean.closed, null);

    const cut = await withRawPeer();
    cut.peer.socket.end(Buffer.from([0, 0, 0, 9, 0x7b]));
    assert.equal((await cut.closed).kind, 'truncated');
  });

  test('delivers notifications and control messages to their handlers', async () => {
    const notified = deferred();
    const controlled = deferred();
    const { peer } = await withRawPeer({
      onNotification: (method, params) => notified.resolve({ method, params }),
      onControl: controlled.resolve,
    });
    peer.send('notification', null, { method: 'log', params: { level: 'info', message: 'hi' } });
    peer.send('shutdown', null, { graceMs: 5 });
    assert.deepEqual(await notified.promise, { method: 'log', params: { level: 'info', message: 'hi' } });
    assert.deepEqual(await controlled.promise, { id: null, type: 'shutdown', payload: { graceMs: 5 } });
  });

  test('answers Internal when a result cannot be framed', async () => {
    const { peer, logs } = await withRawPeer({ maxFrame: 200, onRequest: () => 'x'.repeat(300) });
    peer.send('request', 1, { method: 'big' });
    const answer = await peer.response(1);
    assert.equal(answer.payload.error.code, 'Internal');
    assert.match(answer.payload.error.message, /exceeds the maximum of 200 bytes/);
    assert.match(logs.join('\n'), /could not send the response to request 1/);
  });

  test('a frame written just before process.exit() still leaves', async () => {
    // Writes are corked until the next tick; an exit in the same turn must flush them.
    const { dir, cleanup } = tempDir();
    const socketPath = path.join(dir, 'exit.sock');
    const server = net.createServer();
    server.listen(socketPath);
    await once(server, 'listening');
    const script = `
      const net = require('node:net');
      const { Connection } = require(${JSON.stringify(path.join(__dirname, '../src/connection'))});
      const socket = net.connect(${JSON.stringify(socketPath)}, () => {
        const c = new Connection(socket, { onRequest() {}, onNotification() {}, onControl() {}, onClose() {}, log() {} });
        c.notify('log', { level: 'info', message: 'before exit' });
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    const [accepted] = await once(server, 'connection');
    const peer = new RawPeer(accepted);
    const message = await peer.next((m) => m.type === 'notification');
    assert.equal(message.payload.params.message, 'before exit');
    await once(child, 'exit');
    accepted.destroy();
    server.close();
    cleanup();
  });

  test('end() flushes what was sent, then the peer sees end of stream', async () => {
    const { connection, peer } = await withRawPeer();
    connection.notify('log', { level: 'info', message: 'last words' });
    await connection.end();
    const message = await peer.next((m) => m.type === 'notification');
    assert.equal(message.payload.params.message, 'last words');
    await once(peer.socket, 'end');
    assert.deepEqual(peer.schemaViolations, []);
  });
});
