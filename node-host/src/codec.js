'use strict';

// Framing for protocol version 1: a 4-byte big-endian body length, then that many bytes of
// UTF-8 JSON (proto-schema/PROTOCOL.md). Pure: no I/O, so it is tested byte by byte against
// the conformance vectors.

const { envelopeProblem, isPlainObject, scanBody } = require('./envelope');

const HEADER_BYTES = 4;
const DEFAULT_MAX_FRAME = 1024 * 1024;
const MAX_HEADER_VALUE = 0xffffffff;

// `fatal: true` makes malformed UTF-8 (stray bytes, overlong forms, encoded surrogates) an
// error instead of U+FFFD. `ignoreBOM: true` keeps a leading BOM in the text, so JSON.parse
// rejects it as serde_json does rather than the decoder silently dropping it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A received frame or message that breaks the protocol. `kind` is one of the conformance
 * vector `expect` strings.
 */
class ProtocolError extends Error {
  /**
   * @param {'frame_too_large' | 'truncated' | 'invalid_utf8' | 'invalid_json' | 'invalid_message'} kind
   * @param {string} message
   * @param {number | null} [requestId] id of the offending request when it can be read
   *   reliably, so the receiver can answer it with InvalidRequest
   */
  constructor(kind, message, requestId = null) {
    super(message);
    this.name = 'ProtocolError';
    this.kind = kind;
    this.requestId = requestId;
  }

  /** Frame-level errors leave the byte stream out of sync, so the connection must end. */
  get fatal() {
    return this.kind === 'frame_too_large' || this.kind === 'truncated';
  }
}

function checkMaxFrame(maxFrame) {
  if (!Number.isInteger(maxFrame) || maxFrame < 0 || maxFrame > MAX_HEADER_VALUE) {
    throw new RangeError(`maxFrame must be an integer in 0..=${MAX_HEADER_VALUE}, got ${maxFrame}`);
  }
  return maxFrame;
}

function tooLarge(length, maxFrame) {
  return new ProtocolError(
    'frame_too_large',
    `frame body of ${length} bytes exceeds the maximum of ${maxFrame} bytes`,
  );
}

/**
 * Encodes one message as a frame.
 *
 * @param {object} message `{id, type, payload}`
 * @param {{maxFrame?: number}} [options]
 * @returns {Buffer}
 * @throws {ProtocolError} `invalid_message` if the message breaks the envelope rules or is
 *   not serializable, `frame_too_large` if its body would exceed `maxFrame`
 */
function encode(message, { maxFrame = DEFAULT_MAX_FRAME } = {}) {
  checkMaxFrame(maxFrame);
  const problem = envelopeProblem(message);
  if (problem !== null) throw new ProtocolError('invalid_message', `cannot encode: ${problem}`);
  let json;
  try {
    json = JSON.stringify(message);
  } catch (err) {
    throw new ProtocolError('invalid_message', `cannot encode: ${err.message}`);
  }
  const length = Buffer.byteLength(json, 'utf8');
  if (length > maxFrame) throw tooLarge(length, maxFrame);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.write(json, HEADER_BYTES, 'utf8');
  return frame;
}

/**
 * Decodes one frame body (the bytes after the header).
 *
 * @param {Uint8Array} body
 * @returns {{ok: true, message: object} | {ok: false, error: ProtocolError}}
 */
function decodeBody(body) {
  let text;
  try {
    text = utf8.decode(body);
  } catch {
    return failure('invalid_utf8', 'the frame body is not valid UTF-8');
  }
  let message;
  try {
    message = JSON.parse(text);
  } catch (err) {
    return failure('invalid_json', `the frame body is not JSON: ${err.message}`);
  }
  if (!isPlainObject(message)) return failure('invalid_message', 'the message must be a JSON object');
  const { duplicate, nonPlainNumbers } = scanBody(text);
  const requestId = readableRequestId(message, duplicate, nonPlainNumbers);
  if (duplicate !== null) {
    const where = duplicate.path === '' ? 'the envelope' : duplicate.path;
    return failure('invalid_message', `${where} has duplicate key "${duplicate.key}"`, requestId);
  }
  const problem = envelopeProblem(message, nonPlainNumbers);
  if (problem !== null) return failure('invalid_message', problem, requestId);
  return { ok: true, message };
}

// A broken request is answered with InvalidRequest only when its id is beyond doubt: the
// type says request, the id is valid, and neither key was duplicated (JSON.parse keeps the
// last of duplicates, which may not be what the sender meant).
function readableRequestId(message, duplicate, nonPlainNumbers) {
  if (duplicate !== null && duplicate.path === '' && (duplicate.key === 'id' || duplicate.key === 'type')) {
    return null;
  }
  if (message.type !== 'request') return null;
  const { id } = message;
  if (!Number.isSafeInteger(id) || id < 0 || nonPlainNumbers.has('id')) return null;
  return id;
}

function failure(kind, message, requestId = null) {
  return { ok: false, error: new ProtocolError(kind, message, requestId) };
}

/**
 * Incremental frame decoder. Feed it chunks as they arrive; it returns every complete
 * frame's result. The length is checked against `maxFrame` as soon as the header is
 * complete, before any body byte is buffered, and a body is buffered into one allocation of
 * exactly its length, so a peer cannot make it hold more than `maxFrame + 4` bytes.
 *
 * After a frame-level error (`frame_too_large`, `truncated`) the stream is out of sync and
 * the decoder returns nothing more.
 */
class FrameDecoder {
  #maxFrame;
  #header = Buffer.alloc(HEADER_BYTES);
  #headerFilled = 0;
  #body = null;
  #bodyFilled = 0;
  #failed = false;

  /** @param {{maxFrame?: number}} [options] */
  constructor({ maxFrame = DEFAULT_MAX_FRAME } = {}) {
    this.#maxFrame = checkMaxFrame(maxFrame);
  }

  /**
   * @param {Uint8Array} chunk
   * @returns {Array<{ok: true, message: object} | {ok: false, error: ProtocolError}>}
   */
  push(chunk) {
    const results = [];
    let offset = 0;
    while (!this.#failed && offset < chunk.length) {
      if (this.#body === null) {
        const take = Math.min(HEADER_BYTES - this.#headerFilled, chunk.length - offset);
        this.#header.set(chunk.subarray(offset, offset + take), this.#headerFilled);
        this.#headerFilled += take;
        offset += take;
        if (this.#headerFilled < HEADER_BYTES) break;
        this.#headerFilled = 0;
        const length = this.#header.readUInt32BE(0);
        if (length > this.#maxFrame) {
          this.#failed = true;
          results.push({ ok: false, error: tooLarge(length, this.#maxFrame) });
          break;
        }
        // Common case: the whole body is already here, so decode it in place without a copy.
        if (chunk.length - offset >= length) {
          results.push(decodeBody(chunk.subarray(offset, offset + length)));
          offset += length;
          continue;
        }
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyFilled = 0;
      }
      const take = Math.min(this.#body.length - this.#bodyFilled, chunk.length - offset);
      this.#body.set(chunk.subarray(offset, offset + take), this.#bodyFilled);
      this.#bodyFilled += take;
      offset += take;
      if (this.#bodyFilled === this.#body.length) {
        results.push(decodeBody(this.#body));
        this.#body = null;
      }
    }
    return results;
  }

  /**
   * Call when the stream has ended.
   *
   * @returns {{ok: false, error: ProtocolError} | null} a `truncated` error if the stream
   *   ended inside a header or a body, otherwise null
   */
  end() {
    if (this.#failed || (this.#headerFilled === 0 && this.#body === null)) return null;
    this.#failed = true;
    const where = this.#body === null
      ? `inside a frame header (${this.#headerFilled} of ${HEADER_BYTES} bytes)`
      : `inside a frame body (${this.#bodyFilled} of ${this.#body.length} bytes)`;
    return { ok: false, error: new ProtocolError('truncated', `the stream ended ${where}`) };
  }
}

module.exports = { DEFAULT_MAX_FRAME, FrameDecoder, ProtocolError, decodeBody, encode };
