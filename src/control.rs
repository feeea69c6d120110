//! The control socket of a running supervisor: `status` and `exec` for the CLI.
//!
//! It speaks the host wire protocol (same framing, same envelope) over a path-based socket in a
//! private directory; only the supervisor's own user can connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Supervisor;
use crate::lifecycle::{ExtensionHostState, HostHandle};
use crate::process::Containment;
use crate::rpc::{
    HandlerFuture, IncomingRequest, Peer, PeerConfig, PrivateListener, RequestHandler,
};
use crate::wire::{ErrorCode, ErrorObject, to_raw};

/// One host, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// The extension id.
    pub id: String,
    /// The lifecycle state.
    pub state: ExtensionHostState,
    /// Why it is in that state.
    pub reason: String,
    /// When it entered the state, in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// The host's pid, while it has a process.
    pub pid: Option<u32>,
    /// Restarts since the supervisor started.
    pub restarts: u32,
    /// Registered command ids.
    pub commands: Vec<String>,
    /// `pid-namespace` or `death-signal-only`, while it has a process.
    pub containment: Option<String>,
    /// What the sandbox enforced for the current process, layer by layer.
    #[serde(default)]
    pub sandbox: Option<crate::sandbox::EnforcementReport>,
}

/// The reply to `reload-grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReply {
    /// Hosts restarted because their grants changed what their sandbox lets them reach.
    pub restarted: Vec<RestartedHost>,
}

/// A host `reload-grants` restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartedHost {
    /// The extension id.
    pub id: String,
    /// Why it did not run again, if it did not.
    pub error: Option<String>,
}

impl HostView {
    /// A snapshot of `host`.
    #[must_use]
    pub fn of(host: &HostHandle) -> Self {
        let status = host.status();
        Self {
            id: host.id().to_owned(),
            state: status.state,
            reason: status.reason.to_string(),
            since_ms: status
                .since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            pid: status.pid,
            restarts: status.restarts,
            commands: status.commands,
            containment: status.containment.map(|c| match c {
                Containment::PidNamespace => "pid-namespace".to_owned(),
                Containment::DeathSignalOnly => "death-signal-only".to_owned(),
            }),
            sandbox: status.sandbox,
        }
    }
}

/// The `status` reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReply {
    /// Every host, sorted by id.
    pub hosts: Vec<HostView>,
    /// The secret storage backend in use (`secret-service`, `keyutils`), if any.
    #[serde(default)]
    pub secret_backend: Option<String>,
}

/// The `exec` request.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecParams {
    /// The extension id.
    pub extension: String,
    /// The command id.
    pub command: String,
    /// A JSON array of arguments, forwarded unparsed.
    pub args: Box<RawValue>,
}

/// Serves `status`, `exec` and `reload-grants` for a [`Supervisor`].
#[derive(Debug, Clone)]
pub struct ControlHandler {
    supervisor: Supervisor,
}

impl ControlHandler {
    /// A handler over `supervisor`.
    #[must_use]
    pub fn new(supervisor: Supervisor) -> Self {
        Self { supervisor }
    }
}

impl RequestHandler for ControlHandler {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let supervisor = self.supervisor.clone();
        Box::pin(async move {
            match request.method.as_str() {
                "status" => {
                    let hosts = supervisor.hosts().iter().map(HostView::of).collect();
                    let secret_backend = supervisor.secret_backend().map(str::to_owned);
                    to_raw(&StatusReply {
                        hosts,
                        secret_backend,
                    })
                    .map_err(|err| ErrorObject::new(ErrorCode::Internal, err.to_string()))
                }
                "exec" => {
                    let params = request.params.as_deref().ok_or_else(|| {
                        ErrorObject::new(ErrorCode::InvalidParams, "exec needs params")
                    })?;
                    let exec: ExecParams = serde_json::from_str(params.get()).map_err(|err| {
                        ErrorObject::new(
                            ErrorCode::InvalidParams,
                            format!("invalid exec params: {err}"),
                        )
                    })?;
                    supervisor
                        .execute_command(&exec.extension, &exec.command, &exec.args)
                        .await
                        .map_err(|err| err.to_error_object())
                }
                "reload-grants" => {
                    let restarted = supervisor.reload_grants().await.map_err(|err| {
                        let chain = crate::rpc::error_chain(&err);
                        ErrorObject::new(ErrorCode::InvalidParams, chain)
                    })?;
                    let restarted = restarted
                        .into_iter()
                        .map(|(id, started)| RestartedHost {
                            id,
                            error: started.err().map(|err| err.to_string()),
                        })
                        .collect();
                    to_raw(&ReloadReply { restarted })
                        .map_err(|err| ErrorObject::new(ErrorCode::Internal, err.to_string()))
                }
                other => Err(ErrorObject::new(
                    ErrorCode::MethodNotFound,
                    format!(
                        "unknown control method `{other}`; expected `status`, `exec` or `reload-grants`"
                    ),
                )),
            }
        })
    }
}

/// What a control client may make the supervisor hold.
#[derive(Debug, Clone)]
pub struct ControlLimits {
    /// Clients connected at once; one more is closed as it arrives (and logged).
    pub max_clients: usize,
    /// A client with no request in flight for this long is disconnected.
    pub idle_timeout: Duration,
    /// Requests one client may have in flight, and what it may make wait for it unread.
    pub peer: PeerConfig,
}

impl Default for ControlLimits {
    fn default() -> Self {
        Self {
            max_clients: 64,
            idle_timeout: Duration::from_secs(300),
            peer: PeerConfig {
                max_incoming: 16,
                max_queued_bytes: 4 * 1024 * 1024,
                ..PeerConfig::default()
            },
        }
    }
}

/// Counts a connection's requests in flight and notes when the last one ended.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    ended: tokio::sync::Notify,
}

/// The control handler of one connection, which keeps its [`Activity`].
#[derive(Debug, Clone)]
struct Tracked {
    handler: ControlHandler,
    activity: Arc<Activity>,
}

impl RequestHandler for Tracked {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let activity = Arc::clone(&self.activity);
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        let served = self.handler.handle(request);
        Box::pin(async move {
            let result = served.await;
            activity.in_flight.fetch_sub(1, Ordering::SeqCst);
            activity.ended.notify_one();
            result
        })
    }
}

/// Accepts control connections for as long as the task runs, with [`ControlLimits::default`].
pub async fn serve(listener: PrivateListener, handler: ControlHandler) {
    serve_with(listener, handler, ControlLimits::default()).await;
}

/// Accepts control connections for as long as the task runs. Running out of descriptors or
/// memory is waited out (with a log line) rather than fatal: the listener and its socket file
/// stay, so the supervisor stays reachable once the pressure is gone.
pub async fn serve_with(listener: PrivateListener, handler: ControlHandler, limits: ControlLimits) {
    let clients = Arc::new(tokio::sync::Semaphore::new(limits.max_clients));
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, uid) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(err) => {
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays queued in the
                // kernel until a descriptor frees up; ECONNABORTED: that one client is gone.
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis(), "could not accept a control connection; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&clients).try_acquire_owned() else {
            tracing::warn!(
                uid,
                max = limits.max_clients,
                "refused a control connection: the control-client budget is spent"
            );
            drop(stream);
            continue;
        };
        let activity = Arc::new(Activity::default());
        let (connection, mut events) = Peer::new(
            stream,
            format!("control client uid {uid}"),
            limits.peer.clone(),
            Arc::new(Tracked {
                handler: handler.clone(),
                activity: Arc::clone(&activity),
            }),
        );
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                tokio::select! {
                    event = events.recv() => if event.is_none() { break },
                    () = activity.ended.notified() => {}
                    () = tokio::time::sleep(idle) => {
                        if activity.in_flight.load(Ordering::SeqCst) == 0 {
                            tracing::info!(uid, idle_s = idle.as_secs(), "closed an idle control connection");
                            connection.close();
                            break;
                        }
                    }
                }
            }
            connection.closed().await;
        });
    }
}
