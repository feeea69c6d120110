//! Watching a running host: its heartbeats, and the limits the supervisor enforces itself.
//!
//! The [`Watchdog`] raises an [`Alarm`] when the host's event loop has been silent for the
//! heartbeat timeout, or when it is over a limit; what happens then is the machine's decision.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::rpc::Heartbeats;
use crate::sandbox::Layer;
use crate::sandbox::cgroup::HostCgroup;
use crate::sandbox::prepare::Watchdog as Limits;
use crate::sandbox::watch::TreeWatch;

/// How often the supervisor checks a host's limits.
const LIMIT_CHECK: Duration = Duration::from_millis(100);
/// How often to read the cgroup's counters when the cgroup enforces every limit itself.
const CGROUP_CHECK: Duration = Duration::from_secs(1);

/// The host's cgroup and the limits the supervisor watches itself.
pub(crate) struct LimitGuard {
    cgroup: Option<HostCgroup>,
    limits: Limits,
    tree: TreeWatch,
}

/// How [`LimitGuard::exceeded`] looks at the process tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Look {
    /// The regular check: the tree is walked again when that is due.
    Scheduled,
    /// Walk it now: the last walk may be two seconds old.
    Fresh,
    /// What the last check saw: the tree is gone with its root.
    Last,
}

impl LimitGuard {
    /// Limits for the process tree under `group`, whose walks stop one process over
    /// `max_processes` (whoever enforces it): enough to know the limit is reached, and memory
    /// is summed over that many.
    pub(crate) fn new(
        cgroup: Option<HostCgroup>,
        limits: Limits,
        group: u32,
        max_processes: u64,
    ) -> Self {
        let cap = usize::try_from(max_processes)
            .map_or(TreeWatch::DEFAULT_CAP, |max| max.saturating_add(1));
        Self {
            cgroup,
            limits,
            tree: TreeWatch::new(group).with_cap(cap),
        }
    }

    /// Whether the supervisor watches a limit itself (no cgroup enforces it).
    fn active(&self) -> bool {
        self.limits.memory_bytes.is_some() || self.limits.pids.is_some()
    }

    /// A limit the host is over, if any: the cgroup's own counters first, then the
    /// supervisor's view of the host's process tree, taken as `look` says.
    pub(crate) fn exceeded(&mut self, look: Look) -> Option<(Layer, String)> {
        if let Some(cgroup) = &self.cgroup {
            if cgroup.oom_kills() > 0 {
                return Some((Layer::Memory, "the memory cgroup's OOM killer fired".into()));
            }
            if cgroup.pids_max_hits() > 0 {
                return Some((
                    Layer::Processes,
                    "a fork was refused at the cgroup's pids limit".into(),
                ));
            }
        }
        if !self.active() {
            return None;
        }
        let usage = match look {
            Look::Scheduled => self.tree.usage(),
            Look::Fresh => self.tree.usage_now(),
            Look::Last => self.tree.last(),
        };
        // Processes first: a fork bomb of Node processes also adds up to a lot of memory.
        if let Some(max) = self.limits.pids
            && usage.tasks >= max
        {
            return Some((
                Layer::Processes,
                format!(
                    "{} processes and threads, at the limit of {max}",
                    usage.tasks
                ),
            ));
        }
        if let Some(max) = self.limits.memory_bytes
            && usage.rss_bytes > max
        {
            return Some((
                Layer::Memory,
                format!(
                    "{} MiB resident, over the {} MiB limit",
                    usage.rss_bytes >> 20,
                    max >> 20
                ),
            ));
        }
        None
    }
}

/// What the watchdog found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Alarm {
    /// No heartbeat for this long.
    Hung {
        /// The silence.
        silent_for: Duration,
    },
    /// Over a limit.
    Limit {
        /// Which.
        limit: Layer,
        /// What was measured.
        detail: String,
    },
}

/// The heartbeat deadline and the limit checks of one running host.
pub(crate) struct Watchdog {
    timeout: Duration,
    heartbeats: Heartbeats,
    beats_open: bool,
    last_beat: Instant,
    deadline: Pin<Box<Sleep>>,
    /// The watchdog needs its own quick tick. When the cgroup enforces every limit, the kernel
    /// stops the host itself and the check only notices a refused fork to report it: that
    /// rides on the heartbeats, so idle hosts cost no extra wake-ups.
    ticking: bool,
    tick: Interval,
    last_check: Instant,
    /// It raises one alarm: what follows is the machine's business.
    raised: bool,
}

impl Watchdog {
    /// Starts watching: the first heartbeat is due within `timeout` from now.
    pub(crate) fn new(heartbeats: Heartbeats, limits: &LimitGuard, timeout: Duration) -> Self {
        let now = Instant::now();
        let mut tick = tokio::time::interval_at(aligned_tick(), LIMIT_CHECK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            timeout,
            heartbeats,
            beats_open: true,
            last_beat: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
            ticking: limits.active(),
            tick,
            last_check: now,
            raised: false,
        }
    }

    /// Waits for the alarm; after it, waits forever.
    ///
    /// # Cancel safety
    /// Cancel safe: what it has seen is kept in `self`, and every wait inside is cancel safe.
    pub(crate) async fn alarm(&mut self, limits: &mut LimitGuard) -> Alarm {
        if self.raised {
            return std::future::pending().await;
        }
        let alarm = self.watch(limits).await;
        self.raised = true;
        alarm
    }

    async fn watch(&mut self, limits: &mut LimitGuard) -> Alarm {
        loop {
            let over = tokio::select! {
                _ = self.tick.tick(), if self.ticking => limits.exceeded(Look::Scheduled),
                changed = self.heartbeats.changed(), if self.beats_open => {
                    if changed.is_some() {
                        self.last_beat = Instant::now();
                        self.deadline.as_mut().reset(self.last_beat + self.timeout);
                    } else {
                        self.beats_open = false;
                    }
                    if !self.ticking
                        && limits.cgroup.is_some()
                        && self.last_check.elapsed() >= CGROUP_CHECK
                    {
                        self.last_check = Instant::now();
                        limits.exceeded(Look::Scheduled)
                    } else {
                        None
                    }
                }
                () = &mut self.deadline => {
                    // A host at its process limit often hangs rather than dies: name the limit,
                    // from a fresh look at its tree (the last walk may be two seconds old).
                    let over = limits.exceeded(Look::Fresh);
                    if over.is_none() {
                        return Alarm::Hung { silent_for: self.last_beat.elapsed() };
                    }
                    over
                }
            };
            if let Some((limit, detail)) = over {
                return Alarm::Limit { limit, detail };
            }
        }
    }
}

/// The next multiple of [`LIMIT_CHECK`] since a process-wide epoch: every host's watchdog
/// ticks at the same instants, so a hundred hosts wake the supervisor once per tick, not a
/// hundred times.
fn aligned_tick() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let period = LIMIT_CHECK.as_nanos();
    let since = epoch.elapsed().as_nanos();
    let next = (since / period + 1) * period;
    epoch + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}
