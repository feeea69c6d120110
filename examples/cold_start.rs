//! Cold start per sandbox backend, beside a bare `node -e ''` measured in the same run:
//! `cargo run --release --example cold_start [-- RUNS]`. Prints a table; asserts nothing.
//!
//! "Start" is `HostHandle::start()` until the host is Running: spawn, sandbox setup, Node's own
//! start-up, handshake and `activate()` of the example `hello` extension. The bare-node column
//! is spawn-to-exit of `node -e ''`, the floor any Node-based host pays.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dscode_extension_host::ipc::NoMethods;
use dscode_extension_host::lifecycle::{HostHandle, HostOptions};
use dscode_extension_host::runtime::NodeRuntime;
use dscode_extension_host::sandbox::{Backend, Probe, Profile, SandboxSettings, SandboxSpec};

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn p90(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 9 / 10).min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    dscode_extension_host::sandbox::stage::run_if_requested();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let node = NodeRuntime::embedded_in(dir.path(), "node")?;
    let extension = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/extensions/hello");
    let probe = Probe::run(Path::new("bwrap"), None);
    let mut backends = vec![Backend::None, Backend::Landlock];
    if probe.bwrap_usable() {
        backends.extend([Backend::Bwrap, Backend::BwrapLandlock]);
    }
    // Interleave the rounds so machine noise spreads evenly over the columns.
    let mut bare = Vec::new();
    let mut starts: Vec<Vec<Duration>> = vec![Vec::new(); backends.len()];
    for _ in 0..runs {
        let t = Instant::now();
        let status = tokio::process::Command::new("node")
            .args(["-e", ""])
            .status()
            .await?;
        anyhow::ensure!(status.success(), "node -e '' failed");
        bare.push(t.elapsed());
        for (i, backend) in backends.iter().enumerate() {
            let mut spec = node.host_spec(&extension, HostOptions::default())?;
            spec.sandbox = if *backend == Backend::None {
                SandboxSpec::none()
            } else {
                let mut profile = Profile::load("default")?;
                profile.backend = *backend;
                SandboxSpec::new(profile, SandboxSettings::default())
            };
            let host = HostHandle::spawn(spec, Arc::new(NoMethods));
            let t = Instant::now();
            host.start().await?;
            starts[i].push(t.elapsed());
            host.stop().await;
        }
    }
    let bare_median = median(&mut bare);
    println!("cold start, {runs} runs each (ms); added = median minus the bare node median\n");
    println!("| what | median | p90 | added vs bare node |");
    println!("|---|---:|---:|---:|");
    println!(
        "| `node -e ''` (spawn to exit) | {:.1} | {:.1} | |",
        ms(bare_median),
        ms(p90(&mut bare))
    );
    for (backend, samples) in backends.iter().zip(&mut starts) {
        let m = median(samples);
        println!(
            "| start() to Running, backend `{}` | {:.1} | {:.1} | {:+.1} |",
            backend,
            ms(m),
            ms(p90(samples)),
            ms(m) - ms(bare_median)
        );
    }
    Ok(())
}
