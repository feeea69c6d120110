//! [`SecretError`]: why a secret operation failed. No message ever contains a secret value.

use std::time::Duration;

use super::SecretBackend;

/// The boxed error of a backend library.
pub type BackendSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to do when no secure backend can be used.
const NO_BACKEND_HINT: &str = "start a Secret Service such as gnome-keyring \
    (`apt-get install gnome-keyring`) in a D-Bus session, or make the kernel keyring available \
    (keyutils: the `keyctl` system call must not be blocked, and `/proc/keys` must be readable)";

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Neither the Secret Service nor the kernel keyring can be used here, and nothing is
    /// stored in plain text instead.
    #[error(
        "no secure secret backend: the Secret Service is not usable ({secret_service}) and the \
         kernel keyring is not usable ({keyutils}); {NO_BACKEND_HINT}"
    )]
    NoSecureBackend {
        /// Why the Secret Service was passed over.
        secret_service: String,
        /// Why the kernel keyring was passed over.
        keyutils: String,
    },
    /// The backend that was asked for cannot be used here.
    #[error("the {backend} is not usable: {reason}; {}", backend.how_to_enable())]
    Unavailable {
        /// The backend.
        backend: SecretBackend,
        /// Why.
        reason: String,
    },
    /// The extension id is empty.
    #[error("the extension id is empty")]
    EmptyExtensionId,
    /// The extension id is longer than [`MAX_EXTENSION_ID_BYTES`](super::MAX_EXTENSION_ID_BYTES).
    #[error("the extension id is {len} bytes long, more than the limit of {max}")]
    ExtensionIdTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The key is empty.
    #[error("a secret key must not be empty")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_BYTES`](super::MAX_KEY_BYTES).
    #[error("the secret key is {len} bytes long, more than the limit of {max}")]
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value to store is empty.
    #[error("an empty secret cannot be stored; delete the key instead")]
    EmptyValue,
    /// The value to store is larger than [`MAX_SECRET_BYTES`](super::MAX_SECRET_BYTES).
    #[error("the secret is {len} bytes long, more than the limit of {max}")]
    ValueTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A stored value is not UTF-8 text (so it was not stored through this crate).
    #[error("a stored secret is not UTF-8 text")]
    NotUtf8,
    /// The Secret Service's collection is locked and no unlock prompt may be shown.
    #[error(
        "the {backend} is locked; unlock it (log in to the desktop session, or start \
         `gnome-keyring-daemon --unlock` with the keyring's password on its standard input)"
    )]
    Locked {
        /// The backend.
        backend: SecretBackend,
    },
    /// The kernel refused a new key: this user's key quota is used up.
    #[error(
        "the kernel keyring quota of this user is used up; remove keys that are no longer \
         needed (`keyctl show @u`), or raise /proc/sys/kernel/keys/maxkeys and maxbytes"
    )]
    QuotaExceeded,
    /// The backend did not answer in time (a Secret Service may be waiting on an unlock prompt).
    /// The call may still complete later.
    #[error(
        "the {backend} did not answer within {timeout:?}; if it is waiting on an unlock prompt, \
         unlock it"
    )]
    Timeout {
        /// The backend.
        backend: SecretBackend,
        /// How long the call was given.
        timeout: Duration,
    },
    /// The backend failed.
    #[error("the {backend} failed to {operation}")]
    Backend {
        /// The backend.
        backend: SecretBackend,
        /// What was being done: `read a secret`, `store a secret`, ...
        operation: &'static str,
        /// The backend library's error.
        #[source]
        source: BackendSource,
    },
    /// The task running the operation panicked or was cancelled (a bug, or a runtime shutting
    /// down); the operation may or may not have happened.
    #[error("the secret storage task {}", if *.panicked { "panicked" } else { "was cancelled" })]
    Internal {
        /// Whether it panicked (else it was cancelled).
        panicked: bool,
    },
}

impl From<tokio::task::JoinError> for SecretError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal {
            panicked: err.is_panic(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_to_find_a_backend_says_how_to_get_one() {
        let error = SecretError::NoSecureBackend {
            secret_service: "there is no D-Bus session bus".into(),
            keyutils: "a key cannot be added to the user keyring (EPERM)".into(),
        };
        let message = error.to_string();
        for part in [
            "no secure secret backend",
            "there is no D-Bus session bus",
            "(EPERM)",
            "`apt-get install gnome-keyring`",
            "keyctl",
        ] {
            assert!(message.contains(part), "{message}");
        }
        let unavailable = SecretError::Unavailable {
            backend: SecretBackend::Keyutils,
            reason: "/proc/keys: not found".into(),
        };
        assert!(unavailable.to_string().contains("keyctl link @u @s"));
    }
}
