//! The structured error a response carries, and the codes this crate puts in it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::name::variant_name;

/// A structured error, as carried in a response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorObject {
    /// A stable machine-readable code such as `MethodNotFound` (see [`ErrorCode`]); receivers
    /// accept codes they do not know.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Extra structured detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// The error codes this crate produces. Each is spelled on the wire as its variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The code as it appears on the wire, for example `MethodNotFound`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        variant_name(&self)
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

/// Raw JSON has no `PartialEq`; it compares by its text.
impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.data.as_deref().map(RawValue::get) == other.data.as_deref().map(RawValue::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_as_protocol_md_lists_them() {
        let protocol = include_str!("../../proto-schema/PROTOCOL.md");
        for code in [
            ErrorCode::MethodNotFound,
            ErrorCode::InvalidParams,
            ErrorCode::InvalidRequest,
            ErrorCode::CommandNotFound,
            ErrorCode::ExtensionError,
            ErrorCode::Cancelled,
            ErrorCode::Timeout,
            ErrorCode::Busy,
            ErrorCode::ShuttingDown,
            ErrorCode::PermissionDenied,
            ErrorCode::RateLimited,
            ErrorCode::InvalidPath,
            ErrorCode::NotFound,
            ErrorCode::NotRunning,
            ErrorCode::Unsupported,
            ErrorCode::Internal,
        ] {
            assert!(protocol.contains(&format!("`{code}`")), "{code}");
            let error = ErrorObject::new(code, "m");
            assert!(error.is(code));
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", error.code)
            );
        }
    }
}
