//! [`Secret`]: a secret value that is hard to leak by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroize;

/// A secret value (extension secrets are UTF-8 text).
///
/// Its bytes are overwritten when it is dropped, its `Debug` prints `Secret(<redacted>)`, it has
/// no `Display` and no `Serialize`, and reading it takes an explicit
/// [`expose_secret`](Self::expose_secret). Copies made elsewhere (by the caller, by serde while
/// decoding a request, inside libdbus or the kernel) are out of its reach: it keeps the
/// supervisor's own copies short-lived, it does not make memory secret.
///
/// It can be deserialized from a JSON string, so a request's parameters can hold one directly.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`, taking ownership of its buffer (no copy is made).
    #[must_use]
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// Wraps UTF-8 bytes without copying them.
    ///
    /// # Errors
    /// [`NotUtf8`] if `bytes` is not UTF-8; the bytes are zeroized before returning.
    pub fn from_utf8(bytes: Vec<u8>) -> Result<Self, NotUtf8> {
        match String::from_utf8(bytes) {
            Ok(value) => Ok(Self(value)),
            Err(error) => {
                let mut bytes = error.into_bytes();
                bytes.zeroize();
                Err(NotUtf8)
            }
        }
    }

    /// The value. Named so that every place that reads a secret is easy to find.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is the empty string.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Zeroes the whole allocation, spare capacity included.
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl TryFrom<Vec<u8>> for Secret {
    type Error = NotUtf8;

    fn try_from(bytes: Vec<u8>) -> Result<Self, NotUtf8> {
        Self::from_utf8(bytes)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// The bytes given for a [`Secret`] were not UTF-8 (they are not repeated here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a secret must be UTF-8 text")]
pub struct NotUtf8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_the_value_is_explicit() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(
            format!("{:?}", Some(secret.clone())),
            "Some(Secret(<redacted>))"
        );
        assert_eq!(secret.expose_secret(), "hunter2");
        assert_eq!(secret.len(), 7);
        assert!(!secret.is_empty());
    }

    #[test]
    fn bytes_must_be_utf8_and_the_error_holds_no_value() {
        assert_eq!(
            Secret::try_from(b"ok".to_vec()).unwrap().expose_secret(),
            "ok"
        );
        let error = Secret::try_from(vec![b's', 0xff, b'x']).unwrap_err();
        assert_eq!(error.to_string(), "a secret must be UTF-8 text");
        assert_eq!(format!("{error:?}"), "NotUtf8");
    }

    #[test]
    fn deserializes_from_a_json_string() {
        #[derive(Deserialize)]
        struct Params {
            value: Secret,
        }
        let params: Params = serde_json::from_str(r#"{"value":"s3cret"}"#).unwrap();
        assert_eq!(params.value.expose_secret(), "s3cret");
    }
}
