//! Which files an extension may touch, and touching them without being tricked: the seed's
//! `PathValidator`.
//!
//! Two halves, kept apart on purpose:
//!
//! - **Parsing** ([`PathValidator::resolve`]) is pure string work. It accepts an absolute path or a
//!   `file://` URI, percent-decodes the URI once, refuses anything ambiguous, normalizes `.` and `..`
//!   lexically and picks the allowed root the result lies under. The answer, a [`ResolvedPath`], is
//!   a root plus a path *relative to it*; it never becomes a host path string again.
//! - **Opening** (`open_read`, `open_write`, `create_dir[_all]`, `read_dir`, `metadata`,
//!   `remove[_all]`, `rename`, and the seed's `validate_path`) is done relative to a directory
//!   descriptor each root keeps open, with `openat2(2)` and `RESOLVE_BENEATH |
//!   RESOLVE_NO_MAGICLINKS`. Operations on an entry itself (create, remove, rename) open its parent
//!   that way and act on the final name with `mkdirat`, `unlinkat` or `renameat2`. The kernel then refuses, at the moment of use, any
//!   symbolic link or `..` that would leave the root, so a link swapped in after the string check
//!   cannot redirect the access. On kernels without `openat2` (before 5.6, or where seccomp hides
//!   it) a component-by-component walk with `O_NOFOLLOW` is used instead, which refuses every
//!   symbolic link.
//!
//! Decisions a reviewer should know about:
//!
//! - **Relative paths are refused.** With several workspace folders "relative to what" has no good
//!   answer, and the host's working directory means nothing to the supervisor.
//! - **Backslashes are refused**, raw or encoded. They are legal in Linux file names, but an editor
//!   that sends one almost always means a Windows separator, and `..\..\` must not be read as a
//!   file name by one layer and as traversal by another. Control characters are refused too, so a
//!   path can be logged safely.
//! - **`..` is resolved lexically** (`/ws/a/../b` is `/ws/b`), the way editors and URIs treat it.
//!   What results must lie under a root; the kernel then checks every symbolic link on the way.
//! - **Symbolic links inside a root are followed** as long as they stay inside that same root
//!   (relative targets only: `RESOLVE_BENEATH` refuses absolute targets even when they point back
//!   inside). A link into another allowed root is refused too; open the other root's path instead.
//! - **Hard-linked regular files are not served** (`st_nlink > 1`): a hard link to a file outside
//!   the root is indistinguishable from a file inside it, and writing through it changes the
//!   outside file. Reads can be allowed with [`PathValidator::allow_hard_linked_reads`] (package
//!   managers such as pnpm hard-link `node_modules`); writes never are. The link count is checked
//!   on the opened descriptor before anything is truncated or written.
//! - **Only regular files are opened** for reading and writing: a FIFO, socket or device in a
//!   workspace is refused (opened non-blocking first, so a FIFO cannot hang the broker).
//! - **Errors never contain a host path.** They name the root kind and the path inside it
//!   (`workspace:src/main.rs`); anything outside the roots is shown as `<outside allowed roots>`.

use std::borrow::Cow;
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::wire::ErrorCode;

/// Longest input accepted, before decoding; far above any real path, it bounds the work a single
/// request can cause.
pub const MAX_INPUT_LEN: usize = 16 * 1024;

/// Longest path below a root, in bytes (the kernel's `PATH_MAX` less the terminating NUL).
pub const MAX_RELATIVE_LEN: usize = 4095;

/// Longest single file name, in bytes (the kernel's `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// How often an `openat2` that hit a concurrent rename (`EAGAIN`) is retried before giving up.
const EAGAIN_RETRIES: usize = 16;

/// How deep [`PathValidator::remove_all`] descends; each level holds one descriptor.
const MAX_REMOVE_DEPTH: usize = 256;

/// What an allowed root is for; shown in place of its host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RootKind {
    /// A folder the user opened in the editor.
    Workspace,
    /// The extension's own folder (the one with `package.json`).
    Extension,
    /// The extension's private storage.
    Storage,
    /// The extension's log folder.
    Logs,
    /// A temporary folder for the extension.
    Temp,
}

impl RootKind {
    /// The label used in place of the root's host path, as in `workspace:src/main.rs`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Extension => "extension",
            Self::Storage => "storage",
            Self::Logs => "logs",
            Self::Temp => "temp",
        }
    }
}

impl fmt::Display for RootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// How paths below a root are resolved by the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: symbolic links that stay inside
    /// the root are followed, others are refused.
    Openat2,
    /// A walk of `openat(O_NOFOLLOW)` calls, one component at a time: every symbolic link is
    /// refused. Used where `openat2` is missing.
    Walk,
}

/// How [`PathValidator::open_write`] treats an existing or missing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create the file; fail with [`PathError::AlreadyExists`] if anything is there.
    CreateNew,
    /// Create the file if it is missing, empty it if it exists (`writeFile` with create and
    /// overwrite).
    CreateOrTruncate,
    /// The file must exist; empty it.
    Truncate,
    /// The file must exist; keep its contents and write at the positions the caller seeks to.
    Existing,
    /// Create the file if it is missing; every write goes to its end (logs).
    Append,
}

/// Why a path was refused or could not be used.
///
/// Messages name paths only by root kind and in-root path (`workspace:src/main.rs`) and never
/// repeat input that lies outside the roots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The input is not an acceptable absolute path or `file://` URI.
    #[error("invalid path: {reason}")]
    InvalidPath {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The path lies outside every allowed root.
    #[error(
        "path <outside allowed roots> is not under a workspace folder or the extension's folder, \
         storage, logs or temp directory"
    )]
    OutsideRoots,
    /// A `file://` URI named a host other than `localhost`.
    #[error("file URI names a remote host: only local files (file:///path) are served")]
    RemoteHost,
    /// Nothing exists at the path (or at one of its parents).
    #[error("{path} does not exist")]
    NotFound {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// Resolving the path went through a symbolic link (or `..` inside one) that leaves its root.
    #[error("{path} goes through a symbolic link that leaves its root")]
    SymlinkEscape {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// Something already exists where a new entry was to be created.
    #[error("{path} already exists")]
    AlreadyExists {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// A file operation was asked of a directory.
    #[error("{path} is a directory")]
    IsADirectory {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// A directory operation was asked of something else, or a parent is not a directory.
    #[error("{path} is not a directory (or one of its parents is not)")]
    NotADirectory {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// The entry exists but is not served, for the reason given.
    #[error("{path} is not served: {reason}")]
    Refused {
        /// The path, as `kind:relative`.
        path: String,
        /// Why, for example "hard-linked files are not served".
        reason: &'static str,
    },
    /// The file system refused the access (permissions, read-only mount).
    #[error("{path}: permission denied by the file system")]
    PermissionDenied {
        /// The path, as `kind:relative`.
        path: String,
    },
    /// Any other failure of the underlying system call.
    #[error("file system error on {path}")]
    Io {
        /// The path, as `kind:relative`.
        path: String,
        /// The operating system's error (which carries no path).
        #[source]
        source: io::Error,
    },
}

impl PathError {
    /// The wire error code for this error: `InvalidPath`, `NotFound`, `PermissionDenied`, or
    /// `Internal` for unexpected I/O failures.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::Io { .. } => ErrorCode::Internal,
            Self::InvalidPath { .. }
            | Self::OutsideRoots
            | Self::RemoteHost
            | Self::SymlinkEscape { .. }
            | Self::AlreadyExists { .. }
            | Self::IsADirectory { .. }
            | Self::NotADirectory { .. }
            | Self::Refused { .. } => ErrorCode::InvalidPath,
        }
    }
}

fn invalid(reason: &'static str) -> PathError {
    PathError::InvalidPath { reason }
}

/// An allowed root could not be opened. For the embedder: unlike [`PathError`], it names the
/// host path it was given.
#[derive(Debug, thiserror::Error)]
#[error("cannot use {} as an allowed root", .path.display())]
pub struct RootError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl RootError {
    /// The root as it was given.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An entry of a directory listed by [`PathValidator::read_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// What the entry itself is (a symbolic link is reported as one, not followed).
    pub kind: FileKind,
}

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// A path that parsed, normalized and lies under one allowed root of one [`PathValidator`].
///
/// It holds no descriptor: every operation resolves it again beneath the root, so it stays safe
/// however the file system changes after it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    validator: u64,
    root: usize,
    kind: RootKind,
    /// `kind` or `kind#N` for the N-th root of a kind.
    label: String,
    /// Plain names joined by `/`; empty for the root itself.
    relative: String,
}

impl ResolvedPath {
    /// The kind of root the path lies under.
    #[must_use]
    pub fn root_kind(&self) -> RootKind {
        self.kind
    }

    /// The path below its root, without a leading `/`; empty for the root itself.
    #[must_use]
    pub fn relative(&self) -> &Path {
        Path::new(&self.relative)
    }

    /// Whether this is the root itself.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.relative.is_empty()
    }

    /// The entry `name` inside this path, as when walking a listing from [`PathValidator::read_dir`].
    ///
    /// # Errors
    ///
    /// [`PathError::InvalidPath`] if `name` is not a single plain file name (empty, `.`, `..`,
    /// contains `/`, a backslash, NUL or a control character, or is too long).
    pub fn child(&self, name: &str) -> Result<Self, PathError> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(invalid("a child must be a single file name"));
        }
        check_chars(name)?;
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("a file name is longer than 255 bytes"));
        }
        let relative = if self.relative.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.relative)
        };
        if relative.len() > MAX_RELATIVE_LEN {
            return Err(invalid("the path is too long"));
        }
        Ok(Self {
            relative,
            ..self.clone()
        })
    }

    /// The folder containing this path, or `None` for the root itself.
    #[must_use]
    pub fn parent(&self) -> Option<Self> {
        if self.relative.is_empty() {
            return None;
        }
        let relative = self.split_last().0.to_owned();
        Some(Self {
            relative,
            ..self.clone()
        })
    }

    /// `(parent, final name)`; the parent is empty for an entry directly in the root.
    fn split_last(&self) -> (&str, &str) {
        self.relative
            .rsplit_once('/')
            .unwrap_or(("", &self.relative))
    }

    /// The display form of the parent, for errors about it.
    fn display_parent(&self) -> String {
        format!("{}:{}", self.label, or_dot(self.split_last().0))
    }
}

/// Shown as `kind:relative`, for example `workspace:src/main.rs`, or `workspace:.` for the root.
impl fmt::Display for ResolvedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.label, or_dot(&self.relative))
    }
}

fn or_dot(relative: &str) -> &str {
    if relative.is_empty() { "." } else { relative }
}

#[derive(Debug)]
struct Root {
    kind: RootKind,
    label: String,
    /// Where the root really is, symbolic links resolved.
    canonical: PathBuf,
    /// The path as the embedder gave it, if it differs: editors send paths the way the user
    /// opened the folder, which may be through a link.
    alias: Option<PathBuf>,
    /// `O_PATH | O_DIRECTORY`, held for the validator's lifetime: every access starts here.
    fd: OwnedFd,
}

static NEXT_VALIDATOR_ID: AtomicU64 = AtomicU64::new(1);

/// The allowed roots of one extension, and the only way the broker opens files for it.
///
/// `Send + Sync`; every operation takes `&self`, so one validator can serve concurrent requests
/// behind an `Arc`.
#[derive(Debug)]
pub struct PathValidator {
    id: u64,
    roots: Vec<Root>,
    resolver: Resolver,
    hard_linked_reads: bool,
}

impl Default for PathValidator {
    fn default() -> Self {
        Self::new()
    }
}

impl PathValidator {
    /// Whether the absolute path `path` lies under one of the roots.
    #[must_use]
    pub fn contains(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| path.starts_with(&r.canonical))
    }

    /// Where `path` really is: its root's canonical location joined with its relative part.
    /// `None` for a path of another validator.
    #[must_use]
    pub fn absolute(&self, path: &ResolvedPath) -> Option<PathBuf> {
        if path.validator != self.id {
            return None;
        }
        let root = self.roots.get(path.root)?;
        Some(if path.relative.is_empty() {
            root.canonical.clone()
        } else {
            root.canonical.join(&path.relative)
        })
    }

    /// A validator with no roots (which refuses every path), using `openat2` when the kernel has
    /// it.
    #[must_use]
    pub fn new() -> Self {
        let resolver = if openat2_available() {
            Resolver::Openat2
        } else {
            Resolver::Walk
        };
        Self {
            id: NEXT_VALIDATOR_ID.fetch_add(1, Ordering::Relaxed),
            roots: Vec::new(),
            resolver,
            hard_linked_reads: false,
        }
    }

    /// Which resolver this validator uses.
    #[must_use]
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// Uses the portable walk even where `openat2` exists; it refuses every symbolic link. For
    /// tests, and for running the same checks an old kernel would.
    pub fn force_walk_resolver(&mut self) {
        self.resolver = Resolver::Walk;
    }

    /// Lets [`open_read`](Self::open_read) serve regular files that have more than one hard link.
    /// Off by default. Writes to such files are always refused.
    pub fn allow_hard_linked_reads(&mut self, allow: bool) {
        self.hard_linked_reads = allow;
    }

    /// Allows everything below `path`. The folder is resolved (symbolic links followed) and opened
    /// now; later changes to the links that led to it do not move the root.
    ///
    /// # Errors
    ///
    /// [`RootError`] if `path` cannot be resolved or is not a directory.
    pub fn add_root(&mut self, kind: RootKind, path: impl AsRef<Path>) -> Result<(), RootError> {
        let given = path.as_ref();
        let error = |source| RootError {
            path: given.to_owned(),
            source,
        };
        let canonical = std::fs::canonicalize(given).map_err(error)?;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        // The canonical path has no links, so refusing links while opening it guarantees the
        // descriptor is the folder that was just resolved, not one swapped in since.
        let fd = if openat2_available() {
            let how = OpenHow::new()
                .flags(flags)
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
            nix::fcntl::openat2(nix::fcntl::AT_FDCWD, &canonical, how)
        } else {
            nix::fcntl::open(&canonical, flags, Mode::empty())
        }
        .map_err(|errno| error(errno.into()))?;
        // Lexical normalization of a given path is only faithful when it has no `..` (which a
        // symbolic link before it would reinterpret), so such aliases are not kept.
        let alias = (given.is_absolute() && !given.components().any(|c| c == Component::ParentDir))
            .then(|| given.components().collect::<PathBuf>())
            .filter(|alias| *alias != canonical);
        let same_kind = self.roots.iter().filter(|root| root.kind == kind).count();
        let label = if same_kind == 0 {
            kind.label().to_owned()
        } else {
            format!("{kind}#{}", same_kind + 1)
        };
        self.roots.push(Root {
            kind,
            label,
            canonical,
            alias,
            fd,
        });
        Ok(())
    }

    /// Allows a workspace folder; the seed's name for `add_root(RootKind::Workspace, path)`.
    ///
    /// # Errors
    ///
    /// As [`add_root`](Self::add_root).
    pub fn add_workspace_folder(&mut self, path: impl AsRef<Path>) -> Result<(), RootError> {
        self.add_root(RootKind::Workspace, path)
    }

    /// Parses `input` (an absolute path or a `file://` URI) and finds the root it lies under,
    /// without touching the file system.
    ///
    /// `file:///p` and `file://localhost/p` are accepted, the scheme and `localhost` in any case.
    /// The URI path is percent-decoded exactly once, must then be UTF-8, and is treated like a
    /// plain path; a plain path is never decoded (`%20` in it is three characters). When roots
    /// nest, the innermost one wins.
    ///
    /// # Errors
    ///
    /// [`PathError::InvalidPath`] for input that is empty, too long, relative, another scheme, a
    /// malformed URI (query, fragment, bad escape), not UTF-8 after decoding (this includes
    /// overlong encodings such as `%C0%AE`), or contains NUL, a backslash or a control character,
    /// or a name or path that is too long; [`PathError::RemoteHost`] for a URI with a host;
    /// [`PathError::OutsideRoots`] when no root contains the normalized path.
    pub fn resolve(&self, input: &str) -> Result<ResolvedPath, PathError> {
        let absolute = parse(input)?;
        let absolute = Path::new(&absolute);
        let (index, relative) = self
            .roots
            .iter()
            .enumerate()
            .flat_map(|(index, root)| {
                [Some(&root.canonical), root.alias.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(move |base| Some((index, base, absolute.strip_prefix(base).ok()?)))
            })
            .max_by_key(|(_, base, _)| base.components().count())
            .map(|(index, _, relative)| (index, relative))
            .ok_or(PathError::OutsideRoots)?;
        let relative = relative
            .to_str()
            .expect("a suffix of a UTF-8 path")
            .to_owned();
        if relative.len() > MAX_RELATIVE_LEN {
            return Err(invalid("the path is longer than 4095 bytes below its root"));
        }
        let root = &self.roots[index];
        Ok(ResolvedPath {
            validator: self.id,
            root: index,
            kind: root.kind,
            label: root.label.clone(),
            relative,
        })
    }

    /// The seed's check: [`resolve`](Self::resolve), then confirm on disk that the nearest
    /// existing ancestor of the path (the path itself if it exists) is reachable without leaving
    /// the root, so a file about to be created is judged by the folder it would be created in.
    ///
    /// This is advice for early, clear errors; the open methods repeat the check atomically, so
    /// nothing depends on the file system staying as it was here.
    ///
    /// # Errors
    ///
    /// As [`resolve`](Self::resolve), plus [`PathError::SymlinkEscape`], [`PathError::Refused`]
    /// (symbolic link loops; any symbolic link with the walk resolver) and
    /// [`PathError::PermissionDenied`] from the on-disk check.
    pub fn validate_path(&self, input: &str) -> Result<ResolvedPath, PathError> {
        let path = self.resolve(input)?;
        let root = self.root(&path)?;
        let mut prefix = path.relative.as_str();
        let mut flags = OFlag::O_PATH;
        loop {
            match self.open_beneath(root, prefix, flags, Mode::empty()) {
                Ok(_) => return Ok(path),
                Err(Fault::Errno(Errno::ENOENT | Errno::ENOTDIR)) if !prefix.is_empty() => {
                    prefix = prefix.rsplit_once('/').map_or("", |(parent, _)| parent);
                    flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
                }
                Err(fault) => return Err(fault.into_error(&path.to_string())),
            }
        }
    }

    /// Opens a regular file for reading.
    ///
    /// # Errors
    ///
    /// [`PathError::NotFound`], [`PathError::SymlinkEscape`], [`PathError::IsADirectory`],
    /// [`PathError::Refused`] (not a regular file, hard-linked, symbolic link loop),
    /// [`PathError::PermissionDenied`], [`PathError::Io`].
    pub fn open_read(&self, path: &ResolvedPath) -> Result<File, PathError> {
        let root = self.root(path)?;
        let fd = self
            .open_beneath(
                root,
                &path.relative,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
                Mode::empty(),
            )
            .map_err(|fault| fault.into_error(&path.to_string()))?;
        checked_regular_file(fd, path, !self.hard_linked_reads)
    }

    /// Opens a regular file for writing, creating it as `mode` says (with permissions `0o666`
    /// less the umask). A file that is to be emptied is checked before it is truncated.
    ///
    /// # Errors
    ///
    /// As [`open_read`](Self::open_read) (hard-linked files are always refused), plus
    /// [`PathError::AlreadyExists`] for [`WriteMode::CreateNew`] and
    /// [`PathError::NotFound`] when the parent folder, or for `Truncate` and `Existing` the file,
    /// is missing.
    pub fn open_write(&self, path: &ResolvedPath, mode: WriteMode) -> Result<File, PathError> {
        let root = self.root(path)?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | match mode {
                WriteMode::CreateNew => OFlag::O_CREAT | OFlag::O_EXCL,
                WriteMode::CreateOrTruncate => OFlag::O_CREAT,
                WriteMode::Truncate | WriteMode::Existing => OFlag::empty(),
                WriteMode::Append => OFlag::O_CREAT | OFlag::O_APPEND,
            };
        let create_mode = if flags.contains(OFlag::O_CREAT) {
            Mode::from_bits_truncate(0o666)
        } else {
            Mode::empty()
        };
        let fd = self
            .open_beneath(root, &path.relative, flags, create_mode)
            .map_err(|fault| fault.into_error(&path.to_string()))?;
        let file = checked_regular_file(fd, path, true)?;
        if matches!(mode, WriteMode::CreateOrTruncate | WriteMode::Truncate) {
            file.set_len(0).map_err(|source| io_error(path, source))?;
        }
        Ok(file)
    }

    /// Creates one directory; its parent must exist.
    ///
    /// # Errors
    ///
    /// [`PathError::AlreadyExists`] (also for the root itself), [`PathError::NotFound`] for a
    /// missing parent, [`PathError::SymlinkEscape`], [`PathError::PermissionDenied`],
    /// [`PathError::Io`].
    pub fn create_dir(&self, path: &ResolvedPath) -> Result<(), PathError> {
        let root = self.root(path)?;
        if path.is_root() {
            return Err(PathError::AlreadyExists {
                path: path.to_string(),
            });
        }
        let (parent, name) = path.split_last();
        let parent_fd = self.open_dir_path(root, parent, path)?;
        nix::sys::stat::mkdirat(&parent_fd, name, Mode::from_bits_truncate(0o777))
            .map_err(|errno| Fault::Errno(errno).into_error(&path.to_string()))
    }

    /// Creates a directory and any missing parents; succeeds if it already exists.
    ///
    /// # Errors
    ///
    /// [`PathError::NotADirectory`] if a file is in the way, [`PathError::SymlinkEscape`],
    /// [`PathError::PermissionDenied`], [`PathError::Io`].
    pub fn create_dir_all(&self, path: &ResolvedPath) -> Result<(), PathError> {
        let root = self.root(path)?;
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let ends = path.relative.match_indices('/').map(|(at, _)| at);
        for end in ends.chain([path.relative.len()]) {
            let prefix = &path.relative[..end];
            let error = |fault: Fault| fault.into_error(&format!("{}:{prefix}", path.label));
            match self.open_beneath(root, prefix, dir, Mode::empty()) {
                Ok(_) => continue,
                Err(Fault::Errno(Errno::ENOENT)) => {}
                Err(fault) => return Err(error(fault)),
            }
            let (parent, name) = prefix.rsplit_once('/').unwrap_or(("", prefix));
            let parent_fd = self
                .open_beneath(root, parent, dir, Mode::empty())
                .map_err(error)?;
            match nix::sys::stat::mkdirat(&parent_fd, name, Mode::from_bits_truncate(0o777)) {
                // Created concurrently: fine if it is a directory, which the next step checks.
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(error(Fault::Errno(errno))),
            }
            self.open_beneath(root, prefix, dir, Mode::empty())
                .map_err(error)?;
        }
        Ok(())
    }

    /// Lists a directory, without `.` and `..`, in the order the file system returns.
    ///
    /// Entries whose names this validator would refuse (not UTF-8, control characters,
    /// backslashes) are left out, so every listed name can be passed to
    /// [`ResolvedPath::child`].
    ///
    /// # Errors
    ///
    /// [`PathError::NotFound`], [`PathError::NotADirectory`], [`PathError::SymlinkEscape`],
    /// [`PathError::PermissionDenied`], [`PathError::Io`].
    pub fn read_dir(&self, path: &ResolvedPath) -> Result<Vec<DirEntry>, PathError> {
        let root = self.root(path)?;
        let fd = self
            .open_beneath(
                root,
                &path.relative,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .map_err(|fault| fault.into_error(&path.to_string()))?;
        let mut dir = nix::dir::Dir::from_fd(fd).map_err(|errno| io_error(path, errno.into()))?;
        let dir_fd = dir
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| io_error(path, source))?;
        let mut entries = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|errno| io_error(path, errno.into()))?;
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(bytes) else {
                continue;
            };
            if check_chars(name).is_err() {
                continue;
            }
            let kind = match entry.file_type() {
                Some(nix::dir::Type::File) => FileKind::File,
                Some(nix::dir::Type::Directory) => FileKind::Directory,
                Some(nix::dir::Type::Symlink) => FileKind::Symlink,
                Some(_) => FileKind::Other,
                None => nix::sys::stat::fstatat(
                    &dir_fd,
                    entry.file_name(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_or(FileKind::Other, |stat| kind_of(&stat)),
            };
            entries.push(DirEntry {
                name: name.to_owned(),
                kind,
            });
        }
        Ok(entries)
    }

    /// The metadata of the file or directory at `path`, following symbolic links that stay
    /// inside the root.
    ///
    /// # Errors
    ///
    /// [`PathError::NotFound`], [`PathError::SymlinkEscape`], [`PathError::Refused`] (loops; any
    /// symbolic link with the walk resolver), [`PathError::PermissionDenied`], [`PathError::Io`].
    pub fn metadata(&self, path: &ResolvedPath) -> Result<std::fs::Metadata, PathError> {
        let root = self.root(path)?;
        let fd = self
            .open_beneath(root, &path.relative, OFlag::O_PATH, Mode::empty())
            .map_err(|fault| fault.into_error(&path.to_string()))?;
        File::from(fd)
            .metadata()
            .map_err(|source| io_error(path, source))
    }

    /// Removes a file, a symbolic link (not its target) or an empty directory.
    ///
    /// # Errors
    ///
    /// [`PathError::Refused`] for a root or a non-empty directory, [`PathError::NotFound`],
    /// [`PathError::SymlinkEscape`] (for the parent), [`PathError::PermissionDenied`],
    /// [`PathError::Io`].
    pub fn remove(&self, path: &ResolvedPath) -> Result<(), PathError> {
        let root = self.root(path)?;
        if path.is_root() {
            return Err(refused(path, "an allowed root cannot be removed"));
        }
        let (parent, name) = path.split_last();
        let parent_fd = self.open_dir_path(root, parent, path)?;
        unlink_entry(&parent_fd, name).map_err(|errno| match errno {
            Errno::ENOTEMPTY | Errno::EEXIST => {
                refused(path, "the directory is not empty: remove it recursively")
            }
            errno => Fault::Errno(errno).into_error(&path.to_string()),
        })
    }

    /// Removes a file, a symbolic link, or a directory and everything in it. Symbolic links
    /// inside are removed, never followed.
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove), except for non-empty directories; [`PathError::Refused`] for
    /// trees deeper than 256 levels.
    pub fn remove_all(&self, path: &ResolvedPath) -> Result<(), PathError> {
        let root = self.root(path)?;
        if path.is_root() {
            return Err(refused(path, "an allowed root cannot be removed"));
        }
        let (parent, name) = path.split_last();
        let parent_fd = self.open_dir_path(root, parent, path)?;
        remove_tree_entry(parent_fd.as_fd(), OsStr::new(name), 0).map_err(|errno| match errno {
            Errno::EMLINK => refused(path, "the directory tree is too deep to remove"),
            errno => Fault::Errno(errno).into_error(&path.to_string()),
        })
    }

    /// Renames `from` to `to`, possibly across roots on the same file system. With
    /// `overwrite == false` an existing `to` is an error; with `true` it is replaced (a
    /// directory only if empty).
    ///
    /// # Errors
    ///
    /// [`PathError::Refused`] for a root or a move across file systems,
    /// [`PathError::AlreadyExists`], [`PathError::NotFound`], [`PathError::SymlinkEscape`] (for
    /// either parent), [`PathError::PermissionDenied`], [`PathError::Io`].
    pub fn rename(
        &self,
        from: &ResolvedPath,
        to: &ResolvedPath,
        overwrite: bool,
    ) -> Result<(), PathError> {
        let (from_root, to_root) = (self.root(from)?, self.root(to)?);
        if from.is_root() || to.is_root() {
            return Err(refused(
                from,
                "an allowed root cannot be renamed or replaced",
            ));
        }
        let (from_parent, from_name) = from.split_last();
        let (to_parent, to_name) = to.split_last();
        let from_fd = self.open_dir_path(from_root, from_parent, from)?;
        let to_fd = self.open_dir_path(to_root, to_parent, to)?;
        rename_entry(&from_fd, from_name, &to_fd, to_name, overwrite).map_err(|errno| match errno {
            Errno::EXDEV => refused(from, "it cannot be moved to another file system"),
            Errno::EEXIST | Errno::ENOTEMPTY => PathError::AlreadyExists {
                path: to.to_string(),
            },
            errno => Fault::Errno(errno).into_error(&from.to_string()),
        })
    }

    fn root(&self, path: &ResolvedPath) -> Result<BorrowedFd<'_>, PathError> {
        if path.validator != self.id {
            return Err(invalid("the path was resolved by a different validator"));
        }
        Ok(self.roots[path.root].fd.as_fd())
    }

    /// Opens the parent folder of `path` (given as `parent`) for an `*at` call.
    fn open_dir_path(
        &self,
        root: BorrowedFd<'_>,
        parent: &str,
        path: &ResolvedPath,
    ) -> Result<OwnedFd, PathError> {
        self.open_beneath(
            root,
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|fault| fault.into_error(&path.display_parent()))
    }

    /// Opens `relative` (plain names joined by `/`, or empty for the root) beneath `root`.
    fn open_beneath(
        &self,
        root: BorrowedFd<'_>,
        relative: &str,
        flags: OFlag,
        mode: Mode,
    ) -> Result<OwnedFd, Fault> {
        let relative = if relative.is_empty() { "." } else { relative };
        let flags = flags | OFlag::O_CLOEXEC;
        match self.resolver {
            Resolver::Openat2 => openat2_beneath(root, relative, flags, mode),
            Resolver::Walk => walk_beneath(root, relative, flags, mode),
        }
    }
}

/// Turns an opened descriptor into a `File` if it is a regular file that may be served.
fn checked_regular_file(
    fd: OwnedFd,
    path: &ResolvedPath,
    refuse_hard_links: bool,
) -> Result<File, PathError> {
    let stat = nix::sys::stat::fstat(&fd).map_err(|errno| io_error(path, errno.into()))?;
    match kind_of(&stat) {
        FileKind::File => {}
        FileKind::Directory => {
            return Err(PathError::IsADirectory {
                path: path.to_string(),
            });
        }
        FileKind::Symlink | FileKind::Other => {
            return Err(refused(path, "only regular files are opened"));
        }
    }
    if refuse_hard_links && stat.st_nlink > 1 {
        tracing::info!(path = %path, links = stat.st_nlink, "refused a hard-linked file");
        return Err(refused(path, "hard-linked files are not served"));
    }
    // O_NONBLOCK only kept a FIFO from hanging the open; a regular file does not need it.
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|errno| io_error(path, errno.into()))?;
    let flags = OFlag::from_bits_truncate(flags) - OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))
        .map_err(|errno| io_error(path, errno.into()))?;
    Ok(File::from(fd))
}

fn refused(path: &ResolvedPath, reason: &'static str) -> PathError {
    PathError::Refused {
        path: path.to_string(),
        reason,
    }
}

fn io_error(path: &ResolvedPath, source: io::Error) -> PathError {
    PathError::Io {
        path: path.to_string(),
        source,
    }
}

fn kind_of(stat: &FileStat) -> FileKind {
    let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFREG {
        FileKind::File
    } else if kind == SFlag::S_IFDIR {
        FileKind::Directory
    } else if kind == SFlag::S_IFLNK {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

/// Why an open beneath a root failed, before it is given a path for display.
#[derive(Debug)]
enum Fault {
    Errno(Errno),
    /// The walk resolver met a symbolic link.
    Symlink,
}

impl Fault {
    fn into_error(self, path: &str) -> PathError {
        let path = path.to_owned();
        match self {
            Self::Symlink => PathError::Refused {
                path,
                reason: "symbolic links are not followed without openat2 (Linux 5.6 or later): \
                         open the path the link points to instead",
            },
            Self::Errno(Errno::EXDEV) => {
                tracing::info!(path = %path, "refused a symbolic link that leaves its root");
                PathError::SymlinkEscape { path }
            }
            Self::Errno(Errno::ENOENT) => PathError::NotFound { path },
            Self::Errno(Errno::EEXIST) => PathError::AlreadyExists { path },
            Self::Errno(Errno::EISDIR) => PathError::IsADirectory { path },
            Self::Errno(Errno::ENOTDIR) => PathError::NotADirectory { path },
            Self::Errno(Errno::ELOOP) => PathError::Refused {
                path,
                reason: "too many levels of symbolic links, or a link into /proc",
            },
            // A FIFO without a reader, or a socket, opened non-blocking.
            Self::Errno(Errno::ENXIO) => PathError::Refused {
                path,
                reason: "only regular files are opened",
            },
            Self::Errno(Errno::ENAMETOOLONG) => PathError::Refused {
                path,
                reason: "a symbolic link makes the path too long",
            },
            Self::Errno(Errno::EACCES | Errno::EPERM | Errno::EROFS) => {
                PathError::PermissionDenied { path }
            }
            Self::Errno(errno) => PathError::Io {
                path,
                source: errno.into(),
            },
        }
    }
}

/// Whether the running kernel has `openat2` and it is not blocked (some container seccomp
/// profiles answer `EPERM` or `ENOSYS` for system calls they do not know).
fn openat2_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH);
        !matches!(
            nix::fcntl::openat2(nix::fcntl::AT_FDCWD, ".", how),
            Err(Errno::ENOSYS | Errno::EPERM)
        )
    })
}

fn openat2_beneath(
    root: BorrowedFd<'_>,
    relative: &str,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Fault> {
    let how = OpenHow::new()
        .flags(flags)
        .mode(mode)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempts = 0;
    loop {
        match nix::fcntl::openat2(root, relative, how) {
            // The kernel saw a rename race while checking a `..` from a link target and could
            // not prove it stayed beneath; asking again is what openat2(2) recommends.
            Err(Errno::EAGAIN) if attempts < EAGAIN_RETRIES => attempts += 1,
            result => return result.map_err(Fault::Errno),
        }
    }
}

/// The fallback: every component but the last is opened with `O_NOFOLLOW` from the descriptor
/// of the one before, starting at the root, so nothing can redirect the walk and no symbolic link
/// is ever followed. `relative` holds only plain names (no `.`, `..` or empty components) except
/// for a lone `.` meaning the root.
fn walk_beneath(
    root: BorrowedFd<'_>,
    relative: &str,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Fault> {
    let (parents, last) = relative.rsplit_once('/').unwrap_or(("", relative));
    let mut current: Option<OwnedFd> = None;
    for name in parents.split('/').filter(|name| !name.is_empty()) {
        let dir = current.as_ref().map_or(root, AsFd::as_fd);
        // O_PATH | O_NOFOLLOW opens a link itself rather than failing, so the type is read from
        // the very inode that was opened: no second lookup that a swap could answer differently.
        let next = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(Fault::Errno)?;
        match fd_kind(&next)? {
            FileKind::Directory => current = Some(next),
            FileKind::Symlink => return Err(Fault::Symlink),
            FileKind::File | FileKind::Other => return Err(Fault::Errno(Errno::ENOTDIR)),
        }
    }
    let dir = current.as_ref().map_or(root, AsFd::as_fd);
    let fd = nix::fcntl::openat(dir, last, flags | OFlag::O_NOFOLLOW, mode).map_err(|errno| {
        match errno {
            // `last` is a single name opened with O_NOFOLLOW: ELOOP can only mean it is a link.
            Errno::ELOOP => Fault::Symlink,
            // O_DIRECTORY on a link; telling it apart needs a second lookup, which only affects
            // which refusal is reported.
            Errno::ENOTDIR
                if nix::sys::stat::fstatat(dir, last, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .is_ok_and(|stat| kind_of(&stat) == FileKind::Symlink) =>
            {
                Fault::Symlink
            }
            errno => Fault::Errno(errno),
        }
    })?;
    if flags.contains(OFlag::O_PATH) && fd_kind(&fd)? == FileKind::Symlink {
        return Err(Fault::Symlink);
    }
    Ok(fd)
}

fn fd_kind(fd: &OwnedFd) -> Result<FileKind, Fault> {
    nix::sys::stat::fstat(fd)
        .map(|stat| kind_of(&stat))
        .map_err(Fault::Errno)
}

fn unlink_entry(parent: &OwnedFd, name: &str) -> Result<(), Errno> {
    use nix::unistd::{UnlinkatFlags, unlinkat};
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => unlinkat(parent, name, UnlinkatFlags::RemoveDir),
        result => result,
    }
}

/// Removes `name` in `parent`; a directory is emptied first, descending through descriptors
/// opened with `O_NOFOLLOW`, so a link swapped in for a directory fails instead of being
/// followed. `EMLINK` stands for "too deep".
fn remove_tree_entry(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> Result<(), Errno> {
    use nix::unistd::{UnlinkatFlags, unlinkat};
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        result => return result,
    }
    if depth >= MAX_REMOVE_DEPTH {
        return Err(Errno::EMLINK);
    }
    let fd = nix::fcntl::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    // Collected first: removing while iterating may skip entries.
    let mut names: Vec<CString> = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let bytes = entry.file_name().to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(entry.file_name().to_owned());
        }
    }
    for child in names {
        remove_tree_entry(dir.as_fd(), OsStr::from_bytes(child.as_bytes()), depth + 1)?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

#[cfg(target_env = "gnu")]
fn rename_entry(
    from: &OwnedFd,
    from_name: &str,
    to: &OwnedFd,
    to_name: &str,
    overwrite: bool,
) -> Result<(), Errno> {
    use nix::fcntl::RenameFlags;
    let flags = if overwrite {
        RenameFlags::empty()
    } else {
        RenameFlags::RENAME_NOREPLACE
    };
    nix::fcntl::renameat2(from, from_name, to, to_name, flags)
}

#[cfg(not(target_env = "gnu"))]
fn rename_entry(
    from: &OwnedFd,
    from_name: &str,
    to: &OwnedFd,
    to_name: &str,
    overwrite: bool,
) -> Result<(), Errno> {
    // Without renameat2 the no-replace check races with a concurrent create; both names are
    // inside roots, so losing the race replaces an in-root entry, nothing more.
    if !overwrite
        && nix::sys::stat::fstatat(to, to_name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    nix::fcntl::renameat(from, from_name, to, to_name)
}

/// Decodes and normalizes `input` into an absolute path made only of plain names, such as
/// `/home/u/ws/src/main.rs`. Pure.
fn parse(input: &str) -> Result<String, PathError> {
    if input.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if input.len() > MAX_INPUT_LEN {
        return Err(invalid("the path is too long"));
    }
    let decoded: Cow<'_, str> = if input
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
    {
        Cow::Owned(decode_file_uri(&input[5..])?)
    } else if input.starts_with('/') {
        Cow::Borrowed(input)
    } else if has_scheme(input) {
        return Err(invalid("only absolute paths and file:// URIs are accepted"));
    } else {
        return Err(invalid(
            "relative paths are not accepted: send an absolute path or a file:// URI",
        ));
    };
    check_chars(&decoded)?;
    normalize(&decoded)
}

/// Whether `input` starts like a URI (`scheme:`), for a clearer refusal than "relative path".
fn has_scheme(input: &str) -> bool {
    input.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// `rest` is what follows `file:`.
fn decode_file_uri(rest: &str) -> Result<String, PathError> {
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(invalid("a file URI must start with file://"));
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    if !authority.is_empty() && !authority.eq_ignore_ascii_case("localhost") {
        return Err(PathError::RemoteHost);
    }
    if path.is_empty() {
        return Err(invalid("the file URI has no path"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid(
            "a file URI may not have a query or fragment: encode '?' as %3F and '#' as %23",
        ));
    }
    percent_decode(path)
}

/// Decodes `%XX` escapes once; the result must be UTF-8, which refuses overlong encodings
/// (`%C0%AE`), surrogates and stray bytes.
fn percent_decode(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes
                .get(at + 1..at + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| invalid("a '%' in a file URI must be followed by two hex digits"))?;
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("the decoded path is not valid UTF-8"))
}

fn check_chars(path: &str) -> Result<(), PathError> {
    for c in path.chars() {
        match c {
            '\0' => return Err(invalid("the path contains a NUL character")),
            '\\' => {
                return Err(invalid(
                    "backslashes are not accepted: use '/' as the separator",
                ));
            }
            c if c.is_control() => return Err(invalid("the path contains a control character")),
            _ => {}
        }
    }
    Ok(())
}

/// Resolves `.`, `..` and repeated slashes lexically in an absolute path; `..` at `/` stays at
/// `/`, as the kernel does.
fn normalize(absolute: &str) -> Result<String, PathError> {
    let mut names: Vec<&str> = Vec::new();
    for name in absolute.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                names.pop();
            }
            name if name.len() > MAX_NAME_LEN => {
                return Err(invalid("a file name is longer than 255 bytes"));
            }
            name => names.push(name),
        }
    }
    let mut out = String::with_capacity(absolute.len());
    for name in &names {
        out.push('/');
        out.push_str(name);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok: &[(&str, &str)] = &[
            ("/ws/a.txt", "/ws/a.txt"),
            ("/ws//a/./b/../c", "/ws/a/c"),
            ("/ws/a/", "/ws/a"),
            ("/../../ws/a", "/ws/a"),
            ("/", "/"),
            ("/ws/a%20b", "/ws/a%20b"),
            ("/ws/日本語", "/ws/日本語"),
            ("file:///ws/a", "/ws/a"),
            ("FILE:///ws/a", "/ws/a"),
            ("File://LocalHost/ws/a", "/ws/a"),
            ("file://localhost/ws/a%20b", "/ws/a b"),
            ("file:///ws/%E6%97%A5", "/ws/日"),
            ("file:///ws/%2e%2E/x", "/x"),
            ("file:///ws/a%2Fb", "/ws/a/b"),
            ("file:///ws/%252e%252e", "/ws/%2e%2e"),
            ("file:///ws/100%25", "/ws/100%"),
            ("file:///ws/a%23b%3F", "/ws/a#b?"),
            ("file:///ws/with space", "/ws/with space"),
        ];
        for (input, expected) in ok {
            assert_eq!(parse(input).unwrap(), *expected, "{input}");
        }
    }

    #[test]
    fn parse_refusals() {
        let invalid_inputs = [
            "",
            "a.txt",
            "./a",
            "../a",
            "~/a",
            "C:\\x",
            "http://example.com/x",
            "vscode-remote://ssh/x",
            "file:/ws/a",
            "file:ws/a",
            "file://",
            "file:///ws/a?x",
            "file:///ws/a#x",
            "file:///ws/%",
            "file:///ws/%2",
            "file:///ws/%zz",
            "file:///ws/%C0%AE",
            "file:///ws/%E0%80%AE",
            "file:///ws/%ED%A0%80",
            "file:///ws/%FF",
            "file:///ws/%00",
            "file:///ws/%5C",
            "file:///ws/%0A",
            "/ws/a\0b",
            "/ws/a\\b",
            "/ws/a\nb",
            "/ws/a\u{85}b",
        ];
        for input in invalid_inputs {
            assert!(
                matches!(parse(input), Err(PathError::InvalidPath { .. })),
                "{input:?}: {:?}",
                parse(input)
            );
        }
        for input in [
            "file://host/ws/a",
            "file://user@localhost/ws",
            "file://localhost:80/ws",
            "file://%6Cocalhost/ws",
            "file://host",
        ] {
            assert!(
                matches!(parse(input), Err(PathError::RemoteHost)),
                "{input}"
            );
        }
    }

    #[test]
    fn lengths_are_bounded() {
        let long_name = format!("/ws/{}", "x".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(
            parse(&long_name),
            Err(PathError::InvalidPath { .. })
        ));
        let longest_name = format!("/ws/{}", "x".repeat(MAX_NAME_LEN));
        assert!(parse(&longest_name).is_ok());
        let huge = format!("/ws/{}", "a/".repeat(MAX_INPUT_LEN));
        assert!(matches!(parse(&huge), Err(PathError::InvalidPath { .. })));
    }

    #[test]
    fn scheme_detection() {
        assert!(has_scheme("http://x"));
        assert!(has_scheme("untitled:Untitled-1"));
        assert!(has_scheme("C:\\x"));
        assert!(!has_scheme("./a:b"));
        assert!(!has_scheme("1abc:x"));
    }

    #[test]
    fn children_are_single_names() {
        let path = ResolvedPath {
            validator: 0,
            root: 0,
            kind: RootKind::Workspace,
            label: "workspace".into(),
            relative: String::new(),
        };
        assert_eq!(path.to_string(), "workspace:.");
        let child = path.child("src").unwrap().child("main.rs").unwrap();
        assert_eq!(child.to_string(), "workspace:src/main.rs");
        assert_eq!(child.parent().unwrap().to_string(), "workspace:src");
        assert_eq!(child.parent().unwrap().parent().unwrap(), path);
        for bad in ["", ".", "..", "a/b", "a\\b", "a\0b"] {
            assert!(path.child(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(PathError::OutsideRoots.code(), ErrorCode::InvalidPath);
        assert_eq!(
            PathError::NotFound {
                path: String::new()
            }
            .code(),
            ErrorCode::NotFound
        );
        assert_eq!(
            PathError::PermissionDenied {
                path: String::new()
            }
            .code(),
            ErrorCode::PermissionDenied
        );
        assert!(!PathError::OutsideRoots.to_string().contains('/'));
    }
}
