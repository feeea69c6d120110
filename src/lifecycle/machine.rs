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
//! The first comment of the file explains its length: the machine's one `impl` is the
//! lifecycle's decision code, kept in one place so it can be read (and tested) as a whole.

use std::time::Duration;

use tokio::time::Instant;

use super::backoff::{Decision, RestartBudget};
use super::error::chain;
use super::handshake::{ActivationError, HandshakeError};
use super::launch::{CgroupError, Enforced, LaunchError, StageError};
use super::options::HostOptions;
use super::state::{ExtensionHostState, Reason, StopOutcome, Trigger, transition};
use super::status::ViewChange;
use crate::process::SpawnError;
use crate::rpc::RequestError;
use crate::sandbox::Layer;
use crate::sandbox::view::FsGrants;

/// Added to the shutdown grace: the host gets the whole grace for `deactivate()`, and a little
/// more to flush and exit.
pub(crate) const SHUTDOWN_SLACK: Duration = Duration::from_millis(250);
/// How long a process gets to die after SIGKILL before it is given up on (and reported).
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);
/// After the connection broke: the process usually exits at the same moment, and its exit
/// status says more than the broken connection does, so it gets this long to do so.
pub(crate) const EXIT_AFTER_CLOSE: Duration = Duration::from_secs(1);

/// Names one caller waiting for an answer (`start()`, `stop()`, `set_direct_view()`). The
/// actor holds the channel; the machine only decides when and what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WaiterId(pub(crate) u64);

/// The timers the machine arms. Each kind is armed at most once at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TimerKind {
    /// The wait before a restart.
    Backoff,
    /// The host's time to deactivate and exit after the shutdown message.
    ShutdownGrace,
    /// The time between SIGTERM and SIGKILL.
    TermGrace,
    /// The time a process gets to die after SIGKILL.
    KillWait,
    /// The wait for an exit status after the connection broke.
    ExitAfterClose,
}

impl TimerKind {
    /// Every kind, in index order.
    pub(crate) const ALL: [Self; 5] = [
        Self::Backoff,
        Self::ShutdownGrace,
        Self::TermGrace,
        Self::KillWait,
        Self::ExitAfterClose,
    ];

    /// A dense index, for tables of timers.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A signal for the host's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// SIGTERM.
    Terminate,
    /// SIGKILL.
    Kill,
}

/// How the process ended, with what the actor gathered as it did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Exit {
    /// Its exit code, if it exited normally.
    pub(crate) code: Option<i32>,
    /// The signal that killed it, if one did.
    pub(crate) signal: Option<i32>,
    /// Its last lines of output.
    pub(crate) output: Vec<String>,
    /// A limit it was over when it died (the kernel's OOM killer, a refused fork), if any.
    pub(crate) over_limit: Option<(Layer, String)>,
}

/// Something that happened to the host, as the machine sees it.
#[derive(Debug)]
pub(crate) enum Input {
    /// `start()`.
    Start(WaiterId),
    /// `stop()`.
    Stop(WaiterId),
    /// `set_direct_view()`: new grants for the sandbox's view. `reply` gets the
    /// [`ViewChange`]; `restarted` the outcome of the restart, if there is one.
    SetView {
        /// The new grants.
        grants: FsGrants,
        /// Answered with [`Answer::View`].
        reply: WaiterId,
        /// Answered like a start when the view restarts the host, else forgotten.
        restarted: WaiterId,
    },
    /// [`Action::Spawn`] made a process.
    Spawned,
    /// [`Action::Spawn`] made no process.
    SpawnFailed(LaunchError),
    /// [`Action::ReadStageReport`]: the sandbox is in place, as reported.
    StageReported(Box<Enforced>),
    /// [`Action::ReadStageReport`]: the sandbox refused the start (or said nothing).
    StageRefused(StageError),
    /// [`Action::Handshake`] succeeded.
    HandshakeDone,
    /// [`Action::Handshake`] failed.
    HandshakeFailed(HandshakeError),
    /// [`Action::JoinCgroup`]: the host is in its cgroup (or has none to join).
    CgroupJoined,
    /// [`Action::JoinCgroup`] failed: its limits would not hold.
    CgroupFailed(CgroupError),
    /// [`Action::Activate`]: the extension activated and registered these commands.
    Activated {
        /// Command ids.
        commands: Vec<String>,
    },
    /// [`Action::Activate`] failed.
    ActivationFailed {
        /// Why.
        error: ActivationError,
        /// The host's last lines of output.
        output: Vec<String>,
    },
    /// The process exited.
    ProcessExited(Exit),
    /// The watchdog: no heartbeat for this long.
    HeartbeatMissed {
        /// How long the host had been silent.
        silent_for: Duration,
    },
    /// The watchdog: the host is over a limit.
    LimitExceeded {
        /// Which limit.
        limit: Layer,
        /// What was measured.
        detail: String,
    },
    /// The connection to a running host broke.
    ConnectionLost {
        /// Why, with its causes.
        message: String,
    },
    /// [`Action::SendShutdown`] could not send the message.
    ShutdownFailed,
    /// A timer armed with [`Action::Arm`] fired.
    TimerFired(TimerKind),
    /// Every handle is gone: nobody can ask for anything any more.
    HandleDropped,
}

/// What the actor must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Record a state change in the status (state, reason, time, restart count; the pid and
    /// connection are cleared when the new state has no process; an activation's commands are
    /// recorded), then tell the subscribers.
    Publish(Change),
    /// Record the process the sandbox reported.
    RecordProcess(Box<Enforced>),
    /// Prepare the sandbox and spawn the host; report [`Input::Spawned`] or
    /// [`Input::SpawnFailed`].
    Spawn,
    /// Read the sandbox stage's report; report [`Input::StageReported`] or
    /// [`Input::StageRefused`].
    ReadStageReport,
    /// Exchange handshakes; report [`Input::HandshakeDone`] or [`Input::HandshakeFailed`].
    Handshake,
    /// Wait for the host's move into its cgroup; report [`Input::CgroupJoined`] or
    /// [`Input::CgroupFailed`].
    JoinCgroup,
    /// Start the connection and ask the extension to activate; report [`Input::Activated`] or
    /// [`Input::ActivationFailed`].
    Activate,
    /// Drop the effect in flight (a handshake, a cgroup join, an activation, a shutdown
    /// message): its outcome no longer matters.
    CancelOperation,
    /// Watch the running host: heartbeats, limits, notifications and the connection.
    StartWatchdog,
    /// Stop watching it.
    StopWatchdog,
    /// Send the shutdown message, giving the host `grace` to deactivate; report
    /// [`Input::ShutdownFailed`] if it cannot be sent.
    SendShutdown {
        /// The grace the message announces.
        grace: Duration,
    },
    /// Signal the host's process group.
    Signal(Signal),
    /// Arm a timer (replacing one of the same kind).
    Arm(TimerKind, Duration),
    /// Disarm a timer.
    Disarm(TimerKind),
    /// Drop the process and its connection: the machine is done with them.
    Release,
    /// Use these grants for the sandbox's view from the next spawn on.
    UseView(FsGrants),
    /// Answer a waiter.
    Answer(WaiterId, Answer),
    /// Drop a waiter unanswered (its caller does not wait for it).
    Forget(WaiterId),
    /// Nothing more will happen: end the actor.
    Exit,
}

/// A state change to publish.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    /// The state before.
    pub(crate) from: ExtensionHostState,
    /// The state after.
    pub(crate) to: ExtensionHostState,
    /// Why.
    pub(crate) reason: Reason,
    /// Restarts made since the host was created.
    pub(crate) restarts: u32,
}

/// What a waiter is told.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// `start()`: the host runs.
    Started,
    /// `start()`: the budget is spent ([`StartError::Crashed`](super::StartError::Crashed)).
    Crashed(Reason),
    /// `start()`: a stop came first ([`StartError::Stopped`](super::StartError::Stopped)).
    StoppedFirst,
    /// `start()`: supervision ended ([`StartError::Gone`](super::StartError::Gone)).
    Gone,
    /// `stop()`: the host is stopped.
    Stopped,
    /// `set_direct_view()`: what the new view did.
    View(ViewChange),
}

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
            Input::ActivationFailed { error, output } => self.on_activation_failed(error, output),
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

    /// A stop (`then` is [`AfterStop::Idle`]) or the last handle going ([`AfterStop::Exit`]).
    fn on_stop(&mut self, then: AfterStop) {
        match &mut self.phase {
            Phase::Idle => {
                if self.state == ExtensionHostState::Crashed {
                    self.publish(Trigger::Stop, Reason::Requested);
                    self.publish(
                        Trigger::Exited,
                        Reason::Stopped {
                            how: StopOutcome::NotRunning,
                        },
                    );
                }
                self.finish_stop(then);
            }
            Phase::Stopping { then: pending, .. } => {
                // A stop wins over a start or a new view queued before it; the end wins over all.
                if *pending != AfterStop::Exit {
                    *pending = then;
                }
                let queued = std::mem::take(&mut self.queued_starts);
                self.start_waiters.extend(queued);
            }
            _ => self.begin_stop(Reason::Requested, then),
        }
    }

    fn on_view(&mut self, grants: FsGrants, reply: WaiterId, restarted: WaiterId) {
        if grants == self.grants {
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Unchanged)));
            self.out.push(Action::Forget(restarted));
            return;
        }
        self.grants = grants.clone();
        self.out.push(Action::UseView(grants));
        let relaunching = matches!(
            self.phase,
            Phase::Stopping {
                then: AfterStop::Relaunch,
                ..
            }
        );
        // A process started with the old view still has it: only a new one gets the new. In
        // backoff or while failing (a limit kill is announced late, from Running), the next
        // spawn picks the new view up anyway.
        let live = !matches!(self.phase, Phase::Stopping { .. } | Phase::Killing { .. })
            && matches!(
                self.state,
                ExtensionHostState::Starting | ExtensionHostState::Running
            );
        if relaunching || live {
            // Resolved like a start: Running, given up, or superseded by a stop.
            self.start_waiters.push(restarted);
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Restarting)));
            if live {
                let reason = self.view_changed();
                self.begin_stop(reason, AfterStop::Relaunch);
            }
        } else {
            self.out
                .push(Action::Answer(reply, Answer::View(ViewChange::Updated)));
            self.out.push(Action::Forget(restarted));
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

    fn on_activation_failed(&mut self, error: ActivationError, output: Vec<String>) {
        if self.phase != Phase::Activating {
            return self.unexpected("ActivationFailed");
        }
        self.op = None;
        let closed = matches!(error, ActivationError::Request(RequestError::Closed { .. }));
        let reason = Reason::ActivationFailed {
            message: chain(&error),
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

    fn on_exit(&mut self, now: Instant, exit: Exit) {
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
    fn on_running_failure(&mut self, now: Instant, reason: Reason, limit: bool) {
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

    fn on_connection_lost(&mut self, message: String) {
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

    fn on_shutdown_failed(&mut self) {
        if self.op != Some(Op::Shutdown) {
            return self.unexpected("ShutdownFailed");
        }
        self.op = None;
        if let Phase::Stopping {
            step: StopStep::Shutdown,
            ..
        } = self.phase
        {
            self.disarm(TimerKind::ShutdownGrace);
            self.terminate();
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

    /// Stopping for `reason`: whatever the host was doing, the way out begins here.
    fn begin_stop(&mut self, reason: Reason, then: AfterStop) {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle);
        match phase {
            Phase::Idle | Phase::Stopping { .. } => {
                unreachable!("handled by the callers")
            }
            Phase::Backoff { .. } => {
                // No process: the backoff ends at once.
                self.disarm(TimerKind::Backoff);
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Failing,
                    then,
                };
                self.stopped(StopOutcome::NotRunning);
            }
            Phase::Killing { .. } => {
                // Already dying; the kill in progress ends it.
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Failing,
                    then,
                };
            }
            Phase::Spawning | Phase::Staging => {
                // Neither can be abandoned halfway (a process may be on its way): the stop
                // goes on once it is back.
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Launching,
                    then,
                };
            }
            Phase::Handshaking | Phase::JoiningCgroup | Phase::Lost { .. } => {
                // No connection to send a shutdown message on.
                self.cancel_op();
                self.disarm(TimerKind::ExitAfterClose);
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Terminate,
                    then,
                };
                self.terminate();
            }
            Phase::Activating | Phase::Running { .. } => {
                self.cancel_op();
                self.stop_watchdog();
                self.publish(Trigger::Stop, reason);
                self.phase = Phase::Stopping {
                    step: StopStep::Shutdown,
                    then,
                };
                self.begin(
                    Op::Shutdown,
                    Action::SendShutdown {
                        grace: self.shutdown_grace,
                    },
                );
                self.arm(
                    TimerKind::ShutdownGrace,
                    self.shutdown_grace + SHUTDOWN_SLACK,
                );
            }
        }
    }

    /// SIGTERM, then the grace before SIGKILL.
    fn terminate(&mut self) {
        if let Phase::Stopping { step, .. } = &mut self.phase {
            *step = StopStep::Terminate;
        }
        self.out.push(Action::Signal(Signal::Terminate));
        self.arm(TimerKind::TermGrace, self.term_grace);
    }

    fn kill_for_stop(&mut self) {
        if let Phase::Stopping { step, .. } = &mut self.phase {
            *step = StopStep::Kill;
        }
        self.out.push(Action::Signal(Signal::Kill));
        self.arm(TimerKind::KillWait, KILL_WAIT);
    }

    /// The process is gone after a stop: Stopped, then what was queued behind it.
    fn stopped(&mut self, how: StopOutcome) {
        let Phase::Stopping { then, .. } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("only a stop ends in Stopped");
        };
        self.release();
        self.publish(Trigger::Exited, Reason::Stopped { how });
        if then == AfterStop::Relaunch {
            // Not a failure: a fresh start, as `start()` would make it. Those waiting for a
            // start keep waiting for this one.
            self.budget.reset();
            let reason = self.view_changed();
            self.publish(Trigger::Start, reason);
            self.begin_launch();
        } else {
            self.finish_stop(then);
        }
    }

    /// Answers everyone the stop concerns, then starts again or ends, as queued.
    fn finish_stop(&mut self, then: AfterStop) {
        self.answer_starts(&Answer::StoppedFirst);
        for waiter in std::mem::take(&mut self.stop_waiters) {
            self.out.push(Action::Answer(waiter, Answer::Stopped));
        }
        match then {
            AfterStop::Start => {
                self.start_waiters = std::mem::take(&mut self.queued_starts);
                self.budget.reset();
                self.publish(Trigger::Start, Reason::Requested);
                self.begin_launch();
            }
            AfterStop::Exit => self.out.push(Action::Exit),
            AfterStop::Idle | AfterStop::Relaunch => {}
        }
    }

    /// A failure while the process may still live: Unhealthy (unless `defer_publish`), kill it,
    /// and decide once it is gone.
    fn fail_live(&mut self, failure: Failure, defer_publish: bool) {
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
    fn fail_gone(&mut self, now: Instant, failure: Failure) {
        self.publish(Trigger::Failed, failure.reason.clone());
        if self.process {
            // Whatever the host started in its group goes with it.
            self.out.push(Action::Signal(Signal::Kill));
            self.release();
        }
        self.decide(now, failure);
    }

    /// Restart after a backoff, or give up.
    fn decide(&mut self, now: Instant, failure: Failure) {
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

    fn view_changed(&self) -> Reason {
        Reason::ViewChanged {
            grants: self.grants.describe(),
        }
    }

    /// An input that does not apply where the machine is: a late outcome of something already
    /// abandoned, or a bug. Ignored either way.
    fn unexpected(&self, what: &str) {
        tracing::debug!(state = %self.state, phase = ?self.phase, "{what} ignored");
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
fn launch_failure(err: &LaunchError) -> Failure {
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

#[cfg(test)]
mod tests;
