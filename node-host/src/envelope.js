'use strict';

// What a well-formed protocol-1 message is: the envelope and payload rules of
// proto-schema/PROTOCOL.md, plus the two rules that a JSON value alone cannot show and
// therefore need the body text: duplicate keys and the written form of integers.

const MAX_ID = Number.MAX_SAFE_INTEGER; // 2^53 - 1: JavaScript reads every id exactly.

// The objects whose shape the protocol defines, by path from the envelope. Everything under
// them (`params`, `result`, `data`) is free-form and passed through uninspected, so the
// duplicate-key and integer-form rules stop at these objects.
const STRUCTURED_OBJECTS = new Set(['', 'payload', 'payload.error', 'payload.config']);

// An integer is written as plain decimal digits. `1.0`, `1e3` and `-0` are integers to
// JSON.parse and to JSON Schema, but not to typed decoders such as serde's u64, so they are
// rejected here to keep every implementation of the protocol in agreement.
const PLAIN_INTEGER = /^(?:0|[1-9][0-9]*)$/;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const NUMBER_END = /[\s,\]}]/g;

/**
 * Scans a body that JSON.parse has already accepted as an object (so the text is known to be
 * valid JSON starting with `{`) for what JSON.parse hides: a key repeated within one
 * structured object, and integers in those objects not written in plain decimal form.
 *
 * @param {string} text
 * @returns {{duplicate: {path: string, key: string} | null, nonPlainNumbers: Set<string>}}
 *   `duplicate.path` is the object's path ('' for the envelope); `nonPlainNumbers` holds the
 *   paths of the offending values (e.g. 'payload.seq').
 */
function scanBody(text) {
  const nonPlainNumbers = new Set();
  // One frame per open object or array. `path` is null for arrays and free-form objects.
  const stack = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === QUOTE) {
      const end = closingQuote(text, i);
      if (top.path !== null && top.expectingKey) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? JSON.parse(text.slice(i, end + 1)) : raw;
        if (top.keys.has(key)) {
          return { duplicate: { path: top.path, key }, nonPlainNumbers };
        }
        top.keys.add(key);
        top.key = key;
        top.expectingKey = false;
      }
      i = end + 1;
    } else if (c === OPEN_BRACE) {
      const path = childObjectPath(top);
      stack.push(path === null ? { path } : { path, keys: new Set(), key: null, expectingKey: true });
      i += 1;
    } else if (c === OPEN_BRACKET) {
      stack.push({ path: null });
      i += 1;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      stack.pop();
      i += 1;
    } else if (c === COMMA) {
      if (top.path !== null) top.expectingKey = true;
      i += 1;
    } else if ((c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9)) && top.path !== null) {
      NUMBER_END.lastIndex = i;
      const end = NUMBER_END.exec(text)?.index ?? text.length;
      if (!PLAIN_INTEGER.test(text.slice(i, end))) nonPlainNumbers.add(joinPath(top.path, top.key));
      i = end;
    } else {
      // Whitespace, colons, literals, and numbers in free-form values: nothing to check.
      i += 1;
    }
  }
  return { duplicate: null, nonPlainNumbers };
}

function childObjectPath(parent) {
  if (parent === undefined) return '';
  if (parent.path === null) return null;
  const path = joinPath(parent.path, parent.key);
  return STRUCTURED_OBJECTS.has(path) ? path : null;
}

function joinPath(path, key) {
  return path === '' ? key : `${path}.${key}`;
}

// Index of the quote that closes the string opening at `start`: the next quote preceded by
// an even number of backslashes.
function closingQuote(text, start) {
  let quote = start;
  for (;;) {
    quote = text.indexOf('"', quote + 1);
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return quote;
  }
}

// Payload rules, one table per type. Each field names its check and whether it is required.
// A key whose value is `undefined` counts as absent, as it does for JSON.stringify, so the
// same rules serve decoded bodies and messages about to be encoded.
const string = (value, path) => (typeof value === 'string' ? null : `${path} must be a string`);
const nonEmptyString = (value, path) =>
  typeof value === 'string' && value.length > 0 ? null : `${path} must be a non-empty string`;
const anyJson = () => null;
const integer = (value, path, nonPlain) =>
  Number.isInteger(value) && value >= 0 && value <= MAX_ID && !nonPlain.has(path)
    ? null
    : `${path} must be an integer from 0 to ${MAX_ID}, written as plain digits`;

// Secrets a host receives at handshake: a flat object of strings.
const stringMap = (value, path) => {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `${path} must be an object`;
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') return `${path}.${key} must be a string`;
  }
  return null;
};

const HOST_CONFIG = {
  extensionPath: { check: string, required: true },
  heartbeatIntervalMs: { check: integer, required: true },
  shutdownGraceMs: { check: integer, required: true },
  storagePath: { check: string, required: false },
  secrets: { check: stringMap, required: false },
};

const ERROR = {
  code: { check: nonEmptyString, required: true },
  message: { check: string, required: true },
  data: { check: anyJson, required: false },
};

const object = (fields) => (value, path, nonPlain) => objectProblem(value, path, fields, nonPlain);

const METHOD_CALL = {
  method: { check: nonEmptyString, required: true },
  params: { check: anyJson, required: false },
};

const PAYLOADS = {
  handshake: {
    id: 'null',
    fields: {
      protocolVersion: { check: integer, required: true },
      extensionId: { check: string, required: true },
      pid: { check: integer, required: true },
      runtime: { check: string, required: true },
      runtimeVersion: { check: string, required: false },
      config: { check: object(HOST_CONFIG), required: false },
    },
  },
  request: { id: 'integer', fields: METHOD_CALL },
  response: {
    id: 'integer',
    fields: {
      result: { check: anyJson, required: false },
      error: { check: object(ERROR), required: false },
    },
  },
  notification: { id: 'null', fields: METHOD_CALL },
  cancel: { id: 'integer', fields: { reason: { check: string, required: false } } },
  heartbeat: { id: 'null', fields: { seq: { check: integer, required: true } } },
  shutdown: {
    id: 'null',
    fields: {
      reason: { check: string, required: false },
      graceMs: { check: integer, required: true },
    },
  },
};

const ENVELOPE_KEYS = ['id', 'type', 'payload'];

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isPresent(object, key) {
  return Object.hasOwn(object, key) && object[key] !== undefined;
}

function objectProblem(value, path, fields, nonPlain) {
  if (!isPlainObject(value)) return `${path} must be an object`;
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(fields, key) && value[key] !== undefined) {
      return `${path} has unknown key "${key}"`;
    }
  }
  for (const [key, field] of Object.entries(fields)) {
    const fieldPath = `${path}.${key}`;
    if (!isPresent(value, key)) {
      if (field.required) return `${path} is missing "${key}"`;
      continue;
    }
    const problem = field.check(value[key], fieldPath, nonPlain);
    if (problem !== null) return problem;
  }
  return null;
}

/**
 * Checks a message against the envelope and payload rules.
 *
 * @param {unknown} message a decoded body or a message about to be encoded
 * @param {Set<string>} [nonPlainNumbers] paths whose integers were not written in plain
 *   decimal (from {@link scanBody}); empty for messages built in memory
 * @returns {string | null} the first rule broken, as a sentence fragment, or null
 */
function envelopeProblem(message, nonPlainNumbers = new Set()) {
  if (!isPlainObject(message)) return 'the message must be a JSON object';
  for (const key of Object.keys(message)) {
    if (!ENVELOPE_KEYS.includes(key) && message[key] !== undefined) {
      return `the envelope has unknown key "${key}"`;
    }
  }
  for (const key of ENVELOPE_KEYS) {
    if (!isPresent(message, key)) return `the envelope is missing "${key}"`;
  }
  const { id, type, payload } = message;
  if (typeof type !== 'string' || !Object.hasOwn(PAYLOADS, type)) {
    return `type must be one of ${Object.keys(PAYLOADS).join(', ')}`;
  }
  const rules = PAYLOADS[type];
  if (rules.id === 'null' && id !== null) return `the id of a ${type} must be null`;
  if (rules.id === 'integer' && integer(id, 'id', nonPlainNumbers) !== null) {
    return `the id of a ${type} must be an integer from 0 to ${MAX_ID}, written as plain digits`;
  }
  const problem = objectProblem(payload, 'payload', rules.fields, nonPlainNumbers);
  if (problem !== null) return problem;
  if (type === 'response' && isPresent(payload, 'result') === isPresent(payload, 'error')) {
    return 'a response payload must hold exactly one of "result" or "error"';
  }
  return null;
}

module.exports = { envelopeProblem, isPlainObject, scanBody };
