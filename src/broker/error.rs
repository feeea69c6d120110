//! [`CallError`]: why a host API call was refused or failed, and the wire error it becomes.
//!
//! Every message reaches an extension author, so each says what was wrong and, where there is
//! something to do, what to do; paths are named as `root:relative`, never as host paths.

use serde_json::value::RawValue;

use super::call::Method;
use crate::paths::{PathError, RootKind};
use crate::permissions::PermissionDenied;
use crate::ratelimit::RateLimited;
use crate::secrets::SecretError;
use crate::wire::{ErrorCode, ErrorObject, to_raw};

/// Why a host API call was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CallError {
    /// The connection belongs to an extension the broker does not serve.
    #[error(
        "extension {extension} is not registered with the broker; register it before starting its host"
    )]
    NotRegistered {
        /// The connection's extension.
        extension: String,
    },
    /// The extension is over its request rate.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// No such method.
    #[error("the host API has no method `{method}`; {}", valid_methods(method))]
    UnknownMethod {
        /// The method as sent.
        method: String,
    },
    /// The params do not have the method's shape.
    #[error("invalid params for `{}`, which takes {}", method.name(), method.takes())]
    Params {
        /// The method.
        method: Method,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
    /// Params that are not a JSON object.
    #[error("params for `{}` must be a JSON object: {}", method.name(), method.takes())]
    NotAnObject {
        /// The method.
        method: Method,
    },
    /// `fs/writeFile` with encoding `base64` and data that is not.
    #[error("`data` is not base64 (send text with encoding \"utf8\")")]
    NotBase64 {
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// `network/fetch` of something that is not an http(s) URL.
    #[error("`{url}` is not an http(s) URL; fetch takes http:// and https:// URLs")]
    NotHttpUrl {
        /// The URL as sent.
        url: String,
    },
    /// `commands/execute` without a command id.
    #[error("`command` is empty; name the command to run, as in \"git.commit\"")]
    EmptyCommand,
    /// `commands/execute` with arguments that are not an array.
    #[error("the arguments of command `{command}` must be a JSON array")]
    ArgsNotArray {
        /// The command.
        command: String,
    },
    /// The permission (or its scope) is not granted, or a deny covers the call.
    #[error(transparent)]
    Denied(#[from] PermissionDenied),
    /// The path was refused or could not be used.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The path lies under a root no grant can name (logs, temp).
    #[error(
        "{root} paths cannot be granted to extensions; use a path in the workspace, the extension's folder or its storage"
    )]
    NotGrantable {
        /// The root.
        root: RootKind,
    },
    /// The path is one of the supervisor's own files.
    #[error(
        "{path} is one of the supervisor's own files (its config, grants or state), which no extension may reach"
    )]
    Private {
        /// The path, as `root:relative`.
        path: String,
    },
    /// A recursive delete of a folder that holds one of the supervisor's own files.
    #[error(
        "{path} holds one of the supervisor's own files, which no extension may delete; delete the rest entry by entry"
    )]
    PrivateInside {
        /// The folder, as `root:relative`.
        path: String,
    },
    /// A recursive delete of a tree too large to check.
    #[error("{path} holds more than {max} entries; delete it in parts")]
    TooManyEntries {
        /// The folder, as `root:relative`.
        path: String,
        /// The limit.
        max: usize,
    },
    /// A file too large to answer in one frame.
    #[error("{path} is larger than {max} bytes; the broker does not read files that large")]
    FileTooLarge {
        /// The file, as `root:relative`.
        path: String,
        /// The limit.
        max: u64,
    },
    /// A file read as text that is not.
    #[error("{path} is not UTF-8 text; read it with encoding \"base64\"")]
    NotUtf8 {
        /// The file, as `root:relative`.
        path: String,
    },
    /// Reading or writing an opened file failed.
    #[error("i/o error on {path}")]
    Io {
        /// The file, as `root:relative`.
        path: String,
        /// The operating system's error (which carries no path).
        #[source]
        source: std::io::Error,
    },
    /// The secret store refused or failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// `secrets/*` without a secret store.
    #[error("this supervisor has no secret storage")]
    NoSecretStorage,
    /// `network/*`, which the broker does not carry yet.
    #[error("network requests are not brokered by this supervisor yet")]
    NetworkUnsupported,
    /// `commands/execute` where the embedder routes no commands.
    #[error(
        "this supervisor does not run other extensions' commands for an extension (its embedder set no command router)"
    )]
    NoCommandRouter,
    /// A file call reached its handler without the checked path the permission layer makes: a
    /// bug in the broker.
    #[error("`{}` reached its handler without a checked path", method.name())]
    Unchecked {
        /// The method.
        method: Method,
    },
    /// The blocking task serving a file call failed.
    #[error("file operation failed")]
    Blocking(#[source] tokio::task::JoinError),
    /// An answer could not be encoded as JSON.
    #[error("the answer could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// The embedder's answer (its [`UiHandler`](super::UiHandler) or
    /// [`CommandRouter`](super::CommandRouter)), passed on as it came.
    #[error(transparent)]
    Remote(ErrorObject),
}

impl CallError {
    /// The wire code (a [`Remote`](Self::Remote) error keeps its own; see
    /// [`into_error_object`](Self::into_error_object)).
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Self::NotRegistered { .. }
            | Self::Denied(_)
            | Self::NotGrantable { .. }
            | Self::Private { .. }
            | Self::PrivateInside { .. } => ErrorCode::PermissionDenied,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::UnknownMethod { .. } => ErrorCode::MethodNotFound,
            Self::Params { .. }
            | Self::NotAnObject { .. }
            | Self::NotBase64 { .. }
            | Self::NotHttpUrl { .. }
            | Self::EmptyCommand
            | Self::ArgsNotArray { .. }
            | Self::TooManyEntries { .. }
            | Self::FileTooLarge { .. }
            | Self::NotUtf8 { .. }
            // The extension's own mistakes (an empty or oversized key or value) are its to fix.
            | Self::Secret(
                SecretError::EmptyKey
                | SecretError::KeyTooLong { .. }
                | SecretError::EmptyValue
                | SecretError::ValueTooLarge { .. }
                | SecretError::NotUtf8,
            ) => ErrorCode::InvalidParams,
            Self::Path(err) => err.code(),
            Self::NoSecretStorage | Self::NetworkUnsupported | Self::NoCommandRouter => {
                ErrorCode::Unsupported
            }
            Self::Io { .. }
            | Self::Secret(_)
            | Self::Unchecked { .. }
            | Self::Blocking(_)
            | Self::Encode(_)
            | Self::Remote(_) => ErrorCode::Internal,
        }
    }

    /// The error as the extension receives it: the code, the message with its causes, and for
    /// refusals the data a client acts on (`permission`, `retryAfterMs`). The embedder's own
    /// errors pass unchanged.
    pub(crate) fn into_error_object(self) -> ErrorObject {
        if let Self::Remote(object) = self {
            return object;
        }
        let data = match &self {
            Self::RateLimited(err) => {
                Some(serde_json::json!({ "retryAfterMs": err.retry_after_ms() }))
            }
            Self::Denied(err) => Some(serde_json::json!({ "permission": err.needed })),
            _ => None,
        };
        let object = ErrorObject::new(self.code(), error_chain(&self));
        match data {
            Some(data) => object
                .with_data(to_raw(&data).expect("a JSON object of strings and numbers encodes")),
            None => object,
        }
    }
}

/// `value` as the raw result of a call.
pub(crate) fn reply<T: serde::Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, CallError> {
    to_raw(value).map_err(CallError::Encode)
}

/// The methods an extension author probably meant: those of the same family, else all.
fn valid_methods(method: &str) -> String {
    let prefix = method.split_once('/').map_or(method, |(prefix, _)| prefix);
    let family: Vec<_> = Method::ALL
        .iter()
        .map(|m| m.name())
        .filter(|name| name.split_once('/').is_some_and(|(p, _)| p == prefix))
        .collect();
    if family.is_empty() {
        let all: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        format!("valid methods are {}", all.join(", "))
    } else {
        format!("the {prefix}/ methods are {}", family.join(", "))
    }
}

/// An error and its causes on one line, `error: cause: cause`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
