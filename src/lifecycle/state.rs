//! The host lifecycle as a pure transition function.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Where a host is in its life.
///
/// ```text
/// Stopped ─start─▶ Starting ─activated─▶ Running
///                     │                     │ exit, hang, lost connection
///                     └──────failed──────▶ Unhealthy ─budget left─▶ Restarting ─backoff─▶ Starting
///                                           └─budget spent─▶ Crashed ─start─▶ Starting
/// any state ─stop─▶ Stopping ─process gone─▶ Stopped
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtensionHostState {
    /// No process; the initial and final state.
    Stopped,
    /// A process was spawned and is handshaking or activating.
    Starting,
    /// Activated and answering heartbeats.
    Running,
    /// It exited, hung or broke the protocol; about to be restarted or given up on.
    Unhealthy,
    /// Waiting out the backoff before the next start.
    Restarting,
    /// Failed too often within the restart window; stays down until started again.
    Crashed,
    /// Shutting down on request.
    Stopping,
}

impl ExtensionHostState {
    /// The lowercase name used in logs, `status` and events.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Unhealthy => "unhealthy",
            Self::Restarting => "restarting",
            Self::Crashed => "crashed",
            Self::Stopping => "stopping",
        }
    }

    /// Whether a process may exist in this state.
    #[must_use]
    pub fn has_process(self) -> bool {
        matches!(
            self,
            Self::Starting | Self::Running | Self::Unhealthy | Self::Stopping
        )
    }
}

impl fmt::Display for ExtensionHostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `start()` was called.
    Start,
    /// The host finished activating.
    Activated,
    /// The host exited, hung, or failed to start.
    Failed,
    /// The restart budget allows another attempt.
    Retry,
    /// The restart budget is spent.
    GiveUp,
    /// The backoff delay is over.
    BackoffElapsed,
    /// `stop()` was called.
    Stop,
    /// The process is gone after a stop.
    Exited,
}

/// A trigger that makes no sense in the current state: a bug in the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no transition from {from} on {trigger:?}")]
pub struct InvalidTransition {
    /// The state the host was in.
    pub from: ExtensionHostState,
    /// The trigger that does not apply.
    pub trigger: Trigger,
}

/// The next state, or why there is none.
///
/// # Errors
/// [`InvalidTransition`] for a trigger the state does not accept.
pub fn transition(
    from: ExtensionHostState,
    trigger: Trigger,
) -> Result<ExtensionHostState, InvalidTransition> {
    use ExtensionHostState as S;
    use Trigger as T;
    #[expect(
        clippy::match_same_arms,
        reason = "one arm per edge of the state diagram"
    )]
    Ok(match (from, trigger) {
        (S::Stopped | S::Crashed, T::Start) => S::Starting,
        (S::Starting, T::Activated) => S::Running,
        (S::Starting | S::Running, T::Failed) => S::Unhealthy,
        (S::Unhealthy, T::Retry) => S::Restarting,
        (S::Unhealthy, T::GiveUp) => S::Crashed,
        (S::Restarting, T::BackoffElapsed) => S::Starting,
        (S::Starting | S::Running | S::Unhealthy | S::Restarting | S::Crashed, T::Stop) => {
            S::Stopping
        }
        (S::Stopping, T::Exited) => S::Stopped,
        _ => return Err(InvalidTransition { from, trigger }),
    })
}

/// Why a transition happened, with the details a crash report needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[non_exhaustive]
pub enum Reason {
    /// Asked for through `start()` or `stop()`.
    Requested,
    /// Activation finished; the extension registered these commands.
    Activated {
        /// Command ids registered during activation.
        commands: Vec<String>,
    },
    /// The process exited on its own.
    Exited {
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// The signal that killed it, if one did.
        signal: Option<i32>,
        /// Its last lines of output.
        output: Vec<String>,
    },
    /// No heartbeat arrived in time: the extension is stuck (for example in a busy loop).
    Hung {
        /// How long the host had been silent.
        #[serde(rename = "silentMs", serialize_with = "as_millis")]
        silent_for: Duration,
    },
    /// The process could not be started at all.
    SpawnFailed {
        /// Why.
        message: String,
    },
    /// The handshake failed or timed out.
    HandshakeFailed {
        /// Why.
        message: String,
    },
    /// `activate()` failed, threw or timed out.
    ActivationFailed {
        /// Why.
        message: String,
        /// Its last lines of output.
        output: Vec<String>,
    },
    /// The IPC connection broke while the process lived on.
    ConnectionLost {
        /// Why.
        message: String,
    },
    /// Waiting before restart attempt `attempt`.
    Backoff {
        /// Which restart this is within the window (1-based).
        attempt: u32,
        /// How long the wait is.
        #[serde(rename = "delayMs", serialize_with = "as_millis")]
        delay: Duration,
    },
    /// The backoff is over; restart attempt `attempt` begins.
    RestartAttempt {
        /// Which restart this is within the window (1-based).
        attempt: u32,
    },
    /// Too many failures inside the restart window, or a failure retrying cannot fix.
    GaveUp {
        /// Restarts made inside the window.
        restarts: u32,
        /// The failure that ended it.
        last: Box<Reason>,
    },
    /// The supervisor killed the host, or the kernel did, for going over a resource limit.
    LimitExceeded {
        /// Which limit (`memory`, `processes`).
        limit: crate::sandbox::Layer,
        /// What was measured.
        detail: String,
        /// Its last lines of output.
        output: Vec<String>,
    },
    /// The sandbox the profile requires cannot be enforced; retrying cannot help.
    SandboxUnavailable {
        /// What is missing and what to do about it.
        message: String,
    },
    /// The host's grants changed what its sandbox lets it reach directly, so it is stopped and
    /// started again with this view (a running sandbox cannot be narrowed in place).
    ViewChanged {
        /// The `fileSystem` grants it now has (what its view is computed from).
        grants: Vec<String>,
    },
    /// The host is gone after a stop.
    Stopped {
        /// How it ended.
        how: StopOutcome,
    },
}

/// How a stop ended the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StopOutcome {
    /// No process was running.
    NotRunning,
    /// It deactivated and exited after the shutdown message.
    Graceful,
    /// It exited after SIGTERM.
    Terminated,
    /// It had to be `SIGKILLed`.
    Killed,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("requested"),
            Self::Activated { commands } => {
                write!(f, "activated with {} command(s)", commands.len())
            }
            Self::Exited {
                code: Some(code), ..
            } => write!(f, "exited with code {code}"),
            Self::Exited {
                signal: Some(signal),
                ..
            } => write!(f, "killed by signal {signal} ({})", signal_name(*signal)),
            Self::Exited { .. } => f.write_str("exited"),
            Self::Hung { silent_for } => {
                write!(f, "hung: no heartbeat for {} ms", silent_for.as_millis())
            }
            Self::SpawnFailed { message } => write!(f, "could not start: {message}"),
            Self::HandshakeFailed { message } => write!(f, "handshake failed: {message}"),
            Self::ActivationFailed { message, .. } => write!(f, "activation failed: {message}"),
            Self::ConnectionLost { message } => write!(f, "connection lost: {message}"),
            Self::Backoff { attempt, delay } => {
                write!(f, "restart {attempt} in {} ms", delay.as_millis())
            }
            Self::GaveUp { restarts, last } => write!(
                f,
                "gave up after {restarts} restart(s); last failure: {last}"
            ),
            Self::RestartAttempt { attempt } => write!(f, "restart attempt {attempt}"),
            Self::LimitExceeded { limit, detail, .. } => {
                write!(f, "killed for exceeding its {limit} limit: {detail}")
            }
            Self::SandboxUnavailable { message } => f.write_str(message),
            Self::ViewChanged { grants } if grants.is_empty() => {
                f.write_str("grants changed its sandbox: no file-system grants left")
            }
            Self::ViewChanged { grants } => {
                write!(f, "grants changed its sandbox: now {}", grants.join(", "))
            }
            Self::Stopped { how } => f.write_str(match how {
                StopOutcome::NotRunning => "no process was running",
                StopOutcome::Graceful => "deactivated and exited",
                StopOutcome::Terminated => "exited on SIGTERM",
                StopOutcome::Killed => "killed with SIGKILL after ignoring shutdown and SIGTERM",
            }),
        }
    }
}

/// A readable name for a signal number.
#[must_use]
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

/// One state change, as published to subscribers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChange {
    /// Which extension's host.
    pub extension_id: String,
    /// The state before.
    pub from: ExtensionHostState,
    /// The state after.
    pub to: ExtensionHostState,
    /// Why.
    pub reason: Reason,
    /// When.
    #[serde(serialize_with = "as_unix_millis")]
    pub at: SystemTime,
}

fn as_unix_millis<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    let millis = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    serializer.serialize_u64(u64::try_from(millis).unwrap_or(u64::MAX))
}

impl fmt::Display for StateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} ({})",
            self.extension_id, self.from, self.to, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExtensionHostState as S;
    use Trigger as T;

    const STATES: [S; 7] = [
        S::Stopped,
        S::Starting,
        S::Running,
        S::Unhealthy,
        S::Restarting,
        S::Crashed,
        S::Stopping,
    ];
    const TRIGGERS: [T; 8] = [
        T::Start,
        T::Activated,
        T::Failed,
        T::Retry,
        T::GiveUp,
        T::BackoffElapsed,
        T::Stop,
        T::Exited,
    ];

    /// Every (state, trigger) pair and its expected outcome; `None` means invalid.
    #[test]
    fn full_transition_table() {
        let allowed = [
            (S::Stopped, T::Start, S::Starting),
            (S::Crashed, T::Start, S::Starting),
            (S::Starting, T::Activated, S::Running),
            (S::Starting, T::Failed, S::Unhealthy),
            (S::Running, T::Failed, S::Unhealthy),
            (S::Unhealthy, T::Retry, S::Restarting),
            (S::Unhealthy, T::GiveUp, S::Crashed),
            (S::Restarting, T::BackoffElapsed, S::Starting),
            (S::Starting, T::Stop, S::Stopping),
            (S::Running, T::Stop, S::Stopping),
            (S::Unhealthy, T::Stop, S::Stopping),
            (S::Restarting, T::Stop, S::Stopping),
            (S::Crashed, T::Stop, S::Stopping),
            (S::Stopping, T::Exited, S::Stopped),
        ];
        for from in STATES {
            for trigger in TRIGGERS {
                let expected = allowed
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == trigger)
                    .map(|(_, _, to)| *to);
                assert_eq!(
                    transition(from, trigger).ok(),
                    expected,
                    "{from} on {trigger:?}"
                );
            }
        }
    }

    #[test]
    fn stopped_ignores_stop_and_running_ignores_start() {
        assert!(transition(S::Stopped, T::Stop).is_err());
        assert!(transition(S::Running, T::Start).is_err());
        assert!(transition(S::Stopping, T::Stop).is_err());
    }

    #[test]
    fn reasons_read_well() {
        let exited = Reason::Exited {
            code: None,
            signal: Some(9),
            output: vec![],
        };
        assert_eq!(exited.to_string(), "killed by signal 9 (SIGKILL)");
        let json = serde_json::to_value(Reason::Hung {
            silent_for: Duration::from_millis(1500),
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"kind": "hung", "silentMs": 1500}));
    }
}
