//! [`Broker`]: who is served, with which roots and permissions; [`DenyAll`] for hosts no broker
//! serves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use super::commands::CommandRouter;
use super::layers;
use super::ui::UiHandler;
use crate::paths::{PathValidator, RootKind};
use crate::permissions::{ExtensionPermissions, InvalidGrant, PermissionPolicy, PermissionRequest};
use crate::ratelimit::{RateLimitConfig, RateLimiter};
use crate::rpc::{HandlerFuture, IncomingRequest, RequestHandler};
use crate::secrets::SecretStorage;
use crate::wire::{ErrorCode, ErrorObject};

/// Refuses every host API call with `PermissionDenied`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl RequestHandler for DenyAll {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let message = format!(
            "extension {} may not call `{}`: no permissions are granted to it",
            request.peer, request.method
        );
        tracing::info!(extension = %request.peer, method = %request.method, "denied a host API call");
        Box::pin(async move { Err(ErrorObject::new(ErrorCode::PermissionDenied, message)) })
    }
}

/// What the broker needs to know about an extension it serves.
#[derive(Debug, Clone)]
pub struct ExtensionInfo {
    /// `publisher.name`.
    pub id: String,
    /// Its version, which grants are recorded against.
    pub version: String,
    /// The permissions its manifest asks for.
    pub requested: Vec<PermissionRequest>,
    /// Its folder.
    pub extension_path: PathBuf,
    /// Its private storage folder, if it has one.
    pub storage_path: Option<PathBuf>,
    /// Names its sandbox keeps read-only inside writable folders (its profile's
    /// `filesystem.protected`); the broker refuses changing them the same way.
    pub protected: Vec<String>,
}

impl ExtensionInfo {
    /// What the broker needs from a host's spec.
    #[must_use]
    pub fn from_spec(spec: &crate::lifecycle::HostSpec) -> Self {
        Self {
            id: spec.id.clone(),
            version: spec.version.clone(),
            requested: spec.permissions.clone(),
            extension_path: spec.extension_path.clone(),
            storage_path: spec.storage_path.clone(),
            protected: spec.sandbox.profile.protected.clone(),
        }
    }
}

/// Why an extension could not be registered, or its roots not rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A root folder could not be opened.
    #[error("could not open a root folder for extension {id}")]
    Root {
        /// The extension.
        id: String,
        /// The underlying error.
        #[source]
        source: crate::paths::RootError,
    },
    /// The policy's grant has an entry that is not a permission.
    #[error(transparent)]
    Grant(#[from] InvalidGrant),
}

/// The folders one extension's file calls resolve beneath: the workspace folders, its own
/// folder and its storage.
pub(crate) struct Roots {
    /// Follows symbolic links that stay inside their root.
    paths: PathValidator,
    /// Follows no symbolic links at all; used whenever a scope or a deny limits the call, because
    /// scopes are checked on the path as written and a link could lead across their boundary.
    strict_paths: PathValidator,
}

impl Roots {
    fn open(workspace: &[PathBuf], info: &ExtensionInfo) -> Result<Self, RegisterError> {
        let root_error = |source| RegisterError::Root {
            id: info.id.clone(),
            source,
        };
        let mut paths = PathValidator::new();
        let mut strict_paths = PathValidator::new();
        strict_paths.force_walk_resolver();
        for validator in [&mut paths, &mut strict_paths] {
            for folder in workspace {
                validator
                    .add_root(RootKind::Workspace, folder)
                    .map_err(root_error)?;
            }
            validator
                .add_root(RootKind::Extension, &info.extension_path)
                .map_err(root_error)?;
            if let Some(storage) = &info.storage_path {
                validator
                    .add_root(RootKind::Storage, storage)
                    .map_err(root_error)?;
            }
        }
        Ok(Self {
            paths,
            strict_paths,
        })
    }

    /// No roots: every path is refused.
    fn none() -> Self {
        Self {
            paths: PathValidator::new(),
            strict_paths: PathValidator::new(),
        }
    }

    /// The validator for a call that may follow links, or one that may not.
    pub(crate) fn validator(&self, follow_links: bool) -> &PathValidator {
        if follow_links {
            &self.paths
        } else {
            &self.strict_paths
        }
    }
}

/// One served extension.
pub(crate) struct Served {
    pub(crate) info: ExtensionInfo,
    pub(crate) permissions: RwLock<ExtensionPermissions>,
    /// Replaced whole when the workspace changes; a call takes one snapshot and keeps it.
    roots: RwLock<Arc<Roots>>,
}

impl Served {
    /// The roots as they are now.
    pub(crate) fn roots(&self) -> Arc<Roots> {
        Arc::clone(&self.roots.read().expect("roots"))
    }

    /// The permissions as they are now.
    pub(crate) fn permissions(&self) -> ExtensionPermissions {
        self.permissions.read().expect("permissions").clone()
    }
}

/// The workspace folders, and a count of their changes.
struct Workspace {
    folders: Arc<[PathBuf]>,
    generation: u64,
}

pub(crate) struct Inner {
    pub(crate) extensions: RwLock<HashMap<String, Arc<Served>>>,
    /// Read by calls and views; written only while `workspace_change` is held.
    workspace: RwLock<Workspace>,
    /// Serializes the writers of roots (registration and workspace changes), so a registration
    /// that overlaps a change cannot keep the old folders.
    workspace_change: tokio::sync::Mutex<()>,
    policy: Arc<dyn PermissionPolicy>,
    pub(crate) ui: Arc<dyn UiHandler>,
    pub(crate) limiter: RateLimiter,
    pub(crate) secrets: OnceLock<SecretStorage>,
    pub(crate) commands: OnceLock<Arc<dyn CommandRouter>>,
    /// The supervisor's own files (config, grants, state): no extension reaches them, whatever
    /// it was granted.
    pub(crate) private: RwLock<Vec<PathBuf>>,
    /// Files larger than this are refused instead of read, so a reply always fits in a frame.
    pub(crate) max_file: u64,
}

impl Inner {
    fn folders(&self) -> Arc<[PathBuf]> {
        Arc::clone(&self.workspace.read().expect("workspace").folders)
    }

    /// The folders and their generation, read together.
    fn workspace(&self) -> (Arc<[PathBuf]>, u64) {
        let workspace = self.workspace.read().expect("workspace");
        (Arc::clone(&workspace.folders), workspace.generation)
    }

    pub(crate) fn private(&self) -> Vec<PathBuf> {
        self.private.read().expect("private paths").clone()
    }
}

/// The permission-checking broker. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("workspace", &self.inner.folders())
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker for the given workspace folders, granting what `policy` grants, with UI calls
    /// served by `ui` and requests limited by `rate_limit`.
    #[must_use]
    pub fn new(
        workspace: Vec<PathBuf>,
        policy: Arc<dyn PermissionPolicy>,
        ui: Arc<dyn UiHandler>,
        rate_limit: RateLimitConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                extensions: RwLock::new(HashMap::new()),
                workspace: RwLock::new(Workspace {
                    folders: workspace.into(),
                    generation: 0,
                }),
                workspace_change: tokio::sync::Mutex::new(()),
                policy,
                ui,
                limiter: RateLimiter::new(rate_limit),
                max_file: 768 * 1024,
                secrets: OnceLock::new(),
                commands: OnceLock::new(),
                private: RwLock::new(Vec::new()),
            }),
        }
    }

    /// Starts serving `extension`: opens its roots and asks the policy for its grant. Until an
    /// extension is registered, all its requests are refused.
    ///
    /// # Errors
    /// See [`RegisterError`].
    pub async fn register(&self, info: ExtensionInfo) -> Result<(), RegisterError> {
        let (folders, generation) = self.inner.workspace();
        let roots = Roots::open(&folders, &info)?;
        // The policy may be a prompt the user answers; no lock is held while it is asked.
        let permissions = self.decide(&info).await?;
        // Had the folders changed meanwhile, the change did not see this extension: its roots
        // are opened again, with the change's folders.
        let _change = self.inner.workspace_change.lock().await;
        let (folders, now) = self.inner.workspace();
        let roots = if now == generation {
            roots
        } else {
            Roots::open(&folders, &info)?
        };
        tracing::info!(extension = %info.id, granted = ?permissions.allowed().iter().map(ToString::to_string).collect::<Vec<_>>(), "extension registered with the broker");
        let served = Arc::new(Served {
            info,
            permissions: RwLock::new(permissions),
            roots: RwLock::new(Arc::new(roots)),
        });
        self.inner
            .extensions
            .write()
            .expect("extensions")
            .insert(served.info.id.clone(), served);
        Ok(())
    }

    async fn decide(&self, info: &ExtensionInfo) -> Result<ExtensionPermissions, InvalidGrant> {
        let grant = self
            .inner
            .policy
            .grant_for(&info.id, &info.version, &info.requested)
            .await;
        ExtensionPermissions::effective(&info.id, &info.version, &info.requested, grant.as_ref())
            .map(|p| p.with_protected(&info.protected))
    }

    fn served(&self) -> Vec<Arc<Served>> {
        self.inner
            .extensions
            .read()
            .expect("extensions")
            .values()
            .cloned()
            .collect()
    }

    /// Asks the policy again for every registered extension (after grants changed). A revoked
    /// permission stops working for the next request.
    ///
    /// # Errors
    /// The first invalid grant; the other extensions are still updated.
    pub async fn reload(&self) -> Result<(), InvalidGrant> {
        let mut first_error = None;
        for extension in self.served() {
            match self.decide(&extension.info).await {
                Ok(permissions) => {
                    *extension.permissions.write().expect("permissions") = permissions;
                }
                Err(err) => {
                    *extension.permissions.write().expect("permissions") =
                        ExtensionPermissions::none(&extension.info.id);
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Replaces the workspace folders and reopens every served extension's roots, so the next
    /// file call resolves against `folders` and [`direct_view`](Self::direct_view) names them.
    /// Calls already past their permission check finish against the folders they started with.
    ///
    /// # Errors
    /// The first extension whose roots could not be opened (a folder that does not exist or
    /// cannot be read). That extension is left with no roots, so its file calls are refused
    /// rather than served from the old folders; the others are updated.
    pub async fn set_workspace(&self, folders: Vec<PathBuf>) -> Result<(), RegisterError> {
        let _change = self.inner.workspace_change.lock().await;
        let folders: Arc<[PathBuf]> = folders.into();
        {
            let mut workspace = self.inner.workspace.write().expect("workspace");
            workspace.folders = Arc::clone(&folders);
            workspace.generation += 1;
        }
        tracing::info!(workspace = ?folders, "workspace folders changed");
        let mut first_error = None;
        for extension in self.served() {
            let roots = match Roots::open(&folders, &extension.info) {
                Ok(roots) => roots,
                Err(err) => {
                    tracing::warn!(extension = %extension.info.id, error = %err, "could not reopen the roots; file calls are refused");
                    first_error.get_or_insert(err);
                    Roots::none()
                }
            };
            *extension.roots.write().expect("roots") = Arc::new(roots);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Serves `secrets/*` from `storage`: each extension sees only its own secrets, because the
    /// extension id comes from the connection. Without storage those calls answer `Unsupported`.
    /// Only the first call has an effect.
    pub fn set_secret_storage(&self, storage: SecretStorage) {
        let _ = self.inner.secrets.set(storage);
    }

    /// Serves `commands/execute` through `router`, which runs a command another extension
    /// registered once the broker has checked the caller's `commands.execute` scope. Without a
    /// router those calls answer `Unsupported`. Only the first call has an effect.
    pub fn set_command_router(&self, router: Arc<dyn CommandRouter>) {
        let _ = self.inner.commands.set(router);
    }

    /// Stops serving `extension` and forgets its rate-limit state.
    pub fn unregister(&self, extension: &str) {
        self.inner
            .extensions
            .write()
            .expect("extensions")
            .remove(extension);
        self.inner.limiter.remove_extension(extension);
    }

    /// The permissions `extension` has now.
    #[must_use]
    pub fn permissions(&self, extension: &str) -> Option<ExtensionPermissions> {
        let served = self
            .inner
            .extensions
            .read()
            .expect("extensions")
            .get(extension)
            .cloned()?;
        Some(served.permissions())
    }

    /// Names the supervisor's own files (its config, grants file, state), which file calls
    /// refuse whatever was granted: an extension that could write its grants would grant itself
    /// anything.
    pub fn set_private_paths(&self, paths: Vec<PathBuf>) {
        let canonical = paths
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        *self.inner.private.write().expect("private paths") = canonical;
    }

    /// The `fileSystem` grants `extension`'s sandbox view is computed from (see
    /// [`crate::sandbox::view`]), for [`crate::sandbox::SandboxSpec::grants`]. `None` for an
    /// extension not served.
    #[must_use]
    pub fn direct_view(&self, extension: &str) -> Option<crate::sandbox::view::FsGrants> {
        let permissions = self.permissions(extension)?;
        Some(crate::sandbox::view::FsGrants::from_permissions(
            &permissions,
            &self.inner.folders(),
        ))
    }
}

impl RequestHandler for Broker {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        Box::pin(layers::handle(Arc::clone(&self.inner), request))
    }
}
