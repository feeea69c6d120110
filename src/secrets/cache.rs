//! The read cache: values found in the backend, each kept until its deadline. Pure: the caller
//! passes the time, so the expiry rules are tested without a clock.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::Secret;

struct Cached {
    value: Secret,
    expires: Instant,
}

/// Values by extension, then key. Only values that exist are kept: a key that is not set is
/// looked up in the backend every time, so a secret stored by another process (the CLI) is seen
/// at once.
pub(crate) struct Cache {
    ttl: Duration,
    entries: HashMap<String, HashMap<String, Cached>>,
}

impl Cache {
    /// A cache keeping each value for `ttl`; a zero `ttl` keeps nothing.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: HashMap::new(),
        }
    }

    /// The value of (`extension`, `key`) if it is still fresh at `now`; a stale one is dropped.
    pub(crate) fn get(&mut self, extension: &str, key: &str, now: Instant) -> Option<Secret> {
        let keys = self.entries.get_mut(extension)?;
        let fresh = keys.get(key).is_some_and(|cached| now < cached.expires);
        if fresh {
            return keys.get(key).map(|cached| cached.value.clone());
        }
        keys.remove(key);
        if keys.is_empty() {
            self.entries.remove(extension);
        }
        None
    }

    /// Keeps `value` until `now + ttl`.
    pub(crate) fn insert(&mut self, extension: &str, key: &str, value: Secret, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let cached = Cached {
            value,
            expires: now + self.ttl,
        };
        self.entries
            .entry(extension.to_owned())
            .or_default()
            .insert(key.to_owned(), cached);
    }

    pub(crate) fn remove(&mut self, extension: &str, key: &str) {
        if let Some(keys) = self.entries.get_mut(extension) {
            keys.remove(key);
            if keys.is_empty() {
                self.entries.remove(extension);
            }
        }
    }

    pub(crate) fn remove_extension(&mut self, extension: &str) {
        self.entries.remove(extension);
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops every value that is stale at `now`, so none stays in memory long after its TTL.
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, keys| {
            keys.retain(|_, cached| now < cached.expires);
            !keys.is_empty()
        });
    }

    /// How many values are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    fn value(cache: &mut Cache, extension: &str, key: &str, now: Instant) -> Option<String> {
        cache
            .get(extension, key, now)
            .map(|secret| secret.expose_secret().to_owned())
    }

    #[test]
    fn values_expire_after_the_ttl() {
        let start = Instant::now();
        let mut cache = Cache::new(TTL);
        cache.insert("a", "k", Secret::from("v"), start);
        let cases = [
            (Duration::ZERO, Some("v")),
            (Duration::from_millis(299_999), Some("v")),
            (TTL, None),
            (Duration::ZERO, None), // dropped once seen stale
        ];
        for (elapsed, expected) in cases {
            assert_eq!(
                value(&mut cache, "a", "k", start + elapsed).as_deref(),
                expected,
                "{elapsed:?}"
            );
        }
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn entries_are_per_extension_and_key() {
        let now = Instant::now();
        let mut cache = Cache::new(TTL);
        cache.insert("a", "k", Secret::from("a-k"), now);
        cache.insert("a", "j", Secret::from("a-j"), now);
        cache.insert("b", "k", Secret::from("b-k"), now);
        assert_eq!(value(&mut cache, "b", "k", now).as_deref(), Some("b-k"));
        assert_eq!(value(&mut cache, "c", "k", now), None);
        cache.remove("a", "k");
        assert_eq!(value(&mut cache, "a", "k", now), None);
        assert_eq!(value(&mut cache, "a", "j", now).as_deref(), Some("a-j"));
        cache.remove_extension("a");
        assert_eq!(value(&mut cache, "a", "j", now), None);
        assert_eq!(value(&mut cache, "b", "k", now).as_deref(), Some("b-k"));
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn sweep_drops_only_stale_values() {
        let start = Instant::now();
        let mut cache = Cache::new(TTL);
        cache.insert("a", "old", Secret::from("1"), start);
        cache.insert("a", "new", Secret::from("2"), start + TTL / 2);
        cache.sweep(start + TTL);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            value(&mut cache, "a", "new", start + TTL).as_deref(),
            Some("2")
        );
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let now = Instant::now();
        let mut cache = Cache::new(Duration::ZERO);
        cache.insert("a", "k", Secret::from("v"), now);
        assert_eq!(cache.len(), 0);
    }
}
