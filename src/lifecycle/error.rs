//! What the lifecycle's callers can get back instead of a result.

use super::state::{ExtensionHostState, Reason};
use crate::rpc::RequestError;
use crate::wire::{ErrorCode, ErrorObject};

/// Why `start()` did not reach Running.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The host failed until its restart budget ran out.
    #[error("extension host {id} crashed: {reason}")]
    Crashed {
        /// The extension.
        id: String,
        /// The final reason, with the last failure inside.
        reason: Reason,
    },
    /// A stop was requested before the host came up.
    #[error("extension host {id} was stopped before it started")]
    Stopped {
        /// The extension.
        id: String,
    },
    /// The supervisor is shutting down.
    #[error("extension host {id} is no longer supervised")]
    Gone {
        /// The extension.
        id: String,
    },
}

/// Why a call to a host ([`HostHandle::request`](super::HostHandle::request),
/// [`HostHandle::execute_command`](super::HostHandle::execute_command), ...) produced no result.
///
/// The first variants are found out here, before anything is sent; only
/// [`CallError::Request`] involved the host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The host has no connection to send on: it is not Running (or still handshaking).
    #[error("extension host {id} is {state}")]
    NotRunning {
        /// The extension.
        id: String,
        /// The state it was in.
        state: ExtensionHostState,
    },
    /// No host has this id.
    #[error("no extension host with id {id}")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// A command's arguments were not a JSON array.
    #[error("command arguments must be a JSON array")]
    ArgumentsNotArray,
    /// The request was made and failed: the host answered with an error, or it timed out, was
    /// cancelled, or the connection closed first.
    #[error(transparent)]
    Request(#[from] RequestError),
}

impl CallError {
    /// The error as a wire error object, for forwarding to a control client: the host's own
    /// error as it came, anything else under the code that describes it.
    #[must_use]
    pub fn to_error_object(&self) -> ErrorObject {
        let code = match self {
            Self::Request(err) => return err.to_error_object(),
            Self::NotRunning { .. } => ErrorCode::NotRunning,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::ArgumentsNotArray => ErrorCode::InvalidParams,
        };
        ErrorObject::new(code, self.to_string())
    }

    /// The host's own error, if it answered with one.
    #[must_use]
    pub fn remote(&self) -> Option<&ErrorObject> {
        match self {
            Self::Request(RequestError::Remote(error)) => Some(error),
            _ => None,
        }
    }
}

/// An error and its causes on one line, `error: cause: cause`, for the messages in a
/// [`Reason`].
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
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
    fn local_failures_keep_their_wire_codes() {
        let table = [
            (
                CallError::NotRunning {
                    id: "a.b".into(),
                    state: ExtensionHostState::Restarting,
                },
                ErrorCode::NotRunning,
                "extension host a.b is restarting",
            ),
            (
                CallError::NotFound { id: "x.y".into() },
                ErrorCode::NotFound,
                "no extension host with id x.y",
            ),
            (
                CallError::ArgumentsNotArray,
                ErrorCode::InvalidParams,
                "command arguments must be a JSON array",
            ),
        ];
        for (err, code, message) in table {
            assert!(err.remote().is_none(), "{err}");
            assert_eq!(err.to_error_object(), ErrorObject::new(code, message));
        }
        let remote = CallError::from(RequestError::Remote(ErrorObject::new(
            ErrorCode::CommandNotFound,
            "nope",
        )));
        assert!(
            remote
                .remote()
                .is_some_and(|e| e.is(ErrorCode::CommandNotFound))
        );
        assert_eq!(remote.to_string(), "CommandNotFound: nope");
    }
}
