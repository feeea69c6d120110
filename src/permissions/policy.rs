//! Grants, and the permissions an extension effectively has.
//!
//! The manifest asks; it does not grant. The effective set is what the manifest asks for that a
//! grant allows, and a deny always wins over an allow. Grants are recorded with the extension's
//! version and the permissions it asked for at the time, so a new version that asks for more (or
//! for a broader scope) gets nothing new until it is granted again.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::manifest::{Permission, PermissionParseError, PermissionRequest, ScopeRoot};

/// What the user or admin decided for one extension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// The extension version the grant was made for.
    pub version: String,
    /// The permissions the extension asked for when the grant was made.
    #[serde(default)]
    pub requested: Vec<String>,
    /// Allowed permissions. An unscoped entry allows whatever scope the manifest asks for.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Denied permissions; these win over `allow`, everywhere.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Decides which requested permissions an extension gets. Editors implement this with a dialog;
/// the CLI uses a [`GrantsFile`].
pub trait PermissionPolicy: Send + Sync + 'static {
    /// The grant for `extension` at `version`, which asks for `requested`; `None` grants nothing.
    fn grant_for<'a>(
        &'a self,
        extension: &'a str,
        version: &'a str,
        requested: &'a [PermissionRequest],
    ) -> Pin<Box<dyn Future<Output = Option<Grant>> + Send + 'a>>;
}

/// Grants nothing to anyone.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrantNothing;

impl PermissionPolicy for GrantNothing {
    fn grant_for<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a [PermissionRequest],
    ) -> Pin<Box<dyn Future<Output = Option<Grant>> + Send + 'a>> {
        Box::pin(async { None })
    }
}

/// Names that make tools run code when written (`.git`, `*.code-workspace`): plain names, or
/// one-segment globs, matched against each segment of a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtectedNames {
    names: Vec<String>,
    patterns: Vec<super::Glob>,
}

impl ProtectedNames {
    /// Parses `entries`; an entry with a wildcard is a one-segment glob. An entry that is not
    /// a valid glob is kept as a plain name.
    #[must_use]
    pub fn new(entries: &[String]) -> Self {
        let mut out = Self::default();
        for entry in entries {
            match entry
                .contains(['*', '?', '[', '{'])
                .then(|| super::Glob::parse(entry).ok())
                .flatten()
            {
                Some(glob) => out.patterns.push(glob),
                None => out.names.push(entry.clone()),
            }
        }
        out
    }

    /// Whether a path segment named `name` is protected.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
            || self.patterns.iter().any(|g| g.matches(Path::new(name)))
    }

    /// Whether nothing is protected.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.patterns.is_empty()
    }
}

/// The permissions one extension has, after intersecting its manifest with its grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionPermissions {
    extension: String,
    allowed: Vec<PermissionRequest>,
    denied: Vec<PermissionRequest>,
    /// Names that stay unwritable in the workspace unless an allow writes them out.
    protected: ProtectedNames,
}

/// Why a permission check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extension {extension} lacks `{needed}`{detail}")]
pub struct PermissionDenied {
    /// The extension.
    pub extension: String,
    /// The permission (with scope) that would allow the operation.
    pub needed: String,
    /// What was attempted, and whether a deny rule matched.
    pub detail: String,
}

/// A grant entry that is not a valid permission.
#[derive(Debug, thiserror::Error)]
#[error("grant for {extension} has an invalid entry")]
pub struct InvalidGrant {
    /// The extension.
    pub extension: String,
    /// The entry's problem.
    #[source]
    pub source: PermissionParseError,
}

impl ExtensionPermissions {
    /// Nothing allowed.
    #[must_use]
    pub fn none(extension: &str) -> Self {
        Self {
            extension: extension.to_owned(),
            allowed: Vec::new(),
            denied: Vec::new(),
            protected: ProtectedNames::default(),
        }
    }

    /// The same permissions with `names` protected: in the workspace, a path with a segment of
    /// that name (`.git`, `.vscode`, ...) can only be written or deleted under an allow whose
    /// glob writes that segment out (`fileSystem.write:.vscode/**`), never under `**` or an
    /// unscoped grant. The sandbox's view leaves the same paths read-only.
    #[must_use]
    pub fn with_protected(mut self, names: &[String]) -> Self {
        self.protected = ProtectedNames::new(names);
        self
    }

    /// The protected names.
    #[must_use]
    pub fn protected(&self) -> &ProtectedNames {
        &self.protected
    }

    /// The effective permissions of `extension` at `version`: each requested permission that the
    /// grant allows, minus every unscoped deny; scoped denies are kept and checked on each call.
    ///
    /// # Errors
    /// [`InvalidGrant`] if an allow or deny entry does not parse; nothing is granted then.
    pub fn effective(
        extension: &str,
        version: &str,
        requested: &[PermissionRequest],
        grant: Option<&Grant>,
    ) -> Result<Self, InvalidGrant> {
        let Some(grant) = grant else {
            return Ok(Self::none(extension));
        };
        let parse = |entries: &[String]| -> Result<Vec<PermissionRequest>, InvalidGrant> {
            entries
                .iter()
                .map(|e| {
                    PermissionRequest::parse(e).map_err(|source| InvalidGrant {
                        extension: extension.to_owned(),
                        source,
                    })
                })
                .collect()
        };
        let allow = parse(&grant.allow)?;
        let deny = parse(&grant.deny)?;
        // A grant made for another version covers only what that version asked for.
        let acknowledged: Option<Vec<PermissionRequest>> = (grant.version != version).then(|| {
            grant
                .requested
                .iter()
                .filter_map(|e| PermissionRequest::parse(e).ok())
                .collect()
        });
        let allowed = requested
            .iter()
            .filter(|request| {
                acknowledged
                    .as_ref()
                    .is_none_or(|ack| ack.contains(request))
            })
            .filter(|request| {
                allow.iter().any(|a| {
                    a.permission == request.permission
                        && (a.scope.is_none() || a.scope == request.scope)
                })
            })
            .filter(|request| {
                !deny
                    .iter()
                    .any(|d| d.permission == request.permission && d.scope.is_none())
            })
            .cloned()
            .collect();
        Ok(Self {
            extension: extension.to_owned(),
            allowed,
            denied: deny,
            protected: ProtectedNames::default(),
        })
    }

    /// The extension these belong to.
    #[must_use]
    pub fn extension(&self) -> &str {
        &self.extension
    }

    /// Whether a scoped deny entry exists for `permission` (it must be checked call by call).
    #[must_use]
    pub fn has_scoped_deny(&self, permission: Permission) -> bool {
        self.denied
            .iter()
            .any(|d| d.permission == permission && d.scope.is_some())
    }

    /// The allowed entries.
    #[must_use]
    pub fn allowed(&self) -> &[PermissionRequest] {
        &self.allowed
    }

    /// The deny entries (each wins over any allow it covers).
    #[must_use]
    pub fn denied_entries(&self) -> &[PermissionRequest] {
        &self.denied
    }

    fn denied(&self, permission: Permission, detail: String) -> PermissionDenied {
        PermissionDenied {
            extension: self.extension.clone(),
            needed: permission.name().to_owned(),
            detail,
        }
    }

    /// Whether `permission` is allowed in some scope (the seed's check).
    ///
    /// # Errors
    /// [`PermissionDenied`] naming the permission.
    pub fn check_permission(&self, permission: Permission) -> Result<(), PermissionDenied> {
        let denied_outright = self
            .denied
            .iter()
            .any(|d| d.permission == permission && d.scope.is_none());
        if !denied_outright && self.allowed.iter().any(|a| a.permission == permission) {
            Ok(())
        } else {
            Err(self.denied(permission, String::new()))
        }
    }

    /// Whether `permission` is allowed on `relative` under `root`. Deny wins.
    ///
    /// # Errors
    /// [`PermissionDenied`] naming the permission and the path as the extension sees it.
    pub fn check_path(
        &self,
        permission: Permission,
        root: ScopeRoot,
        relative: &Path,
    ) -> Result<(), PermissionDenied> {
        let shown = format!(" for {}:{}", root.name(), relative.display());
        let changes = matches!(
            permission,
            Permission::FileSystemWrite | Permission::FileSystemDelete
        );
        let guarded = if changes && root == ScopeRoot::Workspace {
            self.protected_segment(relative)
        } else {
            None
        };
        let Some((index, name)) = guarded else {
            return self.decide(permission, shown, |entry| {
                entry.covers_path(permission, root, relative)
            });
        };
        // A deny decides as usual; an allow must also write the protected segment out.
        let outcome = self.decide(permission, shown.clone(), |entry| {
            entry.covers_path(permission, root, relative)
                && (self.denied.contains(entry) || names_literally(entry, index, name))
        });
        outcome.map_err(|mut err| {
            if !err.detail.contains("denied by policy")
                && self
                    .allowed
                    .iter()
                    .any(|a| a.covers_path(permission, root, relative))
            {
                err.needed = format!("{}:{}/**", permission.name(), literal_up_to(relative, index));
                err.detail = format!(
                    "{shown}: `{name}` is protected (tools run code from it), so only a grant that names it allows changing it"
                );
            }
            err
        })
    }

    /// The last segment of `relative` that is a protected name, with its index: an allow must
    /// write out the path up to it.
    fn protected_segment<'p>(&self, relative: &'p Path) -> Option<(usize, &'p str)> {
        relative
            .components()
            .enumerate()
            .filter_map(|(i, c)| match c {
                std::path::Component::Normal(name) => name
                    .to_str()
                    .filter(|n| self.protected.matches(n))
                    .map(|n| (i, n)),
                _ => None,
            })
            .last()
    }

    /// The one decision behind every scoped check: a deny that covers the call, or an unscoped
    /// deny of the permission, refuses it; otherwise an allow that covers it admits it.
    fn decide(
        &self,
        permission: Permission,
        shown: String,
        covers: impl Fn(&PermissionRequest) -> bool,
    ) -> Result<(), PermissionDenied> {
        let denied =
            |d: &PermissionRequest| covers(d) || (d.permission == permission && d.scope.is_none());
        if self.denied.iter().any(denied) {
            return Err(self.denied(permission, format!("{shown} (denied by policy)")));
        }
        if self.allowed.iter().any(&covers) {
            Ok(())
        } else {
            Err(self.denied(permission, shown))
        }
    }

    /// Whether `permission` covers every path under `root` with no deny carving anything out.
    /// Only then may the broker follow symbolic links inside the root: scopes and denies are
    /// matched against the path as written, and a link could lead across their boundary.
    #[must_use]
    pub fn covers_whole_root(&self, permission: Permission, root: ScopeRoot) -> bool {
        let whole = self.allowed.iter().any(|a| {
            a.permission == permission
                && a.path_scope()
                    .is_some_and(|(scope_root, glob)| scope_root == root && glob.is_everything())
        });
        whole && !self.denied.iter().any(|d| d.permission == permission)
    }

    /// Whether `permission` is allowed for `host:port`. Deny wins.
    ///
    /// # Errors
    /// [`PermissionDenied`] naming the permission and the host.
    pub fn check_host(
        &self,
        permission: Permission,
        host: &str,
        port: u16,
    ) -> Result<(), PermissionDenied> {
        let shown = format!(" for {host}:{port}");
        self.decide(permission, shown, |entry| {
            entry.covers_host(permission, host, port)
        })
    }

    /// Whether `permission` is allowed for the command `id`. Deny wins.
    ///
    /// # Errors
    /// [`PermissionDenied`] naming the permission and the command.
    pub fn check_command(&self, permission: Permission, id: &str) -> Result<(), PermissionDenied> {
        let shown = format!(" for command {id}");
        self.decide(permission, shown, |entry| {
            entry.covers_command(permission, id)
        })
    }
}

/// Whether `entry`'s glob writes out every segment of the path up to `index` literally, so that
/// the protected name at `index` is named, not matched by a wildcard.
fn names_literally(entry: &PermissionRequest, index: usize, _name: &str) -> bool {
    entry
        .path_scope()
        .is_some_and(|(_, glob)| glob.literal_prefix().count() > index)
}

/// `relative` up to and including segment `index`, for the grant an error suggests.
fn literal_up_to(relative: &Path, index: usize) -> String {
    relative
        .components()
        .take(index + 1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Grants kept in a TOML file, one table per extension:
///
/// ```toml
/// [extensions."dscode.word-count"]
/// version = "1.0.0"
/// requested = ["fileSystem.read:src/**"]
/// allow = ["fileSystem.read:src/**"]
/// deny = ["fileSystem.read:src/secrets/**"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsFile {
    /// Grants by extension id.
    #[serde(default)]
    pub extensions: BTreeMap<String, Grant>,
    #[serde(skip)]
    path: PathBuf,
}

/// Why a grants file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantsError {
    /// Reading or writing failed.
    #[error("grants file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid grants file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A permission given on the command line is not valid.
    #[error(transparent)]
    Permission(#[from] PermissionParseError),
}

impl GrantsFile {
    /// Reads `path`; a missing file is an empty set of grants.
    ///
    /// # Errors
    /// See [`GrantsError`].
    pub fn load(path: &Path) -> Result<Self, GrantsError> {
        if single_link(path).is_err() {
            // Another name for the grants file (a hard link an extension's folder could hold)
            // must not reach the real one: it gets a file of its own, the other name keeps
            // the stale copy.
            tracing::warn!(path = %path.display(), "the grants file has other hard links; giving it a file of its own");
            std::fs::read(path)
                .and_then(|bytes| replace_file(path, &bytes))
                .map_err(|source| GrantsError::Io {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(GrantsError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut file: Self = toml::from_str(&text).map_err(|err| GrantsError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        path.clone_into(&mut file.path);
        Ok(file)
    }

    /// Writes the file back atomically (write to a temporary file, then rename).
    ///
    /// # Errors
    /// See [`GrantsError`].
    pub fn save(&self) -> Result<(), GrantsError> {
        let io = |source| GrantsError::Io {
            path: self.path.clone(),
            source,
        };
        let text = toml::to_string_pretty(self).map_err(|err| io(std::io::Error::other(err)))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The state folder, on first use: the supervisor's alone.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        replace_file(&self.path, text.as_bytes()).map_err(io)
    }

    fn entry(&mut self, extension: &str, version: &str, requested: &[String]) -> &mut Grant {
        let grant = self.extensions.entry(extension.to_owned()).or_default();
        // Re-granting for a new version re-acknowledges what that version asks for.
        if grant.version != version {
            version.clone_into(&mut grant.version);
            grant.requested = requested.to_vec();
        }
        grant
    }

    /// Allows `permission` for `extension` at `version` (which asks for `requested`), and drops
    /// an identical deny.
    ///
    /// # Errors
    /// If `permission` does not parse.
    pub fn grant(
        &mut self,
        extension: &str,
        version: &str,
        requested: &[String],
        permission: &str,
    ) -> Result<(), GrantsError> {
        let canonical = PermissionRequest::parse(permission)?.to_string();
        let grant = self.entry(extension, version, requested);
        grant.deny.retain(|d| !same_permission(d, &canonical));
        if !grant.allow.iter().any(|a| same_permission(a, &canonical)) {
            grant.allow.push(canonical);
        }
        Ok(())
    }

    /// Removes an allow entry.
    ///
    /// # Errors
    /// If `permission` does not parse.
    pub fn revoke(&mut self, extension: &str, permission: &str) -> Result<bool, GrantsError> {
        let canonical = PermissionRequest::parse(permission)?.to_string();
        let Some(grant) = self.extensions.get_mut(extension) else {
            return Ok(false);
        };
        let before = grant.allow.len();
        grant.allow.retain(|a| !same_permission(a, &canonical));
        Ok(grant.allow.len() != before)
    }

    /// Adds a deny entry, which wins over any allow.
    ///
    /// # Errors
    /// If `permission` does not parse.
    pub fn deny(
        &mut self,
        extension: &str,
        version: &str,
        requested: &[String],
        permission: &str,
    ) -> Result<(), GrantsError> {
        let canonical = PermissionRequest::parse(permission)?.to_string();
        let grant = self.entry(extension, version, requested);
        if !grant.deny.iter().any(|d| same_permission(d, &canonical)) {
            grant.deny.push(canonical);
        }
        Ok(())
    }
}

impl PermissionPolicy for GrantsFile {
    fn grant_for<'a>(
        &'a self,
        extension: &'a str,
        _: &'a str,
        _: &'a [PermissionRequest],
    ) -> Pin<Box<dyn Future<Output = Option<Grant>> + Send + 'a>> {
        Box::pin(async move { self.extensions.get(extension).cloned() })
    }
}

/// Replaces `path` with `contents` at once: written to a new file beside it under a name no one
/// can guess (created exclusively, so never a file someone else made), then renamed over it.
/// A predictable name would let whoever may create files there plant it first and have the
/// next save write into their file.
///
/// # Errors
/// If the new file cannot be created, written or renamed.
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::hash::BuildHasher;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for attempt in 0u32..16 {
        // RandomState is seeded from the OS's randomness.
        let token = std::collections::hash_map::RandomState::new().hash_one((
            std::process::id(),
            attempt,
            std::time::SystemTime::now(),
        ));
        let tmp = dir.join(format!(".{name}.{token:016x}.tmp"));
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        };
        let written = file.write_all(contents).and_then(|()| file.sync_all());
        if let Err(err) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "could not create a new file beside {}",
        path.display()
    )))
}

/// Refuses a file with more than one name: another name, in a folder an extension can write,
/// would edit it behind its own name's back.
///
/// # Errors
/// The number of links, as an `io::Error`.
pub(crate) fn single_link(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.nlink() > 1 => Err(std::io::Error::other(format!(
            "it has {} hard links: another name for it could change it; keep one (`ls -li` shows them)",
            meta.nlink()
        ))),
        _ => Ok(()),
    }
}

/// Whether a file entry, possibly hand-written in another spelling (`src/**` for
/// `workspace:src/**`), names the permission whose canonical form is `canonical`.
fn same_permission(entry: &str, canonical: &str) -> bool {
    PermissionRequest::parse(entry).is_ok_and(|parsed| parsed.to_string() == canonical)
}

/// A grants file read afresh on every decision, so edits by `dscode-exthost grant|revoke|deny`
/// apply at the next [`Broker::reload`](crate::broker::Broker::reload) or host registration.
/// An unreadable file grants nothing (and is logged), rather than failing open.
#[derive(Debug, Clone)]
pub struct GrantsOnDisk {
    path: PathBuf,
}

impl GrantsOnDisk {
    /// A policy backed by `path` (which need not exist yet).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl PermissionPolicy for GrantsOnDisk {
    fn grant_for<'a>(
        &'a self,
        extension: &'a str,
        _: &'a str,
        _: &'a [PermissionRequest],
    ) -> Pin<Box<dyn Future<Output = Option<Grant>> + Send + 'a>> {
        Box::pin(async move {
            let path = self.path.clone();
            let loaded = tokio::task::spawn_blocking(move || GrantsFile::load(&path)).await;
            match loaded {
                Ok(Ok(mut file)) => file.extensions.remove(extension),
                Ok(Err(err)) => {
                    tracing::error!(error = %err, "grants file unusable; granting nothing");
                    None
                }
                Err(err) => {
                    tracing::error!(error = %err, "reading the grants file failed; granting nothing");
                    None
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reqs(entries: &[&str]) -> Vec<PermissionRequest> {
        entries
            .iter()
            .map(|e| PermissionRequest::parse(e).unwrap())
            .collect()
    }

    fn grant(version: &str, requested: &[&str], allow: &[&str], deny: &[&str]) -> Grant {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Grant {
            version: version.into(),
            requested: owned(requested),
            allow: owned(allow),
            deny: owned(deny),
        }
    }

    fn read(perms: &ExtensionPermissions, path: &str) -> bool {
        perms
            .check_path(
                Permission::FileSystemRead,
                ScopeRoot::Workspace,
                Path::new(path),
            )
            .is_ok()
    }

    /// declared × granted × denied × scope: (manifest, allow, deny, path, expected read result)
    #[test]
    fn permission_matrix() {
        type Row<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a str, bool);
        let table: &[Row] = &[
            // Nothing declared: nothing, whatever is granted.
            (&[], &["fileSystem.read"], &[], "a.txt", false),
            // Declared, not granted.
            (&["fileSystem.read"], &[], &[], "a.txt", false),
            // Declared and granted.
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &[],
                "a.txt",
                true,
            ),
            // Granted, then denied outright: deny wins.
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read"],
                "a.txt",
                false,
            ),
            // Scoped request, unscoped grant: the request's scope applies.
            (
                &["fileSystem.read:src/**"],
                &["fileSystem.read"],
                &[],
                "src/a.rs",
                true,
            ),
            (
                &["fileSystem.read:src/**"],
                &["fileSystem.read"],
                &[],
                "docs/a.md",
                false,
            ),
            // Scoped grant must match the scope asked for exactly.
            (
                &["fileSystem.read:src/**"],
                &["fileSystem.read:src/**"],
                &[],
                "src/a.rs",
                true,
            ),
            (
                &["fileSystem.read"],
                &["fileSystem.read:src/**"],
                &[],
                "src/a.rs",
                false,
            ),
            // Scoped deny inside an allowed scope: deny wins there, allow elsewhere.
            (
                &["fileSystem.read:src/**"],
                &["fileSystem.read"],
                &["fileSystem.read:src/secret/**"],
                "src/secret/key",
                false,
            ),
            (
                &["fileSystem.read:src/**"],
                &["fileSystem.read"],
                &["fileSystem.read:src/secret/**"],
                "src/ok.rs",
                true,
            ),
            // A deny with braces or a class denies what it says (it used to match nothing).
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read:**/*.{key,pem}"],
                "a/b.pem",
                false,
            ),
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read:**/*.{key,pem}"],
                "a/b.rs",
                true,
            ),
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read:**/.[ge]nv*"],
                "app/.env.local",
                false,
            ),
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read:**/.[ge]nv*"],
                "app/.xnv",
                true,
            ),
            // `?` is one character: a deny of `?.key` covers `é.key`.
            (
                &["fileSystem.read"],
                &["fileSystem.read"],
                &["fileSystem.read:?.key"],
                "é.key",
                false,
            ),
            // A grant of another permission grants nothing here.
            (
                &["fileSystem.read"],
                &["fileSystem.write"],
                &[],
                "a.txt",
                false,
            ),
        ];
        for (declared, allow, deny, path, expected) in table {
            let perms = ExtensionPermissions::effective(
                "p.e",
                "1.0.0",
                &reqs(declared),
                Some(&grant("1.0.0", declared, allow, deny)),
            )
            .unwrap();
            assert_eq!(
                read(&perms, path),
                *expected,
                "declared {declared:?} allow {allow:?} deny {deny:?} path {path}"
            );
        }
    }

    #[test]
    fn whole_root_only_for_everything_with_no_deny() {
        let ws = ScopeRoot::Workspace;
        let table: &[(&str, &[&str], ScopeRoot, bool)] = &[
            ("fileSystem.read", &[], ws, true),
            ("fileSystem.read", &[], ScopeRoot::Storage, false),
            ("fileSystem.read:**", &[], ws, true),
            ("fileSystem.read:**/**", &[], ws, true),
            ("fileSystem.read:storage:**", &[], ScopeRoot::Storage, true),
            ("fileSystem.read:storage:**", &[], ws, false),
            ("fileSystem.read:src/**", &[], ws, false),
            ("fileSystem.read:**/*", &[], ws, false),
            (
                "fileSystem.read",
                &["fileSystem.read:**/*.{key,pem}"],
                ws,
                false,
            ),
            ("fileSystem.read", &["fileSystem.write"], ws, true),
        ];
        for (entry, deny, root, expected) in table {
            let requested = reqs(&[entry]);
            let g = grant("1", &[entry], &[entry], deny);
            let perms = ExtensionPermissions::effective("p.e", "1", &requested, Some(&g)).unwrap();
            assert_eq!(
                perms.covers_whole_root(Permission::FileSystemRead, *root),
                *expected,
                "{entry} deny {deny:?} {root:?}"
            );
        }
    }

    #[test]
    fn no_grant_means_nothing() {
        let perms = ExtensionPermissions::effective(
            "p.e",
            "1",
            &reqs(&["fileSystem.read", "clipboard.read"]),
            None,
        )
        .unwrap();
        assert!(perms.check_permission(Permission::ClipboardRead).is_err());
        assert!(!read(&perms, "a"));
    }

    #[test]
    fn deny_wins_for_hosts_commands_and_unscoped_checks() {
        let requested = reqs(&["network.http", "commands.execute", "clipboard.read"]);
        let g = grant(
            "1",
            &[],
            &["network.http", "commands.execute", "clipboard.read"],
            &[
                "network.http:evil.com",
                "commands.execute:danger.*",
                "clipboard.read",
            ],
        );
        let perms = ExtensionPermissions::effective("p.e", "1", &requested, Some(&g)).unwrap();
        assert!(
            perms
                .check_host(Permission::NetworkHttp, "good.com", 443)
                .is_ok()
        );
        assert!(
            perms
                .check_host(Permission::NetworkHttp, "evil.com", 443)
                .is_err()
        );
        assert!(
            perms
                .check_command(Permission::CommandsExecute, "safe.run")
                .is_ok()
        );
        assert!(
            perms
                .check_command(Permission::CommandsExecute, "danger.wipe")
                .is_err()
        );
        assert!(perms.check_permission(Permission::ClipboardRead).is_err());
    }

    #[test]
    fn a_new_version_that_asks_for_more_needs_a_new_grant() {
        let v1 = ["fileSystem.read:src/**"];
        let g = grant("1.0.0", &v1, &["fileSystem.read", "network.http"], &[]);
        // Same version: granted.
        let perms = ExtensionPermissions::effective("p.e", "1.0.0", &reqs(&v1), Some(&g)).unwrap();
        assert!(read(&perms, "src/a"));
        // v2 keeps the old request and adds a broader scope and the network: only the
        // acknowledged request stays granted.
        let v2 = reqs(&["fileSystem.read:src/**", "fileSystem.read", "network.http"]);
        let perms = ExtensionPermissions::effective("p.e", "2.0.0", &v2, Some(&g)).unwrap();
        assert!(read(&perms, "src/a"));
        assert!(!read(&perms, "docs/a"));
        assert!(
            perms
                .check_host(Permission::NetworkHttp, "a.com", 443)
                .is_err()
        );
        // Re-granting for v2 acknowledges the new requests.
        let mut file = GrantsFile::default();
        file.extensions.insert("p.e".into(), g);
        let v2_strings: Vec<String> = v2.iter().map(ToString::to_string).collect();
        file.grant("p.e", "2.0.0", &v2_strings, "network.http")
            .unwrap();
        let perms =
            ExtensionPermissions::effective("p.e", "2.0.0", &v2, file.extensions.get("p.e"))
                .unwrap();
        assert!(read(&perms, "docs/a"));
        assert!(
            perms
                .check_host(Permission::NetworkHttp, "a.com", 443)
                .is_ok()
        );
    }

    #[test]
    fn denial_messages_name_the_permission_and_scope() {
        let perms = ExtensionPermissions::none("p.e");
        let err = perms
            .check_path(
                Permission::FileSystemWrite,
                ScopeRoot::Workspace,
                Path::new("a/b.txt"),
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "extension p.e lacks `fileSystem.write` for workspace:a/b.txt"
        );
    }

    #[test]
    fn grants_file_round_trip_grant_revoke_deny() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.toml");
        let mut file = GrantsFile::load(&path).unwrap();
        file.grant("p.e", "1", &["fileSystem.read".into()], "fileSystem.read")
            .unwrap();
        file.grant("p.e", "1", &[], "fileSystem.read").unwrap();
        file.deny("p.e", "1", &[], "fileSystem.read:src/secret/**")
            .unwrap();
        file.save().unwrap();
        let mut again = GrantsFile::load(&path).unwrap();
        assert_eq!(again.extensions["p.e"].allow, ["fileSystem.read"]);
        assert_eq!(
            again.extensions["p.e"].deny,
            ["fileSystem.read:workspace:src/secret/**"]
        );
        // The same deny in its short spelling is recognised, not added twice.
        again
            .deny("p.e", "1", &[], "fileSystem.read:src/secret/**")
            .unwrap();
        assert_eq!(again.extensions["p.e"].deny.len(), 1);
        assert!(again.revoke("p.e", "fileSystem.read").unwrap());
        assert!(!again.revoke("p.e", "fileSystem.read").unwrap());
        assert!(again.grant("p.e", "1", &[], "fileSystem.exec").is_err());
        std::fs::write(
            &path,
            "[extensions.x]\nversion = \"1\"\nallow = []\ntypo = 1\n",
        )
        .unwrap();
        let err = GrantsFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("typo") && err.contains("line 4"), "{err}");
    }
}
