//! Why a conversation or one exchange in it failed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::{EncodeError, ErrorCode, ErrorObject, FrameError};

/// Why a connection ended.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed its end.
    #[error("peer closed the connection")]
    Eof,
    /// This side called [`Peer::close`](super::Peer::close) or dropped every handle.
    #[error("closed by this side")]
    Local,
    /// The byte stream from the peer broke (an oversize or cut frame).
    #[error("protocol error")]
    Frame(#[source] FrameError),
    /// Reading the socket failed.
    #[error("reading from the peer failed")]
    Read(#[source] Arc<io::Error>),
    /// Writing the socket failed.
    #[error("writing to the peer failed")]
    Write(#[source] Arc<io::Error>),
    /// The peer sent more malformed frames than [`PeerConfig::max_bad_frames`](super::PeerConfig::max_bad_frames).
    #[error("peer sent {count} malformed frames")]
    TooManyBadFrames {
        /// How many it sent.
        count: u32,
    },
    /// The peer read nothing for this long while our frames waited for it.
    #[error("peer read nothing for {} ms while frames waited for it", after.as_millis())]
    Stalled {
        /// The stall timeout that passed.
        after: Duration,
    },
}

/// How far a request had got when it was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestStage {
    /// Waiting for room in the outbound queue: the peer never saw the request, so it is sent no
    /// cancel.
    Queueing,
    /// Queued for the peer and waiting for its answer: the peer is sent a cancel.
    AwaitingAnswer,
}

/// Why a request sent with [`Peer::request`](super::Peer::request) produced no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The peer answered with an error.
    #[error("{0}")]
    Remote(ErrorObject),
    /// No answer arrived before the deadline.
    #[error("request `{method}` timed out after {after:?}")]
    Timeout {
        /// The method that timed out.
        method: String,
        /// The deadline that passed.
        after: Duration,
        /// Where the request was when the deadline passed.
        stage: RequestStage,
    },
    /// The caller cancelled the request.
    #[error("request `{method}` was cancelled")]
    Cancelled {
        /// The cancelled method.
        method: String,
        /// Where the request was when it was cancelled.
        stage: RequestStage,
    },
    /// The connection closed before an answer arrived.
    #[error("connection closed before an answer arrived")]
    Closed {
        /// Why it closed.
        #[source]
        reason: CloseReason,
    },
    /// The request could not be encoded (too large, or not representable as JSON); nothing was
    /// sent.
    #[error("request could not be encoded")]
    Encode(#[from] EncodeError),
}

impl RequestError {
    /// The error as a wire error object, for forwarding to another peer: the peer's own error
    /// as it came, anything else under the code that describes it.
    #[must_use]
    pub fn to_error_object(&self) -> ErrorObject {
        let code = match self {
            Self::Remote(error) => return error.clone(),
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::Cancelled { .. } => ErrorCode::Cancelled,
            Self::Closed { .. } => ErrorCode::NotRunning,
            Self::Encode(_) => ErrorCode::InvalidParams,
        };
        ErrorObject::new(code, error_chain(self))
    }
}

/// Why sending a one-way message failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed.
    #[error("connection is closed")]
    Closed {
        /// Why it closed.
        #[source]
        reason: CloseReason,
    },
    /// The message could not be encoded; nothing was sent.
    #[error("message could not be encoded")]
    Encode(#[from] EncodeError),
}

/// An error and its causes on one line, `error: cause: cause`.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_errors_keep_their_causes() {
        let err = RequestError::Closed {
            reason: CloseReason::Frame(FrameError::TooLarge { len: 9, max: 8 }),
        };
        let object = err.to_error_object();
        assert!(object.is(ErrorCode::NotRunning));
        assert_eq!(
            object.message,
            "connection closed before an answer arrived: protocol error: \
             peer announced a 9-byte frame, above the 8-byte limit"
        );
        let remote = RequestError::Remote(ErrorObject::new(ErrorCode::Busy, "later"));
        assert_eq!(
            remote.to_error_object(),
            ErrorObject::new(ErrorCode::Busy, "later")
        );
    }
}
