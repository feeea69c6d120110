//! What a failure leads to: Unhealthy, the kill when the process may still live, and the
//! restart budget's decision once it is gone (Restarting after a backoff, or Crashed).

use tokio::time::Instant;

use super::messages::{Action, Answer, Exit, Signal, TimerKind};
use super::{EXIT_AFTER_CLOSE, Failure, KILL_WAIT, Machine, Phase, StopStep};
use crate::lifecycle::backoff::Decision;
use crate::lifecycle::error::chain;
use crate::lifecycle::launch::LaunchError;
use crate::lifecycle::state::{Reason, StopOutcome, Trigger};
use crate::process::SpawnError;

impl Machine {
    pub(super) fn on_exit(&mut self, now: Instant, exit: Exit) {
        let healthy_for = |since: Instant| Some(now.saturating_duration_since(since));
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Handshaking | Phase::JoiningCgroup | Phase::Activating => {
                self.cancel_op();
                self.fail_gone(now, Failure::starting(exit_reason(exit), true));
            }
            Phase::Running { since } => {
                self.stop_watchdog();
                let failure = Failure {
                    reason: exit_reason(exit),
                    retryable: true,
                    healthy_for: healthy_for(since),
                };
                self.fail_gone(now, failure);
            }
            Phase::Lost { since, .. } => {
                self.disarm(TimerKind::ExitAfterClose);
                let failure = Failure {
                    reason: exit_reason(exit),
                    retryable: true,
                    healthy_for: since.and_then(healthy_for),
                };
                self.fail_gone(now, failure);
            }
            Phase::Killing {
                mut failure,
                unpublished,
            } => {
                self.disarm(TimerKind::KillWait);
                self.release();
                if unpublished {
                    if let Reason::LimitExceeded { output, .. } = &mut failure.reason {
                        *output = exit.output;
                    }
                    self.publish(Trigger::Failed, failure.reason.clone());
                }
                self.decide(now, failure);
            }
            Phase::Stopping { step, then } => {
                self.phase = Phase::Stopping { step, then };
                let how = match step {
                    StopStep::Shutdown => {
                        self.cancel_op();
                        self.disarm(TimerKind::ShutdownGrace);
                        StopOutcome::Graceful
                    }
                    StopStep::Terminate => {
                        self.disarm(TimerKind::TermGrace);
                        StopOutcome::Terminated
                    }
                    StopStep::Kill => {
                        self.disarm(TimerKind::KillWait);
                        StopOutcome::Killed
                    }
                    StopStep::Failing => {
                        self.disarm(TimerKind::KillWait);
                        StopOutcome::NotRunning
                    }
                    StopStep::Launching => return self.unexpected("ProcessExited"),
                };
                self.stopped(how);
            }
            other => {
                self.phase = other;
                self.unexpected("ProcessExited");
            }
        }
    }

    /// The watchdog found a running host hung or over a limit.
    pub(super) fn on_running_failure(&mut self, now: Instant, reason: Reason, limit: bool) {
        let Phase::Running { since } = self.phase else {
            return self.unexpected("a watchdog alarm");
        };
        self.stop_watchdog();
        let failure = Failure {
            reason,
            retryable: true,
            healthy_for: Some(now.saturating_duration_since(since)),
        };
        // A limit kill is announced once the process is gone, with its last words.
        self.fail_live(failure, limit);
    }

    pub(super) fn on_connection_lost(&mut self, message: String) {
        let Phase::Running { since } = self.phase else {
            return self.unexpected("ConnectionLost");
        };
        self.stop_watchdog();
        self.phase = Phase::Lost {
            fallback: Reason::ConnectionLost { message },
            since: Some(since),
        };
        self.arm(TimerKind::ExitAfterClose, EXIT_AFTER_CLOSE);
    }

    /// A failure while the process may still live: Unhealthy (unless `defer_publish`), kill it,
    /// and decide once it is gone.
    pub(super) fn fail_live(&mut self, failure: Failure, defer_publish: bool) {
        self.cancel_op();
        if !defer_publish {
            self.publish(Trigger::Failed, failure.reason.clone());
        }
        self.out.push(Action::Signal(Signal::Kill));
        self.arm(TimerKind::KillWait, KILL_WAIT);
        self.phase = Phase::Killing {
            failure,
            unpublished: defer_publish,
        };
    }

    /// A failure with the process already gone (or never there): Unhealthy, and decide now.
    pub(super) fn fail_gone(&mut self, now: Instant, failure: Failure) {
        self.publish(Trigger::Failed, failure.reason.clone());
        if self.process {
            // Whatever the host started in its group goes with it.
            self.out.push(Action::Signal(Signal::Kill));
            self.release();
        }
        self.decide(now, failure);
    }

    /// Restart after a backoff, or give up.
    pub(super) fn decide(&mut self, now: Instant, failure: Failure) {
        match self
            .budget
            .on_failure(now, failure.healthy_for, failure.retryable)
        {
            Decision::Restart { attempt, delay } => {
                self.restarts += 1;
                self.publish(Trigger::Retry, Reason::Backoff { attempt, delay });
                self.arm(TimerKind::Backoff, delay);
                self.phase = Phase::Backoff { attempt };
            }
            Decision::GiveUp { restarts } => {
                let reason = Reason::GaveUp {
                    restarts,
                    last: Box::new(failure.reason),
                };
                self.publish(Trigger::GiveUp, reason.clone());
                self.answer_starts(&Answer::Crashed(reason));
                self.phase = Phase::Idle;
            }
        }
    }
}

/// How an exit reads as a failure: a kill by a limit says which.
fn exit_reason(exit: Exit) -> Reason {
    match exit.over_limit {
        Some((limit, detail)) => Reason::LimitExceeded {
            limit,
            detail,
            output: exit.output,
        },
        None => Reason::Exited {
            code: exit.code,
            signal: exit.signal,
            output: exit.output,
        },
    }
}

/// Which launch failures are worth a retry: a missing program or a sandbox this machine cannot
/// enforce stays so.
pub(super) fn launch_failure(err: &LaunchError) -> Failure {
    match err {
        LaunchError::Spawn(spawn) => Failure::starting(
            Reason::SpawnFailed {
                message: chain(spawn),
            },
            !matches!(spawn, SpawnError::NotFound { .. }),
        ),
        LaunchError::Sandbox(_) | LaunchError::SetupTask(_) => Failure::starting(
            Reason::SandboxUnavailable {
                message: chain(err),
            },
            false,
        ),
    }
}
