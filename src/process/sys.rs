//! The system calls behind host containment; the only place in the crate with `unsafe`.
//!
//! Everything in `contain_in_child` runs in the child between `fork` and `exec`, where the parent
//! may have held locks in other threads, so it only makes async-signal-safe system calls and never
//! allocates: every buffer it needs is prepared before the fork.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// What the child should set up before it becomes the host.
#[derive(Debug, Clone)]
pub struct ContainPlan {
    /// The supervisor's pid, to detect that it died before the death signal was armed.
    pub parent_pid: libc::pid_t,
    /// The host's end of the IPC socketpair and the fd number the host expects it at.
    pub ipc: Option<(RawFd, RawFd)>,
    /// The sandbox stage's end of its setup channel and the fd number it expects it at.
    pub stage: Option<(RawFd, RawFd)>,
    /// The stage executable, opened by the supervisor, and the fd number it is executed from
    /// (`/proc/self/fd/N`), so a root supervisor's unprivileged child needs no access to the
    /// folders above it.
    pub stage_exe: Option<(RawFd, RawFd)>,
    /// Put the host in a fresh PID namespace so that nothing it starts can outlive it.
    pub pid_namespace: bool,
    /// More namespaces (`CLONE_NEWNS`, `CLONE_NEWNET`, ...) to create with the PID namespace.
    /// Best effort: if the kernel refuses them, the PID namespace alone is tried.
    pub extra_namespaces: libc::c_int,
    /// Also create a user namespace (needed without `CAP_SYS_ADMIN`), with these map contents.
    pub user_namespace: Option<IdMaps>,
    /// `cgroup.procs` files (nul-terminated paths) the child moves itself into before anything
    /// else, so the shim, the host and everything they start are accounted there.
    pub cgroups: Vec<std::ffi::CString>,
    /// Carry `CAP_SYS_ADMIN` and `CAP_SETPCAP` of the new user namespace across `exec` (as
    /// ambient capabilities), for a sandbox stage that mounts its private `/tmp` and then drops
    /// every capability. Without this a non-root user's `exec` clears them.
    pub keep_caps_for_stage: bool,
    /// Become this user and group (a root supervisor's host never runs as root), after joining
    /// the cgroups and before creating the namespaces, which the new user then owns.
    pub drop_to: Option<(libc::uid_t, libc::gid_t)>,
}

/// Pre-rendered `/proc/self/{uid,gid}_map` lines mapping the caller's ids onto themselves.
#[derive(Debug, Clone)]
pub struct IdMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl IdMaps {
    /// Identity maps for the current user, so ids look the same inside as outside.
    #[must_use]
    pub fn identity() -> Self {
        // SAFETY: getuid and getgid cannot fail and have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Self {
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }
}

/// Whether the effective user is root.
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Writes a whole buffer to a `/proc` or cgroup file (nul-terminated path).
fn write_proc(path: &[u8], data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is nul-terminated (asserted by callers' literals); the fd is closed below.
    let fd = check(unsafe { libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    // SAFETY: `data` is a valid buffer of `data.len()` bytes.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    // SAFETY: `fd` was opened above and is not used afterwards.
    unsafe { libc::close(fd) };
    if written == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn unshare_namespaces(plan: &ContainPlan) -> io::Result<()> {
    let base = if plan.user_namespace.is_some() {
        libc::CLONE_NEWUSER | libc::CLONE_NEWPID
    } else {
        libc::CLONE_NEWPID
    };
    // SAFETY: unshare has no memory-safety preconditions.
    if plan.extra_namespaces == 0
        || check(unsafe { libc::unshare(base | plan.extra_namespaces) }).is_err()
    {
        // SAFETY: as above.
        check(unsafe { libc::unshare(base) })?;
    }
    let Some(maps) = &plan.user_namespace else {
        return Ok(());
    };
    // A sandbox stage writes the maps itself after its exec (see `StagePlan::id_maps`). This
    // process holds a copy of the supervisor's memory and file descriptors, so it must never be
    // made dumpable to write them; when the supervisor is non-dumpable (as `run` makes it) the
    // write fails and the namespace works without maps, its ids read as the overflow id.
    if !plan.keep_caps_for_stage {
        let _ = write_proc(b"/proc/self/setgroups\0", b"deny")
            .and_then(|()| write_proc(b"/proc/self/uid_map\0", &maps.uid_map))
            .and_then(|()| write_proc(b"/proc/self/gid_map\0", &maps.gid_map));
    }
    Ok(())
}

/// Where sources are moved before fds are placed: above every fd number a host is given.
const FIRST_SPARE_FD: RawFd = 16;

/// Signals the shim ignores so that only the host sees them: the supervisor signals the whole
/// process group, and the shim must outlive the host to report how it ended.
const SHIM_BLOCKED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// Makes `command`'s child carry out `plan` between `fork` and `exec` (see [`contain_in_child`]).
pub(crate) fn contain_before_exec(command: &mut tokio::process::Command, plan: ContainPlan) {
    // SAFETY: `contain_in_child` is written for the pre-exec context (no allocation, only
    // async-signal-safe calls) and `plan` is fully built before the fork.
    unsafe {
        command.pre_exec(move || contain_in_child(&plan));
    }
}

/// Runs in the forked child before `exec`. Returns in the process that goes on to `exec` the host.
///
/// With a PID namespace this forks once more: the child returned to the caller is PID 1 of the new
/// namespace, and this process stays behind as a shim that waits for it and exits the same way.
/// Both carry `PR_SET_PDEATHSIG = SIGKILL` tied to their parent, so the supervisor dying kills the
/// shim, the shim dying kills PID 1, and PID 1 dying makes the kernel kill everything else in the
/// namespace, grandchildren that called `setsid` included.
///
/// # Errors
/// When a system call fails; the spawn then fails with that error. A namespace the kernel refuses
/// is not an error: the host then runs without one, and the caller detects that afterwards.
///
/// # Safety
/// Only call between `fork` and `exec` (from `CommandExt::pre_exec`).
unsafe fn contain_in_child(plan: &ContainPlan) -> io::Result<()> {
    arm_death_signal(plan.parent_pid)?;
    for procs in &plan.cgroups {
        write_proc(procs.as_bytes_with_nul(), b"0")?;
    }
    // Each source first moves above every target, so placing one fd never closes the source
    // of another (a source may sit at a number another fd is placed at).
    let placements = [plan.ipc, plan.stage, plan.stage_exe];
    let mut last = 2;
    let mut moved = [None; 3];
    for (slot, placement) in moved.iter_mut().zip(placements) {
        if let Some((from, to)) = placement {
            // SAFETY: F_DUPFD_CLOEXEC duplicates an fd we own onto the lowest free number above
            // the minimum; the copy closes at exec unless placed below.
            let high = check(unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, FIRST_SPARE_FD) })?;
            *slot = Some((high, to));
            last = last.max(to);
        }
    }
    for (from, to) in moved.into_iter().flatten() {
        place_fd(from, to)?;
    }
    // Whatever the embedding process left open without close-on-exec (a C library's log file, a
    // socket) must not reach the host: everything above the fds placed here closes at exec.
    cloexec_from(last + 1);
    if let Some((uid, gid)) = plan.drop_to {
        drop_to_ids(uid, gid)?;
        // A change of credentials clears the parent-death signal: arm it again.
        arm_death_signal(plan.parent_pid)?;
    }
    if !plan.pid_namespace || unshare_namespaces(plan).is_err() {
        return Ok(());
    }
    let mut liveness = [0 as RawFd; 2];
    // SAFETY: `liveness` has room for the two fds pipe2 writes.
    check(unsafe { libc::pipe2(liveness.as_mut_ptr(), libc::O_CLOEXEC) })?;
    let [live_read, live_write] = liveness;
    let (old_mask, ()) = block_signals(&SHIM_BLOCKED)?;
    // SAFETY: the process is single-threaded after the outer fork, so a second fork is sound.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // PID 1 of the new namespace, about to become the host. Its parent is the shim, which is
        // outside the namespace, so getppid() reads 0 and cannot tell whether the shim is alive;
        // the pipe can: once the shim is gone, its write end is closed and the read end hangs up.
        // SAFETY: plain syscalls on fds this process owns.
        unsafe {
            check(libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            libc::close(live_write);
            let mut poll = libc::pollfd {
                fd: live_read,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&raw mut poll, 1, 0) == 1 && poll.revents & libc::POLLHUP != 0 {
                libc::_exit(137);
            }
            libc::close(live_read);
            if plan.keep_caps_for_stage && plan.user_namespace.is_some() {
                // Best effort: without them the stage reports /tmp as not private.
                let _ = raise_ambient(&[CAP_SYS_ADMIN, CAP_SETPCAP]);
            }
            check(libc::sigprocmask(
                libc::SIG_SETMASK,
                &raw const old_mask,
                std::ptr::null_mut(),
            ))?;
        }
        return Ok(());
    }
    // SAFETY: never returns; only async-signal-safe calls.
    unsafe { run_shim(pid, live_write, live_read) }
}

fn arm_death_signal(parent_pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and no pointers.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    // The supervisor may have died between fork and prctl; then no signal would ever come. The
    // error is an errno, since making any other kind of error here would allocate.
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != parent_pid {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Moves `from` to `to` without the close-on-exec flag, so the host inherits it.
fn place_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    if from == to {
        // SAFETY: fcntl on an fd we own.
        check(unsafe { libc::fcntl(to, libc::F_SETFD, 0) })?;
    } else {
        // SAFETY: dup2 onto a target number; the new fd does not inherit O_CLOEXEC.
        check(unsafe { libc::dup2(from, to) })?;
    }
    Ok(())
}

fn block_signals(signals: &[libc::c_int]) -> io::Result<(libc::sigset_t, ())> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for &signal in signals {
            libc::sigaddset(&raw mut set, signal);
        }
        check(libc::sigprocmask(
            libc::SIG_BLOCK,
            &raw const set,
            &raw mut old,
        ))?;
        Ok((old, ()))
    }
}

/// Sets close-on-exec on every fd from `first` up.
fn cloexec_from(first: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let Ok(first_u) = libc::c_uint::try_from(first) else {
        return;
    };
    // SAFETY: close_range and fcntl take plain integers; the fallback touches only our own fds.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            first_u,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            for fd in first..4096 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
    }
}

/// Closes every fd except those in `keep` (sorted in place). Only plain syscalls on stack data:
/// safe between fork and exec.
fn close_all_except(keep: &mut [RawFd]) {
    keep.sort_unstable();
    let mut from: libc::c_uint = 0;
    for &fd in keep.iter() {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd > from {
            // SAFETY: close_range takes plain integers.
            unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

/// Closes every fd except `keep`.
fn close_all_but(keep: RawFd) {
    let Ok(keep_u) = libc::c_uint::try_from(keep) else {
        return;
    };
    // SAFETY: close_range takes plain integers; on kernels without it, fall back to a loop.
    unsafe {
        let below = keep_u == 0 || libc::syscall(libc::SYS_close_range, 0, keep_u - 1, 0) == 0;
        let above = libc::syscall(libc::SYS_close_range, keep_u + 1, libc::c_uint::MAX, 0) == 0;
        if !(below && above) {
            for fd in (0..4096).filter(|&fd| fd != keep) {
                libc::close(fd);
            }
        }
    }
}

/// The shim: waits for the host and exits the way it did.
///
/// It closes every descriptor except the liveness pipe, including the standard library's
/// exec-error pipe (otherwise `spawn` would wait for the shim to exit) and its copies of the
/// host's stdio and IPC socket (otherwise the supervisor would not see them close when the host
/// dies).
unsafe fn run_shim(host: libc::pid_t, live_write: RawFd, live_read: RawFd) -> ! {
    // SAFETY: all calls below are async-signal-safe and use no memory but locals.
    unsafe {
        libc::close(live_read);
        close_all_but(live_write);
        let mut status = 0;
        loop {
            let ret = libc::waitpid(host, &raw mut status, 0);
            if ret == host || (ret == -1 && *libc::__errno_location() != libc::EINTR) {
                break;
            }
        }
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            // Unblock only that signal: a group SIGTERM still pending here must not be what the
            // shim dies of when the host died of something else.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&raw mut set);
            libc::sigdelset(&raw mut set, signal);
            libc::sigprocmask(libc::SIG_SETMASK, &raw const set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            1
        })
    }
}

/// Sends `signal` to every process in the group led by `leader`.
///
/// # Errors
/// `ESRCH` once the group is gone.
pub fn signal_group(leader: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid =
        libc::pid_t::try_from(leader).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill takes plain integers; a negative pid addresses the process group.
    check(unsafe { libc::kill(-pgid, signal) }).map(drop)
}

/// Makes this process non-dumpable: no core files, and other processes of the same user cannot
/// ptrace it or read its memory through `/proc`.
///
/// # Errors
/// If prctl fails.
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes an integer flag.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// The Landlock ABI version the kernel offers, or the errno explaining why there is none
/// (`ENOSYS`: not built in; `EOPNOTSUPP`: built in but disabled at boot).
///
/// # Errors
/// The errno of `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub fn landlock_abi() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: a null attribute pointer with size 0 and the VERSION flag only queries the ABI.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i32::try_from(ret).unwrap_or(i32::MAX))
    }
}

/// The calling thread's seccomp mode (0 off, 1 strict, 2 filter).
///
/// # Errors
/// If prctl fails (a kernel without seccomp).
pub fn seccomp_mode() -> io::Result<i32> {
    // SAFETY: PR_GET_SECCOMP takes no pointers.
    check(unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) })
}

/// Sets `PR_SET_NO_NEW_PRIVS`: no exec can grant privileges (setuid bits and file capabilities
/// are ignored) from here on, for this process and its children.
///
/// # Errors
/// If prctl fails.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integers only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// Whether `PR_SET_NO_NEW_PRIVS` is set.
///
/// # Errors
/// If prctl fails.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: prctl with PR_GET_NO_NEW_PRIVS takes integers only.
    check(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }).map(|v| v == 1)
}

/// Sets a resource limit (soft and hard).
///
/// # Errors
/// If setrlimit fails.
pub fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    check(unsafe { libc::setrlimit(resource, &raw const limit) }).map(drop)
}

/// Unshares a user namespace (and `extra` namespaces) in a throwaway child to learn whether this
/// process could, without changing anything here. With `drop_to`, the child first becomes that
/// user (what a root supervisor's host does). With `clone_tree`, the child also clones the mount
/// tree at `/` in its new mount namespace, which is what building a host's private root needs.
///
/// # Errors
/// The errno the child's `unshare` (or `open_tree`, or `setresuid`) failed with, or a fork
/// failure.
pub fn probe_unshare(
    extra: libc::c_int,
    drop_to: Option<(libc::uid_t, libc::gid_t)>,
    clone_tree: bool,
) -> io::Result<()> {
    let flags = libc::CLONE_NEWUSER | extra;
    // SAFETY: the child only makes async-signal-safe calls and then _exits.
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let errno = || (*libc::__errno_location()).clamp(1, 255);
            if let Some((uid, gid)) = drop_to
                && drop_to_ids(uid, gid).is_err()
            {
                libc::_exit(errno());
            }
            if libc::unshare(flags) != 0 {
                libc::_exit(errno());
            }
            if clone_tree {
                let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE;
                if libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), flags) < 0 {
                    libc::_exit(errno());
                }
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let ret = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if ret == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
    match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
        Some(0) => Ok(()),
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => Err(io::Error::other("the probe child died")),
    }
}

/// Forks the calling process. Only for the sandbox stage, which is single-threaded.
///
/// # Errors
/// If fork fails.
pub(crate) fn fork_single_threaded() -> io::Result<Option<libc::pid_t>> {
    // Checked, not assumed: a fork of a process with other threads could inherit a lock one of
    // them held, and the child would hang the first time it took it.
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
        });
    if threads != Some(1) {
        return Err(io::Error::other(
            "fork_single_threaded called in a process with more than one thread",
        ));
    }
    // SAFETY: the stage calls this before starting any thread, so the child inherits no lock
    // held by another thread.
    let pid = check(unsafe { libc::fork() })?;
    Ok((pid != 0).then_some(pid))
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs a handler that does nothing for each of `signals`. PID 1 of a namespace only
/// receives signals it has a handler for, even blocked ones it collects with `sigwait`.
///
/// # Errors
/// If sigaction fails.
pub fn install_noop_handlers(signals: &[libc::c_int]) -> io::Result<()> {
    for &signal in signals {
        // SAFETY: a zeroed sigaction with a valid handler and an empty mask is well-formed; the
        // handler is async-signal-safe (it does nothing).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = ignore_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&raw mut action.sa_mask);
            check(libc::sigaction(
                signal,
                &raw const action,
                std::ptr::null_mut(),
            ))?;
        }
    }
    Ok(())
}

/// Restores the default disposition of `signal`.
///
/// # Errors
/// If sigaction fails.
pub fn set_default_disposition(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: SIG_DFL is always a valid disposition.
    let previous = unsafe { libc::signal(signal, libc::SIG_DFL) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Closes every fd from `first` up.
pub fn close_from(first: RawFd) {
    let Ok(first) = libc::c_uint::try_from(first) else {
        return;
    };
    // SAFETY: close_range takes plain integers; it only closes this process's fds, which the
    // caller no longer uses.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) != 0 {
            for fd in 3..4096 {
                if fd >= first.try_into().unwrap_or(libc::c_int::MAX) {
                    libc::close(fd);
                }
            }
        }
    }
}

const CAP_SETPCAP: u32 = 8;
const CAP_SYS_ADMIN: u32 = 21;

/// Makes `caps` (held in the permitted set) inheritable and ambient, so they survive `exec`.
/// Only plain syscalls on stack data: safe between fork and exec.
fn raise_ambient(caps: &[u32]) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are valid for capget's version-3 layout (two data words).
    if unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for &cap in caps {
        let word = &mut data[(cap / 32) as usize];
        word.inheritable |= word.permitted & (1 << (cap % 32));
    }
    // SAFETY: as above; capset only reads the structures.
    if unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for &cap in caps {
        // SAFETY: prctl with integer arguments only.
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                libc::c_ulong::from(cap),
                0,
                0,
            )
        })?;
    }
    Ok(())
}

/// A raw system call with integer arguments only, for tests of the seccomp filter.
///
/// # Errors
/// The errno the call failed with.
#[cfg(test)]
pub(crate) fn raw_syscall(nr: libc::c_long, args: [usize; 3]) -> io::Result<libc::c_long> {
    // SAFETY: callers pass calls whose arguments are integers or fds; a pointer argument left
    // at zero is a null pointer, which the kernel refuses with EFAULT without touching memory.
    let ret = unsafe { libc::syscall(nr, args[0], args[1], args[2]) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

// The new mount API (Linux 5.12): detached mount trees with attributes, moved into place. The
// sandbox builds each host's root from these, so that a path is bound with its flags in one step
// and from an fd, never re-resolved by name.

/// `open_tree` flag: clone the mount tree instead of opening it.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `open_tree` / `mount_setattr` flag: the whole tree beneath, not just the top mount.
const AT_RECURSIVE: libc::c_uint = 0x8000;
/// `move_mount` flag: the source is the fd itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// Mount attributes a host's mounts get (see `mount_setattr(2)`).
pub mod mount_attr {
    /// Read-only.
    pub const RDONLY: u64 = 0x0000_0001;
    /// setuid and setgid bits and file capabilities ignored.
    pub const NOSUID: u64 = 0x0000_0002;
    /// Device files unusable.
    pub const NODEV: u64 = 0x0000_0004;
    /// Nothing executable.
    pub const NOEXEC: u64 = 0x0000_0008;
    /// Ids mapped through a user namespace.
    pub const IDMAP: u64 = 0x0010_0000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn owned(ret: libc::c_long) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

fn c_path(path: &std::path::Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Opens `path` as an `O_PATH` fd without following any symbolic link on the way
/// (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`), relative to `dir` when given.
///
/// # Errors
/// The errno of `openat2`: `ELOOP` when a component is a symbolic link, `ENOENT`, ...
pub fn open_path_no_symlinks(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &std::path::Path,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let name = c_path(path)?;
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `name` is nul-terminated and `how` is a valid open_how of the size passed.
    owned(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            name.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    })
}

/// A detached copy of the mount tree at `fd` (and every mount beneath it), which only this fd
/// holds until [`move_mount`] attaches it.
///
/// # Errors
/// The errno of `open_tree`: `EPERM` without `CAP_SYS_ADMIN` over the mount namespace, `EINVAL`
/// when `fd` belongs to another mount namespace.
pub fn clone_tree(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | AT_RECURSIVE
        | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: an empty nul-terminated path with AT_EMPTY_PATH names the fd itself.
    owned(unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) })
}

/// Sets `set` (and clears `clear`) on the mount at `fd` and every mount beneath it; with
/// `userns`, maps ids through that user namespace (`mount_attr::IDMAP` in `set`).
///
/// # Errors
/// The errno of `mount_setattr`.
pub fn set_mount_attributes(
    fd: std::os::fd::BorrowedFd<'_>,
    set: u64,
    clear: u64,
    userns: Option<std::os::fd::BorrowedFd<'_>>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u64::try_from(u.as_raw_fd()).unwrap_or(0)),
    };
    let flags = AT_RECURSIVE | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is the empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Attaches the detached tree `fd` at `target`.
///
/// # Errors
/// The errno of `move_mount`.
pub fn move_mount(fd: std::os::fd::BorrowedFd<'_>, target: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let target = c_path(target)?;
    // SAFETY: both paths are nul-terminated; the source is the fd itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Gives up root in the pre-exec child of a root supervisor: no supplementary groups, then the
/// group and the user, all three ids of each. Only plain syscalls: safe between fork and exec.
fn drop_to_ids(uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setgroups with a null list of length 0, and setres[ug]id with integers.
    unsafe {
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
    }
    Ok(())
}

/// Takes the Unix socket a parent placed at `fd` for this process, once: a second call, or an
/// fd that is not a socket, gives `None`.
pub fn take_inherited_socket(fd: RawFd) -> Option<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::SeqCst) {
        return None;
    }
    // SAFETY: fstat only writes the stat buffer.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &raw mut stat) } != 0
        || stat.st_mode & libc::S_IFMT != libc::S_IFSOCK
    {
        return None;
    }
    // SAFETY: the fd is open, is a socket, and is taken here at most once per process; the
    // parent handed it over for this process to own.
    Some(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) })
}

/// One `recvmsg`: bytes into `buf`, and the fds that came with them (up to `max_fds`), owned
/// and close-on-exec.
///
/// # Errors
/// The errno of `recvmsg`; `EMSGSIZE` when more fds came than there was room for (the extra
/// ones are closed by the kernel).
pub fn recv_with_fds(
    socket: &std::os::unix::net::UnixStream,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut space = vec![0u8; nix::sys::socket::cmsg_space::<RawFd>() * max_fds.max(1)];
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: SCM_RIGHTS just installed these fds in this process; nothing else knows them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if truncated {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok((msg.bytes, fds))
}

/// Sends `fds` with one NUL byte (the stage's channel carries batches of fds ahead of its plan).
///
/// # Errors
/// The errno of `sendmsg`.
pub fn send_fds(
    socket: &std::os::unix::net::UnixStream,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [io::IoSlice::new(&[0u8])];
    let sent = sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    if sent == 1 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }
}

/// Closes `fd` if it is open (an fd this process was started with and does not use).
pub(crate) fn close_unowned(fd: RawFd) {
    // SAFETY: closing an fd number; if nothing else in this process owns it (the caller's
    // promise for inherited fds it does not use), no Rust object is left dangling.
    unsafe {
        libc::close(fd);
    }
}

/// A user namespace whose only mapping is `disk` (uid, gid) to `host` (uid, gid), as an fd for
/// an idmapped mount (`mount_attr::IDMAP`): through such a mount, files the supervisor's root
/// owns on disk appear owned by the unprivileged host user, and files it changes stay owned
/// by their owner. Only root may map another user.
///
/// # Errors
/// The errno of the fork, `unshare`, a map write or the namespace's open.
pub fn idmap_userns(disk: (u32, u32), host: (u32, u32)) -> io::Result<std::os::fd::OwnedFd> {
    let mut ready = [0 as RawFd; 2];
    let mut release = [0 as RawFd; 2];
    // SAFETY: each array has room for the two fds pipe2 writes.
    check(unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) })?;
    if let Err(err) = check(unsafe { libc::pipe2(release.as_mut_ptr(), libc::O_CLOEXEC) }) {
        // SAFETY: closing the fds just made.
        unsafe {
            libc::close(ready[0]);
            libc::close(ready[1]);
        }
        return Err(err);
    }
    // Prepared before the fork: the child only makes async-signal-safe calls.
    let uid_map = format!("{} {} 1\n", disk.0, host.0);
    let gid_map = format!("{} {} 1\n", disk.1, host.1);
    // SAFETY: the child only calls unshare, read, write, close and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above; `byte` is a local.
        unsafe {
            // Nothing else inherited stays open here: another helper forked at the same time
            // would otherwise hold this one's release pipe, and each would wait for the other.
            close_all_except(&mut [ready[1], release[0]]);
            let mut byte = [u8::from(libc::unshare(libc::CLONE_NEWUSER) == 0)];
            let _ = libc::write(ready[1], byte.as_ptr().cast(), 1);
            // Stay until the parent has what it needs (or is gone).
            let _ = libc::read(release[0], byte.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: closing the child's ends in the parent.
    unsafe {
        libc::close(ready[1]);
        libc::close(release[0]);
    }
    let result = if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        let mut byte = [0u8];
        // SAFETY: reading one byte into a local.
        let n = unsafe { libc::read(ready[0], byte.as_mut_ptr().cast(), 1) };
        if n == 1 && byte[0] == 1 {
            std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
                .and_then(|()| std::fs::write(format!("/proc/{pid}/uid_map"), &uid_map))
                .and_then(|()| std::fs::write(format!("/proc/{pid}/gid_map"), &gid_map))
                .and_then(|()| std::fs::File::open(format!("/proc/{pid}/ns/user")))
                .map(std::os::fd::OwnedFd::from)
        } else {
            Err(io::Error::other(
                "the id-map helper could not make a user namespace",
            ))
        }
    };
    // SAFETY: closing our ends releases the child; then it is reaped.
    unsafe {
        libc::close(ready[0]);
        libc::close(release[1]);
        if pid > 0 {
            let mut status = 0;
            while libc::waitpid(pid, &raw mut status, 0) == -1
                && *libc::__errno_location() == libc::EINTR
            {}
        }
    }
    result
}
