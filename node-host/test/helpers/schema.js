'use strict';

// A validator for exactly the JSON Schema keywords proto-schema/message.schema.json uses, so
// the tests can hold the schema, the vectors and the codec to one another without a
// dependency. An unsupported keyword throws, so the schema cannot silently outgrow it.

const fs = require('node:fs');
const path = require('node:path');

const SCHEMA_PATH = path.join(__dirname, '..', '..', '..', 'proto-schema', 'message.schema.json');
const ANNOTATIONS = new Set(['$schema', 'title', 'description', '$defs']);

function typeMatches(type, value) {
  switch (type) {
    case 'null': return value === null;
    case 'boolean': return typeof value === 'boolean';
    case 'string': return typeof value === 'string';
    case 'integer': return Number.isInteger(value);
    case 'number': return typeof value === 'number';
    case 'array': return Array.isArray(value);
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value);
    default: throw new Error(`unsupported type ${type}`);
  }
}

/** @returns {string[]} why `value` does not match `schema` (empty when it does) */
function errors(schema, value, root, at) {
  if (schema === true) return [];
  if (schema === false) return [`${at}: not allowed`];
  const found = [];
  const isObject = typeMatches('object', value);
  for (const [keyword, arg] of Object.entries(schema)) {
    switch (keyword) {
      case '$ref': {
        const name = /^#\/\$defs\/([^/]+)$/.exec(arg)?.[1];
        if (name === undefined) throw new Error(`unsupported $ref ${arg}`);
        found.push(...errors(root.$defs[name], value, root, at));
        break;
      }
      case 'type':
        if (![arg].flat().some((type) => typeMatches(type, value))) found.push(`${at}: not of type ${arg}`);
        break;
      case 'const':
        if (value !== arg) found.push(`${at}: not ${JSON.stringify(arg)}`);
        break;
      case 'enum':
        if (!arg.includes(value)) found.push(`${at}: not one of ${arg.join(', ')}`);
        break;
      case 'minLength':
        if (typeof value === 'string' && [...value].length < arg) found.push(`${at}: shorter than ${arg}`);
        break;
      case 'minimum':
        if (typeof value === 'number' && value < arg) found.push(`${at}: below ${arg}`);
        break;
      case 'maximum':
        if (typeof value === 'number' && value > arg) found.push(`${at}: above ${arg}`);
        break;
      case 'required':
        if (isObject) {
          for (const key of arg) if (!Object.hasOwn(value, key)) found.push(`${at}: missing ${key}`);
        }
        break;
      case 'properties':
        if (isObject) {
          for (const [key, sub] of Object.entries(arg)) {
            if (Object.hasOwn(value, key)) found.push(...errors(sub, value[key], root, `${at}.${key}`));
          }
        }
        break;
      case 'additionalProperties':
        if (isObject) {
          for (const key of Object.keys(value)) {
            if (!Object.hasOwn(schema.properties ?? {}, key)) {
              found.push(...errors(arg, value[key], root, `${at}.${key}`));
            }
          }
        }
        break;
      case 'allOf':
        for (const sub of arg) found.push(...errors(sub, value, root, at));
        break;
      case 'anyOf':
        if (!arg.some((sub) => errors(sub, value, root, at).length === 0)) found.push(`${at}: matches no anyOf`);
        break;
      case 'oneOf': {
        const matches = arg.filter((sub) => errors(sub, value, root, at).length === 0).length;
        if (matches !== 1) found.push(`${at}: matches ${matches} oneOf branches`);
        break;
      }
      case 'if': {
        const branch = errors(arg, value, root, at).length === 0 ? schema.then : schema.else;
        if (branch !== undefined) found.push(...errors(branch, value, root, at));
        break;
      }
      case 'then':
      case 'else':
        break;
      default:
        if (!ANNOTATIONS.has(keyword)) throw new Error(`unsupported keyword ${keyword}`);
    }
  }
  return found;
}

const schema = JSON.parse(fs.readFileSync(SCHEMA_PATH, 'utf8'));

/** @returns {string[]} the reasons `message` breaks message.schema.json; empty if it is valid */
function schemaErrors(message) {
  return errors(schema, message, schema, '$');
}

module.exports = { schemaErrors };
