//! The kernel keyring backend: `user` keys in the user keyring (`@u`).
//!
//! The user keyring, not the session keyring that `keyring` uses by default, because every
//! process of the user shares it: the supervisor, a later run of it, and `dscode-exthost secret`
//! from another terminal all see the same secrets, until reboot. Keys are created with the
//! kernel's default permissions (all rights for a possessor, only "view" for other processes of
//! the user), so reading one needs the user keyring to be reachable from the process's session
//! keyring, as it is in a login session; opening the backend checks that with a real round trip.
//!
//! Reads and writes go through the `keyring` crate, by description (see
//! [`naming`](super::naming)); deletes unlink the key (see `KeyutilsStore::remove` for why
//! `keyring`'s delete is not used). Listing an extension's keys has to enumerate the keyring, and
//! `linux-keyutils` cannot be used for that: it describes every key it lists into a 512-byte
//! buffer and panics on a longer description, which any program of the user may create. So the
//! keys are found in `/proc/keys` (the kernel's list of the keys this process may view, with
//! their full descriptions), and each candidate is confirmed by searching the user keyring for
//! its description and comparing serial numbers: a line forged by a description with a newline in
//! it, or a key elsewhere with the same description, is not confirmed and not touched.

use std::fs;

use keyring::Entry;
use keyring::keyutils::KeyutilsCredential;
use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier};

use super::backend::{Store, from_keyring};
use super::naming::{self, Slot};
use super::{Secret, SecretBackend, SecretError};

const BACKEND: SecretBackend = SecretBackend::Keyutils;
const PROC_KEYS: &str = "/proc/keys";

pub(crate) struct KeyutilsStore {
    ring: KeyRing,
}

impl KeyutilsStore {
    /// Finds the user keyring and checks, with a probe key, that a key stored there can be
    /// found, read back, seen in `/proc/keys`, and removed.
    pub(crate) fn open() -> Result<Self, String> {
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, false)
            .map_err(|error| format!("the user keyring cannot be opened ({})", explain(error)))?;
        let store = Self { ring };
        let description = format!(
            "dscode-exthost-probe:{}:{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos())
        );
        let key = ring.add_key(&description, b"probe").map_err(|error| {
            format!(
                "a key cannot be added to the user keyring ({})",
                explain(error)
            )
        })?;
        let checked = store.check_probe(key, &description);
        let removed = store.remove(key);
        checked?;
        removed.map_err(|error| format!("a probe key cannot be removed ({})", explain(error)))?;
        Ok(store)
    }

    fn check_probe(&self, key: Key, description: &str) -> Result<(), String> {
        match self.ring.search(description) {
            Ok(found) if found == key => {}
            Ok(_) | Err(_) => {
                return Err(
                    "a key added to the user keyring cannot be found again: the user \
                     keyring is not reachable from this process's session keyring \
                     (`keyctl link @u @s` links it)"
                        .to_owned(),
                );
            }
        }
        match key.read_to_vec() {
            Ok(payload) if payload == b"probe" => {}
            Ok(_) => return Err("a probe key read back wrong".to_owned()),
            Err(error) => {
                return Err(format!(
                    "a key in the user keyring cannot be read back ({})",
                    explain(error)
                ));
            }
        }
        let listed = read_proc_keys()?;
        if !listed
            .iter()
            .any(|line| line.id == key.get_id().0 && line.description == description)
        {
            return Err(format!(
                "{PROC_KEYS} does not list this process's keys, so an extension's secrets \
                 could not be listed or deleted"
            ));
        }
        Ok(())
    }

    /// Removes `key` from the user keyring; whether it was still there.
    ///
    /// By unlinking it, which destroys it (nothing else links it), rather than as `keyring`
    /// deletes, by invalidating it: a key that the kernel's garbage collector unlinks leaves 4
    /// bytes of the keyring's quota charged for good (seen on Linux 6.x), and an unprivileged
    /// user's whole quota is 20,000 bytes. Invalidating first and unlinking next races with the
    /// collector; invalidating after unlinking is refused, the key being no longer possessed.
    fn remove(&self, key: Key) -> Result<bool, KeyError> {
        match self.ring.unlink_key(key) {
            Ok(()) => Ok(true),
            // ENOENT: found deeper in the user keyring's tree, not linked in it directly.
            Err(KeyError::MissingFileOrDirectory) => match key.invalidate() {
                Ok(()) => Ok(true),
                Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                    Ok(false)
                }
                Err(error) => Err(error),
            },
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    fn entry(&self, slot: &Slot) -> Entry {
        Entry::new_with_credential(Box::new(KeyutilsCredential {
            session: self.ring,
            persistent: None,
            description: slot.description(),
        }))
    }

    /// `extension`'s keys in the user keyring, confirmed as described in the module docs.
    fn keys_of(&self, extension: &str) -> Result<Vec<(Key, String)>, SecretError> {
        let lines = read_proc_keys().map_err(|reason| SecretError::Backend {
            backend: BACKEND,
            operation: "list secrets",
            source: reason.into(),
        })?;
        let mut found = Vec::new();
        for line in lines {
            if line.key_type != "user" || !line.alive {
                continue;
            }
            let Some(key) = naming::key_from_description(extension, &line.description) else {
                continue;
            };
            match self.ring.search(&line.description) {
                Ok(confirmed) if confirmed.get_id().0 == line.id => found.push((confirmed, key)),
                Ok(_)
                | Err(
                    KeyError::KeyDoesNotExist
                    | KeyError::KeyRevoked
                    | KeyError::KeyExpired
                    | KeyError::AccessDenied,
                ) => {}
                Err(error) => return Err(key_error("list secrets", error)),
            }
        }
        Ok(found)
    }
}

impl Store for KeyutilsStore {
    fn get(&self, slot: &Slot) -> Result<Option<Secret>, SecretError> {
        match self.entry(slot).get_secret() {
            Ok(bytes) => Secret::from_utf8(bytes)
                .map(Some)
                .map_err(|_| SecretError::NotUtf8),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(from_keyring(BACKEND, "read a secret", error)),
        }
    }

    fn set(&self, slot: &Slot, value: &Secret) -> Result<(), SecretError> {
        let entry = self.entry(slot);
        // The kernel gives back the quota of deleted keys only once its garbage collector has
        // destroyed them, some milliseconds later; right after deleting secrets, a write near
        // the quota is refused for a moment. Retried for up to a quarter of a second.
        let mut retries = 0;
        loop {
            match entry.set_secret(value.expose_secret().as_bytes()) {
                Ok(()) => return Ok(()),
                Err(error) => match from_keyring(BACKEND, "store a secret", error) {
                    SecretError::QuotaExceeded if retries < 10 => retries += 1,
                    error => return Err(error),
                },
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    fn delete(&self, slot: &Slot) -> Result<bool, SecretError> {
        match self.ring.search(&slot.description()) {
            Ok(key) => self
                .remove(key)
                .map_err(|error| key_error("delete a secret", error)),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => {
                Ok(false)
            }
            Err(error) => Err(key_error("delete a secret", error)),
        }
    }

    fn list(&self, extension: &str) -> Result<Vec<String>, SecretError> {
        let mut keys: Vec<String> = self
            .keys_of(extension)?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn delete_all(&self, extension: &str) -> Result<usize, SecretError> {
        const OPERATION: &str = "delete an extension's secrets";
        // A few rounds: removing a key can uncover another with the same description deeper in
        // the user keyring's tree (put there by something else), which is removed too.
        let mut deleted = 0;
        for _ in 0..8 {
            let found = self.keys_of(extension)?;
            if found.is_empty() {
                return Ok(deleted);
            }
            for (key, _) in found {
                if self
                    .remove(key)
                    .map_err(|error| key_error(OPERATION, error))?
                {
                    deleted += 1;
                }
            }
        }
        Err(SecretError::Backend {
            backend: BACKEND,
            operation: OPERATION,
            source: "keys of the extension keep reappearing in the user keyring".into(),
        })
    }
}

fn key_error(operation: &'static str, error: KeyError) -> SecretError {
    if error == KeyError::QuotaExceeded {
        return SecretError::QuotaExceeded;
    }
    SecretError::Backend {
        backend: BACKEND,
        operation,
        source: explain(error).into(),
    }
}

/// A `KeyError` in words (its `Display` is only the variant's name).
fn explain(error: KeyError) -> String {
    match error {
        KeyError::Unknown(libc::ENOSYS) => {
            "the keyctl system call is not available: the kernel has no key support, or a \
             seccomp filter blocks it"
                .to_owned()
        }
        KeyError::PermissionDenied => {
            "the keyctl system call was refused (EPERM): a container's seccomp profile may block \
             it"
            .to_owned()
        }
        KeyError::AccessDenied => "access denied (EACCES)".to_owned(),
        KeyError::QuotaExceeded => "this user's key quota is used up (EDQUOT)".to_owned(),
        KeyError::KeyDoesNotExist => "no such key (ENOKEY)".to_owned(),
        KeyError::KeyRevoked => "the key was revoked (EKEYREVOKED)".to_owned(),
        KeyError::KeyExpired => "the key expired (EKEYEXPIRED)".to_owned(),
        KeyError::InvalidArguments => "invalid arguments (EINVAL)".to_owned(),
        KeyError::Unknown(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        other => format!("{other:?}"),
    }
}

/// One line of `/proc/keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProcKey {
    id: i32,
    /// Instantiated, and neither revoked, dead, negative nor invalidated.
    alive: bool,
    key_type: String,
    description: String,
}

fn read_proc_keys() -> Result<Vec<ProcKey>, String> {
    let bytes = fs::read(PROC_KEYS).map_err(|error| format!("{PROC_KEYS}: {error}"))?;
    Ok(bytes
        .split(|&byte| byte == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(parse_proc_keys_line)
        .collect())
}

/// Parses `ID FLAGS USAGE TIMEOUT PERM UID GID TYPE DESCRIPTION[: SUMMARY]` (the kernel's
/// `proc_keys_show`). Only descriptions without `": "` and without leading spaces come back
/// whole, which every description this crate writes satisfies.
fn parse_proc_keys_line(line: &str) -> Option<ProcKey> {
    let mut rest = line;
    let mut fields = [""; 8];
    for field in &mut fields {
        rest = rest.trim_start_matches(' ');
        let end = rest.find(' ')?;
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let [id, flags, _usage, _timeout, _perm, _uid, _gid, key_type] = fields;
    let id = i32::try_from(u32::from_str_radix(id, 16).ok()?).ok()?;
    let flags = flags.as_bytes();
    let alive = flags.len() == 7
        && flags[0] == b'I'
        && !flags[1..]
            .iter()
            .any(|f| matches!(f, b'R' | b'D' | b'N' | b'i'));
    let rest = rest.trim_start_matches(' ');
    let description = rest
        .split_once(": ")
        .map_or(rest, |(description, _)| description);
    Some(ProcKey {
        id,
        alive,
        key_type: key_type.to_owned(),
        description: description.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_keys_lines_parse() {
        let cases = [
            (
                "0d025729 I--Q---     2 perm 1f3f0000     0 65534 keyring   _uid.0: empty",
                Some((0x0d02_5729, true, "keyring", "_uid.0")),
            ),
            (
                "2a6f1c3e I--Q---     1 perm 3f010000   999   995 user      dscode-exthost:a.b:c%3Ad: 5",
                Some((0x2a6f_1c3e, true, "user", "dscode-exthost:a.b:c%3Ad")),
            ),
            (
                "2a6f1c3e I--Q--i     1 perm 3f010000   999   995 user      dscode-exthost:a:b: 5",
                Some((0x2a6f_1c3e, false, "user", "dscode-exthost:a:b")),
            ),
            (
                "2a6f1c3e IR-Q---     1 perm 3f010000   999   995 user      dscode-exthost:a:b: 5",
                Some((0x2a6f_1c3e, false, "user", "dscode-exthost:a:b")),
            ),
            (
                "7fffffff I--Q---     1   4d 3f010000     0     0 user      é/..:x: 12",
                Some((0x7fff_ffff, true, "user", "é/..:x")),
            ),
            ("garbage", None),
            ("", None),
            ("zzzzzzzz I--Q--- 1 perm 0 0 0 user x: 1", None),
        ];
        for (line, expected) in cases {
            let parsed = parse_proc_keys_line(line);
            let parsed = parsed
                .as_ref()
                .map(|k| (k.id, k.alive, k.key_type.as_str(), k.description.as_str()));
            assert_eq!(parsed, expected, "{line:?}");
        }
    }

    #[test]
    fn errors_are_explained() {
        assert!(explain(KeyError::Unknown(libc::ENOSYS)).contains("seccomp"));
        assert!(explain(KeyError::PermissionDenied).contains("EPERM"));
        assert!(matches!(
            key_error("store a secret", KeyError::QuotaExceeded),
            SecretError::QuotaExceeded
        ));
    }
}
