//! The host's minimal root, built by the stage in its own mount namespace.
//!
//! Every entry of the [`View`](super::view::View) becomes a bind mount at its own path in an
//! empty tmpfs: read-only unless the host may change something there, `noexec` unless it may
//! execute there, always `nosuid` and `nodev`. A fresh `/proc` (with `/proc/sys` read-only), a
//! `/dev` with five device files, and a private size-capped `/tmp` complete it; the tmpfs is then
//! made read-only and becomes `/` with `pivot_root`, and the supervisor's tree is detached.
//! Nothing outside the view exists for the host: it cannot open, `stat`, watch or change the
//! metadata of a path it was not given, and what it may only read is read-only even to its
//! owner.
//!
//! Each bind is a detached clone of the source (`open_tree`), given its flags before it is
//! attached (`mount_setattr`, `move_mount`), so no entry is ever visible with weaker flags. The
//! stage finds a source either as a tree the supervisor cloned (a root supervisor, whose host
//! runs as an unprivileged user that could not reach the path), or by opening the path itself
//! without following symbolic links and checking it is the file the supervisor examined.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::view::EntryKind;
use crate::process::sys::{self, mount_attr};

/// Where the new root is assembled before `pivot_root`: a directory every stage sees, inside its
/// own mount namespace only.
const ASSEMBLY: &str = "/tmp";

/// One bind of the minimal root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// The path, the same inside and outside.
    pub path: PathBuf,
    /// Folder, file or symbolic link.
    pub kind: EntryKind,
    /// Read-write (else read-only).
    pub writable: bool,
    /// Executable (else `noexec`).
    pub exec: bool,
    /// Index of a detached tree among the fds the supervisor sent, if it made one.
    #[serde(default)]
    pub tree: Option<usize>,
    /// `(st_dev, st_ino)` of the path when the supervisor examined it.
    #[serde(default)]
    pub identity: Option<(u64, u64)>,
}

/// The minimal root for one host.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootPlan {
    /// Where the stage finds source paths it opens itself: `/` in a copy of the supervisor's
    /// mount namespace, or where bubblewrap bound the host's root.
    pub source: PathBuf,
    /// The binds, parents before children.
    pub binds: Vec<Bind>,
    /// Size of the private `/tmp` in bytes.
    pub tmp_bytes: u64,
    /// Where the private `/tmp` goes: `/tmp`, unless a bind lies beneath it (a workspace under
    /// `/tmp`), which must not sit inside the host's own writable scratch space.
    #[serde(default = "default_tmp")]
    pub tmp: PathBuf,
    /// Mount a fresh `/proc` (the stage must be in a PID namespace of its own).
    pub proc: bool,
}

fn default_tmp() -> PathBuf {
    PathBuf::from("/tmp")
}

/// Where the private `/tmp` goes for binds at `paths`: the first of `/tmp`, `/var/tmp`,
/// `/run/dscode-tmp` that none of them lies beneath. (Landlock gives a path the rights of every
/// rule above it, so a bind inside the scratch space would get its create and delete rights.)
#[must_use]
pub fn scratch_for(paths: &[&Path]) -> PathBuf {
    ["/tmp", "/var/tmp", "/run/dscode-tmp"]
        .into_iter()
        .map(PathBuf::from)
        .find(|tmp| !paths.iter().any(|p| p.starts_with(tmp)))
        .unwrap_or_else(|| PathBuf::from("/dscode-tmp"))
}

/// The device files a host may use, and whether it may write them.
pub const DEVICES: &[(&str, bool)] = &[
    ("/dev/null", true),
    ("/dev/zero", true),
    ("/dev/full", true),
    ("/dev/random", false),
    ("/dev/urandom", false),
];

/// What [`build`] achieved.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// Whether `/proc` is the host's own.
    pub proc: bool,
    /// Entries that could not be bound (gone since the supervisor looked, or replaced).
    pub skipped: Vec<String>,
}

fn fail(what: &str, path: &Path, err: &std::io::Error) -> String {
    format!("{what} {}: {err}", path.display())
}

/// The attributes of a bind: always `nosuid` and `nodev`.
fn attributes(writable: bool, exec: bool) -> u64 {
    let mut set = mount_attr::NOSUID | mount_attr::NODEV;
    if !writable {
        set |= mount_attr::RDONLY;
    }
    if !exec {
        set |= mount_attr::NOEXEC;
    }
    set
}

/// Opens `path` under `source` as the stage itself sees it, refusing symbolic links on the way
/// and anything but the file the supervisor examined.
fn open_source(source: &Path, bind: &Bind) -> Result<OwnedFd, String> {
    let relative = bind.path.strip_prefix("/").unwrap_or(&bind.path);
    let base = sys::open_path_no_symlinks(None, source)
        .map_err(|e| fail("cannot open the source root", source, &e))?;
    let fd = sys::open_path_no_symlinks(Some(base.as_fd()), relative)
        .map_err(|e| fail("cannot open", &bind.path, &e))?;
    if let Some((dev, ino)) = bind.identity {
        let meta = std::fs::File::from(
            fd.try_clone()
                .map_err(|e| fail("cannot examine", &bind.path, &e))?,
        )
        .metadata()
        .map_err(|e| fail("cannot examine", &bind.path, &e))?;
        if (meta.dev(), meta.ino()) != (dev, ino) {
            return Err(format!(
                "{} was replaced after the supervisor examined it",
                bind.path.display()
            ));
        }
    }
    Ok(fd)
}

/// A detached, flagged tree for `bind`.
fn tree_for(source: &Path, bind: &Bind, sent: &mut [Option<OwnedFd>]) -> Result<OwnedFd, String> {
    let tree = if let Some(i) = bind.tree {
        sent.get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| format!("no tree was sent for {}", bind.path.display()))?
    } else {
        let fd = open_source(source, bind)?;
        sys::clone_tree(fd.as_fd()).map_err(|e| fail("cannot clone", &bind.path, &e))?
    };
    // Setting flags only ever narrows: those the supervisor set on a tree it sent stay set.
    sys::set_mount_attributes(tree.as_fd(), attributes(bind.writable, bind.exec), 0, None)
        .map_err(|e| fail("cannot set the flags of", &bind.path, &e))?;
    Ok(tree)
}

fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Creates `path` (and its parents) inside the assembly as a mount point of `kind`, unless a
/// bind above it already shows it.
fn mount_point(path: &Path, kind: &EntryKind) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match kind {
        EntryKind::Dir => match std::fs::create_dir(path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        },
        EntryKind::File => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop),
        EntryKind::Symlink(target) => std::os::unix::fs::symlink(target, path),
    }
}

fn mount_tmpfs(target: &Path, options: &str, noexec: bool) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if noexec {
        flags |= MsFlags::MS_NOEXEC;
    }
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options))
        .map_err(|e| format!("cannot mount a tmpfs on {}: {e}", target.display()))
}

/// Builds the minimal root and makes it `/`. `sent` are the trees the supervisor sent, by
/// index. The working directory is `/` afterwards.
///
/// # Errors
/// A message naming the step that failed; the host must not start then (the caller reports the
/// filesystem layer as not enforced and refuses).
pub fn build(plan: &RootPlan, mut sent: Vec<Option<OwnedFd>>) -> Result<Built, String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make mounts private: {e}"))?;
    let mut built = Built::default();
    // Every source is opened before the assembly covers anything, since a source may lie
    // beneath it (a workspace under /tmp).
    let mut trees: Vec<(&Bind, OwnedFd)> = Vec::new();
    for bind in &plan.binds {
        if matches!(bind.kind, EntryKind::Symlink(_)) {
            continue;
        }
        match tree_for(&plan.source, bind, &mut sent) {
            Ok(tree) => trees.push((bind, tree)),
            Err(err) => built.skipped.push(err),
        }
    }
    let mut devices = Vec::new();
    for (device, writable) in DEVICES {
        let bind = Bind {
            path: PathBuf::from(device),
            kind: EntryKind::File,
            writable: *writable,
            exec: false,
            tree: None,
            identity: None,
        };
        let fd = open_source(&plan.source, &bind)?;
        let tree = sys::clone_tree(fd.as_fd()).map_err(|e| fail("cannot clone", &bind.path, &e))?;
        sys::set_mount_attributes(
            tree.as_fd(),
            mount_attr::NOSUID
                | mount_attr::NOEXEC
                | if *writable { 0 } else { mount_attr::RDONLY },
            0,
            None,
        )
        .map_err(|e| fail("cannot set the flags of", &bind.path, &e))?;
        devices.push((bind, tree));
    }

    let root = Path::new(ASSEMBLY);
    mount_tmpfs(root, "mode=0755,size=4m,nr_inodes=65536", false)?;
    match assemble(plan, root, trees, &devices, &mut built) {
        Ok(()) => Ok(built),
        Err(err) => {
            // Leave nothing half-built over the supervisor's tree: without the assembly the
            // stage's namespace is the copy it started with, and Landlock alone still applies.
            let _ = umount2(root, MntFlags::MNT_DETACH);
            Err(err)
        }
    }
}

/// Everything after the assembly's tmpfs is mounted, up to `pivot_root`.
fn assemble(
    plan: &RootPlan,
    root: &Path,
    mut trees: Vec<(&Bind, OwnedFd)>,
    devices: &[(Bind, OwnedFd)],
    built: &mut Built,
) -> Result<(), String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let dev = root.join("dev");
    let tmp = under(root, &plan.tmp);
    let proc = root.join("proc");
    for dir in [&dev, &tmp, &proc] {
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create", dir, &e))?;
    }
    mount_tmpfs(&dev, "mode=0755,size=64k,nr_inodes=64", true)?;
    for (bind, tree) in devices {
        let target = under(root, &bind.path);
        mount_point(&target, &bind.kind).map_err(|e| fail("cannot create", &target, &e))?;
        sys::move_mount(tree.as_fd(), &target).map_err(|e| fail("cannot bind", &target, &e))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev.join(name);
        std::os::unix::fs::symlink(target, &link).map_err(|e| fail("cannot create", &link, &e))?;
    }
    mount_tmpfs(
        &tmp,
        &format!("mode=1777,size={},nr_inodes=65536", plan.tmp_bytes),
        true,
    )?;
    if plan.proc {
        built.proc = mount(
            Some("proc"),
            &proc,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .is_ok();
        if built.proc {
            // Sysctls are read-only to the host.
            let sys_dir = proc.join("sys");
            let fd = sys::open_path_no_symlinks(None, &sys_dir)
                .and_then(|fd| sys::clone_tree(fd.as_fd()))
                .map_err(|e| fail("cannot clone", &sys_dir, &e))?;
            sys::set_mount_attributes(
                fd.as_fd(),
                mount_attr::RDONLY | mount_attr::NOSUID | mount_attr::NODEV | mount_attr::NOEXEC,
                0,
                None,
            )
            .and_then(|()| sys::move_mount(fd.as_fd(), &sys_dir))
            .map_err(|e| fail("cannot make read-only", &sys_dir, &e))?;
        }
    }
    let reserved = [Path::new("/dev"), Path::new("/proc"), plan.tmp.as_path()];
    for bind in &plan.binds {
        if reserved.iter().any(|r| bind.path == *r) {
            continue;
        }
        let target = under(root, &bind.path);
        if matches!(bind.kind, EntryKind::Symlink(_)) {
            if let Err(err) = mount_point(&target, &bind.kind) {
                built.skipped.push(fail("cannot create", &target, &err));
            }
            continue;
        }
        let Some(index) = trees.iter().position(|(b, _)| std::ptr::eq(*b, bind)) else {
            continue;
        };
        let (_, tree) = trees.swap_remove(index);
        mount_point(&target, &bind.kind).map_err(|e| fail("cannot create", &target, &e))?;
        sys::move_mount(tree.as_fd(), &target).map_err(|e| fail("cannot bind", &target, &e))?;
    }
    // The skeleton itself is read-only: the host can create nothing between its entries.
    mount(
        None::<&str>,
        root,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the new root read-only: {e}"))?;
    std::env::set_current_dir(root).map_err(|e| fail("cannot enter", root, &e))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root failed: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| format!("cannot detach the supervisor's root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("cannot enter the new root: {e}"))?;
    Ok(())
}
