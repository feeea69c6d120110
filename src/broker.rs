//! Serving the host API: the requests an extension makes (`fs/readFile`, `clipboard/readText`, ...).
//!
//! A broker is a [`RequestHandler`]. Every request goes through the same steps, in order:
//! the caller's identity comes from the connection ([`IncomingRequest::peer`]), never from the
//! request; the caller's rate limit for that API family is charged; the permission (and its
//! scope: the path, host or command) is checked against what the manifest asked for and the
//! policy granted; only then is the request served. Files are served by the supervisor itself,
//! through a [`PathValidator`] that opens them beneath an allowed root; clipboard, messages and
//! terminals go to an embedder-supplied [`UiHandler`].
//!
//! [`DenyAll`] refuses everything and is what a manager uses unless told otherwise.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::paths::{FileKind, PathError, PathValidator, ResolvedPath, RootKind, WriteMode};
use crate::permissions::{
    ExtensionPermissions, Permission, PermissionDenied, PermissionPolicy, PermissionRequest,
    ScopeRoot,
};
use crate::ratelimit::{ApiFamily, RateLimitConfig, RateLimited, RateLimiter};
use crate::rpc::{HandlerFuture, IncomingRequest, RequestHandler};
use crate::secrets::{Secret, SecretError, SecretStorage};
use crate::wire::{ErrorCode, ErrorObject, to_raw};

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

/// A request the embedder serves: the parts of the host API that belong to the editor's UI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UiRequest {
    /// Read the clipboard as text.
    ClipboardRead,
    /// Replace the clipboard's text.
    ClipboardWrite {
        /// The new text.
        text: String,
    },
    /// Show a message.
    ShowMessage {
        /// `info`, `warning` or `error`.
        level: String,
        /// The text.
        message: String,
    },
    /// Open a terminal; answer with its id.
    TerminalCreate {
        /// Its title.
        name: String,
    },
    /// Send text to a terminal the extension opened.
    TerminalWrite {
        /// The terminal's id.
        id: String,
        /// The text.
        text: String,
    },
}

/// A boxed UI future.
pub type UiFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, ErrorObject>> + Send>>;

/// Serves [`UiRequest`]s for the editor (a dialog, the system clipboard, a terminal panel). Only
/// called after the broker has checked the extension's permission.
pub trait UiHandler: Send + Sync + 'static {
    /// Serves `request` for `extension`.
    fn handle(&self, extension: &str, request: UiRequest) -> UiFuture;
}

/// The standalone helper's UI: messages go to the log, the clipboard is a buffer inside the
/// supervisor, and terminals are not offered.
#[derive(Debug, Default)]
pub struct ConsoleUi {
    clipboard: Mutex<String>,
}

impl UiHandler for ConsoleUi {
    fn handle(&self, extension: &str, request: UiRequest) -> UiFuture {
        let reply = match request {
            UiRequest::ClipboardRead => Ok(serde_json::Value::String(
                self.clipboard.lock().expect("clipboard").clone(),
            )),
            UiRequest::ClipboardWrite { text } => {
                *self.clipboard.lock().expect("clipboard") = text;
                Ok(serde_json::Value::Null)
            }
            UiRequest::ShowMessage { level, message } => {
                tracing::info!(target: "dscode_extension_host::extension", extension, level, "{message}");
                Ok(serde_json::Value::Null)
            }
            UiRequest::TerminalCreate { .. } | UiRequest::TerminalWrite { .. } => {
                Err(ErrorObject::new(
                    ErrorCode::Unsupported,
                    "the standalone helper has no terminals",
                ))
            }
        };
        Box::pin(async move { reply })
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

/// Why an extension could not be registered.
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
    Grant(#[from] crate::permissions::InvalidGrant),
}

struct Served {
    info: ExtensionInfo,
    permissions: RwLock<ExtensionPermissions>,
    /// Follows symbolic links that stay inside their root.
    paths: PathValidator,
    /// Follows no symbolic links at all; used whenever a scope or a deny limits the call, because
    /// scopes are checked on the path as written and a link could lead across their boundary.
    strict_paths: PathValidator,
}

impl Served {
    fn validator(&self, follow_links: bool) -> &PathValidator {
        if follow_links {
            &self.paths
        } else {
            &self.strict_paths
        }
    }
}

struct Inner {
    extensions: RwLock<HashMap<String, Arc<Served>>>,
    workspace: RwLock<Vec<PathBuf>>,
    policy: Arc<dyn PermissionPolicy>,
    ui: Arc<dyn UiHandler>,
    limiter: RateLimiter,
    secrets: std::sync::OnceLock<SecretStorage>,
    /// The supervisor's own files (config, grants, state): no extension reaches them, whatever
    /// it was granted.
    private: RwLock<Vec<PathBuf>>,
    /// Files larger than this are refused instead of read, so a reply always fits in a frame.
    max_file: u64,
}

/// The permission-checking broker. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field(
                "workspace",
                &*self.inner.workspace.read().expect("workspace"),
            )
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
                workspace: RwLock::new(workspace),
                policy,
                ui,
                limiter: RateLimiter::new(rate_limit),
                max_file: 768 * 1024,
                secrets: std::sync::OnceLock::new(),
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
        let root_error = |source| RegisterError::Root {
            id: info.id.clone(),
            source,
        };
        let workspace = self.inner.workspace.read().expect("workspace").clone();
        let mut paths = PathValidator::new();
        let mut strict_paths = PathValidator::new();
        strict_paths.force_walk_resolver();
        for validator in [&mut paths, &mut strict_paths] {
            for folder in &workspace {
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
        let permissions = self.decide(&info).await?;
        tracing::info!(extension = %info.id, granted = ?permissions.allowed().iter().map(ToString::to_string).collect::<Vec<_>>(), "extension registered with the broker");
        let served = Arc::new(Served {
            info,
            permissions: RwLock::new(permissions),
            paths,
            strict_paths,
        });
        self.inner
            .extensions
            .write()
            .expect("extensions")
            .insert(served.info.id.clone(), served);
        Ok(())
    }

    /// Replaces the workspace folders and serves every registered extension against them from
    /// the next request (its roots reopened, its grant asked for again).
    ///
    /// # Errors
    /// The first extension whose roots cannot be opened; the others are updated.
    pub async fn set_workspace(&self, folders: Vec<PathBuf>) -> Result<(), RegisterError> {
        *self.inner.workspace.write().expect("workspace") = folders;
        let served: Vec<ExtensionInfo> = self
            .inner
            .extensions
            .read()
            .expect("extensions")
            .values()
            .map(|s| s.info.clone())
            .collect();
        let mut first_error = None;
        for info in served {
            let id = info.id.clone();
            if let Err(err) = self.register(info).await {
                // Nothing of the old roots stays served for it.
                self.unregister(&id);
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn decide(
        &self,
        info: &ExtensionInfo,
    ) -> Result<ExtensionPermissions, crate::permissions::InvalidGrant> {
        let grant = self
            .inner
            .policy
            .grant_for(&info.id, &info.version, &info.requested)
            .await;
        ExtensionPermissions::effective(&info.id, &info.version, &info.requested, grant.as_ref())
            .map(|p| p.with_protected(&info.protected))
    }

    /// Asks the policy again for every registered extension (after grants changed). A revoked
    /// permission stops working for the next request.
    ///
    /// # Errors
    /// The first invalid grant; the other extensions are still updated.
    pub async fn reload(&self) -> Result<(), crate::permissions::InvalidGrant> {
        let served: Vec<_> = self
            .inner
            .extensions
            .read()
            .expect("extensions")
            .values()
            .cloned()
            .collect();
        let mut first_error = None;
        for extension in served {
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

    /// Serves `secrets/*` from `storage`: each extension sees only its own secrets, because the
    /// extension id comes from the connection. Without storage those calls answer `Unsupported`.
    /// Only the first call has an effect.
    pub fn set_secret_storage(&self, storage: SecretStorage) {
        let _ = self.inner.secrets.set(storage);
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
        let permissions = served.permissions.read().expect("permissions").clone();
        Some(permissions)
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
            &self.inner.workspace.read().expect("workspace"),
        ))
    }
}

impl RequestHandler for Broker {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let served = inner
                .extensions
                .read()
                .expect("extensions")
                .get(&*request.peer)
                .cloned();
            let Some(served) = served else {
                return Err(ErrorObject::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "extension {} is not registered with the broker",
                        request.peer
                    ),
                ));
            };
            inner
                .limiter
                .check(&request.peer, ApiFamily::of_method(&request.method))
                .map_err(|err| rate_limited(&err))?;
            let result = serve(&inner, &served, &request.method, request.params.as_deref()).await;
            if let Err(error) = &result {
                tracing::debug!(extension = %request.peer, method = %request.method, code = %error.code, "host API call refused");
            }
            result
        })
    }
}

fn rate_limited(err: &RateLimited) -> ErrorObject {
    // Rounded up, as in the message, so a client that waits this long is admitted.
    let data =
        to_raw(&serde_json::json!({ "retryAfterMs": err.retry_after_ms() })).expect("static shape");
    ErrorObject::new(ErrorCode::RateLimited, err.to_string()).with_data(data)
}

fn denied(err: &PermissionDenied) -> ErrorObject {
    let data = to_raw(&serde_json::json!({ "permission": err.needed })).expect("static shape");
    ErrorObject::new(ErrorCode::PermissionDenied, err.to_string()).with_data(data)
}

fn path_error(err: &PathError) -> ErrorObject {
    ErrorObject::new(err.code(), err.to_string())
}

fn params<T: for<'de> Deserialize<'de>>(
    method: &str,
    params: Option<&RawValue>,
) -> Result<T, ErrorObject> {
    let text = params.map_or("{}", RawValue::get);
    serde_json::from_str(text).map_err(|err| {
        ErrorObject::new(
            ErrorCode::InvalidParams,
            format!("invalid params for `{method}`: {err}"),
        )
    })
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Box<RawValue>, ErrorObject> {
    to_raw(value).map_err(|err| ErrorObject::new(ErrorCode::Internal, err.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathParams {
    path: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextParams {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParams {
    level: String,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalParams {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct FetchParams {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyParams {}

async fn serve(
    inner: &Inner,
    served: &Arc<Served>,
    method: &str,
    raw: Option<&RawValue>,
) -> Result<Box<RawValue>, ErrorObject> {
    let id = served.info.id.as_str();
    let check = |permission: Permission| {
        served
            .permissions
            .read()
            .expect("permissions")
            .check_permission(permission)
            .map_err(|e| denied(&e))
    };
    match method {
        "fs/readFile" | "fs/writeFile" | "fs/readDirectory" | "fs/stat" | "fs/delete" => {
            let p: PathParams = params(method, raw)?;
            serve_file(inner, served, method, p).await
        }
        "clipboard/readText" => {
            params::<EmptyParams>(method, raw)?;
            check(Permission::ClipboardRead)?;
            ui(inner, id, UiRequest::ClipboardRead).await
        }
        "clipboard/writeText" => {
            let TextParams { text } = params(method, raw)?;
            check(Permission::ClipboardWrite)?;
            ui(inner, id, UiRequest::ClipboardWrite { text }).await
        }
        "window/showMessage" => {
            let MessageParams { level, message } = params(method, raw)?;
            check(Permission::UiShowMessage)?;
            ui(inner, id, UiRequest::ShowMessage { level, message }).await
        }
        "terminal/create" => {
            let TerminalParams { name, .. } = params(method, raw)?;
            check(Permission::TerminalCreate)?;
            ui(
                inner,
                id,
                UiRequest::TerminalCreate {
                    name: name.unwrap_or_default(),
                },
            )
            .await
        }
        "terminal/sendText" => {
            let TerminalParams {
                id: terminal, text, ..
            } = params(method, raw)?;
            check(Permission::TerminalWrite)?;
            let (Some(terminal), Some(text)) = (terminal, text) else {
                return Err(ErrorObject::new(
                    ErrorCode::InvalidParams,
                    "terminal/sendText needs `id` and `text`",
                ));
            };
            ui(inner, id, UiRequest::TerminalWrite { id: terminal, text }).await
        }
        "secrets/get" | "secrets/store" | "secrets/delete" => {
            check(if method == "secrets/get" {
                Permission::SecretsRead
            } else {
                Permission::SecretsWrite
            })?;
            let storage = inner.secrets.get().ok_or_else(|| {
                ErrorObject::new(
                    ErrorCode::Unsupported,
                    "this supervisor has no secret storage",
                )
            })?;
            serve_secret(storage, id, method, raw).await
        }
        "network/fetch" => {
            let FetchParams { url } = params(method, raw)?;
            let (host, port) = host_and_port(&url).ok_or_else(|| {
                ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!("`{url}` is not an http(s) URL"),
                )
            })?;
            served
                .permissions
                .read()
                .expect("permissions")
                .check_host(Permission::NetworkHttp, &host, port)
                .map_err(|e| denied(&e))?;
            Err(ErrorObject::new(
                ErrorCode::Unsupported,
                "network requests are not brokered by this supervisor yet",
            ))
        }
        other => Err(ErrorObject::new(
            ErrorCode::MethodNotFound,
            format!("the host API has no method `{other}`"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretParams {
    key: String,
    #[serde(default)]
    value: Option<Secret>,
}

async fn serve_secret(
    storage: &SecretStorage,
    extension: &str,
    method: &str,
    raw: Option<&RawValue>,
) -> Result<Box<RawValue>, ErrorObject> {
    let SecretParams { key, value } = params(method, raw)?;
    let failed = |err: SecretError| {
        // The extension's own mistakes (an empty or oversized key or value) are its error to fix.
        let code = match err {
            SecretError::EmptyKey
            | SecretError::KeyTooLong { .. }
            | SecretError::EmptyValue
            | SecretError::ValueTooLarge { .. }
            | SecretError::NotUtf8 => ErrorCode::InvalidParams,
            _ => ErrorCode::Internal,
        };
        ErrorObject::new(code, err.to_string())
    };
    match method {
        "secrets/get" => match storage.get(extension, &key).await.map_err(failed)? {
            Some(secret) => reply(&secret.expose_secret()),
            None => reply(&serde_json::Value::Null),
        },
        "secrets/store" => {
            let value = value.ok_or_else(|| {
                ErrorObject::new(ErrorCode::InvalidParams, "secrets/store needs `value`")
            })?;
            storage.set(extension, &key, value).await.map_err(failed)?;
            reply(&serde_json::Value::Null)
        }
        _ => {
            storage.delete(extension, &key).await.map_err(failed)?;
            reply(&serde_json::Value::Null)
        }
    }
}

async fn ui(
    inner: &Inner,
    extension: &str,
    request: UiRequest,
) -> Result<Box<RawValue>, ErrorObject> {
    let value = inner.ui.handle(extension, request).await?;
    reply(&value)
}

/// The scope root a path root corresponds to; logs and temp folders are not grantable.
fn scope_root(kind: RootKind) -> Option<ScopeRoot> {
    match kind {
        RootKind::Workspace => Some(ScopeRoot::Workspace),
        RootKind::Storage => Some(ScopeRoot::Storage),
        RootKind::Extension => Some(ScopeRoot::Extension),
        _ => None,
    }
}

async fn serve_file(
    inner: &Inner,
    served: &Arc<Served>,
    method: &str,
    p: PathParams,
) -> Result<Box<RawValue>, ErrorObject> {
    let permission = match method {
        "fs/writeFile" => Permission::FileSystemWrite,
        "fs/delete" => Permission::FileSystemDelete,
        _ => Permission::FileSystemRead,
    };
    let root = served
        .paths
        .resolve(&p.path)
        .map_err(|e| path_error(&e))?
        .root_kind();
    let scope_root = scope_root(root).ok_or_else(|| {
        ErrorObject::new(
            ErrorCode::PermissionDenied,
            format!("{root} paths cannot be granted to extensions"),
        )
    })?;
    let follow_links = {
        let permissions = served.permissions.read().expect("permissions");
        // A link could lead to one of the supervisor's files under a name that is not its own,
        // so links are followed only where none of them lies.
        let private = inner.private.read().expect("private paths");
        // Nor for changes: a link could lead into a protected folder (`.git`) under a name that
        // is not protected.
        permission == Permission::FileSystemRead
            && permissions.covers_whole_root(permission, scope_root)
            && !private.iter().any(|p| served.paths.contains(p))
    };
    let served = Arc::clone(served);
    let resolved = served
        .validator(follow_links)
        .resolve(&p.path)
        .map_err(|e| path_error(&e))?;
    served
        .permissions
        .read()
        .expect("permissions")
        .check_path(
            permission,
            scope_root,
            std::path::Path::new(resolved.relative()),
        )
        .map_err(|e| denied(&e))?;
    if let Some(absolute) = served.validator(follow_links).absolute(&resolved) {
        let private = inner.private.read().expect("private paths");
        // The path as the extension wrote it and as it resolved are both checked; a listing of
        // a folder holding a private file is fine (the file itself is refused).
        if private.iter().any(|p| absolute.starts_with(p)) {
            return Err(ErrorObject::new(
                ErrorCode::PermissionDenied,
                format!(
                    "{resolved} is one of the supervisor's own files (its config, grants or state), which no extension may reach"
                ),
            ));
        }
    }
    let method = method.to_owned();
    let max_file = inner.max_file;
    let private = inner.private.read().expect("private paths").clone();
    // The file system calls block; keep them off the runtime's worker threads.
    tokio::task::spawn_blocking(move || {
        if method == "fs/delete" && p.recursive {
            // Everything a recursive delete would remove must be deletable on its own: a
            // protected `.git`, a denied folder or a supervisor file inside refuses all of it.
            let permissions = served.permissions.read().expect("permissions").clone();
            check_tree(
                served.validator(follow_links),
                &resolved,
                &|relative, absolute| {
                    if absolute.is_some_and(|a| private.iter().any(|p| a.starts_with(p))) {
                        return Err(ErrorObject::new(
                            ErrorCode::PermissionDenied,
                            "the folder holds one of the supervisor's own files".to_owned(),
                        ));
                    }
                    permissions
                        .check_path(Permission::FileSystemDelete, scope_root, relative)
                        .map_err(|e| denied(&e))
                },
            )?;
        }
        file_operation(
            served.validator(follow_links),
            &resolved,
            &method,
            p,
            max_file,
        )
    })
    .await
    .map_err(|err| ErrorObject::new(ErrorCode::Internal, format!("file operation failed: {err}")))?
}

/// The most entries a recursive delete examines before it refuses.
const MAX_DELETE_ENTRIES: usize = 100_000;

/// A check of one path beneath a folder: its relative path and, where known, where it is.
type EntryCheck<'a> =
    &'a dyn Fn(&std::path::Path, Option<&std::path::Path>) -> Result<(), ErrorObject>;

/// Applies `check` to every path beneath `dir` (not following symbolic links).
fn check_tree(
    paths: &PathValidator,
    dir: &ResolvedPath,
    check: EntryCheck<'_>,
) -> Result<(), ErrorObject> {
    let mut stack = vec![dir.clone()];
    let mut seen = 0usize;
    while let Some(next) = stack.pop() {
        let entries = match paths.read_dir(&next) {
            Ok(entries) => entries,
            // A file, not a folder: nothing beneath.
            Err(_) if stack.is_empty() && next == *dir => return Ok(()),
            Err(e) => return Err(path_error(&e)),
        };
        for entry in entries {
            seen += 1;
            if seen > MAX_DELETE_ENTRIES {
                return Err(ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!(
                        "{dir} holds more than {MAX_DELETE_ENTRIES} entries; delete it in parts"
                    ),
                ));
            }
            let child = next.child(&entry.name).map_err(|e| path_error(&e))?;
            check(child.relative(), paths.absolute(&child).as_deref())?;
            if entry.kind == FileKind::Directory {
                stack.push(child);
            }
        }
    }
    Ok(())
}

fn io_error(path: &ResolvedPath, err: &std::io::Error) -> ErrorObject {
    ErrorObject::new(ErrorCode::Internal, format!("i/o error on {path}: {err}"))
}

fn file_operation(
    paths: &PathValidator,
    path: &ResolvedPath,
    method: &str,
    p: PathParams,
    max_file: u64,
) -> Result<Box<RawValue>, ErrorObject> {
    let base64 = match p.encoding.as_deref() {
        None | Some("utf8") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ErrorObject::new(
                ErrorCode::InvalidParams,
                format!("unknown encoding `{other}`; use utf8 or base64"),
            ));
        }
    };
    match method {
        "fs/readFile" => {
            let file = paths.open_read(path).map_err(|e| path_error(&e))?;
            let mut bytes = Vec::new();
            // One byte over the limit tells "too large" apart from "exactly the limit".
            file.take(max_file + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| io_error(path, &e))?;
            if bytes.len() as u64 > max_file {
                return Err(ErrorObject::new(
                    ErrorCode::InvalidParams,
                    format!(
                        "{path} is larger than {max_file} bytes; the broker does not read files that large"
                    ),
                ));
            }
            if base64 {
                reply(&base64::engine::general_purpose::STANDARD.encode(&bytes))
            } else {
                let text = String::from_utf8(bytes).map_err(|_| {
                    ErrorObject::new(
                        ErrorCode::InvalidParams,
                        format!("{path} is not UTF-8 text; read it with encoding \"base64\""),
                    )
                })?;
                reply(&text)
            }
        }
        "fs/writeFile" => {
            let data = p.data.ok_or_else(|| {
                ErrorObject::new(ErrorCode::InvalidParams, "fs/writeFile needs `data`")
            })?;
            let bytes = if base64 {
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| {
                        ErrorObject::new(
                            ErrorCode::InvalidParams,
                            format!("`data` is not base64: {e}"),
                        )
                    })?
            } else {
                data.into_bytes()
            };
            let mut file = paths
                .open_write(path, WriteMode::CreateOrTruncate)
                .map_err(|e| path_error(&e))?;
            file.write_all(&bytes).map_err(|e| io_error(path, &e))?;
            reply(&serde_json::Value::Null)
        }
        "fs/readDirectory" => {
            let entries = paths.read_dir(path).map_err(|e| path_error(&e))?;
            let listed: Vec<_> = entries
                .into_iter()
                .map(|e| serde_json::json!({ "name": e.name, "type": kind_name(e.kind) }))
                .collect();
            reply(&listed)
        }
        "fs/stat" => {
            let meta = paths.metadata(path).map_err(|e| path_error(&e))?;
            let kind = if meta.is_dir() {
                "directory"
            } else if meta.is_file() {
                "file"
            } else {
                "other"
            };
            let mtime_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            reply(&serde_json::json!({ "type": kind, "size": meta.len(), "mtimeMs": mtime_ms }))
        }
        "fs/delete" => {
            if p.recursive {
                paths.remove_all(path)
            } else {
                paths.remove(path)
            }
            .map_err(|e| path_error(&e))?;
            reply(&serde_json::Value::Null)
        }
        _ => unreachable!("serve_file is only called for fs methods"),
    }
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    }
}

/// The host and port of an `http`/`https` URL, lowercased; `None` for anything else.
fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return None,
    };
    // A backslash ends the authority for WHATWG URL parsers, which is what fetch uses.
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    // Credentials in the URL are not part of the host.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
            (host, port.parse().ok()?)
        }
        _ => (authority, default_port),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_yield_host_and_port() {
        let table = [
            (
                "https://api.github.com/repos",
                Some(("api.github.com", 443)),
            ),
            ("http://Example.COM:8080/x?y", Some(("example.com", 8080))),
            ("https://user:pw@evil.com/", Some(("evil.com", 443))),
            ("https://good.com@evil.com/", Some(("evil.com", 443))),
            (
                "https://evil.com\\@api.example.com/",
                Some(("evil.com", 443)),
            ),
            ("wss://a.b", Some(("a.b", 443))),
            ("ftp://a.b", None),
            ("https://a.b:notaport/", None),
            ("https:///path", None),
            ("not a url", None),
        ];
        for (url, expected) in table {
            let got = host_and_port(url);
            assert_eq!(
                got.as_ref().map(|(h, p)| (h.as_str(), *p)),
                expected,
                "{url}"
            );
        }
    }
}
