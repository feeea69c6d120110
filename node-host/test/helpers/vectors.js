'use strict';

// The conformance vectors of proto-schema/vectors, with their bytes loaded.

const fs = require('node:fs');
const path = require('node:path');

const DIR = path.join(__dirname, '..', '..', '..', 'proto-schema', 'vectors');

/** @returns {Array<{name: string, expect: string, maxFrame?: number, type?: string, id?: number | null, bytes: Buffer}>} */
function loadVectors() {
  const index = JSON.parse(fs.readFileSync(path.join(DIR, 'index.json'), 'utf8'));
  return index.map((vector) => ({ ...vector, bytes: fs.readFileSync(path.join(DIR, vector.file)) }));
}

/** The body of a vector that holds one complete frame. */
function bodyOf(vector) {
  return vector.bytes.subarray(4);
}

// Vectors that break rules about the body text, which JSON Schema (seeing only the parsed
// value) cannot express.
function isBeyondSchema(vector) {
  return vector.name.startsWith('duplicate_key_') || vector.name.startsWith('noncanonical_int_');
}

module.exports = { bodyOf, isBeyondSchema, loadVectors };
