//! The permission layer: a parsed call becomes a [`Cleared`] call only if what it
//! [needs](HostCall::needs) is granted, in its scope, with no deny covering it.
//!
//! Unscoped, host and command needs are decided by [`ExtensionPermissions`] alone. A path need
//! is resolved first, with the same [`PathValidator`] the handler will open it through: the
//! scope is matched on the path as it resolved beneath its root, the supervisor's private files
//! are refused whatever the grant says, protected names need a grant that writes them out, and a
//! recursive delete is checked entry by entry before anything is removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::call::{HostCall, Need};
use super::error::CallError;
use super::service::{Inner, Roots, Served};
use crate::paths::{FileKind, PathValidator, ResolvedPath, RootKind};
use crate::permissions::{ExtensionPermissions, Permission, ScopeRoot};

/// The most entries a recursive delete examines before it refuses.
const MAX_DELETE_ENTRIES: usize = 100_000;

/// A call whose permission was checked, with what the check found. Only [`authorize`] makes
/// one, so a handler that takes it cannot run unchecked.
pub(crate) struct Cleared {
    call: HostCall,
    path: Option<CheckedPath>,
}

impl Cleared {
    /// The call, and for a file call the path it was cleared for.
    pub(crate) fn into_parts(self) -> (HostCall, Option<CheckedPath>) {
        (self.call, self.path)
    }
}

/// A path resolved beneath an allowed root and cleared for one permission. File operations go
/// through [`validator`](Self::validator), the one the check resolved it with.
pub(crate) struct CheckedPath {
    roots: Arc<Roots>,
    follow_links: bool,
    resolved: ResolvedPath,
}

impl CheckedPath {
    /// The validator that resolved the path (and refuses paths of any other).
    pub(crate) fn validator(&self) -> &PathValidator {
        self.roots.validator(self.follow_links)
    }

    /// The path beneath its root.
    pub(crate) fn resolved(&self) -> &ResolvedPath {
        &self.resolved
    }
}

/// Checks what `call` needs against `served`'s permissions now.
///
/// # Errors
/// [`CallError::Denied`] naming the permission (and scope) that would allow the call, or for a
/// path the reasons of [`check_path`].
pub(crate) async fn authorize(
    inner: &Inner,
    served: &Served,
    call: HostCall,
) -> Result<Cleared, CallError> {
    let need = call.needs();
    let permissions = served.permissions();
    let path = match need {
        Need::Unscoped(permission) => {
            permissions.check_permission(permission)?;
            None
        }
        Need::Host {
            permission,
            host,
            port,
        } => {
            permissions.check_host(permission, host, port)?;
            None
        }
        Need::Command { permission, id } => {
            permissions.check_command(permission, id)?;
            None
        }
        Need::Path {
            permission,
            path,
            subtree,
        } => Some(check_path(inner, served, permissions, permission, path, subtree).await?),
    };
    tracing::trace!(extension = %served.info.id, method = call.method().name(), permission = %need.permission(), "host API call cleared");
    Ok(Cleared { call, path })
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

/// Resolves `path` and checks `permission` on it (and with `subtree` on everything beneath).
///
/// # Errors
/// A path that does not resolve beneath a root ([`CallError::Path`]), a root no grant can name,
/// a path outside the scope or under a deny, one of the supervisor's own files, or, for a
/// subtree, any entry that fails the same check.
async fn check_path(
    inner: &Inner,
    served: &Served,
    permissions: ExtensionPermissions,
    permission: Permission,
    path: &str,
    subtree: bool,
) -> Result<CheckedPath, CallError> {
    let roots = served.roots();
    let private = inner.private();
    let root = roots.validator(true).resolve(path)?.root_kind();
    let scope_root = scope_root(root).ok_or(CallError::NotGrantable { root })?;
    // A link could lead to one of the supervisor's files under a name that is not its own, so
    // links are followed only where none of them lies. Nor for changes: a link could lead into
    // a protected folder (`.git`) under a name that is not protected.
    let follow_links = permission == Permission::FileSystemRead
        && permissions.covers_whole_root(permission, scope_root)
        && !private.iter().any(|p| roots.validator(true).contains(p));
    let validator = roots.validator(follow_links);
    let resolved = validator.resolve(path)?;
    permissions.check_path(permission, scope_root, Path::new(resolved.relative()))?;
    // The path as the extension wrote it and as it resolved are both checked; a listing of a
    // folder holding a private file is fine (the file itself is refused).
    if let Some(absolute) = validator.absolute(&resolved)
        && private.iter().any(|p| absolute.starts_with(p))
    {
        return Err(CallError::Private {
            path: resolved.to_string(),
        });
    }
    let checked = CheckedPath {
        roots,
        follow_links,
        resolved,
    };
    if !subtree {
        return Ok(checked);
    }
    // Everything a recursive delete would remove must be deletable on its own: a protected
    // `.git`, a denied folder or a supervisor file inside refuses all of it. The walk blocks.
    tokio::task::spawn_blocking(move || {
        check_tree(&checked, &|relative, absolute| {
            if absolute.is_some_and(|a| private.iter().any(|p| a.starts_with(p))) {
                return Err(CallError::PrivateInside {
                    path: checked.resolved.to_string(),
                });
            }
            permissions
                .check_path(permission, scope_root, relative)
                .map_err(CallError::from)
        })?;
        Ok(checked)
    })
    .await
    .map_err(CallError::Blocking)?
}

/// A check of one path beneath a folder: its relative path and, where known, where it is.
type EntryCheck<'a> = &'a dyn Fn(&Path, Option<&Path>) -> Result<(), CallError>;

/// Applies `check` to every path beneath `dir` (not following symbolic links).
fn check_tree(dir: &CheckedPath, check: EntryCheck<'_>) -> Result<(), CallError> {
    let paths = dir.validator();
    let top = dir.resolved();
    let mut stack = vec![top.clone()];
    let mut seen = 0usize;
    while let Some(next) = stack.pop() {
        let entries = match paths.read_dir(&next) {
            Ok(entries) => entries,
            // A file, not a folder: nothing beneath.
            Err(_) if stack.is_empty() && next == *top => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            seen += 1;
            if seen > MAX_DELETE_ENTRIES {
                return Err(CallError::TooManyEntries {
                    path: top.to_string(),
                    max: MAX_DELETE_ENTRIES,
                });
            }
            let child = next.child(&entry.name)?;
            let absolute: Option<PathBuf> = paths.absolute(&child);
            check(child.relative(), absolute.as_deref())?;
            if entry.kind == FileKind::Directory {
                stack.push(child);
            }
        }
    }
    Ok(())
}
