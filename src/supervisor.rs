//! The composition root: one [`Supervisor`] wires the broker, the hosts, their sandboxes and
//! their views, so that no caller has to remember the order.
//!
//! Embedders build one with [`Supervisor::builder`]; the standalone helper with
//! [`Supervisor::from_config`]. Either way, adding an extension registers it with the broker,
//! asks the policy for its grant and gives its sandbox the view that grant allows; changing
//! grants or workspace folders reloads the broker *and* hands every host its new view (a host
//! whose view narrowed is restarted, since a sandbox cannot be narrowed under a live process).
//!
//! ```no_run
//! use dscode_extension_host::Supervisor;
//! use dscode_extension_host::permissions::GrantsFile;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut grants = GrantsFile::default();
//! grants.grant("dscode.word-count", "1.0.0", &[], "fileSystem.read")?;
//! let supervisor = Supervisor::builder()
//!     .workspace(["/home/ada/project"])
//!     .policy(grants)
//!     .build()
//!     .await?;
//! let words = supervisor.add_extension("extensions/word-count").await?;
//! words.start().await?;
//! let args = serde_json::value::to_raw_value(&["the quick brown fox"])?;
//! let counted = words.execute_command("wordCount.count", &args).await?;
//! println!("{}", counted.get());
//! supervisor.shutdown().await;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, ConsoleUi, ExtensionInfo, RegisterError, UiHandler};
use crate::config::Config;
use crate::extension::ManifestError;
use crate::lifecycle::{
    CallError, ExtensionHostManager, HostHandle, HostOptions, HostSpec, ManagerError, StartError,
    StateChange,
};
use crate::permissions::{GrantNothing, GrantsOnDisk, InvalidGrant, PermissionPolicy};
use crate::ratelimit::RateLimitConfig;
use crate::runtime::NodeRuntime;
use crate::sandbox::SandboxSpec;
use crate::secrets::SecretStorage;

/// Why the supervisor could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// The embedded Node.js host could not be unpacked.
    #[error("failed to unpack the Node.js host")]
    Runtime(#[source] std::io::Error),
    /// An extension's `package.json` is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The broker could not serve the extension (a root folder that cannot be opened, an
    /// invalid grant).
    #[error(transparent)]
    Register(#[from] RegisterError),
    /// A host with this id is already supervised.
    #[error(transparent)]
    Host(#[from] ManagerError),
    /// No host has this id.
    #[error("no extension host with id {0}")]
    Unknown(String),
    /// A grant names a permission that does not parse; that extension now has nothing.
    #[error(transparent)]
    Grant(#[from] InvalidGrant),
    /// One workspace folder lies inside another: a scope such as `inner/secret/**` would then
    /// mean two different folders, and a deny for one could be read through the other.
    #[error(
        "workspace folder {inner} lies inside workspace folder {outer}; list only {outer}, or folders that do not nest"
    )]
    NestedWorkspace {
        /// The outer folder.
        outer: PathBuf,
        /// The folder inside it.
        inner: PathBuf,
    },
}

/// Refuses workspace folders that nest (compared where they really are).
///
/// # Errors
/// [`SupervisorError::NestedWorkspace`] naming the first pair.
pub fn check_workspace(folders: &[PathBuf]) -> Result<(), SupervisorError> {
    let real: Vec<PathBuf> = folders
        .iter()
        .map(|f| std::fs::canonicalize(f).unwrap_or_else(|_| f.clone()))
        .collect();
    for (i, outer) in real.iter().enumerate() {
        for (j, inner) in real.iter().enumerate() {
            if i != j && inner.starts_with(outer) && (inner != outer || i < j) {
                return Err(SupervisorError::NestedWorkspace {
                    outer: folders[i].clone(),
                    inner: folders[j].clone(),
                });
            }
        }
    }
    Ok(())
}

/// Where secrets come from.
#[derive(Debug, Clone, Default)]
enum Secrets {
    /// The OS keyring the machine offers (Secret Service, else keyutils), if any.
    #[default]
    Detect,
    /// This storage.
    Use(SecretStorage),
    /// None: `secrets/*` calls fail.
    Off,
}

/// Builds a [`Supervisor`]. Every setting has a default that is safe: no workspace, a policy
/// that grants nothing, messages to the log, the built-in `default` sandbox profile.
#[must_use = "a builder does nothing until built"]
pub struct SupervisorBuilder {
    workspace: Vec<PathBuf>,
    policy: Arc<dyn PermissionPolicy>,
    ui: Arc<dyn UiHandler>,
    rate_limit: RateLimitConfig,
    sandbox: SandboxSpec,
    node: Option<NodeRuntime>,
    node_program: PathBuf,
    options: HostOptions,
    secrets: Secrets,
    private: Vec<PathBuf>,
}

impl std::fmt::Debug for SupervisorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorBuilder")
            .field("workspace", &self.workspace)
            .field("sandbox", &self.sandbox.profile.name)
            .finish_non_exhaustive()
    }
}

impl Default for SupervisorBuilder {
    fn default() -> Self {
        Self {
            workspace: Vec::new(),
            policy: Arc::new(GrantNothing),
            ui: Arc::new(ConsoleUi::default()),
            rate_limit: RateLimitConfig::default(),
            sandbox: SandboxSpec::default_profile(),
            node: None,
            node_program: PathBuf::from("node"),
            options: HostOptions::default(),
            secrets: Secrets::Detect,
            private: Vec::new(),
        }
    }
}

impl SupervisorBuilder {
    /// The workspace folders grants may reach (replaceable later with
    /// [`Supervisor::set_workspace`]).
    pub fn workspace<P: Into<PathBuf>>(mut self, folders: impl IntoIterator<Item = P>) -> Self {
        self.workspace = folders.into_iter().map(Into::into).collect();
        self
    }

    /// Who decides each extension's grant (an editor's prompt, a grants file).
    pub fn policy(mut self, policy: impl PermissionPolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// The same, already shared.
    pub fn policy_arc(mut self, policy: Arc<dyn PermissionPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Serves clipboard, messages and terminals for the extensions.
    pub fn ui(mut self, ui: Arc<dyn UiHandler>) -> Self {
        self.ui = ui;
        self
    }

    /// Request rate limits per extension.
    pub fn rate_limit(mut self, rate_limit: RateLimitConfig) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// The sandbox extensions added later run in (each [`HostSpec`] may carry its own).
    pub fn sandbox(mut self, sandbox: SandboxSpec) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// The `node` executable (default `node` on `PATH`); the JavaScript host is embedded.
    pub fn node(mut self, program: impl Into<PathBuf>) -> Self {
        self.node_program = program.into();
        self
    }

    /// A Node.js runtime already unpacked (for tests and embedders with their own folder).
    pub fn node_runtime(mut self, node: NodeRuntime) -> Self {
        self.node = Some(node);
        self
    }

    /// Host options (timeouts, heartbeats, restart policy) for extensions added later.
    pub fn host_options(mut self, options: HostOptions) -> Self {
        self.options = options;
        self
    }

    /// This secret storage instead of the one the machine offers.
    pub fn secret_storage(mut self, storage: SecretStorage) -> Self {
        self.secrets = Secrets::Use(storage);
        self
    }

    /// No secret storage: `secrets/*` calls fail with a message that says why.
    pub fn without_secrets(mut self) -> Self {
        self.secrets = Secrets::Off;
        self
    }

    /// The embedder's own files (its config, grants, state): in no host's view, refused by the
    /// broker whatever was granted.
    pub fn private_paths<P: Into<PathBuf>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.private = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the supervisor (no host runs yet).
    ///
    /// # Errors
    /// [`SupervisorError::Runtime`] when the Node.js host cannot be unpacked,
    /// [`SupervisorError::NestedWorkspace`] for workspace folders that nest.
    pub async fn build(mut self) -> Result<Supervisor, SupervisorError> {
        check_workspace(&self.workspace)?;
        let node = match self.node.take() {
            Some(node) => node,
            None => NodeRuntime::embedded(self.node_program.clone())
                .map_err(SupervisorError::Runtime)?,
        };
        isolate_private_files(&self.private);
        let broker = Broker::new(self.workspace, self.policy, self.ui, self.rate_limit);
        broker.set_private_paths(self.private.clone());
        let secrets = match self.secrets {
            Secrets::Use(storage) => Some(storage),
            Secrets::Off => None,
            Secrets::Detect => match SecretStorage::detect().await {
                Ok(storage) => {
                    tracing::info!(backend = storage.backend_name(), "secret storage ready");
                    Some(storage)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "no secret storage: extensions' secrets/* calls will fail");
                    None
                }
            },
        };
        if let Some(storage) = &secrets {
            broker.set_secret_storage(storage.clone());
        }
        add_private(&mut self.sandbox, &self.private);
        let router = Arc::new(HostRouter::default());
        broker.set_command_router(router.clone());
        let inner = Arc::new(Inner {
            manager: ExtensionHostManager::new(Arc::new(broker.clone())),
            broker,
            node,
            sandbox: self.sandbox,
            options: self.options,
            secrets,
            private: self.private,
            views: tokio::sync::Mutex::new(()),
            stopping: CancellationToken::new(),
        });
        let _ = router.inner.set(Arc::downgrade(&inner));
        Ok(Supervisor { inner })
    }
}

/// Gives each private file with other hard links a file of its own: views and the broker leave
/// the supervisor's files out by name, and another name (in a folder an extension may write)
/// would otherwise reach the same file. The other names keep a stale copy.
fn isolate_private_files(private: &[PathBuf]) {
    for path in private {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
            && crate::permissions::policy::single_link(path).is_err()
        {
            match std::fs::read(path)
                .and_then(|bytes| crate::permissions::policy::replace_file(path, &bytes))
            {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), "the supervisor's file had other hard links; it now has a file of its own");
                }
                Err(err) => {
                    tracing::error!(path = %path.display(), error = %err, "the supervisor's file has other hard links and could not be given a file of its own");
                }
            }
        }
    }
}

/// Runs `commands/execute` calls (checked by the broker against the caller's
/// `commands.execute` scope) in the host that registered the command.
#[derive(Default)]
struct HostRouter {
    inner: std::sync::OnceLock<std::sync::Weak<Inner>>,
}

impl crate::broker::CommandRouter for HostRouter {
    fn execute(
        &self,
        caller: &str,
        command: &str,
        args: Box<RawValue>,
    ) -> crate::broker::CommandFuture {
        use crate::wire::{ErrorCode, ErrorObject};
        let inner = self.inner.get().and_then(std::sync::Weak::upgrade);
        let caller = caller.to_owned();
        let command = command.to_owned();
        Box::pin(async move {
            let not_found = || {
                ErrorObject::new(
                    ErrorCode::CommandNotFound,
                    format!("no running extension has registered the command {command}"),
                )
            };
            let inner = inner.ok_or_else(not_found)?;
            // The caller's own commands run inside its host, never through here.
            let target = inner
                .manager
                .hosts()
                .into_iter()
                .find(|h| h.id() != caller && h.status().commands.contains(&command))
                .ok_or_else(not_found)?;
            target
                .execute_command(&command, &args)
                .await
                .map_err(|err| err.to_error_object())
        })
    }
}

/// Adds `private` to the files `sandbox`'s views leave out.
fn add_private(sandbox: &mut SandboxSpec, private: &[PathBuf]) {
    if private.is_empty() {
        return;
    }
    let settings = Arc::make_mut(&mut sandbox.settings);
    for path in private {
        if !settings.private.contains(path) {
            settings.private.push(path.clone());
        }
    }
}

struct Inner {
    manager: ExtensionHostManager,
    broker: Broker,
    node: NodeRuntime,
    sandbox: SandboxSpec,
    options: HostOptions,
    secrets: Option<SecretStorage>,
    private: Vec<PathBuf>,
    /// One change of views at a time, so an older view can never land after a newer one.
    views: tokio::sync::Mutex<()>,
    stopping: CancellationToken,
}

/// Extension hosts, their broker and their sandboxes, wired together. Cheap to clone; clones
/// share everything.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("hosts", &self.inner.manager.ids())
            .finish_non_exhaustive()
    }
}

/// Hosts a grants or workspace change restarted, each with how its start went.
pub type Restarts = Vec<(String, Result<(), StartError>)>;

impl Supervisor {
    /// A builder with safe defaults.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder::default()
    }

    /// The supervisor a config file describes, as `dscode-exthost run` starts it: its grants
    /// file (moved to the state folder first if it lay beside the config), the machine's
    /// secret storage, and every `[[extension]]` and `[[host]]` added (not started).
    ///
    /// # Errors
    /// A file that cannot be moved or read, an extension that cannot be loaded or registered.
    pub async fn from_config(config: &Config) -> Result<Self, SupervisorError> {
        let supervisor = Self::builder()
            .workspace(config.workspace())
            .policy(GrantsOnDisk::new(config.grants_path()))
            .rate_limit(config.rate_limit.clone())
            .node(config.node())
            .host_options(config.defaults.clone())
            .private_paths(config.private_paths())
            .build()
            .await?;
        for spec in config.host_specs(&supervisor.inner.node)? {
            supervisor.add_host(spec).await?;
        }
        Ok(supervisor)
    }

    /// Adds the extension in `folder` (with its `package.json`) in the Stopped state, under
    /// the builder's sandbox and host options.
    ///
    /// # Errors
    /// A missing or invalid manifest, a duplicate id, or a broker that cannot serve it.
    pub async fn add_extension(
        &self,
        folder: impl AsRef<Path>,
    ) -> Result<HostHandle, SupervisorError> {
        let mut spec = self
            .inner
            .node
            .host_spec(folder.as_ref(), self.inner.options.clone())?;
        spec.sandbox = self.inner.sandbox.clone();
        self.add_host(spec).await
    }

    /// Adds any host (a Node.js extension or another program that speaks the protocol) in the
    /// Stopped state: registered with the broker, granted what the policy grants, and given
    /// the sandbox view that allows.
    ///
    /// # Errors
    /// A duplicate id, or a broker that cannot serve it.
    pub async fn add_host(&self, mut spec: HostSpec) -> Result<HostHandle, SupervisorError> {
        if self.inner.manager.get(&spec.id).is_some() {
            return Err(ManagerError::Duplicate(spec.id).into());
        }
        if spec.secret_storage.is_none() {
            spec.secret_storage.clone_from(&self.inner.secrets);
        }
        add_private(&mut spec.sandbox, &self.inner.private);
        let _one_at_a_time = self.inner.views.lock().await;
        self.inner
            .broker
            .register(ExtensionInfo::from_spec(&spec))
            .await?;
        if let Some(grants) = self.inner.broker.direct_view(&spec.id) {
            spec.sandbox.grants = grants;
        }
        match self.inner.manager.add(spec) {
            Ok(host) => Ok(host),
            Err(err) => Err(err.into()),
        }
    }

    /// Stops the host of `id` and forgets it (the broker too).
    ///
    /// # Errors
    /// [`SupervisorError::Unknown`] when no host has this id.
    pub async fn remove(&self, id: &str) -> Result<(), SupervisorError> {
        let host = self
            .inner
            .manager
            .remove(id)
            .ok_or_else(|| SupervisorError::Unknown(id.to_owned()))?;
        host.stop().await;
        self.inner.broker.unregister(id);
        Ok(())
    }

    /// The host of `id`.
    #[must_use]
    pub fn host(&self, id: &str) -> Option<HostHandle> {
        self.inner.manager.get(id)
    }

    /// Every host, by id.
    #[must_use]
    pub fn hosts(&self) -> Vec<HostHandle> {
        self.inner.manager.hosts()
    }

    fn existing(&self, id: &str) -> Result<HostHandle, SupervisorError> {
        self.host(id)
            .ok_or_else(|| SupervisorError::Unknown(id.to_owned()))
    }

    /// Starts the host of `id` (a Crashed host gets a fresh restart budget); returns once it
    /// runs.
    ///
    /// # Errors
    /// As [`HostHandle::start`], or `Gone` for an unknown id.
    pub async fn start(&self, id: &str) -> Result<(), StartError> {
        let host = self
            .host(id)
            .ok_or_else(|| StartError::Gone { id: id.to_owned() })?;
        host.start().await
    }

    /// Stops the host of `id` gracefully.
    ///
    /// # Errors
    /// [`SupervisorError::Unknown`] for an unknown id.
    pub async fn stop(&self, id: &str) -> Result<(), SupervisorError> {
        self.existing(id)?.stop().await;
        Ok(())
    }

    /// Stops and starts the host of `id`.
    ///
    /// # Errors
    /// As [`Supervisor::start`].
    pub async fn restart(&self, id: &str) -> Result<(), StartError> {
        let host = self
            .host(id)
            .ok_or_else(|| StartError::Gone { id: id.to_owned() })?;
        host.stop().await;
        host.start().await
    }

    /// Starts every host concurrently; returns each one's outcome.
    pub async fn start_all(&self) -> Restarts {
        self.inner.manager.start_all().await
    }

    /// Runs `command` in the host of `extension`.
    ///
    /// # Errors
    /// As [`HostHandle::execute_command`], `NotFound` for an unknown extension.
    pub async fn execute_command(
        &self,
        extension: &str,
        command: &str,
        args: &RawValue,
    ) -> Result<Box<RawValue>, CallError> {
        self.inner
            .manager
            .execute_command(extension, command, args)
            .await
    }

    /// Asks the policy again for every extension (after grants changed) and gives every host
    /// the view its new grants allow; a host whose view changed is restarted and the future
    /// waits until it runs again. Changes run one at a time, in a task of their own, so a caller
    /// that gives up halfway cannot leave a sandbox wider than the broker.
    ///
    /// # Errors
    /// The first invalid grant (that extension now has nothing, its view too); the other
    /// extensions are updated all the same.
    pub async fn reload_grants(&self) -> Result<Restarts, SupervisorError> {
        let this = self.clone();
        let change = tokio::spawn(async move {
            let one_at_a_time = this.inner.views.lock().await;
            isolate_private_files(&this.inner.private);
            let reloaded = this.inner.broker.reload().await;
            // Even after an invalid grant: that extension now has nothing, and its sandbox must
            // not keep what it had.
            let restarts = this.inner.manager.apply_direct_views(&this.inner.broker);
            drop(one_at_a_time);
            (reloaded, restarts.await)
        });
        let (reloaded, restarts) = change.await.expect("a grants reload does not panic");
        reloaded?;
        Ok(restarts)
    }

    /// Replaces the workspace folders grants may reach, and gives every host the view that
    /// follows (restarting those whose view changed), as [`Supervisor::reload_grants`] does.
    ///
    /// # Errors
    /// Folders that nest; a folder the broker cannot open for some extension (the others are
    /// updated).
    pub async fn set_workspace<P: Into<PathBuf>>(
        &self,
        folders: impl IntoIterator<Item = P>,
    ) -> Result<Restarts, SupervisorError> {
        let folders: Vec<PathBuf> = folders.into_iter().map(Into::into).collect();
        check_workspace(&folders)?;
        let this = self.clone();
        let change = tokio::spawn(async move {
            let one_at_a_time = this.inner.views.lock().await;
            let set = this.inner.broker.set_workspace(folders).await;
            let restarts = this.inner.manager.apply_direct_views(&this.inner.broker);
            drop(one_at_a_time);
            (set, restarts.await)
        });
        let (set, restarts) = change.await.expect("a workspace change does not panic");
        set?;
        Ok(restarts)
    }

    /// Every host's state changes, present and future, as a stream.
    #[must_use]
    pub fn events(&self) -> Events {
        Events {
            changes: self.inner.manager.subscribe(),
        }
    }

    /// The secret storage in use (`secret-service`, `keyutils`, ...), if any.
    #[must_use]
    pub fn secret_backend(&self) -> Option<&'static str> {
        self.inner.secrets.as_ref().map(SecretStorage::backend_name)
    }

    /// The broker serving every host's requests.
    #[must_use]
    pub fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// A token that, once cancelled, makes [`Supervisor::run_until_cancelled`] return.
    #[must_use]
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stopping.clone()
    }

    /// Waits until the stop token is cancelled, then stops every host.
    ///
    /// # Cancel safety
    /// Dropping the future before the token fires leaves every host running.
    pub async fn run_until_cancelled(&self) {
        self.inner.stopping.cancelled().await;
        self.shutdown().await;
    }

    /// Stops every host gracefully (shutdown message, `deactivate()`, SIGTERM, SIGKILL).
    pub async fn shutdown(&self) {
        self.inner.stopping.cancel();
        self.inner.manager.stop_all().await;
    }
}

/// State changes of every host (see [`Supervisor::events`]); a [`futures_util::Stream`].
#[derive(Debug)]
pub struct Events {
    changes: mpsc::UnboundedReceiver<StateChange>,
}

impl Events {
    /// The next change; `None` once the supervisor is gone.
    ///
    /// # Cancel safety
    /// Cancel safe: a change not yet returned stays queued.
    pub async fn next(&mut self) -> Option<StateChange> {
        self.changes.recv().await
    }
}

impl futures_util::Stream for Events {
    type Item = StateChange;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StateChange>> {
        self.changes.poll_recv(cx)
    }
}
