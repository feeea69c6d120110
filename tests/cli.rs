//! The `dscode-exthost` binary: `run`, `status`, `exec`, config errors, and what happens to hosts
//! when the supervisor is killed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{alive, descendants, example, fixture, gone, repo};

const BIN: &str = env!("CARGO_BIN_EXE_dscode-exthost");

struct Supervisor {
    child: Child,
    dir: tempfile::TempDir,
}

impl Supervisor {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("ctl/control.sock")
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path())
            .output()
            .expect("run cli")
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status prints JSON")
    }

    /// Waits until every host reports `running`.
    fn wait_running(&self, hosts: usize) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.socket().exists() {
                let status = self.status();
                let running = status["hosts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["state"] == "running")
                    .count();
                if running == hosts {
                    return status;
                }
            }
            assert!(Instant::now() < deadline, "hosts did not all start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("exthost.toml");
    let socket = dir.join("ctl/control.sock");
    let text = format!(
        "[supervisor]\ncontrol_socket = \"{}\"\n[defaults]\nheartbeat_interval_ms = 100\nheartbeat_timeout_ms = 3000\nshutdown_grace_ms = 1000\n[defaults.restart]\nbackoff_initial_ms = 20\n{body}",
        socket.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn start(body: &str) -> Supervisor {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), body);
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn supervisor");
    Supervisor { child, dir }
}

fn extension(path: &Path) -> String {
    format!("[[extension]]\npath = {:?}\n", path.to_str().unwrap())
}

#[test]
fn run_status_exec_and_graceful_sigterm() {
    let mut sup = start(&(extension(&example("hello")) + &extension(&fixture("faulty"))));
    let status = sup.wait_running(2);
    let ids: Vec<_> = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["dscode.hello", "test.faulty"]);
    // `run` makes the supervisor non-dumpable; hosts must still get their own PID namespace.
    // ... and their user namespace gets its id maps, without which the stage's private /tmp
    // cannot be built (the non-dumpable supervisor's children cannot write them by default).
    for host in status["hosts"].as_array().unwrap() {
        assert_eq!(host["containment"], "pid-namespace", "{host}");
        let tmp = host["sandbox"]["layers"]
            .as_array()
            .expect("status carries the enforcement report")
            .iter()
            .find(|l| l["layer"] == "tmp")
            .expect("a tmp layer entry");
        assert_eq!(tmp["enforcement"], "FullyEnforced", "{host}");
    }

    let out = sup.cli(&["exec", "dscode.hello", "hello.greet", r#"["CLI"]"#]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#""Hello, CLI!""#
    );

    let table = sup.cli(&["status"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("dscode.hello"));

    // Failures exit non-zero with a clear message and no stdout.
    let cases: [(&[&str], &str); 4] = [
        (
            &["exec", "no.such", "x"],
            "no extension host with id no.such",
        ),
        (&["exec", "dscode.hello", "hello.nope"], "CommandNotFound"),
        (
            &["exec", "dscode.hello", "hello.greet", "{not json"],
            "not valid JSON",
        ),
        (&["exec", "test.faulty", "faulty.throw"], "boom"),
    ];
    for (args, needle) in cases {
        let out = sup.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.stdout.is_empty() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }

    let pids: Vec<u32> = descendants(sup.child.id());
    assert!(!pids.is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(sup.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = sup.child.wait().unwrap();
    assert!(exit.success(), "supervisor exited with {exit}");
    assert!(
        pids.iter().all(|pid| gone(*pid)),
        "hosts outlived a graceful stop"
    );
    assert!(!sup.socket().exists(), "control socket left behind");
}

#[test]
fn no_host_or_grandchild_outlives_a_sigkilled_supervisor() {
    let mut sup = start(&(extension(&example("hello")) + &extension(&fixture("faulty"))));
    sup.wait_running(2);
    // A grandchild that detaches into its own session, as a daemonizing dependency would.
    let out = sup.cli(&["exec", "test.faulty", "faulty.spawnGrandchild"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = descendants(sup.child.id());
    assert!(
        tree.len() >= 5,
        "expected two shims, two hosts and a grandchild: {tree:?}"
    );
    assert!(tree.iter().all(|pid| alive(*pid)));

    sup.child.kill().unwrap();
    sup.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tree.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<_> = tree.iter().filter(|pid| alive(**pid)).collect();
    assert!(
        survivors.is_empty(),
        "processes outlived the supervisor: {survivors:?}"
    );
}

fn grant_cli(sup: &Supervisor, verb: &str, permission: &str) -> Output {
    let config = sup.dir.path().join("exthost.toml");
    Command::new(BIN)
        .args([verb, "test.api-client", permission, "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(sup.socket())
        .env("XDG_RUNTIME_DIR", sup.dir.path())
        .env("XDG_STATE_HOME", sup.dir.path())
        .output()
        .unwrap()
}

#[test]
fn grant_revoke_and_deny_apply_to_a_running_supervisor() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ws.path().join("src/private")).unwrap();
    std::fs::write(ws.path().join("src/a.txt"), "granted text").unwrap();
    std::fs::write(ws.path().join("src/private/key"), "private").unwrap();
    let body = format!(
        "[[extension]]\npath = {:?}\n",
        fixture("api-client").to_str().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &body);
    let workspace = format!(
        "[supervisor]\nworkspace = [{:?}]\n",
        ws.path().to_str().unwrap()
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replacen("[supervisor]\n", &workspace, 1);
    std::fs::write(&config, text).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sup = Supervisor { child, dir };
    sup.wait_running(1);
    // Through the broker (`api.read`), and directly with Node's `fs` (`api.readDirect`), which
    // only the sandbox's view of the workspace decides.
    let call = |command: &str, path: &str| {
        let args = serde_json::json!([ws.path().join(path).to_str().unwrap()]).to_string();
        let out = sup.cli(&["exec", "test.api-client", command, &args]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let read = |path: &str| call("api.read", path);
    let read_direct = |path: &str| call("api.readDirect", path);
    let restarted = "restarted test.api-client so its sandbox matches its grants";
    assert_eq!(read("src/a.txt")["code"], "PermissionDenied");
    let direct = read_direct("src/a.txt");
    assert!(
        direct["ok"].is_null() && direct["code"].is_string(),
        "{direct}"
    );

    let out = grant_cli(&sup, "grant", "fileSystem.read");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("the running supervisor applied it")
            && stdout.contains(restarted),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read("src/a.txt")["ok"], "granted text");
    assert_eq!(read("src/private/key")["ok"], "private");
    // The restarted host sees the granted folder directly.
    assert_eq!(read_direct("src/a.txt")["ok"], "granted text");

    // A scoped deny cannot be carved out of an OS view, so the direct view goes entirely and
    // reads go through the broker, which applies the deny.
    let out = grant_cli(&sup, "deny", "fileSystem.read:src/private/**");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(restarted),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read("src/private/key")["code"], "PermissionDenied");
    let direct = read_direct("src/private/key");
    assert!(
        direct["ok"].is_null() && direct["code"].is_string(),
        "{direct}"
    );
    assert_eq!(read("src/a.txt")["ok"], "granted text");

    // Granting the denied scope drops the deny (a scope narrower than the manifest's grants
    // nothing by itself), and the direct view comes back.
    let out = grant_cli(&sup, "grant", "fileSystem.read:src/private/**");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains(restarted),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_direct("src/a.txt")["ok"], "granted text");

    // Revoking takes the direct view away too.
    let out = grant_cli(&sup, "revoke", "fileSystem.read");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(restarted),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read("src/a.txt")["code"], "PermissionDenied");
    let direct = read_direct("src/a.txt");
    assert!(
        direct["ok"].is_null() && direct["code"].is_string(),
        "{direct}"
    );
    let direct = read_direct("src/private/key");
    assert!(
        direct["ok"].is_null() && direct["code"].is_string(),
        "{direct}"
    );

    // The grants file lives in the state folder, out of every workspace.
    assert!(!sup.dir.path().join("grants.toml").exists());
    let grants =
        std::fs::read_to_string(sup.dir.path().join("dscode-exthost/grants.toml")).unwrap();
    assert!(
        grants.contains("version = \"1.0.0\"") && grants.contains("src/private/**"),
        "{grants}"
    );
    let bad = grant_cli(&sup, "grant", "fileSystem.execute");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("valid permissions are"),
        "{stderr}"
    );
}

#[test]
fn a_config_typo_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[extension]]\npath = \"x\"\nautostart = true\n",
    );
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("exthost.toml")
            && stderr.contains("line 11")
            && stderr.contains("autostart"),
        "{stderr}"
    );
}

#[test]
fn status_without_a_supervisor_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["status", "--socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("dscode-exthost run"),
        "{stderr}"
    );
}

#[test]
fn demo_runs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("demo")
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Hello, DSCode!",
        "lacks `fileSystem.read` for workspace:.ssh/id_ed25519",
        r#"{"words":6,"lines":2,"chars":32}"#,
        "<outside allowed roots>",
        "unhealthy (killed by signal 9",
        "Hello, again!",
        "profile default on backend landlock",
        "full    filesystem",
        "full    seccomp",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // Real escapes, blocked by the OS: the host's own fs read of the workspace's key (granted
    // only through a glob, which the broker alone serves) and of a key outside the workspace
    // fail, while the same command on a file of its view (the positive control) counts words.
    let direct: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("wordCount.readFileDirectly ["))
        .collect();
    assert_eq!(direct.len(), 3, "{stdout}");
    assert!(
        direct[0].contains("package.json") && direct[0].contains(r#"{"words":"#),
        "{}",
        direct[0]
    );
    for (line, place) in [(direct[1], "demo-workspace/.ssh"), (direct[2], "demo-home")] {
        assert!(
            line.contains(place)
                && line.contains("-> error:")
                && line.contains("ENOENT")
                && !line.contains("words"),
            "{line}"
        );
    }
}

/// Runs the binary with `args`, feeding `stdin`; inherits the environment (the keyring session).
fn cli_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_handshake_secret_reaches_its_host_and_leaks_nowhere() {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let id = format!("local.leak-test-{}-{nonce}", std::process::id());
    let canary = format!("sk-canary-{nonce:x}-do-not-leak");
    let set = cli_with_stdin(&["secret", "set", &id, "MODEL_API_KEY"], &canary);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(!String::from_utf8_lossy(&set.stderr).contains(&canary) && set.stdout.is_empty());

    let factory = repo().join("examples/agent-factory");
    let body = format!(
        "[[host]]\nid = {id:?}\ncommand = [{:?}, {:?}]\nsecrets = [\"MODEL_API_KEY\"]\n",
        common::python().to_str().unwrap(),
        factory.join("host.py").to_str().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &body);
    let log_path = dir.path().join("supervisor.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(BIN)
        .args(["--log", "trace", "run", "--config"])
        .arg(&config)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut sup = Supervisor { child, dir };
    let status = sup.wait_running(1);

    // Positive control: the host has the value (it answers with its digest, not the value).
    let out = sup.cli(&["exec", &id, "factory.secretDigests"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
            &canary,
        ])
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&digest.stdout).trim().to_owned();
    let digests: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(digests["MODEL_API_KEY"], expected.as_str());

    // Nowhere else: environment and command line of every process under the supervisor...
    for pid in descendants(sup.child.id()) {
        for file in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&canary),
                "secret in /proc/{pid}/{file}"
            );
        }
    }
    // ...status output...
    assert!(!status.to_string().contains(&canary));
    assert!(!String::from_utf8_lossy(&sup.cli(&["status", "--json"]).stdout).contains(&canary));
    // ...and every log line at trace level, after a clean stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(sup.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(sup.child.wait().unwrap().success());
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains(&id) && (logs.contains("TRACE") || logs.contains("DEBUG")),
        "the log captured too little to mean anything:\n{logs}"
    );
    assert!(!logs.contains(&canary), "secret in the supervisor log");

    let cleanup = cli_with_stdin(&["secret", "delete", &id, "--all"], "");
    assert!(
        cleanup.status.success(),
        "{}",
        String::from_utf8_lossy(&cleanup.stderr)
    );
    let listed = cli_with_stdin(&["secret", "list", &id], "");
    assert!(
        listed.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
}

/// Connects a raw client to the control socket; `None` once the supervisor closes it at once.
fn raw_client(socket: &Path) -> Option<std::os::unix::net::UnixStream> {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        // Closed by the supervisor: refused.
        Ok(0) => None,
        // Still open and silent (a timeout): admitted.
        _ => Some(stream),
    }
}

/// The control socket outlives a descriptor shortage and a crowd of idle clients: clients
/// beyond the budget are closed as they arrive, idle ones are closed after the timeout, and a
/// supervisor out of file descriptors keeps its listener (and the socket file) and answers
/// again once they are back.
#[test]
fn the_control_socket_survives_fd_exhaustion_crowds_and_idlers() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &extension(&example("hello")));
    // The budget and the idle timeout small enough to see; the supervisor's open files capped
    // (prlimit from util-linux), since raising them to the hard limit is what `run` does first.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[supervisor]\n",
        "[supervisor]\ncontrol_max_clients = 8\ncontrol_idle_timeout_s = 4\n",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let child = Command::new("prlimit")
        .arg("--nofile=96:96")
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("XDG_RUNTIME_DIR", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn supervisor under prlimit");
    let sup = Supervisor { child, dir };
    sup.wait_running(1);
    let socket = sup.socket();

    // A crowd: the budget's worth are admitted, the rest are closed on arrival, and while the
    // crowd stays the budget is spent for everyone.
    let crowd: Vec<_> = (0..12).map(|_| raw_client(&socket)).collect();
    let admitted = crowd.iter().filter(|c| c.is_some()).count();
    assert_eq!(
        admitted, 8,
        "{admitted} of 12 clients admitted with a budget of 8"
    );
    let out = sup.cli(&["status", "--json"]);
    assert!(!out.status.success(), "status got through a spent budget");
    // Idle clients are closed after the timeout, which frees the budget (the crowd is still
    // held open on our side).
    std::thread::sleep(Duration::from_secs(5));
    assert!(sup.status()["hosts"].is_array());
    drop(crowd);

    // Out of descriptors: hold more connections than the supervisor has fds for (the budget is
    // not what stops them: most are still pending in the kernel's queue).
    let mut hoard = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = std::os::unix::net::UnixStream::connect(&socket) {
            hoard.push(stream);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(socket.exists(), "the socket file is still there");
    drop(hoard);
    // Once descriptors are back, it answers again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = sup.cli(&["status", "--json"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor never answered again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Someone else's directory at the supervisor's /tmp fallback does not stop it: it runs from a
/// fresh private directory beside it and says where.
#[test]
fn a_squatted_runtime_directory_does_not_stop_the_supervisor() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        // Root's runtime directory is /run/dscode-exthost, which no one else can create; the
        // /tmp fallback is a user's. (The unprivileged run of this suite covers it.)
        eprintln!("root uses /run/dscode-exthost: nothing to squat under /tmp");
        return;
    }
    let squatted = tmp.path().join(format!("dscode-exthost-{uid}"));
    std::fs::create_dir(&squatted).unwrap();
    std::fs::set_permissions(&squatted, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = tmp.path().join("exthost.toml");
    std::fs::write(&config, extension(&example("hello"))).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUNTIME_DIRECTORY")
        .env("TMPDIR", tmp.path())
        .env("XDG_STATE_HOME", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let found = std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p != &squatted
                    && p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&format!("dscode-exthost-{uid}-"))
                    && p.join("control.sock").exists()
            });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no fresh runtime directory appeared"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let out = Command::new(BIN)
        .args(["status", "--json", "--socket"])
        .arg(fresh.join("control.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().try_into().unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success());
}
