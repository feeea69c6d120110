//! The control socket of a running supervisor: `status` and `exec` for the CLI.
//!
//! It speaks the host wire protocol (same framing, same envelope) over a path-based socket in a
//! private directory; only the supervisor's own user can connect.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::broker::Broker;
use crate::lifecycle::{ExtensionHostManager, ExtensionHostState, HostHandle};
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

/// Serves `status`, `exec` and `reload-grants` from a manager and its broker.
#[derive(Debug, Clone)]
pub struct ControlHandler {
    manager: Arc<ExtensionHostManager>,
    broker: Option<Broker>,
    secret_backend: Option<&'static str>,
    /// One grants reload at a time, so an older view can never land after a newer one.
    reloads: Arc<tokio::sync::Mutex<()>>,
}

impl ControlHandler {
    /// A handler over `manager`.
    #[must_use]
    pub fn new(manager: Arc<ExtensionHostManager>) -> Self {
        Self {
            manager,
            broker: None,
            secret_backend: None,
            reloads: Arc::default(),
        }
    }

    /// Reports `backend` as the secret storage in `status`.
    #[must_use]
    pub fn with_secret_backend(mut self, backend: &'static str) -> Self {
        self.secret_backend = Some(backend);
        self
    }

    /// Also serves `reload-grants` for `broker`.
    #[must_use]
    pub fn with_broker(mut self, broker: Broker) -> Self {
        self.broker = Some(broker);
        self
    }
}

impl RequestHandler for ControlHandler {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let manager = Arc::clone(&self.manager);
        let broker = self.broker.clone();
        let secret_backend = self.secret_backend;
        let reloads = Arc::clone(&self.reloads);
        Box::pin(async move {
            match request.method.as_str() {
                "status" => {
                    let hosts = manager.hosts().iter().map(HostView::of).collect();
                    let secret_backend = secret_backend.map(str::to_owned);
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
                    manager
                        .execute_command(&exec.extension, &exec.command, &exec.args)
                        .await
                        .map_err(|err| err.to_error_object())
                }
                "reload-grants" => {
                    let broker = broker.ok_or_else(|| {
                        ErrorObject::new(
                            ErrorCode::Unsupported,
                            "this supervisor has no permission broker",
                        )
                    })?;
                    // In a task of its own, so a client that hangs up halfway cannot leave the
                    // broker narrowed and a sandbox still wide.
                    let reload = tokio::spawn(async move {
                        // One at a time until every host has its new view, so an older view
                        // never lands after a newer one; not while the restarts run.
                        let one_at_a_time = reloads.lock().await;
                        let reloaded = broker.reload().await;
                        // Even after an invalid grant: that extension now has nothing, and its
                        // sandbox must not keep what it had.
                        let restarts = manager.apply_direct_views(&broker);
                        drop(one_at_a_time);
                        (reloaded, restarts.await)
                    });
                    let (reloaded, restarted) = reload
                        .await
                        .map_err(|err| ErrorObject::new(ErrorCode::Internal, err.to_string()))?;
                    let restarted = restarted
                        .into_iter()
                        .map(|(id, started)| RestartedHost {
                            id,
                            error: started.err().map(|err| err.to_string()),
                        })
                        .collect();
                    reloaded.map_err(|err| {
                        ErrorObject::new(ErrorCode::InvalidParams, format!("{err}: {}", err.source))
                    })?;
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

/// Accepts control connections until the listener fails; run it as a task.
pub async fn serve(listener: PrivateListener, handler: ControlHandler) {
    loop {
        match listener.accept().await {
            Ok((stream, uid)) => {
                let (connection, mut events) = Peer::new(
                    stream,
                    format!("control client uid {uid}"),
                    PeerConfig::default(),
                    Arc::new(handler.clone()),
                );
                // Each client lives as long as it keeps its end open.
                tokio::spawn(async move {
                    while events.recv().await.is_some() {}
                    connection.closed().await;
                });
            }
            Err(err) => {
                tracing::error!(error = %err, "control socket failed; no longer accepting clients");
                return;
            }
        }
    }
}
