//! `dscode-exthost bench`: every scenario beside its baselines, measured in one run, printed as
//! a table or one JSON object. BENCHMARKS.md documents each field and holds the latest run.
//!
//! Figures are recorded, never asserted: the machine is shared and noisy, so only the ratios
//! within one run mean anything.

// Statistics over counts and durations: precision loss far below a microsecond is fine.
#![allow(clippy::cast_precision_loss)]

mod baselines;
mod scenarios;
mod stats;

use std::time::{Duration, Instant};

use anyhow::Context;
use dscode_extension_host::lifecycle::HostOptions;
use dscode_extension_host::sandbox::{Backend, Probe};
use serde::Serialize;

use baselines::{RustFloor, echo_args};
use scenarios::{Env, ScaleReport};
use stats::{Summary, ratio};

pub use scenarios::scale_child;

/// How much of each scenario to run.
struct Plan {
    small_round_trips: usize,
    large_round_trips: usize,
    throughput: Duration,
    process_per_call: usize,
    cold_start_rounds: usize,
    recoveries: usize,
    scale_hosts: usize,
    scale_idle: Duration,
}

impl Plan {
    const FULL: Self = Self {
        small_round_trips: 20_000,
        large_round_trips: 200,
        throughput: Duration::from_secs(5),
        process_per_call: 10,
        cold_start_rounds: 15,
        recoveries: 10,
        scale_hosts: 100,
        scale_idle: Duration::from_secs(10),
    };
    const QUICK: Self = Self {
        small_round_trips: 2_000,
        large_round_trips: 20,
        throughput: Duration::from_secs(1),
        process_per_call: 3,
        cold_start_rounds: 3,
        recoveries: 3,
        scale_hosts: 10,
        scale_idle: Duration::from_secs(2),
    };
}

/// The small request's payload: with the envelope, a frame of about 100 bytes.
const SMALL_PAYLOAD: usize = 40;
/// The large payload: 1 MiB less room for the envelope, the most the protocol's default frame
/// limit (1 MiB, which the Node host also enforces) carries.
const LARGE_PAYLOAD: usize = 1024 * 1024 - 256;
/// Requests kept outstanding in the throughput scenario.
const IN_FLIGHT: usize = 64;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    machine: Machine,
    round_trip: RoundTrip,
    round_trip_large: RoundTrip,
    throughput: ThroughputReport,
    process_per_call: ProcessPerCall,
    cold_start: ColdStart,
    recovery: Recovery,
    scale: ScaleReport,
    targets: Vec<Target>,
    elapsed_seconds: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Machine {
    quick: bool,
    cpus: usize,
    kernel: String,
    node: String,
    root: bool,
    backend: Backend,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RoundTrip {
    frame_bytes: usize,
    host: Summary,
    rust_floor: Summary,
    node_to_node: Summary,
    p50_vs_node: Option<f64>,
    p99_vs_node: Option<f64>,
    p50_vs_floor: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ThroughputReport {
    in_flight: usize,
    requests: u64,
    seconds: f64,
    requests_per_second: f64,
    supervisor_cpu_us_per_request: f64,
    supervisor_user_us_per_request: f64,
    supervisor_system_us_per_request: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessPerCall {
    call: Summary,
    slower_than_round_trip: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ColdStart {
    bare_node_exit: Summary,
    bare_node_ready: Summary,
    backends: Vec<BackendStart>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackendStart {
    backend: Backend,
    start: Summary,
    added_over_bare_node_ms: f64,
    added_over_none_ms: f64,
}

#[derive(Debug, Serialize)]
struct Skipped {
    backend: Backend,
    why: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Recovery {
    backend: Backend,
    restart: Summary,
    added_over_cold_start_ms: f64,
}

#[derive(Debug, Serialize)]
struct Target {
    name: &'static str,
    goal: &'static str,
    measured: String,
    /// `None` when this run cannot judge it (a `--quick` run starts fewer hosts than the
    /// target names).
    met: Option<bool>,
}

/// Runs every scenario and prints the table, or JSON.
pub async fn run(json: bool, quick: bool) -> anyhow::Result<()> {
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    let started = Instant::now();
    let env = Env::new()?;
    let progress = |what: &str| {
        if !json {
            eprintln!("bench: {what} ({:.0} s)", started.elapsed().as_secs_f64());
        }
    };
    let machine = machine(&env, quick).await;

    progress("round trips");
    let host = env
        .started(Backend::Landlock, HostOptions::default())
        .await?;
    let small = round_trip(&env, &host, SMALL_PAYLOAD, plan.small_round_trips).await?;
    progress("1 MiB round trips");
    let large = round_trip(&env, &host, LARGE_PAYLOAD, plan.large_round_trips).await?;

    progress("throughput");
    let args = echo_args(SMALL_PAYLOAD);
    let measured = scenarios::throughput(&host, &args, IN_FLIGHT, plan.throughput).await?;
    host.stop().await;
    let per_request = |cpu: Duration| cpu.as_secs_f64() * 1e6 / measured.requests.max(1) as f64;
    let throughput = ThroughputReport {
        in_flight: IN_FLIGHT,
        requests: measured.requests,
        seconds: measured.elapsed.as_secs_f64(),
        requests_per_second: measured.requests as f64 / measured.elapsed.as_secs_f64(),
        supervisor_cpu_us_per_request: per_request(measured.cpu_user + measured.cpu_system),
        supervisor_user_us_per_request: per_request(measured.cpu_user),
        supervisor_system_us_per_request: per_request(measured.cpu_system),
    };

    progress("process per call");
    let calls = scenarios::process_per_call(&env, &args, plan.process_per_call).await?;
    let call = scenarios::summary("process per call", &calls)?;
    let process_per_call = ProcessPerCall {
        call,
        slower_than_round_trip: ratio(call.median_us, small.host.median_us),
    };

    progress("cold start");
    let cold_start = cold_start(&env, plan.cold_start_rounds).await?;

    progress("recovery");
    let restarts = scenarios::recoveries(&env, Backend::Landlock, plan.recoveries).await?;
    let restart = scenarios::summary("recovery", &restarts)?;
    let landlock_start = cold_start
        .backends
        .iter()
        .find(|b| b.backend == Backend::Landlock)
        .context("no landlock cold start")?
        .start;
    let recovery = Recovery {
        backend: Backend::Landlock,
        restart,
        added_over_cold_start_ms: restart.median_ms() - landlock_start.median_ms(),
    };

    progress("scale");
    let scale = scenarios::scale(plan.scale_hosts, plan.scale_idle).await?;
    drop(env);

    let mut report = Report {
        machine,
        round_trip: small,
        round_trip_large: large,
        throughput,
        process_per_call,
        cold_start,
        recovery,
        scale,
        targets: Vec::new(),
        elapsed_seconds: 0.0,
    };
    report.targets = targets(&report);
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

async fn machine(env: &Env, quick: bool) -> Machine {
    let node = tokio::process::Command::new(env.node_bin())
        .arg("--version")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        quick,
        cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        node,
        root: dscode_extension_host::process::sys::is_root(),
        backend: Backend::Landlock,
    }
}

async fn round_trip(
    env: &Env,
    host: &dscode_extension_host::lifecycle::HostHandle,
    payload: usize,
    n: usize,
) -> anyhow::Result<RoundTrip> {
    let args = echo_args(payload);
    let frame_bytes = baselines::frame_bytes(&args)?;
    let host_samples = scenarios::host_round_trips(host, &args, n).await?;
    let floor = RustFloor::new(HostOptions::default().max_frame_bytes)?;
    let floor_samples = scenarios::floor_round_trips(&floor, &args, n).await?;
    let node_samples = scenarios::node_round_trips(env, n, payload).await?;
    let host = scenarios::summary("host round trip", &host_samples)?;
    let rust_floor = scenarios::summary("Rust floor", &floor_samples)?;
    let node_to_node = Summary::of_nanos(&node_samples).context("Node baseline: no samples")?;
    Ok(RoundTrip {
        frame_bytes,
        host,
        rust_floor,
        node_to_node,
        p50_vs_node: ratio(host.median_us, node_to_node.median_us),
        p99_vs_node: ratio(host.p99_us, node_to_node.p99_us),
        p50_vs_floor: ratio(host.median_us, rust_floor.median_us),
    })
}

async fn cold_start(env: &Env, rounds: usize) -> anyhow::Result<ColdStart> {
    let probe = Probe::run(std::path::Path::new("bwrap"), None);
    let mut backends = vec![Backend::None, Backend::Landlock];
    let mut skipped = Vec::new();
    if probe.bwrap_usable() {
        backends.extend([Backend::Bwrap, Backend::BwrapLandlock]);
    } else {
        for backend in [Backend::Bwrap, Backend::BwrapLandlock] {
            skipped.push(Skipped {
                backend,
                why: "bwrap is not usable here (see `dscode-exthost doctor`)".to_owned(),
            });
        }
    }
    let measured = scenarios::cold_starts(env, &backends, rounds).await?;
    let bare_node_exit = scenarios::summary("node -e ''", &measured.bare_exit)?;
    let bare_node_ready = scenarios::summary("node ready", &measured.bare_ready)?;
    let summaries = measured
        .backends
        .iter()
        .map(|(backend, samples)| Ok((*backend, scenarios::summary("cold start", samples)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let none = summaries
        .iter()
        .find(|(b, _)| *b == Backend::None)
        .map_or(0.0, |(_, s)| s.median_ms());
    Ok(ColdStart {
        bare_node_exit,
        bare_node_ready,
        backends: summaries
            .into_iter()
            .map(|(backend, start)| BackendStart {
                backend,
                start,
                added_over_bare_node_ms: start.median_ms() - bare_node_exit.median_ms(),
                added_over_none_ms: start.median_ms() - none,
            })
            .collect(),
        skipped,
    })
}

/// The targets, each judged on this run's ratios.
fn targets(r: &Report) -> Vec<Target> {
    let rt = &r.round_trip;
    let mut out = vec![
        Target {
            name: "round trip p50",
            goal: "<= 1.25 x Node<->Node p50",
            measured: format!("{:.2} x", rt.p50_vs_node.unwrap_or(f64::NAN)),
            met: Some(rt.p50_vs_node.is_some_and(|x| x <= 1.25)),
        },
        Target {
            name: "round trip p99",
            goal: "<= 2 x Node<->Node p99",
            measured: format!("{:.2} x", rt.p99_vs_node.unwrap_or(f64::NAN)),
            met: Some(rt.p99_vs_node.is_some_and(|x| x <= 2.0)),
        },
        Target {
            name: "process per call",
            goal: ">= 1000 x slower than a round trip",
            measured: format!(
                "{:.0} x",
                r.process_per_call
                    .slower_than_round_trip
                    .unwrap_or(f64::NAN)
            ),
            met: Some(
                r.process_per_call
                    .slower_than_round_trip
                    .is_some_and(|x| x >= 1000.0),
            ),
        },
        Target {
            name: "1 MiB round trip",
            goal: "<= 2 x the Rust floor",
            measured: format!(
                "{:.2} x",
                r.round_trip_large.p50_vs_floor.unwrap_or(f64::NAN)
            ),
            met: Some(r.round_trip_large.p50_vs_floor.is_some_and(|x| x <= 2.0)),
        },
        Target {
            name: "supervisor CPU per request",
            goal: "<= 5 us at full throughput",
            measured: format!("{:.1} us", r.throughput.supervisor_cpu_us_per_request),
            met: Some(r.throughput.supervisor_cpu_us_per_request <= 5.0),
        },
    ];
    for b in &r.cold_start.backends {
        if b.backend == Backend::None {
            continue;
        }
        out.push(Target {
            name: "cold start",
            goal: "<= bare node + 5 ms (median)",
            measured: format!(
                "{}: {:+.1} ms over bare node, {:+.1} ms over no sandbox",
                b.backend, b.added_over_bare_node_ms, b.added_over_none_ms
            ),
            met: Some(b.added_over_bare_node_ms <= 5.0),
        });
    }
    let rss_mib = r.scale.rss_kib as f64 / 1024.0;
    let judged = r.scale.hosts >= 100;
    let all_hosts = r.scale.running == r.scale.hosts;
    let with_hosts = format!("with {}/{} hosts running", r.scale.running, r.scale.hosts);
    let idle_percent = r.scale.idle_cpu_ms / (r.scale.idle_seconds * 1000.0) * 100.0;
    out.extend([
        Target {
            name: "recovery",
            goal: "<= cold start + 5 ms",
            measured: format!("{:+.1} ms", r.recovery.added_over_cold_start_ms),
            met: Some(r.recovery.added_over_cold_start_ms <= 5.0),
        },
        Target {
            name: "supervisor RSS",
            goal: "<= 30 MiB with 100 hosts",
            measured: format!("{rss_mib:.1} MiB {with_hosts}"),
            met: judged.then_some(rss_mib <= 30.0 && all_hosts),
        },
        Target {
            name: "idle supervisor CPU",
            goal: "<= 1 % of one core with 100 hosts",
            measured: format!("{idle_percent:.2} % {with_hosts}"),
            met: judged.then_some(idle_percent <= 1.0 && all_hosts),
        },
    ]);
    out
}

fn us(s: &Summary) -> String {
    format!("{:>10.1} {:>10.1}", s.median_us, s.p99_us)
}

fn ms(s: &Summary) -> String {
    format!("{:>10.2} {:>10.2}", s.median_us / 1000.0, s.p99_us / 1000.0)
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2} x"))
}

fn table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let m = &r.machine;
    let _ = writeln!(
        t,
        "dscode-exthost bench{}: {} cpus, kernel {}, node {}, {}",
        if m.quick { " --quick" } else { "" },
        m.cpus,
        m.kernel,
        m.node,
        if m.root { "root" } else { "unprivileged" }
    );
    round_trips(&mut t, r);
    rest(&mut t, r);
    t
}

fn round_trips(t: &mut String, r: &Report) {
    use std::fmt::Write as _;
    for (title, rt) in [
        ("round trip", &r.round_trip),
        ("1 MiB round trip", &r.round_trip_large),
    ] {
        let _ = writeln!(
            t,
            "\n{title} ({} byte frame, {} samples; us)\n{:<34} {:>10} {:>10}",
            rt.frame_bytes, rt.host.n, "", "p50", "p99"
        );
        let _ = writeln!(t, "{:<34} {}", "host (sandboxed, landlock)", us(&rt.host));
        let _ = writeln!(t, "{:<34} {}", "Node<->Node baseline", us(&rt.node_to_node));
        let _ = writeln!(t, "{:<34} {}", "Rust floor", us(&rt.rust_floor));
        let _ = writeln!(
            t,
            "host/Node p50 {}, p99 {}; host/floor p50 {}",
            opt(rt.p50_vs_node),
            opt(rt.p99_vs_node),
            opt(rt.p50_vs_floor)
        );
    }
}

fn rest(t: &mut String, r: &Report) {
    use std::fmt::Write as _;
    let th = &r.throughput;
    let _ = writeln!(
        t,
        "\nthroughput: {:.0} requests/s with {} in flight; supervisor CPU {:.2} us per request ({:.2} user, {:.2} kernel)",
        th.requests_per_second,
        th.in_flight,
        th.supervisor_cpu_us_per_request,
        th.supervisor_user_us_per_request,
        th.supervisor_system_us_per_request
    );
    let _ = writeln!(
        t,
        "process per call: p50 {:.1} ms, {} the round trip",
        r.process_per_call.call.median_ms(),
        opt(r.process_per_call.slower_than_round_trip)
    );
    let cs = &r.cold_start;
    let _ = writeln!(
        t,
        "\ncold start ({} rounds; ms)\n{:<34} {:>10} {:>10} {:>12} {:>12}",
        cs.bare_node_exit.n, "", "p50", "p99", "+bare node", "+no sandbox"
    );
    let _ = writeln!(
        t,
        "{:<34} {}",
        "node -e '' (spawn to exit)",
        ms(&cs.bare_node_exit)
    );
    let _ = writeln!(
        t,
        "{:<34} {}",
        "node (spawn to first output)",
        ms(&cs.bare_node_ready)
    );
    for b in &cs.backends {
        let _ = writeln!(
            t,
            "{:<34} {} {:>+12.1} {:>+12.1}",
            format!("start to Running, {}", b.backend),
            ms(&b.start),
            b.added_over_bare_node_ms,
            b.added_over_none_ms
        );
    }
    for s in &cs.skipped {
        let _ = writeln!(
            t,
            "{:<34} skipped: {}",
            format!("backend {}", s.backend),
            s.why
        );
    }
    let _ = writeln!(
        t,
        "recovery (SIGKILL to Running, {}): p50 {:.1} ms, {:+.1} ms over its cold start",
        r.recovery.backend,
        r.recovery.restart.median_ms(),
        r.recovery.added_over_cold_start_ms
    );
    let s = &r.scale;
    let _ = writeln!(
        t,
        "scale: {}/{} hosts running after {:.0} ms; supervisor RSS {:.1} MiB (peak {:.1}); idle CPU {:.0} ms in {:.1} s",
        s.running,
        s.hosts,
        s.start_all_ms,
        s.rss_kib as f64 / 1024.0,
        s.peak_rss_kib as f64 / 1024.0,
        s.idle_cpu_ms,
        s.idle_seconds
    );
    let _ = writeln!(t, "\ntargets");
    for target in &r.targets {
        let _ = writeln!(
            t,
            "  [{}] {:<28} {:<36} {}",
            match target.met {
                Some(true) => "met",
                Some(false) => "gap",
                None => "n/a",
            },
            target.name,
            target.goal,
            target.measured
        );
    }
    let _ = writeln!(t, "\nfinished in {:.0} s", r.elapsed_seconds);
}
