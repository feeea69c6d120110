//! The stage: the last step between the supervisor and the host program, running inside the
//! sandbox's namespaces as a fresh single-threaded process.
//!
//! It reads a [`StagePlan`] from fd [`STAGE_FD`], applies every in-process layer, writes a
//! [`StageReport`] back on the same fd, and execs the host. A layer the profile requires that
//! fails here stops the start: the report carries the error and the host never runs.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

use super::root::{self, RootPlan};
use super::view::Rights;
use super::{Enforcement, Layer, LayerReport};
use crate::process::sys;

/// The argument that makes an executable run as the stage (see [`run_if_requested`]).
pub const STAGE_ARG: &str = "__dscode-sandbox-stage";

/// The fd the stage finds its channel to the supervisor at.
pub const STAGE_FD: RawFd = 4;

/// The fd the stage executable is run from (`/proc/self/fd/5`): the supervisor opens it, so
/// neither a root supervisor's unprivileged child nor bubblewrap needs to reach its folder.
pub const STAGE_EXE_FD: RawFd = 5;

/// The path that runs the stage from [`STAGE_EXE_FD`].
#[must_use]
pub fn exe_path() -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{STAGE_EXE_FD}"))
}

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
    /// differs, so a failed unshare can never mount over the supervisor's tree.
    pub supervisor_mnt_ns: String,
    /// The minimal root to build and enter.
    pub root: Option<RootPlan>,
    /// Landlock rules, when the backend uses Landlock.
    pub landlock: Option<LandlockPlan>,
    /// Apply the confining layers (limits, capabilities, `no_new_privs`, seccomp). Only the
    /// `none` backend, which runs the stage just to set up its user namespace, says no.
    pub confine: bool,
    /// Whether the host may open sockets.
    pub network: bool,
    /// Resource limits set with setrlimit.
    pub rlimits: Rlimits,
    /// Layers whose failure here refuses the start.
    pub required: Vec<Layer>,
    /// Stay as PID 1 and run the host as a child (reaping orphans and forwarding signals).
    pub init: bool,
    /// The uid and gid to map onto themselves in the stage's fresh user namespace. The stage
    /// writes the maps because it is the first process in the namespace that may be dumpable:
    /// the forked child before it still holds a copy of the supervisor's memory and must stay
    /// non-dumpable, and a non-dumpable process cannot write its own maps. Without them the
    /// namespace's ids read as the overflow id and a file system mounted in it (the private
    /// `/tmp`) cannot create anything.
    #[serde(default)]
    pub id_maps: Option<(u32, u32)>,
    /// How many fds (detached mount trees) the supervisor sent with the plan.
    #[serde(default)]
    pub trees: usize,
}

/// Landlock rules: each entry of the view with its rights, applied after the new root is `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Paths and what the host may do at and beneath them.
    pub rules: Vec<(PathBuf, Rights)>,
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
    // The executable this stage was run from stays out of the host.
    sys::close_unowned(STAGE_EXE_FD);
    let Some(mut channel) = sys::take_inherited_socket(STAGE_FD) else {
        eprintln!("dscode-exthost stage: no channel to the supervisor at fd {STAGE_FD}");
        std::process::exit(126);
    };
    let (plan, trees) = match receive(&channel) {
        Ok(received) => received,
        Err(err) => finish(
            &mut channel,
            &StageReport {
                error: Some(err),
                ..StageReport::default()
            },
        ),
    };
    let mut report = StageReport::default();
    if let Err(err) = apply(&plan, trees, &mut report) {
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

/// Reads the plan and the fds sent with it, to end of file. Each batch of fds arrives with one
/// NUL byte ahead of the plan's JSON, which never starts with one.
fn receive(channel: &UnixStream) -> Result<(StagePlan, Vec<Option<OwnedFd>>), String> {
    let mut text = Vec::new();
    let mut fds: Vec<Option<OwnedFd>> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, received) = sys::recv_with_fds(channel, &mut buf, MAX_FDS_PER_MESSAGE)
            .map_err(|e| format!("reading the plan: {e}"))?;
        fds.extend(received.into_iter().map(Some));
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    let json = text
        .iter()
        .position(|&b| b != 0)
        .map_or(&text[..0], |start| &text[start..]);
    let plan: StagePlan = serde_json::from_slice(json).map_err(|e| format!("bad plan: {e}"))?;
    if fds.len() != plan.trees {
        return Err(format!(
            "the plan announced {} mount trees, {} arrived",
            plan.trees,
            fds.len()
        ));
    }
    Ok((plan, fds))
}

/// The most fds one message carries (the kernel's `SCM_MAX_FD` is 253).
pub const MAX_FDS_PER_MESSAGE: usize = 250;

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

/// Applies every layer in order: id maps, the minimal root, limits, Landlock, capabilities,
/// `no_new_privs`, seccomp.
fn apply(
    plan: &StagePlan,
    trees: Vec<Option<OwnedFd>>,
    report: &mut StageReport,
) -> Result<(), String> {
    let push = |report: &mut StageReport, entry: LayerReport| -> Result<(), String> {
        if let Err(err) = required_ok(plan, &entry) {
            report.failed_layer = Some(entry.layer);
            return Err(err);
        }
        report.layers.push(entry);
        Ok(())
    };
    if let Some((uid, gid)) = plan.id_maps {
        // On failure the root below fails too (nothing can be created in its tmpfs), and is
        // reported with its reason.
        let _ = std::fs::write("/proc/self/setgroups", "deny")
            .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")))
            .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")));
    }
    let root = plan.root.as_ref().map(|root_plan| {
        if own_mnt_ns() == plan.supervisor_mnt_ns || plan.supervisor_mnt_ns.is_empty() {
            Err("no mount namespace of its own".to_owned())
        } else {
            root::build(root_plan, trees)
        }
    });
    let tmp = match (&root, &plan.root) {
        (Some(Ok(_)), Some(root_plan)) => LayerReport::full(
            Layer::Tmp,
            format!(
                "private tmpfs on {}, {} MiB, noexec",
                root_plan.tmp.display(),
                root_plan.tmp_bytes / (1024 * 1024)
            ),
        ),
        (Some(Err(err)), _) => LayerReport::missing(Layer::Tmp, format!("no private root: {err}")),
        _ => LayerReport::missing(Layer::Tmp, "no private root"),
    };
    if plan.confine {
        push(report, tmp)?;
        push(report, set_limits(&plan.rlimits))?;
    }
    let scratch = plan
        .root
        .as_ref()
        .map_or_else(|| PathBuf::from("/tmp"), |r| r.tmp.clone());
    let landlock = plan.landlock.as_ref().map(|l| {
        apply_landlock(
            l,
            plan.network,
            root.as_ref()
                .is_some_and(|r| r.as_ref().is_ok_and(|b| b.proc)),
            &scratch,
        )
    });
    if plan.confine {
        push(
            report,
            filesystem_entry(plan, root.as_ref(), landlock.as_ref()),
        )?;
        if let Some(landlock) = &landlock
            && !plan.network
        {
            report.layers.push(landlock.network.clone());
        }
        push(report, drop_capabilities())?;
        let nnp = match sys::set_no_new_privs().and_then(|()| sys::no_new_privs()) {
            Ok(true) => LayerReport::full(Layer::NoNewPrivs, "PR_SET_NO_NEW_PRIVS set"),
            Ok(false) => {
                LayerReport::missing(Layer::NoNewPrivs, "PR_SET_NO_NEW_PRIVS did not stick")
            }
            Err(err) => LayerReport::missing(Layer::NoNewPrivs, format!("prctl failed: {err}")),
        };
        push(report, nnp)?;
        let seccomp =
            match super::seccomp::build(plan.network).and_then(|p| super::seccomp::apply(&p)) {
                Ok(()) => LayerReport::full(Layer::Seccomp, super::seccomp::summary(plan.network)),
                Err(err) => {
                    LayerReport::missing(Layer::Seccomp, format!("filter not installed: {err}"))
                }
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
            // Another mechanism (a network namespace, Landlock TCP rules) may still cover this;
            // the supervisor merges the entries, so only refuse here when nothing at all could.
            report.layers.push(entry);
        }
    }
    Ok(())
}

/// The Filesystem entry: what the minimal root and Landlock achieved together.
fn filesystem_entry(
    plan: &StagePlan,
    root: Option<&Result<root::Built, String>>,
    landlock: Option<&LandlockOutcome>,
) -> LayerReport {
    let binds = plan.root.as_ref().map_or(0, |r| r.binds.len());
    let skipped = match root {
        Some(Ok(built)) if !built.skipped.is_empty() => {
            format!("; not bound: {}", built.skipped.join("; "))
        }
        _ => String::new(),
    };
    match (root, landlock) {
        (Some(Ok(_)), Some(l)) if l.enforcement == Enforcement::FullyEnforced => LayerReport::full(
            Layer::Filesystem,
            format!(
                "private root of {binds} binds (read-only unless writable, noexec unless executable, nosuid); Landlock: each entry's exact rights{skipped}"
            ),
        ),
        (Some(Ok(_)), Some(l)) => LayerReport::partial(
            Layer::Filesystem,
            format!(
                "private root of {binds} binds; Landlock {:?}: {}; writable folders may allow creating files{skipped}",
                l.enforcement, l.detail
            ),
        ),
        (Some(Ok(_)), None) => LayerReport::full(
            Layer::Filesystem,
            format!(
                "private root of {binds} binds (read-only unless writable, noexec unless executable, nosuid); no Landlock, so workspace grants are read-only to the OS and writes go through the broker{skipped}"
            ),
        ),
        (Some(Err(_)) | None, Some(l)) if l.enforcement != Enforcement::NotEnforced => {
            let why = root
                .and_then(|r| r.as_ref().err())
                .map_or_else(|| "none planned".to_owned(), Clone::clone);
            LayerReport::partial(
                Layer::Filesystem,
                format!(
                    "Landlock only, no private root ({why}): paths outside the view can be examined and their metadata changed"
                ),
            )
        }
        (Some(Err(err)), _) => {
            LayerReport::missing(Layer::Filesystem, format!("no private root: {err}"))
        }
        (None, _) => LayerReport::missing(Layer::Filesystem, "no private root and no Landlock"),
    }
}

fn own_mnt_ns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
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

/// What Landlock achieved.
struct LandlockOutcome {
    enforcement: Enforcement,
    detail: String,
    network: LayerReport,
}

/// The Landlock rights for view rights.
fn access(rights: Rights) -> landlock::BitFlags<AccessFs> {
    let mut out = landlock::BitFlags::<AccessFs>::empty();
    if rights.contains(Rights::READ) {
        out |= AccessFs::ReadFile | AccessFs::ReadDir;
    }
    if rights.contains(Rights::WRITE) {
        out |= AccessFs::WriteFile | AccessFs::Truncate;
    }
    if rights.contains(Rights::REMOVE) {
        out |= AccessFs::RemoveFile | AccessFs::RemoveDir;
    }
    if rights.contains(Rights::CREATE) {
        out |= AccessFs::MakeReg
            | AccessFs::MakeDir
            | AccessFs::MakeSym
            | AccessFs::MakeFifo
            | AccessFs::MakeSock
            | AccessFs::Refer
            | AccessFs::RemoveFile
            | AccessFs::RemoveDir;
    }
    if rights.contains(Rights::EXEC) {
        out |= AccessFs::Execute;
    }
    out
}

fn apply_landlock(
    plan: &LandlockPlan,
    network: bool,
    proc_mounted: bool,
    scratch: &Path,
) -> LandlockOutcome {
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
            let tmp = Rights::READ
                .union(Rights::WRITE)
                .union(Rights::CREATE)
                .union(Rights::REMOVE);
            let mut rules: Vec<(&Path, landlock::BitFlags<AccessFs>)> = plan
                .rules
                .iter()
                .map(|(p, r)| (p.as_path(), access(*r)))
                .collect();
            for (device, writable) in root::DEVICES {
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
            rules.push((scratch, access(tmp)));
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
            let mut detail = format!("{} rules", plan.rules.len());
            if !skipped.is_empty() {
                detail = format!("{detail}; absent: {}", skipped.join(", "));
            }
            let network = if enforcement == Enforcement::NotEnforced {
                LayerReport::missing(Layer::Network, "no Landlock")
            } else {
                LayerReport::new(
                    Layer::Network,
                    enforcement,
                    "Landlock: TCP bind and connect denied; abstract Unix sockets and signals scoped to the sandbox",
                )
            };
            LandlockOutcome {
                enforcement,
                detail,
                network,
            }
        }
        Err(err) => LandlockOutcome {
            enforcement: Enforcement::NotEnforced,
            detail: format!("Landlock failed: {err}"),
            network: LayerReport::missing(Layer::Network, "no Landlock"),
        },
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
    // PID 1 is not the host's to examine or rewrite (/proc/1/mem): it carries the same filters,
    // but nothing of it needs to be reachable.
    let _ = sys::set_non_dumpable();
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
