//! The Rust codec against `proto-schema/`: every conformance vector decodes (or fails) exactly as
//! `vectors/index.json` says, and every message the encoder writes is valid under
//! `message.schema.json`. node-host runs the same vectors (`node-host/test/`).

use bytes::BytesMut;
use dscode_extension_host::wire::{
    DecodeErrorKind, ErrorCode, ErrorObject, Handshake, HandshakeSecrets, HostConfig, Kind,
    Message, MessageCodec, encode_message, raw_null, to_raw,
};
use serde::Deserialize;

const DEFAULT_MAX: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vector {
    name: String,
    file: String,
    /// `ok`, or the error kind the vector must fail with.
    expect: String,
    max_frame: Option<usize>,
    #[serde(rename = "type")]
    kind: Option<Kind>,
    id: Option<u64>,
}

fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto-schema")
}

/// Decodes a whole byte stream as a connection would: frames until EOF.
fn decode_stream(bytes: &[u8], max: usize) -> Result<Message, Option<DecodeErrorKind>> {
    let mut codec = MessageCodec::new(max);
    let mut buf = BytesMut::from(bytes);
    let item = match codec.decode(&mut buf) {
        Ok(Some(item)) => item,
        Ok(None) => match codec.decode_eof(&mut buf) {
            Ok(Some(item)) => item,
            Ok(None) => return Err(None),
            Err(err) => return Err(Some(err.kind())),
        },
        Err(err) => return Err(Some(err.kind())),
    };
    item.map_err(|err| Some(err.kind()))
}

#[test]
fn every_vector_decodes_as_the_index_says() {
    let index: Vec<Vector> =
        serde_json::from_slice(&std::fs::read(schema_dir().join("vectors/index.json")).unwrap())
            .unwrap();
    assert!(index.len() >= 40, "only {} vectors", index.len());
    let mut failures = Vec::new();
    for vector in &index {
        let bytes = std::fs::read(schema_dir().join("vectors").join(&vector.file)).unwrap();
        let got = decode_stream(&bytes, vector.max_frame.unwrap_or(DEFAULT_MAX));
        let ok = match (&got, vector.expect.as_str()) {
            (Ok(message), "ok") => Some(message.kind()) == vector.kind && message.id() == vector.id,
            (Err(Some(kind)), expected) => kind.as_str() == expected,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {} ({:?} {:?}), got {:?}",
                vector.name,
                vector.expect,
                vector.kind,
                vector.id,
                got.map(|m| (m.kind(), m.id()))
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree:\n{}",
        failures.len(),
        index.len(),
        failures.join("\n")
    );
}

#[test]
fn encoder_output_is_valid_under_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schema_dir().join("message.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let messages = [
        Message::Handshake(Handshake {
            protocol_version: 1,
            extension_id: "dscode.hello".into(),
            pid: 42,
            runtime: "dscode-exthost".into(),
            runtime_version: Some("0.1.0".into()),
            config: Some(HostConfig {
                extension_path: "/ext".into(),
                heartbeat_interval_ms: 1000,
                shutdown_grace_ms: 5000,
                storage_path: Some("/s".into()),
                secrets: Some({
                    let mut secrets = HandshakeSecrets::default();
                    secrets.insert("MODEL_API_KEY", "sk-test");
                    secrets
                }),
            }),
        }),
        Message::Request {
            id: 1,
            method: "command/execute".into(),
            params: Some(to_raw(&serde_json::json!({"command": "a.b", "args": [1]})).unwrap()),
        },
        Message::Request {
            id: 9_007_199_254_740_991,
            method: "host/echo".into(),
            params: None,
        },
        Message::Response {
            id: 1,
            outcome: Ok(raw_null()),
        },
        Message::Response {
            id: 2,
            outcome: Err(ErrorObject::new(ErrorCode::PermissionDenied, "no")
                .with_data(to_raw(&serde_json::json!({"permission": "fileSystem.read"})).unwrap())),
        },
        Message::Notification {
            method: "log".into(),
            params: Some(to_raw(&serde_json::json!({"level": "info", "message": "hi"})).unwrap()),
        },
        Message::Cancel {
            id: 3,
            reason: Some("timeout".into()),
        },
        Message::Cancel {
            id: 3,
            reason: None,
        },
        Message::Heartbeat { seq: 7 },
        Message::Shutdown {
            reason: None,
            grace_ms: 5000,
        },
    ];
    for message in messages {
        let mut buf = BytesMut::new();
        encode_message(&message, DEFAULT_MAX, &mut buf).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&buf[4..]).unwrap();
        let errors: Vec<_> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{body} violates the schema: {errors:?}");
    }
}

#[test]
fn the_schema_rejects_what_the_decoder_rejects() {
    // A negative control for the test above: a schema that accepted everything would pass it.
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schema_dir().join("message.schema.json")).unwrap())
            .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for bad in [
        serde_json::json!({"id": null, "type": "request", "payload": {"method": "m"}}),
        serde_json::json!({"id": 1, "type": "heartbeat", "payload": {"seq": 1}}),
        serde_json::json!({"id": 1, "type": "response", "payload": {}}),
        serde_json::json!({"id": null, "type": "nope", "payload": {}}),
        serde_json::json!({"id": 9_007_199_254_740_992_u64, "type": "cancel", "payload": {}}),
    ] {
        assert!(!validator.is_valid(&bad), "schema accepted {bad}");
    }
}
