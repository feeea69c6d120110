//! The file-system view: the one decision of what a host may reach directly through the OS.
//!
//! Every backend renders the same [`View`]: bind mounts in a minimal root (read-only unless the
//! entry may be changed, `noexec` unless it may be executed) and, where Landlock runs, one rule
//! per entry with exactly its [`Rights`]. [`compute`] is pure over a [`Tree`] (the facts it needs
//! about the file system), so the guarantee below is proved by a property test on model trees
//! (`tests` at the end of this file) as well as by the escape suite on the real thing.
//!
//! **The guarantee:** for every path, the rights the view gives (the union of the rights of the
//! entries at or above it, which is how Landlock combines rules) are a subset of what the policy
//! allows there, and no path is both writable and executable. What the OS layers cannot express
//! exactly is left out of the view and served by the broker only, never widened:
//! - a glob that is not a folder (`**/*.txt`, `src/*.rs`): the broker matches it call by call;
//! - a folder with a deny pattern reaching into it (`**/*.key`): the same;
//! - a folder holding something the host must not touch (a literal deny, a protected path such
//!   as `.git` in a writable folder, the supervisor's own files, the runtime): the folder is
//!   replaced by its other children, recursively, so the excluded path is in no
//!   entry and a file the user later creates beside it is in none either;
//! - creating, renaming and linking in the workspace: Landlock would allow a new `.git` as
//!   readily as a new `notes.md`, so grants give the OS only the right to change files that
//!   exist (and to delete, with `fileSystem.delete`); new files go through the broker.
//!   The extension's storage and the private `/tmp` are the host's own and fully writable.
//!
//! The view is computed at every start, from the file system as it is then. A protected path
//! the user creates later inside a writable entry is protected from the host's next start.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::permissions::{Glob, GlobShape, Permission, ScopeRoot};

/// What an entry lets the host do at and beneath its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Rights(u8);

impl Rights {
    /// Nothing.
    pub const NONE: Self = Self(0);
    /// Read files and list folders.
    pub const READ: Self = Self(1);
    /// Change files that exist (write, truncate).
    pub const WRITE: Self = Self(1 << 1);
    /// Create files, folders and links, and rename within the entry.
    pub const CREATE: Self = Self(1 << 2);
    /// Delete files and empty folders.
    pub const REMOVE: Self = Self(1 << 3);
    /// Execute files (and map them executable).
    pub const EXEC: Self = Self(1 << 4);

    /// Both sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every right of `other` is in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any right of `other` is in `self`.
    #[must_use]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// The rights of `self` that are not in `other`.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether the entry may change anything (its mount is read-write).
    #[must_use]
    pub const fn changes(self) -> bool {
        self.intersects(Self::WRITE.union(Self::CREATE).union(Self::REMOVE))
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::READ, "read"),
            (Self::WRITE, "write"),
            (Self::CREATE, "create"),
            (Self::REMOVE, "remove"),
            (Self::EXEC, "exec"),
        ];
        let shown: Vec<&str> = names
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .collect();
        if shown.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&shown.join("+"))
        }
    }
}

/// What the file system holds at a path, not following a final symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A folder.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link and what it says.
    Symlink(PathBuf),
    /// A device, socket or fifo.
    Other,
}

/// The facts [`compute`] needs about the file system. [`RealTree`] reads them; tests use a
/// model.
pub trait Tree {
    /// What is at `path` (absolute), without following a final symbolic link; `None` if
    /// nothing is there or it cannot be examined.
    fn node(&self, path: &Path) -> Option<Node>;
    /// The entries of the folder at `path`, or `None` if it cannot be listed. Each call counts
    /// against the walk budget.
    fn list(&mut self, path: &Path) -> Option<Vec<(OsString, Node)>>;
    /// `path` with every symbolic link resolved, if it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
}

/// The real file system.
#[derive(Debug, Default)]
pub struct RealTree {
    listed: usize,
}

impl Tree for RealTree {
    fn node(&self, path: &Path) -> Option<Node> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        let kind = meta.file_type();
        Some(if kind.is_dir() {
            Node::Dir
        } else if kind.is_file() {
            Node::File
        } else if kind.is_symlink() {
            Node::Symlink(std::fs::read_link(path).ok()?)
        } else {
            Node::Other
        })
    }

    fn list(&mut self, path: &Path) -> Option<Vec<(OsString, Node)>> {
        self.listed += 1;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path).ok()? {
            let entry = entry.ok()?;
            // The kind comes with the directory entry on common file systems (no stat).
            let kind = entry.file_type().ok()?;
            let node = if kind.is_dir() {
                Node::Dir
            } else if kind.is_file() {
                Node::File
            } else if kind.is_symlink() {
                Node::Symlink(PathBuf::new())
            } else {
                Node::Other
            };
            out.push((entry.file_name(), node));
        }
        Some(out)
    }

    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        std::fs::canonicalize(path).ok()
    }
}

/// The names that make tools run code when they are written (`.git/config`'s `core.fsmonitor`,
/// a hook, a task that runs on folder open). Inside a writable folder they stay read-only,
/// unless a grant writes them out (`fileSystem.write:.vscode/**`). Profiles may name more.
pub const PROTECTED: &[&str] = &[
    // Version control: hooks, `core.fsmonitor`, `core.hooksPath`; `*.git` for bare repositories.
    ".git",
    "*.git",
    ".gitmodules",
    ".hg",
    ".svn",
    ".jj",
    // Editors and agents that run tasks, language servers or hooks from the folder.
    ".vscode",
    "*.code-workspace",
    ".idea",
    ".devcontainer",
    ".helix",
    ".zed",
    ".claude",
    ".cursor",
    // CI and git-hook managers.
    ".github",
    ".husky",
    ".pre-commit-config.yaml",
    // Shells and tool managers that act on entering the folder or on every command.
    ".envrc",
    "mise.toml",
    ".mise.toml",
    ".mise",
    // Package managers and toolchains that take a program to run from their config.
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pnpmfile.cjs",
    ".cargo",
    "rust-toolchain",
    "rust-toolchain.toml",
    ".bazelrc",
];

/// One path grant or deny, in the form the view and the broker share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathRule {
    /// `fileSystem.read`, `fileSystem.write` or `fileSystem.delete`.
    pub permission: Permission,
    /// The root the glob is relative to.
    pub root: ScopeRoot,
    /// The glob.
    pub glob: Glob,
}

/// What the policy lets one extension do with files: its effective `fileSystem.*` allows and
/// denies, and the folders they are relative to. Compared to tell whether a grants change
/// alters a host's view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsGrants {
    /// The workspace folders (as configured).
    pub workspace: Vec<PathBuf>,
    /// Allowed scopes.
    pub allow: Vec<PathRule>,
    /// Denied scopes (an unscoped deny has already removed its permission from `allow`).
    pub deny: Vec<PathRule>,
}

impl FsGrants {
    /// The `fileSystem` part of an extension's effective permissions, over these workspace
    /// folders.
    #[must_use]
    pub fn from_permissions(
        permissions: &crate::permissions::ExtensionPermissions,
        workspace: &[PathBuf],
    ) -> Self {
        let rules = |entries: &[crate::permissions::PermissionRequest]| -> Vec<PathRule> {
            entries
                .iter()
                .filter_map(|entry| {
                    let (root, glob) = entry.path_scope()?;
                    Some(PathRule {
                        permission: entry.permission,
                        root,
                        glob: glob.clone(),
                    })
                })
                .collect()
        };
        Self {
            workspace: workspace.to_vec(),
            allow: rules(permissions.allowed()),
            deny: rules(permissions.denied_entries()),
        }
    }

    /// The grants as permission strings, allows then denies (`!` before a deny).
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        let show = |r: &PathRule| format!("{}:{}:{}", r.permission.name(), r.root.name(), r.glob);
        self.allow
            .iter()
            .map(show)
            .chain(self.deny.iter().map(|r| format!("!{}", show(r))))
            .collect()
    }
}

/// Everything [`compute`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct ViewRequest<'a> {
    /// Read and executable: the Node runtime and its libraries (missing ones are skipped).
    pub runtime: &'a [PathBuf],
    /// The extension's own folder: read and executable, never writable.
    pub extension: &'a Path,
    /// The extension's private storage: read, write, create, remove; never executable.
    pub storage: Option<&'a Path>,
    /// More read-only paths from the profile.
    pub profile_read: &'a [PathBuf],
    /// More writable paths from the profile (the operator's choice, fully writable).
    pub profile_write: &'a [PathBuf],
    /// The policy.
    pub grants: &'a FsGrants,
    /// The supervisor's own files (config, grants, state, runtime folder): in no view, ever.
    pub private: &'a [PathBuf],
    /// Protected names (see [`PROTECTED`]).
    pub protected: &'a [String],
    /// Whether Landlock will enforce each entry's exact rights. Without it, mounts are the only
    /// layer and cannot tell "change this file" from "create `.git` here", so workspace grants
    /// other than reading are left to the broker.
    pub precise: bool,
}

/// What one entry of a view is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    /// A folder and everything beneath it.
    Dir,
    /// One file.
    File,
    /// A symbolic link to recreate (to an absolute, canonical target that is itself an entry).
    Symlink(PathBuf),
}

/// Why an entry is in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Origin {
    /// The profile's runtime paths.
    Runtime,
    /// The extension's folder.
    Extension,
    /// The extension's storage.
    Storage,
    /// The profile's read or write paths.
    Profile,
    /// A `fileSystem` grant.
    Grant,
}

/// One path of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Absolute and canonical (no symbolic link in it, except a [`EntryKind::Symlink`] itself).
    pub path: PathBuf,
    /// Folder, file or link.
    pub kind: EntryKind,
    /// What the host may do at and beneath it.
    pub rights: Rights,
    /// Where it comes from.
    pub origin: Origin,
}

/// A scope the OS view does not carry, and why: the broker still serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Omission {
    /// The grant or path, as a user would write it.
    pub scope: String,
    /// Why it is served by the broker only.
    pub reason: String,
}

/// What a host may reach directly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The entries, parents before children.
    pub entries: Vec<Entry>,
    /// Grants the OS does not carry.
    pub omitted: Vec<Omission>,
}

impl View {
    /// The rights at `path`: the union of the entries at or above it, as Landlock combines rules.
    #[must_use]
    pub fn rights_at(&self, path: &Path) -> Rights {
        self.entries
            .iter()
            .filter(|e| match e.kind {
                EntryKind::Dir => path.starts_with(&e.path),
                EntryKind::File => path == e.path,
                EntryKind::Symlink(_) => false,
            })
            .fold(Rights::NONE, |acc, e| acc.union(e.rights))
    }

    /// One line per entry and omission, for logs and `status`.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::Symlink(target) => {
                    format!("{} -> {}", e.path.display(), target.display())
                }
                _ => format!("{} ({})", e.path.display(), e.rights),
            })
            .collect();
        out.extend(
            self.omitted
                .iter()
                .map(|o| format!("{}: broker only ({})", o.scope, o.reason)),
        );
        out
    }
}

/// Limits on the work one start may spend checking folders.
const MAX_LISTINGS: usize = 20_000;
/// Limit on the entries one grant may be split into.
const MAX_COVER: usize = 2_048;

/// Computes the view for one host start. See the module documentation for what it guarantees.
pub fn compute(request: &ViewRequest<'_>, tree: &mut dyn Tree) -> View {
    let mut builder = Builder {
        tree,
        entries: Vec::new(),
        omitted: Vec::new(),
        listings: 0,
    };
    builder.base(request);
    let exec_roots: Vec<PathBuf> = builder
        .entries
        .iter()
        .filter(|e| e.rights.contains(Rights::EXEC))
        .map(|e| e.path.clone())
        .collect();
    let private = private_paths(request.private, builder.tree);
    for rule in &request.grants.allow {
        builder.grant(request, rule, &private, &exec_roots);
    }
    builder.finish()
}

/// The supervisor's files as named and where they really are: a name that is a link (a config
/// kept in a dotfiles folder) must not show either, nor what it says.
fn private_paths(private: &[PathBuf], tree: &dyn Tree) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in private {
        out.push(path.clone());
        if let Some(real) = tree.canonical(path).filter(|real| real != path) {
            out.push(real);
        }
    }
    out
}

struct Builder<'t> {
    tree: &'t mut dyn Tree,
    entries: Vec<Entry>,
    omitted: Vec<Omission>,
    listings: usize,
}

/// A folder or file a grant would give, before exclusions.
struct Candidate {
    path: PathBuf,
    file: bool,
    rights: Rights,
    /// Paths beneath it that must stay out.
    exclude: Vec<PathBuf>,
}

impl Builder<'_> {
    fn omit(&mut self, scope: impl fmt::Display, reason: impl Into<String>) {
        self.omitted.push(Omission {
            scope: scope.to_string(),
            reason: reason.into(),
        });
    }

    fn push(&mut self, path: PathBuf, kind: EntryKind, rights: Rights, origin: Origin) {
        self.entries.push(Entry {
            path,
            kind,
            rights,
            origin,
        });
    }

    /// A path the host gets because of what it is, not what it was granted. A symbolic link
    /// (`/bin` to `usr/bin`) is kept as a link, with its canonical target as the entry.
    fn fixed(&mut self, path: &Path, rights: Rights, origin: Origin) {
        if !path.is_absolute() {
            return;
        }
        let Some(canonical) = self.tree.canonical(path) else {
            return;
        };
        if canonical != path
            && let Some(Node::Symlink(_)) = self.tree.node(path)
        {
            self.push(
                path.to_owned(),
                EntryKind::Symlink(canonical.clone()),
                Rights::NONE,
                origin,
            );
        }
        let kind = match self.tree.node(&canonical) {
            Some(Node::Dir) => EntryKind::Dir,
            Some(Node::File | Node::Other) => EntryKind::File,
            _ => return,
        };
        self.push(canonical, kind, rights, origin);
    }

    fn base(&mut self, request: &ViewRequest<'_>) {
        let read_exec = Rights::READ.union(Rights::EXEC);
        let own = Rights::READ
            .union(Rights::WRITE)
            .union(Rights::CREATE)
            .union(Rights::REMOVE);
        for path in request.runtime {
            self.fixed(path, read_exec, Origin::Runtime);
        }
        self.fixed(request.extension, read_exec, Origin::Extension);
        if let Some(storage) = request.storage {
            self.fixed(storage, own, Origin::Storage);
        }
        for path in request.profile_read {
            self.fixed(path, Rights::READ, Origin::Profile);
        }
        for path in request.profile_write {
            self.fixed(path, own, Origin::Profile);
        }
        // The supervisor's own files never show, whatever a profile names.
        let private = private_paths(request.private, self.tree);
        let fixed = std::mem::take(&mut self.entries);
        for entry in fixed {
            if private.iter().any(|p| entry.path.starts_with(p)) {
                self.omit(entry.path.display(), "it holds the supervisor's own files");
            } else if private.iter().any(|p| p.starts_with(&entry.path))
                && entry.kind == EntryKind::Dir
            {
                let exclude: Vec<PathBuf> = private
                    .iter()
                    .filter(|p| p.starts_with(&entry.path))
                    .cloned()
                    .collect();
                match self.cover(&entry.path, &exclude) {
                    Some(parts) => {
                        for (path, kind) in parts {
                            self.push(path, kind, entry.rights, entry.origin);
                        }
                    }
                    None => self.omit(
                        entry.path.display(),
                        "it holds the supervisor's own files and is too large to split",
                    ),
                }
            } else {
                self.entries.push(entry);
            }
        }
    }

    fn roots(&self, request: &ViewRequest<'_>, root: ScopeRoot) -> Vec<PathBuf> {
        match root {
            ScopeRoot::Workspace => request
                .grants
                .workspace
                .iter()
                .filter_map(|w| self.tree.canonical(w))
                .collect(),
            // The extension's folder and its storage are in the view already, with all the
            // rights the host may have there.
            ScopeRoot::Storage | ScopeRoot::Extension => Vec::new(),
        }
    }

    fn grant(
        &mut self,
        request: &ViewRequest<'_>,
        rule: &PathRule,
        private: &[PathBuf],
        exec_roots: &[PathBuf],
    ) {
        let shown = format!(
            "{}:{}:{}",
            rule.permission.name(),
            rule.root.name(),
            rule.glob
        );
        let rights = match rule.permission {
            Permission::FileSystemRead => Rights::READ,
            Permission::FileSystemWrite => Rights::WRITE,
            Permission::FileSystemDelete => Rights::REMOVE,
            _ => return,
        };
        if rights != Rights::READ && rule.root == ScopeRoot::Extension {
            self.omit(
                &shown,
                "the extension's own folder is never writable by the OS",
            );
            return;
        }
        if rights != Rights::READ && !request.precise {
            self.omit(
                &shown,
                "without Landlock the OS cannot keep a host from creating protected paths in a writable folder",
            );
            return;
        }
        let (segments, file): (Vec<String>, bool) = match rule.glob.shape() {
            GlobShape::Subtree(prefix) => (prefix, false),
            GlobShape::Exact(path) => (path, true),
            GlobShape::Pattern => {
                self.omit(&shown, "a pattern, matched by the broker on each call");
                return;
            }
        };
        for root in self.roots(request, rule.root) {
            let Some(path) = self.beneath(&root, &segments, file) else {
                continue;
            };
            let Some(mut candidate) =
                self.candidate(request, rule, &shown, &root, &segments, path, file, rights)
            else {
                continue;
            };
            if !self.excluded(&mut candidate, &shown, private, exec_roots, request) {
                continue;
            }
            if candidate.exclude.is_empty() {
                let kind = if candidate.file {
                    EntryKind::File
                } else {
                    EntryKind::Dir
                };
                self.push(candidate.path, kind, candidate.rights, Origin::Grant);
                continue;
            }
            match self.cover(&candidate.path, &candidate.exclude) {
                Some(parts) => {
                    for (path, kind) in parts {
                        self.push(path, kind, candidate.rights, Origin::Grant);
                    }
                }
                None => self.omit(
                    &shown,
                    "the folder is too large to check for paths it must leave out",
                ),
            }
        }
    }

    /// `root/segments`, if every step below `root` is a real folder (the last may be a file
    /// when `file`): a symbolic link on the way could lead anywhere, so it ends the view there.
    fn beneath(&self, root: &Path, segments: &[String], file: bool) -> Option<PathBuf> {
        let mut path = root.to_owned();
        for (i, segment) in segments.iter().enumerate() {
            path.push(segment);
            let last = i + 1 == segments.len();
            match self.tree.node(&path) {
                Some(Node::Dir) if !(last && file) => {}
                Some(Node::File) if last && file => {}
                _ => return None,
            }
        }
        if segments.is_empty() && self.tree.node(&path) != Some(Node::Dir) {
            return None;
        }
        Some(path)
    }

    /// The candidate for `root/relative`, with the literal denies beneath it to leave out;
    /// `None` when a deny covers it or a deny pattern reaches into it.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all of it the grant's facts"
    )]
    fn candidate(
        &mut self,
        request: &ViewRequest<'_>,
        rule: &PathRule,
        shown: &str,
        root: &Path,
        relative: &[String],
        path: PathBuf,
        file: bool,
        rights: Rights,
    ) -> Option<Candidate> {
        debug_assert!(path.starts_with(root));
        let mut candidate = Candidate {
            path,
            file,
            rights,
            exclude: Vec::new(),
        };
        let relative_refs: Vec<&str> = relative.iter().map(String::as_str).collect();
        for deny in request
            .grants
            .deny
            .iter()
            .filter(|d| d.permission == rule.permission && d.root == rule.root)
        {
            if !deny.glob.may_match_at_or_under(&relative_refs) {
                continue;
            }
            let literal = match deny.glob.shape() {
                GlobShape::Subtree(p) | GlobShape::Exact(p) => p,
                GlobShape::Pattern => {
                    self.omit(
                        shown,
                        format!("the deny `{}` is a pattern that reaches into it", deny.glob),
                    );
                    return None;
                }
            };
            if literal.len() <= relative.len() {
                // The deny covers the whole candidate (it matched at or above it).
                self.omit(shown, format!("denied by `{}`", deny.glob));
                return None;
            }
            let mut excluded = candidate.path.clone();
            excluded.extend(&literal[relative.len()..]);
            candidate.exclude.push(excluded);
        }
        Some(candidate)
    }

    /// Adds what the candidate must leave out beneath it; `false` drops it.
    fn excluded(
        &mut self,
        candidate: &mut Candidate,
        shown: &str,
        private: &[PathBuf],
        exec_roots: &[PathBuf],
        request: &ViewRequest<'_>,
    ) -> bool {
        if private.iter().any(|p| candidate.path.starts_with(p)) {
            self.omit(shown, "it holds the supervisor's own files");
            return false;
        }
        candidate.exclude.extend(
            private
                .iter()
                .filter(|p| p.starts_with(&candidate.path))
                .cloned(),
        );
        if candidate.rights == Rights::READ {
            return true;
        }
        if exec_roots.iter().any(|e| candidate.path.starts_with(e)) {
            self.omit(
                shown,
                "it lies inside the runtime or the extension's folder, which stay read-only",
            );
            return false;
        }
        candidate.exclude.extend(
            exec_roots
                .iter()
                .filter(|e| e.starts_with(&candidate.path))
                .cloned(),
        );
        if candidate.file {
            return true;
        }
        let protected = crate::permissions::ProtectedNames::new(request.protected);
        if let Some(found) = self.protected_beneath(&candidate.path, &protected) {
            candidate.exclude.extend(found);
            true
        } else {
            self.omit(
                shown,
                "the folder is too large to check for protected paths (.git, .vscode, ...)",
            );
            false
        }
    }

    /// Every path beneath `dir` named like a protected path (not descending into them or into
    /// symbolic links); `None` when the walk budget runs out.
    fn protected_beneath(
        &mut self,
        dir: &Path,
        protected: &crate::permissions::ProtectedNames,
    ) -> Option<Vec<PathBuf>> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(next) = stack.pop() {
            self.listings += 1;
            if self.listings > MAX_LISTINGS {
                return None;
            }
            // A folder that cannot be listed cannot be checked, so it cannot be given.
            let Some(children) = self.tree.list(&next) else {
                found.push(next);
                continue;
            };
            for (name, node) in children {
                let child = next.join(&name);
                if name.to_str().is_none_or(|n| protected.matches(n)) {
                    found.push(child);
                } else if node == Node::Dir {
                    stack.push(child);
                }
            }
        }
        Some(found)
    }

    /// Everything beneath `dir` except the `exclude`d paths, as few entries as possible:
    /// folders free of exclusions whole, and the files beside an exclusion one by one.
    /// Symbolic links, devices and sockets beside an exclusion are left out. `None` when the
    /// budget runs out.
    fn cover(&mut self, dir: &Path, exclude: &[PathBuf]) -> Option<Vec<(PathBuf, EntryKind)>> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(next) = stack.pop() {
            if exclude.iter().any(|x| next.starts_with(x)) {
                continue;
            }
            if exclude.iter().any(|x| x.starts_with(&next)) {
                self.listings += 1;
                if self.listings > MAX_LISTINGS {
                    return None;
                }
                let children = self.tree.list(&next)?;
                for (name, node) in children {
                    let child = next.join(&name);
                    match node {
                        Node::Dir => stack.push(child),
                        Node::File if !exclude.contains(&child) => {
                            out.push((child, EntryKind::File));
                        }
                        _ => {}
                    }
                }
            } else {
                out.push((next, EntryKind::Dir));
            }
            if out.len() > MAX_COVER {
                return None;
            }
        }
        Some(out)
    }

    fn finish(mut self) -> View {
        // One entry per path and kind, with the union of its rights.
        let mut merged: BTreeMap<(PathBuf, u8), Entry> = BTreeMap::new();
        for entry in self.entries.drain(..) {
            let rank = match entry.kind {
                EntryKind::Symlink(_) => 0,
                EntryKind::Dir => 1,
                EntryKind::File => 2,
            };
            merged
                .entry((entry.path.clone(), rank))
                .and_modify(|e| e.rights = e.rights.union(entry.rights))
                .or_insert(entry);
        }
        let mut entries: Vec<Entry> = merged.into_values().collect();
        // A path is a link or a real entry, never both; the link was only kept for an alias.
        let links: Vec<PathBuf> = entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Symlink(_)))
            .map(|e| e.path.clone())
            .collect();
        entries.retain(|e| matches!(e.kind, EntryKind::Symlink(_)) || !links.contains(&e.path));
        // Landlock adds the rights of every rule above a path: a writable entry inside an
        // executable one (or the reverse) would be both. The runtime and the extension keep
        // exec; whatever inherits it loses every right to change.
        let exec: Vec<PathBuf> = entries
            .iter()
            .filter(|e| e.rights.contains(Rights::EXEC))
            .map(|e| e.path.clone())
            .collect();
        for entry in &mut entries {
            let under_exec = exec
                .iter()
                .any(|x| entry.path.starts_with(x) && *x != entry.path);
            if (under_exec || entry.rights.contains(Rights::EXEC)) && entry.rights.changes() {
                entry.rights = entry
                    .rights
                    .without(Rights::WRITE.union(Rights::CREATE).union(Rights::REMOVE));
            }
        }
        let changes: Vec<PathBuf> = entries
            .iter()
            .filter(|e| e.rights.changes())
            .map(|e| e.path.clone())
            .collect();
        for entry in &mut entries {
            if entry.rights.contains(Rights::EXEC)
                && changes
                    .iter()
                    .any(|c| entry.path.starts_with(c) && *c != entry.path)
            {
                entry.rights = entry.rights.without(Rights::EXEC);
            }
        }
        entries.retain(|e| e.rights != Rights::NONE || matches!(e.kind, EntryKind::Symlink(_)));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        // An entry that adds nothing to the folders above it is left out; one that adds
        // something carries the union, which is what Landlock will give it and what its mount's
        // flags must say.
        let mut view = View {
            entries: Vec::new(),
            omitted: self.omitted,
        };
        for mut entry in entries {
            if matches!(entry.kind, EntryKind::Symlink(_)) {
                view.entries.push(entry);
                continue;
            }
            let above = view.rights_at(&entry.path);
            if above.contains(entry.rights) {
                continue;
            }
            entry.rights = entry.rights.union(above);
            view.entries.push(entry);
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::permissions::{ExtensionPermissions, Grant, PermissionRequest};

    /// A file system in memory: absolute paths to what is there.
    #[derive(Debug, Clone, Default)]
    struct Model {
        nodes: BTreeMap<PathBuf, Node>,
    }

    impl Model {
        fn add(&mut self, path: &Path, node: Node) {
            // Whatever was at an ancestor becomes a folder: something lies beneath it.
            for ancestor in path.ancestors().skip(1) {
                self.nodes.insert(ancestor.to_owned(), Node::Dir);
            }
            // A path is a folder as soon as something lies beneath it.
            match self.nodes.get(path) {
                Some(Node::Dir) => {}
                _ => {
                    self.nodes.insert(path.to_owned(), node);
                }
            }
        }
    }

    impl Tree for Model {
        fn node(&self, path: &Path) -> Option<Node> {
            self.nodes.get(path).cloned()
        }

        fn list(&mut self, path: &Path) -> Option<Vec<(OsString, Node)>> {
            if self.nodes.get(path) != Some(&Node::Dir) {
                return None;
            }
            Some(
                self.nodes
                    .iter()
                    .filter(|(p, _)| p.parent() == Some(path))
                    .map(|(p, n)| (p.file_name().unwrap().to_owned(), n.clone()))
                    .collect(),
            )
        }

        fn canonical(&self, path: &Path) -> Option<PathBuf> {
            // The model's links all point outside it, so a path through one resolves to
            // nothing the model holds.
            let mut walked = PathBuf::from("/");
            for component in path.components().skip(1) {
                walked.push(component);
                if let Node::Symlink(target) = self.nodes.get(&walked)? {
                    return Some(target.clone());
                }
            }
            Some(walked)
        }
    }

    const WORKSPACE: &str = "/w";
    const SEGMENTS: &[&str] = &[
        "src", "a", "b", ".git", ".vscode", "x.txt", "k.key", ".envrc", "cfg.toml", "notes.md",
        "b.git",
    ];
    const GLOBS: &[&str] = &[
        "**",
        "src/**",
        "a/**",
        "a/b/**",
        "**/*.txt",
        "*.key",
        "a/*",
        "src/x.txt",
        "a/b",
        ".git/**",
        ".vscode/**",
        "src/.git/**",
        "**/.git/**",
        "a/**/x.txt",
        "src",
        "*",
        "{a,b}/**",
        "[ab]/**",
    ];
    const PERMISSIONS: &[&str] = &["fileSystem.read", "fileSystem.write", "fileSystem.delete"];

    fn protected() -> Vec<String> {
        PROTECTED.iter().map(|s| (*s).to_owned()).collect()
    }

    /// What the policy allows at `path`: the broker's own decision for workspace paths, and the
    /// host's own folders for the rest.
    fn policy(
        permissions: &ExtensionPermissions,
        path: &Path,
        private: &[PathBuf],
        extension: &Path,
        storage: &Path,
    ) -> Rights {
        if private.iter().any(|p| path.starts_with(p)) {
            return Rights::NONE;
        }
        let mut rights = Rights::NONE;
        if path.starts_with("/r") || path.starts_with(extension) {
            rights = rights.union(Rights::READ).union(Rights::EXEC);
        }
        if path.starts_with(storage) {
            rights = rights
                .union(Rights::READ)
                .union(Rights::WRITE)
                .union(Rights::CREATE)
                .union(Rights::REMOVE);
        }
        if let Ok(relative) = path.strip_prefix(WORKSPACE) {
            for (permission, right) in [
                (Permission::FileSystemRead, Rights::READ),
                (Permission::FileSystemWrite, Rights::WRITE),
                (Permission::FileSystemDelete, Rights::REMOVE),
            ] {
                if permissions
                    .check_path(permission, ScopeRoot::Workspace, relative)
                    .is_ok()
                {
                    rights = rights.union(right);
                }
            }
        }
        rights
    }

    #[derive(Debug, Clone)]
    struct Case {
        files: Vec<(Vec<usize>, bool)>,
        allow: Vec<(usize, usize)>,
        deny: Vec<(usize, usize)>,
        private: Vec<usize>,
        extension_in_workspace: bool,
        link: bool,
        precise: bool,
    }

    fn case() -> impl Strategy<Value = Case> {
        let path = prop::collection::vec(0..SEGMENTS.len(), 1..5);
        (
            prop::collection::vec((path, any::<bool>()), 1..24),
            prop::collection::vec((0..PERMISSIONS.len(), 0..GLOBS.len()), 0..5),
            prop::collection::vec((0..PERMISSIONS.len(), 0..GLOBS.len()), 0..3),
            prop::collection::vec(0..24usize, 0..2),
            any::<bool>(),
            any::<bool>(),
            prop::bool::weighted(0.8),
        )
            .prop_map(
                |(files, allow, deny, private, extension_in_workspace, link, precise)| Case {
                    files,
                    allow,
                    deny,
                    private,
                    extension_in_workspace,
                    link,
                    precise,
                },
            )
    }

    /// Builds the model, computes the view and checks it against the policy at every path of
    /// the tree, and at a new file in every folder (one the user creates later).
    fn check(case: &Case) -> Result<(), TestCaseError> {
        let mut model = Model::default();
        let mut paths = Vec::new();
        for (segments, dir) in &case.files {
            let mut path = PathBuf::from(WORKSPACE);
            path.extend(segments.iter().map(|&i| SEGMENTS[i]));
            model.add(&path, if *dir { Node::Dir } else { Node::File });
            paths.push(path);
        }
        if case.link {
            model.add(Path::new("/w/src"), Node::Symlink(PathBuf::from("/etc")));
        }
        model.add(Path::new("/r/bin/node"), Node::File);
        let extension = if case.extension_in_workspace {
            PathBuf::from("/w/a/ext")
        } else {
            PathBuf::from("/x/ext")
        };
        model.add(&extension.join("main.js"), Node::File);
        let storage = PathBuf::from("/s/store");
        model.add(&storage.join("state.json"), Node::File);
        let private: Vec<PathBuf> = case
            .private
            .iter()
            .filter_map(|&i| paths.get(i).cloned())
            .collect();
        let entries = |list: &[(usize, usize)]| -> Vec<String> {
            list.iter()
                .map(|&(p, g)| format!("{}:{}", PERMISSIONS[p], GLOBS[g]))
                .collect()
        };
        let allow = entries(&case.allow);
        let deny = entries(&case.deny);
        let requested: Vec<PermissionRequest> = allow
            .iter()
            .map(|e| PermissionRequest::parse(e).unwrap())
            .collect();
        let grant = Grant {
            version: "1".into(),
            requested: allow.clone(),
            allow: allow.clone(),
            deny,
        };
        let permissions = ExtensionPermissions::effective("p.e", "1", &requested, Some(&grant))
            .unwrap()
            .with_protected(&protected());
        let grants = FsGrants::from_permissions(&permissions, &[PathBuf::from(WORKSPACE)]);
        let runtime = [PathBuf::from("/r")];
        let view = compute(
            &ViewRequest {
                runtime: &runtime,
                extension: &extension,
                storage: Some(&storage),
                profile_read: &[],
                profile_write: &[],
                grants: &grants,
                private: &private,
                protected: &protected(),
                precise: case.precise,
            },
            &mut model.clone(),
        );
        let mut probes: Vec<PathBuf> = model.nodes.keys().cloned().collect();
        probes.extend(
            model
                .nodes
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.join("zz-new.txt")),
        );
        for path in probes {
            let given = view.rights_at(&path);
            let allowed = policy(&permissions, &path, &private, &extension, &storage);
            prop_assert!(
                allowed.contains(given),
                "{} gets {given} but the policy allows {allowed}\nview: {:#?}\ngrants: {:?}",
                path.display(),
                view.describe(),
                grants.describe()
            );
            prop_assert!(
                !(given.contains(Rights::EXEC) && given.changes()),
                "{} is both executable and writable ({given})",
                path.display()
            );
        }
        Ok(())
    }

    proptest! {
        // 3000 cases in every test run; `PROPTEST_CASES=200000` for a deep one.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(3000)
        ))]

        /// Every path the computed view lets a host read, write, delete or execute is allowed by
        /// the policy (manifest ∩ grants − denies, protected and supervisor paths out).
        #[test]
        fn the_view_is_a_subset_of_the_policy(case in case()) {
            check(&case)?;
        }
    }

    /// The property is not vacuous: grants the OS can express exactly do reach the view.
    #[test]
    fn exact_grants_reach_the_view_and_patterns_do_not() {
        let mut model = Model::default();
        for path in [
            "/w/src/x.txt",
            "/w/.git/config",
            "/w/notes.md",
            "/w/a/k.key",
            "/r/node",
        ] {
            model.add(Path::new(path), Node::File);
        }
        model.add(Path::new("/x/ext/main.js"), Node::File);
        let grant = |allow: &[&str], deny: &[&str]| FsGrants {
            workspace: vec![PathBuf::from(WORKSPACE)],
            allow: allow.iter().map(|e| rule(e)).collect(),
            deny: deny.iter().map(|e| rule(e)).collect(),
        };
        let view = |grants: &FsGrants, precise: bool| {
            compute(
                &ViewRequest {
                    runtime: &[PathBuf::from("/r")],
                    extension: Path::new("/x/ext"),
                    storage: None,
                    profile_read: &[],
                    profile_write: &[],
                    grants,
                    private: &[PathBuf::from("/w/a/k.key")],
                    protected: &protected(),
                    precise,
                },
                &mut model.clone(),
            )
        };
        // A folder grant: the folder is readable, the private file in it is not.
        let v = view(&grant(&["fileSystem.read:**"], &[]), true);
        assert!(
            v.rights_at(Path::new("/w/src/x.txt"))
                .contains(Rights::READ)
        );
        assert!(
            v.rights_at(Path::new("/w/.git/config"))
                .contains(Rights::READ)
        );
        assert_eq!(v.rights_at(Path::new("/w/a/k.key")), Rights::NONE);
        // A write grant: files can change, `.git` cannot, nothing can be created.
        let v = view(&grant(&["fileSystem.write:**"], &[]), true);
        assert!(
            v.rights_at(Path::new("/w/notes.md"))
                .contains(Rights::WRITE)
        );
        assert!(!v.rights_at(Path::new("/w/.git/config")).changes());
        assert!(!v.rights_at(Path::new("/w/src")).contains(Rights::CREATE));
        // Without Landlock the same grant stays with the broker.
        let v = view(&grant(&["fileSystem.write:**"], &[]), false);
        assert!(!v.rights_at(Path::new("/w/notes.md")).changes());
        assert!(!v.omitted.is_empty());
        // A pattern is the broker's alone; a literal deny is cut out, a pattern deny drops all.
        let v = view(&grant(&["fileSystem.read:**/*.txt"], &[]), true);
        assert_eq!(v.rights_at(Path::new("/w/src/x.txt")), Rights::NONE);
        let v = view(
            &grant(&["fileSystem.read:**"], &["fileSystem.read:src/**"]),
            true,
        );
        assert_eq!(v.rights_at(Path::new("/w/src/x.txt")), Rights::NONE);
        assert!(v.rights_at(Path::new("/w/notes.md")).contains(Rights::READ));
        let v = view(
            &grant(&["fileSystem.read:**"], &["fileSystem.read:**/*.key"]),
            true,
        );
        assert_eq!(v.rights_at(Path::new("/w/notes.md")), Rights::NONE);
        // The runtime and the extension are executable, never writable.
        assert!(v.rights_at(Path::new("/r/node")).contains(Rights::EXEC));
        assert!(!v.rights_at(Path::new("/x/ext/main.js")).changes());
    }

    fn rule(entry: &str) -> PathRule {
        let parsed = PermissionRequest::parse(entry).unwrap();
        let (root, glob) = parsed.path_scope().unwrap();
        PathRule {
            permission: parsed.permission,
            root,
            glob: glob.clone(),
        }
    }
}
