//! When to restart a failed host, and when to give up: a pure policy over timestamps.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// How failed hosts are restarted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// Delay before the first restart in a window; later ones double it.
    #[serde(rename = "backoff_initial_ms", with = "millis")]
    pub initial_backoff: Duration,
    /// The longest delay.
    #[serde(rename = "backoff_max_ms", with = "millis")]
    pub max_backoff: Duration,
    /// Restarts allowed inside `window`; the next failure crashes the host.
    pub max_restarts: u32,
    /// The sliding window restarts are counted in.
    #[serde(rename = "window_s", with = "secs")]
    pub window: Duration,
    /// A host that stayed up this long gets a fresh budget when it next fails.
    #[serde(rename = "healthy_reset_s", with = "secs")]
    pub healthy_reset: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_restarts: 3,
            window: Duration::from_secs(300),
            healthy_reset: Duration::from_secs(60),
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart after `delay`; this is restart number `attempt` inside the window.
    Restart {
        /// 1-based count of restarts inside the window, this one included.
        attempt: u32,
        /// How long to wait first.
        delay: Duration,
    },
    /// Stop trying.
    GiveUp {
        /// Restarts made inside the window.
        restarts: u32,
    },
}

/// The restarts a host made recently, judged against a [`RestartPolicy`].
#[derive(Debug, Clone)]
pub struct RestartBudget {
    policy: RestartPolicy,
    restarts: VecDeque<Instant>,
}

impl RestartBudget {
    /// A full budget.
    #[must_use]
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            restarts: VecDeque::new(),
        }
    }

    /// Forgets every past restart (after a manual start).
    pub fn reset(&mut self) {
        self.restarts.clear();
    }

    /// Decides about a failure at `now`. `healthy_for` is how long the host had been running
    /// before it failed (`None` if it failed while starting); `retryable` is false for failures a
    /// restart cannot fix, such as a missing executable.
    pub fn on_failure(
        &mut self,
        now: Instant,
        healthy_for: Option<Duration>,
        retryable: bool,
    ) -> Decision {
        if healthy_for.is_some_and(|up| up >= self.policy.healthy_reset) {
            self.restarts.clear();
        }
        while self
            .restarts
            .front()
            .is_some_and(|&at| now.duration_since(at) >= self.policy.window)
        {
            self.restarts.pop_front();
        }
        let made = u32::try_from(self.restarts.len()).unwrap_or(u32::MAX);
        if !retryable || made >= self.policy.max_restarts {
            return Decision::GiveUp { restarts: made };
        }
        self.restarts.push_back(now);
        Decision::Restart {
            attempt: made + 1,
            delay: self.delay_for(made),
        }
    }

    /// Exponential backoff: `initial * 2^previous`, capped.
    fn delay_for(&self, previous: u32) -> Duration {
        let factor = 1u32.checked_shl(previous.min(31)).unwrap_or(u32::MAX);
        self.policy
            .initial_backoff
            .saturating_mul(factor)
            .min(self.policy.max_backoff)
    }
}

/// Serde helpers for durations written as whole milliseconds in config files.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Serde helpers for durations written as whole seconds in config files.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn default_backoff_is_1_2_4_then_crash() {
        let start = Instant::now();
        let mut budget = RestartBudget::new(RestartPolicy::default());
        let decisions: Vec<_> = (0..4)
            .map(|i| budget.on_failure(start + secs(i), None, true))
            .collect();
        assert_eq!(
            decisions,
            [
                Decision::Restart {
                    attempt: 1,
                    delay: secs(1)
                },
                Decision::Restart {
                    attempt: 2,
                    delay: secs(2)
                },
                Decision::Restart {
                    attempt: 3,
                    delay: secs(4)
                },
                Decision::GiveUp { restarts: 3 },
            ]
        );
    }

    /// (failure times in seconds, `healthy_for` of the last failure, expected last decision)
    #[test]
    fn window_and_healthy_reset_table() {
        let policy = RestartPolicy {
            window: secs(100),
            healthy_reset: secs(30),
            ..RestartPolicy::default()
        };
        let table: [(&[u64], Option<u64>, Decision); 5] = [
            // Three restarts used inside the window: the fourth failure gives up.
            (&[0, 10, 20, 30], None, Decision::GiveUp { restarts: 3 }),
            // The first restart left the window: one slot is free again, and the backoff
            // continues from the two restarts still counted.
            (
                &[0, 10, 20, 100],
                None,
                Decision::Restart {
                    attempt: 3,
                    delay: secs(4),
                },
            ),
            // Everything aged out.
            (
                &[0, 10, 20, 500],
                None,
                Decision::Restart {
                    attempt: 1,
                    delay: secs(1),
                },
            ),
            // Up for 30 s before failing: a fresh budget.
            (
                &[0, 10, 20, 60],
                Some(30),
                Decision::Restart {
                    attempt: 1,
                    delay: secs(1),
                },
            ),
            // Up for 29 s: not healthy long enough.
            (&[0, 10, 20, 60], Some(29), Decision::GiveUp { restarts: 3 }),
        ];
        for (times, healthy, expected) in table {
            let start = Instant::now();
            let mut budget = RestartBudget::new(policy.clone());
            let (last, earlier) = times.split_last().unwrap();
            for t in earlier {
                budget.on_failure(start + secs(*t), None, true);
            }
            let got = budget.on_failure(start + secs(*last), healthy.map(secs), true);
            assert_eq!(got, expected, "{times:?} healthy {healthy:?}");
        }
    }

    #[test]
    fn unretryable_failures_give_up_at_once() {
        let mut budget = RestartBudget::new(RestartPolicy::default());
        assert_eq!(
            budget.on_failure(Instant::now(), None, false),
            Decision::GiveUp { restarts: 0 }
        );
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let policy = RestartPolicy {
            max_restarts: 100,
            max_backoff: secs(10),
            ..RestartPolicy::default()
        };
        let mut budget = RestartBudget::new(policy);
        let now = Instant::now();
        let last = (0..100)
            .map(|_| budget.on_failure(now, None, true))
            .last()
            .unwrap();
        assert_eq!(
            last,
            Decision::Restart {
                attempt: 100,
                delay: secs(10)
            }
        );
    }

    #[test]
    fn zero_backoff_is_allowed() {
        let policy = RestartPolicy {
            initial_backoff: Duration::ZERO,
            ..RestartPolicy::default()
        };
        let mut budget = RestartBudget::new(policy);
        assert_eq!(
            budget.on_failure(Instant::now(), None, true),
            Decision::Restart {
                attempt: 1,
                delay: Duration::ZERO
            }
        );
    }
}
