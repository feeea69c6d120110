//! The Secret Service backend: items in the default collection of `org.freedesktop.secrets`.
//!
//! Reads, writes and single deletes go through the `keyring` crate (an item with attributes
//! `service`, `username`, `target` = `default` and `application` = `rust-keyring`; see
//! [`naming`](super::naming) for `service` and `username`). Listing and deleting everything of an
//! extension use the Secret Service's own attribute search (through `dbus-secret-service`, the
//! library `keyring` uses), which matches attribute values whole: searching for an extension's
//! `service` finds every item of that extension and nothing else, in every collection, so
//! nothing can be missed and no index has to be kept consistent with the items.
//!
//! No call made here shows an unlock prompt (the prompt timeout is 0): a locked collection is
//! reported as [`SecretError::Locked`]. Reads and writes made through `keyring` could wait on a
//! prompt if the collection is locked after the storage was opened; the storage's call timeout
//! bounds that wait for the caller.

use std::collections::HashMap;
use std::path::Path;

use dbus_secret_service::{EncryptionType, Item, SecretService};
use keyring::Entry;
use keyring::secret_service::SsCredential;

use super::backend::{Store, from_keyring};
use super::naming::{self, Slot};
use super::{Secret, SecretBackend, SecretError};

const BACKEND: SecretBackend = SecretBackend::SecretService;

pub(crate) struct SecretServiceStore;

impl SecretServiceStore {
    /// Checks that a Secret Service answers on the session bus and that its default collection
    /// (where `keyring` creates items) exists and is unlocked. Reads nothing and writes nothing.
    pub(crate) fn open() -> Result<Self, String> {
        if !session_bus_configured() {
            return Err(
                "there is no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set \
                 and $XDG_RUNTIME_DIR/bus does not exist)"
                    .to_owned(),
            );
        }
        // A Diffie-Hellman session, as reads and writes use, so the session crypto is probed too.
        let service = connect(EncryptionType::Dh)
            .map_err(|error| format!("no Secret Service answers on the session bus ({error})"))?;
        let collection = service
            .get_default_collection()
            .map_err(|error| match error {
                dbus_secret_service::Error::NoResult => "it has no default collection".to_owned(),
                error => {
                    format!("its default collection cannot be read ({error})")
                }
            })?;
        match collection.is_locked() {
            Ok(false) => Ok(Self),
            Ok(true) => Err("its default collection is locked".to_owned()),
            Err(error) => Err(format!("its default collection cannot be read ({error})")),
        }
    }
}

/// Whether libdbus has a session bus to connect to. Checked first so that, with no bus at all,
/// libdbus does not try to autolaunch one.
fn session_bus_configured() -> bool {
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|address| !address.is_empty())
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|dir| !dir.is_empty() && Path::new(&dir).join("bus").exists())
}

/// A connection that never shows an unlock prompt.
fn connect(encryption: EncryptionType) -> Result<SecretService, dbus_secret_service::Error> {
    SecretService::connect_with_max_prompt_timeout(encryption, 0)
}

fn entry(slot: &Slot) -> Result<Entry, SecretError> {
    let credential = SsCredential::new_with_target(Some("default"), &slot.service(), &slot.user())
        .map_err(|error| from_keyring(BACKEND, "name a secret", error))?;
    Ok(Entry::new_with_credential(Box::new(credential)))
}

/// Whether `error` means that the item or collection is locked (and no prompt may be shown).
pub(crate) fn is_locked(error: &dbus_secret_service::Error) -> bool {
    match error {
        dbus_secret_service::Error::Locked | dbus_secret_service::Error::Prompt => true,
        dbus_secret_service::Error::Dbus(error) => {
            error.name() == Some("org.freedesktop.Secret.Error.IsLocked")
        }
        _ => false,
    }
}

fn failed(operation: &'static str, error: dbus_secret_service::Error) -> SecretError {
    if is_locked(&error) {
        return SecretError::Locked { backend: BACKEND };
    }
    SecretError::Backend {
        backend: BACKEND,
        operation,
        source: Box::new(error),
    }
}

/// Every item of `extension`, in any collection, locked or not.
fn items<'a>(
    service: &'a SecretService,
    extension: &str,
    operation: &'static str,
) -> Result<Vec<Item<'a>>, SecretError> {
    let name = naming::service(extension);
    let found = service
        .search_items(HashMap::from([("service", name.as_str())]))
        .map_err(|error| failed(operation, error))?;
    Ok(found.unlocked.into_iter().chain(found.locked).collect())
}

impl Store for SecretServiceStore {
    fn get(&self, slot: &Slot) -> Result<Option<Secret>, SecretError> {
        match entry(slot)?.get_secret() {
            Ok(bytes) => Secret::from_utf8(bytes)
                .map(Some)
                .map_err(|_| SecretError::NotUtf8),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(from_keyring(BACKEND, "read a secret", error)),
        }
    }

    fn set(&self, slot: &Slot, value: &Secret) -> Result<(), SecretError> {
        entry(slot)?
            .set_secret(value.expose_secret().as_bytes())
            .map_err(|error| from_keyring(BACKEND, "store a secret", error))
    }

    fn delete(&self, slot: &Slot) -> Result<bool, SecretError> {
        match entry(slot)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(error) => Err(from_keyring(BACKEND, "delete a secret", error)),
        }
    }

    fn list(&self, extension: &str) -> Result<Vec<String>, SecretError> {
        const OPERATION: &str = "list secrets";
        // Only attributes are read, so no secret crosses this (unencrypted) session.
        let service = connect(EncryptionType::Plain).map_err(|error| failed(OPERATION, error))?;
        let mut keys = Vec::new();
        for item in items(&service, extension, OPERATION)? {
            let attributes = item
                .get_attributes()
                .map_err(|error| failed(OPERATION, error))?;
            if let Some(key) = attributes
                .get("username")
                .and_then(|user| naming::key_from_user(user))
            {
                keys.push(key);
            } else {
                tracing::warn!(
                    extension,
                    "a Secret Service item of this extension has no valid key name; skipped"
                );
            }
        }
        Ok(keys)
    }

    fn delete_all(&self, extension: &str) -> Result<usize, SecretError> {
        const OPERATION: &str = "delete an extension's secrets";
        let service = connect(EncryptionType::Plain).map_err(|error| failed(OPERATION, error))?;
        let mut deleted = 0;
        for item in items(&service, extension, OPERATION)? {
            item.delete().map_err(|error| failed(OPERATION, error))?;
            deleted += 1;
        }
        let left = items(&service, extension, OPERATION)?.len();
        if left > 0 {
            return Err(SecretError::Backend {
                backend: BACKEND,
                operation: OPERATION,
                source: format!("{left} items are still there after deleting them").into(),
            });
        }
        Ok(deleted)
    }
}
