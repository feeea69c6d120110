'use strict';

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');
const { DEFAULT_MAX_FRAME, FrameDecoder, ProtocolError, decodeBody, encode } = require('../src/codec');
const { schemaErrors } = require('./helpers/schema');
const { bodyOf, isBeyondSchema, loadVectors } = require('./helpers/vectors');

const vectors = loadVectors();
const EXPECTS = ['ok', 'frame_too_large', 'truncated', 'invalid_utf8', 'invalid_json', 'invalid_message'];

/** Feeds `bytes` in chunks of the given sizes (cycled), then ends the stream. */
function decodeInChunks(bytes, chunkSizes, options) {
  const decoder = new FrameDecoder(options);
  const results = [];
  for (let offset = 0, i = 0; offset < bytes.length; i += 1) {
    const size = chunkSizes[i % chunkSizes.length];
    results.push(...decoder.push(bytes.subarray(offset, offset + size)));
    offset += size;
  }
  const end = decoder.end();
  if (end !== null) results.push(end);
  return results;
}

function outcome(result) {
  return result.ok ? 'ok' : result.error.kind;
}

function frameOf(message) {
  return encode(message);
}

describe('conformance vectors', () => {
  test('cover every outcome', () => {
    assert.ok(vectors.length >= 40, `only ${vectors.length} vectors`);
    for (const expect of EXPECTS) {
      assert.ok(vectors.some((vector) => vector.expect === expect), `no vector expects ${expect}`);
    }
  });

  // Whole, byte by byte, and in uneven chunks: the split points must not change the outcome.
  const splits = { whole: [Infinity], 'byte by byte': [1], 'uneven chunks': [3, 1, 7, 2] };
  for (const vector of vectors) {
    test(vector.name, () => {
      for (const [how, sizes] of Object.entries(splits)) {
        const results = decodeInChunks(vector.bytes, sizes, { maxFrame: vector.maxFrame });
        assert.equal(results.length, 1, `${how}: expected exactly one result`);
        const [result] = results;
        assert.equal(outcome(result), vector.expect, `${how}: ${result.error?.message}`);
        if (vector.expect === 'ok') {
          assert.equal(result.message.type, vector.type);
          assert.equal(result.message.id, vector.id);
        } else {
          assert.ok(result.error instanceof ProtocolError);
          assert.equal(result.error.fatal, vector.expect === 'frame_too_large' || vector.expect === 'truncated');
        }
      }
    });
  }
});

describe('FrameDecoder', () => {
  test('decodes many frames arriving in one chunk, in order, skipping bad ones', () => {
    const inSync = vectors.filter((vector) => !['frame_too_large', 'truncated'].includes(vector.expect)
      && vector.maxFrame === undefined);
    const results = new FrameDecoder().push(Buffer.concat(inSync.map((vector) => vector.bytes)));
    assert.deepEqual(results.map(outcome), inSync.map((vector) => vector.expect));
  });

  test('a frame split across chunks after the header and inside the header decodes once', () => {
    const frame = frameOf({ id: 1, type: 'request', payload: { method: 'host/echo', params: 'é😀' } });
    for (let cut = 1; cut < frame.length; cut += 1) {
      const decoder = new FrameDecoder();
      assert.deepEqual(decoder.push(frame.subarray(0, cut)), []);
      const [result] = decoder.push(frame.subarray(cut));
      assert.equal(result.message.payload.params, 'é😀', `cut at ${cut}`);
      assert.equal(decoder.end(), null);
    }
  });

  test('rejects an oversized frame from its header, before any body byte arrives', () => {
    const decoder = new FrameDecoder({ maxFrame: 10 });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(11);
    const [result] = decoder.push(header);
    assert.equal(result.error.kind, 'frame_too_large');
  });

  test('yields nothing after a frame-level error, since the stream is out of sync', () => {
    const decoder = new FrameDecoder({ maxFrame: 10 });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(11);
    decoder.push(header);
    assert.deepEqual(decoder.push(frameOf({ id: null, type: 'heartbeat', payload: { seq: 1 } })), []);
    assert.equal(decoder.end(), null);
  });

  test('a clean end of stream between frames is not an error', () => {
    const decoder = new FrameDecoder();
    decoder.push(frameOf({ id: null, type: 'heartbeat', payload: { seq: 1 } }));
    assert.equal(decoder.end(), null);
  });

  test('reads the id of a malformed request only when it is unambiguous', () => {
    const idOf = (text) => decodeBody(Buffer.from(text)).error.requestId;
    assert.equal(idOf('{"id":5,"type":"request","payload":{"method":""}}'), 5);
    assert.equal(idOf('{"id":5,"type":"request","payload":{"method":"a","method":"b"}}'), 5);
    assert.equal(idOf('{"id":5,"id":6,"type":"request","payload":{"method":"a"}}'), null);
    assert.equal(idOf('{"id":5,"type":"request","type":"request","payload":{"method":"a"}}'), null);
    assert.equal(idOf('{"id":5.0,"type":"request","payload":{"method":""}}'), null);
    assert.equal(idOf('{"id":5,"type":"response","payload":{}}'), null);
  });

  // The duplicate-key check walks the body text by hand, so it is held to a reference on
  // bodies full of what could confuse it: structural characters and escapes inside strings,
  // repeated keys in free-form values (allowed), and escaped spellings of envelope keys.
  test('finds duplicate keys exactly where the protocol forbids them', () => {
    let seed = 1;
    const random = (n) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ALPHABET = ['a', '"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'é', '😀', '\n', '\u0000'];
    const randomString = () => Array.from({ length: random(6) }, () => ALPHABET[random(ALPHABET.length)]).join('');
    const freeForm = (depth) => {
      switch (depth > 2 ? random(3) : random(5)) {
        case 0: return JSON.stringify(randomString());
        case 1: return String(random(3) === 0 ? -1.5e3 : random(100));
        case 2: return ['true', 'false', 'null'][random(3)];
        case 3: return `[${Array.from({ length: random(3) }, () => freeForm(depth + 1)).join(',')}]`;
        default: {
          const keys = Array.from({ length: random(4) }, () => JSON.stringify(random(2) ? randomString() : 'id'));
          return `{${keys.map((key) => `${key}:${freeForm(depth + 1)}`).join(',')}}`;
        }
      }
    };
    for (let round = 0; round < 500; round += 1) {
      const envelope = ['"id":1', '"type":"request"'];
      const payload = ['"method":"m"', `"params":${freeForm(0)}`];
      const where = random(3);
      if (where === 0) envelope.push(random(2) ? '"\\u0069d":2' : '"type":"request"');
      if (where === 1) payload.push(random(2) ? '"\\u006dethod":"n"' : '"params":null');
      const text = `{${envelope.join(',')},"payload":{${payload.join(',')}}}`;
      const result = decodeBody(Buffer.from(text));
      if (where === 2) {
        assert.ok(result.ok, `${text}: ${result.error?.message}`);
      } else {
        assert.equal(result.error?.kind, 'invalid_message', text);
        assert.match(result.error.message, /duplicate key/, text);
      }
    }
  });

  test('refuses a maxFrame the header cannot express', () => {
    assert.throws(() => new FrameDecoder({ maxFrame: 2 ** 32 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxFrame: -1 }), RangeError);
  });
});

describe('encode', () => {
  test('round-trips every valid vector into a schema-valid frame', () => {
    for (const vector of vectors.filter((v) => v.expect === 'ok')) {
      const decoded = decodeBody(bodyOf(vector));
      const frame = encode(decoded.message, { maxFrame: vector.maxFrame ?? DEFAULT_MAX_FRAME });
      assert.equal(frame.readUInt32BE(0), frame.length - 4, vector.name);
      const again = decodeBody(frame.subarray(4));
      assert.ok(again.ok, `${vector.name}: ${again.error?.message}`);
      // Compared as JSON because deepEqual tells -0 from 0, and JSON has no -0 to keep.
      assert.equal(JSON.stringify(again.message), JSON.stringify(decoded.message), vector.name);
      assert.deepEqual(schemaErrors(JSON.parse(frame.subarray(4).toString())), [], vector.name);
    }
  });

  test('refuses every message the decoder refuses as invalid_message', () => {
    for (const vector of vectors.filter((v) => v.expect === 'invalid_message' && !isBeyondSchema(v))) {
      const message = JSON.parse(bodyOf(vector).toString());
      assert.throws(() => encode(message), { name: 'ProtocolError', kind: 'invalid_message' }, vector.name);
    }
  });

  test('writes the header as the body length in bytes, not characters', () => {
    const frame = encode({ id: null, type: 'notification', payload: { method: 'log', params: '😀é' } });
    assert.equal(frame.readUInt32BE(0), Buffer.byteLength(frame.subarray(4).toString()));
  });

  test('allows a body of exactly maxFrame bytes and refuses one byte more', () => {
    const message = (pad) => ({ id: 1, type: 'request', payload: { method: 'm', params: 'x'.repeat(pad) } });
    const bodyLength = encode(message(0)).length - 4;
    assert.equal(encode(message(10), { maxFrame: bodyLength + 10 }).length, bodyLength + 14);
    assert.throws(() => encode(message(11), { maxFrame: bodyLength + 10 }), { kind: 'frame_too_large' });
  });

  test('treats undefined as absent, as JSON.stringify does', () => {
    const frame = encode({ id: 1, type: 'request', payload: { method: 'm', params: undefined } });
    assert.equal(frame.subarray(4).toString(), '{"id":1,"type":"request","payload":{"method":"m"}}');
    assert.throws(() => encode({ id: 1, type: 'response', payload: { result: undefined } }), {
      kind: 'invalid_message',
    });
  });

  test('refuses values JSON cannot represent', () => {
    assert.throws(() => encode({ id: 1, type: 'response', payload: { result: 10n } }), { kind: 'invalid_message' });
    assert.throws(() => encode({ id: 1.5, type: 'cancel', payload: {} }), { kind: 'invalid_message' });
  });
});
