//! Bringing a host process up: the sandbox prepared and the process spawned ([`spawn`]), the
//! sandbox stage's report read and checked ([`read_stage`]), and the host's move into its cgroup
//! awaited ([`join_cgroup`]). Each is one effect of the machine, reported back as one input.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::options::HostSpec;
use super::watchdog::LimitGuard;
use crate::process::{Containment, Isolation, SpawnError, SpawnedHost, spawn_host};
use crate::rpc::{Events, Peer, Transport};
use crate::sandbox::{Backend, Enforcement, EnforcementReport, Prepared, SandboxError};

/// The longest wait for a host's move into its cgroup.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// A host process and what belongs to it, from its spawn until the machine releases it.
pub(crate) struct LiveHost {
    /// The process.
    pub(crate) process: SpawnedHost,
    /// Its cgroup and the limits the supervisor watches itself.
    pub(crate) limits: LimitGuard,
    /// The sandbox's plan, until the stage's report has been checked against it.
    prepared: Option<Prepared>,
    /// Its move into the cgroup, while under way.
    pub(crate) attach: Option<Attach>,
    /// The framed socket, from the handshake until the connection starts.
    pub(crate) transport: Option<Transport>,
    /// The connection, once started.
    pub(crate) connection: Option<(Peer, Events)>,
    /// Whether its exit has been seen (a reaped child is not waited for again).
    pub(crate) exited: bool,
    /// Whether the connection's events are still coming.
    pub(crate) events_open: bool,
    /// Whether the connection's closing has been reported (it is reported once).
    pub(crate) closed_reported: bool,
}

/// What the sandbox reported for a fresh process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// The host's own pid, found once the sandbox has forked it.
    pub(crate) pid: u32,
    /// How it is contained.
    pub(crate) containment: Containment,
    /// What was enforced, layer by layer.
    pub(crate) sandbox: EnforcementReport,
}

/// Why no host process was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// The task that prepares the sandbox failed.
    #[error("sandbox set-up failed")]
    SetupTask(#[source] tokio::task::JoinError),
    /// The sandbox cannot be set up on this machine, as the profile asks.
    #[error(transparent)]
    Sandbox(SandboxError),
    /// The process could not be started.
    #[error(transparent)]
    Spawn(SpawnError),
}

/// Why the sandbox stage refused a start, with the stage's last line of output.
#[derive(Debug, thiserror::Error)]
#[error("{cause}{}", stage_output(.last_output.as_deref()))]
pub(crate) struct StageError {
    /// What went wrong.
    pub(crate) cause: StageFailure,
    /// The last line the stage wrote, which often says why.
    pub(crate) last_output: Option<String>,
}

/// What went wrong with the stage.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageFailure {
    /// Its report did not arrive, or could not be read (the message says which and what to do).
    #[error("{0}")]
    NoReport(String),
    /// The report shows a layer the profile requires was not enforced.
    #[error(transparent)]
    Refused(SandboxError),
}

fn stage_output(last: Option<&str>) -> String {
    last.map(|line| format!(" (stage output: {line})"))
        .unwrap_or_default()
}

/// Why the host could not join its cgroup.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    /// The move took too long.
    #[error("moving it took longer than {} ms", ATTACH_TIMEOUT.as_millis())]
    Timeout,
    /// The task moving it failed.
    #[error("the cgroup task failed")]
    Task(#[source] tokio::task::JoinError),
    /// A process could not be moved.
    #[error(transparent)]
    Move(std::io::Error),
}

/// Prepares the sandbox and spawns the host, both off the runtime's threads: probing, cgroup
/// set-up and the spawn block for a moment, and other hosts' traffic flows meanwhile even on a
/// current-thread runtime.
///
/// # Errors
/// [`LaunchError`] when no process was made.
pub(crate) async fn spawn(spec: Arc<HostSpec>) -> Result<LiveHost, LaunchError> {
    let prepare = {
        let spec = Arc::clone(&spec);
        tokio::task::spawn_blocking(move || {
            crate::sandbox::prepare(
                &spec.id,
                &spec.command,
                &spec.extension_path,
                spec.storage_path.as_deref(),
                &spec.sandbox,
            )
        })
    };
    let mut prepared = prepare
        .await
        .map_err(LaunchError::SetupTask)?
        .map_err(|err| match err {
            SandboxError::ProgramNotFound(program) => LaunchError::Spawn(SpawnError::NotFound {
                hint: crate::process::hint_for(&program),
                program: program.display().to_string(),
            }),
            other => LaunchError::Sandbox(other),
        })?;
    let overlap_attach = prepared.backend == Backend::Landlock;
    let isolation = Isolation {
        pid_namespace: prepared.namespaces.pid,
        user_namespace: prepared.namespaces.user,
        extra_namespaces: prepared.namespaces.extra,
        // The Landlock backend's host joins after the spawn (see `attach_tree`), off the
        // start's critical path. bubblewrap makes a cgroup namespace as it starts, so its
        // host must already be in the cgroup then.
        cgroups: match &prepared.cgroup {
            Some(cgroup) if !overlap_attach => cgroup.procs_files(),
            _ => Vec::new(),
        },
        stage_plan: prepared
            .plan
            .as_ref()
            .map(|plan| serde_json::to_vec(plan).expect("plans serialize")),
        stage_fds: std::mem::take(&mut prepared.trees),
        stage_exe: prepared.stage_exe.take(),
        drop_to: prepared.drop_to,
    };
    let spawn = {
        let command = prepared.command.clone();
        let id = spec.id.clone();
        tokio::task::spawn_blocking(move || spawn_host(&command, &id, &isolation))
    };
    let process = spawn
        .await
        .unwrap_or_else(|err| {
            Err(SpawnError::Io {
                program: prepared.command.program.display().to_string(),
                source: std::io::Error::other(format!("the spawn task failed: {err}")),
            })
        })
        .map_err(LaunchError::Spawn)?;
    // Into the cgroup while Node boots; awaited before any extension code is loaded.
    let attach = match &prepared.cgroup {
        Some(cgroup) if overlap_attach => Some(Attach::start(cgroup.procs_files(), process.group)),
        _ => None,
    };
    let limits = LimitGuard::new(
        prepared.cgroup.take(),
        prepared.watchdog,
        process.group,
        spec.sandbox.profile.limits.pids,
    );
    Ok(LiveHost {
        process,
        limits,
        prepared: Some(prepared),
        attach,
        transport: None,
        connection: None,
        exited: false,
        events_open: false,
        closed_reported: false,
    })
}

/// Reads the sandbox stage's report (if the sandbox has a stage) and checks it against what
/// the profile requires. The host is lent for the read and handed back with the outcome.
pub(crate) async fn read_stage(
    spec: Arc<HostSpec>,
    mut host: LiveHost,
) -> (LiveHost, Result<Box<Enforced>, StageError>) {
    let mut prepared = host.prepared.take().expect("a fresh host has its plan");
    if let Some(stage) = host.process.stage.take() {
        if !prepared.backend.uses_bwrap() {
            let entry = crate::sandbox::prepare::namespaces_entry(host.process.pid);
            prepared.merge_entry(entry);
        }
        let timeout = spec.options.handshake_timeout;
        let report =
            crate::sandbox::watch::read_stage_report(stage, &mut host.process.child, timeout).await;
        // bubblewrap forks its sandboxed child after the spawn returns; once the stage has
        // reported, it is there to be found.
        host.process.locate();
        let checked = match report {
            Err(message) => Err(StageFailure::NoReport(message)),
            Ok(report) => prepared
                .finish(report, &spec.sandbox.profile.required)
                .map_err(StageFailure::Refused),
        };
        if let Err(cause) = checked {
            let last_output = host.process.output.snapshot().pop();
            return (host, Err(StageError { cause, last_output }));
        }
    }
    log_enforcement(&spec.id, &host.process, &prepared);
    let enforced = Enforced {
        pid: host.process.pid,
        containment: host.process.containment,
        sandbox: prepared.report,
    };
    (host, Ok(Box::new(enforced)))
}

fn log_enforcement(id: &str, process: &SpawnedHost, prepared: &Prepared) {
    if process.containment == Containment::DeathSignalOnly {
        tracing::warn!(extension = %id, "the kernel refused a PID namespace: processes this host starts may outlive it");
    }
    if prepared.backend == Backend::None {
        tracing::warn!(extension = %id, "sandbox backend `none`: this host runs with the user's full rights");
        return;
    }
    tracing::info!(extension = %id, backend = %prepared.backend, overall = ?prepared.report.overall(), report = %serde_json::to_string(&prepared.report).unwrap_or_default(), "sandbox enforced");
    for entry in &prepared.report.layers {
        if entry.enforcement != Enforcement::FullyEnforced {
            tracing::warn!(extension = %id, layer = %entry.layer, enforcement = ?entry.enforcement, detail = %entry.detail, "sandbox layer not fully enforced");
        }
    }
}

/// Waits for the host's move into its cgroup, if one is under way.
///
/// # Errors
/// [`CgroupError`] when the host is not in its cgroup, so its limits would not hold.
pub(crate) async fn join_cgroup(attach: Option<Attach>) -> Result<(), CgroupError> {
    let Some(mut attach) = attach else {
        return Ok(());
    };
    match tokio::time::timeout(ATTACH_TIMEOUT, &mut attach.task).await {
        Err(_) => Err(CgroupError::Timeout),
        Ok(Err(err)) => Err(CgroupError::Task(err)),
        Ok(Ok(moved)) => moved.map(drop).map_err(CgroupError::Move),
    }
}

/// A host's move into its cgroup after the spawn. Dropping it (the start failed or was
/// abandoned) stops the move, so pids freed by the failed host are never moved by mistake.
pub(crate) struct Attach {
    task: tokio::task::JoinHandle<std::io::Result<usize>>,
    cancel: Arc<AtomicBool>,
}

impl Attach {
    fn start(files: Vec<std::ffi::CString>, root: u32) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&cancel);
        let task = tokio::task::spawn_blocking(move || {
            crate::sandbox::cgroup::attach_tree(&files, root, &flag)
        });
        Self { task, cancel }
    }
}

impl Drop for Attach {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}
