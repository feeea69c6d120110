//! Secret storage against the real backends: the same suite runs against a real Secret Service
//! (gnome-keyring in a private D-Bus session) and against the kernel keyring (keyutils).
//!
//! The Secret Service half needs a session bus with a Secret Service on it:
//!
//! ```text
//! scripts/with-keyring cargo test --test secrets
//! ```
//!
//! Without one (no `DBUS_SESSION_BUS_ADDRESS`) those tests fail, saying so, unless
//! `DSCODE_SECRET_SERVICE_TESTS=skip` is set. The keyutils half needs no daemon; it can be
//! skipped with `DSCODE_KEYUTILS_TESTS=skip` where the `keyctl` system call is blocked.
//!
//! What a test checks in the backend (that nothing is left, that nothing was overwritten) is read
//! from the backend directly: every item of every Secret Service collection, and `/proc/keys`
//! for the kernel, matched on a token unique to the test run rather than on the naming scheme.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dscode_extension_host::secrets::{
    MAX_KEY_BYTES, MAX_SECRET_BYTES, Secret, SecretBackend, SecretError, SecretStorage,
    SecretStorageOptions,
};

/// The kernel keyring's quota for an unprivileged user is small (20,000 bytes by default), so
/// keyutils tests run one at a time.
static KEYUTILS_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A token no other test run shares, put in every extension id a test uses.
fn token(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "t{}x{}x{nanos}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        test.replace('_', "")
    )
}

fn skip(variable: &str) -> bool {
    std::env::var(variable).is_ok_and(|value| value == "skip")
}

/// The storage under test, or `None` when the backend's tests are skipped on purpose.
async fn open(backend: SecretBackend, options: SecretStorageOptions) -> Option<SecretStorage> {
    match backend {
        SecretBackend::SecretService => {
            if skip("DSCODE_SECRET_SERVICE_TESTS") {
                eprintln!("Secret Service tests skipped (DSCODE_SECRET_SERVICE_TESTS=skip)");
                return None;
            }
            assert!(
                std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
                "the Secret Service tests need a D-Bus session with a Secret Service: run them \
                 as `scripts/with-keyring cargo test --test secrets`, or set \
                 DSCODE_SECRET_SERVICE_TESTS=skip to skip them"
            );
        }
        SecretBackend::Keyutils if skip("DSCODE_KEYUTILS_TESTS") => {
            eprintln!("keyutils tests skipped (DSCODE_KEYUTILS_TESTS=skip)");
            return None;
        }
        _ => {}
    }
    match SecretStorage::with_options(backend, options).await {
        Ok(storage) => {
            assert_eq!(storage.backend(), backend);
            Some(storage)
        }
        Err(error) => panic!("cannot open the {backend}: {error}"),
    }
}

/// Removes the test's extensions' secrets when dropped, even after a failed assertion (the
/// kernel keeps keys until reboot). Runs on a thread of its own, outside the test's runtime.
struct Cleanup {
    backend: SecretBackend,
    extensions: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let backend = self.backend;
        let extensions = std::mem::take(&mut self.extensions);
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let Ok(storage) = SecretStorage::new(backend).await else {
                    return;
                };
                for extension in &extensions {
                    let _ = storage.delete_all_for_extension(extension).await;
                }
            });
        });
        let _ = done.join();
    }
}

/// What the backend holds whose names mention `token`, read directly: for the Secret Service,
/// the attributes of every item of every collection; for the kernel, the descriptions of the
/// live keys in `/proc/keys`.
///
/// The kernel destroys a key some milliseconds after its last link goes, and lists it until
/// then, so this waits (up to 3 seconds) for the listing to have `expected` entries.
fn in_backend(backend: SecretBackend, token: &str, expected: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let found = match backend {
            SecretBackend::SecretService => secret_service_items(token),
            SecretBackend::Keyutils => kernel_keys(token),
            _ => unreachable!(),
        };
        if found.len() == expected || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn secret_service_items(token: &str) -> Vec<String> {
    use dbus_secret_service::{EncryptionType, SecretService};
    let service = SecretService::connect(EncryptionType::Plain).expect("Secret Service");
    let mut found = Vec::new();
    for collection in service.get_all_collections().expect("collections") {
        for item in collection.get_all_items().expect("items") {
            let attributes: BTreeMap<String, String> = item
                .get_attributes()
                .expect("attributes")
                .into_iter()
                .collect();
            let label = item.get_label().expect("label");
            if label.contains(token) || attributes.values().any(|value| value.contains(token)) {
                found.push(format!("{label}: {attributes:?}"));
            }
        }
    }
    found
}

fn kernel_keys(token: &str) -> Vec<String> {
    let listing =
        String::from_utf8_lossy(&std::fs::read("/proc/keys").expect("/proc/keys")).into_owned();
    listing
        .lines()
        .filter(|line| line.contains(token))
        .filter(|line| {
            // FLAGS is the second field: I(nstantiated) R(evoked) D(ead) Q U N(egative) i(nvalid).
            let flags = line.split_whitespace().nth(1).unwrap_or("");
            !flags.contains(['R', 'D', 'N', 'i'])
        })
        .map(str::to_owned)
        .collect()
}

async fn value(storage: &SecretStorage, extension: &str, key: &str) -> Option<String> {
    storage
        .get(extension, key)
        .await
        .unwrap_or_else(|error| panic!("get {extension:?}/{key:?}: {error}"))
        .map(|secret| secret.expose_secret().to_owned())
}

/// A key for a failure message: long ones are cut.
fn short(key: &str) -> String {
    let debug = format!("{key:?}");
    let mut shown: String = debug.chars().take(40).collect();
    if shown.len() < debug.len() {
        shown.push('…');
    }
    shown
}

/// A storage with no cache, so each read is the backend's answer.
fn uncached() -> SecretStorageOptions {
    SecretStorageOptions::default().with_cache_ttl(Duration::ZERO)
}

async fn round_trip(backend: SecretBackend) {
    let Some(storage) = open(backend, SecretStorageOptions::default()).await else {
        return;
    };
    let Some(fresh) = open(backend, uncached()).await else {
        return;
    };
    let token = token("roundtrip");
    let extension = format!("pub.{token}");
    let _cleanup = Cleanup {
        backend,
        extensions: vec![extension.clone()],
    };

    assert_eq!(value(&storage, &extension, "token").await, None);
    storage
        .set(&extension, "token", Secret::from("s3cret ✓"))
        .await
        .unwrap();
    assert_eq!(
        value(&fresh, &extension, "token").await.as_deref(),
        Some("s3cret ✓")
    );
    storage
        .set(&extension, "token", Secret::from("second"))
        .await
        .unwrap();
    assert_eq!(
        value(&fresh, &extension, "token").await.as_deref(),
        Some("second")
    );
    assert_eq!(
        in_backend(backend, &token, 1).len(),
        1,
        "overwritten in place"
    );

    // Most of an unprivileged user's kernel quota (20,000 bytes), some of which the keys deleted
    // by the tests before may still hold for a moment.
    let largest = "x".repeat(MAX_SECRET_BYTES);
    storage
        .set(&extension, "large", Secret::new(largest.clone()))
        .await
        .unwrap();
    assert_eq!(value(&fresh, &extension, "large").await, Some(largest));
    assert!(storage.delete(&extension, "large").await.unwrap());

    assert_eq!(storage.list(&extension).await.unwrap(), ["token"]);
    assert!(storage.delete(&extension, "token").await.unwrap());
    assert!(!storage.delete(&extension, "token").await.unwrap());
    assert_eq!(value(&storage, &extension, "token").await, None);
    assert_eq!(value(&fresh, &extension, "token").await, None);
    assert_eq!(in_backend(backend, &token, 0), Vec::<String>::new());
}

/// Extension id, key, value, and the error expected.
type BadInput<'a> = (&'a str, &'a str, &'a str, fn(&SecretError) -> bool);

async fn bad_input_is_refused(backend: SecretBackend) {
    let Some(storage) = open(backend, SecretStorageOptions::default()).await else {
        return;
    };
    let token = token("badinput");
    let extension = format!("pub.{token}");
    let _cleanup = Cleanup {
        backend,
        extensions: vec![extension.clone()],
    };
    let huge_key = "k".repeat(10_000);
    let cases: Vec<BadInput> = vec![
        (&extension, "", "v", |e| matches!(e, SecretError::EmptyKey)),
        (&extension, &huge_key, "v", |e| {
            matches!(e, SecretError::KeyTooLong { len: 10_000, .. })
        }),
        ("", "k", "v", |e| matches!(e, SecretError::EmptyExtensionId)),
        (&extension, "k", "", |e| {
            matches!(e, SecretError::EmptyValue)
        }),
    ];
    for (ext, key, secret, expected) in cases {
        let error = storage
            .set(ext, key, Secret::from(secret))
            .await
            .unwrap_err();
        assert!(expected(&error), "{ext:?}/{key:.20}: {error}");
        if !key.is_empty() && !ext.is_empty() {
            let read = storage.get(ext, key).await;
            assert!(read.is_err() || read.unwrap().is_none());
        }
    }
    let too_large = Secret::new("x".repeat(MAX_SECRET_BYTES + 1));
    assert!(matches!(
        storage.set(&extension, "k", too_large).await,
        Err(SecretError::ValueTooLarge { .. })
    ));
    assert!(matches!(
        storage.get(&extension, &huge_key).await,
        Err(SecretError::KeyTooLong { .. })
    ));
    assert_eq!(in_backend(backend, &token, 0), Vec::<String>::new());
}

/// Extension ids and keys that a naive `ext + sep + key` scheme would confuse.
fn crafted_pairs(token: &str) -> Vec<(String, String)> {
    let base = format!("pub.{token}");
    let extensions = [
        base.clone(),
        format!("{base}.a"),
        format!("{base}:a"),
        format!("{base}/a"),
        format!("{base}/.."),
        format!("{base}\0a"),
        format!("{base}%3Aa"),
        format!("{base}.é"),
    ];
    let keys = [
        "a".to_owned(),
        "a.b".to_owned(),
        ".a".to_owned(),
        ":a".to_owned(),
        "../a".to_owned(),
        "a\0".to_owned(),
        "%3Aa".to_owned(),
        "ключ 🔑".to_owned(),
    ];
    let mut pairs = Vec::new();
    for extension in &extensions {
        for key in &keys {
            pairs.push((extension.clone(), key.clone()));
        }
    }
    // The cross-over pairs: ("x.a", "b") against ("x", "a.b"), and friends.
    pairs.push((format!("{base}.a"), "b".to_owned()));
    pairs.push((base.clone(), "a.b".to_owned()));
    pairs.push((format!("{base}:a"), "b".to_owned()));
    pairs.push((base.clone(), "a:b".to_owned()));
    // The longest key accepted, ASCII and multi-byte.
    pairs.push((base.clone(), "k".repeat(MAX_KEY_BYTES)));
    pairs.push((format!("{base}.a"), "é".repeat(MAX_KEY_BYTES / 2)));
    pairs.sort();
    pairs.dedup();
    pairs
}

async fn extensions_are_isolated(backend: SecretBackend) {
    let Some(storage) = open(backend, SecretStorageOptions::default()).await else {
        return;
    };
    let Some(fresh) = open(backend, uncached()).await else {
        return;
    };
    let token = token("isolated");
    let pairs = crafted_pairs(&token);
    let mut extensions: Vec<String> = pairs.iter().map(|(e, _)| e.clone()).collect();
    extensions.dedup();
    let _cleanup = Cleanup {
        backend,
        extensions: extensions.clone(),
    };
    let expected_value = |i: usize| format!("value of pair {i}");

    // Write every pair; if two shared a name in the backend, one would overwrite the other.
    for (i, (extension, key)) in pairs.iter().enumerate() {
        storage
            .set(extension, key, Secret::new(expected_value(i)))
            .await
            .unwrap_or_else(|error| panic!("set {extension:?}/{}: {error}", short(key)));
    }
    assert_eq!(in_backend(backend, &token, pairs.len()).len(), pairs.len());
    for (i, (extension, key)) in pairs.iter().enumerate() {
        assert_eq!(
            value(&fresh, extension, key).await,
            Some(expected_value(i)),
            "{extension:?}/{}",
            short(key)
        );
    }

    // Each extension lists exactly its own keys.
    let mut by_extension: HashMap<&str, Vec<String>> = HashMap::new();
    for (extension, key) in &pairs {
        by_extension.entry(extension).or_default().push(key.clone());
    }
    for (extension, mut keys) in by_extension.clone() {
        keys.sort();
        assert_eq!(fresh.list(extension).await.unwrap(), keys, "{extension:?}");
    }

    // A key one extension does not have is absent for it, whatever another extension stores
    // under that name; deleting it there removes nothing, storing it there changes nothing else.
    let base = format!("pub.{token}");
    let victim = (format!("{base}.a"), "b".to_owned());
    let victim_index = pairs.iter().position(|pair| *pair == victim).unwrap();
    let victim_value = Some(expected_value(victim_index));
    let others: Vec<&String> = extensions
        .iter()
        .filter(|e| !by_extension[e.as_str()].contains(&victim.1))
        .collect();
    assert!(others.len() >= 6);
    for extension in others {
        assert_eq!(value(&fresh, extension, &victim.1).await, None);
        assert!(!storage.delete(extension, &victim.1).await.unwrap());
    }
    assert_eq!(value(&fresh, &victim.0, &victim.1).await, victim_value);
    let intruder = &base;
    storage
        .set(intruder, &victim.1, Secret::from("overwritten?"))
        .await
        .unwrap();
    assert_eq!(value(&fresh, &victim.0, &victim.1).await, victim_value);
    assert_eq!(
        value(&fresh, intruder, &victim.1).await.as_deref(),
        Some("overwritten?")
    );
    assert!(storage.delete(intruder, &victim.1).await.unwrap());
    assert_eq!(value(&fresh, &victim.0, &victim.1).await, victim_value);

    // Deleting everything of one extension leaves the others whole.
    let removed = format!("{base}:a");
    let removed_count = fresh.delete_all_for_extension(&removed).await.unwrap();
    assert_eq!(removed_count, by_extension[removed.as_str()].len());
    assert!(fresh.list(&removed).await.unwrap().is_empty());
    for (i, (extension, key)) in pairs.iter().enumerate() {
        let expected = (*extension != removed).then(|| expected_value(i));
        assert_eq!(
            value(&fresh, extension, key).await,
            expected,
            "{extension:?}/{}",
            short(key)
        );
    }
    assert_eq!(
        in_backend(backend, &token, pairs.len() - removed_count).len(),
        pairs.len() - removed_count
    );

    for extension in &extensions {
        fresh.delete_all_for_extension(extension).await.unwrap();
    }
    assert_eq!(in_backend(backend, &token, 0), Vec::<String>::new());
}

async fn delete_all_leaves_nothing(backend: SecretBackend) {
    let Some(writer) = open(backend, SecretStorageOptions::default()).await else {
        return;
    };
    let Some(other) = open(backend, SecretStorageOptions::default()).await else {
        return;
    };
    let token = token("deleteall");
    let extension = format!("pub.{token}");
    let neighbour = format!("pub.{token}.neighbour");
    let _cleanup = Cleanup {
        backend,
        extensions: vec![extension.clone(), neighbour.clone()],
    };
    let keys = ["a", "b", "c.d", "../e", "f:g", "h\0", "ключ"];
    for key in keys {
        writer
            .set(&extension, key, Secret::from("v"))
            .await
            .unwrap();
    }
    writer
        .set(&neighbour, "a", Secret::from("kept"))
        .await
        .unwrap();
    // Cached in the writer: delete_all through another storage must still find them all.
    assert_eq!(value(&writer, &extension, "a").await.as_deref(), Some("v"));
    assert_eq!(
        in_backend(backend, &token, keys.len() + 1).len(),
        keys.len() + 1
    );

    assert_eq!(
        other.delete_all_for_extension(&extension).await.unwrap(),
        keys.len()
    );
    let left = in_backend(backend, &token, 1);
    assert_eq!(
        left.len(),
        1,
        "only the neighbour's secret is left: {left:?}"
    );
    assert!(left[0].contains("neighbour"));
    assert!(other.list(&extension).await.unwrap().is_empty());
    assert_eq!(other.delete_all_for_extension(&extension).await.unwrap(), 0);
    writer.clear_cache();
    assert_eq!(value(&writer, &extension, "a").await, None);
    assert_eq!(
        value(&writer, &neighbour, "a").await.as_deref(),
        Some("kept")
    );

    assert_eq!(
        writer.delete_all_for_extension(&neighbour).await.unwrap(),
        1
    );
    assert_eq!(in_backend(backend, &token, 0), Vec::<String>::new());
}

async fn cache_expires(backend: SecretBackend) {
    let ttl = Duration::from_secs(300);
    let Some(cached) = open(backend, SecretStorageOptions::default().with_cache_ttl(ttl)).await
    else {
        return;
    };
    assert_eq!(cached.options().cache_ttl, ttl);
    let Some(other) = open(backend, uncached()).await else {
        return;
    };
    let token = token("cache");
    let extension = format!("pub.{token}");
    let _cleanup = Cleanup {
        backend,
        extensions: vec![extension.clone()],
    };
    other
        .set(&extension, "k", Secret::from("first"))
        .await
        .unwrap();
    assert_eq!(
        value(&cached, &extension, "k").await.as_deref(),
        Some("first")
    );

    // Changed in the backend behind the cache's back: still the cached value until the TTL.
    other
        .set(&extension, "k", Secret::from("second"))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(
        value(&cached, &extension, "k").await.as_deref(),
        Some("first")
    );
    // After it, the read goes to the backend.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        value(&cached, &extension, "k").await.as_deref(),
        Some("second")
    );

    // Deleted behind its back: served from the cache until cleared, then absent.
    assert!(other.delete(&extension, "k").await.unwrap());
    assert_eq!(
        value(&cached, &extension, "k").await.as_deref(),
        Some("second")
    );
    cached.clear_cache();
    assert_eq!(value(&cached, &extension, "k").await, None);
}

macro_rules! suite {
    ($module:ident, $backend:expr, $gate:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn round_trip() {
                let _gate = $gate;
                super::round_trip($backend).await;
            }

            #[tokio::test]
            async fn bad_input_is_refused() {
                let _gate = $gate;
                super::bad_input_is_refused($backend).await;
            }

            #[tokio::test]
            async fn extensions_are_isolated() {
                let _gate = $gate;
                super::extensions_are_isolated($backend).await;
            }

            #[tokio::test]
            async fn delete_all_leaves_nothing() {
                let _gate = $gate;
                super::delete_all_leaves_nothing($backend).await;
            }

            #[tokio::test(start_paused = true)]
            async fn cache_expires() {
                let _gate = $gate;
                super::cache_expires($backend).await;
            }
        }
    };
}

suite!(secret_service, SecretBackend::SecretService, ());
suite!(
    keyutils,
    SecretBackend::Keyutils,
    KEYUTILS_GATE.lock().await
);

#[tokio::test]
async fn detection_prefers_the_secret_service_and_reports_its_choice() {
    let _gate = KEYUTILS_GATE.lock().await;
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    let expected = match (bus, skip("DSCODE_SECRET_SERVICE_TESTS")) {
        (true, false) => Some(SecretBackend::SecretService),
        (false, _) if !skip("DSCODE_KEYUTILS_TESTS") => Some(SecretBackend::Keyutils),
        (false, _) => return,
        (true, true) => None,
    };
    let storage = SecretStorage::detect()
        .await
        .unwrap_or_else(|error| panic!("no backend detected: {error}"));
    assert!(SecretBackend::SECURE.contains(&storage.backend()));
    assert_eq!(storage.backend_name(), storage.backend().name());
    let skipped: Vec<SecretBackend> = storage.skipped().iter().map(|s| s.backend).collect();
    match expected {
        Some(SecretBackend::SecretService) => {
            assert_eq!(storage.backend(), SecretBackend::SecretService);
            assert!(skipped.is_empty());
        }
        Some(SecretBackend::Keyutils) => {
            assert_eq!(storage.backend(), SecretBackend::Keyutils);
            assert_eq!(skipped, [SecretBackend::SecretService]);
            assert!(
                storage.skipped()[0].reason.contains("D-Bus"),
                "{}",
                storage.skipped()[0].reason
            );
        }
        _ => {}
    }
}
