//! Reading a [`Message`] from JSON.
//!
//! The envelope has a hand-written `Deserialize` rather than `#[serde(flatten)]` around an
//! adjacently tagged enum: flatten buffers every payload through serde's internal `Content`, which
//! cannot hold a `RawValue` and would parse each payload twice. Here the payload is read straight
//! from the stream once `type` is known, and kept as raw JSON to read afterwards only when it comes
//! before `type`. Either way one function, `PayloadSeed`, parses it for its type, and
//! `Body::into_message` then applies the envelope id, the one place the id rules live.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::error_object::ErrorObject;
use super::handshake::Handshake;
use super::message::{Kind, MAX_REQUEST_ID, Message, RequestId};
use super::payload::{
    CallPayload, CancelPayload, HeartbeatPayload, ResponsePayload, ShutdownPayload,
};

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object {\"id\", \"type\", \"payload\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut id: Option<Option<u64>> = None;
        let mut kind: Option<Kind> = None;
        let mut body: Option<Body> = None;
        let mut early: Option<Box<RawValue>> = None;
        // Keys are compared after unescaping, so `"i\u0064"` is a second `id`, not a new key.
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "id" if id.is_some() => return Err(de::Error::duplicate_field("id")),
                "id" => id = Some(map.next_value()?),
                "type" if kind.is_some() => return Err(de::Error::duplicate_field("type")),
                "type" => kind = Some(map.next_value()?),
                "payload" if body.is_some() || early.is_some() => {
                    return Err(de::Error::duplicate_field("payload"));
                }
                "payload" => match kind {
                    Some(kind) => body = Some(map.next_value_seed(PayloadSeed(kind))?),
                    None => early = Some(map.next_value()?),
                },
                other => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::unknown_field(other, &["id", "type", "payload"]));
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        let body = match (body, early) {
            (Some(body), _) => body,
            (None, Some(raw)) => {
                let mut payload = serde_json::Deserializer::from_str(raw.get());
                PayloadSeed(kind)
                    .deserialize(&mut payload)
                    .map_err(|err| de::Error::custom(format!("invalid payload: {err}")))?
            }
            (None, None) => return Err(de::Error::missing_field("payload")),
        };
        body.into_message(kind, id)
    }
}

/// A payload parsed for its type, before the envelope id is applied.
enum Body {
    Handshake(Handshake),
    Request(CallPayload<String, Box<RawValue>>),
    Response(Result<Box<RawValue>, ErrorObject>),
    Notification(CallPayload<String, Box<RawValue>>),
    Cancel(CancelPayload<String>),
    Heartbeat(HeartbeatPayload),
    Shutdown(ShutdownPayload<String>),
}

/// Parses the payload of a message of the given type, which must be a JSON object, and checks
/// what serde cannot express (non-empty names, integers within the protocol's range).
struct PayloadSeed(Kind);

impl<'de> DeserializeSeed<'de> for PayloadSeed {
    type Value = Body;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Body, D::Error> {
        let object = ForceMap(deserializer);
        let body = match self.0 {
            Kind::Handshake => Body::Handshake(Deserialize::deserialize(object)?),
            Kind::Request => Body::Request(call(object)?),
            Kind::Notification => Body::Notification(call(object)?),
            Kind::Response => {
                let payload: ResponsePayload<Box<RawValue>, ErrorObject> =
                    Deserialize::deserialize(object)?;
                let outcome = payload.into_outcome()?;
                if matches!(&outcome, Err(error) if error.code.is_empty()) {
                    return Err(de::Error::custom("error code must not be empty"));
                }
                Body::Response(outcome)
            }
            Kind::Cancel => Body::Cancel(Deserialize::deserialize(object)?),
            Kind::Heartbeat => {
                let payload: HeartbeatPayload = Deserialize::deserialize(object)?;
                within_range(payload.seq)?;
                Body::Heartbeat(payload)
            }
            Kind::Shutdown => {
                let payload: ShutdownPayload<String> = Deserialize::deserialize(object)?;
                within_range(payload.grace_ms)?;
                Body::Shutdown(payload)
            }
        };
        Ok(body)
    }
}

fn call<'de, D: Deserializer<'de>>(
    object: ForceMap<D>,
) -> Result<CallPayload<String, Box<RawValue>>, D::Error> {
    let payload: CallPayload<String, Box<RawValue>> = Deserialize::deserialize(object)?;
    if payload.method.is_empty() {
        return Err(de::Error::custom("method must not be empty"));
    }
    Ok(payload)
}

fn within_range<E: de::Error>(n: u64) -> Result<(), E> {
    if n > MAX_REQUEST_ID {
        return Err(E::custom(format!(
            "{n} is above the protocol's integer limit {MAX_REQUEST_ID}"
        )));
    }
    Ok(())
}

impl Body {
    /// Builds the message of type `kind` with the envelope id: requests, responses and cancels need an integer
    /// id within [`MAX_REQUEST_ID`]; every other type needs `null`.
    fn into_message<E: de::Error>(self, kind: Kind, id: Option<u64>) -> Result<Message, E> {
        let required = || -> Result<RequestId, E> {
            match id {
                Some(id) if id <= MAX_REQUEST_ID => Ok(id),
                Some(id) => Err(E::custom(format!(
                    "id {id} is above the maximum {MAX_REQUEST_ID}"
                ))),
                None => Err(E::custom(format!("a {kind} needs an integer id"))),
            }
        };
        let forbidden = || -> Result<(), E> {
            match id {
                None => Ok(()),
                Some(_) => Err(E::custom(format!("a {kind} must have a null id"))),
            }
        };
        Ok(match self {
            Self::Request(CallPayload { method, params }) => Message::Request {
                id: required()?,
                method,
                params,
            },
            Self::Response(outcome) => Message::Response {
                id: required()?,
                outcome,
            },
            Self::Cancel(CancelPayload { reason }) => Message::Cancel {
                id: required()?,
                reason,
            },
            Self::Handshake(handshake) => {
                forbidden()?;
                Message::Handshake(handshake)
            }
            Self::Notification(CallPayload { method, params }) => {
                forbidden()?;
                Message::Notification { method, params }
            }
            Self::Heartbeat(HeartbeatPayload { seq }) => {
                forbidden()?;
                Message::Heartbeat { seq }
            }
            Self::Shutdown(ShutdownPayload { reason, grace_ms }) => {
                forbidden()?;
                Message::Shutdown { reason, grace_ms }
            }
        })
    }
}

// ---- objects only ----

/// Serde lets a derived struct be read from a JSON array as well as an object; the protocol
/// allows only objects. This adapter hands every request to the inner deserializer as
/// `deserialize_map`, so an array (or any non-object) is a type error.
pub(super) struct ForceMap<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ForceMap<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// `deserialize_with` for an optional field that, when present, must be a JSON object.
pub(super) fn object_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(ForceMap(d)).map(Some)
}

/// `deserialize_with` for an optional field where a present `null` is a value, not absence
/// (plain `Option` would read it as `None`).
pub(super) fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Message, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn payload_before_type_is_accepted() {
        let json = r#"{"payload":{"seq":3},"type":"heartbeat","id":null}"#;
        assert_eq!(parse(json).unwrap(), Message::Heartbeat { seq: 3 });
        let json = r#"{"payload":{"method":"m","params":[1]},"id":5,"type":"request"}"#;
        assert_eq!(parse(json).unwrap().id(), Some(5));
        let json = r#"{"payload":{"result":null},"id":6,"type":"response"}"#;
        assert_eq!(parse(json).unwrap().id(), Some(6));
    }

    #[test]
    fn id_rules_follow_the_type() {
        let table = [
            (
                r#"{"id":null,"type":"request","payload":{"method":"m"}}"#,
                false,
            ),
            (
                r#"{"id":1,"type":"notification","payload":{"method":"m"}}"#,
                false,
            ),
            (r#"{"id":1,"type":"heartbeat","payload":{"seq":1}}"#, false),
            (
                r#"{"id":9007199254740991,"type":"cancel","payload":{}}"#,
                true,
            ),
            (
                r#"{"id":9007199254740992,"type":"cancel","payload":{}}"#,
                false,
            ),
            (
                r#"{"id":null,"type":"heartbeat","payload":{"seq":9007199254740992}}"#,
                false,
            ),
            (
                r#"{"id":null,"type":"shutdown","payload":{"graceMs":9007199254740992}}"#,
                false,
            ),
            (
                r#"{"id":null,"type":"heartbeat","payload":{"seq":9007199254740991}}"#,
                true,
            ),
            (r#"{"id":-1,"type":"cancel","payload":{}}"#, false),
            (r#"{"id":1.5,"type":"cancel","payload":{}}"#, false),
            (r#"{"id":"1","type":"cancel","payload":{}}"#, false),
            (r#"{"payload":{},"type":"cancel","id":null}"#, false),
            (r#"{"payload":{"seq":1},"type":"heartbeat","id":2}"#, false),
        ];
        for (json, ok) in table {
            assert_eq!(parse(json).is_ok(), ok, "{json}");
        }
    }

    #[test]
    fn envelope_is_strict() {
        let table = [
            r#"{"id":null,"type":"heartbeat"}"#,
            r#"{"id":null,"payload":{"seq":1}}"#,
            r#"{"type":"heartbeat","payload":{"seq":1}}"#,
            r#"{"id":null,"type":"heartbeat","payload":{"seq":1},"x":1}"#,
            r#"{"id":null,"id":null,"type":"heartbeat","payload":{"seq":1}}"#,
            r#"{"id":null,"type":"heartbeat","payload":{"seq":1,"seq":2}}"#,
            r#"{"id":null,"type":"ping","payload":{}}"#,
            r#"{"id":1,"type":"response","payload":{"result":1,"error":{"code":"X","message":""}}}"#,
            r#"{"id":1,"type":"response","payload":{}}"#,
            r#"{"id":1,"type":"response","payload":{"error":{"code":"","message":""}}}"#,
            r#"{"id":1,"type":"response","payload":{"error":["X",""]}}"#,
            r#"{"id":1,"type":"request","payload":{"method":""}}"#,
            r#"{"id":1,"type":"request","payload":["m"]}"#,
            r#"{"payload":["m"],"id":1,"type":"request"}"#,
            r#"{"id":null,"type":"shutdown","payload":{"graceMs":1,"extra":true}}"#,
            r"[1,2,3]",
        ];
        for json in table {
            assert!(parse(json).is_err(), "accepted {json}");
        }
    }
}
