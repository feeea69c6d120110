//! Turning a host's command and a [`SandboxSpec`] into what `spawn_host` runs.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::cgroup::{Controller, HostCgroup};
use super::probe::{Probe, find_executable};
use super::root::{Bind, RootPlan};
use super::stage::{LandlockPlan, Rlimits, StagePlan, StageReport};
use super::view::{self, EntryKind, Rights, View, ViewRequest};
use super::{
    Backend, Enforcement, EnforcementReport, Layer, LayerReport, SandboxError, SandboxSpec, bwrap,
};
use crate::process::HostCommand;
use crate::process::sys::{self, mount_attr};

/// A host start, sandboxed: what to spawn and how, and what is known about its enforcement
/// before it runs.
#[derive(Debug)]
pub struct Prepared {
    /// The backend that will run (never `auto`).
    pub backend: Backend,
    /// What to execute: `bwrap`, the stage, or (backend `none`) the host itself.
    pub command: HostCommand,
    /// The plan for the stage, when there is one.
    pub plan: Option<StagePlan>,
    /// Namespaces the pre-exec child creates itself (the Landlock backend).
    pub namespaces: Namespaces,
    /// The host's cgroup, when the machine delegates one.
    pub cgroup: Option<HostCgroup>,
    /// Limits the supervisor watches itself because no cgroup enforces them.
    pub watchdog: Watchdog,
    /// The layers known before the host runs; the stage adds its own.
    pub report: EnforcementReport,
    /// What the host may reach directly, as computed for this start.
    pub view: View,
    /// Detached mount trees the stage attaches (a root supervisor clones them, since the
    /// unprivileged host user may not reach every path), sent with the plan.
    pub trees: Vec<OwnedFd>,
    /// The unprivileged user and group a root supervisor's pre-exec child becomes.
    pub drop_to: Option<(u32, u32)>,
    /// The stage executable, opened here, which the command runs as `/proc/self/fd/N`.
    pub stage_exe: Option<OwnedFd>,
}

/// Namespaces made in the pre-exec child.
#[derive(Debug, Clone, Copy, Default)]
pub struct Namespaces {
    /// A PID namespace with the shim outside it.
    pub pid: bool,
    /// A user namespace.
    pub user: bool,
    /// Mount, network, IPC and UTS namespaces as well.
    pub extra: libc::c_int,
}

/// Limits the supervisor enforces by polling, where no cgroup does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watchdog {
    /// Kill the host when its processes' resident memory exceeds this.
    pub memory_bytes: Option<u64>,
    /// Kill the host when it has this many processes and threads.
    pub pids: Option<u64>,
}

impl Prepared {
    /// Adds an entry measured after the spawn (the host's namespaces).
    pub fn merge_entry(&mut self, entry: LayerReport) {
        merge(&mut self.report, entry);
    }

    /// Merges the stage's entries into the report and applies the profile's requirements: a
    /// layer entry from the stage replaces a missing one, and two mechanisms for one layer
    /// count as the stronger.
    ///
    /// # Errors
    /// [`SandboxError::Unavailable`] when a required layer ended up not enforced, or the stage
    /// refused.
    pub fn finish(&mut self, stage: StageReport, required: &[Layer]) -> Result<(), SandboxError> {
        if let Some(error) = stage.error {
            return Err(match stage.failed_layer {
                Some(layer) => SandboxError::Unavailable {
                    profile: self.report.profile.clone(),
                    backend: self.backend,
                    layer,
                    message: error,
                },
                None => SandboxError::StageFailed(error),
            });
        }
        for entry in stage.layers {
            merge(&mut self.report, entry);
        }
        mark_required(&mut self.report, required);
        check_required(&self.report, self.backend)
    }
}

fn merge(report: &mut EnforcementReport, entry: LayerReport) {
    match report.layers.iter_mut().find(|l| l.layer == entry.layer) {
        Some(existing)
            if existing.enforcement == Enforcement::NotEnforced && existing.detail.is_empty() =>
        {
            *existing = entry;
        }
        // The stage's verdict on the file system is the whole of it: the root and Landlock.
        Some(existing) if entry.layer == Layer::Filesystem => *existing = entry,
        Some(existing) => {
            if entry.enforcement > existing.enforcement {
                existing.enforcement = entry.enforcement;
            }
            existing.detail = format!("{}; {}", existing.detail, entry.detail);
        }
        None => report.layers.push(entry),
    }
}

fn mark_required(report: &mut EnforcementReport, required: &[Layer]) {
    for entry in &mut report.layers {
        entry.required = required.contains(&entry.layer);
    }
    report.layers.sort_by_key(|l| l.layer);
}

/// A required layer must be fully enforced: "partially" names a gap the profile did not accept.
fn check_required(report: &EnforcementReport, backend: Backend) -> Result<(), SandboxError> {
    match report
        .layers
        .iter()
        .find(|l| l.required && l.enforcement != Enforcement::FullyEnforced)
    {
        Some(missing) => Err(SandboxError::Unavailable {
            profile: report.profile.clone(),
            backend,
            layer: missing.layer,
            message: missing.detail.clone(),
        }),
        None => Ok(()),
    }
}

/// The Namespaces entry for a host, from its `/proc/<pid>/ns` links compared with ours.
#[must_use]
pub fn namespaces_entry(host_pid: u32) -> LayerReport {
    let names = ["user", "pid", "mnt", "net", "ipc", "uts"];
    let mut own = Vec::new();
    let mut shared = Vec::new();
    for name in names {
        let theirs = std::fs::read_link(format!("/proc/{host_pid}/ns/{name}"));
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t != o => own.push(name),
            _ => shared.push(name),
        }
    }
    let detail = if shared.is_empty() {
        format!("own {}", own.join(", "))
    } else {
        format!(
            "own {}; shared {}",
            if own.is_empty() {
                "none".to_owned()
            } else {
                own.join(", ")
            },
            shared.join(", ")
        )
    };
    // Every host has a user namespace of its own, a root supervisor's too (its hosts run as an
    // unprivileged user).
    let enough = shared.is_empty();
    match (own.is_empty(), enough) {
        (true, _) => LayerReport::missing(Layer::Namespaces, detail),
        (false, true) => LayerReport::full(Layer::Namespaces, detail),
        (false, false) => LayerReport::partial(Layer::Namespaces, detail),
    }
}

/// Where a program's installation lives: `/opt/node` for `/opt/node/bin/node`.
fn install_prefix(program: &Path) -> Option<PathBuf> {
    let dir = program.parent()?;
    if dir.file_name().is_some_and(|n| n == "bin") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

fn under_any(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

/// What the host program needs beyond the profile's runtime: its own installation and the
/// folders of its script arguments (the embedded node-host).
fn runtime_paths(profile_runtime: &[PathBuf], program: &Path, args: &[OsString]) -> Vec<PathBuf> {
    let mut runtime: Vec<PathBuf> = profile_runtime.to_vec();
    let canonical: Vec<PathBuf> = runtime
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    if !under_any(program, &canonical)
        && let Some(prefix) = install_prefix(program)
    {
        runtime.push(prefix);
    }
    for arg in args {
        let path = Path::new(arg);
        if path.is_absolute() && path.exists() {
            let dir = if path.is_dir() {
                Some(path)
            } else {
                path.parent()
            };
            runtime.extend(dir.map(Path::to_path_buf));
        }
    }
    runtime
}

/// The binds of the minimal root, and for a root supervisor (`host_user`) the trees to send:
/// each cloned from the path now, with its flags set, so the unprivileged host user needs no
/// access to the folders above it. A granted workspace folder is also idmapped, its owner shown
/// as the host user, so what the grant allows the host to do directly the file's mode allows
/// too (files keep their owner on disk).
fn binds(
    view: &View,
    host_user: Option<(u32, u32)>,
) -> Result<(Vec<Bind>, Vec<OwnedFd>), SandboxError> {
    let mut binds = Vec::new();
    let mut trees = Vec::new();
    for entry in &view.entries {
        let writable = entry.rights.changes();
        let exec = entry.rights.contains(Rights::EXEC);
        let mut bind = Bind {
            path: entry.path.clone(),
            kind: entry.kind.clone(),
            writable,
            exec,
            tree: None,
            identity: None,
        };
        if !matches!(entry.kind, EntryKind::Symlink(_)) {
            let Ok(meta) = std::fs::symlink_metadata(&entry.path) else {
                continue;
            };
            bind.identity = Some((meta.dev(), meta.ino()));
            if let Some(host) = host_user {
                let owner = (meta.uid(), meta.gid());
                let idmap = (entry.origin == view::Origin::Grant && owner != host)
                    .then(|| idmap_for(owner, host))
                    .flatten();
                let tree = sys::open_path_no_symlinks(None, &entry.path)
                    .and_then(|fd| sys::clone_tree(fd.as_fd()))
                    .and_then(|tree| {
                        let mut set = mount_attr::NOSUID | mount_attr::NODEV;
                        if !writable {
                            set |= mount_attr::RDONLY;
                        }
                        if !exec {
                            set |= mount_attr::NOEXEC;
                        }
                        sys::set_mount_attributes(tree.as_fd(), set, 0, None)?;
                        if let Some(userns) = &idmap {
                            // Best effort: a file system without idmapped mounts keeps its ids.
                            if let Err(err) = sys::set_mount_attributes(
                                tree.as_fd(),
                                mount_attr::IDMAP,
                                0,
                                Some(userns.as_fd()),
                            ) {
                                tracing::warn!(path = %entry.path.display(), error = %err, "no idmapped mount here");
                            }
                        }
                        Ok(tree)
                    })
                    .map_err(|source| SandboxError::View {
                        path: entry.path.clone(),
                        source,
                    })?;
                bind.tree = Some(trees.len());
                trees.push(tree);
            }
        }
        binds.push(bind);
    }
    Ok((binds, trees))
}

/// A user namespace mapping `owner` to `host` for idmapped mounts, made once per pair and kept
/// for the supervisor's lifetime (each is a forked helper's namespace, a few hundred bytes).
fn idmap_for(owner: (u32, u32), host: (u32, u32)) -> Option<std::sync::Arc<OwnedFd>> {
    type Known = Vec<((u32, u32), (u32, u32), Option<std::sync::Arc<OwnedFd>>)>;
    static KNOWN: std::sync::Mutex<Known> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().expect("idmap cache");
    if let Some((_, _, fd)) = known.iter().find(|(o, h, _)| *o == owner && *h == host) {
        return fd.clone();
    }
    let made = sys::idmap_userns(owner, host)
        .inspect_err(|err| {
            tracing::warn!(owner = ?owner, error = %err, "no idmapped mounts: the host user may only change what its mode lets anyone change");
        })
        .ok()
        .map(std::sync::Arc::new);
    known.push((owner, host, made.clone()));
    made
}

/// Makes `storage` belong to the host user of a root supervisor, so the host can write it.
fn give_storage(storage: &Path, (uid, gid): (u32, u32)) -> Result<(), SandboxError> {
    let fail = |source: std::io::Error| SandboxError::Storage {
        path: storage.to_owned(),
        uid,
        source,
    };
    let meta = std::fs::symlink_metadata(storage).map_err(fail)?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    let mut stack = vec![storage.to_owned()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(fail)?;
        if std::fs::symlink_metadata(&path).map_err(fail)?.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(fail)? {
                stack.push(entry.map_err(fail)?.path());
            }
        }
    }
    Ok(())
}

/// Plans the start of `command` for extension `id` under `sandbox`.
///
/// # Errors
/// [`SandboxError::Unavailable`] when the backend cannot run here or a required layer cannot
/// be enforced; [`SandboxError::Stage`] when the stage executable cannot be found, and
/// [`SandboxError::View`] or [`SandboxError::Storage`] when the root
/// cannot be prepared.
#[allow(clippy::too_many_lines)] // the layers in report order; each is a few lines
pub fn prepare(
    id: &str,
    command: &HostCommand,
    extension_path: &Path,
    storage_path: Option<&Path>,
    sandbox: &SandboxSpec,
) -> Result<Prepared, SandboxError> {
    let profile = &sandbox.profile;
    let settings = &sandbox.settings;
    let root = sys::is_root();
    let mut report = EnforcementReport {
        profile: profile.name.clone(),
        backend: profile.backend,
        layers: Layer::ALL
            .iter()
            .map(|&l| LayerReport::missing(l, ""))
            .collect(),
    };
    merge(
        &mut report,
        LayerReport::full(
            Layer::Environment,
            format!("cleared; passed through: {}", profile.env.join(", ")),
        ),
    );
    merge(
        &mut report,
        LayerReport::full(
            Layer::Descriptors,
            "only stdio and the IPC socket (fd 3); everything else closes at exec",
        ),
    );
    let stage = || -> Result<PathBuf, SandboxError> {
        let stage = match &settings.stage {
            Some(stage) => stage.clone(),
            None => std::env::current_exe().map_err(|source| SandboxError::Stage {
                path: PathBuf::from("/proc/self/exe"),
                source,
            })?,
        };
        std::fs::canonicalize(&stage).map_err(|source| SandboxError::Stage {
            path: stage.clone(),
            source,
        })
    };
    if profile.backend == Backend::None {
        // A root supervisor runs a `none` host directly; a user's needs the stage for its maps.
        let stage = if root { None } else { Some(stage()?) };
        return prepare_none(
            id,
            command,
            stage.as_deref(),
            extension_path,
            report,
            profile,
        );
    }
    let stage = stage()?;

    let probe = Probe::run(&settings.bwrap, settings.cgroup_parent.as_deref());
    let unavailable = |layer: Layer, backend: Backend, message: String| SandboxError::Unavailable {
        profile: profile.name.clone(),
        backend,
        layer,
        message,
    };
    let landlock_ok = probe.landlock.available;
    let backend = match profile.backend {
        Backend::Auto => probe.auto_backend(),
        other => other,
    };
    report.backend = backend;
    if backend.uses_bwrap() && !probe.bwrap_usable() {
        let why = if probe.bwrap.available {
            format!(
                "{}: {}",
                probe.user_namespaces.detail,
                probe.user_namespaces.advice.clone().unwrap_or_default()
            )
        } else {
            format!(
                "{}; {}, or use a profile with backend = \"landlock\"",
                probe.bwrap.detail,
                probe.bwrap.advice.clone().unwrap_or_default()
            )
        };
        return Err(unavailable(Layer::Namespaces, backend, why));
    }
    if backend.uses_landlock()
        && !landlock_ok
        && profile.requires(Layer::Filesystem)
        && !backend.uses_bwrap()
    {
        return Err(unavailable(
            Layer::Filesystem,
            backend,
            format!(
                "{}; {}",
                probe.landlock.detail,
                probe.landlock.advice.clone().unwrap_or_default()
            ),
        ));
    }
    let program = find_executable(&command.program)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| SandboxError::ProgramNotFound(command.program.clone()))?;

    let runtime = runtime_paths(&profile.runtime, &program, &command.args);
    let precise = backend.uses_landlock() && landlock_ok;
    let view = view::compute(
        &ViewRequest {
            runtime: &runtime,
            extension: extension_path,
            storage: storage_path,
            profile_read: &profile.read,
            profile_write: &profile.write,
            grants: &sandbox.grants,
            private: &settings.private,
            protected: &profile.protected,
            precise,
        },
        &mut view::RealTree::default(),
    );
    if !view.omitted.is_empty() {
        tracing::info!(extension = id, omitted = ?view.omitted.iter().map(|o| format!("{}: {}", o.scope, o.reason)).collect::<Vec<_>>(), "grants the sandbox leaves to the broker (the host's own fs calls cannot reach them)");
    }
    let host_user = root.then(|| settings.host_users.for_host(id));
    if let (Some(user), Some(storage)) = (host_user, storage_path) {
        give_storage(storage, user)?;
    }
    let (binds, trees) = binds(&view, host_user)?;

    // Cgroups first: what they cannot do falls to the watchdog and rlimits.
    let cgroup = probe
        .cgroup_parents
        .as_ref()
        .and_then(|parents| match HostCgroup::create(parents, id, &profile.limits) {
            Ok(cgroup) => Some(cgroup),
            Err(err) => {
                tracing::warn!(extension = id, error = %err, "could not create a cgroup for the host");
                None
            }
        });
    let version = |c: &HostCgroup| if c.is_v2() { "v2" } else { "v1" };
    let mut watchdog = Watchdog::default();
    let mib = |b: u64| b / (1024 * 1024);
    let limits = &profile.limits;
    #[allow(clippy::single_match_else)]
    match cgroup.as_ref().filter(|c| c.has(Controller::Memory)) {
        Some(c) => merge(
            &mut report,
            LayerReport::full(
                Layer::Memory,
                format!(
                    "cgroup {} memory limit {} MiB",
                    version(c),
                    mib(limits.memory_bytes)
                ),
            ),
        ),
        None => {
            watchdog.memory_bytes = Some(limits.memory_bytes);
            merge(
                &mut report,
                LayerReport::partial(
                    Layer::Memory,
                    format!(
                        "no memory cgroup: the supervisor kills the host above {} MiB resident (checked every 100 ms), V8 heap capped",
                        mib(limits.memory_bytes)
                    ),
                ),
            );
        }
    }
    let pids_cgroup = cgroup.as_ref().is_some_and(|c| c.has(Controller::Pids));
    let processes = if let Some(c) = cgroup.as_ref().filter(|c| c.has(Controller::Pids)) {
        LayerReport::full(
            Layer::Processes,
            format!("cgroup {} pids limit {}", version(c), limits.pids),
        )
    } else {
        watchdog.pids = Some(limits.pids);
        LayerReport::full(
            Layer::Processes,
            format!("RLIMIT_NPROC {} in the host's user namespace", limits.pids),
        )
    };
    merge(&mut report, processes);
    match cgroup.as_ref().filter(|c| c.has(Controller::Cpu)) {
        Some(c) => merge(
            &mut report,
            LayerReport::full(
                Layer::Cpu,
                format!(
                    "cgroup {} cpu quota {}% of a core",
                    version(c),
                    limits.cpu_percent
                ),
            ),
        ),
        None => merge(
            &mut report,
            LayerReport::missing(
                Layer::Cpu,
                "no cpu cgroup delegated to the supervisor; `dscode-exthost doctor` says how",
            ),
        ),
    }
    merge(
        &mut report,
        LayerReport::full(Layer::CoreDumps, "RLIMIT_CORE 0"),
    );

    let mut env: Vec<(OsString, OsString)> = profile
        .env
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(name), v)))
        .collect();
    env.extend(command.env.iter().cloned());
    env.push((
        "DSCODE_IPC_FD".into(),
        crate::process::IPC_FD.to_string().into(),
    ));
    env.push(("DSCODE_EXTENSION_ID".into(), id.into()));
    let scratch = super::root::scratch_for(
        &view
            .entries
            .iter()
            .map(|e| e.path.as_path())
            .collect::<Vec<_>>(),
    );
    env.push(("TMPDIR".into(), scratch.clone().into()));
    if let Some(storage) = storage_path {
        env.push(("HOME".into(), storage.into()));
    }
    let mut args = command.args.clone();
    if program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("node"))
    {
        // V8 sizes its heap from the machine; keep it inside the memory limit so a heap that
        // grows is stopped by V8 with a clear error before the kernel or watchdog steps in.
        // An argument, not NODE_OPTIONS, which stays out of every host's environment.
        let heap_mib = (mib(limits.memory_bytes) * 3 / 4).max(16);
        args.insert(0, format!("--max-old-space-size={heap_mib}").into());
    }

    let supervisor_mnt_ns = std::fs::read_link("/proc/self/ns/mnt")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let cwd = command
        .cwd
        .clone()
        .unwrap_or_else(|| extension_path.to_owned());
    let namespaces;
    let init;
    let launched: HostCommand;
    let source;
    if backend.uses_bwrap() {
        let bwrap_path = probe.bwrap_path.clone().expect("usable bwrap has a path");
        launched = HostCommand {
            program: bwrap_path,
            args: bwrap::args(&bwrap::Namespaces {
                share_network: profile.network,
                stage: super::stage::exe_path(),
                links: bwrap::top_level(),
            }),
            env: Vec::new(),
            cwd: None,
        };
        namespaces = Namespaces::default();
        init = true;
        source = PathBuf::from(bwrap::HOST_ROOT);
        merge(
            &mut report,
            LayerReport::full(
                Layer::Namespaces,
                "bwrap: own user, pid, net, ipc, uts, mount, cgroup (nested namespaces refused by seccomp)",
            ),
        );
        if !profile.network {
            merge(
                &mut report,
                LayerReport::full(Layer::Network, "bwrap: empty network namespace"),
            );
        }
    } else {
        launched = HostCommand {
            program: super::stage::exe_path(),
            args: vec![super::stage::STAGE_ARG.into()],
            env: Vec::new(),
            cwd: None,
        };
        let mut extra = libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        if !profile.network {
            extra |= libc::CLONE_NEWNET;
        }
        namespaces = Namespaces {
            pid: true,
            user: true,
            extra,
        };
        init = true;
        source = PathBuf::from("/");
    }
    let landlock = backend.uses_landlock().then(|| LandlockPlan {
        rules: view
            .entries
            .iter()
            .filter(|e| !matches!(e.kind, EntryKind::Symlink(_)))
            .map(|e| (e.path.clone(), e.rights))
            .collect(),
    });
    // The user namespace gets its id maps from the stage, the first process in it that holds
    // none of the supervisor's memory; a root supervisor's child has become the host user first.
    let (uid, gid) = host_user.unwrap_or_else(|| {
        (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    });
    let plan = StagePlan {
        program,
        args,
        env,
        cwd,
        supervisor_mnt_ns,
        root: Some(RootPlan {
            source,
            binds,
            tmp_bytes: profile.tmp_bytes,
            tmp: scratch,
            proc: true,
        }),
        landlock,
        confine: true,
        network: profile.network,
        rlimits: Rlimits {
            open_files: limits.open_files,
            file_size: limits.file_size_bytes,
            // A pids cgroup is the limit where there is one, and counts refusals the supervisor
            // reads; an rlimit beside it would refuse first, silently.
            processes: (!pids_cgroup).then_some(limits.pids),
        },
        required: profile.required.clone(),
        init,
        id_maps: (!backend.uses_bwrap()).then_some((uid, gid)),
        trees: trees.len(),
    };
    mark_required(&mut report, &profile.required);
    // Layers the supervisor alone decides are checked now; the rest when the stage reports.
    for layer in [Layer::Memory, Layer::Processes, Layer::Cpu] {
        if let Some(entry) = report
            .layer(layer)
            .filter(|e| e.required && e.enforcement != Enforcement::FullyEnforced)
        {
            return Err(unavailable(layer, backend, entry.detail.clone()));
        }
    }
    Ok(Prepared {
        backend,
        command: launched,
        plan: Some(plan),
        namespaces,
        cgroup,
        watchdog,
        report,
        view,
        trees,
        drop_to: host_user,
        stage_exe: Some(open_stage(&stage)?),
    })
}

/// The stage executable, open for `exec` through `/proc/self/fd`.
fn open_stage(stage: &Path) -> Result<OwnedFd, SandboxError> {
    std::fs::File::open(stage)
        .map(OwnedFd::from)
        .map_err(|source| SandboxError::Stage {
            path: stage.to_owned(),
            source,
        })
}

/// Backend `none`: no sandbox. A user's host still gets a PID namespace (inside a user
/// namespace whose maps the stage writes, so it runs as the user and not as the overflow id),
/// so that nothing it starts outlives it; a root supervisor's host runs as root, which the
/// warning at every start says.
fn prepare_none(
    id: &str,
    command: &HostCommand,
    stage: Option<&Path>,
    extension_path: &Path,
    mut report: EnforcementReport,
    profile: &super::Profile,
) -> Result<Prepared, SandboxError> {
    for entry in &mut report.layers {
        if entry.detail.is_empty() {
            entry.detail = "backend `none`: no sandbox".into();
        }
    }
    mark_required(&mut report, &profile.required);
    check_required(&report, Backend::None)?;
    let (command, plan) = if let Some(stage) = stage {
        let program = find_executable(&command.program)
            .and_then(|p| std::fs::canonicalize(p).ok())
            .ok_or_else(|| SandboxError::ProgramNotFound(command.program.clone()))?;
        let mut env: Vec<(OsString, OsString)> = crate::process::ENV_PASSTHROUGH
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| (OsString::from(*name), v)))
            .collect();
        env.extend(command.env.iter().cloned());
        env.push((
            "DSCODE_IPC_FD".into(),
            crate::process::IPC_FD.to_string().into(),
        ));
        env.push(("DSCODE_EXTENSION_ID".into(), id.into()));
        let plan = StagePlan {
            program,
            args: command.args.clone(),
            env,
            cwd: command
                .cwd
                .clone()
                .unwrap_or_else(|| extension_path.to_owned()),
            supervisor_mnt_ns: String::new(),
            root: None,
            landlock: None,
            confine: false,
            network: true,
            rlimits: Rlimits {
                open_files: 0,
                file_size: 0,
                processes: None,
            },
            required: Vec::new(),
            init: true,
            id_maps: Some((
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )),
            trees: 0,
        };
        let launched = HostCommand {
            program: super::stage::exe_path(),
            args: vec![super::stage::STAGE_ARG.into()],
            env: Vec::new(),
            cwd: None,
        };
        (launched, Some((plan, stage)))
    } else {
        (command.clone(), None)
    };
    let stage_exe = match &plan {
        Some((_, stage)) => Some(open_stage(stage)?),
        None => None,
    };
    let root = plan.is_none();
    let plan = plan.map(|(plan, _)| plan);
    Ok(Prepared {
        backend: Backend::None,
        command,
        plan,
        namespaces: Namespaces {
            pid: true,
            user: !root,
            extra: 0,
        },
        cgroup: None,
        watchdog: Watchdog::default(),
        report,
        view: View::default(),
        trees: Vec::new(),
        drop_to: None,
        stage_exe,
    })
}
