//! The task that owns one host and performs what its [`Machine`] decides.
//!
//! One actor per host. It waits on everything at once (control messages, the effect in flight,
//! the child's exit, timers, the watchdog, the connection's events and its closing), turns what
//! happened into an [`Input`], and performs the [`Action`]s [`Machine::step`] returns: spawn,
//! signal, arm a timer, publish a state change, answer a waiter. It decides nothing itself, so
//! crashes and hangs are handled the moment they happen, by rules the machine's tests pin down.
//! Callers talk to it through a [`HostHandle`](super::HostHandle).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::process::Child;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::error::{StartError, chain};
use super::handshake::{self, ActivationError, HandshakeError};
use super::launch::{self, CgroupError, Enforced, LaunchError, LiveHost, StageError};
use super::machine::{Action, Answer, Change, Exit, Input, Machine, TimerKind, WaiterId};
use super::options::HostSpec;
use super::state::{ExtensionHostState, Reason, StateChange};
use super::status::{HostStatus, ViewChange};
use super::watchdog::{Alarm, LimitGuard, Look, Watchdog};
use super::{notifications, stop};
use crate::rpc::{CloseReason, Event, Events, Peer, RequestHandler, SendError, Transport};
use crate::sandbox::view::FsGrants;

/// A message from a [`HostHandle`](super::HostHandle).
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

/// The effect in flight. One at a time: the machine starts the next once this one reported.
type Operation = Pin<Box<dyn Future<Output = Done> + Send>>;

/// How an effect ended, with what it hands back.
enum Done {
    Spawned(Result<Box<LiveHost>, LaunchError>),
    Staged(Box<LiveHost>, Result<Box<Enforced>, StageError>),
    Handshake(Transport, Result<(), HandshakeError>),
    Cgroup(Result<(), CgroupError>),
    Activation(Result<Vec<String>, ActivationError>),
    Shutdown(Result<(), SendError>),
}

/// What woke the actor.
enum Wake {
    Control(Option<Control>),
    Done(Done),
    Exited(Option<ExitStatus>),
    Timer(TimerKind),
    Alarm(Alarm),
    Event(Option<Event>),
    Closed(CloseReason),
}

pub(crate) struct Actor {
    id: Arc<str>,
    spec: Arc<HostSpec>,
    broker: Arc<dyn RequestHandler>,
    control: mpsc::UnboundedReceiver<Control>,
    status: watch::Sender<HostStatus>,
    subscribers: Vec<mpsc::UnboundedSender<StateChange>>,
    machine: Machine,
    waiters: Waiters,
    host: Option<LiveHost>,
    operation: Option<Operation>,
    timers: Timers,
    /// While the machine watches the running host; the connection's events and its closing
    /// are read only then.
    watchdog: Option<Watchdog>,
    /// Until every handle is gone: a closed channel is reported once, not read again.
    control_open: bool,
    inputs: VecDeque<Input>,
    ended: bool,
}

impl Actor {
    pub(crate) fn new(
        spec: Arc<HostSpec>,
        broker: Arc<dyn RequestHandler>,
        control: mpsc::UnboundedReceiver<Control>,
        subscribers: Vec<mpsc::UnboundedSender<StateChange>>,
    ) -> (Self, watch::Receiver<HostStatus>) {
        let (status, status_rx) = watch::channel(HostStatus::new());
        let machine = Machine::new(&spec.options, spec.sandbox.grants.clone());
        let actor = Self {
            id: spec.id.as_str().into(),
            spec,
            broker,
            control,
            status,
            subscribers,
            machine,
            waiters: Waiters::default(),
            host: None,
            operation: None,
            timers: Timers::default(),
            watchdog: None,
            control_open: true,
            inputs: VecDeque::new(),
            ended: false,
        };
        (actor, status_rx)
    }

    /// Runs until the machine says the host's supervision is over (every handle is gone and
    /// the host is stopped). Waiters still unanswered then see the host as gone.
    pub(crate) async fn run(mut self) {
        while !self.ended {
            let wake = self.wake().await;
            if let Some(input) = self.input(wake).await {
                self.inputs.push_back(input);
            }
            while let Some(input) = self.inputs.pop_front() {
                for action in self.machine.step(Instant::now(), input) {
                    self.perform(action);
                }
            }
        }
    }

    async fn wake(&mut self) -> Wake {
        let supervised = self.watchdog.is_some();
        let (child, limits, events, connection) = match self.host.as_mut() {
            Some(host) => {
                let child = (!host.exited).then_some(&mut host.process.child);
                let (events, connection) = match &mut host.connection {
                    Some((peer, events)) if supervised => (
                        host.events_open.then_some(events),
                        (!host.closed_reported).then_some(&*peer),
                    ),
                    _ => (None, None),
                };
                (child, Some(&mut host.limits), events, connection)
            }
            None => (None, None, None, None),
        };
        tokio::select! {
            control = self.control.recv(), if self.control_open => Wake::Control(control),
            done = next_done(&mut self.operation) => Wake::Done(done),
            status = exit_of(child) => Wake::Exited(status),
            kind = self.timers.next() => Wake::Timer(kind),
            alarm = alarm_of(self.watchdog.as_mut(), limits) => Wake::Alarm(alarm),
            event = event_of(events) => Wake::Event(event),
            reason = closed_of(connection) => Wake::Closed(reason),
        }
    }

    /// What the machine is told about a wake-up, if anything.
    async fn input(&mut self, wake: Wake) -> Option<Input> {
        match wake {
            Wake::Control(None) => {
                self.control_open = false;
                Some(Input::HandleDropped)
            }
            Wake::Control(Some(control)) => self.control_input(control),
            Wake::Done(done) => self.done_input(done),
            Wake::Exited(status) => Some(self.exit_input(status).await),
            Wake::Timer(kind) => {
                match kind {
                    TimerKind::TermGrace => {
                        tracing::warn!(extension = %self.id, "host ignored SIGTERM; killing it");
                    }
                    TimerKind::KillWait => {
                        tracing::error!(extension = %self.id, "host did not die within {} s of SIGKILL", super::machine::KILL_WAIT.as_secs());
                    }
                    _ => {}
                }
                Some(Input::TimerFired(kind))
            }
            Wake::Alarm(Alarm::Hung { silent_for }) => Some(Input::HeartbeatMissed { silent_for }),
            Wake::Alarm(Alarm::Limit { limit, detail }) => {
                Some(Input::LimitExceeded { limit, detail })
            }
            Wake::Event(Some(event)) => {
                notifications::route(&self.id, event, &self.status);
                None
            }
            Wake::Event(None) => {
                self.live().events_open = false;
                None
            }
            Wake::Closed(reason) => {
                self.live().closed_reported = true;
                Some(Input::ConnectionLost {
                    message: chain(&reason),
                })
            }
        }
    }

    fn control_input(&mut self, control: Control) -> Option<Input> {
        Some(match control {
            Control::Start(tx) => Input::Start(self.waiters.add(Waiter::Start(tx))),
            Control::Stop(tx) => Input::Stop(self.waiters.add(Waiter::Stop(tx))),
            Control::Subscribe(subscriber) => {
                self.subscribers.push(subscriber);
                return None;
            }
            Control::SetView(grants, reply, restarted) => Input::SetView {
                grants,
                reply: self.waiters.add(Waiter::View(reply)),
                restarted: self.waiters.add(Waiter::Start(restarted)),
            },
        })
    }

    fn done_input(&mut self, done: Done) -> Option<Input> {
        Some(match done {
            Done::Spawned(Ok(host)) => {
                self.host = Some(*host);
                Input::Spawned
            }
            Done::Spawned(Err(err)) => Input::SpawnFailed(err),
            Done::Staged(host, staged) => {
                self.host = Some(*host);
                staged.map_or_else(Input::StageRefused, Input::StageReported)
            }
            Done::Handshake(transport, outcome) => {
                self.live().transport = Some(transport);
                outcome.map_or_else(Input::HandshakeFailed, |()| Input::HandshakeDone)
            }
            Done::Cgroup(joined) => {
                joined.map_or_else(Input::CgroupFailed, |()| Input::CgroupJoined)
            }
            Done::Activation(Ok(commands)) => Input::Activated { commands },
            Done::Activation(Err(error)) => Input::ActivationFailed {
                error,
                output: self.live().process.output.snapshot(),
            },
            Done::Shutdown(Ok(())) => return None,
            Done::Shutdown(Err(_)) => Input::ShutdownFailed,
        })
    }

    /// The exit, with the host's last output; a kill by a limit says which.
    async fn exit_input(&mut self, status: Option<ExitStatus>) -> Input {
        use std::os::unix::process::ExitStatusExt;
        let host = self.live();
        host.exited = true;
        let output = host.process.final_output().await;
        let over_limit = host.limits.exceeded(Look::Last);
        Input::ProcessExited(Exit {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            output,
            over_limit,
        })
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Publish(change) => self.publish(change),
            Action::RecordProcess(enforced) => self.status.send_modify(|status| {
                status.pid = Some(enforced.pid);
                status.containment = Some(enforced.containment);
                status.sandbox = Some(enforced.sandbox);
            }),
            Action::Spawn => {
                let spec = Arc::clone(&self.spec);
                self.begin(async move { Done::Spawned(launch::spawn(spec).await.map(Box::new)) });
            }
            Action::ReadStageReport => {
                let spec = Arc::clone(&self.spec);
                let host = self
                    .host
                    .take()
                    .expect("a spawned host to read the stage of");
                self.begin(async move {
                    let (host, staged) = launch::read_stage(spec, host).await;
                    Done::Staged(Box::new(host), staged)
                });
            }
            Action::Handshake => {
                let spec = Arc::clone(&self.spec);
                let stream = self.live().process.ipc.take();
                let stream = stream.expect("a fresh host has its socket");
                let transport = Transport::new(stream, spec.options.max_frame_bytes);
                self.begin(async move {
                    let (transport, outcome) = handshake::exchange(spec, transport).await;
                    Done::Handshake(transport, outcome)
                });
            }
            Action::JoinCgroup => {
                let attach = self.live().attach.take();
                self.begin(async move { Done::Cgroup(launch::join_cgroup(attach).await) });
            }
            Action::Activate => self.activate(),
            Action::CancelOperation => self.operation = None,
            Action::StartWatchdog => {
                let timeout = self.spec.options.heartbeat_timeout;
                let host = self.live();
                let (_, events) = host
                    .connection
                    .as_ref()
                    .expect("a running host is connected");
                self.watchdog = Some(Watchdog::new(events.heartbeats(), &host.limits, timeout));
            }
            Action::StopWatchdog => self.watchdog = None,
            Action::SendShutdown { grace } => {
                let (connection, _) = self.live().connection.as_ref().expect("a connection");
                let connection = connection.clone();
                self.begin(
                    async move { Done::Shutdown(stop::send_shutdown(connection, grace).await) },
                );
            }
            Action::Signal(signal) => stop::signal(self.live().process.group, signal),
            Action::Arm(kind, after) => self.timers.arm(kind, after),
            Action::Disarm(kind) => self.timers.disarm(kind),
            Action::Release => {
                self.watchdog = None;
                self.host = None;
            }
            Action::UseView(grants) => {
                let mut spec = HostSpec::clone(&self.spec);
                spec.sandbox.grants = grants;
                self.spec = Arc::new(spec);
            }
            Action::Answer(waiter, answer) => self.waiters.answer(waiter, answer, &self.id),
            Action::Forget(waiter) => self.waiters.forget(waiter),
            Action::Exit => self.ended = true,
        }
    }

    /// Starts the connection on the handshaken transport and asks the extension to activate.
    fn activate(&mut self) {
        let config = self.spec.options.connection_config();
        let timeout = self.spec.options.activation_timeout;
        let broker = Arc::clone(&self.broker);
        let id = Arc::clone(&self.id);
        let host = self.live();
        let transport = host
            .transport
            .take()
            .expect("a handshaken host has its transport");
        let (connection, events): (Peer, Events) = Peer::start(transport, &*id, config, broker);
        host.connection = Some((connection.clone(), events));
        host.events_open = true;
        self.status
            .send_modify(|status| status.connection = Some(connection.clone()));
        self.begin(async move { Done::Activation(handshake::activate(connection, timeout).await) });
    }

    fn begin(&mut self, operation: impl Future<Output = Done> + Send + 'static) {
        self.operation = Some(Box::pin(operation));
    }

    /// The host process, which the machine only names while there is one.
    fn live(&mut self) -> &mut LiveHost {
        self.host
            .as_mut()
            .expect("the machine acts on a host only while it has one")
    }

    /// Records a state change, tells the subscribers, and logs it.
    fn publish(&mut self, change: Change) {
        let Change {
            from,
            to,
            reason,
            restarts,
        } = change;
        let at = SystemTime::now();
        self.status.send_modify(|status| {
            status.state = to;
            status.reason = reason.clone();
            status.since = at;
            status.restarts = restarts;
            if !to.has_process() {
                status.pid = None;
                status.connection = None;
            }
            if let Reason::Activated { commands } = &reason {
                status.commands.clone_from(commands);
            }
        });
        let change = StateChange {
            extension_id: self.id.to_string(),
            from,
            to,
            reason,
            at,
        };
        if matches!(
            to,
            ExtensionHostState::Unhealthy | ExtensionHostState::Crashed
        ) {
            tracing::warn!(extension = %self.id, from = %from, to = %to, reason = %change.reason, "extension host state changed");
        } else {
            tracing::info!(extension = %self.id, from = %from, to = %to, reason = %change.reason, "extension host state changed");
        }
        self.subscribers
            .retain(|subscriber| subscriber.send(change.clone()).is_ok());
    }
}

/// Polls the effect in flight, and clears it once it is done.
///
/// # Cancel safety
/// Cancel safe: the effect stays where it is and is polled again next time.
async fn next_done(operation: &mut Option<Operation>) -> Done {
    let Some(running) = operation.as_mut() else {
        return std::future::pending().await;
    };
    let done = running.await;
    *operation = None;
    done
}

async fn exit_of(child: Option<&mut Child>) -> Option<ExitStatus> {
    match child {
        Some(child) => child.wait().await.ok(),
        None => std::future::pending().await,
    }
}

async fn alarm_of(watchdog: Option<&mut Watchdog>, limits: Option<&mut LimitGuard>) -> Alarm {
    match (watchdog, limits) {
        (Some(watchdog), Some(limits)) => watchdog.alarm(limits).await,
        _ => std::future::pending().await,
    }
}

async fn event_of(events: Option<&mut Events>) -> Option<Event> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

async fn closed_of(connection: Option<&Peer>) -> CloseReason {
    match connection {
        Some(connection) => connection.closed().await,
        None => std::future::pending().await,
    }
}

/// The timers the machine armed, as deadlines; the earliest fires first.
#[derive(Default)]
struct Timers {
    deadlines: [Option<Instant>; TimerKind::ALL.len()],
}

impl Timers {
    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.deadlines[kind.index()] = Some(Instant::now() + after);
    }

    fn disarm(&mut self, kind: TimerKind) {
        self.deadlines[kind.index()] = None;
    }

    /// Waits for the earliest armed timer and disarms it.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing changes until a timer has fired.
    async fn next(&mut self) -> TimerKind {
        let earliest = TimerKind::ALL
            .into_iter()
            .filter_map(|kind| self.deadlines[kind.index()].map(|at| (at, kind)))
            .min_by_key(|(at, _)| *at);
        let Some((at, kind)) = earliest else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(at).await;
        self.deadlines[kind.index()] = None;
        kind
    }
}

/// A caller waiting for an answer.
enum Waiter {
    Start(oneshot::Sender<Result<(), StartError>>),
    Stop(oneshot::Sender<()>),
    View(oneshot::Sender<ViewChange>),
}

/// The callers waiting, by the ids the machine knows them by. Those left when the actor ends
/// are dropped, which their callers see as [`StartError::Gone`].
#[derive(Default)]
struct Waiters {
    next: u64,
    waiting: HashMap<WaiterId, Waiter>,
}

impl Waiters {
    fn add(&mut self, waiter: Waiter) -> WaiterId {
        let id = WaiterId(self.next);
        self.next += 1;
        self.waiting.insert(id, waiter);
        id
    }

    fn forget(&mut self, id: WaiterId) {
        self.waiting.remove(&id);
    }

    fn answer(&mut self, id: WaiterId, answer: Answer, host: &str) {
        let Some(waiter) = self.waiting.remove(&id) else {
            debug_assert!(false, "{id:?} answered twice");
            return;
        };
        let host = || host.to_owned();
        // A caller that stopped waiting is not an error.
        match (waiter, answer) {
            (Waiter::Start(tx), Answer::Started) => drop(tx.send(Ok(()))),
            (Waiter::Start(tx), Answer::Crashed(reason)) => {
                drop(tx.send(Err(StartError::Crashed { id: host(), reason })));
            }
            (Waiter::Start(tx), Answer::StoppedFirst) => {
                drop(tx.send(Err(StartError::Stopped { id: host() })));
            }
            (Waiter::Start(tx), Answer::Gone) => {
                drop(tx.send(Err(StartError::Gone { id: host() })));
            }
            (Waiter::Stop(tx), Answer::Stopped) => drop(tx.send(())),
            (Waiter::View(tx), Answer::View(change)) => drop(tx.send(change)),
            (_, answer) => debug_assert!(false, "{answer:?} for another kind of waiter"),
        }
    }
}

#[cfg(test)]
mod tests;
