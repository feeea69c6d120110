//! Per-host cgroups for memory, process and CPU limits, on cgroup v2 or, where that is what the
//! machine has, the v1 hierarchies.
//!
//! Each host gets `<parent>/dscode-exthost-<supervisor pid>/<host>-<n>` in every hierarchy that
//! carries a needed controller. The child joins them before `exec` (see
//! [`crate::process::sys::ContainPlan::cgroups`]), so nothing the host starts escapes the limits.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Limits;
use super::probe::Check;

/// A controller this module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `memory`.
    Memory,
    /// `pids`.
    Pids,
    /// `cpu`.
    Cpu,
}

impl Controller {
    const ALL: [Self; 3] = [Self::Memory, Self::Pids, Self::Cpu];

    /// The controller's name in cgroup files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Pids => "pids",
            Self::Cpu => "cpu",
        }
    }
}

/// Where host cgroups can be made: one directory per controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parents {
    /// cgroup v2 (one directory for all controllers) or v1.
    pub v2: bool,
    /// For each usable controller, the directory host cgroups go under.
    pub dirs: Vec<(Controller, PathBuf)>,
}

fn mountinfo() -> Vec<(PathBuf, String, String)> {
    // (mount point, fs type, super options)
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fstype = right.next()?.to_owned();
            let _source = right.next();
            let options = right.next().unwrap_or_default().to_owned();
            Some((PathBuf::from(unescape(mount_point)), fstype, options))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Our own cgroup path in the hierarchy that has `controller` (v1), or in the unified one (v2).
fn own_path(v1_controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        match v1_controller {
            None => (id == "0" && controllers.is_empty()).then(|| path.to_owned()),
            Some(c) => controllers
                .split(',')
                .any(|x| x == c)
                .then(|| path.to_owned()),
        }
    })
}

fn writable(dir: &Path) -> bool {
    nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Finds where host cgroups can go. `explicit` is a directory the operator delegated (v2, or a
/// v1 hierarchy directory).
#[must_use]
pub fn find(explicit: Option<&Path>) -> Option<Parents> {
    let mounts = mountinfo();
    if let Some(dir) = explicit {
        let controllers = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
        let dirs: Vec<_> = Controller::ALL
            .into_iter()
            .filter(|c| controllers.split_whitespace().any(|x| x == c.name()))
            .map(|c| (c, dir.to_owned()))
            .collect();
        return (!dirs.is_empty() && writable(dir)).then_some(Parents { v2: true, dirs });
    }
    // cgroup v2 mounted with controllers: our own cgroup, if it delegates them to children and
    // we may write it.
    if let Some((mount, _, _)) = mounts.iter().find(|(_, t, _)| t == "cgroup2")
        && let Some(own) = own_path(None)
    {
        let dir = mount.join(own.trim_start_matches('/'));
        let subtree =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        let dirs: Vec<_> = Controller::ALL
            .into_iter()
            .filter(|c| subtree.split_whitespace().any(|x| x == c.name()))
            .map(|c| (c, dir.clone()))
            .collect();
        if !dirs.is_empty() && writable(&dir) {
            return Some(Parents { v2: true, dirs });
        }
    }
    // cgroup v1: one hierarchy per controller.
    let dirs: Vec<_> = Controller::ALL
        .into_iter()
        .filter_map(|c| {
            let (mount, _, _) = mounts
                .iter()
                .find(|(_, t, o)| t == "cgroup" && o.split(',').any(|x| x == c.name()))?;
            let own = own_path(Some(c.name()))?;
            let dir = mount.join(own.trim_start_matches('/'));
            writable(&dir).then_some((c, dir))
        })
        .collect();
    (!dirs.is_empty()).then_some(Parents { v2: false, dirs })
}

/// The cgroup line of `doctor`, for what [`find`] found.
#[must_use]
pub fn probe(found: Option<&Parents>) -> Check {
    match found {
        Some(parents) => {
            let names: Vec<_> = parents.dirs.iter().map(|(c, _)| c.name()).collect();
            let missing: Vec<_> = Controller::ALL
                .iter()
                .filter(|c| !parents.dirs.iter().any(|(d, _)| d == *c))
                .map(|c| c.name())
                .collect();
            let version = if parents.v2 { "v2" } else { "v1" };
            let mut detail = format!("cgroup {version} with {} delegated", names.join(", "));
            if missing.is_empty() {
                Check { available: true, detail, advice: None }
            } else {
                detail = format!("{detail}; missing {}", missing.join(", "));
                Check { available: true, detail, advice: Some("delegate the missing controllers to the supervisor's cgroup".into()) }
            }
        }
        None => Check {
            available: false,
            detail: "no cgroup the supervisor may create children in".into(),
            advice: Some("run the supervisor in a delegated cgroup (systemd: `systemd-run --user -p Delegate=yes`), or set `cgroup_parent`; without one, memory falls back to an RSS watchdog and processes to RLIMIT_NPROC in a user namespace, and CPU is not limited".into()),
        },
    }
}

/// One host's cgroups. Removed on drop (the host must be dead by then).
#[derive(Debug)]
pub struct HostCgroup {
    v2: bool,
    dirs: Vec<(Controller, PathBuf)>,
    /// Counter files kept open once read, so a check is one `pread` instead of a path walk
    /// through cgroupfs (which dominated the supervisor's idle CPU with a hundred hosts).
    counters: std::sync::Mutex<Vec<(&'static str, std::fs::File)>>,
}

impl HostCgroup {
    /// Creates the host's cgroups under `parents` and writes `limits` into them. Controllers
    /// whose directory cannot be made are left out (the report says so).
    ///
    /// # Errors
    /// If no cgroup at all could be created.
    pub fn create(parents: &Parents, name: &str, limits: &Limits) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let leaf = format!(
            "dscode-exthost-{}/{}-{n}",
            std::process::id(),
            name.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                "_"
            )
        );
        let mut made: Vec<(Controller, PathBuf)> = Vec::new();
        let mut last_err = None;
        for (controller, parent) in &parents.dirs {
            if let Some((_, dir)) = made
                .iter()
                .find(|(_, d)| d.starts_with(parent) && parents.v2)
            {
                made.push((*controller, dir.clone()));
                continue;
            }
            let dir = parent.join(&leaf);
            if parents.v2 {
                // Children of the middle directory need the controllers enabled there.
                let middle = dir.parent().expect("leaf has a parent");
                let _ = std::fs::create_dir(middle);
                let enable: Vec<_> = parents
                    .dirs
                    .iter()
                    .map(|(c, _)| format!("+{}", c.name()))
                    .collect();
                let _ = std::fs::write(middle.join("cgroup.subtree_control"), enable.join(" "));
            }
            match std::fs::create_dir_all(&dir) {
                Ok(()) => made.push((*controller, dir)),
                Err(err) => last_err = Some(err),
            }
        }
        if made.is_empty() {
            return Err(last_err.unwrap_or_else(|| std::io::Error::other("no controller")));
        }
        let cgroup = Self {
            v2: parents.v2,
            dirs: made,
            counters: std::sync::Mutex::default(),
        };
        cgroup.write_limits(limits)?;
        Ok(cgroup)
    }

    fn dir(&self, controller: Controller) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// Which controllers this cgroup has.
    #[must_use]
    pub fn has(&self, controller: Controller) -> bool {
        self.dir(controller).is_some()
    }

    /// Whether this is cgroup v2.
    #[must_use]
    pub fn is_v2(&self) -> bool {
        self.v2
    }

    fn write_limits(&self, limits: &Limits) -> std::io::Result<()> {
        let write = |dir: &Path, file: &str, value: String| {
            std::fs::write(dir.join(file), value).map_err(|err| {
                std::io::Error::new(
                    err.kind(),
                    format!("writing {}: {err}", dir.join(file).display()),
                )
            })
        };
        if let Some(dir) = self.dir(Controller::Memory) {
            if self.v2 {
                write(dir, "memory.max", limits.memory_bytes.to_string())?;
                let _ = write(dir, "memory.swap.max", "0".into());
            } else {
                write(
                    dir,
                    "memory.limit_in_bytes",
                    limits.memory_bytes.to_string(),
                )?;
                let _ = write(
                    dir,
                    "memory.memsw.limit_in_bytes",
                    limits.memory_bytes.to_string(),
                );
            }
        }
        if let Some(dir) = self.dir(Controller::Pids) {
            write(dir, "pids.max", limits.pids.to_string())?;
        }
        if let Some(dir) = self.dir(Controller::Cpu) {
            let period = 100_000u64;
            let quota = period * limits.cpu_percent / 100;
            if self.v2 {
                write(dir, "cpu.max", format!("{quota} {period}"))?;
            } else {
                write(dir, "cpu.cfs_period_us", period.to_string())?;
                write(dir, "cpu.cfs_quota_us", quota.to_string())?;
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files to join, as C strings for the pre-exec child.
    #[must_use]
    pub fn procs_files(&self) -> Vec<CString> {
        let mut seen: Vec<&Path> = Vec::new();
        let mut out = Vec::new();
        for (_, dir) in &self.dirs {
            if seen.contains(&dir.as_path()) {
                continue;
            }
            seen.push(dir);
            let path = dir.join("cgroup.procs");
            out.push(CString::new(path.as_os_str().as_bytes()).expect("cgroup paths have no nul"));
        }
        out
    }

    fn counter(&self, controller: Controller, file: &'static str, key: &str) -> u64 {
        use std::os::unix::fs::FileExt;
        let mut counters = self.counters.lock().expect("counter files");
        if !counters.iter().any(|(name, _)| *name == file) {
            let Some(opened) = self
                .dir(controller)
                .and_then(|dir| std::fs::File::open(dir.join(file)).ok())
            else {
                return 0;
            };
            counters.push((file, opened));
        }
        let (_, handle) = counters
            .iter()
            .find(|(name, _)| *name == file)
            .expect("opened above");
        let mut buf = [0u8; 512];
        let Ok(n) = handle.read_at(&mut buf, 0) else {
            return 0;
        };
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
            .unwrap_or(0)
    }

    /// Times the memory limit made the kernel kill a process.
    #[must_use]
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.counter(Controller::Memory, file, "oom_kill")
    }

    /// Times a fork failed because of the process limit.
    #[must_use]
    pub fn pids_max_hits(&self) -> u64 {
        self.counter(Controller::Pids, "pids.events", "max")
    }

    /// Processes (and threads) in the cgroup now.
    #[must_use]
    pub fn pids_current(&self) -> Option<u64> {
        let dir = self.dir(Controller::Pids)?;
        std::fs::read_to_string(dir.join("pids.current"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Moves `root` and every process below it into the cgroups whose `cgroup.procs` are `files`
/// ([`HostCgroup::procs_files`]), walking the tree again until a pass finds no process it had
/// not moved: a process forked while the walk ran is caught by the next pass. Returns how many
/// processes it moved.
///
/// The Landlock backend calls this after the spawn rather than having the child join before
/// its `exec`, because the first migration in a while waits for an RCU grace period (5 to 17 ms
/// measured here): done now it overlaps Node's own start-up. Memory the host touched before
/// the move stays charged where it was (its boot footprint), since neither cgroup version
/// migrates charges. The caller must wait for this before the host loads extension code.
///
/// `cancel` stops it between two moves (the host's start failed and its pids may be reused).
///
/// # Errors
/// If a process that still exists cannot be moved, if the tree is still growing after
/// [`ATTACH_PASSES`] passes, or if it is larger than any host may be.
pub fn attach_tree(
    files: &[CString],
    root: u32,
    cancel: &std::sync::atomic::AtomicBool,
) -> std::io::Result<usize> {
    let mut moved = std::collections::HashSet::new();
    for _ in 0..ATTACH_PASSES {
        let Some(tree) = super::watch::tree_pids(root, MAX_TREE) else {
            return Err(std::io::Error::other(format!(
                "the host has more than {MAX_TREE} processes"
            )));
        };
        let fresh: Vec<u32> = tree
            .into_iter()
            .filter(|pid| !moved.contains(pid))
            .collect();
        if fresh.is_empty() {
            return Ok(moved.len());
        }
        for pid in fresh {
            if cancel.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("cancelled"));
            }
            for file in files {
                let path = Path::new(std::ffi::OsStr::from_bytes(file.as_bytes()));
                match std::fs::write(path, pid.to_string()) {
                    Ok(()) => {}
                    // Gone between the walk and the write: nothing left to limit.
                    Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(err) => {
                        return Err(std::io::Error::new(
                            err.kind(),
                            format!("cannot move process {pid} into {}: {err}", path.display()),
                        ));
                    }
                }
            }
            moved.insert(pid);
        }
    }
    Err(std::io::Error::other(format!(
        "the host kept starting processes through {ATTACH_PASSES} passes"
    )))
}

/// Walks of the host's tree before [`attach_tree`] gives up on a host that keeps forking. A
/// host that has not loaded extension code forks once (the stage starting Node).
pub const ATTACH_PASSES: usize = 16;

/// More processes than any host's tree may have while it is moved.
const MAX_TREE: usize = 4096;

impl Drop for HostCgroup {
    fn drop(&mut self) {
        for (_, dir) in &self.dirs {
            // EBUSY while a process lingers; the next start uses a fresh name, and the
            // supervisor's directory goes when the supervisor's last host does.
            let _ = std::fs::remove_dir(dir);
            if let Some(middle) = dir.parent() {
                let _ = std::fs::remove_dir(middle);
            }
        }
    }
}
