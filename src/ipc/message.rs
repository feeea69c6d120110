//! Typed wire messages (`proto-schema/PROTOCOL.md`).
//!
//! The envelope is `{"id", "type", "payload"}`. [`Message`] makes the per-type `id` rules part of
//! the type: a request always has an id, a notification never does. Free-form JSON (`params`,
//! `result`, error `data`) stays a [`RawValue`], so the supervisor forwards it without parsing it
//! into a tree and serializing it again.
//!
//! The envelope has a hand-written `Deserialize` rather than `#[serde(flatten)]` around an
//! adjacently tagged enum: flatten buffers every payload through serde's internal `Content`, which
//! cannot hold a `RawValue` and would parse each payload twice.

use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request id: 2^53 − 1, the largest integer a JavaScript peer reads exactly.
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

/// The payload of a handshake, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Handshake {
    /// The protocol version the sender speaks.
    pub protocol_version: u32,
    /// From the host: the id it was told (informational). From the supervisor: the authoritative id.
    pub extension_id: String,
    /// The sender's process id.
    pub pid: u32,
    /// `"node"`, `"python"`, ... for hosts; `"dscode-exthost"` for the supervisor.
    pub runtime: String,
    /// The runtime's version, if the sender knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// Sent by the supervisor only: what the host needs to run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_object_field"
    )]
    pub config: Option<HostConfig>,
}

/// Settings the supervisor hands a host in its handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostConfig {
    /// The extension folder (the one with `package.json`).
    pub extension_path: String,
    /// How often the host must send a heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// How long `deactivate()` may take on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// A folder the extension may write to, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<String>,
    /// Secrets the host was configured to receive, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<HandshakeSecrets>,
}

/// Secrets handed to a host in its handshake, so they never sit in its environment or argv.
/// `Debug` shows the names only, and the values are zeroized when this is dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandshakeSecrets(std::collections::BTreeMap<String, String>);

impl HandshakeSecrets {
    /// Adds a secret; the caller exposes the value explicitly to put it here.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for HandshakeSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

impl Drop for HandshakeSecrets {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// A structured error, as carried in a response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    /// A stable machine-readable code such as `MethodNotFound` (see [`ErrorCode`]).
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Extra structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// The error codes this crate produces (receivers accept any string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The receiver has no handler for the method.
    MethodNotFound,
    /// `params` has the wrong shape.
    InvalidParams,
    /// The request itself is malformed.
    InvalidRequest,
    /// `command/execute` named a command that is not registered.
    CommandNotFound,
    /// Extension code threw.
    ExtensionError,
    /// The request was cancelled.
    Cancelled,
    /// The request outlived its deadline.
    Timeout,
    /// Too many requests from this peer are in flight.
    Busy,
    /// The receiver is stopping.
    ShuttingDown,
    /// The caller lacks a permission.
    PermissionDenied,
    /// The caller exceeded its request rate.
    RateLimited,
    /// A path was rejected.
    InvalidPath,
    /// The thing asked for does not exist.
    NotFound,
    /// The target host is not running.
    NotRunning,
    /// The receiver does not offer this API.
    Unsupported,
    /// A bug on the receiving side.
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MethodNotFound => "MethodNotFound",
            Self::InvalidParams => "InvalidParams",
            Self::InvalidRequest => "InvalidRequest",
            Self::CommandNotFound => "CommandNotFound",
            Self::ExtensionError => "ExtensionError",
            Self::Cancelled => "Cancelled",
            Self::Timeout => "Timeout",
            Self::Busy => "Busy",
            Self::ShuttingDown => "ShuttingDown",
            Self::PermissionDenied => "PermissionDenied",
            Self::RateLimited => "RateLimited",
            Self::InvalidPath => "InvalidPath",
            Self::NotFound => "NotFound",
            Self::NotRunning => "NotRunning",
            Self::Unsupported => "Unsupported",
            Self::Internal => "Internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorObject {
    /// An error with a code and a message and no data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_owned(),
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured detail.
    #[must_use]
    pub fn with_data(mut self, data: Box<RawValue>) -> Self {
        self.data = Some(data);
        self
    }

    /// Whether this error has the given code.
    #[must_use]
    pub fn is(&self, code: ErrorCode) -> bool {
        self.code == code.as_str()
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorObject {}

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

impl Message {
    /// The wire name of this message's type.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Handshake(_) => "handshake",
            Self::Request { .. } => "request",
            Self::Response { .. } => "response",
            Self::Notification { .. } => "notification",
            Self::Cancel { .. } => "cancel",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Shutdown { .. } => "shutdown",
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

// `RawValue` has no `PartialEq`: raw JSON compares by its text.
fn raw_eq(a: Option<&RawValue>, b: Option<&RawValue>) -> bool {
    a.map(RawValue::get) == b.map(RawValue::get)
}

impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && raw_eq(self.data.as_deref(), other.data.as_deref())
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Handshake(a), Self::Handshake(b)) => a == b,
            (
                Self::Request {
                    id: a,
                    method: ma,
                    params: pa,
                },
                Self::Request {
                    id: b,
                    method: mb,
                    params: pb,
                },
            ) => a == b && ma == mb && raw_eq(pa.as_deref(), pb.as_deref()),
            (Self::Response { id: a, outcome: oa }, Self::Response { id: b, outcome: ob }) => {
                a == b
                    && match (oa, ob) {
                        (Ok(ra), Ok(rb)) => ra.get() == rb.get(),
                        (Err(ea), Err(eb)) => ea == eb,
                        _ => false,
                    }
            }
            (
                Self::Notification {
                    method: ma,
                    params: pa,
                },
                Self::Notification {
                    method: mb,
                    params: pb,
                },
            ) => ma == mb && raw_eq(pa.as_deref(), pb.as_deref()),
            (Self::Cancel { id: a, reason: ra }, Self::Cancel { id: b, reason: rb }) => {
                a == b && ra == rb
            }
            (Self::Heartbeat { seq: a }, Self::Heartbeat { seq: b }) => a == b,
            (
                Self::Shutdown {
                    reason: ra,
                    grace_ms: ga,
                },
                Self::Shutdown {
                    reason: rb,
                    grace_ms: gb,
                },
            ) => ra == rb && ga == gb,
            _ => false,
        }
    }
}

// ---- serialization ----

#[derive(Serialize)]
struct MethodPayloadRef<'a> {
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a RawValue>,
}

#[derive(Serialize)]
enum ResponsePayloadRef<'a> {
    #[serde(rename = "result")]
    Result(&'a RawValue),
    #[serde(rename = "error")]
    Error(&'a ErrorObject),
}

#[derive(Serialize)]
struct CancelPayloadRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct HeartbeatPayload {
    seq: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShutdownPayloadRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    grace_ms: u64,
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.id())?;
        map.serialize_entry("type", self.type_name())?;
        match self {
            Self::Handshake(handshake) => map.serialize_entry("payload", handshake)?,
            Self::Request { method, params, .. } | Self::Notification { method, params } => map
                .serialize_entry(
                    "payload",
                    &MethodPayloadRef {
                        method,
                        params: params.as_deref(),
                    },
                )?,
            Self::Response { outcome, .. } => {
                let payload = match outcome {
                    Ok(result) => ResponsePayloadRef::Result(result),
                    Err(error) => ResponsePayloadRef::Error(error),
                };
                map.serialize_entry("payload", &payload)?;
            }
            Self::Cancel { reason, .. } => map.serialize_entry(
                "payload",
                &CancelPayloadRef {
                    reason: reason.as_deref(),
                },
            )?,
            Self::Heartbeat { seq } => {
                map.serialize_entry("payload", &HeartbeatPayload { seq: *seq })?;
            }
            Self::Shutdown { reason, grace_ms } => map.serialize_entry(
                "payload",
                &ShutdownPayloadRef {
                    reason: reason.as_deref(),
                    grace_ms: *grace_ms,
                },
            )?,
        }
        map.end()
    }
}

// ---- objects only ----

/// Serde lets a derived struct be read from a JSON array as well as an object; the protocol
/// allows only objects. This adapter hands every request to the inner deserializer as
/// `deserialize_map`, so an array (or any non-object) is a type error.
struct ForceMap<D>(D);

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

/// Reads a `T` that must be written as a JSON object.
struct ObjectOf<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for ObjectOf<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(ForceMap(deserializer))
    }
}

fn object<T>() -> ObjectOf<T> {
    ObjectOf(std::marker::PhantomData)
}

/// `deserialize_with` form of [`ObjectOf`], for an optional nested object.
fn optional_object_field<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(ForceMap(d)).map(Some)
}

/// A present raw value is `Some`, even when it is `null` (plain `Option` would make it `None`).
fn present_raw<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

// ---- deserialization ----

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Handshake,
    Request,
    Response,
    Notification,
    Cancel,
    Heartbeat,
    Shutdown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MethodPayload {
    method: String,
    #[serde(default)]
    params: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponsePayload {
    #[serde(default, deserialize_with = "present_raw")]
    result: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "optional_object_field")]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelPayload {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatPayloadOwned {
    seq: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ShutdownPayload {
    #[serde(default)]
    reason: Option<String>,
    grace_ms: u64,
}

/// A payload read either straight from the stream (when `type` came first) or from a buffered
/// raw value (when `payload` came first).
enum Payload {
    Typed(Message),
    Raw(Box<RawValue>),
}

fn parse_payload<T: DeserializeOwned, E: de::Error>(raw: &RawValue) -> Result<T, E> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    T::deserialize(ForceMap(&mut deserializer))
        .map_err(|err| E::custom(format!("invalid payload: {err}")))
}

/// Builds the message once all three envelope fields are known.
fn assemble<E: de::Error>(kind: Kind, id: Option<u64>, payload: Payload) -> Result<Message, E> {
    let message = match payload {
        Payload::Typed(message) => message,
        Payload::Raw(raw) => match kind {
            Kind::Handshake => Message::Handshake(parse_payload(&raw)?),
            Kind::Request | Kind::Notification => {
                let MethodPayload { method, params } = parse_payload(&raw)?;
                method_message(kind, method, params)
            }
            Kind::Response => response_message(parse_payload(&raw)?)?,
            Kind::Cancel => {
                let CancelPayload { reason } = parse_payload(&raw)?;
                Message::Cancel { id: 0, reason }
            }
            Kind::Heartbeat => {
                let HeartbeatPayloadOwned { seq } = parse_payload(&raw)?;
                Message::Heartbeat { seq }
            }
            Kind::Shutdown => {
                let ShutdownPayload { reason, grace_ms } = parse_payload(&raw)?;
                Message::Shutdown { reason, grace_ms }
            }
        },
    };
    with_id(message, id)
}

fn method_message(kind: Kind, method: String, params: Option<Box<RawValue>>) -> Message {
    if matches!(kind, Kind::Request) {
        Message::Request {
            id: 0,
            method,
            params,
        }
    } else {
        Message::Notification { method, params }
    }
}

fn response_message<E: de::Error>(payload: ResponsePayload) -> Result<Message, E> {
    let outcome = match (payload.result, payload.error) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(error),
        (Some(_), Some(_)) => {
            return Err(E::custom("a response has `result` or `error`, not both"));
        }
        (None, None) => return Err(E::custom("a response needs `result` or `error`")),
    };
    Ok(Message::Response { id: 0, outcome })
}

/// Applies the per-type id rules and the payload checks serde cannot express.
fn with_id<E: de::Error>(mut message: Message, id: Option<u64>) -> Result<Message, E> {
    let name = message.type_name();
    match (&mut message, id) {
        (
            Message::Request { id: slot, .. }
            | Message::Response { id: slot, .. }
            | Message::Cancel { id: slot, .. },
            Some(id),
        ) => {
            if id > MAX_REQUEST_ID {
                return Err(E::custom(format!(
                    "id {id} is above the maximum {MAX_REQUEST_ID}"
                )));
            }
            *slot = id;
        }
        (Message::Request { .. } | Message::Response { .. } | Message::Cancel { .. }, None) => {
            return Err(E::custom(format!("a {name} needs an integer id")));
        }
        (_, Some(_)) => return Err(E::custom(format!("a {name} must have a null id"))),
        (_, None) => {}
    }
    match &message {
        Message::Request { method, .. } | Message::Notification { method, .. }
            if method.is_empty() =>
        {
            Err(E::custom("method must not be empty"))
        }
        Message::Response {
            outcome: Err(error),
            ..
        } if error.code.is_empty() => Err(E::custom("error code must not be empty")),
        Message::Heartbeat { seq: n } | Message::Shutdown { grace_ms: n, .. }
            if *n > MAX_REQUEST_ID =>
        {
            Err(E::custom(format!(
                "{n} is above the protocol's integer limit {MAX_REQUEST_ID}"
            )))
        }
        _ => Ok(message),
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object {\"id\", \"type\", \"payload\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut id: Option<Option<u64>> = None;
        let mut kind: Option<Kind> = None;
        let mut payload: Option<Payload> = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "id" => {
                    if id.is_some() {
                        return Err(de::Error::duplicate_field("id"));
                    }
                    id = Some(map.next_value()?);
                }
                "type" => {
                    if kind.is_some() {
                        return Err(de::Error::duplicate_field("type"));
                    }
                    kind = Some(map.next_value()?);
                }
                "payload" => {
                    if payload.is_some() {
                        return Err(de::Error::duplicate_field("payload"));
                    }
                    payload = Some(match kind {
                        Some(kind) => Payload::Typed(next_typed_payload(&mut map, kind)?),
                        None => Payload::Raw(map.next_value()?),
                    });
                }
                other => {
                    map.next_value::<IgnoredAny>()?;
                    return Err(de::Error::unknown_field(other, &["id", "type", "payload"]));
                }
            }
        }
        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        let kind = kind.ok_or_else(|| de::Error::missing_field("type"))?;
        let payload = payload.ok_or_else(|| de::Error::missing_field("payload"))?;
        assemble(kind, id, payload)
    }
}

fn next_typed_payload<'de, A: MapAccess<'de>>(
    map: &mut A,
    kind: Kind,
) -> Result<Message, A::Error> {
    Ok(match kind {
        Kind::Handshake => Message::Handshake(map.next_value_seed(object())?),
        Kind::Request | Kind::Notification => {
            let MethodPayload { method, params } = map.next_value_seed(object())?;
            method_message(kind, method, params)
        }
        Kind::Response => response_message(map.next_value_seed(object())?)?,
        Kind::Cancel => {
            let CancelPayload { reason } = map.next_value_seed(object())?;
            Message::Cancel { id: 0, reason }
        }
        Kind::Heartbeat => {
            let HeartbeatPayloadOwned { seq } = map.next_value_seed(object())?;
            Message::Heartbeat { seq }
        }
        Kind::Shutdown => {
            let ShutdownPayload { reason, grace_ms } = map.next_value_seed(object())?;
            Message::Shutdown { reason, grace_ms }
        }
    })
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Message, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn request_round_trips_with_params_untouched() {
        let json =
            r#"{"id":7,"type":"request","payload":{"method":"m","params":{"b": [1, 2.50]}}}"#;
        let message = parse(json).unwrap();
        let Message::Request { id, method, params } = &message else {
            panic!("{message:?}")
        };
        assert_eq!((*id, method.as_str()), (7, "m"));
        // Raw params keep their exact text, whitespace and number formatting included.
        assert_eq!(params.as_ref().unwrap().get(), r#"{"b": [1, 2.50]}"#);
        let again = parse(&serde_json::to_string(&message).unwrap()).unwrap();
        assert_eq!(again, message);
    }

    #[test]
    fn payload_before_type_is_accepted() {
        let json = r#"{"payload":{"seq":3},"type":"heartbeat","id":null}"#;
        assert_eq!(parse(json).unwrap(), Message::Heartbeat { seq: 3 });
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
            r#"{"id":1,"type":"request","payload":{"method":""}}"#,
            r#"{"id":null,"type":"shutdown","payload":{"graceMs":1,"extra":true}}"#,
            r"[1,2,3]",
        ];
        for json in table {
            assert!(parse(json).is_err(), "accepted {json}");
        }
    }

    #[test]
    fn handshake_secrets_never_show_in_debug_output() {
        let mut secrets = HandshakeSecrets::default();
        secrets.insert("MODEL_API_KEY", "sk-very-secret");
        let config = HostConfig {
            extension_path: "/x".into(),
            heartbeat_interval_ms: 1,
            shutdown_grace_ms: 1,
            storage_path: None,
            secrets: Some(secrets),
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("MODEL_API_KEY") && !shown.contains("sk-very-secret"),
            "{shown}"
        );
        // Positive control: the wire form carries the value, since delivering it is the point.
        assert!(
            serde_json::to_string(&config)
                .unwrap()
                .contains("sk-very-secret")
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
            assert_eq!(parse(&json).unwrap(), message, "{json}");
        }
    }
}
