//! The public face of the lifecycle: a handle per host and a manager for many.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};

use super::actor::{Actor, Control};
use super::error::{CallError, StartError};
use super::options::HostSpec;
use super::state::{ExtensionHostState, StateChange};
use super::status::{HostStatus, ViewChange};
use crate::broker::DenyAll;
use crate::rpc::{Peer, RequestHandler};

/// A cloneable handle to one supervised host. Every method sends a message to the host's task;
/// none of them blocks on the others.
#[derive(Debug, Clone)]
pub struct HostHandle {
    id: Arc<str>,
    control: mpsc::UnboundedSender<Control>,
    status: watch::Receiver<HostStatus>,
}

impl HostHandle {
    /// Creates a host in the Stopped state and starts its task.
    ///
    /// `broker` serves the host's API requests (`fs/readFile`, ...), with the caller's identity
    /// taken from the connection.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    #[must_use]
    pub fn spawn(spec: HostSpec, broker: Arc<dyn RequestHandler>) -> Self {
        Self::spawn_with_subscribers(spec, broker, Vec::new())
    }

    fn spawn_with_subscribers(
        spec: HostSpec,
        broker: Arc<dyn RequestHandler>,
        subscribers: Vec<mpsc::UnboundedSender<StateChange>>,
    ) -> Self {
        let id: Arc<str> = spec.id.as_str().into();
        let (control, control_rx) = mpsc::unbounded_channel();
        let (actor, status) = Actor::new(Arc::new(spec), broker, control_rx, subscribers);
        tokio::spawn(actor.run());
        Self {
            id,
            control,
            status,
        }
    }

    /// The extension id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Starts the host and waits until it is Running.
    ///
    /// Returns at once if it already runs. A host that keeps failing is restarted within its
    /// budget, so this may take as long as the backoff delays add up to.
    ///
    /// # Errors
    /// [`StartError::Crashed`] once the restart budget is spent, with the last failure;
    /// [`StartError::Stopped`] if `stop()` came first.
    pub async fn start(&self) -> Result<(), StartError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StartError::Gone {
            id: self.id.to_string(),
        };
        self.control.send(Control::Start(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Stops the host: shutdown message, `deactivate()` grace, SIGTERM to its process group,
    /// SIGKILL. Interrupts a pending restart at once. Returns when the host is Stopped.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Sets the directories the host's sandbox lets it read and write directly (the OS-level
    /// view beside the broker's checks), usually after its grants changed. A sandbox cannot be
    /// narrowed under a running process, so a live host is stopped and started again with the
    /// new view, and the future resolves once it runs again; otherwise the view applies at the
    /// next start. A host that is not live is never started by this. The view is handed over
    /// when this is called, before the future is awaited.
    ///
    /// # Errors
    /// As [`HostHandle::start`], when the restart did not reach Running (including a `stop()`
    /// that came first).
    pub fn set_direct_view(
        &self,
        grants: crate::sandbox::view::FsGrants,
    ) -> impl Future<Output = Result<ViewChange, StartError>> + Send + use<> {
        let id = self.id.to_string();
        let (tx, rx) = oneshot::channel();
        let (restarted_tx, restarted) = oneshot::channel();
        let sent = self
            .control
            .send(Control::SetView(grants, tx, restarted_tx))
            .is_ok();
        async move {
            let gone = || StartError::Gone { id: id.clone() };
            if !sent {
                return Err(gone());
            }
            let change = rx.await.map_err(|_| gone())?;
            if change == ViewChange::Restarting {
                restarted.await.map_err(|_| gone())??;
            }
            Ok(change)
        }
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> HostStatus {
        self.status.borrow().clone()
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> ExtensionHostState {
        self.status.borrow().state
    }

    /// Every state change from now on, with its reason. Nothing is dropped: the channel is
    /// unbounded, and state changes are rare (the backoff paces them).
    #[must_use]
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StateChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.control.send(Control::Subscribe(tx));
        rx
    }

    /// Waits until the host is in `state`, or `timeout` passes; returns the state it was in last.
    pub async fn wait_for(
        &self,
        state: ExtensionHostState,
        timeout: Duration,
    ) -> ExtensionHostState {
        let mut status = self.status.clone();
        let _ = tokio::time::timeout(timeout, status.wait_for(|s| s.state == state)).await;
        status.borrow().state
    }

    fn connection(&self) -> Result<Peer, CallError> {
        let status = self.status.borrow();
        status
            .connection
            .clone()
            .ok_or_else(|| CallError::NotRunning {
                id: self.id.to_string(),
                state: status.state,
            })
    }

    /// Sends a request to the host with the default timeout.
    ///
    /// # Errors
    /// [`CallError::NotRunning`] when the host has no connection, else
    /// [`CallError::Request`] with whatever the request yields.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
    ) -> Result<Box<RawValue>, CallError> {
        Ok(self.connection()?.request(method, params).await?)
    }

    /// Sends a request with an explicit timeout and cancellation token.
    ///
    /// # Errors
    /// As [`HostHandle::request`].
    pub async fn request_with(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        timeout: Duration,
        cancel: Option<&tokio_util::sync::CancellationToken>,
    ) -> Result<Box<RawValue>, CallError> {
        Ok(self
            .connection()?
            .request_with(method, params, timeout, cancel)
            .await?)
    }

    /// Runs a command the extension registered. `args` must be a JSON array; it is forwarded
    /// without being parsed.
    ///
    /// # Errors
    /// [`CallError::ArgumentsNotArray`] if `args` is not an array, else as
    /// [`HostHandle::request`]: the host answers `CommandNotFound`, or `ExtensionError` if the
    /// handler threw.
    pub async fn execute_command(
        &self,
        command: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, CallError> {
        let params = command_params(command, args)?;
        self.request("command/execute", Some(params)).await
    }
}

/// Builds the params of a `command/execute` request, `{"command": ..., "args": ...}`, around
/// the caller's raw arguments. The arguments are copied, not parsed again: a `RawValue` is
/// already valid JSON.
///
/// # Errors
/// [`CallError::ArgumentsNotArray`] if `args` is not a JSON array.
pub fn command_params(command: &str, args: &RawValue) -> Result<Box<RawValue>, CallError> {
    #[derive(serde::Serialize)]
    struct Params<'a> {
        command: &'a str,
        args: &'a RawValue,
    }
    if !args.get().trim_start().starts_with('[') {
        return Err(CallError::ArgumentsNotArray);
    }
    Ok(serde_json::value::to_raw_value(&Params { command, args })
        .expect("a string and a raw value always serialize"))
}

/// Why a host could not be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// Another host already has this id.
    #[error("an extension host with id {0} already exists")]
    Duplicate(String),
    /// No host has this id.
    #[error("no extension host with id {0}")]
    Unknown(String),
}

/// Supervises many hosts: one task each, a shared broker, and one event stream for all.
pub struct ExtensionHostManager {
    hosts: Mutex<BTreeMap<String, HostHandle>>,
    broker: Arc<dyn RequestHandler>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<StateChange>>>,
}

impl std::fmt::Debug for ExtensionHostManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionHostManager")
            .field("hosts", &self.ids())
            .finish_non_exhaustive()
    }
}

impl Default for ExtensionHostManager {
    fn default() -> Self {
        Self::new(Arc::new(DenyAll))
    }
}

impl ExtensionHostManager {
    /// A manager whose hosts' API requests are served by `broker`.
    #[must_use]
    pub fn new(broker: Arc<dyn RequestHandler>) -> Self {
        Self {
            hosts: Mutex::new(BTreeMap::new()),
            broker,
            subscribers: Mutex::new(Vec::new()),
        }
    }

    /// Adds a host in the Stopped state.
    ///
    /// # Errors
    /// [`ManagerError::Duplicate`] if the id is taken.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn add(&self, spec: HostSpec) -> Result<HostHandle, ManagerError> {
        let mut hosts = self.hosts.lock().expect("host table");
        if hosts.contains_key(&spec.id) {
            return Err(ManagerError::Duplicate(spec.id));
        }
        let subscribers = self.subscribers.lock().expect("subscribers").clone();
        let id = spec.id.clone();
        let handle =
            HostHandle::spawn_with_subscribers(spec, Arc::clone(&self.broker), subscribers);
        hosts.insert(id, handle.clone());
        Ok(handle)
    }

    /// Takes the host with this id out of the manager (it keeps running until stopped or its
    /// last handle is dropped).
    pub fn remove(&self, id: &str) -> Option<HostHandle> {
        self.hosts.lock().expect("host table").remove(id)
    }

    /// The host with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<HostHandle> {
        self.hosts.lock().expect("host table").get(id).cloned()
    }

    /// Every host, by id.
    #[must_use]
    pub fn hosts(&self) -> Vec<HostHandle> {
        self.hosts
            .lock()
            .expect("host table")
            .values()
            .cloned()
            .collect()
    }

    /// Every host id, sorted.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        self.hosts
            .lock()
            .expect("host table")
            .keys()
            .cloned()
            .collect()
    }

    /// State changes of every host, present and future.
    #[must_use]
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<StateChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        let hosts = self.hosts.lock().expect("host table");
        for host in hosts.values() {
            let _ = host.control.send(Control::Subscribe(tx.clone()));
        }
        self.subscribers.lock().expect("subscribers").push(tx);
        rx
    }

    /// Starts every host concurrently; returns each one's outcome.
    pub async fn start_all(&self) -> Vec<(String, Result<(), StartError>)> {
        let hosts = self.hosts();
        let starts = hosts
            .iter()
            .map(|host| async move { (host.id().to_owned(), host.start().await) });
        futures_util::future::join_all(starts).await
    }

    /// Gives every host the direct view its current grants allow (after
    /// [`crate::broker::Broker::reload`]), restarting the live hosts whose view changed. The
    /// views are handed over before this returns; the future waits until the restarted hosts
    /// run again, and yields each with the outcome of its start. Hosts `broker` does not serve,
    /// and hosts already gone, are left out.
    pub fn apply_direct_views(
        &self,
        broker: &crate::broker::Broker,
    ) -> impl Future<Output = Vec<(String, Result<(), StartError>)>> + Send + use<> {
        let updates: Vec<_> = self
            .hosts()
            .iter()
            .filter_map(|host| {
                // A host the broker does not serve keeps the view its embedder gave it.
                let grants = broker.direct_view(host.id())?;
                let outcome = host.set_direct_view(grants);
                let id = host.id().to_owned();
                Some(async move {
                    match outcome.await {
                        Ok(ViewChange::Restarting) => Some((id, Ok(()))),
                        Ok(ViewChange::Unchanged | ViewChange::Updated)
                        | Err(StartError::Gone { .. }) => None,
                        Err(err) => Some((id, Err(err))),
                    }
                })
            })
            .collect();
        async move {
            futures_util::future::join_all(updates)
                .await
                .into_iter()
                .flatten()
                .collect()
        }
    }

    /// Stops every host concurrently.
    pub async fn stop_all(&self) {
        let hosts = self.hosts();
        futures_util::future::join_all(hosts.iter().map(HostHandle::stop)).await;
    }

    /// Runs `command` in the host of `extension`.
    ///
    /// # Errors
    /// [`CallError::NotFound`] for an unknown extension, else as
    /// [`HostHandle::execute_command`].
    pub async fn execute_command(
        &self,
        extension: &str,
        command: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, CallError> {
        let host = self.get(extension).ok_or_else(|| CallError::NotFound {
            id: extension.to_owned(),
        })?;
        host.execute_command(command, args).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_params_wrap_raw_args() {
        let args = RawValue::from_string(r#"[1, "two"]"#.into()).unwrap();
        let params = command_params("a\"b", &args).unwrap();
        assert_eq!(params.get(), r#"{"command":"a\"b","args":[1, "two"]}"#);
        let not_array = RawValue::from_string(r#"{"x":1}"#.into()).unwrap();
        assert!(matches!(
            command_params("c", &not_array),
            Err(CallError::ArgumentsNotArray)
        ));
    }
}
