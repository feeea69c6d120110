//! What isolation this machine can enforce, and why not: the data behind `dscode-exthost doctor`
//! and behind `auto`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::process::sys;

/// One capability of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Whether it is usable.
    pub available: bool,
    /// What was found, or why it is missing.
    pub detail: String,
    /// What to do about it, when it is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl Check {
    fn yes(detail: impl Into<String>) -> Self {
        Self {
            available: true,
            detail: detail.into(),
            advice: None,
        }
    }

    fn no(detail: impl Into<String>, advice: impl Into<String>) -> Self {
        Self {
            available: false,
            detail: detail.into(),
            advice: Some(advice.into()),
        }
    }
}

/// The machine's isolation features.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// Unprivileged user namespaces (with PID, mount, network, IPC, UTS inside), for the user
    /// hosts run as (a root supervisor's run as the unprivileged host user).
    pub user_namespaces: Check,
    /// A private root: in its own user and mount namespace, the host's stage can clone mount
    /// trees (the new mount API, Linux 5.12) to build a root holding only the view.
    pub private_root: Check,
    /// The bubblewrap binary.
    pub bwrap: Check,
    /// Its path, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bwrap_path: Option<PathBuf>,
    /// Landlock.
    pub landlock: Check,
    /// The Landlock ABI version, 0 without Landlock.
    pub landlock_abi: i32,
    /// seccomp filters.
    pub seccomp: Check,
    /// A cgroup the supervisor may create host cgroups under.
    pub cgroups: Check,
    /// Where host cgroups go, per controller (what `cgroups` describes).
    #[serde(skip)]
    pub cgroup_parents: Option<super::cgroup::Parents>,
    /// Whether the supervisor runs as root.
    pub root: bool,
}

impl Probe {
    /// Probes the machine. Namespaces, Landlock and seccomp are probed once per process;
    /// `bwrap` and the cgroup are looked up every time (cheap, and they can change).
    #[must_use]
    pub fn run(bwrap: &Path, cgroup_parent: Option<&Path>) -> Self {
        static STATIC: OnceLock<(Check, Check, Check, i32, Check)> = OnceLock::new();
        let (user_namespaces, private_root, landlock, landlock_abi, seccomp) = STATIC
            .get_or_init(|| {
                let (landlock, abi) = probe_landlock();
                let host_user =
                    sys::is_root().then(|| super::HostUsers::default().for_host("doctor.probe"));
                (
                    probe_user_namespaces(host_user),
                    probe_private_root(host_user),
                    landlock,
                    abi,
                    probe_seccomp(),
                )
            })
            .clone();
        let (bwrap, bwrap_path) = probe_bwrap(bwrap);
        let cgroup_parents = super::cgroup::find(cgroup_parent);
        Self {
            user_namespaces,
            private_root,
            bwrap,
            bwrap_path,
            landlock,
            landlock_abi,
            seccomp,
            cgroups: super::cgroup::probe(cgroup_parents.as_ref()),
            cgroup_parents,
            root: sys::is_root(),
        }
    }

    /// Whether host cgroups can use `controller`.
    #[must_use]
    pub fn has_controller(&self, controller: super::cgroup::Controller) -> bool {
        self.cgroup_parents
            .as_ref()
            .is_some_and(|p| p.dirs.iter().any(|(c, _)| *c == controller))
    }

    /// Whether the bubblewrap backend can run: the binary, and user namespaces for the host
    /// user (a root supervisor runs bubblewrap as the unprivileged host user too).
    #[must_use]
    pub fn bwrap_usable(&self) -> bool {
        self.bwrap.available && self.user_namespaces.available
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

const HOST_NAMESPACES: libc::c_int = libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS;

fn probe_private_root(host_user: Option<(u32, u32)>) -> Check {
    if let Err(err) = sys::probe_unshare(HOST_NAMESPACES, host_user, false) {
        return Check::no(
            format!("no user namespace for the host to build it in: {err}"),
            "allow unprivileged user namespaces (see the namespaces layer)",
        );
    }
    match sys::probe_unshare(HOST_NAMESPACES, host_user, true) {
        Ok(()) => Check::yes(
            "the stage can build a root of only the view (open_tree, mount_setattr, move_mount)",
        ),
        Err(err) => Check::no(
            format!(
                "cloning mount trees fails: {err} (the new mount API needs Linux 5.12; a container's seccomp policy may forbid it)"
            ),
            "run on Linux 5.12 or newer, outside a seccomp policy that forbids open_tree and move_mount",
        ),
    }
}

fn probe_user_namespaces(host_user: Option<(u32, u32)>) -> Check {
    match sys::probe_unshare(HOST_NAMESPACES, host_user, false) {
        Ok(()) if host_user.is_some() => Check::yes(
            "user namespaces work for the unprivileged host user (user, pid, mount, net, ipc, uts)",
        ),
        Ok(()) => Check::yes("unprivileged user namespaces work (user, pid, mount, net, ipc, uts)"),
        Err(err) => {
            let mut why = format!("unshare(CLONE_NEWUSER) fails: {err}");
            let mut advice = String::from("allow unprivileged user namespaces");
            if read_trimmed("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
                == Some("1")
            {
                why.push_str("; AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)");
                advice = "add an AppArmor profile granting `userns` to this binary and to bwrap, or set kernel.apparmor_restrict_unprivileged_userns=0".into();
            } else if read_trimmed("/proc/sys/kernel/unprivileged_userns_clone").as_deref()
                == Some("0")
            {
                why.push_str("; kernel.unprivileged_userns_clone = 0");
                advice = "set kernel.unprivileged_userns_clone=1 (sysctl)".into();
            } else if read_trimmed("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
                why.push_str("; user.max_user_namespaces = 0");
                advice = "set user.max_user_namespaces to a positive value (sysctl)".into();
            } else if err.raw_os_error() == Some(libc::EPERM) {
                why.push_str("; a container or seccomp policy may forbid it");
                advice = "run where user namespaces are allowed, or use the landlock backend (it works without them)".into();
            }
            Check::no(why, advice)
        }
    }
}

fn probe_landlock() -> (Check, i32) {
    match sys::landlock_abi() {
        Ok(abi) => {
            let features = match abi {
                1 => "file system",
                2 => "file system with rename/link control",
                3 => "file system with truncate",
                4 => "file system and TCP bind/connect",
                5 => "file system, TCP and device ioctls",
                _ => "file system, TCP, device ioctls, abstract Unix socket and signal scoping",
            };
            (Check::yes(format!("Landlock ABI {abi}: {features}")), abi)
        }
        Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => (
            Check::no(
                "Landlock is built into the kernel but disabled",
                "add `landlock` to the `lsm=` kernel boot parameter",
            ),
            0,
        ),
        Err(err) => (
            Check::no(
                format!("no Landlock: {err}"),
                "use a kernel 5.13 or newer built with CONFIG_SECURITY_LANDLOCK, or the bwrap backend",
            ),
            0,
        ),
    }
}

fn probe_seccomp() -> Check {
    match sys::seccomp_mode() {
        Ok(_) if Path::new("/proc/sys/kernel/seccomp/actions_avail").exists() => {
            let actions =
                read_trimmed("/proc/sys/kernel/seccomp/actions_avail").unwrap_or_default();
            if actions.contains("errno") {
                Check::yes(format!("seccomp filters ({actions})"))
            } else {
                Check::no(
                    format!("seccomp lacks the errno action ({actions})"),
                    "use a newer kernel",
                )
            }
        }
        Ok(_) => Check::yes("seccomp filters"),
        Err(err) => Check::no(
            format!("no seccomp: {err}"),
            "use a kernel built with CONFIG_SECCOMP_FILTER",
        ),
    }
}

/// Finds `bwrap` and reads its version.
fn probe_bwrap(bwrap: &Path) -> (Check, Option<PathBuf>) {
    static VERSIONS: OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, Result<String, String>>>,
    > = OnceLock::new();
    let Some(path) = find_executable(bwrap) else {
        return (
            Check::no(
                format!("{} not found", bwrap.display()),
                "install bubblewrap (`apt-get install bubblewrap`, `dnf install bubblewrap`), or set the bwrap path",
            ),
            None,
        );
    };
    let versions = VERSIONS.get_or_init(Default::default);
    let version = versions
        .lock()
        .expect("bwrap versions")
        .entry(path.clone())
        .or_insert_with(|| {
            std::process::Command::new(&path)
                .arg("--version")
                .output()
                .map_err(|e| e.to_string())
                .and_then(|out| {
                    if out.status.success() {
                        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
                    } else {
                        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
                    }
                })
        })
        .clone();
    match version {
        Ok(version) => {
            let number = version.rsplit(' ').next().unwrap_or_default();
            if version_at_least(number, (0, 8)) {
                (
                    Check::yes(format!("{version} at {}", path.display())),
                    Some(path),
                )
            } else {
                (
                    Check::no(
                        format!(
                            "{version} at {} is older than 0.8 (no --disable-userns)",
                            path.display()
                        ),
                        "install bubblewrap 0.8 or newer",
                    ),
                    Some(path),
                )
            }
        }
        Err(err) => (
            Check::no(
                format!("{} --version failed: {err}", path.display()),
                "reinstall bubblewrap",
            ),
            Some(path),
        ),
    }
}

fn version_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let got = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    got >= (major, minor)
}

/// `program` itself if it has a slash, else the first match on `PATH`; only executable files.
pub(crate) fn find_executable(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return is_exec(program).then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_exec(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("0.8.0", (0, 8)));
        assert!(version_at_least("0.10.0", (0, 8)));
        assert!(!version_at_least("0.7.9", (0, 8)));
    }

    #[test]
    fn a_missing_bwrap_is_reported_with_advice() {
        let (check, path) = probe_bwrap(Path::new("/nonexistent/bwrap"));
        assert!(!check.available && path.is_none());
        assert!(check.advice.unwrap().contains("bubblewrap"));
    }

    #[test]
    fn the_kernel_here_has_landlock_and_seccomp() {
        // These machines' kernels have both (Landlock ABI 7); a probe that says otherwise is
        // broken, not cautious.
        let probe = Probe::run(Path::new("bwrap"), None);
        assert!(probe.landlock.available, "{:?}", probe.landlock);
        assert!(probe.landlock_abi >= 1);
        assert!(probe.seccomp.available, "{:?}", probe.seccomp);
    }
}

/// What this machine can do for one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSupport {
    /// The layer.
    pub layer: super::Layer,
    /// The best enforcement any backend reaches here.
    pub enforcement: super::Enforcement,
    /// The mechanism, or why it is missing.
    pub reason: String,
}

impl Probe {
    /// The backend `auto` resolves to on this machine.
    #[must_use]
    pub fn auto_backend(&self) -> super::Backend {
        use super::Backend;
        match (self.bwrap_usable(), self.landlock.available) {
            (true, true) => Backend::BwrapLandlock,
            (true, false) => Backend::Bwrap,
            _ => Backend::Landlock,
        }
    }

    /// Each layer with the best this machine can enforce and why.
    #[must_use]
    pub fn layers(&self) -> Vec<LayerSupport> {
        use super::cgroup::Controller;
        use super::{Enforcement as E, Layer};
        let namespaces = self.user_namespaces.available;
        let private_root = self.private_root.available;
        let memory_cgroup = self.has_controller(Controller::Memory);
        let pids_cgroup = self.has_controller(Controller::Pids);
        let cpu_cgroup = self.has_controller(Controller::Cpu);
        let entry = |layer, ok: bool, partial: bool, yes: String, no: String| LayerSupport {
            layer,
            enforcement: if ok {
                E::FullyEnforced
            } else if partial {
                E::PartiallyEnforced
            } else {
                E::NotEnforced
            },
            reason: if ok || partial { yes } else { no },
        };
        vec![
            entry(Layer::Namespaces, namespaces, false,
                if self.root { format!("root runs hosts as an unprivileged user: {}", self.user_namespaces.detail) } else { self.user_namespaces.detail.clone() },
                format!("{}; {}", self.user_namespaces.detail, self.user_namespaces.advice.clone().unwrap_or_default())),
            entry(Layer::Filesystem, private_root, self.landlock.available,
                if private_root {
                    [Some(format!("private root ({})", self.private_root.detail)), self.landlock.available.then(|| self.landlock.detail.clone())].into_iter().flatten().collect::<Vec<_>>().join("; ")
                } else {
                    format!("Landlock only ({}); no private root: {}, so paths outside the view can be examined and their metadata changed", self.landlock.detail, self.private_root.detail)
                },
                format!("no private root ({}) and no Landlock ({})", self.private_root.detail, self.landlock.detail)),
            entry(Layer::Network, self.seccomp.available || namespaces || self.landlock_abi >= 4, false,
                "seccomp refuses socket(); a network namespace and Landlock TCP rules where available".into(),
                "no seccomp, no network namespace and no Landlock TCP rules".into()),
            entry(Layer::Seccomp, self.seccomp.available, false, self.seccomp.detail.clone(),
                format!("{}; {}", self.seccomp.detail, self.seccomp.advice.clone().unwrap_or_default())),
            entry(Layer::Capabilities, true, false, "capability sets cleared and verified in the stage".into(), String::new()),
            entry(Layer::NoNewPrivs, true, false, "PR_SET_NO_NEW_PRIVS".into(), String::new()),
            entry(Layer::Environment, true, false, "cleared environment plus the profile's allow-list".into(), String::new()),
            entry(Layer::Descriptors, true, false, "close-on-exec for every fd but stdio and IPC".into(), String::new()),
            entry(Layer::Tmp, private_root, false,
                "private size-capped noexec tmpfs in the host's root".into(),
                format!("no private root ({}): /tmp cannot be made private", self.private_root.detail)),
            entry(Layer::Memory, memory_cgroup, true,
                if memory_cgroup { format!("cgroup: {}", self.cgroups.detail) } else { format!("no memory cgroup ({}): RSS watchdog and a V8 heap cap only", self.cgroups.detail) },
                String::new()),
            entry(Layer::Processes, pids_cgroup || namespaces, true,
                if pids_cgroup { format!("cgroup: {}", self.cgroups.detail) } else if namespaces { "RLIMIT_NPROC in the host's user namespace".into() } else { "the supervisor's process-count watchdog only".into() },
                String::new()),
            entry(Layer::Cpu, cpu_cgroup, false, format!("cgroup: {}", self.cgroups.detail),
                format!("{}; {}", self.cgroups.detail, self.cgroups.advice.clone().unwrap_or_default())),
            entry(Layer::Files, true, false, "RLIMIT_NOFILE and RLIMIT_FSIZE".into(), String::new()),
            entry(Layer::CoreDumps, true, false, "RLIMIT_CORE 0".into(), String::new()),
        ]
    }
}
