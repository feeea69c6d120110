//! Summaries of timing samples, and the process's own CPU time and memory.

use std::time::Duration;

use serde::Serialize;

/// A sample set reduced to what the report shows. Times are in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The median.
    pub median_us: f64,
    /// The 99th percentile (nearest rank).
    pub p99_us: f64,
    /// The fastest sample.
    pub min_us: f64,
    /// The slowest sample.
    pub max_us: f64,
}

impl Summary {
    /// Summarizes `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        if us.is_empty() {
            return None;
        }
        us.sort_by(f64::total_cmp);
        Some(Self {
            n: us.len(),
            median_us: percentile(&us, 50.0),
            p99_us: percentile(&us, 99.0),
            min_us: us[0],
            max_us: us[us.len() - 1],
        })
    }

    /// Summarizes samples given in nanoseconds (as the Node baseline reports them).
    pub fn of_nanos(samples: &[u64]) -> Option<Self> {
        let durations: Vec<Duration> = samples.iter().map(|&n| Duration::from_nanos(n)).collect();
        Self::of(&durations)
    }

    /// The median in milliseconds.
    pub fn median_ms(&self) -> f64 {
        self.median_us / 1000.0
    }
}

/// Nearest-rank percentile of sorted, non-empty `values`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // a rank of at most a few hundred thousand samples
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `a / b`, or `None` when `b` is zero.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// CPU time (user + system) this process has used so far.
pub fn own_cpu() -> Duration {
    let (user, system) = own_cpu_split();
    user + system
}

/// CPU time this process has used so far, in user space and in the kernel.
pub fn own_cpu_split() -> (Duration, Duration) {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or((Duration::ZERO, Duration::ZERO), |usage| {
        (
            duration_of(usage.user_time()),
            duration_of(usage.system_time()),
        )
    })
}

fn duration_of(t: nix::sys::time::TimeVal) -> Duration {
    let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
    let micros = u32::try_from(t.tv_usec()).unwrap_or(0);
    Duration::new(secs, micros * 1000)
}

/// This process's resident set and its peak, in KiB, from `/proc/self/status`.
pub fn own_rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.n, s.median_us, s.p99_us), (100, 50.0, 99.0));
        assert_eq!((s.min_us, s.max_us), (1.0, 100.0));
        let one = Summary::of(&[Duration::from_micros(7)]).unwrap();
        assert_eq!((one.median_us, one.p99_us), (7.0, 7.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn cpu_time_grows_with_work_and_rss_is_read() {
        let before = own_cpu();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(own_cpu() > before, "50 ms of spinning used no CPU time");
        let (rss, peak) = own_rss_kib();
        assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
    }
}
