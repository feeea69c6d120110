//! The seven scenarios: each runs against real sandboxed Node hosts of the example `hello`
//! extension, beside its baselines.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use dscode_extension_host::lifecycle::{
    ExtensionHostManager, ExtensionHostState, HostHandle, HostOptions, HostSpec, RestartPolicy,
};
use dscode_extension_host::rpc::NoMethods;
use dscode_extension_host::runtime::{EXAMPLE_EXTENSIONS, NodeRuntime, runtime_dir, write_tree};
use dscode_extension_host::sandbox::{Backend, Profile, SandboxSettings, SandboxSpec};
use serde_json::value::RawValue;

use super::baselines::{self, RustFloor};
use super::stats::{Summary, own_cpu, own_cpu_split, own_rss_kib};

/// Where a run keeps its files, and what it runs.
pub struct Env {
    /// A private directory, removed when the run ends.
    pub dir: PathBuf,
    /// The embedded host.
    pub node: NodeRuntime,
    /// The example `hello` extension.
    pub hello: PathBuf,
}

impl Env {
    /// Unpacks the host and the example extensions into a fresh directory.
    pub fn new() -> anyhow::Result<Self> {
        let dir = runtime_dir()
            .context("failed to prepare the runtime directory")?
            .join(format!("bench-{}", std::process::id()));
        let examples = write_tree(&dir.join("extensions"), EXAMPLE_EXTENSIONS)
            .context("failed to unpack the example extensions")?;
        let node = NodeRuntime::embedded("node").context("failed to unpack the Node.js host")?;
        Ok(Self {
            dir,
            node,
            hello: examples.join("hello"),
        })
    }

    /// The `node` executable hosts run.
    pub fn node_bin(&self) -> &Path {
        &self.node.node
    }

    /// A spec for `hello` under `backend` (the default profile with its backend swapped).
    pub fn spec(&self, backend: Backend, options: HostOptions) -> anyhow::Result<HostSpec> {
        let mut spec = self.node.host_spec(&self.hello, options)?;
        spec.sandbox = if backend == Backend::None {
            SandboxSpec::none()
        } else {
            let mut profile = Profile::load("default")?;
            profile.backend = backend;
            SandboxSpec::new(profile, SandboxSettings::default())
        };
        Ok(spec)
    }

    /// A started host of `hello` under `backend`.
    pub async fn started(
        &self,
        backend: Backend,
        options: HostOptions,
    ) -> anyhow::Result<HostHandle> {
        let host = HostHandle::spawn(self.spec(backend, options)?, Arc::new(NoMethods));
        host.start()
            .await
            .context("the benchmark host did not start")?;
        Ok(host)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` sequential `hello.echo` round trips to `host` after a warm-up.
pub async fn host_round_trips(
    host: &HostHandle,
    args: &RawValue,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let expected_len = args.get().len() - 2;
    for _ in 0..n.min(200) {
        host.execute_command("hello.echo", args).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let reply = host.execute_command("hello.echo", args).await?;
        samples.push(t.elapsed());
        ensure!(
            reply.get().len() == expected_len,
            "hello.echo answered {} bytes, expected {expected_len}",
            reply.get().len()
        );
    }
    Ok(samples)
}

/// `n` sequential round trips over the Rust floor, after the same warm-up.
pub async fn floor_round_trips(
    floor: &RustFloor,
    args: &RawValue,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    for _ in 0..n.min(200) {
        floor.call(args).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        floor.call(args).await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// The Node↔Node baseline for `n` round trips of `payload_bytes`.
pub async fn node_round_trips(
    env: &Env,
    n: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<u64>> {
    let peer = env.dir.join("peer.js");
    std::fs::write(&peer, include_str!("peer.js")).context("failed to write peer.js")?;
    let host_src = env
        .node
        .host_main
        .parent()
        .context("the host entry point has no folder")?;
    baselines::node_to_node(
        env.node_bin(),
        &peer,
        host_src,
        &env.dir.join("peer.sock"),
        n,
        payload_bytes,
    )
    .await
}

/// What the throughput scenario measured.
pub struct Throughput {
    pub requests: u64,
    pub elapsed: Duration,
    pub cpu_user: Duration,
    pub cpu_system: Duration,
}

/// Keeps `in_flight` requests outstanding against `host` for `duration`, and measures this
/// process's CPU time over the same window.
pub async fn throughput(
    host: &HostHandle,
    args: &RawValue,
    in_flight: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let (user_before, system_before) = own_cpu_split();
    let start = Instant::now();
    let deadline = start + duration;
    let workers = (0..in_flight).map(|_| {
        let host = host.clone();
        let args: Box<RawValue> = args.to_owned();
        tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                host.execute_command("hello.echo", &args).await?;
                done += 1;
            }
            anyhow::Ok(done)
        })
    });
    let mut requests = 0;
    for worker in futures_util::future::join_all(workers).await {
        requests += worker.context("a throughput worker panicked")??;
    }
    Ok(Throughput {
        requests,
        elapsed: start.elapsed(),
        cpu_user: own_cpu_split().0.saturating_sub(user_before),
        cpu_system: own_cpu_split().1.saturating_sub(system_before),
    })
}

/// The exec pattern: a fresh host per call, timed from spawn to the call's result (its stop
/// is not counted, so the ratio is a lower bound).
pub async fn process_per_call(
    env: &Env,
    args: &RawValue,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let host = env
            .started(Backend::Landlock, HostOptions::default())
            .await?;
        host.execute_command("hello.echo", args).await?;
        samples.push(t.elapsed());
        host.stop().await;
    }
    Ok(samples)
}

/// Cold-start samples per backend, beside the two bare-node baselines. Rounds interleave the
/// columns, so machine noise spreads evenly over them.
pub struct ColdStarts {
    pub bare_exit: Vec<Duration>,
    pub bare_ready: Vec<Duration>,
    pub backends: Vec<(Backend, Vec<Duration>)>,
}

pub async fn cold_starts(
    env: &Env,
    backends: &[Backend],
    rounds: usize,
) -> anyhow::Result<ColdStarts> {
    let mut out = ColdStarts {
        bare_exit: Vec::new(),
        bare_ready: Vec::new(),
        backends: backends.iter().map(|b| (*b, Vec::new())).collect(),
    };
    for _ in 0..rounds {
        out.bare_exit
            .push(baselines::bare_node_exit(env.node_bin()).await?);
        out.bare_ready
            .push(baselines::bare_node_ready(env.node_bin()).await?);
        for (backend, samples) in &mut out.backends {
            let host = HostHandle::spawn(
                env.spec(*backend, HostOptions::default())?,
                Arc::new(NoMethods),
            );
            let t = Instant::now();
            host.start()
                .await
                .with_context(|| format!("a host did not start under backend {backend}"))?;
            samples.push(t.elapsed());
            host.stop().await;
        }
    }
    Ok(out)
}

/// SIGKILL of a running host until it is Running again, with the restart backoff at zero.
pub async fn recoveries(env: &Env, backend: Backend, n: usize) -> anyhow::Result<Vec<Duration>> {
    let options = HostOptions {
        restart: RestartPolicy {
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_restarts: u32::MAX,
            ..RestartPolicy::default()
        },
        ..HostOptions::default()
    };
    let host = env.started(backend, options).await?;
    let mut changes = host.subscribe();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let pid = host.status().pid.context("a running host has no pid")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
        let t = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL)
            .context("failed to kill the host")?;
        let mut left_running = false;
        loop {
            let change = tokio::time::timeout(Duration::from_secs(30), changes.recv())
                .await
                .context("the host did not come back within 30 s")?
                .context("the host's task ended")?;
            if change.to != ExtensionHostState::Running {
                left_running = true;
            } else if left_running {
                break;
            }
            if change.to == ExtensionHostState::Crashed {
                bail!("the host crashed instead of recovering: {}", change.reason);
            }
        }
        samples.push(t.elapsed());
    }
    host.stop().await;
    Ok(samples)
}

/// What one supervisor process of many hosts measured of itself.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleReport {
    pub hosts: usize,
    pub running: usize,
    pub start_all_ms: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub idle_seconds: f64,
    pub idle_cpu_ms: f64,
}

/// The scale scenario's body, run in a fresh supervisor process (`bench-scale`) so its memory
/// is the supervisor's alone: start `hosts` hosts of `hello`, then measure an idle period.
pub async fn scale_child(hosts: usize, idle: Duration) -> anyhow::Result<ScaleReport> {
    let env = Env::new()?;
    let manager = ExtensionHostManager::default();
    let root = env.dir.join("scale");
    for i in 0..hosts {
        // Each host is its own extension: a copy of hello with a distinct id.
        let dir = root.join(format!("ext-{i}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(env.hello.join("extension.js"), dir.join("extension.js"))?;
        let manifest = std::fs::read_to_string(env.hello.join("package.json"))?;
        let mut manifest: serde_json::Value = serde_json::from_str(&manifest)?;
        manifest["name"] = serde_json::Value::String(format!("hello-{i}"));
        std::fs::write(dir.join("package.json"), manifest.to_string())?;
        let mut spec = env.node.host_spec(&dir, HostOptions::default())?;
        spec.sandbox = SandboxSpec::default_profile();
        manager.add(spec)?;
    }
    let t = Instant::now();
    let started = manager.start_all().await;
    let start_all_ms = t.elapsed().as_secs_f64() * 1000.0;
    let running = started.iter().filter(|(_, r)| r.is_ok()).count();
    // Let start-up work (log lines, first heartbeats) settle before the idle window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before = own_cpu();
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let idle_seconds = t.elapsed().as_secs_f64();
    let idle_cpu_ms = own_cpu().saturating_sub(cpu_before).as_secs_f64() * 1000.0;
    let (rss_kib, peak_rss_kib) = own_rss_kib();
    manager.stop_all().await;
    Ok(ScaleReport {
        hosts,
        running,
        start_all_ms,
        rss_kib,
        peak_rss_kib,
        idle_seconds,
        idle_cpu_ms,
    })
}

/// Runs [`scale_child`] in a fresh process of this binary and reads its report.
pub async fn scale(hosts: usize, idle: Duration) -> anyhow::Result<ScaleReport> {
    let exe = std::env::current_exe().context("cannot find this program to re-run it")?;
    let output = tokio::process::Command::new(exe)
        .args(["bench-scale", "--hosts", &hosts.to_string(), "--idle-ms"])
        .arg(idle.as_millis().to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("failed to run the scale supervisor")?;
    if !output.status.success() {
        bail!(
            "the scale supervisor failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("the scale supervisor printed no report")
}

/// One summary, or an error naming what had no samples.
pub fn summary(what: &str, samples: &[Duration]) -> anyhow::Result<Summary> {
    Summary::of(samples).with_context(|| format!("{what}: no samples"))
}
