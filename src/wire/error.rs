//! What can go wrong turning bytes into messages and back.
//!
//! Decoding fails in two tiers. A [`FrameError`] (an oversize length, a stream cut inside a frame)
//! means the byte stream can no longer be trusted and ends the connection. A [`MessageError`] (bad
//! UTF-8, bad JSON, a broken envelope) leaves the stream in sync: the frame is dropped and the
//! connection goes on. Both name their [`DecodeErrorKind`], the vocabulary of the conformance
//! vectors.

use serde::{Deserialize, Serialize};

use super::message::RequestId;
use super::name::variant_name;

/// The conformance-vector name of a decoding failure (`expect` in `proto-schema/vectors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A header announced a frame above the limit.
    FrameTooLarge,
    /// The stream ended inside a header or a body.
    Truncated,
    /// A body is not UTF-8.
    InvalidUtf8,
    /// A body is not JSON.
    InvalidJson,
    /// A body is JSON but breaks the envelope rules.
    InvalidMessage,
}

impl DecodeErrorKind {
    /// The name as the vectors spell it, for example `frame_too_large`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        variant_name(&self)
    }
}

impl std::fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure that leaves the byte stream unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a frame larger than allowed; its body was not read.
    #[error("peer announced a {len}-byte frame, above the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes of it were received)")]
    Truncated {
        /// How many bytes of the incomplete frame had arrived, header included.
        buffered: usize,
    },
}

impl FrameError {
    /// The conformance-vector name of this error.
    #[must_use]
    pub fn kind(&self) -> DecodeErrorKind {
        match self {
            Self::TooLarge { .. } => DecodeErrorKind::FrameTooLarge,
            Self::Truncated { .. } => DecodeErrorKind::Truncated,
        }
    }
}

/// A frame that arrived intact but does not hold a valid message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not UTF-8.
    #[error("frame body is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The body is not JSON.
    #[error("frame body is not JSON")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but breaks the envelope rules.
    #[error("frame body is not a valid message")]
    InvalidMessage {
        /// What is wrong, from the parser.
        #[source]
        source: serde_json::Error,
        /// The request id, when the body is a request whose id could still be read, so the
        /// receiver can answer it with an error instead of leaving the sender waiting.
        request_id: Option<RequestId>,
    },
}

impl MessageError {
    /// The conformance-vector name of this error.
    #[must_use]
    pub fn kind(&self) -> DecodeErrorKind {
        match self {
            Self::InvalidUtf8 { .. } => DecodeErrorKind::InvalidUtf8,
            Self::InvalidJson(_) => DecodeErrorKind::InvalidJson,
            Self::InvalidMessage { .. } => DecodeErrorKind::InvalidMessage,
        }
    }

    /// The id of the request this frame tried to be, if one could be read.
    #[must_use]
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::InvalidMessage { request_id, .. } => *request_id,
            _ => None,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message would exceed the maximum frame size.
    #[error("message is larger than the {max}-byte frame limit")]
    TooLarge {
        /// The configured maximum.
        max: usize,
    },
    /// A value could not be represented as JSON.
    #[error("message could not be serialized")]
    Serialize(#[source] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_spelled_as_the_vectors_spell_them() {
        let index = include_str!("../../proto-schema/vectors/index.json");
        for kind in [
            DecodeErrorKind::FrameTooLarge,
            DecodeErrorKind::Truncated,
            DecodeErrorKind::InvalidUtf8,
            DecodeErrorKind::InvalidJson,
            DecodeErrorKind::InvalidMessage,
        ] {
            let quoted = format!("\"{kind}\"");
            assert!(index.contains(&quoted), "no vector expects {quoted}");
            assert_eq!(
                serde_json::from_str::<DecodeErrorKind>(&quoted).unwrap(),
                kind
            );
        }
    }
}
