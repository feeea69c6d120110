//! [`SecretBackend`]: which store holds the secrets, and the blocking interface each one offers.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use zeroize::Zeroize;

use super::naming::Slot;
use super::{Secret, SecretError, keyutils, memory, secret_service};

/// Where secrets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretBackend {
    /// The desktop's Secret Service (`org.freedesktop.secrets` on the D-Bus session bus:
    /// gnome-keyring, `KeePassXC`, `KWallet`), in its default collection. Encrypted on disk by the
    /// service; survives reboots.
    SecretService,
    /// The Linux kernel's key store (keyutils), in the user keyring (`@u`), which every process
    /// of the user shares. Kept in kernel memory only: lost at reboot.
    Keyutils,
    /// A map in this process's memory, lost when the process exits. For tests and demos only:
    /// [`SecretStorage::detect`](super::SecretStorage::detect) never chooses it.
    Memory,
}

impl SecretBackend {
    /// The secure backends, in the order [`SecretStorage::detect`](super::SecretStorage::detect)
    /// tries them.
    pub const SECURE: [Self; 2] = [Self::SecretService, Self::Keyutils];

    /// A short machine name: `secret-service`, `keyutils` or `memory` (what [`FromStr`] reads).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::SecretService => "secret-service",
            Self::Keyutils => "keyutils",
            Self::Memory => "memory",
        }
    }

    /// How long what it holds lasts, for `doctor` and `status`.
    #[must_use]
    pub fn persistence(self) -> &'static str {
        match self {
            Self::SecretService => "encrypted on disk by the Secret Service",
            Self::Keyutils => "in kernel memory until reboot",
            Self::Memory => "in this process's memory until it exits (not for real use)",
        }
    }

    /// What to do to make it usable.
    #[must_use]
    pub fn how_to_enable(self) -> &'static str {
        match self {
            Self::SecretService => {
                "start a Secret Service such as gnome-keyring (`apt-get install gnome-keyring`) \
                 in a D-Bus session and unlock its default collection"
            }
            Self::Keyutils => {
                "make the kernel keyring available: the `keyctl` system call must not be blocked \
                 (a container's seccomp profile may block it), `/proc/keys` must be readable, and \
                 the user keyring must be linked to the session keyring (`keyctl link @u @s`)"
            }
            Self::Memory => "it is always usable",
        }
    }

    /// Checks that this backend works here, with real calls: for the Secret Service, a session
    /// with `org.freedesktop.secrets` and an unlocked default collection; for keyutils, a probe
    /// key written to the user keyring, found, read back, listed in `/proc/keys` and removed.
    ///
    /// # Errors
    /// [`SecretError::Unavailable`] saying why not.
    pub async fn probe(self) -> Result<(), SecretError> {
        open(self).await.map(drop)
    }
}

impl fmt::Display for SecretBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretService => "Secret Service",
            Self::Keyutils => "kernel keyring (keyutils)",
            Self::Memory => "in-memory secret store",
        })
    }
}

/// A name that is not a [`SecretBackend`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown secret backend {0:?}: expected `secret-service`, `keyutils` or `memory`")]
pub struct UnknownBackend(pub String);

impl FromStr for SecretBackend {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, UnknownBackend> {
        [Self::SecretService, Self::Keyutils, Self::Memory]
            .into_iter()
            .find(|backend| backend.name() == name)
            .ok_or_else(|| UnknownBackend(name.to_owned()))
    }
}

/// A backend that [`SecretStorage::detect`](super::SecretStorage::detect) passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedBackend {
    /// The backend.
    pub backend: SecretBackend,
    /// Why it was not usable.
    pub reason: String,
}

/// The blocking operations of a backend; the storage runs them on blocking threads.
pub(crate) trait Store: Send + Sync + 'static {
    /// The value of `slot`, if one is stored.
    fn get(&self, slot: &Slot) -> Result<Option<Secret>, SecretError>;
    /// Stores `value` at `slot`, replacing any value there.
    fn set(&self, slot: &Slot, value: &Secret) -> Result<(), SecretError>;
    /// Removes `slot`'s value; whether there was one.
    fn delete(&self, slot: &Slot) -> Result<bool, SecretError>;
    /// The keys `extension` has values for, in any order.
    fn list(&self, extension: &str) -> Result<Vec<String>, SecretError>;
    /// Removes every value of `extension` from the backend and checks that none is left; how
    /// many were removed.
    fn delete_all(&self, extension: &str) -> Result<usize, SecretError>;
}

/// Opens `backend` after checking that it works (on a blocking thread).
pub(crate) async fn open(backend: SecretBackend) -> Result<Arc<dyn Store>, SecretError> {
    let opened = tokio::task::spawn_blocking(move || open_blocking(backend))
        .await
        .map_err(SecretError::from)?;
    opened.map_err(|reason| SecretError::Unavailable { backend, reason })
}

fn open_blocking(backend: SecretBackend) -> Result<Arc<dyn Store>, String> {
    Ok(match backend {
        SecretBackend::SecretService => Arc::new(secret_service::SecretServiceStore::open()?),
        SecretBackend::Keyutils => Arc::new(keyutils::KeyutilsStore::open()?),
        SecretBackend::Memory => Arc::new(memory::MemoryStore::default()),
    })
}

/// Turns a `keyring` error into ours. The value-carrying variant (`BadEncoding`) is zeroized and
/// dropped, never kept as a source.
pub(crate) fn from_keyring(
    backend: SecretBackend,
    operation: &'static str,
    error: keyring::Error,
) -> SecretError {
    let other = |source| SecretError::Backend {
        backend,
        operation,
        source,
    };
    match error {
        keyring::Error::BadEncoding(mut bytes) => {
            bytes.zeroize();
            SecretError::NotUtf8
        }
        keyring::Error::NoStorageAccess(source) | keyring::Error::PlatformFailure(source) => {
            if source
                .downcast_ref::<dbus_secret_service::Error>()
                .is_some_and(secret_service::is_locked)
            {
                return SecretError::Locked { backend };
            }
            if source.downcast_ref::<linux_keyutils::KeyError>()
                == Some(&linux_keyutils::KeyError::QuotaExceeded)
            {
                return SecretError::QuotaExceeded;
            }
            other(source)
        }
        keyring::Error::Ambiguous(items) => other(
            format!(
                "{} items match this key; remove the extra ones",
                items.len()
            )
            .into(),
        ),
        keyring::Error::TooLong(attribute, limit) => {
            other(format!("its {attribute} is longer than the limit of {limit}").into())
        }
        keyring::Error::Invalid(attribute, reason) => {
            other(format!("its {attribute} is invalid: {reason}").into())
        }
        keyring::Error::NoEntry => other("no such entry".into()),
        // `keyring::Error` is non-exhaustive; its Display never holds a value (only
        // BadEncoding carries one, handled above).
        error => other(error.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for backend in [
            SecretBackend::SecretService,
            SecretBackend::Keyutils,
            SecretBackend::Memory,
        ] {
            assert_eq!(backend.name().parse::<SecretBackend>().unwrap(), backend);
        }
        assert_eq!(
            "plaintext"
                .parse::<SecretBackend>()
                .unwrap_err()
                .to_string(),
            "unknown secret backend \"plaintext\": expected `secret-service`, `keyutils` or `memory`"
        );
        assert!(!SecretBackend::SECURE.contains(&SecretBackend::Memory));
    }

    #[test]
    fn a_badly_encoded_value_is_not_kept_in_the_error() {
        let error = from_keyring(
            SecretBackend::Keyutils,
            "read a secret",
            keyring::Error::BadEncoding(b"\xffsecret".to_vec()),
        );
        assert!(matches!(error, SecretError::NotUtf8));
        assert!(!format!("{error:?}").contains("secret\""));
    }

    #[test]
    fn quota_and_lock_errors_say_what_to_do() {
        let quota = from_keyring(
            SecretBackend::Keyutils,
            "store a secret",
            keyring::Error::PlatformFailure(Box::new(linux_keyutils::KeyError::QuotaExceeded)),
        );
        assert!(matches!(quota, SecretError::QuotaExceeded));
        assert!(quota.to_string().contains("maxbytes"));
        let locked = from_keyring(
            SecretBackend::SecretService,
            "read a secret",
            keyring::Error::NoStorageAccess(Box::new(dbus_secret_service::Error::Locked)),
        );
        assert!(matches!(locked, SecretError::Locked { .. }));
        assert!(locked.to_string().contains("unlock"));
    }
}
