//! [`SecretStorage`]: per-extension secrets in a secure backend, with a short-lived read cache.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::{self, Store};
use super::cache::Cache;
use super::naming::{self, Slot};
use super::{Secret, SecretBackend, SecretError, SkippedBackend};

/// How a [`SecretStorage`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretStorageOptions {
    /// How long a value read from (or written to) the backend is answered from memory. Default
    /// 5 minutes; zero disables the cache.
    pub cache_ttl: Duration,
    /// How long a caller waits for one backend call. Default 15 seconds. A Secret Service that
    /// waits on an unlock prompt would otherwise block the caller indefinitely.
    pub backend_timeout: Duration,
}

impl SecretStorageOptions {
    /// These options with `cache_ttl`.
    #[must_use]
    pub fn with_cache_ttl(mut self, cache_ttl: Duration) -> Self {
        self.cache_ttl = cache_ttl;
        self
    }

    /// These options with `backend_timeout`.
    #[must_use]
    pub fn with_backend_timeout(mut self, backend_timeout: Duration) -> Self {
        self.backend_timeout = backend_timeout;
        self
    }
}

impl Default for SecretStorageOptions {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(5 * 60),
            backend_timeout: Duration::from_secs(15),
        }
    }
}

/// Every extension's secrets, in one secure backend. Cheap to clone; clones share the backend
/// and the cache.
///
/// Each extension has its own namespace: an extension id and a key name, whatever characters
/// they hold, map to one backend name that no other pair maps to (see the `naming` module), and
/// every operation takes the extension id from the caller, which for the broker is the
/// connection's authenticated identity. The backend calls of one extension are made one at a
/// time, in the order of the operations; different extensions do not wait for each other, and a
/// read answered from the cache waits for nobody.
///
/// Values read from the backend are kept in memory for [`SecretStorageOptions::cache_ttl`]
/// (writes and deletes through this storage update the cache at once). A value changed in the
/// backend by another process (say, `dscode-exthost secret delete` run while the supervisor is
/// running) can be seen late by up to the TTL; [`clear_cache`](Self::clear_cache) drops it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), dscode_extension_host::secrets::SecretError> {
/// use dscode_extension_host::secrets::{Secret, SecretBackend, SecretStorage};
///
/// // A real embedder calls `SecretStorage::detect()`; the in-memory backend keeps this
/// // example free of D-Bus.
/// let secrets = SecretStorage::new(SecretBackend::Memory).await?;
/// secrets.set("acme.github", "token", Secret::from("ghp_example")).await?;
/// let token = secrets.get("acme.github", "token").await?;
/// assert_eq!(token.as_ref().map(Secret::expose_secret), Some("ghp_example"));
/// assert!(secrets.get("other.extension", "token").await?.is_none());
/// assert_eq!(secrets.list("acme.github").await?, ["token"]);
/// assert_eq!(secrets.delete_all_for_extension("acme.github").await?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Cancel safety
/// An operation that has started runs to completion in a task of its own, so dropping its
/// future does not leave a write half done or the cache out of step with the backend (the
/// result is lost); one dropped while waiting for its extension's turn has done nothing.
#[derive(Clone)]
pub struct SecretStorage {
    inner: Arc<Inner>,
}

struct Inner {
    backend: SecretBackend,
    skipped: Vec<SkippedBackend>,
    store: Arc<dyn Store>,
    options: SecretStorageOptions,
    // A plain mutex: it is held for a map operation, never across an await.
    cache: Mutex<Cache>,
    // One async lock per extension that has made a call; never removed (there are few).
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for SecretStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStorage")
            .field("backend", &self.inner.backend)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SecretStorage {
    /// Opens `backend` with the default options, after checking that it works here (see
    /// [`SecretBackend::probe`]).
    ///
    /// # Errors
    /// [`SecretError::Unavailable`], saying why and what to do.
    pub async fn new(backend: SecretBackend) -> Result<Self, SecretError> {
        Self::with_options(backend, SecretStorageOptions::default()).await
    }

    /// Opens `backend` with `options`.
    ///
    /// # Errors
    /// [`SecretError::Unavailable`], saying why and what to do.
    pub async fn with_options(
        backend: SecretBackend,
        options: SecretStorageOptions,
    ) -> Result<Self, SecretError> {
        let store = backend::open(backend).await?;
        tracing::info!(backend = backend.name(), "secret storage opened");
        Ok(Self::from_store(backend, store, options, Vec::new()))
    }

    /// Opens the first secure backend that works here, with the default options: the Secret
    /// Service if a session bus and an unlocked Secret Service are reachable, else the kernel
    /// keyring. [`backend`](Self::backend) tells which was chosen and
    /// [`skipped`](Self::skipped) why the ones before it were not; both are logged.
    ///
    /// # Errors
    /// [`SecretError::NoSecureBackend`] if neither works: secrets are never kept in plain text
    /// instead.
    pub async fn detect() -> Result<Self, SecretError> {
        Self::detect_with_options(SecretStorageOptions::default()).await
    }

    /// [`detect`](Self::detect) with `options`.
    ///
    /// # Errors
    /// [`SecretError::NoSecureBackend`] if neither secure backend works.
    pub async fn detect_with_options(options: SecretStorageOptions) -> Result<Self, SecretError> {
        let mut skipped = Vec::new();
        for backend in SecretBackend::SECURE {
            match backend::open(backend).await {
                Ok(store) => {
                    tracing::info!(
                        backend = backend.name(),
                        persistence = backend.persistence(),
                        "secret storage backend chosen"
                    );
                    return Ok(Self::from_store(backend, store, options, skipped));
                }
                Err(SecretError::Unavailable { reason, .. }) => {
                    tracing::warn!(backend = backend.name(), %reason, "secret backend not usable");
                    skipped.push(SkippedBackend { backend, reason });
                }
                Err(error) => return Err(error),
            }
        }
        let reason = |wanted| {
            skipped
                .iter()
                .find(|skip| skip.backend == wanted)
                .map(|skip| skip.reason.clone())
                .unwrap_or_default()
        };
        Err(SecretError::NoSecureBackend {
            secret_service: reason(SecretBackend::SecretService),
            keyutils: reason(SecretBackend::Keyutils),
        })
    }

    pub(crate) fn from_store(
        backend: SecretBackend,
        store: Arc<dyn Store>,
        options: SecretStorageOptions,
        skipped: Vec<SkippedBackend>,
    ) -> Self {
        let inner = Arc::new(Inner {
            backend,
            skipped,
            store,
            cache: Mutex::new(Cache::new(options.cache_ttl)),
            options,
            turns: Mutex::new(HashMap::new()),
        });
        if !inner.options.cache_ttl.is_zero() {
            tokio::spawn(sweep(Arc::downgrade(&inner), inner.options.cache_ttl));
        }
        Self { inner }
    }

    /// The backend in use.
    #[must_use]
    pub fn backend(&self) -> SecretBackend {
        self.inner.backend
    }

    /// The backend's machine name (`secret-service`, `keyutils`, `memory`), for `doctor`,
    /// `status` and logs.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// The backends [`detect`](Self::detect) tried before the one in use, and why each was not
    /// usable; empty when the backend was named.
    #[must_use]
    pub fn skipped(&self) -> &[SkippedBackend] {
        &self.inner.skipped
    }

    /// The options in force.
    #[must_use]
    pub fn options(&self) -> &SecretStorageOptions {
        &self.inner.options
    }

    /// `extension`'s secret named `key`, or `None` if it has none. Answered from the cache when
    /// it was read or written within the TTL.
    ///
    /// # Errors
    /// An invalid extension id or key ([`SecretError::EmptyKey`], [`SecretError::KeyTooLong`],
    /// ...), or a backend failure.
    pub async fn get(&self, extension: &str, key: &str) -> Result<Option<Secret>, SecretError> {
        let slot = Slot::new(extension, key)?;
        if let Some(hit) = self.inner.cached(&slot) {
            return Ok(Some(hit));
        }
        let extension = slot.extension().to_owned();
        self.run(&extension, move |inner| async move {
            // Another call may have filled the cache while this one waited for its turn.
            if let Some(hit) = inner.cached(&slot) {
                return Ok(Some(hit));
            }
            let read = slot.clone();
            let found = inner.call(move |store| store.get(&read)).await?;
            if let Some(value) = &found {
                inner.remember(&slot, value.clone());
            }
            Ok(found)
        })
        .await
    }

    /// Stores `value` as `extension`'s secret named `key`, replacing any value it had.
    ///
    /// # Errors
    /// An invalid extension id or key, an empty value ([`SecretError::EmptyValue`]) or one over
    /// [`MAX_SECRET_BYTES`](super::MAX_SECRET_BYTES), or a backend failure.
    pub async fn set(&self, extension: &str, key: &str, value: Secret) -> Result<(), SecretError> {
        let slot = Slot::new(extension, key)?;
        naming::check_value(value.len())?;
        let extension = slot.extension().to_owned();
        self.run(&extension, move |inner| async move {
            // Forgotten first: if the write fails or times out, the next read asks the backend.
            inner.forget(&slot);
            let (write, stored) = (slot.clone(), value.clone());
            inner.call(move |store| store.set(&write, &stored)).await?;
            inner.remember(&slot, value);
            Ok(())
        })
        .await
    }

    /// Removes `extension`'s secret named `key`; whether it had one.
    ///
    /// # Errors
    /// An invalid extension id or key, or a backend failure.
    pub async fn delete(&self, extension: &str, key: &str) -> Result<bool, SecretError> {
        let slot = Slot::new(extension, key)?;
        let extension = slot.extension().to_owned();
        self.run(&extension, move |inner| async move {
            inner.forget(&slot);
            inner.call(move |store| store.delete(&slot)).await
        })
        .await
    }

    /// Removes every secret of `extension` from the backend (not only from the cache), found by
    /// asking the backend rather than by remembering what was stored, and checks that none is
    /// left; how many were removed. For uninstalling an extension.
    ///
    /// # Errors
    /// An invalid extension id, or a backend failure (including secrets that could not be
    /// removed, such as ones in a locked Secret Service collection).
    pub async fn delete_all_for_extension(&self, extension: &str) -> Result<usize, SecretError> {
        naming::check_extension(extension)?;
        let owned = extension.to_owned();
        self.run(extension, move |inner| async move {
            inner.forget_extension(&owned);
            let deleted = inner.call(move |store| store.delete_all(&owned)).await?;
            Ok(deleted)
        })
        .await
    }

    /// The names of `extension`'s secrets, sorted, as the backend has them now (not cached).
    ///
    /// # Errors
    /// An invalid extension id, or a backend failure.
    pub async fn list(&self, extension: &str) -> Result<Vec<String>, SecretError> {
        naming::check_extension(extension)?;
        let owned = extension.to_owned();
        self.run(extension, move |inner| async move {
            let mut keys = inner.call(move |store| store.list(&owned)).await?;
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
        .await
    }

    /// Drops every cached value (their memory is zeroized); the next reads go to the backend.
    pub fn clear_cache(&self) {
        self.inner.lock_cache().clear();
    }

    /// Runs `body` in its own task, after `extension`'s earlier operations.
    async fn run<T, F, Fut>(&self, extension: &str, body: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, SecretError>> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        // Taken before spawning, so turns follow the order of the calls (tokio's mutex is
        // fair); a call dropped while waiting here has done nothing.
        let turn = inner.turn(extension).lock_owned().await;
        let task = tokio::spawn(async move {
            let _turn = turn;
            body(inner).await
        });
        task.await.map_err(SecretError::from)?
    }
}

impl Inner {
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache is only a copy of the backend: after a panic elsewhere it is still usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn turn(&self, extension: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(turns.entry(extension.to_owned()).or_default())
    }

    fn cached(&self, slot: &Slot) -> Option<Secret> {
        self.lock_cache()
            .get(slot.extension(), slot.key(), Instant::now())
    }

    fn remember(&self, slot: &Slot, value: Secret) {
        self.lock_cache()
            .insert(slot.extension(), slot.key(), value, Instant::now());
    }

    fn forget(&self, slot: &Slot) {
        self.lock_cache().remove(slot.extension(), slot.key());
    }

    fn forget_extension(&self, extension: &str) {
        self.lock_cache().remove_extension(extension);
    }

    /// Runs a blocking backend call on a blocking thread, waiting at most the backend timeout.
    /// After a timeout the call may still complete; the caller has already dropped what it
    /// cached for the operation's key.
    async fn call<T, F>(&self, operation: F) -> Result<T, SecretError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, SecretError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        let work = tokio::task::spawn_blocking(move || operation(store.as_ref()));
        match tokio::time::timeout(self.options.backend_timeout, work).await {
            Ok(joined) => joined.map_err(SecretError::from)?,
            Err(_) => Err(SecretError::Timeout {
                backend: self.backend,
                timeout: self.options.backend_timeout,
            }),
        }
    }
}

/// Drops stale values every `ttl` until the storage is dropped, so a value does not stay in
/// memory much longer than its TTL when nobody asks for it again.
async fn sweep(inner: Weak<Inner>, ttl: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + ttl, ttl);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.lock_cache().sweep(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::secrets::memory::MemoryStore;

    const TTL: Duration = Duration::from_secs(300);
    const SECOND: Duration = Duration::from_secs(1);
    const JUST_BEFORE_TTL: Duration = Duration::from_secs(299);

    fn storage_with(store: &Arc<MemoryStore>, ttl: Duration) -> SecretStorage {
        SecretStorage::from_store(
            SecretBackend::Memory,
            Arc::clone(store) as Arc<dyn Store>,
            SecretStorageOptions::default().with_cache_ttl(ttl),
            Vec::new(),
        )
    }

    fn gets(store: &MemoryStore) -> usize {
        store.gets.load(Ordering::SeqCst)
    }

    async fn read(storage: &SecretStorage, extension: &str, key: &str) -> Option<String> {
        storage
            .get(extension, key)
            .await
            .unwrap()
            .map(|secret| secret.expose_secret().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_reads_are_cached_until_the_ttl() {
        let store = Arc::new(MemoryStore::default());
        let writer = storage_with(&store, TTL);
        writer.set("a", "k", Secret::from("v1")).await.unwrap();
        let reader = storage_with(&store, TTL);

        assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v1"));
        assert_eq!(gets(&store), 1);
        for _ in 0..10 {
            assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v1"));
        }
        assert_eq!(gets(&store), 1, "reads within the TTL stay in memory");

        // Changed behind the reader's back: it keeps answering from its cache until expiry.
        writer.set("a", "k", Secret::from("v2")).await.unwrap();
        tokio::time::advance(JUST_BEFORE_TTL).await;
        assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v1"));
        assert_eq!(gets(&store), 1);

        tokio::time::advance(SECOND).await;
        assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v2"));
        assert_eq!(gets(&store), 2, "a read after expiry goes to the backend");
        assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v2"));
        assert_eq!(gets(&store), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_and_deletes_update_the_cache() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, TTL);
        storage.set("a", "k", Secret::from("v1")).await.unwrap();
        assert_eq!(read(&storage, "a", "k").await.as_deref(), Some("v1"));
        assert_eq!(gets(&store), 0, "a value just written is cached");
        storage.set("a", "k", Secret::from("v2")).await.unwrap();
        assert_eq!(read(&storage, "a", "k").await.as_deref(), Some("v2"));
        assert!(storage.delete("a", "k").await.unwrap());
        assert_eq!(read(&storage, "a", "k").await, None);
        assert!(!storage.delete("a", "k").await.unwrap());
        assert_eq!(gets(&store), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_keys_are_not_cached() {
        let store = Arc::new(MemoryStore::default());
        let reader = storage_with(&store, TTL);
        let writer = storage_with(&store, TTL);
        assert_eq!(read(&reader, "a", "k").await, None);
        assert_eq!(read(&reader, "a", "k").await, None);
        assert_eq!(gets(&store), 2);
        writer.set("a", "k", Secret::from("v")).await.unwrap();
        assert_eq!(read(&reader, "a", "k").await.as_deref(), Some("v"));
    }

    #[tokio::test(start_paused = true)]
    async fn clear_cache_and_delete_all_send_reads_to_the_backend() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, TTL);
        storage.set("a", "k", Secret::from("v")).await.unwrap();
        storage.set("a", "j", Secret::from("w")).await.unwrap();
        storage.set("b", "k", Secret::from("b")).await.unwrap();
        storage.clear_cache();
        assert_eq!(read(&storage, "a", "k").await.as_deref(), Some("v"));
        assert_eq!(gets(&store), 1);

        assert_eq!(storage.list("a").await.unwrap(), ["j", "k"]);
        assert_eq!(storage.delete_all_for_extension("a").await.unwrap(), 2);
        assert_eq!(read(&storage, "a", "k").await, None);
        assert_eq!(gets(&store), 2, "the cached value went with delete_all");
        assert!(storage.list("a").await.unwrap().is_empty());
        assert_eq!(read(&storage, "b", "k").await.as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_values_are_swept_without_being_read() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, TTL);
        storage.set("a", "k", Secret::from("v")).await.unwrap();
        assert_eq!(storage.inner.lock_cache().len(), 1);
        tokio::time::sleep(TTL * 2 + SECOND).await;
        assert_eq!(storage.inner.lock_cache().len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_ttl_reads_the_backend_every_time() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, Duration::ZERO);
        storage.set("a", "k", Secret::from("v")).await.unwrap();
        for _ in 0..3 {
            assert_eq!(read(&storage, "a", "k").await.as_deref(), Some("v"));
        }
        assert_eq!(gets(&store), 3);
    }

    #[tokio::test]
    async fn invalid_input_never_reaches_the_backend() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, TTL);
        let long_key = "k".repeat(naming::MAX_KEY_BYTES + 1);
        assert!(matches!(
            storage.get("a", "").await,
            Err(SecretError::EmptyKey)
        ));
        assert!(matches!(
            storage.get("", "k").await,
            Err(SecretError::EmptyExtensionId)
        ));
        assert!(matches!(
            storage.set("a", &long_key, Secret::from("v")).await,
            Err(SecretError::KeyTooLong { .. })
        ));
        assert!(matches!(
            storage.set("a", "k", Secret::from("")).await,
            Err(SecretError::EmptyValue)
        ));
        let large = "x".repeat(naming::MAX_SECRET_BYTES + 1);
        assert!(matches!(
            storage.set("a", "k", Secret::new(large)).await,
            Err(SecretError::ValueTooLarge { .. })
        ));
        assert!(matches!(
            storage.delete_all_for_extension("").await,
            Err(SecretError::EmptyExtensionId)
        ));
        assert_eq!(gets(&store) + store.writes.load(Ordering::SeqCst), 0);
    }

    /// A backend that never answers, like a Secret Service waiting on an unlock prompt.
    struct Hung;

    impl Store for Hung {
        fn get(&self, _: &Slot) -> Result<Option<Secret>, SecretError> {
            std::thread::sleep(Duration::from_millis(300));
            Ok(None)
        }
        fn set(&self, _: &Slot, _: &Secret) -> Result<(), SecretError> {
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        }
        fn delete(&self, _: &Slot) -> Result<bool, SecretError> {
            Ok(false)
        }
        fn list(&self, _: &str) -> Result<Vec<String>, SecretError> {
            Ok(Vec::new())
        }
        fn delete_all(&self, _: &str) -> Result<usize, SecretError> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn a_backend_that_hangs_times_out() {
        let options =
            SecretStorageOptions::default().with_backend_timeout(Duration::from_millis(20));
        let storage =
            SecretStorage::from_store(SecretBackend::Memory, Arc::new(Hung), options, Vec::new());
        let error = storage.set("a", "k", Secret::from("v")).await.unwrap_err();
        assert!(matches!(error, SecretError::Timeout { .. }), "{error}");
        assert!(error.to_string().contains("unlock"));
        // Nothing was cached for the key whose write timed out.
        assert_eq!(storage.inner.lock_cache().len(), 0);
    }

    #[tokio::test]
    async fn a_dropped_call_still_completes() {
        let store = Arc::new(MemoryStore::default());
        let storage = storage_with(&store, TTL);
        let write = storage.set("a", "k", Secret::from("v"));
        // Polled once (the task is spawned), then dropped.
        let _ = tokio::time::timeout(Duration::ZERO, write).await;
        // The extension's next call runs after the dropped one.
        assert_eq!(storage.list("a").await.unwrap(), ["k"]);
        assert_eq!(read(&storage, "a", "k").await.as_deref(), Some("v"));
    }
}
