//! Typed wire messages (`proto-schema/PROTOCOL.md`).
//!
//! The envelope is `{"id", "type", "payload"}`. [`Message`] makes the per-type `id` rules part of
//! the type: a request, response or cancel always has an id, every other message never does, so a
//! message that breaks the rules cannot be built. Free-form JSON (`params`, `result`, error
//! `data`) stays a [`RawValue`], so the supervisor forwards it without parsing it into a tree and
//! serializing it again.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::error_object::ErrorObject;
use super::handshake::Handshake;
use super::name::variant_name;
use super::payload::{
    CallPayload, CancelPayload, HeartbeatPayload, ResponsePayload, ShutdownPayload,
};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request id, and largest integer anywhere in a message: 2^53 − 1, the largest integer
/// a JavaScript peer reads exactly.
pub const MAX_REQUEST_ID: u64 = (1 << 53) - 1;

/// A request id, unique per direction while the request is in flight.
pub type RequestId = u64;

/// One decoded protocol message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Message {
    /// Opens a session; sent once by each side.
    Handshake(Handshake),
    /// Asks the peer to run `method` and answer with a [`Message::Response`] carrying the same id.
    Request {
        /// The sender's id for this request.
        id: RequestId,
        /// What to run, for example `command/execute`.
        method: String,
        /// Arguments, forwarded without being parsed.
        params: Option<Box<RawValue>>,
    },
    /// Answers the request with the same id.
    Response {
        /// The id of the request this answers.
        id: RequestId,
        /// The result, or a structured error.
        outcome: Result<Box<RawValue>, ErrorObject>,
    },
    /// A one-way message; nothing answers it.
    Notification {
        /// What happened, for example `log`.
        method: String,
        /// Details, forwarded without being parsed.
        params: Option<Box<RawValue>>,
    },
    /// Abandons a request the sender of the cancel made earlier.
    Cancel {
        /// The id of the abandoned request.
        id: RequestId,
        /// Why, for logs.
        reason: Option<String>,
    },
    /// The host's proof of life, sent from the event loop that runs extension code.
    Heartbeat {
        /// Increases by one per heartbeat.
        seq: u64,
    },
    /// Asks the host to deactivate its extension and exit.
    Shutdown {
        /// Why, for logs.
        reason: Option<String>,
        /// How long the host may spend in `deactivate()`, in milliseconds.
        grace_ms: u64,
    },
}

/// The `type` of a message, as spelled on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Kind {
    /// `handshake`
    Handshake,
    /// `request`
    Request,
    /// `response`
    Response,
    /// `notification`
    Notification,
    /// `cancel`
    Cancel,
    /// `heartbeat`
    Heartbeat,
    /// `shutdown`
    Shutdown,
}

impl Kind {
    /// The wire name, for example `request`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        variant_name(&self)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Message {
    /// This message's type.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Handshake(_) => Kind::Handshake,
            Self::Request { .. } => Kind::Request,
            Self::Response { .. } => Kind::Response,
            Self::Notification { .. } => Kind::Notification,
            Self::Cancel { .. } => Kind::Cancel,
            Self::Heartbeat { .. } => Kind::Heartbeat,
            Self::Shutdown { .. } => Kind::Shutdown,
        }
    }

    /// The envelope id: `Some` for requests, responses and cancels.
    #[must_use]
    pub fn id(&self) -> Option<RequestId> {
        match self {
            Self::Request { id, .. } | Self::Response { id, .. } | Self::Cancel { id, .. } => {
                Some(*id)
            }
            _ => None,
        }
    }
}

/// Messages compare by their wire form: raw JSON has no `PartialEq` and compares by its text.
impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        match (serde_json::to_vec(self), serde_json::to_vec(other)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id())?;
        map.serialize_entry("type", &self.kind())?;
        match self {
            Self::Handshake(handshake) => map.serialize_entry("payload", handshake)?,
            Self::Request { method, params, .. } | Self::Notification { method, params } => {
                let payload = CallPayload {
                    method: method.as_str(),
                    params: params.as_deref(),
                };
                map.serialize_entry("payload", &payload)?;
            }
            Self::Response { outcome, .. } => {
                let outcome = outcome.as_ref().map(|result| &**result);
                map.serialize_entry("payload", &ResponsePayload::from_outcome(outcome))?;
            }
            Self::Cancel { reason, .. } => {
                let payload = CancelPayload {
                    reason: reason.as_deref(),
                };
                map.serialize_entry("payload", &payload)?;
            }
            Self::Heartbeat { seq } => {
                map.serialize_entry("payload", &HeartbeatPayload { seq: *seq })?;
            }
            Self::Shutdown { reason, grace_ms } => {
                let payload = ShutdownPayload {
                    reason: reason.as_deref(),
                    grace_ms: *grace_ms,
                };
                map.serialize_entry("payload", &payload)?;
            }
        }
        map.end()
    }
}

/// Serializes any value into a [`RawValue`].
///
/// # Errors
/// Fails only for values `serde_json` cannot represent (maps with non-string keys, NaN).
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value)
}

/// The JSON `null`, as a raw value.
#[must_use]
pub fn raw_null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("null is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::super::{ErrorCode, HostConfig};
    use super::*;

    fn parse(json: &str) -> Message {
        serde_json::from_str(json).unwrap_or_else(|err| panic!("{json}: {err}"))
    }

    #[test]
    fn request_round_trips_with_params_untouched() {
        let json =
            r#"{"id":7,"type":"request","payload":{"method":"m","params":{"b": [1, 2.50]}}}"#;
        let message = parse(json);
        let Message::Request { id, method, params } = &message else {
            panic!("{message:?}")
        };
        assert_eq!((*id, method.as_str()), (7, "m"));
        // Raw params keep their exact text, whitespace and number formatting included.
        assert_eq!(params.as_ref().unwrap().get(), r#"{"b": [1, 2.50]}"#);
        assert_eq!(parse(&serde_json::to_string(&message).unwrap()), message);
    }

    #[test]
    fn the_envelope_is_written_id_type_payload() {
        let message = Message::Cancel {
            id: 4,
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&message).unwrap(),
            r#"{"id":4,"type":"cancel","payload":{}}"#
        );
        assert_eq!(
            serde_json::to_string(&Message::Heartbeat { seq: 2 }).unwrap(),
            r#"{"id":null,"type":"heartbeat","payload":{"seq":2}}"#
        );
    }

    #[test]
    fn every_variant_round_trips() {
        let messages = [
            Message::Handshake(Handshake {
                protocol_version: PROTOCOL_VERSION,
                extension_id: "a.b".into(),
                pid: 1,
                runtime: "node".into(),
                runtime_version: Some("v20".into()),
                config: Some(HostConfig {
                    extension_path: "/x".into(),
                    heartbeat_interval_ms: 1000,
                    shutdown_grace_ms: 5000,
                    storage_path: None,
                    secrets: None,
                }),
            }),
            Message::Request {
                id: 1,
                method: "m".into(),
                params: None,
            },
            Message::Response {
                id: 2,
                outcome: Ok(raw_null()),
            },
            Message::Response {
                id: 3,
                outcome: Err(
                    ErrorObject::new(ErrorCode::Busy, "later").with_data(to_raw(&[1, 2]).unwrap())
                ),
            },
            Message::Notification {
                method: "log".into(),
                params: Some(to_raw("x").unwrap()),
            },
            Message::Cancel {
                id: 4,
                reason: Some("timeout".into()),
            },
            Message::Heartbeat { seq: 5 },
            Message::Shutdown {
                reason: None,
                grace_ms: 10,
            },
        ];
        for message in messages {
            let json = serde_json::to_string(&message).unwrap();
            let again = parse(&json);
            assert_eq!(again, message, "{json}");
            assert_eq!(
                again.kind().as_str(),
                serde_json::from_str::<serde_json::Value>(&json).unwrap()["type"]
            );
        }
    }

    #[test]
    fn equality_sees_raw_differences() {
        let a = Message::Notification {
            method: "m".into(),
            params: Some(to_raw(&1).unwrap()),
        };
        let b = Message::Notification {
            method: "m".into(),
            params: Some(to_raw(&2).unwrap()),
        };
        assert_ne!(a, b);
        assert_eq!(a, a.clone());
    }
}
