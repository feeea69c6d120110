//! Request rate limits for the host API: a token bucket per extension, and optionally one per
//! extension and API family, so a flooding extension is refused quickly and cheaply while every
//! other extension keeps its full quota.
//!
//! ```toml
//! [rate_limit]
//! per_second = 100          # every extension, all calls together (default 100)
//! burst = 200               # calls accepted at once after a quiet period (default 200)
//!
//! [rate_limit.families]     # optional, [per_second, burst] per API family, for each extension
//! clipboard = [5, 10]
//! network = [20, 40]
//!
//! [rate_limit.per_extension] # optional, replaces per_second/burst for one extension
//! "acme.indexer" = [500, 1000]
//! ```
//!
//! A call must pass its family's bucket (when `families` names one) *and* its extension's overall
//! bucket, so a family limit can only make things stricter. Family keys are `file_system`,
//! `network`, `clipboard`, `secrets`, `ui`, `terminal`, `commands` and `other`; see
//! [`ApiFamily::of_method`] for which wire methods each covers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use governor::Quota;
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use serde::Deserialize;

/// A group of host API methods that share a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApiFamily {
    /// `fs/*`: reading, writing and listing files.
    FileSystem,
    /// `network/*`: outgoing HTTP and sockets.
    Network,
    /// `clipboard/*`.
    Clipboard,
    /// `secrets/*`: the secret store.
    Secrets,
    /// `window/*` and `ui/*`: messages, prompts and pickers.
    Ui,
    /// `terminal/*`.
    Terminal,
    /// `commands/*`: running other extensions' commands.
    Commands,
    /// Any other method.
    Other,
}

impl ApiFamily {
    /// Every family, in declaration order (`ALL[f as usize] == f`).
    pub const ALL: [Self; 8] = [
        Self::FileSystem,
        Self::Network,
        Self::Clipboard,
        Self::Secrets,
        Self::Ui,
        Self::Terminal,
        Self::Commands,
        Self::Other,
    ];

    /// The family of a wire method, by the prefix before its first `/` (`fs/readFile` is
    /// [`FileSystem`](Self::FileSystem)). Prefixes are case-sensitive; anything unrecognised,
    /// including a method with no `/`, is [`Other`](Self::Other).
    #[must_use]
    pub fn of_method(method: &str) -> Self {
        let Some((prefix, _)) = method.split_once('/') else {
            return Self::Other;
        };
        match prefix {
            "fs" => Self::FileSystem,
            "network" => Self::Network,
            "clipboard" => Self::Clipboard,
            "secrets" => Self::Secrets,
            "window" | "ui" => Self::Ui,
            "terminal" => Self::Terminal,
            "commands" => Self::Commands,
            _ => Self::Other,
        }
    }

    /// The name extension authors know, matching the permission namespaces (`fileSystem`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileSystem => "fileSystem",
            Self::Network => "network",
            Self::Clipboard => "clipboard",
            Self::Secrets => "secrets",
            Self::Ui => "ui",
            Self::Terminal => "terminal",
            Self::Commands => "commands",
            Self::Other => "other",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ApiFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const DEFAULT_PER_SECOND: NonZeroU32 = NonZeroU32::new(100).unwrap();
const DEFAULT_BURST: NonZeroU32 = NonZeroU32::new(200).unwrap();

/// `[rate_limit]`: how many host API requests each extension may make.
///
/// Rates are [`NonZeroU32`] so that a limit that would refuse every call cannot be written; to
/// keep an extension away from an API, deny it the permission instead. In TOML a zero is rejected
/// with the key and line, like an unknown key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Sustained requests per second per extension, across all families (default 100).
    pub per_second: NonZeroU32,
    /// Requests an idle extension may make at once (default 200).
    pub burst: NonZeroU32,
    /// Extra `(per_second, burst)` limits for one family, applied to each extension separately
    /// and on top of its overall limit. Empty by default.
    pub families: BTreeMap<ApiFamily, (NonZeroU32, NonZeroU32)>,
    /// `(per_second, burst)` replacing the overall limit for the extension with that id. Empty by
    /// default.
    pub per_extension: BTreeMap<String, (NonZeroU32, NonZeroU32)>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: DEFAULT_PER_SECOND,
            burst: DEFAULT_BURST,
            families: BTreeMap::new(),
            per_extension: BTreeMap::new(),
        }
    }
}

/// Which of an extension's buckets ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitScope {
    /// The extension's limit for all its calls together.
    Extension,
    /// The extension's limit for the refused call's family.
    Family,
}

/// A call refused because its extension is over its quota. The bucket that refused lost no token,
/// so the call may be retried as is after [`retry_after`](Self::retry_after).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct RateLimited {
    /// The extension that made the call.
    pub extension: String,
    /// The family of the refused call.
    pub family: ApiFamily,
    /// Which limit ran out.
    pub scope: LimitScope,
    /// The sustained rate of that limit.
    pub per_second: u32,
    /// How long until the same call would be accepted (if nothing else is called meanwhile).
    pub retry_after: Duration,
}

impl RateLimited {
    /// [`retry_after`](Self::retry_after) in whole milliseconds, rounded up and at least 1, so a
    /// client that waits exactly this long is not refused again.
    #[must_use]
    pub fn retry_after_ms(&self) -> u64 {
        let ms = self.retry_after.as_micros().div_ceil(1000).max(1);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "extension {} exceeded its {} requests/s ",
            self.extension, self.per_second
        )?;
        match self.scope {
            LimitScope::Family => write!(f, "for {} calls", self.family)?,
            LimitScope::Extension => f.write_str("for all host API calls")?,
        }
        write!(f, "; retry after {} ms", self.retry_after_ms())
    }
}

/// A point in time on [`TokioClock`]; a newtype because governor's [`Reference`] and
/// `Add<Nanos>` cannot be implemented for [`tokio::time::Instant`] here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        self.0.checked_sub(duration.into()).map_or(*self, Self)
    }
}

/// The buckets' clock: [`tokio::time::Instant::now`].
///
/// It is used in production as well as in tests. Without tokio's `test-util` feature (only a
/// dev-dependency here) it is exactly [`std::time::Instant::now`]; with it, it reads the
/// runtime's clock, so tests under `#[tokio::test(start_paused = true)]` move time with
/// `tokio::time::advance` instead of sleeping. Governor's default clock (quanta) would be
/// another dependency and could not be paused.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Bucket =
    governor::RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

#[derive(Debug, Clone, Copy)]
struct Rate {
    per_second: NonZeroU32,
    quota: Quota,
}

impl Rate {
    fn new((per_second, burst): (NonZeroU32, NonZeroU32)) -> Self {
        Self {
            per_second,
            quota: Quota::per_second(per_second).allow_burst(burst),
        }
    }

    fn bucket(self) -> Limit {
        Limit {
            per_second: self.per_second.get(),
            bucket: Bucket::direct_with_clock(self.quota, TokioClock),
        }
    }
}

#[derive(Debug)]
struct Limit {
    per_second: u32,
    bucket: Bucket,
}

impl Limit {
    fn check(
        &self,
        extension: &str,
        family: ApiFamily,
        scope: LimitScope,
    ) -> Result<(), RateLimited> {
        self.bucket.check().map_err(|not_until| RateLimited {
            extension: extension.to_owned(),
            family,
            scope,
            per_second: self.per_second,
            retry_after: not_until.wait_time_from(TokioClock.now()),
        })
    }
}

/// One extension's buckets.
#[derive(Debug)]
struct Buckets {
    all: Limit,
    families: [Option<Limit>; ApiFamily::ALL.len()],
}

impl Buckets {
    fn check(&self, extension: &str, family: ApiFamily) -> Result<(), RateLimited> {
        // Family first: a refused call takes no token from the bucket that refused it, so a
        // flood of, say, clipboard calls stopped by the clipboard limit leaves the overall bucket
        // (and with it the extension's file system calls) alone. The price is that a call which
        // passes its family and is then refused overall has spent a family token; that only
        // happens to an extension already over its overall limit.
        if let Some(limit) = &self.families[family.index()] {
            limit.check(extension, family, LimitScope::Family)?;
        }
        self.all.check(extension, family, LimitScope::Extension)
    }
}

/// Per-extension token buckets for the host API. Thread-safe and shared by reference.
///
/// Each extension gets its own buckets the first time it calls, so one extension's flood never
/// spends another's tokens; [`remove_extension`](Self::remove_extension) forgets them.
///
/// The buckets are governor's direct (un-keyed) limiters, one lock-free atomic each, in a
/// `RwLock<HashMap>` keyed by extension id rather than governor's keyed limiter: a keyed limiter
/// has one quota for all keys (per-extension overrides would need a limiter per override),
/// cannot forget a single key (only keys that have been idle long enough), and takes its key as
/// `&String`, which would mean allocating on every call. Here the hot path is a shared read
/// lock, a lookup by `&str` and one or two compare-and-swaps; the write lock is taken only on an
/// extension's first call and when it is removed, and never across an `.await`.
pub struct RateLimiter {
    default: Rate,
    families: [Option<Rate>; ApiFamily::ALL.len()],
    per_extension: HashMap<String, Rate>,
    extensions: RwLock<HashMap<String, Buckets>>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tracked = self
            .extensions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("RateLimiter")
            .field("default", &self.default)
            .field("families", &self.families)
            .field("per_extension", &self.per_extension)
            .field("tracked_extensions", &tracked)
            .finish()
    }
}

impl RateLimiter {
    /// A limiter enforcing `config`. Buckets start full.
    #[must_use]
    pub fn new(config: RateLimitConfig) -> Self {
        let mut families = [None; ApiFamily::ALL.len()];
        for (family, rate) in config.families {
            families[family.index()] = Some(Rate::new(rate));
        }
        Self {
            default: Rate::new((config.per_second, config.burst)),
            families,
            per_extension: config
                .per_extension
                .into_iter()
                .map(|(id, rate)| (id, Rate::new(rate)))
                .collect(),
            extensions: RwLock::new(HashMap::new()),
        }
    }

    /// Takes a token for one call by `extension` in `family`.
    ///
    /// `extension` must be the caller's authenticated id (from the connection, never from the
    /// message): buckets are created for any id on its first call.
    ///
    /// # Errors
    /// [`RateLimited`] if the family's or the extension's bucket is empty; no token is taken
    /// from the bucket that refused.
    pub fn check(&self, extension: &str, family: ApiFamily) -> Result<(), RateLimited> {
        // The map only ever holds whole entries, so a panic elsewhere while a guard was held
        // cannot leave it inconsistent: a poisoned lock is used as is rather than spreading the
        // panic to every later call.
        if let Some(buckets) = self
            .extensions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(extension)
        {
            return buckets.check(extension, family);
        }
        let mut extensions = self
            .extensions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let buckets = extensions
            .entry(extension.to_owned())
            .or_insert_with(|| self.buckets_for(extension));
        buckets.check(extension, family)
    }

    /// Forgets `extension`'s buckets, so if it is loaded again it starts with full ones. Call it
    /// once the extension can make no more calls; a call after this starts new buckets.
    pub fn remove_extension(&self, extension: &str) {
        self.extensions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(extension);
    }

    fn buckets_for(&self, extension: &str) -> Buckets {
        let all = self
            .per_extension
            .get(extension)
            .copied()
            .unwrap_or(self.default);
        Buckets {
            all: all.bucket(),
            families: self.families.map(|rate| rate.map(Rate::bucket)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("test rates are positive")
    }

    fn config(per_second: u32, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            per_second: nz(per_second),
            burst: nz(burst),
            ..RateLimitConfig::default()
        }
    }

    /// Makes calls until one is refused; returns how many were accepted and the refusal.
    fn drain(limiter: &RateLimiter, extension: &str, family: ApiFamily) -> (u32, RateLimited) {
        let mut accepted = 0;
        loop {
            match limiter.check(extension, family) {
                Ok(()) => accepted += 1,
                Err(refused) => return (accepted, refused),
            }
            assert!(accepted <= 100_000, "{extension} was never refused");
        }
    }

    #[test]
    fn methods_map_to_families_by_prefix() {
        let table = [
            ("fs/readFile", ApiFamily::FileSystem),
            ("fs/", ApiFamily::FileSystem),
            ("network/fetch", ApiFamily::Network),
            ("clipboard/readText", ApiFamily::Clipboard),
            ("secrets/get", ApiFamily::Secrets),
            ("window/showMessage", ApiFamily::Ui),
            ("ui/pick", ApiFamily::Ui),
            ("terminal/sendText", ApiFamily::Terminal),
            ("commands/execute", ApiFamily::Commands),
            ("extension/activate", ApiFamily::Other),
            ("fs", ApiFamily::Other),
            ("fsx/readFile", ApiFamily::Other),
            ("FS/readFile", ApiFamily::Other),
            ("readFile/fs/", ApiFamily::Other),
            ("", ApiFamily::Other),
        ];
        for (method, family) in table {
            assert_eq!(ApiFamily::of_method(method), family, "{method:?}");
        }
    }

    #[test]
    fn family_index_matches_all() {
        for (i, family) in ApiFamily::ALL.into_iter().enumerate() {
            assert_eq!(family.index(), i, "{family}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_refusal_then_refill_after_retry_after() {
        let limiter = RateLimiter::new(config(100, 200));
        let (accepted, refused) = drain(&limiter, "a.ext", ApiFamily::FileSystem);
        assert_eq!(accepted, 200);
        assert_eq!(refused.scope, LimitScope::Extension);
        assert_eq!(refused.extension, "a.ext");
        assert_eq!(refused.family, ApiFamily::FileSystem);
        let refill = Duration::from_millis(10);
        assert!(refused.retry_after > Duration::ZERO, "{refused:?}");
        assert!(refused.retry_after <= refill, "{refused:?}");

        // Refusals are free: asking again right away is refused with the same wait.
        assert_eq!(
            limiter.check("a.ext", ApiFamily::FileSystem),
            Err(refused.clone())
        );

        tokio::time::advance(refused.retry_after).await;
        assert_eq!(limiter.check("a.ext", ApiFamily::FileSystem), Ok(()));
        assert!(
            limiter.check("a.ext", ApiFamily::FileSystem).is_err(),
            "one interval buys one call"
        );

        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            drain(&limiter, "a.ext", ApiFamily::Network).0,
            200,
            "the whole burst comes back"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_message_tells_the_author_what_happened_and_when_to_retry() {
        let mut cfg = config(100, 1);
        cfg.families.insert(ApiFamily::FileSystem, (nz(3), nz(1)));
        let limiter = RateLimiter::new(cfg);

        limiter.check("acme.fs", ApiFamily::FileSystem).unwrap();
        let refused = limiter.check("acme.fs", ApiFamily::FileSystem).unwrap_err();
        // 1 s / 3 = 333.33 ms, rounded up so that waiting that long is enough.
        assert_eq!(refused.retry_after_ms(), 334);
        assert_eq!(
            refused.to_string(),
            "extension acme.fs exceeded its 3 requests/s for fileSystem calls; retry after 334 ms"
        );

        limiter.check("acme.ui", ApiFamily::Ui).unwrap();
        let refused = limiter.check("acme.ui", ApiFamily::Ui).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "extension acme.ui exceeded its 100 requests/s for all host API calls; retry after 10 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn extensions_have_independent_buckets() {
        let limiter = RateLimiter::new(config(10, 20));
        assert_eq!(drain(&limiter, "flood.er", ApiFamily::FileSystem).0, 20);
        for _ in 0..1000 {
            assert!(limiter.check("flood.er", ApiFamily::FileSystem).is_err());
        }
        assert_eq!(drain(&limiter, "quiet.one", ApiFamily::FileSystem).0, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn family_limit_is_stricter_and_spares_the_other_families() {
        let mut cfg = config(100, 200);
        cfg.families.insert(ApiFamily::Clipboard, (nz(5), nz(10)));
        let limiter = RateLimiter::new(cfg);

        let (accepted, refused) = drain(&limiter, "a.ext", ApiFamily::Clipboard);
        assert_eq!(accepted, 10);
        assert_eq!(refused.scope, LimitScope::Family);
        assert_eq!(refused.per_second, 5);
        assert!(
            refused.retry_after > Duration::ZERO
                && refused.retry_after <= Duration::from_millis(200)
        );
        for _ in 0..1000 {
            assert!(limiter.check("a.ext", ApiFamily::Clipboard).is_err());
        }
        // The 10 clipboard calls came out of the overall burst too; the refused ones did not.
        assert_eq!(drain(&limiter, "a.ext", ApiFamily::FileSystem).0, 190);
        // Every extension has its own family bucket.
        assert_eq!(drain(&limiter, "b.ext", ApiFamily::Clipboard).0, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn family_limit_cannot_loosen_the_overall_limit() {
        let mut cfg = config(10, 5);
        cfg.families
            .insert(ApiFamily::Network, (nz(1000), nz(1000)));
        let limiter = RateLimiter::new(cfg);
        let (accepted, refused) = drain(&limiter, "a.ext", ApiFamily::Network);
        assert_eq!(accepted, 5);
        assert_eq!(refused.scope, LimitScope::Extension);
    }

    #[tokio::test(start_paused = true)]
    async fn per_extension_limit_replaces_the_default_for_that_extension_only() {
        let mut cfg = config(100, 200);
        cfg.per_extension
            .insert("big.indexer".to_owned(), (nz(1000), nz(500)));
        cfg.per_extension
            .insert("tiny.ext".to_owned(), (nz(1), nz(2)));
        let limiter = RateLimiter::new(cfg);

        assert_eq!(drain(&limiter, "big.indexer", ApiFamily::FileSystem).0, 500);
        let (accepted, refused) = drain(&limiter, "tiny.ext", ApiFamily::FileSystem);
        assert_eq!(accepted, 2);
        assert_eq!(refused.per_second, 1);
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert_eq!(drain(&limiter, "other.ext", ApiFamily::FileSystem).0, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn removing_an_extension_gives_it_fresh_buckets() {
        let mut cfg = config(1, 3);
        cfg.families.insert(ApiFamily::Terminal, (nz(1), nz(1)));
        let limiter = RateLimiter::new(cfg);
        assert_eq!(drain(&limiter, "a.ext", ApiFamily::Other).0, 3);
        assert_eq!(drain(&limiter, "b.ext", ApiFamily::Other).0, 3);

        limiter.remove_extension("a.ext");
        limiter.remove_extension("never.seen");
        assert_eq!(drain(&limiter, "a.ext", ApiFamily::Terminal).0, 1);
        assert!(
            limiter.check("b.ext", ApiFamily::Other).is_err(),
            "only a.ext was reset"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn checks_from_many_threads_never_exceed_the_burst() {
        let limiter = RateLimiter::new(config(1, 50));
        // Real threads, each inside the runtime so that they read its paused clock: no token can
        // come back while they race.
        let runtime = tokio::runtime::Handle::current();
        let accepted: usize = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let _runtime = runtime.enter();
                        (0..100)
                            .filter(|_| limiter.check("a.ext", ApiFamily::Other).is_ok())
                            .count()
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("checker thread"))
                .sum()
        });
        assert_eq!(accepted, 50);
    }

    #[test]
    fn config_defaults_and_full_toml() {
        let empty: RateLimitConfig = toml::from_str("").unwrap();
        assert_eq!(empty, RateLimitConfig::default());
        assert_eq!((empty.per_second.get(), empty.burst.get()), (100, 200));

        let cfg: RateLimitConfig = toml::from_str(
            r#"
            per_second = 50
            burst = 75
            [families]
            file_system = [10, 20]
            ui = [1, 1]
            [per_extension]
            "acme.indexer" = [500, 1000]
            "#,
        )
        .unwrap();
        assert_eq!((cfg.per_second.get(), cfg.burst.get()), (50, 75));
        assert_eq!(
            cfg.families,
            BTreeMap::from([
                (ApiFamily::FileSystem, (nz(10), nz(20))),
                (ApiFamily::Ui, (nz(1), nz(1)))
            ])
        );
        assert_eq!(
            cfg.per_extension,
            BTreeMap::from([("acme.indexer".to_owned(), (nz(500), nz(1000)))])
        );

        let partial: RateLimitConfig = toml::from_str("burst = 5").unwrap();
        assert_eq!((partial.per_second.get(), partial.burst.get()), (100, 5));
    }

    #[test]
    fn config_in_a_rate_limit_table() {
        #[derive(Deserialize)]
        struct File {
            rate_limit: RateLimitConfig,
        }
        let file: File = toml::from_str(
            "[rate_limit]\nper_second = 7\n[rate_limit.families]\nclipboard = [2, 3]\n",
        )
        .unwrap();
        assert_eq!(file.rate_limit.per_second.get(), 7);
        assert_eq!(
            file.rate_limit.families[&ApiFamily::Clipboard],
            (nz(2), nz(3))
        );
    }

    #[test]
    fn config_rejects_unknown_keys_families_and_zero_rates() {
        let rejected = [
            ("per_secnd = 5", "per_secnd"),
            ("[families]\nfileSystem = [1, 1]", "fileSystem"),
            ("[families]\nfilesystem = [1, 1]", "filesystem"),
            ("per_second = 0", "nonzero"),
            ("[families]\nnetwork = [5, 0]", "nonzero"),
            ("[families]\nnetwork = [5]", "network"),
            ("[per_extension]\n\"a.b\" = 5", "a.b"),
            ("burst = -1", "burst"),
        ];
        for (text, mentions) in rejected {
            let err = toml::from_str::<RateLimitConfig>(text)
                .expect_err(text)
                .to_string();
            assert!(err.contains(mentions), "{text:?} gave {err}");
        }
    }
}
