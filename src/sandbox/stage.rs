//! The stage: the last step between the supervisor and the host program, running inside the
//! sandbox's namespaces as a fresh single-threaded process.
//!
//! It reads a [`StagePlan`] from fd [`STAGE_FD`], applies every in-process layer, writes a
//! [`StageReport`] back on the same fd, and execs the host. A layer the profile requires that
//! fails here stops the start: the report carries the error and the host never runs.

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

use super::{Enforcement, Layer, LayerReport};
use crate::process::sys;

/// The argument that makes an executable run as the stage (see [`run_if_requested`]).
pub const STAGE_ARG: &str = "__dscode-sandbox-stage";

/// The fd the stage finds its channel to the supervisor at.
pub const STAGE_FD: RawFd = 4;

/// The Landlock ABI this crate's rules are written for; newer kernels enforce all of it.
const LANDLOCK_ABI: ABI = ABI::V6;

/// What the stage applies before it execs the host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagePlan {
    /// The host program (absolute).
    pub program: PathBuf,
    /// Its arguments (without argv\[0\]).
    pub args: Vec<OsString>,
    /// Its whole environment.
    pub env: Vec<(OsString, OsString)>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The supervisor's mount namespace (`mnt:[inode]`): the stage mounts nothing unless its own
    /// differs, so a failed unshare can never mount over the supervisor's `/tmp`.
    pub supervisor_mnt_ns: String,
    /// Mounts to make in the stage's own mount namespace (Landlock backend).
    pub mounts: Option<MountPlan>,
    /// Landlock rules, when the backend uses Landlock.
    pub landlock: Option<LandlockPlan>,
    /// Whether the host may open sockets.
    pub network: bool,
    /// Resource limits set with setrlimit.
    pub rlimits: Rlimits,
    /// Layers whose failure here refuses the start.
    pub required: Vec<Layer>,
    /// Stay as PID 1 and run the host as a child (reaping orphans and forwarding signals).
    pub init: bool,
    /// The supervisor's uid and gid, to map onto themselves in the stage's fresh user
    /// namespace. The stage writes the maps because it is the first process in the namespace
    /// that may be dumpable: the forked child before it still holds a copy of the supervisor's
    /// memory and must stay non-dumpable, and a non-dumpable process cannot write its own maps.
    /// Without them the namespace's ids read as the overflow id and a file system mounted in it
    /// (the private `/tmp`) cannot create anything.
    #[serde(default)]
    pub id_maps: Option<(u32, u32)>,
}

/// Mounts for a stage that owns a mount namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountPlan {
    /// Size of the private `/tmp` in bytes.
    pub tmp_bytes: u64,
    /// Paths under `/tmp` the host must still see (its extension folder, storage, ...), and
    /// whether each stays writable: the others are bound read-only, since Landlock's rule for the
    /// private `/tmp` would otherwise reach into them.
    pub keep_under_tmp: Vec<(PathBuf, bool)>,
    /// Mount a fresh `/proc` (only valid as PID 1 of a PID namespace).
    pub proc: bool,
}

/// Landlock rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Readable (and executable) paths.
    pub read: Vec<PathBuf>,
    /// Readable and writable paths (never executable).
    pub write: Vec<PathBuf>,
    /// `/proc` and `/tmp` are the sandbox's own (bubblewrap made them): allow them.
    pub private_proc_and_tmp: bool,
}

/// setrlimit values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Rlimits {
    /// `RLIMIT_NOFILE`.
    pub open_files: u64,
    /// `RLIMIT_FSIZE` in bytes.
    pub file_size: u64,
    /// `RLIMIT_NPROC`, only inside a fresh user namespace (outside one it counts every process
    /// of the user).
    pub processes: Option<u64>,
}

/// What the stage enforced, or why it stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageReport {
    /// Layer entries for what the stage applied.
    pub layers: Vec<LayerReport>,
    /// Set when the stage refused to start the host.
    pub error: Option<String>,
    /// The required layer that could not be enforced, when that is why it refused.
    #[serde(default)]
    pub failed_layer: Option<Layer>,
}

/// Runs the stage if this process was started as one, and never returns then. Call it first
/// thing in `main` of any program used as [`super::SandboxSettings::stage`]:
///
/// ```no_run
/// dscode_extension_host::sandbox::stage::run_if_requested();
/// // ... the program's own work
/// ```
pub fn run_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == STAGE_ARG) {
        run();
    }
}

fn run() -> ! {
    // SAFETY: the supervisor placed the stage channel at STAGE_FD; nothing else owns it.
    #[allow(unsafe_code)]
    let mut channel = unsafe { UnixStream::from_raw_fd(STAGE_FD) };
    let mut text = Vec::new();
    let plan = channel
        .read_to_end(&mut text)
        .map_err(|e| format!("reading the plan: {e}"))
        .and_then(|_| {
            serde_json::from_slice::<StagePlan>(&text).map_err(|e| format!("bad plan: {e}"))
        });
    let plan = match plan {
        Ok(plan) => plan,
        Err(err) => finish(
            &mut channel,
            &StageReport {
                error: Some(err),
                ..StageReport::default()
            },
        ),
    };
    let mut report = StageReport::default();
    if let Err(err) = apply(&plan, &mut report) {
        report.error = Some(err);
        finish(&mut channel, &report);
    }
    let program = cstring(plan.program.as_os_str().to_owned());
    let mut argv = vec![program.clone()];
    argv.extend(plan.args.iter().cloned().map(cstring));
    let envp: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect();
    if let Err(err) = std::env::set_current_dir(&plan.cwd) {
        report.error = Some(format!("cannot enter {}: {err}", plan.cwd.display()));
        finish(&mut channel, &report);
    }
    // The channel closes here (the supervisor reads to end of file), then the host starts.
    let _ = channel.write_all(&serde_json::to_vec(&report).unwrap_or_default());
    drop(channel);
    if plan.init {
        run_init(&program, &argv, &envp);
    }
    let err = nix::unistd::execve(&program, &argv, &envp).unwrap_err();
    eprintln!(
        "dscode-exthost stage: cannot run {}: {err}",
        plan.program.display()
    );
    std::process::exit(127);
}

fn cstring(s: OsString) -> CString {
    CString::new(s.into_vec()).unwrap_or_else(|_| CString::from(c"\u{fffd}"))
}

fn finish(channel: &mut UnixStream, report: &StageReport) -> ! {
    if let Some(err) = &report.error {
        eprintln!("dscode-exthost stage: {err}");
    }
    let _ = channel.write_all(&serde_json::to_vec(&report).unwrap_or_default());
    std::process::exit(126);
}

fn required_ok(plan: &StagePlan, entry: &LayerReport) -> Result<(), String> {
    if entry.enforcement == Enforcement::NotEnforced && plan.required.contains(&entry.layer) {
        return Err(format!(
            "required layer {} could not be enforced: {}",
            entry.layer, entry.detail
        ));
    }
    Ok(())
}

/// Applies every layer in order: mounts, limits, Landlock, capabilities, `no_new_privs`, seccomp.
#[allow(clippy::too_many_lines)] // one step per layer, in order; splitting hides the order
fn apply(plan: &StagePlan, report: &mut StageReport) -> Result<(), String> {
    let push = |report: &mut StageReport, entry: LayerReport| -> Result<(), String> {
        if let Err(err) = required_ok(plan, &entry) {
            report.failed_layer = Some(entry.layer);
            return Err(err);
        }
        report.layers.push(entry);
        Ok(())
    };
    let mut proc_private = plan
        .landlock
        .as_ref()
        .is_some_and(|l| l.private_proc_and_tmp);
    let mut tmp_private = proc_private;
    if let Some((uid, gid)) = plan.id_maps {
        // On failure the private /tmp below fails too, and is reported with its reason.
        let _ = std::fs::write("/proc/self/setgroups", "deny")
            .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")))
            .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")));
    }
    if let Some(mounts) = &plan.mounts {
        let (tmp, proc) = mount_private(plan, mounts);
        proc_private = proc;
        tmp_private = tmp.enforcement == Enforcement::FullyEnforced;
        push(report, tmp)?;
    }
    push(report, set_limits(&plan.rlimits))?;
    if let Some(landlock) = &plan.landlock {
        for entry in apply_landlock(landlock, plan.network, proc_private, tmp_private) {
            push(report, entry)?;
        }
    }
    push(report, drop_capabilities())?;
    let nnp = match sys::set_no_new_privs().and_then(|()| sys::no_new_privs()) {
        Ok(true) => LayerReport::full(Layer::NoNewPrivs, "PR_SET_NO_NEW_PRIVS set"),
        Ok(false) => LayerReport::missing(Layer::NoNewPrivs, "PR_SET_NO_NEW_PRIVS did not stick"),
        Err(err) => LayerReport::missing(Layer::NoNewPrivs, format!("prctl failed: {err}")),
    };
    push(report, nnp)?;
    let seccomp = match super::seccomp::build(plan.network).and_then(|p| super::seccomp::apply(&p))
    {
        Ok(()) => LayerReport::full(Layer::Seccomp, super::seccomp::summary(plan.network)),
        Err(err) => LayerReport::missing(Layer::Seccomp, format!("filter not installed: {err}")),
    };
    let seccomp_on = seccomp.enforcement == Enforcement::FullyEnforced;
    push(report, seccomp)?;
    if !plan.network {
        let entry = if seccomp_on {
            LayerReport::full(
                Layer::Network,
                "seccomp: socket() fails with EPERM; only inherited sockets work",
            )
        } else {
            LayerReport::missing(Layer::Network, "no seccomp filter to refuse socket()")
        };
        // Another mechanism (a network namespace, Landlock TCP rules) may still cover this; the
        // supervisor merges the entries, so only refuse here when nothing at all could.
        report.layers.push(entry);
    }
    Ok(())
}

fn own_mnt_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A private `/tmp` (and `/proc`) in the stage's own mount namespace. Paths under `/tmp` the
/// host needs are carried over by bind mounts from fds opened before the tmpfs hides them.
#[allow(clippy::too_many_lines)] // the mount sequence reads best in one place
fn mount_private(plan: &StagePlan, mounts: &MountPlan) -> (LayerReport, bool) {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::fs::OpenOptionsExt;
    if own_mnt_ns() == plan.supervisor_mnt_ns || plan.supervisor_mnt_ns.is_empty() {
        return (
            LayerReport::missing(
                Layer::Tmp,
                "no mount namespace of its own: /tmp is not private",
            ),
            false,
        );
    }
    if let Err(err) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        return (
            LayerReport::missing(Layer::Tmp, format!("cannot make mounts private: {err}")),
            false,
        );
    }
    // A path that does not exist (yet) is not carried over; its absence is the host's to report.
    let kept: Vec<(PathBuf, bool, std::fs::File)> = mounts
        .keep_under_tmp
        .iter()
        .filter_map(|(path, writable)| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(path)
                .ok()?;
            Some((path.clone(), *writable, file))
        })
        .collect();
    let options = format!("size={},mode=1777,nr_inodes=65536", mounts.tmp_bytes);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if let Err(err) = mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        flags,
        Some(options.as_str()),
    ) {
        return (
            LayerReport::missing(Layer::Tmp, format!("cannot mount a tmpfs on /tmp: {err}")),
            false,
        );
    }
    for (path, writable, file) in &kept {
        use std::os::fd::AsRawFd;
        let is_dir = file.metadata().is_ok_and(|m| m.is_dir());
        let made = if is_dir {
            std::fs::create_dir_all(path)
        } else {
            path.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(path, b""))
        };
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        let bound = made.map_err(|e| e.to_string()).and_then(|()| {
            mount(
                Some(source.as_str()),
                path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| e.to_string())
        });
        let bound = bound.and_then(|()| {
            if *writable {
                Ok(())
            } else {
                remount_read_only(path)
            }
        });
        if let Err(err) = bound {
            // Leave no half-built view behind: without the tmpfs the host still sees its files.
            let _ = nix::mount::umount2("/tmp", nix::mount::MntFlags::MNT_DETACH);
            return (
                LayerReport::missing(
                    Layer::Tmp,
                    format!(
                        "cannot carry {} over to the private /tmp: {err}",
                        path.display()
                    ),
                ),
                false,
            );
        }
    }
    drop(kept);
    let proc = mounts.proc
        && std::process::id() == 1
        && mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .is_ok();
    let mib = mounts.tmp_bytes / (1024 * 1024);
    (
        LayerReport::full(Layer::Tmp, format!("private tmpfs on /tmp, {mib} MiB")),
        proc,
    )
}

/// Makes a bind mount read-only, keeping the flags a user namespace may not clear.
fn remount_read_only(path: &Path) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    let base = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    [base, base | MsFlags::MS_NOEXEC]
        .into_iter()
        .map(|flags| mount(None::<&str>, path, None::<&str>, flags, None::<&str>))
        .find(Result::is_ok)
        .unwrap_or(Err(nix::Error::EPERM))
        .map_err(|e| format!("read-only remount: {e}"))
}

fn set_limits(limits: &Rlimits) -> LayerReport {
    let mut failures = Vec::new();
    for (resource, value, name) in [
        (libc::RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE"),
        (libc::RLIMIT_FSIZE, limits.file_size, "RLIMIT_FSIZE"),
        (libc::RLIMIT_CORE, 0, "RLIMIT_CORE"),
    ] {
        if let Err(err) = sys::set_rlimit(resource, value) {
            failures.push(format!("{name}: {err}"));
        }
    }
    if let Some(nproc) = limits.processes
        && let Err(err) = sys::set_rlimit(libc::RLIMIT_NPROC, nproc)
    {
        failures.push(format!("RLIMIT_NPROC: {err}"));
    }
    if failures.is_empty() {
        LayerReport::full(
            Layer::Files,
            format!(
                "RLIMIT_NOFILE {}, RLIMIT_FSIZE {} MiB, RLIMIT_CORE 0",
                limits.open_files,
                limits.file_size / (1024 * 1024)
            ),
        )
    } else {
        LayerReport::partial(Layer::Files, failures.join("; "))
    }
}

/// The device files a host may use.
const DEVICES: &[(&str, bool)] = &[
    ("/dev/null", true),
    ("/dev/zero", true),
    ("/dev/full", true),
    ("/dev/random", false),
    ("/dev/urandom", false),
];

fn apply_landlock(
    plan: &LandlockPlan,
    network: bool,
    proc_mounted: bool,
    tmp_private: bool,
) -> Vec<LayerReport> {
    let result =
        (|| -> Result<(landlock::RestrictionStatus, Vec<String>), landlock::RulesetError> {
            let mut ruleset = Ruleset::default()
                .set_compatibility(CompatLevel::BestEffort)
                .handle_access(AccessFs::from_all(LANDLOCK_ABI))?;
            if !network {
                ruleset = ruleset.handle_access(AccessNet::from_all(LANDLOCK_ABI))?;
            }
            ruleset = ruleset.scope(Scope::from_all(LANDLOCK_ABI))?;
            let mut created = ruleset.create()?;
            let mut skipped = Vec::new();
            let read = AccessFs::from_read(LANDLOCK_ABI);
            let write = AccessFs::from_all(LANDLOCK_ABI) & !AccessFs::Execute;
            let mut rules: Vec<(&Path, landlock::BitFlags<AccessFs>)> = Vec::new();
            rules.extend(plan.read.iter().map(|p| (p.as_path(), read)));
            rules.extend(plan.write.iter().map(|p| (p.as_path(), write)));
            for (device, writable) in DEVICES {
                let access = if *writable {
                    AccessFs::ReadFile | AccessFs::WriteFile
                } else {
                    AccessFs::ReadFile.into()
                };
                rules.push((Path::new(device), access));
            }
            if proc_mounted {
                // The host's own PID namespace's /proc: only the sandbox's processes are there.
                rules.push((Path::new("/proc"), AccessFs::ReadFile | AccessFs::ReadDir));
            }
            if tmp_private {
                rules.push((Path::new("/tmp"), write));
            }
            for (path, access) in rules {
                match PathFd::new(path) {
                    Ok(fd) => {
                        // A rule on a file may only carry file rights.
                        let access = if std::fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
                            access & AccessFs::from_file(LANDLOCK_ABI)
                        } else {
                            access
                        };
                        created = created.add_rule(PathBeneath::new(fd, access))?;
                    }
                    Err(_) => skipped.push(path.display().to_string()),
                }
            }
            Ok((created.restrict_self()?, skipped))
        })();
    match result {
        Ok((status, skipped)) => {
            let enforcement = match status.ruleset {
                RulesetStatus::FullyEnforced => Enforcement::FullyEnforced,
                RulesetStatus::PartiallyEnforced => Enforcement::PartiallyEnforced,
                RulesetStatus::NotEnforced => Enforcement::NotEnforced,
            };
            let mut detail = format!(
                "Landlock ({:?}): read-only runtime and extension, writable storage and granted paths, nothing executable where writable",
                status.ruleset
            );
            if !proc_mounted {
                detail.push_str("; no /proc");
            }
            if !skipped.is_empty() {
                detail = format!("{detail}; absent: {}", skipped.join(", "));
            }
            let mut out = vec![LayerReport::new(Layer::Filesystem, enforcement, detail)];
            if !network {
                let tcp = if enforcement == Enforcement::NotEnforced {
                    LayerReport::missing(Layer::Network, "no Landlock")
                } else {
                    LayerReport::new(
                        Layer::Network,
                        enforcement,
                        "Landlock: TCP bind and connect denied; abstract Unix sockets and signals scoped to the sandbox",
                    )
                };
                out.push(tcp);
            }
            out
        }
        Err(err) => vec![LayerReport::missing(
            Layer::Filesystem,
            format!("Landlock failed: {err}"),
        )],
    }
}

/// Clears every capability set and checks that nothing is left.
fn drop_capabilities() -> LayerReport {
    use caps::CapSet;
    let mut problems = Vec::new();
    // The bounding set first: dropping from it needs CAP_SETPCAP, which the next steps remove.
    if let Err(err) = caps::clear(None, CapSet::Bounding) {
        problems.push(format!("bounding set: {err}"));
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        if let Err(err) = caps::clear(None, set) {
            problems.push(format!("{set:?}: {err}"));
        }
    }
    let left: Vec<String> = [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ]
    .into_iter()
    .filter_map(|set| match caps::read(None, set) {
        Ok(held) if held.is_empty() => None,
        Ok(held) => Some(format!("{set:?} still holds {}", held.len())),
        Err(err) => Some(format!("{set:?} unreadable: {err}")),
    })
    .collect();
    if left.is_empty() {
        LayerReport::full(
            Layer::Capabilities,
            "all five sets empty, verified before exec",
        )
    } else if left.iter().all(|l| l.starts_with("Bounding")) {
        // Without CAP_SETPCAP the bounding set cannot shrink; with no_new_privs and empty
        // permitted/effective sets nothing can be regained from it.
        LayerReport::partial(
            Layer::Capabilities,
            format!("{}; {}", left.join("; "), problems.join("; ")),
        )
    } else {
        LayerReport::missing(Layer::Capabilities, left.join("; "))
    }
}

/// PID 1 of the host's namespace: runs the host as a child, forwards termination signals to it,
/// reaps orphans, and exits the way the host did.
fn run_init(program: &CString, argv: &[CString], envp: &[CString]) -> ! {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    const FORWARDED: [Signal; 4] = [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ];
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    let _ = sys::install_noop_handlers(&FORWARDED.map(|s| s as libc::c_int));
    let _ = sys::install_noop_handlers(&[libc::SIGCHLD]);
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let child = match sys::fork_single_threaded() {
        Ok(Some(pid)) => nix::unistd::Pid::from_raw(pid),
        Ok(None) => {
            // The host: default dispositions and mask, as if started directly.
            for s in FORWARDED.iter().copied().chain([Signal::SIGCHLD]) {
                let _ = sys::set_default_disposition(s as libc::c_int);
            }
            let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
            let err = nix::unistd::execve(program, argv, envp).unwrap_err();
            eprintln!(
                "dscode-exthost stage: cannot run {}: {err}",
                program.to_string_lossy()
            );
            std::process::exit(127);
        }
        Err(err) => {
            eprintln!("dscode-exthost stage: fork failed: {err}");
            std::process::exit(126);
        }
    };
    // The host's copies of the IPC socket and anything else inherited are its own; holding
    // them here would keep the supervisor from seeing the host close its end.
    sys::close_from(3);
    loop {
        let Ok(signal) = set.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => std::process::exit(code),
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                    // Die the same way, so the shim and the supervisor see the real cause.
                    let _ = sys::set_default_disposition(signal as libc::c_int);
                    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
                    let _ = nix::sys::signal::raise(signal);
                    std::process::exit(128 + signal as i32);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}
