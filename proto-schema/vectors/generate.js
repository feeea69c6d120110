'use strict';

// Writes the conformance vectors: one raw byte stream per vector (4-byte big-endian length
// header, then the body, or a truncated frame) and index.json listing them (PROTOCOL.md,
// "Conformance vectors"). Deterministic, no dependencies: `node proto-schema/vectors/generate.js`.
//
// Bodies are written as literal text rather than JSON.stringify output where the exact bytes
// matter (key order, escapes, number forms, duplicates); the frame header is always computed.
//
// Names starting with `duplicate_key_` or `noncanonical_int_` break rules that JSON Schema
// cannot see (the parsed value is the same as a valid one's); every other invalid_message
// vector also fails message.schema.json.

const fs = require('node:fs');
const path = require('node:path');

const DIR = __dirname;
const DEFAULT_MAX_FRAME = 1048576;
const MAX_ID = 9007199254740991;

const vectors = [];

function header(length) {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(length, 0);
  return bytes;
}

function bytesOf(body) {
  return Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
}

function add(name, expect, bytes, extra = {}) {
  if (vectors.some((vector) => vector.name === name)) throw new Error(`duplicate vector name ${name}`);
  vectors.push({ name, file: `${name}.bin`, expect, ...extra, bytes });
}

/** A complete frame holding `body` that decodes to `{type, id}`. */
function ok(name, body, { type, id }, extra = {}) {
  const bytes = bytesOf(body);
  add(name, 'ok', Buffer.concat([header(bytes.length), bytes]), { ...extra, type, id });
}

/** A complete frame holding `body` that must be rejected as `expect`. */
function bad(name, expect, body, extra = {}) {
  const bytes = bytesOf(body);
  add(name, expect, Buffer.concat([header(bytes.length), bytes]), extra);
}

/** Raw bytes, for frames whose header does not match what follows. */
function raw(name, expect, bytes, extra = {}) {
  add(name, expect, bytes, extra);
}

const request = (id, payload) => `{"id":${id},"type":"request","payload":${payload}}`;
const response = (id, payload) => `{"id":${id},"type":"response","payload":${payload}}`;
const notification = (payload) => `{"id":null,"type":"notification","payload":${payload}}`;
const handshake = (payload) => `{"id":null,"type":"handshake","payload":${payload}}`;
const HOST_HANDSHAKE = '{"protocolVersion":1,"extensionId":"dscode.hello","pid":4242,"runtime":"node"}';
const CONFIG = '{"extensionPath":"/ext/hello","heartbeatIntervalMs":5000,"shutdownGraceMs":3000}';
const supervisorHandshake = (config) =>
  handshake(`{"protocolVersion":1,"extensionId":"dscode.hello","pid":1,"runtime":"dscode-exthost","config":${config}}`);
const ECHO = '{"method":"host/echo","params":"hi"}';

// ---- ok: every type, every optional field present and absent ----

ok('handshake_host', handshake(
  '{"protocolVersion":1,"extensionId":"dscode.hello","pid":4242,"runtime":"node","runtimeVersion":"v20.11.0"}',
), { type: 'handshake', id: null });
ok('handshake_minimal', handshake(HOST_HANDSHAKE), { type: 'handshake', id: null });
ok('handshake_supervisor_with_config', handshake(
  '{"protocolVersion":1,"extensionId":"dscode.hello","pid":1,"runtime":"dscode-exthost","runtimeVersion":"0.1.0",'
  + '"config":{"extensionPath":"/ext/hello","heartbeatIntervalMs":5000,"shutdownGraceMs":3000,"storagePath":"/var/lib/dscode/hello"}}',
), { type: 'handshake', id: null });
ok('handshake_config_without_storage_path', supervisorHandshake(CONFIG), { type: 'handshake', id: null });
// Well-formed: the session, not the codec, rejects a version it does not speak.
ok('handshake_protocol_version_2', handshake(
  '{"protocolVersion":2,"extensionId":"dscode.hello","pid":4242,"runtime":"node"}',
), { type: 'handshake', id: null });

ok('request_command_execute', request(7,
  '{"method":"command/execute","params":{"command":"hello.greet","args":["Ada"]}}'), { type: 'request', id: 7 });
ok('request_without_params', request(1, '{"method":"extension/activate"}'), { type: 'request', id: 1 });
ok('request_params_null', request(2, '{"method":"host/echo","params":null}'), { type: 'request', id: 2 });
ok('request_params_true', request(3, '{"method":"host/echo","params":true}'), { type: 'request', id: 3 });
ok('request_params_false', request(4, '{"method":"host/echo","params":false}'), { type: 'request', id: 4 });
ok('request_params_integer', request(5, '{"method":"host/echo","params":42}'), { type: 'request', id: 5 });
ok('request_params_negative_float', request(6, '{"method":"host/echo","params":-12.5e-3}'), { type: 'request', id: 6 });
ok('request_params_string', request(8, '{"method":"host/echo","params":"text"}'), { type: 'request', id: 8 });
ok('request_params_empty_string', request(9, '{"method":"host/echo","params":""}'), { type: 'request', id: 9 });
ok('request_params_array', request(10, '{"method":"host/echo","params":[1,"two",null,[3],{"four":4}]}'),
  { type: 'request', id: 10 });
ok('request_params_empty_object', request(11, '{"method":"host/echo","params":{}}'), { type: 'request', id: 11 });
ok('request_params_nested_object', request(12,
  '{"method":"host/echo","params":{"a":{"b":{"c":[true,false,null,1.5]}},"id":"not the envelope id"}}'),
{ type: 'request', id: 12 });
// params is free-form: the codec does not look inside it, so neither a repeated key nor a
// number that would be a bad id there is an error.
ok('request_params_duplicate_keys_not_inspected', request(13,
  '{"method":"host/echo","params":{"a":1,"a":2,"payload":{"x":1,"x":2}}}'), { type: 'request', id: 13 });
ok('request_params_numbers_not_inspected', request(14,
  '{"method":"host/echo","params":{"id":1.0,"seq":-0,"big":1e300}}'), { type: 'request', id: 14 });
ok('request_id_zero', request(0, ECHO), { type: 'request', id: 0 });
ok('request_id_max', request(MAX_ID, ECHO), { type: 'request', id: MAX_ID });
ok('request_unicode_utf8', request(15,
  '{"method":"host/echo","params":{"ünïcødé":"😀 Ελληνικά עברית 日本語 \u00e9"}}'), { type: 'request', id: 15 });
ok('request_unicode_escapes', request(16,
  '{"\\u006dethod":"host/echo","params":"\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/"}'), { type: 'request', id: 16 });
ok('request_whitespace', ' \t\r\n{ "id" : 17 ,\n\t"type" : "request" ,\r\n "payload" : { "method" : "host/echo" } } \n',
  { type: 'request', id: 17 });
ok('request_key_order', '{"payload":{"params":[],"method":"host/echo"},"type":"request","id":18}',
  { type: 'request', id: 18 });
{
  // A body of exactly maxFrame bytes is allowed; one more byte is not (frame_too_large_override).
  const maxFrame = 256;
  const frame = (bodyLength) => {
    const shell = request(19, '{"method":"host/echo","params":""}');
    const body = shell.replace('"params":""', `"params":"${'x'.repeat(bodyLength - shell.length)}"`);
    if (Buffer.byteLength(body) !== bodyLength) throw new Error(`padding produced ${Buffer.byteLength(body)} bytes`);
    return body;
  };
  ok('request_exact_max_frame', frame(maxFrame), { type: 'request', id: 19 }, { maxFrame });
  bad('frame_too_large_override', 'frame_too_large', frame(maxFrame + 1), { maxFrame });
}

ok('response_result', response(7, '{"result":"Hello, Ada!"}'), { type: 'response', id: 7 });
ok('response_result_null', response(1, '{"result":null}'), { type: 'response', id: 1 });
ok('response_result_object', response(2, '{"result":{"commands":["hello.greet","hello.add"]}}'),
  { type: 'response', id: 2 });
ok('response_error', response(3, '{"error":{"code":"CommandNotFound","message":"command \\"x\\" is not registered"}}'),
  { type: 'response', id: 3 });
ok('response_error_with_data', response(4,
  '{"error":{"code":"ExtensionError","message":"boom","data":{"name":"Error","stack":"Error: boom\\n    at x.js:1:1"}}}'),
{ type: 'response', id: 4 });
ok('response_error_data_null', response(5, '{"error":{"code":"Internal","message":"","data":null}}'),
  { type: 'response', id: 5 });
ok('response_error_unknown_code', response(6, '{"error":{"code":"SomeFutureCode","message":"receivers accept it"}}'),
  { type: 'response', id: 6 });

ok('notification_log', notification('{"method":"log","params":{"level":"info","message":"hello activated"}}'),
  { type: 'notification', id: null });
ok('notification_without_params', notification('{"method":"commands/changed"}'), { type: 'notification', id: null });
ok('notification_host_error', notification(
  '{"method":"host/error","params":{"kind":"unhandledRejection","message":"boom","stack":"Error: boom"}}'),
{ type: 'notification', id: null });

ok('cancel_with_reason', '{"id":9,"type":"cancel","payload":{"reason":"user pressed Escape"}}', { type: 'cancel', id: 9 });
ok('cancel_empty_payload', '{"id":10,"type":"cancel","payload":{}}', { type: 'cancel', id: 10 });
ok('heartbeat', '{"id":null,"type":"heartbeat","payload":{"seq":12}}', { type: 'heartbeat', id: null });
ok('heartbeat_seq_zero', '{"id":null,"type":"heartbeat","payload":{"seq":0}}', { type: 'heartbeat', id: null });
ok('shutdown', '{"id":null,"type":"shutdown","payload":{"graceMs":3000}}', { type: 'shutdown', id: null });
ok('shutdown_with_reason', '{"id":null,"type":"shutdown","payload":{"reason":"supervisor stopping","graceMs":0}}',
  { type: 'shutdown', id: null });

// ---- frame_too_large: the header alone must be enough to reject ----

raw('frame_too_large_max_plus_one', 'frame_too_large', header(DEFAULT_MAX_FRAME + 1));
raw('frame_too_large_header_ffffffff', 'frame_too_large', header(0xffffffff));

// ---- truncated: the stream ends inside a header or a body ----

raw('truncated_header_two_bytes', 'truncated', Buffer.from([0x00, 0x00]));
raw('truncated_header_three_bytes', 'truncated', Buffer.from([0x00, 0x00, 0x00]));
{
  const body = Buffer.from(request(1, ECHO), 'utf8');
  raw('truncated_header_only', 'truncated', header(body.length));
  raw('truncated_body_half', 'truncated', Buffer.concat([header(body.length), body.subarray(0, body.length >> 1)]));
  raw('truncated_body_one_byte_short', 'truncated', Buffer.concat([header(body.length), body.subarray(0, -1)]));
}

// ---- invalid_utf8: the bytes cannot be decoded, whatever the JSON would be ----

function withBytes(before, bytes, after) {
  return Buffer.concat([Buffer.from(before, 'utf8'), Buffer.from(bytes), Buffer.from(after, 'utf8')]);
}
const inMethod = (bytes) => withBytes('{"id":1,"type":"request","payload":{"method":"host/', bytes, '"}}');
bad('invalid_utf8_byte_ff', 'invalid_utf8', inMethod([0xff]));
bad('invalid_utf8_lone_continuation_byte', 'invalid_utf8', inMethod([0x80]));
bad('invalid_utf8_overlong_slash', 'invalid_utf8', inMethod([0xc0, 0xaf]));
bad('invalid_utf8_overlong_three_bytes', 'invalid_utf8', inMethod([0xe0, 0x80, 0xaf]));
bad('invalid_utf8_encoded_surrogate', 'invalid_utf8', inMethod([0xed, 0xa0, 0x80]));
bad('invalid_utf8_above_max_code_point', 'invalid_utf8', inMethod([0xf4, 0x90, 0x80, 0x80]));
bad('invalid_utf8_truncated_sequence', 'invalid_utf8', inMethod([0xe2, 0x82]));
bad('invalid_utf8_in_free_form_params', 'invalid_utf8',
  withBytes('{"id":1,"type":"request","payload":{"method":"host/echo","params":"', [0xfe], '"}}'));

// ---- invalid_json: valid UTF-8, not one JSON value ----

bad('invalid_json_empty_body', 'invalid_json', '');
bad('invalid_json_whitespace_only', 'invalid_json', ' \n');
bad('invalid_json_trailing_garbage', 'invalid_json', `${request(1, ECHO)}x`);
bad('invalid_json_two_objects', 'invalid_json', `${request(1, ECHO)}${request(2, ECHO)}`);
bad('invalid_json_trailing_comma', 'invalid_json', '{"id":1,"type":"request","payload":{"method":"host/echo"},}');
bad('invalid_json_single_quotes', 'invalid_json', "{'id':1,'type':'request','payload':{'method':'host/echo'}}");
bad('invalid_json_unquoted_key', 'invalid_json', '{id:1,"type":"request","payload":{"method":"host/echo"}}');
bad('invalid_json_cut_off', 'invalid_json', '{"id":1,"type":"request","payload":{"method":"host/ec');
bad('invalid_json_nan', 'invalid_json', '{"id":NaN,"type":"request","payload":{"method":"host/echo"}}');
bad('invalid_json_leading_zero', 'invalid_json', '{"id":01,"type":"request","payload":{"method":"host/echo"}}');
bad('invalid_json_raw_newline_in_string', 'invalid_json',
  '{"id":1,"type":"request","payload":{"method":"host/\necho"}}');
bad('invalid_json_byte_order_mark', 'invalid_json', `\ufeff${request(1, ECHO)}`);

// ---- invalid_message: JSON, but not a protocol message ----

const message = (name, body) => bad(name, 'invalid_message', body);

message('not_object_array', `[${request(1, ECHO)}]`);
message('not_object_string', '"request"');
message('not_object_number', '7');
message('not_object_null', 'null');

message('missing_id', `{"type":"request","payload":${ECHO}}`);
message('missing_type', `{"id":1,"payload":${ECHO}}`);
message('missing_payload', '{"id":1,"type":"request"}');
message('extra_envelope_key', `{"id":1,"type":"request","payload":${ECHO},"jsonrpc":"2.0"}`);
message('extra_envelope_key_proto', `{"id":1,"type":"request","payload":${ECHO},"__proto__":{}}`);
message('unknown_type', '{"id":1,"type":"subscribe","payload":{}}');
message('type_wrong_case', `{"id":1,"type":"Request","payload":${ECHO}}`);
message('type_not_string', `{"id":1,"type":1,"payload":${ECHO}}`);

message('duplicate_key_envelope_id', `{"id":1,"id":2,"type":"request","payload":${ECHO}}`);
message('duplicate_key_envelope_escaped', `{"id":1,"\\u0069d":2,"type":"request","payload":${ECHO}}`);
message('duplicate_key_envelope_type', `{"id":1,"type":"notification","type":"request","payload":${ECHO}}`);
message('duplicate_key_envelope_payload', `{"id":1,"type":"request","payload":${ECHO},"payload":${ECHO}}`);
message('duplicate_key_payload', request(1, '{"method":"host/echo","method":"command/execute"}'));
message('duplicate_key_error', response(1, '{"error":{"code":"Internal","message":"a","code":"Busy"}}'));
message('duplicate_key_config', supervisorHandshake(
  '{"extensionPath":"/ext/a","heartbeatIntervalMs":5000,"shutdownGraceMs":3000,"extensionPath":"/ext/b"}'));

message('id_negative', request(-1, ECHO));
message('id_float', request(1.5, ECHO));
message('id_too_big', request('9007199254740992', ECHO));
message('id_string', request('"1"', ECHO));
message('id_boolean', request('true', ECHO));
message('noncanonical_int_id_1_0', request('1.0', ECHO));
message('noncanonical_int_id_exponent', request('1e2', ECHO));
message('noncanonical_int_id_negative_zero', request('-0', ECHO));
message('noncanonical_int_seq', '{"id":null,"type":"heartbeat","payload":{"seq":3.0}}');
message('noncanonical_int_config', supervisorHandshake(
  '{"extensionPath":"/ext/hello","heartbeatIntervalMs":5e3,"shutdownGraceMs":3000}'));

message('request_id_null', request('null', ECHO));
message('response_id_null', response('null', '{"result":1}'));
message('cancel_id_null', '{"id":null,"type":"cancel","payload":{}}');
message('notification_numeric_id', '{"id":1,"type":"notification","payload":{"method":"log"}}');
message('handshake_numeric_id', `{"id":0,"type":"handshake","payload":${HOST_HANDSHAKE}}`);
message('heartbeat_numeric_id', '{"id":1,"type":"heartbeat","payload":{"seq":1}}');
message('shutdown_numeric_id', '{"id":1,"type":"shutdown","payload":{"graceMs":1}}');

message('response_result_and_error', response(1, '{"result":1,"error":{"code":"Internal","message":"x"}}'));
message('response_neither', response(1, '{}'));
message('response_error_missing_code', response(1, '{"error":{"message":"no code"}}'));
message('response_error_empty_code', response(1, '{"error":{"code":"","message":"empty code"}}'));
message('response_error_code_not_string', response(1, '{"error":{"code":404,"message":"numeric code"}}'));
message('response_error_missing_message', response(1, '{"error":{"code":"Internal"}}'));
message('response_error_not_object', response(1, '{"error":"boom"}'));
message('response_error_null', response(1, '{"error":null}'));
message('response_error_unknown_key', response(1, '{"error":{"code":"Internal","message":"x","retry":true}}'));

message('request_empty_method', request(1, '{"method":""}'));
message('request_missing_method', request(1, '{"params":{}}'));
message('request_method_not_string', request(1, '{"method":["host/echo"]}'));
message('notification_empty_method', notification('{"method":""}'));

message('heartbeat_without_seq', '{"id":null,"type":"heartbeat","payload":{}}');
message('heartbeat_seq_string', '{"id":null,"type":"heartbeat","payload":{"seq":"1"}}');
message('heartbeat_seq_negative', '{"id":null,"type":"heartbeat","payload":{"seq":-1}}');
message('shutdown_without_grace', '{"id":null,"type":"shutdown","payload":{"reason":"bye"}}');
message('shutdown_grace_float', '{"id":null,"type":"shutdown","payload":{"graceMs":1.5}}');

message('handshake_wrong_types', handshake('{"protocolVersion":"1","extensionId":7,"pid":"4242","runtime":null}'));
message('handshake_protocol_version_string', handshake(
  '{"protocolVersion":"1","extensionId":"dscode.hello","pid":4242,"runtime":"node"}'));
message('handshake_pid_string', handshake(
  '{"protocolVersion":1,"extensionId":"dscode.hello","pid":"4242","runtime":"node"}'));
message('handshake_missing_runtime', handshake('{"protocolVersion":1,"extensionId":"dscode.hello","pid":4242}'));
message('handshake_config_wrong_types', supervisorHandshake(
  '{"extensionPath":"/ext/hello","heartbeatIntervalMs":"5000","shutdownGraceMs":3000}'));
message('handshake_config_missing_extension_path', supervisorHandshake(
  '{"heartbeatIntervalMs":5000,"shutdownGraceMs":3000}'));
message('handshake_config_unknown_key', supervisorHandshake(
  '{"extensionPath":"/ext/hello","heartbeatIntervalMs":5000,"shutdownGraceMs":3000,"maxFrame":1048576}'));
message('handshake_config_not_object', supervisorHandshake('"/ext/hello"'));

message('payload_not_object_array', '{"id":1,"type":"request","payload":["host/echo"]}');
message('payload_null', '{"id":null,"type":"heartbeat","payload":null}');
message('payload_string', '{"id":null,"type":"shutdown","payload":"now"}');
message('unknown_payload_key_request', request(1, '{"method":"host/echo","timeoutMs":5}'));
message('unknown_payload_key_heartbeat', '{"id":null,"type":"heartbeat","payload":{"seq":1,"ts":0}}');
message('unknown_payload_key_cancel', '{"id":1,"type":"cancel","payload":{"reason":"x","force":true}}');
message('unknown_payload_key_handshake', handshake(
  '{"protocolVersion":1,"extensionId":"dscode.hello","pid":4242,"runtime":"node","features":[]}'));

// ---- write ----

for (const file of fs.readdirSync(DIR)) {
  if (file.endsWith('.bin')) fs.unlinkSync(path.join(DIR, file));
}
const index = [];
for (const { bytes, ...entry } of vectors) {
  fs.writeFileSync(path.join(DIR, entry.file), bytes);
  index.push(entry);
}
fs.writeFileSync(path.join(DIR, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
process.stdout.write(`wrote ${index.length} vectors to ${path.relative(process.cwd(), DIR) || '.'}\n`);
