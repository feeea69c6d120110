//! Where a secret lives in a backend: one name per (extension, key) that no other pair can have.
//!
//! Both parts are escaped and put under a fixed prefix:
//!
//! | backend | name of (`ext`, `key`) |
//! | --- | --- |
//! | Secret Service | attributes `service` = `dscode-exthost:` + `escape(ext)`, `username` = `escape(key)` |
//! | keyutils | a `user` key in the user keyring described `dscode-exthost:` + `escape(ext)` + `:` + `escape(key)` |
//!
//! `escape()` writes `%`, `:`, whitespace and control characters (NUL included) as `%XX` per UTF-8
//! byte and keeps every other character, so it is injective and its output has no `:`, no
//! whitespace and no NUL. Hence a Secret Service item's two attributes, compared whole, name
//! exactly one pair; a keyutils description has exactly two `:` (after the prefix and between
//! the parts), so it splits back into one pair; and an extension's descriptions are exactly those
//! starting with its prefix (`dscode-exthost:` + `escape(ext)` + `:`), since `escape(ext)` cannot
//! contain the `:` that ends it. `("a.b", "c")` and `("a", "b.c")`, `".."`, `/`, NUL, or a
//! prefix of another extension's id cannot reach another extension's secrets.
//!
//! Unescaping accepts only the canonical form (what `escape()` writes), so a name read back from a
//! backend maps to one key, the one whose name it is.

use super::SecretError;

/// The longest extension id accepted, in bytes.
pub const MAX_EXTENSION_ID_BYTES: usize = 256;
/// The longest secret key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// The largest secret value accepted, in bytes of UTF-8.
///
/// Well under the kernel's 32 KiB limit for a keyutils key, so both backends take the same
/// values. An unprivileged user's keys share a kernel quota of 20,000 bytes by default
/// (`/proc/sys/kernel/keys/maxbytes`), which a few large secrets can use up.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// What every name this crate stores in a backend starts with.
pub(crate) const PREFIX: &str = "dscode-exthost:";

/// A validated (extension, key) pair and its names in the backends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    extension: String,
    key: String,
}

impl Slot {
    /// Checks both parts.
    pub(crate) fn new(extension: &str, key: &str) -> Result<Self, SecretError> {
        check_extension(extension)?;
        if key.is_empty() {
            return Err(SecretError::EmptyKey);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(SecretError::KeyTooLong {
                len: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        Ok(Self {
            extension: extension.to_owned(),
            key: key.to_owned(),
        })
    }

    pub(crate) fn extension(&self) -> &str {
        &self.extension
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The Secret Service `service` attribute.
    pub(crate) fn service(&self) -> String {
        service(&self.extension)
    }

    /// The Secret Service `username` attribute.
    pub(crate) fn user(&self) -> String {
        escape(&self.key)
    }

    /// The keyutils key description.
    pub(crate) fn description(&self) -> String {
        let mut description = description_prefix(&self.extension);
        description.push_str(&escape(&self.key));
        description
    }
}

/// Checks an extension id: not empty, at most [`MAX_EXTENSION_ID_BYTES`].
pub(crate) fn check_extension(extension: &str) -> Result<(), SecretError> {
    if extension.is_empty() {
        return Err(SecretError::EmptyExtensionId);
    }
    if extension.len() > MAX_EXTENSION_ID_BYTES {
        return Err(SecretError::ExtensionIdTooLong {
            len: extension.len(),
            max: MAX_EXTENSION_ID_BYTES,
        });
    }
    Ok(())
}

/// Checks a value about to be stored: not empty (a keyutils key cannot be), at most
/// [`MAX_SECRET_BYTES`].
pub(crate) fn check_value(len: usize) -> Result<(), SecretError> {
    if len == 0 {
        return Err(SecretError::EmptyValue);
    }
    if len > MAX_SECRET_BYTES {
        return Err(SecretError::ValueTooLarge {
            len,
            max: MAX_SECRET_BYTES,
        });
    }
    Ok(())
}

/// The Secret Service `service` attribute of every secret of `extension`.
pub(crate) fn service(extension: &str) -> String {
    let mut service = String::from(PREFIX);
    service.push_str(&escape(extension));
    service
}

/// What the keyutils description of every secret of `extension` starts with.
pub(crate) fn description_prefix(extension: &str) -> String {
    let mut prefix = service(extension);
    prefix.push(':');
    prefix
}

/// The key named by a keyutils description, if the description is one of `extension`'s.
pub(crate) fn key_from_description(extension: &str, description: &str) -> Option<String> {
    description
        .strip_prefix(&description_prefix(extension))
        .and_then(unescape)
        .filter(|key| !key.is_empty())
}

/// The key named by a Secret Service `username` attribute.
pub(crate) fn key_from_user(user: &str) -> Option<String> {
    unescape(user).filter(|key| !key.is_empty())
}

fn must_escape(c: char) -> bool {
    c == '%' || c == ':' || c.is_whitespace() || c.is_control()
}

/// `%XX` (upper-case hex) for each UTF-8 byte of the characters [`must_escape`] picks.
pub(crate) fn escape(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if must_escape(c) {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`escape`], for its canonical output only.
pub(crate) fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    let decoded = String::from_utf8(bytes).ok()?;
    (escape(&decoded) == text).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Pairs that a naive `ext + "." + key` or `ext + "/" + key` scheme would confuse.
    fn crafted_pairs() -> Vec<(String, String)> {
        let long = "k".repeat(MAX_KEY_BYTES);
        let long_unicode = "é".repeat(MAX_KEY_BYTES / 2);
        let pairs: &[(&str, &str)] = &[
            ("a.b", "c"),
            ("a", "b.c"),
            ("a", "b:c"),
            ("a:b", "c"),
            ("a:", "b"),
            ("a", ":b"),
            ("a", "%3Ab"),
            ("a%3A", "b"),
            ("a/b", "c"),
            ("a", "b/c"),
            ("a@b", "c"),
            ("a", "b@c"),
            ("a;b", "c"),
            ("a", "b;c"),
            ("a", ".."),
            ("..", "a"),
            ("a", "../b"),
            ("a", "b\0c"),
            ("a\0b", "c"),
            ("a", "b\nc"),
            ("a\n", "b"),
            ("a", " b"),
            ("a ", "b"),
            ("a", "b "),
            ("a", "b\u{2028}"),
            ("a", "%"),
            ("a", "%25"),
            ("a", "é"),
            ("a", "e\u{301}"),
            ("а", "b"), // Cyrillic a
            ("a", "b"),
            ("ab", "c"),
            ("a", "bc"),
            ("dscode-exthost:a", "b"),
        ];
        let mut all: Vec<(String, String)> = pairs
            .iter()
            .map(|(e, k)| ((*e).to_owned(), (*k).to_owned()))
            .collect();
        all.push(("a".into(), long.clone()));
        all.push(("a".into(), format!("{}x", &long[1..])));
        all.push(("a".into(), long_unicode));
        all.push(("e".repeat(MAX_EXTENSION_ID_BYTES), "k".into()));
        all
    }

    #[test]
    fn names_never_collide() {
        let pairs = crafted_pairs();
        let mut services_users = HashSet::new();
        let mut descriptions = HashSet::new();
        for (extension, key) in &pairs {
            let slot = Slot::new(extension, key).unwrap();
            assert!(
                services_users.insert((slot.service(), slot.user())),
                "Secret Service collision for {extension:?}/{key:?}"
            );
            assert!(
                descriptions.insert(slot.description()),
                "keyutils collision for {extension:?}/{key:?}"
            );
        }
        assert_eq!(descriptions.len(), pairs.len());
    }

    #[test]
    fn names_map_back_to_their_own_pair_only() {
        let pairs = crafted_pairs();
        for (extension, key) in &pairs {
            let slot = Slot::new(extension, key).unwrap();
            assert_eq!(key_from_user(&slot.user()).as_deref(), Some(key.as_str()));
            for (other, _) in &pairs {
                let decoded = key_from_description(other, &slot.description());
                if other == extension {
                    assert_eq!(decoded.as_deref(), Some(key.as_str()));
                } else {
                    assert_eq!(decoded, None, "{other:?} claims {extension:?}/{key:?}");
                }
            }
        }
    }

    #[test]
    fn names_have_no_separator_whitespace_or_nul_in_the_parts() {
        for (extension, key) in crafted_pairs() {
            let slot = Slot::new(&extension, &key).unwrap();
            let description = slot.description();
            assert_eq!(description.matches(':').count(), 2, "{description:?}");
            assert!(!description.contains(char::is_whitespace));
            assert!(!description.contains('\0'));
            // A keyutils description may be at most 4095 bytes.
            assert!(description.len() < 4096);
            assert!(!slot.user().contains('\0') && !slot.service().contains('\0'));
        }
    }

    #[test]
    fn escaping_is_readable_and_canonical() {
        let cases = [
            ("plain.key-1_x", "plain.key-1_x"),
            ("a:b", "a%3Ab"),
            ("100%", "100%25"),
            ("a b\n", "a%20b%0A"),
            ("\0", "%00"),
            ("é/..", "é/.."),
            ("\u{2028}", "%E2%80%A8"),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape(raw), escaped);
            assert_eq!(unescape(escaped).as_deref(), Some(raw));
        }
        for bad in ["%", "%4", "%zz", "%41", "%3a", "a:b", "a b", "%FF", "%C3"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let limit_cases: Vec<(String, String, Option<&str>)> = vec![
            (String::new(), "k".into(), Some("the extension id is empty")),
            (
                "e".repeat(MAX_EXTENSION_ID_BYTES + 1),
                "k".into(),
                Some("the extension id is 257 bytes long, more than the limit of 256"),
            ),
            (
                "e".into(),
                String::new(),
                Some("a secret key must not be empty"),
            ),
            (
                "e".into(),
                "k".repeat(10_000),
                Some("the secret key is 10000 bytes long, more than the limit of 1024"),
            ),
            (
                "e".into(),
                "é".repeat(MAX_KEY_BYTES / 2 + 1),
                Some("the secret key is 1026 bytes long, more than the limit of 1024"),
            ),
            ("e".into(), "k".repeat(MAX_KEY_BYTES), None),
        ];
        for (extension, key, expected) in limit_cases {
            let got = Slot::new(&extension, &key).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected);
        }
        assert!(check_value(1).is_ok());
        assert!(check_value(MAX_SECRET_BYTES).is_ok());
        assert!(matches!(check_value(0), Err(SecretError::EmptyValue)));
        assert!(matches!(
            check_value(MAX_SECRET_BYTES + 1),
            Err(SecretError::ValueTooLarge { .. })
        ));
    }
}
