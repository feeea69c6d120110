//! What goes into the [`Machine`](super::Machine) and what comes out: its inputs, its actions,
//! and the names they use for timers, signals and waiters.

use std::time::Duration;

use crate::lifecycle::handshake::{ActivationError, HandshakeError};
use crate::lifecycle::launch::{CgroupError, Enforced, LaunchError, StageError};
use crate::lifecycle::state::{ExtensionHostState, Reason};
use crate::lifecycle::status::ViewChange;
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
