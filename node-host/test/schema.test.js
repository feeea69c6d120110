'use strict';

// Holds message.schema.json and the vectors to each other, so the schema the Rust side
// validates with and the decoder the JavaScript side runs cannot drift apart.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { schemaErrors } = require('./helpers/schema');
const { bodyOf, isBeyondSchema, loadVectors } = require('./helpers/vectors');

const vectors = loadVectors();

test('every valid vector satisfies the schema', () => {
  for (const vector of vectors.filter((v) => v.expect === 'ok')) {
    assert.deepEqual(schemaErrors(JSON.parse(bodyOf(vector).toString())), [], vector.name);
  }
});

test('the schema rejects every invalid_message vector it can see', () => {
  for (const vector of vectors.filter((v) => v.expect === 'invalid_message' && !isBeyondSchema(v))) {
    assert.notDeepEqual(schemaErrors(JSON.parse(bodyOf(vector).toString())), [], vector.name);
  }
});

// Duplicate keys and non-plain integers are rules about the text; once parsed, these bodies
// are valid values. This pins down that the schema alone is not enough to decode.
test('text-level rules are beyond the schema', () => {
  const beyond = vectors.filter(isBeyondSchema);
  assert.ok(beyond.length > 0);
  for (const vector of beyond) {
    assert.equal(vector.expect, 'invalid_message', vector.name);
    assert.deepEqual(schemaErrors(JSON.parse(bodyOf(vector).toString())), [], vector.name);
  }
});
