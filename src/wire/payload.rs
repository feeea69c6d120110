//! The payload of each message type, defined once and used both ways: with borrowed parts
//! (`&str`, `&RawValue`) to serialize a [`Message`](super::Message) without copying it, with owned
//! parts to deserialize one. The envelope `id` is not part of any payload.

use serde::{Deserialize, Serialize};

use super::de::{object_field, present};

/// `request` and `notification`: what to run, and its arguments as raw JSON.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallPayload<S, P> {
    pub(super) method: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) params: Option<P>,
}

/// `response`: exactly one of `result` (any JSON, `null` included) and `error`.
#[derive(Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "R: Deserialize<'de>, E: Deserialize<'de>")
)]
pub(super) struct ResponsePayload<R, E> {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub(super) result: Option<R>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "object_field"
    )]
    pub(super) error: Option<E>,
}

impl<R, E> ResponsePayload<R, E> {
    pub(super) fn from_outcome(outcome: Result<R, E>) -> Self {
        match outcome {
            Ok(result) => Self {
                result: Some(result),
                error: None,
            },
            Err(error) => Self {
                result: None,
                error: Some(error),
            },
        }
    }

    pub(super) fn into_outcome<Er: serde::de::Error>(self) -> Result<Result<R, E>, Er> {
        match (self.result, self.error) {
            (Some(result), None) => Ok(Ok(result)),
            (None, Some(error)) => Ok(Err(error)),
            (Some(_), Some(_)) => Err(Er::custom("a response has `result` or `error`, not both")),
            (None, None) => Err(Er::custom("a response needs `result` or `error`")),
        }
    }
}

/// `cancel`: why, for logs.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelPayload<S> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<S>,
}

/// `heartbeat`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeartbeatPayload {
    pub(super) seq: u64,
}

/// `shutdown`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ShutdownPayload<S> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) reason: Option<S>,
    pub(super) grace_ms: u64,
}
