//! Shared setup for integration tests: a real `node`, the embedded host, real extension folders.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dscode_extension_host::lifecycle::{
    ExtensionHostState, HostHandle, HostOptions, HostSpec, RestartPolicy, StateChange,
};
use dscode_extension_host::rpc::{NoMethods, RequestHandler};
use dscode_extension_host::runtime::NodeRuntime;
use dscode_extension_host::sandbox::{Profile, SandboxSettings, SandboxSpec};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

/// A test's private runtime directory and the Node runtime unpacked into it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub node: NodeRuntime,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = NodeRuntime::embedded_in(dir.path(), "node").expect("unpack node-host");
        Self { dir, node }
    }

    /// The same with the runtime directory inside `parent` (for a sandbox test whose targets
    /// must not lie under /tmp, which every backend replaces with a private one).
    pub fn new_in(parent: &std::path::Path) -> Self {
        let dir = tempfile::tempdir_in(parent).expect("tempdir");
        let node = NodeRuntime::embedded_in(dir.path(), "node").expect("unpack node-host");
        Self { dir, node }
    }

    pub fn spec(&self, extension: &std::path::Path, options: HostOptions) -> HostSpec {
        let mut spec = self
            .node
            .host_spec(extension, options)
            .expect("valid manifest");
        spec.sandbox = sandbox();
        spec
    }

    pub fn host(&self, extension: &std::path::Path, options: HostOptions) -> HostHandle {
        self.host_with_broker(extension, options, Arc::new(NoMethods))
    }

    pub fn host_with_broker(
        &self,
        extension: &std::path::Path,
        options: HostOptions,
        broker: Arc<dyn RequestHandler>,
    ) -> HostHandle {
        HostHandle::spawn(self.spec(extension, options), broker)
    }
}

/// The default sandbox profile, with this build's `dscode-exthost` as the stage (a test binary
/// cannot be one: its `main` is the test harness).
pub fn sandbox() -> SandboxSpec {
    sandbox_with("default")
}

/// Backend `none`, with this build's stage (a user's unsandboxed host still gets a user and PID
/// namespace, whose id maps the stage writes).
pub fn unsandboxed() -> SandboxSpec {
    let none = SandboxSpec::none();
    SandboxSpec::new(Profile::clone(&none.profile), settings())
}

/// A built-in profile or profile file, with this build's stage.
pub fn sandbox_with(profile: &str) -> SandboxSpec {
    SandboxSpec::new(Profile::load(profile).expect("valid profile"), settings())
}

/// Sandbox settings pointing at this build's stage.
pub fn settings() -> SandboxSettings {
    SandboxSettings {
        stage: Some(PathBuf::from(env!("CARGO_BIN_EXE_dscode-exthost"))),
        ..SandboxSettings::default()
    }
}

/// A Python interpreter that is a real binary (a pyenv shim is a script that needs the user's
/// home, which a sandbox hides).
pub fn python() -> PathBuf {
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        system
    } else {
        PathBuf::from("python3")
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/extensions").join(name)
}

pub fn example(name: &str) -> PathBuf {
    repo().join("examples/extensions").join(name)
}

/// Options with short timings so fault tests finish quickly. The heartbeat timeout still leaves
/// a wide margin over the interval, because CI machines are noisy.
pub fn fast() -> HostOptions {
    HostOptions {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(1500),
        handshake_timeout: Duration::from_secs(10),
        activation_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(1),
        term_grace: Duration::from_millis(500),
        restart: RestartPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..RestartPolicy::default()
        },
        ..HostOptions::default()
    }
}

pub fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid json")
}

pub fn json(value: &RawValue) -> serde_json::Value {
    serde_json::from_str(value.get()).expect("valid json")
}

/// Waits for the next change into `state`, returning every change seen on the way.
pub async fn until_state(
    events: &mut mpsc::UnboundedReceiver<StateChange>,
    state: ExtensionHostState,
) -> Vec<StateChange> {
    let mut seen = Vec::new();
    let deadline = Duration::from_secs(30);
    loop {
        let change = tokio::time::timeout(deadline, events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no transition to {state} within {deadline:?}; saw {seen:#?}")
            })
            .expect("event stream open");
        let done = change.to == state;
        seen.push(change);
        if done {
            return seen;
        }
    }
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `pid` is gone. A host killed with its group dies after its shim, which is the
/// process the supervisor reaps, so its death is certain but not simultaneous; polling with a
/// deadline keeps the check exact without assuming an order the kernel does not promise.
pub fn gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Every descendant of `pid`, found by walking parent links in /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let parent_pid = rest
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0);
        parents.push((child, parent_pid));
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(child, _)| *child),
        );
        i += 1;
    }
    found.remove(0);
    found
}
