//! The task that owns one host process and drives its lifecycle.
//!
//! One [`Job`] per host. It owns the child process, the connection and the restart budget, and
//! waits on all of them at once (child exit, heartbeat deadline, connection loss, notifications,
//! control messages, backoff timers), so crashes and hangs are noticed the moment they happen and
//! nobody has to poll. Callers talk to it through a [`HostHandle`](super::HostHandle).

use std::future::Future;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::backoff::{Decision, RestartBudget};
use super::options::HostSpec;
use super::state::{ExtensionHostState, Reason, StateChange, StopOutcome, Trigger, transition};
use crate::process::{Containment, Isolation, SpawnError, SpawnedHost, signal_host, spawn_host};
use crate::rpc::{
    Event, Events, Peer, ReadError, RequestError, RequestHandler, Transport, WriteError,
};
use crate::sandbox::{EnforcementReport, Layer};
use crate::wire::{Handshake, HandshakeSecrets, HostConfig, Message, PROTOCOL_VERSION};

/// A snapshot of a host, kept current by its job.
#[derive(Debug, Clone)]
pub struct HostStatus {
    /// The lifecycle state.
    pub state: ExtensionHostState,
    /// Why it is in that state.
    pub reason: Reason,
    /// When it entered that state.
    pub since: SystemTime,
    /// The host process id, while there is one.
    pub pid: Option<u32>,
    /// How the current process is contained.
    pub containment: Option<Containment>,
    /// What the sandbox enforced for the current process, layer by layer.
    pub sandbox: Option<EnforcementReport>,
    /// Restarts made since the host was created.
    pub restarts: u32,
    /// Commands the extension registered.
    pub commands: Vec<String>,
    pub(crate) connection: Option<Peer>,
}

/// What [`crate::lifecycle::HostHandle::set_direct_view`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewChange {
    /// The host already had this view.
    Unchanged,
    /// No process has the old view (the host is stopped, crashed or about to restart): the
    /// next start uses the new one.
    Updated,
    /// A live process had the old view: it is being stopped and started again
    /// ([`Reason::ViewChanged`]). `start()` waits for the new one.
    Restarting,
}

/// Why `start()` did not reach Running.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The host failed until its restart budget ran out.
    #[error("extension host {id} crashed: {reason}")]
    Crashed {
        /// The extension.
        id: String,
        /// The final reason, with the last failure inside.
        reason: Reason,
    },
    /// A stop was requested before the host came up.
    #[error("extension host {id} was stopped before it started")]
    Stopped {
        /// The extension.
        id: String,
    },
    /// The supervisor is shutting down.
    #[error("extension host {id} is no longer supervised")]
    Gone {
        /// The extension.
        id: String,
    },
}

pub(crate) enum Control {
    Start(oneshot::Sender<Result<(), StartError>>),
    Stop(oneshot::Sender<()>),
    Subscribe(mpsc::UnboundedSender<StateChange>),
    /// New file-system grants for the sandbox's view. The second sender gets the outcome of
    /// the restart, when there is one.
    SetView(
        FsGrants,
        oneshot::Sender<ViewChange>,
        oneshot::Sender<Result<(), StartError>>,
    ),
}

use crate::sandbox::view::FsGrants;

/// A running process and, once the handshake is done, its connection.
struct LiveHost {
    process: SpawnedHost,
    connection: Option<(Peer, Events)>,
    limits: LimitGuard,
}

/// The host's cgroup and the limits the supervisor watches itself.
struct LimitGuard {
    cgroup: Option<crate::sandbox::cgroup::HostCgroup>,
    watchdog: crate::sandbox::prepare::Watchdog,
    tree: crate::sandbox::watch::TreeWatch,
}

impl LimitGuard {
    fn active(&self) -> bool {
        self.watchdog.memory_bytes.is_some() || self.watchdog.pids.is_some()
    }

    /// A limit the host is over, if any: the cgroup's own counters first, then the
    /// supervisor's view of the host's process tree, taken as `look` says.
    fn exceeded(&mut self, look: Look) -> Option<(Layer, String)> {
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
        if self.watchdog.memory_bytes.is_none() && self.watchdog.pids.is_none() {
            return None;
        }
        let usage = match look {
            Look::Scheduled => self.tree.usage(),
            Look::Fresh => self.tree.usage_now(),
            Look::Last => self.tree.last(),
        };
        // Processes first: a fork bomb of Node processes also adds up to a lot of memory.
        if let Some(max) = self.watchdog.pids
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
        if let Some(max) = self.watchdog.memory_bytes
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

/// How [`LimitGuard::exceeded`] looks at the process tree.
#[derive(Clone, Copy)]
enum Look {
    /// The regular check: the tree is walked again when that is due.
    Scheduled,
    /// Walk it now: the last walk may be two seconds old.
    Fresh,
    /// What the last check saw: the tree is gone with its root.
    Last,
}

enum Step {
    Idle,
    Launch,
    Run(LiveHost),
    Fail(Failure, Option<LiveHost>),
    Stop(Option<LiveHost>),
    /// Stop and start again, for a new sandbox view.
    Relaunch(Option<LiveHost>),
}

struct Failure {
    reason: Reason,
    retryable: bool,
    healthy_for: Option<Duration>,
}

impl Failure {
    fn retry(reason: Reason) -> Self {
        Self {
            reason,
            retryable: true,
            healthy_for: None,
        }
    }
}

/// What happened while waiting for something else.
enum Interrupt {
    Stop,
    /// The sandbox view changed under a live host.
    Relaunch,
}

impl Interrupt {
    fn step(self, host: Option<LiveHost>) -> Step {
        match self {
            Self::Stop => Step::Stop(host),
            Self::Relaunch => Step::Relaunch(host),
        }
    }
}

pub(crate) struct Job {
    spec: Arc<HostSpec>,
    broker: Arc<dyn RequestHandler>,
    control: mpsc::UnboundedReceiver<Control>,
    status: watch::Sender<HostStatus>,
    subscribers: Vec<mpsc::UnboundedSender<StateChange>>,
    budget: RestartBudget,
    start_waiters: Vec<oneshot::Sender<Result<(), StartError>>>,
    stop_waiters: Vec<oneshot::Sender<()>>,
}

impl Job {
    pub(crate) fn new(
        spec: Arc<HostSpec>,
        broker: Arc<dyn RequestHandler>,
        control: mpsc::UnboundedReceiver<Control>,
        subscribers: Vec<mpsc::UnboundedSender<StateChange>>,
    ) -> (Self, watch::Receiver<HostStatus>) {
        let (status, status_rx) = watch::channel(HostStatus {
            state: ExtensionHostState::Stopped,
            reason: Reason::Requested,
            since: SystemTime::now(),
            pid: None,
            containment: None,
            sandbox: None,
            restarts: 0,
            commands: Vec::new(),
            connection: None,
        });
        let budget = RestartBudget::new(spec.options.restart.clone());
        let job = Self {
            spec,
            broker,
            control,
            status,
            subscribers,
            budget,
            start_waiters: Vec::new(),
            stop_waiters: Vec::new(),
        };
        (job, status_rx)
    }

    fn state(&self) -> ExtensionHostState {
        self.status.borrow().state
    }

    pub(crate) async fn run(mut self) {
        let mut step = Step::Idle;
        loop {
            step = match step {
                Step::Idle => match self.control.recv().await {
                    None => break,
                    Some(control) => self.idle_control(control),
                },
                Step::Launch => self.launch().await,
                Step::Run(host) => self.supervise(host).await,
                Step::Fail(failure, host) => self.fail(failure, host).await,
                Step::Stop(host) => {
                    self.stop(host).await;
                    Step::Idle
                }
                Step::Relaunch(host) => self.relaunch(host).await,
            };
        }
        for waiter in self.start_waiters.drain(..) {
            let _ = waiter.send(Err(StartError::Gone {
                id: self.spec.id.clone(),
            }));
        }
    }

    fn idle_control(&mut self, control: Control) -> Step {
        match control {
            Control::Start(waiter) => {
                self.start_waiters.push(waiter);
                self.budget.reset();
                self.set(Trigger::Start, Reason::Requested);
                Step::Launch
            }
            Control::Stop(waiter) => {
                self.stop_waiters.push(waiter);
                Step::Stop(None)
            }
            Control::Subscribe(subscriber) => {
                self.subscribers.push(subscriber);
                Step::Idle
            }
            Control::SetView(view, reply, _no_restart) => {
                let change = if self.set_view(view) {
                    ViewChange::Updated
                } else {
                    ViewChange::Unchanged
                };
                let _ = reply.send(change);
                Step::Idle
            }
        }
    }

    /// Replaces the grants the sandbox's view is computed from, for the next start; whether
    /// they changed.
    fn set_view(&mut self, grants: FsGrants) -> bool {
        if self.spec.sandbox.grants == grants {
            return false;
        }
        let mut spec = HostSpec::clone(&self.spec);
        spec.sandbox.grants = grants;
        self.spec = Arc::new(spec);
        true
    }

    /// Handles a control message that arrives while the job is busy. Returns an interrupt for a
    /// stop (or for the last handle going away, which means the same).
    fn busy_control(&mut self, control: Option<Control>) -> Option<Interrupt> {
        match control {
            None => Some(Interrupt::Stop),
            Some(Control::Stop(waiter)) => {
                self.stop_waiters.push(waiter);
                Some(Interrupt::Stop)
            }
            Some(Control::Start(waiter)) => {
                if self.state() == ExtensionHostState::Running {
                    let _ = waiter.send(Ok(()));
                } else {
                    self.start_waiters.push(waiter);
                }
                None
            }
            Some(Control::Subscribe(subscriber)) => {
                self.subscribers.push(subscriber);
                None
            }
            Some(Control::SetView(view, reply, restarted)) => {
                if !self.set_view(view) {
                    let _ = reply.send(ViewChange::Unchanged);
                    return None;
                }
                // A process started with the old view still has it: only a new one gets the new.
                // In backoff or while failing, the next launch picks the new view up anyway.
                let live = matches!(
                    self.state(),
                    ExtensionHostState::Starting | ExtensionHostState::Running
                );
                if !live {
                    let _ = reply.send(ViewChange::Updated);
                    return None;
                }
                // Resolved like a start: Running, given up, or superseded by a stop.
                self.start_waiters.push(restarted);
                let _ = reply.send(ViewChange::Restarting);
                Some(Interrupt::Relaunch)
            }
        }
    }

    /// Awaits `work` while serving control messages; `Err` if a stop interrupted it.
    async fn interruptible<F: Future>(&mut self, work: F) -> Result<F::Output, Interrupt> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return Ok(output),
                control = self.control.recv() => {
                    if let Some(interrupt) = self.busy_control(control) {
                        return Err(interrupt);
                    }
                }
            }
        }
    }

    /// Applies a transition, publishes it, and logs it.
    fn set(&mut self, trigger: Trigger, reason: Reason) {
        let from = self.state();
        let to = match transition(from, trigger) {
            Ok(to) => to,
            Err(err) => {
                debug_assert!(false, "{err}");
                tracing::error!(extension = %self.spec.id, error = %err, "lifecycle bug: invalid transition ignored");
                return;
            }
        };
        let at = SystemTime::now();
        self.status.send_modify(|status| {
            status.state = to;
            status.reason = reason.clone();
            status.since = at;
            if !to.has_process() {
                status.pid = None;
                status.connection = None;
            }
            if to == ExtensionHostState::Restarting {
                status.restarts += 1;
            }
            if let Reason::Activated { commands } = &reason {
                status.commands.clone_from(commands);
            }
        });
        let change = StateChange {
            extension_id: self.spec.id.clone(),
            from,
            to,
            reason,
            at,
        };
        match to {
            ExtensionHostState::Unhealthy | ExtensionHostState::Crashed => {
                tracing::warn!(extension = %self.spec.id, from = %from, to = %to, reason = %change.reason, "extension host state changed");
            }
            _ => {
                tracing::info!(extension = %self.spec.id, from = %from, to = %to, reason = %change.reason, "extension host state changed");
            }
        }
        self.subscribers
            .retain(|subscriber| subscriber.send(change.clone()).is_ok());
    }

    #[allow(clippy::too_many_lines)] // sandbox, spawn, stage report, handshake: one sequence
    async fn launch(&mut self) -> Step {
        let spec = &self.spec;
        let unavailable = |message: String| sandbox_unavailable(message, None);
        // Probing, cgroup set-up and the spawn block for a moment: keep them off the runtime's
        // threads, so other hosts' traffic flows meanwhile even on a current-thread runtime.
        let prepare = {
            let spec = Arc::clone(spec);
            tokio::task::spawn_blocking(move || {
                crate::sandbox::prepare(
                    &spec.id,
                    &spec.command,
                    &spec.extension_path,
                    spec.storage_path.as_deref(),
                    &spec.sandbox,
                )
            })
        };
        let prepared = match prepare.await {
            Ok(prepared) => prepared,
            Err(err) => return unavailable(format!("sandbox set-up failed: {err}")),
        };
        let mut prepared = match prepared {
            Ok(prepared) => prepared,
            Err(crate::sandbox::SandboxError::ProgramNotFound(program)) => {
                let err = SpawnError::NotFound {
                    hint: crate::process::hint_for(&program),
                    program: program.display().to_string(),
                };
                return Step::Fail(
                    Failure {
                        reason: Reason::SpawnFailed {
                            message: err.to_string(),
                        },
                        retryable: false,
                        healthy_for: None,
                    },
                    None,
                );
            }
            Err(err) => return unavailable(err.to_string()),
        };
        let overlap_attach = prepared.backend == crate::sandbox::Backend::Landlock;
        let isolation = Isolation {
            pid_namespace: prepared.namespaces.pid,
            user_namespace: prepared.namespaces.user,
            extra_namespaces: prepared.namespaces.extra,
            // The Landlock backend's host joins after the spawn (see `attach_tree`), off the
            // start's critical path. bubblewrap makes a cgroup namespace as it starts, so its
            // host must already be in the cgroup then.
            cgroups: match &prepared.cgroup {
                Some(cgroup) if !overlap_attach => cgroup.procs_files(),
                _ => Vec::new(),
            },
            stage_plan: prepared
                .plan
                .as_ref()
                .map(|plan| serde_json::to_vec(plan).expect("plans serialize")),
            stage_fds: std::mem::take(&mut prepared.trees),
            stage_exe: prepared.stage_exe.take(),
            drop_to: prepared.drop_to,
        };
        let spawn = {
            let command = prepared.command.clone();
            let id = self.spec.id.clone();
            tokio::task::spawn_blocking(move || spawn_host(&command, &id, &isolation))
        };
        let spawned = match spawn.await {
            Ok(spawned) => spawned,
            Err(err) => Err(SpawnError::Io {
                program: prepared.command.program.display().to_string(),
                source: std::io::Error::other(format!("the spawn task failed: {err}")),
            }),
        };
        let mut process = match spawned {
            Ok(process) => process,
            Err(err) => {
                let retryable = !matches!(err, SpawnError::NotFound { .. });
                let message = error_chain(&err);
                return Step::Fail(
                    Failure {
                        reason: Reason::SpawnFailed { message },
                        retryable,
                        healthy_for: None,
                    },
                    None,
                );
            }
        };
        // Into the cgroup while Node boots; awaited before any extension code is loaded.
        let attach = match &prepared.cgroup {
            Some(cgroup) if overlap_attach => {
                Some(Attach::start(cgroup.procs_files(), process.group))
            }
            _ => None,
        };
        let limits = LimitGuard {
            cgroup: prepared.cgroup.take(),
            watchdog: prepared.watchdog,
            // Walks stop one process over the profile's process limit (whoever enforces it):
            // enough to know the limit is reached, and memory is summed over that many.
            tree: crate::sandbox::watch::TreeWatch::new(process.group).with_cap(
                usize::try_from(self.spec.sandbox.profile.limits.pids)
                    .map_or(crate::sandbox::watch::TreeWatch::DEFAULT_CAP, |max| {
                        max.saturating_add(1)
                    }),
            ),
        };
        if let Some(stage) = process.stage.take() {
            if !prepared.backend.uses_bwrap() {
                let entry = crate::sandbox::prepare::namespaces_entry(process.pid);
                prepared.merge_entry(entry);
            }
            let timeout = self.spec.options.handshake_timeout;
            let report =
                crate::sandbox::watch::read_stage_report(stage, &mut process.child, timeout).await;
            // bubblewrap forks its sandboxed child after the spawn returns; once the stage has
            // reported, it is there to be found.
            process.locate();
            let required = self.spec.sandbox.profile.required.clone();
            if let Err(err) = report.and_then(|report| {
                prepared
                    .finish(report, &required)
                    .map_err(|e| e.to_string())
            }) {
                let host = LiveHost {
                    process,
                    connection: None,
                    limits,
                };
                let mut message = err;
                let output = host.process.output.snapshot();
                if let Some(last) = output.last() {
                    message = format!("{message} (stage output: {last})");
                }
                return sandbox_unavailable(message, Some(host));
            }
        }
        if process.containment == Containment::DeathSignalOnly {
            tracing::warn!(extension = %self.spec.id, "the kernel refused a PID namespace: processes this host starts may outlive it");
        }
        if prepared.backend == crate::sandbox::Backend::None {
            tracing::warn!(extension = %self.spec.id, "sandbox backend `none`: this host runs with the user's full rights");
        } else {
            tracing::info!(extension = %self.spec.id, backend = %prepared.backend, overall = ?prepared.report.overall(), report = %serde_json::to_string(&prepared.report).unwrap_or_default(), "sandbox enforced");
        }
        for entry in &prepared.report.layers {
            if entry.enforcement != crate::sandbox::Enforcement::FullyEnforced
                && prepared.backend != crate::sandbox::Backend::None
            {
                tracing::warn!(extension = %self.spec.id, layer = %entry.layer, enforcement = ?entry.enforcement, detail = %entry.detail, "sandbox layer not fully enforced");
            }
        }
        let report = prepared.report;
        self.status.send_modify(|status| {
            status.pid = Some(process.pid);
            status.containment = Some(process.containment);
            status.sandbox = Some(report);
        });
        let stream = process.ipc.take().expect("a fresh host has its socket");
        let mut transport = Transport::new(stream, self.spec.options.max_frame_bytes);
        let handshake = {
            let spec = Arc::clone(&self.spec);
            let child = &mut process.child;
            let timeout = spec.options.handshake_timeout;
            let exchange = async {
                tokio::select! {
                    status = child.wait() => Err(HandshakeOutcome::Exited(status.ok())),
                    result = tokio::time::timeout(timeout, handshake(&spec, &mut transport)) => match result {
                        Ok(result) => result,
                        Err(_) => Err(HandshakeOutcome::Failed(format!("no handshake within {} ms", timeout.as_millis()), true)),
                    },
                }
            };
            self.interruptible(exchange).await
        };
        let mut host = LiveHost {
            process,
            connection: None,
            limits,
        };
        match handshake {
            Err(interrupt) => return interrupt.step(Some(host)),
            Ok(Err(HandshakeOutcome::Exited(status))) => {
                return Step::Fail(Failure::retry(exited(&mut host, status).await), Some(host));
            }
            Ok(Err(HandshakeOutcome::Failed(message, retryable))) => {
                return Step::Fail(
                    Failure {
                        reason: Reason::HandshakeFailed { message },
                        retryable,
                        healthy_for: None,
                    },
                    Some(host),
                );
            }
            Ok(Ok(())) => {}
        }
        if let Some(mut attach) = attach {
            let waited = self
                .interruptible(tokio::time::timeout(ATTACH_TIMEOUT, &mut attach.task))
                .await;
            let attached = match waited {
                Err(interrupt) => return interrupt.step(Some(host)),
                Ok(Err(_)) => Err(format!(
                    "moving it took longer than {} ms",
                    ATTACH_TIMEOUT.as_millis()
                )),
                Ok(Ok(Err(err))) => Err(format!("the cgroup task failed: {err}")),
                Ok(Ok(Ok(result))) => result.map_err(|err| err.to_string()),
            };
            if let Err(err) = attached {
                let message = format!(
                    "the host could not join its cgroup, so its limits would not hold: {err}"
                );
                return sandbox_unavailable(message, Some(host));
            }
        }
        self.activate(host, transport).await
    }

    /// Starts the connection and asks the host to activate its extension.
    async fn activate(&mut self, mut host: LiveHost, transport: Transport) -> Step {
        let (connection, events) = Peer::start(
            transport,
            self.spec.id.as_str(),
            self.spec.options.connection_config(),
            Arc::clone(&self.broker),
        );
        self.status
            .send_modify(|status| status.connection = Some(connection.clone()));
        let activation = {
            let child = &mut host.process.child;
            let timeout = self.spec.options.activation_timeout;
            let connection = &connection;
            self.interruptible(async move {
                tokio::select! {
                    status = child.wait() => Err(Ok(status.ok())),
                    result = connection.request_with("extension/activate", Some(crate::wire::to_raw(&serde_json::json!({})).expect("static json")), timeout, None) => result.map_err(Err),
                }
            })
            .await
        };
        host.connection = Some((connection, events));
        match activation {
            Err(interrupt) => interrupt.step(Some(host)),
            Ok(Err(Ok(status))) => {
                Step::Fail(Failure::retry(exited(&mut host, status).await), Some(host))
            }
            Ok(Err(Err(err))) => {
                let exit = if matches!(err, RequestError::Closed { .. }) {
                    exit_soon(&mut host).await
                } else {
                    None
                };
                let reason = match exit {
                    Some(exit) => exit,
                    None => Reason::ActivationFailed {
                        message: error_chain(&err),
                        output: host.process.output.snapshot(),
                    },
                };
                Step::Fail(Failure::retry(reason), Some(host))
            }
            Ok(Ok(result)) => match parse_commands(&result) {
                Ok(commands) => {
                    self.set(Trigger::Activated, Reason::Activated { commands });
                    for waiter in self.start_waiters.drain(..) {
                        let _ = waiter.send(Ok(()));
                    }
                    Step::Run(host)
                }
                Err(message) => Step::Fail(
                    Failure::retry(Reason::ActivationFailed {
                        message,
                        output: Vec::new(),
                    }),
                    Some(host),
                ),
            },
        }
    }

    async fn supervise(&mut self, mut host: LiveHost) -> Step {
        let running_since = Instant::now();
        let timeout = self.spec.options.heartbeat_timeout;
        let (connection, events) = host
            .connection
            .as_mut()
            .expect("a running host is connected");
        let connection = connection.clone();
        let mut heartbeats = events.heartbeats();
        let mut last_beat = Instant::now();
        let deadline = tokio::time::sleep_until(last_beat + timeout);
        tokio::pin!(deadline);
        let mut beats_open = true;
        let mut events_open = true;
        // The watchdog needs its own quick tick. When the cgroup enforces every limit, the
        // kernel stops the host itself and the check only notices a refused fork to report it:
        // that rides on the heartbeats, so idle hosts cost no extra wake-ups.
        let ticking = host.limits.active();
        let mut limit_tick = tokio::time::interval_at(aligned_tick(), LIMIT_CHECK);
        limit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = Instant::now();
        loop {
            let events = &mut host.connection.as_mut().expect("connected").1;
            let over = tokio::select! {
                _ = limit_tick.tick(), if ticking => host.limits.exceeded(Look::Scheduled),
                status = host.process.child.wait() => {
                    let reason = exited(&mut host, status.ok()).await;
                    return Step::Fail(Failure { reason, retryable: true, healthy_for: Some(running_since.elapsed()) }, Some(host));
                }
                changed = heartbeats.changed(), if beats_open => {
                    if changed.is_some() {
                        last_beat = Instant::now();
                        deadline.as_mut().reset(last_beat + timeout);
                    } else {
                        beats_open = false;
                    }
                    if !ticking && host.limits.cgroup.is_some() && last_check.elapsed() >= CGROUP_CHECK {
                        last_check = Instant::now();
                        host.limits.exceeded(Look::Scheduled)
                    } else {
                        None
                    }
                }
                () = &mut deadline => {
                    // A host at its process limit often hangs rather than dies: name the limit,
                    // from a fresh look at its tree (the last walk may be two seconds old).
                    let over = host.limits.exceeded(Look::Fresh);
                    if over.is_none() {
                        let reason = Reason::Hung { silent_for: last_beat.elapsed() };
                        return Step::Fail(Failure { reason, retryable: true, healthy_for: Some(running_since.elapsed()) }, Some(host));
                    }
                    over
                }
                event = events.recv(), if events_open => {
                    match event {
                        Some(event) => self.on_event(event),
                        None => events_open = false,
                    }
                    None
                }
                closed = connection.closed() => {
                    let reason = match exit_soon(&mut host).await {
                        Some(exit) => exit,
                        None => Reason::ConnectionLost { message: error_chain(&closed) },
                    };
                    return Step::Fail(Failure { reason, retryable: true, healthy_for: Some(running_since.elapsed()) }, Some(host));
                }
                control = self.control.recv() => {
                    if let Some(interrupt) = self.busy_control(control) {
                        return interrupt.step(Some(host));
                    }
                    None
                }
            };
            if let Some((limit, detail)) = over {
                signal_host(host.process.group, libc::SIGKILL);
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), host.process.child.wait()).await;
                let output = host.process.final_output().await;
                let reason = Reason::LimitExceeded {
                    limit,
                    detail,
                    output,
                };
                return Step::Fail(
                    Failure {
                        reason,
                        retryable: true,
                        healthy_for: Some(running_since.elapsed()),
                    },
                    Some(host),
                );
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let id = &self.spec.id;
        match event {
            Event::Notification { method, params } => match method.as_str() {
                "log" => {
                    #[derive(Deserialize)]
                    struct Log {
                        level: String,
                        message: String,
                    }
                    if let Some(Ok(Log { level, message })) = params
                        .as_deref()
                        .map(|p| serde_json::from_str::<Log>(p.get()))
                    {
                        match level.as_str() {
                            "error" => {
                                tracing::error!(target: "dscode_extension_host::extension", extension = %id, "{message}");
                            }
                            "warn" => {
                                tracing::warn!(target: "dscode_extension_host::extension", extension = %id, "{message}");
                            }
                            "info" => {
                                tracing::info!(target: "dscode_extension_host::extension", extension = %id, "{message}");
                            }
                            "debug" => {
                                tracing::debug!(target: "dscode_extension_host::extension", extension = %id, "{message}");
                            }
                            _ => {
                                tracing::trace!(target: "dscode_extension_host::extension", extension = %id, "{message}");
                            }
                        }
                    } else {
                        tracing::warn!(extension = %id, "malformed log notification");
                    }
                }
                "host/error" => {
                    let detail = params.as_deref().map_or("", RawValue::get);
                    tracing::warn!(extension = %id, detail, "extension raised an uncaught error");
                }
                "commands/registered" | "commands/unregistered" => {
                    #[derive(Deserialize)]
                    struct CommandParams {
                        command: String,
                    }
                    if let Some(Ok(CommandParams { command })) = params
                        .as_deref()
                        .map(|p| serde_json::from_str::<CommandParams>(p.get()))
                    {
                        let add = method == "commands/registered";
                        self.status.send_modify(|status| {
                            status.commands.retain(|c| c != &command);
                            if add {
                                status.commands.push(command);
                            }
                        });
                    }
                }
                other => tracing::debug!(extension = %id, method = other, "ignored notification"),
            },
            Event::Unexpected(message) => {
                tracing::warn!(extension = %id, kind = %message.kind(), "host sent a message only the supervisor may send; ignored");
            }
        }
    }

    async fn fail(&mut self, failure: Failure, host: Option<LiveHost>) -> Step {
        self.set(Trigger::Failed, failure.reason.clone());
        if let Some(host) = host {
            kill(host).await;
        }
        match self
            .budget
            .on_failure(Instant::now(), failure.healthy_for, failure.retryable)
        {
            Decision::Restart { attempt, delay } => {
                self.set(Trigger::Retry, Reason::Backoff { attempt, delay });
                match self.interruptible(tokio::time::sleep(delay)).await {
                    Ok(()) => {
                        self.set(Trigger::BackoffElapsed, Reason::RestartAttempt { attempt });
                        Step::Launch
                    }
                    Err(interrupt) => interrupt.step(None),
                }
            }
            Decision::GiveUp { restarts } => {
                let reason = Reason::GaveUp {
                    restarts,
                    last: Box::new(failure.reason),
                };
                self.set(Trigger::GiveUp, reason.clone());
                for waiter in self.start_waiters.drain(..) {
                    let _ = waiter.send(Err(StartError::Crashed {
                        id: self.spec.id.clone(),
                        reason: reason.clone(),
                    }));
                }
                Step::Idle
            }
        }
    }

    async fn stop(&mut self, host: Option<LiveHost>) {
        if self.state() != ExtensionHostState::Stopped {
            self.set(Trigger::Stop, Reason::Requested);
            let how = match host {
                Some(host) => self.terminate(host).await,
                None => StopOutcome::NotRunning,
            };
            self.set(Trigger::Exited, Reason::Stopped { how });
        }
        for waiter in self.start_waiters.drain(..) {
            let _ = waiter.send(Err(StartError::Stopped {
                id: self.spec.id.clone(),
            }));
        }
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Stops the host as a stop would, then starts it again with the current spec. Callers
    /// waiting for a start keep waiting for the new one.
    async fn relaunch(&mut self, host: Option<LiveHost>) -> Step {
        let reason = self.view_changed();
        tracing::info!(extension = %self.spec.id, "{reason}; restarting the host");
        self.set(Trigger::Stop, reason);
        let how = match host {
            Some(host) => self.terminate(host).await,
            None => StopOutcome::NotRunning,
        };
        self.set(Trigger::Exited, Reason::Stopped { how });
        // What came in meanwhile: a stop (or the last handle going) wins over the new start,
        // and a newer view joins it.
        loop {
            match self.control.try_recv() {
                Ok(Control::SetView(view, reply, restarted)) => {
                    self.set_view(view);
                    self.start_waiters.push(restarted);
                    let _ = reply.send(ViewChange::Restarting);
                }
                Ok(control) => {
                    if let Some(Interrupt::Stop) = self.busy_control(Some(control)) {
                        return Step::Stop(None);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Step::Stop(None),
            }
        }
        // Not a failure: a fresh start, as `start()` would make it.
        self.budget.reset();
        let reason = self.view_changed();
        self.set(Trigger::Start, reason);
        Step::Launch
    }

    fn view_changed(&self) -> Reason {
        Reason::ViewChanged {
            grants: self.spec.sandbox.grants.describe(),
        }
    }

    /// Shutdown message, then SIGTERM, then SIGKILL, each after its grace period.
    async fn terminate(&self, mut host: LiveHost) -> StopOutcome {
        let options = &self.spec.options;
        let group = host.process.group;
        if let Some((connection, _)) = &host.connection {
            let grace_ms = u64::try_from(options.shutdown_grace.as_millis()).unwrap_or(u64::MAX);
            let shutdown = Message::Shutdown {
                reason: Some("stop requested".into()),
                grace_ms,
            };
            // One bound for queueing the message (a host that stopped reading never makes room)
            // and for the host to deactivate and exit, with a little slack to flush.
            let child = &mut host.process.child;
            let graceful =
                async { connection.send(&shutdown).await.is_ok() && child.wait().await.is_ok() };
            let slack = Duration::from_millis(250);
            if tokio::time::timeout(options.shutdown_grace + slack, graceful).await == Ok(true) {
                return StopOutcome::Graceful;
            }
        }
        signal_host(group, libc::SIGTERM);
        if tokio::time::timeout(options.term_grace, host.process.child.wait())
            .await
            .is_ok()
        {
            return StopOutcome::Terminated;
        }
        tracing::warn!(extension = %self.spec.id, "host ignored SIGTERM; killing it");
        kill(host).await;
        StopOutcome::Killed
    }
}

enum HandshakeOutcome {
    Exited(Option<ExitStatus>),
    /// Why, and whether a restart could help (an incompatible protocol version cannot).
    Failed(String, bool),
}

/// Reads the host's handshake and answers with the authoritative identity and config.
async fn handshake(spec: &HostSpec, transport: &mut Transport) -> Result<(), HandshakeOutcome> {
    let failed = |message: String| HandshakeOutcome::Failed(message, true);
    let first = match transport.read_message().await {
        Ok(None) => {
            return Err(failed(
                "host closed the connection before its handshake".into(),
            ));
        }
        Err(ReadError::Message(err)) => {
            return Err(failed(format!("malformed handshake: {err}")));
        }
        Err(ReadError::Frame(err)) => return Err(failed(err.to_string())),
        Err(err) => return Err(failed(error_chain(&err))),
        Ok(Some(message)) => message,
    };
    let Message::Handshake(hello) = first else {
        return Err(failed(format!(
            "expected a handshake, got a {}",
            first.kind()
        )));
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let message = format!(
            "host speaks protocol version {}, the supervisor speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        );
        return Err(HandshakeOutcome::Failed(message, false));
    }
    if !hello.extension_id.is_empty() && hello.extension_id != spec.id {
        // The connection decides who the peer is; a host that believes otherwise is only logged.
        tracing::warn!(extension = %spec.id, claimed = %hello.extension_id, "host claimed another extension id; ignored");
    }
    let options = &spec.options;
    let secrets = handshake_secrets(spec).await?;
    let reply = Message::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        extension_id: spec.id.clone(),
        pid: std::process::id(),
        runtime: "dscode-exthost".into(),
        runtime_version: Some(env!("CARGO_PKG_VERSION").into()),
        config: Some(HostConfig {
            extension_path: spec.extension_path.display().to_string(),
            heartbeat_interval_ms: u64::try_from(options.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            shutdown_grace_ms: u64::try_from(options.shutdown_grace.as_millis())
                .unwrap_or(u64::MAX),
            storage_path: spec.storage_path.as_ref().map(|p| p.display().to_string()),
            secrets,
        }),
    });
    transport
        .write_message(&reply)
        .await
        .map_err(|err| match err {
            WriteError::Encode(err) => failed(err.to_string()),
            WriteError::Io(err) => failed(format!("could not send handshake: {err}")),
        })
}

/// Reads the secrets a host is configured to receive. A missing one fails the start for good:
/// restarting cannot make it appear.
async fn handshake_secrets(spec: &HostSpec) -> Result<Option<HandshakeSecrets>, HandshakeOutcome> {
    if spec.handshake_secrets.is_empty() {
        return Ok(None);
    }
    let fail = |message: String| HandshakeOutcome::Failed(message, false);
    let storage = spec.secret_storage.as_ref().ok_or_else(|| {
        fail(format!(
            "{} needs secrets in its handshake, but no secret storage is available",
            spec.id
        ))
    })?;
    let mut secrets = HandshakeSecrets::default();
    for name in &spec.handshake_secrets {
        match storage.get(&spec.id, name).await {
            Ok(Some(secret)) => secrets.insert(name.clone(), secret.expose_secret()),
            Ok(None) => {
                return Err(fail(format!(
                    "secret {name} of {id} is not set: run `dscode-exthost secret set {id} {name}`",
                    id = spec.id
                )));
            }
            Err(err) => {
                return Err(fail(format!(
                    "could not read secret {name} of {}: {err}",
                    spec.id
                )));
            }
        }
    }
    Ok(Some(secrets))
}

fn parse_commands(result: &RawValue) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Activated {
        commands: Vec<String>,
    }
    serde_json::from_str::<Activated>(result.get())
        .map(|a| a.commands)
        .map_err(|err| format!("activation result is malformed: {err}"))
}

/// A start refused by the sandbox: not retried, since the same machine would refuse it again.
fn sandbox_unavailable(message: String, host: Option<LiveHost>) -> Step {
    Step::Fail(
        Failure {
            reason: Reason::SandboxUnavailable { message },
            retryable: false,
            healthy_for: None,
        },
        host,
    )
}

/// A host's move into its cgroup after the spawn. Dropping it (the start failed) stops the
/// move, so pids freed by the failed host are never moved by mistake.
struct Attach {
    task: tokio::task::JoinHandle<std::io::Result<usize>>,
    cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl Attach {
    fn start(files: Vec<std::ffi::CString>, root: u32) -> Self {
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let task = tokio::task::spawn_blocking(move || {
            crate::sandbox::cgroup::attach_tree(&files, root, &flag)
        });
        Self { task, cancel }
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The longest wait for a host's move into its cgroup.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The next multiple of [`LIMIT_CHECK`] since a process-wide epoch: every host's watchdog
/// ticks at the same instants, so a hundred hosts wake the supervisor once per tick, not a
/// hundred times.
fn aligned_tick() -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    let period = LIMIT_CHECK.as_nanos();
    let since = epoch.elapsed().as_nanos();
    let next = (since / period + 1) * period;
    epoch + Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// How often the supervisor checks a host's limits.
const LIMIT_CHECK: Duration = Duration::from_millis(100);
/// How often to read the cgroup's counters when the cgroup enforces every limit itself.
const CGROUP_CHECK: Duration = Duration::from_secs(1);

/// The exit reason with the host's last output; a kill by a limit says which.
async fn exited(host: &mut LiveHost, status: Option<ExitStatus>) -> Reason {
    use std::os::unix::process::ExitStatusExt;
    let output = host.process.final_output().await;
    if let Some((limit, detail)) = host.limits.exceeded(Look::Last) {
        return Reason::LimitExceeded {
            limit,
            detail,
            output,
        };
    }
    Reason::Exited {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        output,
    }
}

/// After the connection broke: the process usually exits at the same moment, and its exit status
/// says more than the broken connection does.
async fn exit_soon(host: &mut LiveHost) -> Option<Reason> {
    let status = tokio::time::timeout(Duration::from_secs(1), host.process.child.wait())
        .await
        .ok()?;
    Some(exited(host, status.ok()).await)
}

/// SIGKILLs the whole process group and reaps the process.
async fn kill(mut host: LiveHost) {
    signal_host(host.process.group, libc::SIGKILL);
    if tokio::time::timeout(Duration::from_secs(5), host.process.child.wait())
        .await
        .is_err()
    {
        tracing::error!(
            group = host.process.group,
            "host did not die within 5 s of SIGKILL"
        );
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
