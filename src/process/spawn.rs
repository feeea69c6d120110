//! Starting a host process: its command line, environment, IPC socket, output capture and
//! containment.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::sys::{self, ContainPlan, IdMaps};

/// The fd number a host finds its IPC socket at (`DSCODE_IPC_FD`).
pub const IPC_FD: i32 = 3;

/// Environment variables passed through from the supervisor; everything else is dropped, so
/// `NODE_OPTIONS`, `LD_PRELOAD` and the user's tokens never reach a host.
pub const ENV_PASSTHROUGH: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// A program to run as a host.
#[derive(Debug, Clone)]
pub struct HostCommand {
    /// The executable (looked up on `PATH` if it has no slash).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables, on top of [`ENV_PASSTHROUGH`].
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// Why a host could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The program does not exist.
    #[error("`{program}` was not found{hint}")]
    NotFound {
        /// The program.
        program: String,
        /// What to do about it.
        hint: String,
    },
    /// Any other failure.
    #[error("could not start `{program}`")]
    Io {
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// How well a host is kept from outliving the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Containment {
    /// The host is PID 1 of its own PID namespace: when it or the supervisor dies, everything it
    /// started dies too.
    PidNamespace,
    /// Only the host process itself dies with the supervisor; processes it starts could survive.
    /// Happens where the kernel refuses new namespaces.
    DeathSignalOnly,
}

/// The last lines a host wrote to stdout and stderr, kept for crash reports.
#[derive(Debug, Clone, Default)]
pub struct OutputTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

const TAIL_LINES: usize = 40;
const MAX_LINE: usize = 2048;

impl OutputTail {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().expect("output tail");
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A copy of the kept lines, oldest first.
    #[must_use]
    pub fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("output tail")
            .iter()
            .cloned()
            .collect()
    }
}

/// A started host process.
#[derive(Debug)]
pub struct SpawnedHost {
    /// The process the supervisor waits on: the shim with a PID namespace, else the host itself.
    /// Its pid is the process group id.
    pub child: Child,
    /// The process group (and the pid of `child`).
    pub group: u32,
    /// The host's own pid as seen from the supervisor.
    pub pid: u32,
    /// The supervisor's end of the IPC socket, until the caller takes it.
    pub ipc: Option<tokio::net::UnixStream>,
    /// What the host wrote lately.
    pub output: OutputTail,
    /// How the host is contained.
    pub containment: Containment,
    /// The supervisor's end of the sandbox stage's channel: the stage's report, then end of
    /// file once the host program runs.
    pub stage: Option<tokio::net::UnixStream>,
    readers: Vec<JoinHandle<()>>,
}

impl SpawnedHost {
    /// Looks for the host process again: a program that forks it later than the spawn (as
    /// bubblewrap does) is found once it has.
    pub fn locate(&mut self) {
        (self.pid, self.containment) = locate_host(self.group);
    }

    /// Waits briefly for the output readers to reach end of file, so the tail holds the host's
    /// last words, then returns it.
    pub async fn final_output(&mut self) -> Vec<String> {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), reader).await;
        }
        self.output.snapshot()
    }
}

/// How a host process is isolated when it is spawned.
#[derive(Debug)]
pub struct Isolation {
    /// Run the host as PID 1 of its own PID namespace, with a shim outside.
    pub pid_namespace: bool,
    /// Create a user namespace too (needed without `CAP_SYS_ADMIN`).
    pub user_namespace: bool,
    /// More namespaces to create with the PID namespace (best effort).
    pub extra_namespaces: libc::c_int,
    /// `cgroup.procs` files the child joins before anything else.
    pub cgroups: Vec<std::ffi::CString>,
    /// A plan for the sandbox stage, sent on its channel at fd 4. The spawned program then gets
    /// an empty environment: the stage sets the host's.
    pub stage_plan: Option<Vec<u8>>,
    /// Fds sent ahead of the plan (detached mount trees for the host's root).
    pub stage_fds: Vec<std::os::fd::OwnedFd>,
    /// The stage executable, placed at [`crate::sandbox::stage::STAGE_EXE_FD`] for a command
    /// that runs it as `/proc/self/fd/N`.
    pub stage_exe: Option<std::os::fd::OwnedFd>,
    /// The user and group a root supervisor's child becomes before anything else it does for
    /// the host (after joining the cgroups).
    pub drop_to: Option<(u32, u32)>,
}

impl Default for Isolation {
    /// The containment every host gets without a sandbox: a PID namespace (with a user
    /// namespace when not root), nothing else.
    fn default() -> Self {
        Self {
            pid_namespace: true,
            // Root can make a PID namespace directly; a user namespace would also take away its
            // access to files owned by unmapped users, which is the sandbox's job, not this one's.
            user_namespace: !sys::is_root(),
            extra_namespaces: 0,
            cgroups: Vec::new(),
            stage_plan: None,
            stage_fds: Vec::new(),
            stage_exe: None,
            drop_to: None,
        }
    }
}

/// Starts `command` as the host of `extension_id`.
///
/// The host gets: stdin from `/dev/null`; stdout and stderr piped to the supervisor's log and
/// kept in an [`OutputTail`]; its end of a fresh socketpair at fd [`IPC_FD`]; a cleared environment
/// plus [`ENV_PASSTHROUGH`], `DSCODE_IPC_FD` and `DSCODE_EXTENSION_ID`; a process group of its own;
/// and, where the kernel allows, a PID namespace of its own (see [`Containment`]).
///
/// # Errors
/// [`SpawnError`] when the process cannot be started.
#[allow(clippy::too_many_lines)]
pub fn spawn_host(
    command: &HostCommand,
    extension_id: &str,
    isolation: &Isolation,
) -> Result<SpawnedHost, SpawnError> {
    let program = command.program.display().to_string();
    let io_err = |source: io::Error| SpawnError::Io {
        program: program.clone(),
        source,
    };
    let (supervisor_end, host_end) = std::os::unix::net::UnixStream::pair().map_err(io_err)?;
    supervisor_end.set_nonblocking(true).map_err(io_err)?;

    let stage = match &isolation.stage_plan {
        Some(plan) => {
            let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(io_err)?;
            // The plan (paths and limits) must fit the socket buffer, since the stage that
            // reads it does not run yet: written non-blocking, so a plan too large fails here
            // with a message instead of waiting forever.
            ours.set_nonblocking(true).map_err(io_err)?;
            for batch in isolation
                .stage_fds
                .chunks(crate::sandbox::stage::MAX_FDS_PER_MESSAGE)
            {
                let borrowed: Vec<_> = batch.iter().map(std::os::fd::AsFd::as_fd).collect();
                sys::send_fds(&ours, &borrowed).map_err(io_err)?;
            }
            std::io::Write::write_all(&mut ours, plan).map_err(|err| {
                io_err(io::Error::new(
                    err.kind(),
                    format!(
                        "the sandbox plan ({} bytes) does not fit the stage's channel: {err}; grant fewer separate paths",
                        plan.len()
                    ),
                ))
            })?;
            ours.shutdown(std::net::Shutdown::Write).map_err(io_err)?;
            Some((ours, theirs))
        }
        None => None,
    };
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args).env_clear();
    if stage.is_none() {
        cmd.envs(
            ENV_PASSTHROUGH
                .iter()
                .filter_map(|name| std::env::var_os(name).map(|v| (*name, v))),
        )
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .env("DSCODE_IPC_FD", IPC_FD.to_string())
        .env("DSCODE_EXTENSION_ID", extension_id);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &command.cwd {
        // Checked here because a missing working directory fails the spawn with the same
        // `NotFound` as a missing program, and would be reported as one.
        if !cwd.is_dir() {
            let message = format!("working directory {} does not exist", cwd.display());
            return Err(io_err(io::Error::new(io::ErrorKind::NotFound, message)));
        }
        cmd.current_dir(cwd);
    }
    let plan = ContainPlan {
        parent_pid: libc::pid_t::try_from(std::process::id()).expect("pid fits pid_t"),
        ipc: Some((host_end.as_raw_fd(), IPC_FD)),
        stage: stage
            .as_ref()
            .map(|(_, theirs)| (theirs.as_raw_fd(), crate::sandbox::stage::STAGE_FD)),
        stage_exe: isolation
            .stage_exe
            .as_ref()
            .map(|exe| (exe.as_raw_fd(), crate::sandbox::stage::STAGE_EXE_FD)),
        pid_namespace: isolation.pid_namespace,
        extra_namespaces: isolation.extra_namespaces,
        user_namespace: isolation.user_namespace.then(IdMaps::identity),
        cgroups: isolation.cgroups.clone(),
        keep_caps_for_stage: stage.is_some(),
        drop_to: isolation.drop_to,
    };
    sys::contain_before_exec(&mut cmd, plan);
    let runtime = tokio::runtime::Handle::current();
    let spawned = on_spawner_thread(move || {
        let _runtime = runtime.enter();
        cmd.spawn()
    });
    let mut child = spawned.map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            SpawnError::NotFound {
                program: program.clone(),
                hint: hint_for(&command.program),
            }
        } else {
            SpawnError::Io {
                program: program.clone(),
                source,
            }
        }
    })?;
    drop(host_end);
    let stage = stage.map(|(ours, theirs)| {
        drop(theirs);
        ours
    });
    let group = child.id().expect("a just-spawned child has a pid");
    let (pid, containment) = locate_host(group);
    let output = OutputTail::default();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(tokio::spawn(capture(
            stdout,
            extension_id.to_owned(),
            "stdout",
            output.clone(),
        )));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(tokio::spawn(capture(
            stderr,
            extension_id.to_owned(),
            "stderr",
            output.clone(),
        )));
    }
    let ipc = tokio::net::UnixStream::from_std(supervisor_end).map_err(io_err)?;
    let stage = stage
        .map(tokio::net::UnixStream::from_std)
        .transpose()
        .map_err(io_err)?;
    Ok(SpawnedHost {
        stage,
        child,
        group,
        pid,
        ipc: Some(ipc),
        output,
        containment,
        readers,
    })
}

/// Runs `fork` on one thread that lives as long as the process.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. The
/// runtime's threads come and go (the blocking pool retires idle threads, `block_in_place` hands
/// a worker over), so forking on them would kill healthy hosts whenever such a thread retires.
fn on_spawner_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    type Job = Box<dyn FnOnce() + Send>;
    static SPAWNER: std::sync::OnceLock<std::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("dscode-exthost-spawner".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .expect("failed to start the spawner thread");
        jobs
    });
    let (done, result) = std::sync::mpsc::sync_channel(1);
    spawner
        .send(Box::new(move || drop(done.send(work()))))
        .expect("the spawner thread lives as long as the process");
    result
        .recv()
        .expect("the spawner thread lives as long as the process")
}

pub(crate) fn hint_for(program: &std::path::Path) -> String {
    match program.file_name().and_then(|n| n.to_str()) {
        Some("node") => ": install Node.js 18 or newer (`apt-get install nodejs`), or set `node` in the [supervisor] config to its path".into(),
        Some("python3") => ": install Python 3 (`apt-get install python3`)".into(),
        _ => ": check the host's `command` in the config".into(),
    }
}

/// Finds the host process and how it is contained. With a PID namespace the spawned process is
/// the shim and the host is its only child; without one the spawned process is the host. The
/// host's namespace link is read rather than the shim's, because the shim is as non-dumpable as
/// the supervisor and its `/proc` entries are closed to us.
fn locate_host(spawned: u32) -> (u32, Containment) {
    let Some(host) = first_child_of(spawned) else {
        return (spawned, Containment::DeathSignalOnly);
    };
    let theirs = std::fs::read_link(format!("/proc/{host}/ns/pid"));
    let ours = std::fs::read_link("/proc/self/ns/pid");
    match (theirs, ours) {
        (Ok(theirs), Ok(ours)) if theirs != ours => (host, Containment::PidNamespace),
        _ => (host, Containment::DeathSignalOnly),
    }
}

fn first_child_of(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Logs a host's output line by line and keeps the tail. Lines are capped so a host cannot make
/// the supervisor buffer an endless line.
async fn capture(
    mut stream: impl AsyncRead + Unpin,
    extension: String,
    name: &'static str,
    tail: OutputTail,
) {
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::with_capacity(256);
    let emit = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line).trim_end().to_owned();
        line.clear();
        tracing::debug!(target: "dscode_extension_host::host_output", extension = %extension, stream = name, "{text}");
        tail.push(text);
    };
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buf[..n] {
            if byte == b'\n' {
                emit(&mut line);
            } else if line.len() < MAX_LINE {
                line.push(byte);
            } else {
                emit(&mut line);
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
}

/// Sends a signal to the host's whole process group; a group that is already gone is fine.
pub fn signal_host(group: u32, signal: libc::c_int) {
    if let Err(err) = sys::signal_group(group, signal)
        && err.raw_os_error() != Some(libc::ESRCH)
    {
        tracing::warn!(group, signal, error = %err, "could not signal host process group");
    }
}
