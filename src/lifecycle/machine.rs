//! The lifecycle of one host as a sans-IO machine: what happened goes in, what to do comes out.
//!
//! [`Machine::step`] takes one [`Input`] (a caller's request, the outcome of an effect, the
//! process's exit, a watchdog alarm, a timer) and returns the [`Action`]s the host's actor
//! performs (spawn, signal, arm a timer, publish a state change, answer a waiter). It does no
//! I/O and reads no clock: the time comes in as `now`, and every wait is a timer the actor arms
//! and reports back as [`Input::TimerFired`]. The transitions themselves come from
//! [`state::transition`](super::state::transition) and the restart decisions from
//! [`RestartBudget`]; this file adds what happens in between: which effect is in flight, what a
//! stop or a new view does at each point of a start, and who is waiting for what.
//!
//! What goes in and comes out is in `messages`; what a failure leads to (Unhealthy, the kill,
//! the restart decision) in `failing`; what a stop or a new view does at each point in
//! `stopping`; the start, the timers and the bookkeeping here.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::RestartBudget;
use super::error::chain;
use super::handshake::{ActivationError, HandshakeError};
use super::launch::{CgroupError, Enforced, LaunchError, StageError};
use super::options::HostOptions;
use super::state::{ExtensionHostState, Reason, StopOutcome, Trigger, transition};
use crate::rpc::RequestError;
use crate::sandbox::view::FsGrants;

mod failing;
mod messages;
mod stopping;

use failing::launch_failure;

pub(crate) use messages::{
    Action, Answer, Change, Exit, Input, KILL_WAIT, Signal, TimerKind, WaiterId,
};
use messages::{EXIT_AFTER_CLOSE, SHUTDOWN_SLACK};

/// The effect in flight, whose outcome the machine waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Spawn,
    Stage,
    Handshake,
    Cgroup,
    Activate,
    Shutdown,
}

/// A failure, and what the restart budget needs to know about it.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    reason: Reason,
    /// False for failures a restart cannot fix (a missing program, a refused sandbox).
    retryable: bool,
    /// How long the host had been running, if it was.
    healthy_for: Option<Duration>,
}

impl Failure {
    fn starting(reason: Reason, retryable: bool) -> Self {
        Self {
            reason,
            retryable,
            healthy_for: None,
        }
    }
}

/// Where the machine is, in more detail than the public state.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Stopped or Crashed: no process.
    Idle,
    /// Starting: the spawn is in flight.
    Spawning,
    /// Starting: the stage's report is being read.
    Staging,
    /// Starting: handshakes are being exchanged.
    Handshaking,
    /// Starting: waiting for the host to be in its cgroup.
    JoiningCgroup,
    /// Starting: the extension is activating.
    Activating,
    /// Running since then.
    Running { since: Instant },
    /// The connection broke while Starting or Running: waiting briefly for the exit status,
    /// with `fallback` as the reason if none comes.
    Lost {
        fallback: Reason,
        since: Option<Instant>,
    },
    /// Unhealthy: the process is being killed; the restart decision follows once it is gone.
    /// `unpublished` when Unhealthy is announced only then (a limit kill, whose reason carries
    /// the host's last output).
    Killing { failure: Failure, unpublished: bool },
    /// Restarting: waiting out the backoff before restart `attempt`.
    Backoff { attempt: u32 },
    /// Stopping, and what comes after.
    Stopping { step: StopStep, then: AfterStop },
}

/// How far a stop has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopStep {
    /// A spawn or stage report is in flight; the process is terminated once it is back.
    Launching,
    /// The shutdown message is out; the host is deactivating.
    Shutdown,
    /// SIGTERM is sent.
    Terminate,
    /// SIGKILL is sent.
    Kill,
    /// The host was failing and already being killed.
    Failing,
}

/// What follows a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    /// Stay stopped.
    Idle,
    /// A start came while stopping: start again.
    Start,
    /// The stop is for a new view: start again with it.
    Relaunch,
    /// Every handle is gone: end.
    Exit,
}

/// The lifecycle of one host; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Machine {
    state: ExtensionHostState,
    phase: Phase,
    budget: RestartBudget,
    restarts: u32,
    grants: FsGrants,
    shutdown_grace: Duration,
    term_grace: Duration,
    op: Option<Op>,
    watching: bool,
    armed: [bool; TimerKind::ALL.len()],
    process: bool,
    start_waiters: Vec<WaiterId>,
    stop_waiters: Vec<WaiterId>,
    /// Starts that came during a requested stop: they start the host again after it.
    queued_starts: Vec<WaiterId>,
    out: Vec<Action>,
}
impl Machine {
    /// A Stopped host with these timings, whose sandbox view is computed from `grants`.
    pub(crate) fn new(options: &HostOptions, grants: FsGrants) -> Self {
        Self {
            state: ExtensionHostState::Stopped,
            phase: Phase::Idle,
            budget: RestartBudget::new(options.restart.clone()),
            restarts: 0,
            grants,
            shutdown_grace: options.shutdown_grace,
            term_grace: options.term_grace,
            op: None,
            watching: false,
            armed: [false; TimerKind::ALL.len()],
            process: false,
            start_waiters: Vec::new(),
            stop_waiters: Vec::new(),
            queued_starts: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Takes in what happened at `now` and returns what to do, in order.
    pub(crate) fn step(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Start(waiter) => self.on_start(waiter),
            Input::Stop(waiter) => {
                self.stop_waiters.push(waiter);
                self.on_stop(AfterStop::Idle);
            }
            Input::HandleDropped => self.on_stop(AfterStop::Exit),
            Input::SetView {
                grants,
                reply,
                restarted,
            } => self.on_view(grants, reply, restarted),
            Input::Spawned => self.on_spawned(),
            Input::SpawnFailed(err) => self.on_spawn_failed(now, &err),
            Input::StageReported(enforced) => self.on_staged(Ok(enforced)),
            Input::StageRefused(err) => self.on_staged(Err(err)),
            Input::HandshakeDone => self.advance(
                Op::Handshake,
                (Phase::JoiningCgroup, Op::Cgroup, Action::JoinCgroup),
            ),
            Input::HandshakeFailed(err) => self.on_handshake_failed(&err),
            Input::CgroupJoined => self.advance(
                Op::Cgroup,
                (Phase::Activating, Op::Activate, Action::Activate),
            ),
            Input::CgroupFailed(err) => self.on_cgroup_failed(&err),
            Input::Activated { commands } => self.on_activated(now, commands),
            Input::ActivationFailed { error, output } => self.on_activation_failed(&error, output),
            Input::ProcessExited(exit) => self.on_exit(now, exit),
            Input::HeartbeatMissed { silent_for } => {
                self.on_running_failure(now, Reason::Hung { silent_for }, false);
            }
            Input::LimitExceeded { limit, detail } => {
                let reason = Reason::LimitExceeded {
                    limit,
                    detail,
                    output: Vec::new(),
                };
                self.on_running_failure(now, reason, true);
            }
            Input::ConnectionLost { message } => self.on_connection_lost(message),
            Input::ShutdownFailed => self.on_shutdown_failed(),
            Input::TimerFired(kind) => self.on_timer(now, kind),
        }
        std::mem::take(&mut self.out)
    }

    fn on_start(&mut self, waiter: WaiterId) {
        match &mut self.phase {
            Phase::Idle => {
                self.start_waiters.push(waiter);
                // A start by hand is a fresh start, also out of Crashed.
                self.budget.reset();
                self.publish(Trigger::Start, Reason::Requested);
                self.begin_launch();
            }
            _ if self.state == ExtensionHostState::Running => {
                self.out.push(Action::Answer(waiter, Answer::Started));
            }
            Phase::Stopping { then, .. } => match then {
                AfterStop::Relaunch => self.start_waiters.push(waiter),
                AfterStop::Idle | AfterStop::Start => {
                    *then = AfterStop::Start;
                    self.queued_starts.push(waiter);
                }
                AfterStop::Exit => self.out.push(Action::Answer(waiter, Answer::Gone)),
            },
            _ => self.start_waiters.push(waiter),
        }
    }

    fn on_spawned(&mut self) {
        match self.phase {
            Phase::Spawning => {
                self.op = None;
                self.process = true;
                self.phase = Phase::Staging;
                self.begin(Op::Stage, Action::ReadStageReport);
            }
            Phase::Stopping {
                step: StopStep::Launching,
                ..
            } => {
                self.op = None;
                self.process = true;
                self.terminate();
            }
            _ => self.unexpected("Spawned"),
        }
    }

    fn on_spawn_failed(&mut self, now: Instant, err: &LaunchError) {
        match self.phase {
            Phase::Spawning => {
                self.op = None;
                self.fail_gone(now, launch_failure(err));
            }
            Phase::Stopping {
                step: StopStep::Launching,
                ..
            } => {
                self.op = None;
                self.stopped(StopOutcome::NotRunning);
            }
            _ => self.unexpected("SpawnFailed"),
        }
    }

    fn on_staged(&mut self, staged: Result<Box<Enforced>, StageError>) {
        let stopping = matches!(
            self.phase,
            Phase::Stopping {
                step: StopStep::Launching,
                ..
            }
        );
        if self.phase != Phase::Staging && !stopping {
            return self.unexpected("Stage");
        }
        self.op = None;
        match staged {
            Ok(enforced) => {
                self.out.push(Action::RecordProcess(enforced));
                if stopping {
                    self.terminate();
                } else {
                    self.phase = Phase::Handshaking;
                    self.begin(Op::Handshake, Action::Handshake);
                }
            }
            Err(_) if stopping => self.terminate(),
            // Not retried: the same machine would refuse it again.
            Err(err) => self.fail_live(
                Failure::starting(
                    Reason::SandboxUnavailable {
                        message: err.to_string(),
                    },
                    false,
                ),
                false,
            ),
        }
    }

    /// An effect of the start finished well: on to the next one.
    fn advance(&mut self, done: Op, (phase, op, action): (Phase, Op, Action)) {
        if self.op != Some(done) {
            return self.unexpected("an effect's success");
        }
        self.op = None;
        self.phase = phase;
        self.begin(op, action);
    }

    fn on_handshake_failed(&mut self, err: &HandshakeError) {
        if self.phase != Phase::Handshaking {
            return self.unexpected("HandshakeFailed");
        }
        self.op = None;
        let reason = Reason::HandshakeFailed {
            message: chain(err),
        };
        // Retrying cannot change the protocol version the host speaks, nor make a secret appear.
        let retryable = !matches!(
            err,
            HandshakeError::Version { .. } | HandshakeError::Secrets(_)
        );
        self.fail_live(Failure::starting(reason, retryable), false);
    }

    fn on_cgroup_failed(&mut self, err: &CgroupError) {
        if self.phase != Phase::JoiningCgroup {
            return self.unexpected("CgroupFailed");
        }
        self.op = None;
        let message = format!(
            "the host could not join its cgroup, so its limits would not hold: {}",
            chain(err)
        );
        let reason = Reason::SandboxUnavailable { message };
        self.fail_live(Failure::starting(reason, false), false);
    }

    fn on_activated(&mut self, now: Instant, commands: Vec<String>) {
        if self.phase != Phase::Activating {
            return self.unexpected("Activated");
        }
        self.op = None;
        self.publish(Trigger::Activated, Reason::Activated { commands });
        self.answer_starts(&Answer::Started);
        self.phase = Phase::Running { since: now };
        self.watching = true;
        self.out.push(Action::StartWatchdog);
    }

    fn on_activation_failed(&mut self, error: &ActivationError, output: Vec<String>) {
        if self.phase != Phase::Activating {
            return self.unexpected("ActivationFailed");
        }
        self.op = None;
        let closed = matches!(error, ActivationError::Request(RequestError::Closed { .. }));
        let reason = Reason::ActivationFailed {
            message: chain(error),
            output,
        };
        if closed {
            self.phase = Phase::Lost {
                fallback: reason,
                since: None,
            };
            self.arm(TimerKind::ExitAfterClose, EXIT_AFTER_CLOSE);
        } else {
            self.fail_live(Failure::starting(reason, true), false);
        }
    }

    fn on_timer(&mut self, now: Instant, kind: TimerKind) {
        if !std::mem::take(&mut self.armed[kind.index()]) {
            return self.unexpected("a timer that was not armed");
        }
        match (kind, std::mem::replace(&mut self.phase, Phase::Idle)) {
            (TimerKind::Backoff, Phase::Backoff { attempt }) => {
                self.publish(Trigger::BackoffElapsed, Reason::RestartAttempt { attempt });
                self.begin_launch();
            }
            (TimerKind::ExitAfterClose, Phase::Lost { fallback, since }) => {
                let failure = Failure {
                    reason: fallback,
                    retryable: true,
                    healthy_for: since.map(|since| now.saturating_duration_since(since)),
                };
                self.fail_live(failure, false);
            }
            (
                TimerKind::KillWait,
                Phase::Killing {
                    failure,
                    unpublished,
                },
            ) => {
                // It did not die: given up on, and the restart decided all the same.
                self.release();
                if unpublished {
                    self.publish(Trigger::Failed, failure.reason.clone());
                }
                self.decide(now, failure);
            }
            (kind, Phase::Stopping { step, then }) => {
                self.phase = Phase::Stopping { step, then };
                match (kind, step) {
                    (TimerKind::ShutdownGrace, StopStep::Shutdown) => {
                        self.cancel_op();
                        self.terminate();
                    }
                    (TimerKind::TermGrace, StopStep::Terminate) => self.kill_for_stop(),
                    (TimerKind::KillWait, StopStep::Kill) => self.stopped(StopOutcome::Killed),
                    (TimerKind::KillWait, StopStep::Failing) => {
                        self.stopped(StopOutcome::NotRunning);
                    }
                    _ => self.unexpected("a timer while stopping"),
                }
            }
            (_, other) => {
                self.phase = other;
                self.unexpected("a timer");
            }
        }
    }

    fn begin_launch(&mut self) {
        self.phase = Phase::Spawning;
        self.begin(Op::Spawn, Action::Spawn);
    }

    fn publish(&mut self, trigger: Trigger, reason: Reason) {
        let from = self.state;
        match transition(from, trigger) {
            Ok(to) => {
                self.state = to;
                self.out.push(Action::Publish(Change {
                    from,
                    to,
                    reason,
                    restarts: self.restarts,
                }));
            }
            Err(err) => {
                debug_assert!(false, "{err}");
                tracing::error!(error = %err, "lifecycle bug: invalid transition ignored");
            }
        }
    }

    fn begin(&mut self, op: Op, action: Action) {
        debug_assert!(
            self.op.is_none(),
            "{:?} while {:?} is in flight",
            op,
            self.op
        );
        self.op = Some(op);
        self.out.push(action);
    }

    fn cancel_op(&mut self) {
        if let Some(op) = self.op.take() {
            debug_assert!(
                !matches!(op, Op::Spawn | Op::Stage),
                "a spawn is never abandoned"
            );
            self.out.push(Action::CancelOperation);
        }
    }

    fn stop_watchdog(&mut self) {
        if std::mem::take(&mut self.watching) {
            self.out.push(Action::StopWatchdog);
        }
    }

    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.armed[kind.index()] = true;
        self.out.push(Action::Arm(kind, after));
    }

    fn disarm(&mut self, kind: TimerKind) {
        if std::mem::take(&mut self.armed[kind.index()]) {
            self.out.push(Action::Disarm(kind));
        }
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.process) {
            self.out.push(Action::Release);
        }
    }

    fn answer_starts(&mut self, answer: &Answer) {
        for waiter in std::mem::take(&mut self.start_waiters) {
            self.out.push(Action::Answer(waiter, answer.clone()));
        }
    }

    /// An input that does not apply where the machine is: a late outcome of something already
    /// abandoned, or a bug. Ignored either way.
    fn unexpected(&self, what: &str) {
        tracing::debug!(state = %self.state, phase = ?self.phase, "{what} ignored");
    }
}

#[cfg(test)]
mod tests;
