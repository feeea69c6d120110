//! The escape suite: a hostile extension (tests/fixtures/extensions/escape) attempts dozens of
//! escapes from a real sandboxed host, once per backend. Every attack must fail and every
//! positive control (the allowed counterpart, by the same mechanism) must work, so a sandbox
//! that blocks everything fails too. The same extension run without a sandbox shows that the
//! attacks are real. Servers the attacks aim at run here and report what reached them.

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, fast, fixture, json, raw, settings};
use dscode_extension_host::broker::{Broker, ConsoleUi, ExtensionInfo};
use dscode_extension_host::lifecycle::{
    ExtensionHostState as S, HostHandle, HostOptions, HostSpec, Reason,
};
use dscode_extension_host::permissions::{Grant, GrantsFile};
use dscode_extension_host::ratelimit::RateLimitConfig;
use dscode_extension_host::sandbox::{Backend, Enforcement, Layer, Profile, SandboxSpec};
use serde_json::{Value, json};

/// A value planted in every secret and in the supervisor's environment.
#[allow(unsafe_code)]
fn marker() -> &'static str {
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| {
        let marker = format!("PLANTED-{}-{:x}", std::process::id(), rand_u64());
        // Secrets a developer's shell typically holds, and variables that would change what
        // the host loads. They must reach no host.
        // SAFETY: set once, before this test binary starts any host; nothing reads the
        // environment concurrently at this point of a test's setup.
        unsafe {
            std::env::set_var("AWS_SECRET_ACCESS_KEY", &marker);
            std::env::set_var("GITHUB_TOKEN", &marker);
            std::env::set_var("NODE_OPTIONS", format!("--title={marker}"));
            std::env::set_var("LD_PRELOAD", format!("/nonexistent/{marker}.so"));
        }
        marker
    })
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    u64::from_ne_bytes(bytes)
}

/// Counts what reaches a server.
fn serve_counting<T: Send + 'static>(
    server: T,
    accept: impl Fn(&T) -> bool + Send + 'static,
) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        while accept(&server) {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    hits
}

struct Fixture {
    dir: tempfile::TempDir,
    workspace: PathBuf,
    storage: PathBuf,
    tcp_port: u16,
    udp_port: u16,
    abstract_name: String,
    hits: Vec<(&'static str, Arc<AtomicUsize>)>,
    _leak: std::fs::File,
    bystander: std::process::Child,
}

impl Fixture {
    fn new() -> Self {
        let marker = marker();
        let dir = tempfile::tempdir().unwrap();
        let p = |rel: &str| dir.path().join(rel);
        for (rel, contents) in [
            (
                "home/.ssh/id_rsa",
                format!("-----BEGIN OPENSSH PRIVATE KEY----- {marker}"),
            ),
            (
                "home/.aws/credentials",
                format!("[default]\naws_secret_access_key = {marker}"),
            ),
            (
                "home/.config/google-chrome/Default/Login Data",
                format!("cookie {marker}"),
            ),
            ("workspace/src/readable.txt", "readable".into()),
            ("workspace/private/secret.txt", marker.to_owned()),
            ("other-storage/secret.txt", marker.to_owned()),
            ("leak-canary", marker.to_owned()),
        ] {
            std::fs::create_dir_all(p(rel).parent().unwrap()).unwrap();
            std::fs::write(p(rel), contents).unwrap();
        }
        for rel in ["workspace/out", "outside", "storage"] {
            std::fs::create_dir_all(p(rel)).unwrap();
        }
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let unix = UnixListener::bind(p("outside/listener.sock")).unwrap();
        let abstract_name = format!("dscode-escape-{}-{:x}", std::process::id(), rand_u64());
        let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = UnixListener::bind_addr(&addr).unwrap();
        let control = UnixListener::bind(p("control.sock")).unwrap();
        let hits = vec![
            ("tcp", serve_counting(tcp, |l| l.accept().is_ok())),
            (
                "udp",
                serve_counting(udp, |s| s.recv_from(&mut [0; 512]).is_ok()),
            ),
            ("unix", serve_counting(unix, |l| l.accept().is_ok())),
            (
                "abstract",
                serve_counting(abstract_listener, |l| l.accept().is_ok()),
            ),
            ("control", serve_counting(control, |l| l.accept().is_ok())),
        ];
        // A file the supervisor holds open without close-on-exec: no host may inherit it.
        let leak = std::fs::File::open(p("leak-canary")).unwrap();
        nix::fcntl::fcntl(
            &leak,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let bystander = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        Self {
            workspace: p("workspace"),
            storage: p("storage"),
            dir,
            tcp_port,
            udp_port,
            abstract_name,
            hits,
            _leak: leak,
            bystander,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn targets(&self, env: &Env) -> Value {
        json!({
            "home": self.path("home"),
            "marker": marker(),
            "workspace": self.workspace,
            "outside": self.path("outside"),
            "otherStorage": self.path("other-storage"),
            "storage": self.storage,
            "supervisorPid": std::process::id(),
            "bystanderPid": self.bystander.id(),
            "tcpPort": self.tcp_port,
            "udpPort": self.udp_port,
            "unixSocket": self.path("outside/listener.sock"),
            "abstractSocket": self.abstract_name,
            "controlSocket": self.path("control.sock"),
            "runtimeDir": env.dir.path(),
            "leakedFdTarget": self.path("leak-canary"),
            "envMarker": marker(),
            "python": common::python(),
            "setuidBinary": "/usr/bin/su",
        })
    }

    fn spec(&self, env: &Env, sandbox: SandboxSpec) -> HostSpec {
        let mut spec = env.spec(&fixture("escape"), options());
        spec.storage_path = Some(self.storage.clone());
        spec.sandbox = sandbox;
        spec.sandbox.read = vec![self.workspace.join("src")];
        spec.sandbox.write = vec![self.workspace.join("out")];
        spec
    }

    fn broker(&self) -> Broker {
        let mut grants = GrantsFile::default();
        grants.extensions.insert(
            "test.escape".into(),
            Grant {
                version: "1.0.0".into(),
                requested: vec![
                    "fileSystem.read:src/**".into(),
                    "fileSystem.write:out/**".into(),
                ],
                allow: vec![
                    "fileSystem.read:src/**".into(),
                    "fileSystem.write:out/**".into(),
                ],
                deny: Vec::new(),
            },
        );
        Broker::new(
            vec![self.workspace.clone()],
            Arc::new(grants),
            Arc::new(ConsoleUi::default()),
            RateLimitConfig::default(),
        )
    }

    fn reached(&self) -> Vec<String> {
        self.hits
            .iter()
            .filter(|(_, n)| n.load(Ordering::SeqCst) > 0)
            .map(|(name, n)| format!("{name}: {}", n.load(Ordering::SeqCst)))
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.bystander.kill();
        let _ = self.bystander.wait();
    }
}

fn options() -> HostOptions {
    HostOptions {
        request_timeout: Duration::from_secs(120),
        ..fast()
    }
}

fn profile(backend: Backend) -> SandboxSpec {
    let mut profile = Profile::load("default").unwrap();
    profile.backend = backend;
    SandboxSpec::new(profile, settings())
}

async fn start(fixture: &Fixture, env: &Env, sandbox: SandboxSpec) -> HostHandle {
    let spec = fixture.spec(env, sandbox);
    let broker = fixture.broker();
    broker
        .register(ExtensionInfo::from_spec(&spec))
        .await
        .unwrap();
    let host = HostHandle::spawn(spec, Arc::new(broker));
    host.start().await.expect("the hostile extension starts");
    host
}

/// Runs every attack; returns the results array.
async fn run_attacks(host: &HostHandle, targets: &Value) -> Vec<Value> {
    let out = host
        .execute_command("escape.run", &raw(&json!([targets]).to_string()))
        .await
        .expect("escape.run answers");
    let results = json(&out)["results"].as_array().cloned().expect("results");
    for r in &results {
        println!(
            "{:<28} attack {:<9} control {:<4} | {} | {}",
            r["id"].as_str().unwrap_or("?"),
            if r["attack"]["succeeded"] == true {
                "SUCCEEDED"
            } else {
                "blocked"
            },
            if r["control"]["ok"] == true {
                "ok"
            } else {
                "FAIL"
            },
            r["attack"]["evidence"].as_str().unwrap_or(""),
            r["control"]["evidence"].as_str().unwrap_or(""),
        );
    }
    results
}

async fn escape_suite(backend: Backend) {
    let env = Env::new();
    let fixture = Fixture::new();
    let host = start(&fixture, &env, profile(backend)).await;
    let report = host
        .status()
        .sandbox
        .expect("a sandboxed host has a report");
    assert_eq!(report.backend, backend);
    for layer in [
        Layer::Filesystem,
        Layer::Network,
        Layer::Seccomp,
        Layer::Capabilities,
        Layer::NoNewPrivs,
    ] {
        assert_eq!(
            report.layer(layer).unwrap().enforcement,
            Enforcement::FullyEnforced,
            "{}",
            report.table()
        );
    }
    let results = run_attacks(&host, &fixture.targets(&env)).await;
    let ids: std::collections::BTreeSet<_> = results
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.len() >= 30,
        "only {} distinct attacks: {ids:?}",
        ids.len()
    );
    let escaped: Vec<_> = results
        .iter()
        .filter(|r| r["attack"]["succeeded"] != false)
        .collect();
    let broken: Vec<_> = results
        .iter()
        .filter(|r| r["control"]["ok"] != true)
        .collect();
    assert!(
        escaped.is_empty(),
        "{backend}: attacks succeeded: {escaped:#?}"
    );
    assert!(
        broken.is_empty(),
        "{backend}: positive controls failed: {broken:#?}"
    );
    // What the attacks aimed at saw nothing, and nothing appeared where nothing may be written.
    assert!(
        fixture.reached().is_empty(),
        "{backend}: reached {:?}",
        fixture.reached()
    );
    let outside: Vec<_> = std::fs::read_dir(fixture.path("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "listener.sock")
        .collect();
    assert!(outside.is_empty(), "{backend}: wrote {outside:?} outside");
    // The host is still healthy after all of it.
    assert_eq!(host.status().state, S::Running);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_landlock() {
    escape_suite(Backend::Landlock).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_bwrap() {
    escape_suite(Backend::Bwrap).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_bwrap_landlock() {
    escape_suite(Backend::BwrapLandlock).await;
}

/// Without a sandbox the same attacks work: the suite measures something.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_sandbox_the_attacks_succeed() {
    let env = Env::new();
    let fixture = Fixture::new();
    let host = start(&fixture, &env, SandboxSpec::none()).await;
    let results = run_attacks(&host, &fixture.targets(&env)).await;
    let succeeded: Vec<&str> = results
        .iter()
        .filter(|r| r["attack"]["succeeded"] == true)
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let categories: std::collections::BTreeSet<_> = results
        .iter()
        .filter(|r| r["attack"]["succeeded"] == true)
        .map(|r| r["category"].as_str().unwrap_or(""))
        .collect();
    assert!(
        succeeded.len() >= 15,
        "only {} attacks worked unsandboxed: {succeeded:?}",
        succeeded.len()
    );
    assert!(categories.len() >= 3, "{categories:?}");
    assert!(
        !fixture.reached().is_empty(),
        "the unsandboxed host reached none of the servers"
    );
    let broken: Vec<_> = results
        .iter()
        .filter(|r| r["control"]["ok"] != true)
        .collect();
    assert!(
        broken.is_empty(),
        "positive controls failed unsandboxed: {broken:#?}"
    );
    host.stop().await;
}

/// A host's fork bomb or memory bomb kills that host only, with the limit named; a bystander
/// keeps serving.
async fn bomb(backend: Backend, command: &str, limit: Layer) {
    let env = Env::new();
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    // One limit tight per bomb: a fork bomb of Node processes also adds up to a lot of memory.
    let default = dscode_extension_host::sandbox::profile::BUILTIN[0].1;
    let text = if limit == Layer::Memory {
        default.replace("memory_mb = 1024", "memory_mb = 256")
    } else {
        default.replace("pids = 128", "pids = 64")
    };
    let path = dir.path().join("bombs.toml");
    std::fs::write(&path, text).unwrap();
    let mut profile = Profile::load(path.to_str().unwrap()).unwrap();
    profile.backend = backend;
    let mut options = options();
    options.restart.max_restarts = 0;
    let mut spec = fixture.spec(&env, SandboxSpec::new(profile, settings()));
    spec.options = options;
    let broker = fixture.broker();
    broker
        .register(ExtensionInfo::from_spec(&spec))
        .await
        .unwrap();
    let host = HostHandle::spawn(spec, Arc::new(broker));
    host.start().await.unwrap();
    let bystander = env.host(&common::example("hello"), fast());
    bystander.start().await.unwrap();
    let mut events = host.subscribe();
    let no_args = raw("[]");
    let bombing = host.execute_command(command, &no_args);
    let _ = tokio::time::timeout(Duration::from_secs(60), bombing).await;
    let seen = common::until_state(&mut events, S::Crashed).await;
    let killed = seen
        .iter()
        .find_map(|c| match &c.reason {
            Reason::LimitExceeded { limit, detail, .. } => Some((*limit, detail.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no limit named in {seen:#?}"));
    assert_eq!(killed.0, limit, "{killed:?}");
    let out = bystander
        .execute_command("hello.greet", &raw("[\"still here\"]"))
        .await
        .unwrap();
    assert_eq!(json(&out), json!("Hello, still here!"));
    bystander.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_kills_only_its_host_landlock() {
    bomb(Backend::Landlock, "escape.forkBomb", Layer::Processes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_kills_only_its_host_landlock() {
    bomb(Backend::Landlock, "escape.memoryBomb", Layer::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_kills_only_its_host_bwrap_landlock() {
    bomb(Backend::BwrapLandlock, "escape.forkBomb", Layer::Processes).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_bomb_kills_only_its_host_bwrap_landlock() {
    bomb(Backend::BwrapLandlock, "escape.memoryBomb", Layer::Memory).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn filling_tmp_stops_at_the_cap() {
    let env = Env::new();
    let fixture = Fixture::new();
    for backend in [Backend::Landlock, Backend::BwrapLandlock] {
        let host = start(&fixture, &env, profile(backend)).await;
        let out = json(
            &host
                .execute_command("escape.fillTmp", &raw("[{}]"))
                .await
                .unwrap(),
        );
        let written = out["bytesWritten"].as_u64().unwrap();
        // The default profile caps /tmp at 64 MiB; the positive control is that the first
        // megabytes were written at all.
        assert!((1 << 20..=64 << 20).contains(&written), "{backend}: {out}");
        host.stop().await;
    }
}

/// A profile that requires bubblewrap refuses to start without it, with an actionable message;
/// the Landlock backend still works on the same machine.
#[tokio::test]
async fn a_missing_bwrap_is_sandbox_unavailable_and_landlock_still_works() {
    let env = Env::new();
    let mut missing = settings();
    missing.bwrap = PathBuf::from("/nonexistent/bwrap");
    let mut spec = env.spec(&common::example("hello"), fast());
    spec.sandbox = SandboxSpec::new(Profile::load("strict").unwrap(), missing.clone());
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    let err = host.start().await.unwrap_err().to_string();
    assert!(
        err.contains("sandbox unavailable")
            && err.contains("/nonexistent/bwrap")
            && err.contains("install bubblewrap"),
        "{err}"
    );
    assert_eq!(
        host.status().restarts,
        0,
        "an unavailable sandbox is not retried"
    );

    let mut spec = env.spec(&common::example("hello"), fast());
    spec.sandbox = SandboxSpec::new(Profile::load("default").unwrap(), missing);
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    host.start().await.expect("landlock needs no bwrap");
    assert_eq!(host.status().sandbox.unwrap().backend, Backend::Landlock);
    host.stop().await;
}

/// The stage must be a program that runs the stage: a test harness is not, and says so.
#[tokio::test]
async fn a_stage_that_is_not_one_is_a_clear_error() {
    let env = Env::new();
    let mut spec = env.spec(&common::example("hello"), fast());
    let mut bad = settings();
    bad.stage = Some(PathBuf::from("/bin/true"));
    spec.sandbox = SandboxSpec::new(Profile::load("default").unwrap(), bad);
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    let err = host.start().await.unwrap_err().to_string();
    assert!(err.contains("run_if_requested"), "{err}");
}

#[test]
fn doctor_json_reports_every_layer_with_a_reason() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dscode-exthost"))
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = doc["layers"].as_array().unwrap();
    for layer in Layer::ALL {
        let entry = layers
            .iter()
            .find(|l| l["layer"] == layer.name())
            .unwrap_or_else(|| panic!("{} missing from {doc}", layer.name()));
        assert!(!entry["reason"].as_str().unwrap().is_empty(), "{entry}");
        assert!(entry["enforcement"].is_string(), "{entry}");
    }
    // This machine has Landlock (ABI 7) and seccomp; a doctor that says otherwise is wrong.
    assert_eq!(doc["machine"]["landlock"]["available"], true, "{doc}");
    assert!(
        doc["machine"]["landlock_abi"].as_i64().unwrap() >= 1,
        "{doc}"
    );
}

/// The supervisor moves a host into its cgroup after the spawn (to keep the cgroup migration's
/// RCU wait off the start-up path), so check that it really lands there before it runs
/// extension code: every process of the host's tree.
#[tokio::test(flavor = "multi_thread")]
async fn every_host_process_is_in_its_cgroup() {
    let probe = dscode_extension_host::sandbox::Probe::run(std::path::Path::new("bwrap"), None);
    if probe.cgroup_parents.is_none() {
        eprintln!(
            "SKIPPED: no usable cgroup here ({}); the host runs under the watchdog instead",
            probe.cgroups.detail
        );
        return;
    }
    let env = Env::new();
    let host = env.host(&common::example("hello"), fast());
    host.start().await.unwrap();
    let pid = host.status().pid.unwrap();
    let leaf = format!("/dscode-exthost-{}/", std::process::id());
    let pids = dscode_extension_host::sandbox::watch::tree_pids(pid, 1000).unwrap();
    assert!(!pids.is_empty(), "no process found for pid {pid}");
    for p in &pids {
        let cgroups = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
        for controller in ["memory", "pids"] {
            let line = cgroups
                .lines()
                .find(|l| {
                    l.split(':')
                        .nth(1)
                        .is_some_and(|c| c.split(',').any(|c| c == controller))
                        || l.starts_with("0::")
                })
                .unwrap_or_else(|| panic!("no {controller} line in {cgroups}"));
            assert!(
                line.contains(&leaf),
                "process {p} is outside its {controller} cgroup: {cgroups}"
            );
        }
    }
    // Positive control for the check itself: this test process is not in any host's cgroup.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(!own.contains(&leaf), "{own}");
    host.stop().await;
}

/// A new direct view reaches a running host only through a restart (the OS layers cannot be
/// narrowed under a live process); a stopped host takes it at its next start and is not started.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_direct_view_restarts_a_live_host_and_nothing_else() {
    use dscode_extension_host::lifecycle::{StartError, ViewChange};
    let env = Env::new();
    let workspace = tempfile::tempdir().unwrap();
    let src = workspace.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "direct").unwrap();
    let file = src.join("a.txt").to_str().unwrap().to_owned();
    let host = HostHandle::spawn(
        env.spec(&fixture("api-client"), fast()),
        Arc::new(dscode_extension_host::rpc::NoMethods),
    );
    let read_direct = || async {
        let args = raw(&json!([file]).to_string());
        json(&host.execute_command("api.readDirect", &args).await.unwrap())
    };
    let view = |read: &[&std::path::Path]| {
        let host = host.clone();
        let read = read.iter().map(|p| p.to_path_buf()).collect();
        async move { host.set_direct_view(read, Vec::new()).await }
    };

    assert_eq!(view(&[]).await.unwrap(), ViewChange::Unchanged);
    assert_eq!(view(&[&src]).await.unwrap(), ViewChange::Updated);
    assert_eq!(host.state(), S::Stopped, "a stopped host is not started");
    host.start().await.unwrap();
    assert_eq!(read_direct().await["ok"], "direct");
    let first_pid = host.status().pid.unwrap();

    // Narrowed while running: it returns once the host runs again, with the new view.
    let mut events = host.subscribe();
    assert_eq!(view(&[]).await.unwrap(), ViewChange::Restarting);
    assert_eq!(host.state(), S::Running);
    let seen = common::until_state(&mut events, S::Running).await;
    let path: Vec<_> = seen.iter().map(|c| c.to).collect();
    assert_eq!(path, [S::Stopping, S::Stopped, S::Starting, S::Running]);
    assert!(
        matches!(&seen[0].reason, Reason::ViewChanged { read, write } if read.is_empty() && write.is_empty()),
        "{seen:#?}"
    );
    assert!(
        matches!(seen[1].reason, Reason::Stopped { .. }),
        "{seen:#?}"
    );
    assert!(
        matches!(seen[2].reason, Reason::ViewChanged { .. }),
        "{seen:#?}"
    );
    assert_ne!(host.status().pid, Some(first_pid));
    assert_eq!(host.status().restarts, 0, "a new view is not a failure");
    let denied = read_direct().await;
    assert!(
        denied["ok"].is_null() && denied["code"].is_string(),
        "{denied}"
    );

    // A new view while the host is starting: the start in progress is abandoned, and the
    // caller waiting for it gets the host with the new view.
    host.stop().await;
    let mut events = host.subscribe();
    let starting = {
        let host = host.clone();
        tokio::spawn(async move { host.start().await })
    };
    // Events are never dropped, so the Starting state is seen however briefly it lasts (if the
    // host runs already by the time the view arrives, it is restarted all the same).
    common::until_state(&mut events, S::Starting).await;
    assert_eq!(view(&[&src]).await.unwrap(), ViewChange::Restarting);
    starting.await.unwrap().unwrap();
    assert_eq!(host.state(), S::Running);
    assert_eq!(read_direct().await["ok"], "direct");

    // A stop right behind a new view wins: the restart ends in Stopped, and says so.
    let narrowing = view(&[]);
    let stopping = {
        let host = host.clone();
        async move { host.stop().await }
    };
    let (narrowed, ()) = tokio::join!(narrowing, stopping);
    assert!(
        matches!(
            narrowed,
            Err(StartError::Stopped { .. }) | Ok(ViewChange::Restarting | ViewChange::Updated)
        ),
        "{narrowed:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(host.state(), S::Stopped, "a stopped host stays stopped");
}
