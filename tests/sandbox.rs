//! The escape suite: a hostile extension (tests/fixtures/extensions/escape) attempts dozens of
//! escapes from a real sandboxed host, once per backend. Every attack must fail and every
//! positive control (the allowed counterpart, by the same mechanism) must work, so a sandbox
//! that blocks everything fails too. The same extension run without a sandbox shows that the
//! attacks are real. Servers the attacks aim at run here and report what reached them.
//!
//! Targets are planted where real secrets live, never under /tmp (every backend gives a host
//! a private /tmp, so a target there proves nothing): in the user's real home, under /var
//! (`/var/lib` as root, `/var/tmp` as a user), and in another user's world-readable home.
//! The workspaces, the storage and the extension folder live there too. Each run starts the
//! extension with one set of grants (a [`Scenario`]); after it, what no attack may change is
//! compared with a snapshot taken from outside the sandbox.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Env, fast, json, raw, settings};
use dscode_extension_host::Supervisor;
use dscode_extension_host::config::Config;
use dscode_extension_host::lifecycle::{
    ExtensionHostState as S, HostHandle, HostOptions, HostSpec, Reason,
};
use dscode_extension_host::permissions::{
    Glob, Grant, GrantsFile, GrantsOnDisk, Permission, ScopeRoot,
};
use dscode_extension_host::sandbox::view::{FsGrants, PathRule};
use dscode_extension_host::sandbox::{Backend, Enforcement, Layer, Profile, SandboxSpec};
use serde_json::{Value, json};

/// The variable that carries the planted marker into a test run by [`in_planted_environment`].
const MARKER_VAR: &str = "DSCODE_ESCAPE_PLANTED_MARKER";

/// A value planted in every secret, and (in a test run by [`in_planted_environment`]) in the
/// supervisor's environment.
fn marker() -> &'static str {
    static MARKER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARKER.get_or_init(|| {
        std::env::var(MARKER_VAR)
            .unwrap_or_else(|_| format!("PLANTED-{}-{:x}", std::process::id(), rand_u64()))
    })
}

/// Runs `test` again in a child process whose environment holds what a developer's shell
/// typically does (tokens, `NODE_OPTIONS`, `LD_PRELOAD`, all carrying the marker) from its very
/// start, and checks that it passed; `true` means this is that child, which goes on with the
/// test. (Setting variables in this process instead would race with the tests running beside it
/// on other threads.) No host may see any of it.
async fn in_planted_environment(test: &'static str) -> bool {
    if std::env::var_os(MARKER_VAR).is_some() {
        return true;
    }
    let marker = format!("PLANTED-{}-{:x}", std::process::id(), rand_u64());
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(MARKER_VAR, &marker)
            .env("AWS_SECRET_ACCESS_KEY", &marker)
            .env("GITHUB_TOKEN", &marker)
            .env("NODE_OPTIONS", format!("--title={marker}"))
            .env("LD_PRELOAD", format!("/nonexistent/{marker}.so"))
            .status()
    })
    .await
    .unwrap()
    .expect("the test binary runs again");
    assert!(
        status.success(),
        "{test} failed in its planted environment: {status}"
    );
    false
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

/// The grants one run of the hostile extension starts with. Its manifest asks for all of
/// them; the grant decides (see the fixture's `lib/views.js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// `fileSystem.read:src/**`, `fileSystem.write:out/**`, and read *and* write of
    /// `shared/project/data/**`: every attack that needs no special grant.
    Baseline,
    /// `fileSystem.read:**/*.txt` and `fileSystem.write:**/*.md` on a workspace that holds
    /// `.ssh/id_ed25519` and `.git`.
    Glob,
    /// `fileSystem.write` on the whole workspace, which also holds `.git`, `.vscode` and the
    /// supervisor's own config and grants file.
    Unscoped,
}

impl Scenario {
    const ALL: [Self; 3] = [Self::Baseline, Self::Glob, Self::Unscoped];

    fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Glob => "glob",
            Self::Unscoped => "unscoped",
        }
    }

    fn workspace_dir(self) -> &'static str {
        match self {
            Self::Baseline => "workspace",
            Self::Glob => "ws-glob",
            Self::Unscoped => "ws-unscoped",
        }
    }

    fn allow(self) -> &'static [&'static str] {
        match self {
            Self::Baseline => &[
                "fileSystem.read:src/**",
                "fileSystem.write:out/**",
                "fileSystem.read:shared/project/data/**",
                "fileSystem.write:shared/project/data/**",
            ],
            Self::Glob => &["fileSystem.read:**/*.txt", "fileSystem.write:**/*.md"],
            Self::Unscoped => &["fileSystem.write"],
        }
    }
}

/// A folder granted read *and* write, at a depth where no other folder of the view is: the
/// bubblewrap backends kept only the first of two binds of one path when they sorted next to
/// each other (issue 11, item 6), so this is where that shows.
const READ_WRITE_DIR: &str = "shared/project/data";

/// The id the fixture's manifest gives the extension.
const EXTENSION_ID: &str = "test.escape";

/// Trees planted outside /tmp for one test, removed when it ends.
struct Planted {
    /// `<real home>/dscode-escape-<pid>-<rand>`: stands for the user's home.
    home: PathBuf,
    /// `/var/lib/dscode-escape-<pid>-<rand>` as root, `/var/tmp/...` as a user: workspaces,
    /// storage, the extension folder and everything else the test needs.
    var: PathBuf,
}

impl Planted {
    fn new() -> Self {
        let name = format!("dscode-escape-{}-{:x}", std::process::id(), rand_u64());
        let home = real_home().join(&name);
        let var_parent = if nix::unistd::geteuid().is_root() {
            "/var/lib"
        } else {
            "/var/tmp"
        };
        let var = Path::new(var_parent).join(&name);
        for dir in [&home, &var] {
            assert!(
                !dir.starts_with("/tmp"),
                "{} is under /tmp, which every backend hides: a target there proves nothing",
                dir.display()
            );
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        Self { home, var }
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        for dir in [&self.home, &self.var] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The user's real home: `$HOME` (scripts/test-unprivileged passes the one from the passwd
/// entry), else the passwd entry itself.
fn real_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h.is_dir() && !h.starts_with("/tmp"))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .expect("a home directory")
}

/// Writes `contents` to `path` (creating its parents) with `mode`.
fn plant(path: &Path, contents: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Copies a directory tree, keeping file modes (the fixture's `bin/hello` is executable).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Another user's home, readable by every local user (dirs 0755, files 0644), so that only the
/// sandbox can hide it. scripts/test-unprivileged plants one as root before it switches users
/// and names it in `DSCODE_ESCAPE_VICTIM_HOME` (with its marker in
/// `DSCODE_ESCAPE_VICTIM_MARKER`); without those (a root run) the test plants its own.
struct Victim {
    home: PathBuf,
    marker: String,
}

impl Victim {
    fn find_or_plant(planted: &Planted) -> Self {
        if let (Some(home), Some(marker)) = (
            std::env::var_os("DSCODE_ESCAPE_VICTIM_HOME"),
            std::env::var("DSCODE_ESCAPE_VICTIM_MARKER").ok(),
        ) {
            let home = PathBuf::from(home);
            assert!(
                home.join(".ssh/id_ed25519").is_file(),
                "DSCODE_ESCAPE_VICTIM_HOME={} has no .ssh/id_ed25519",
                home.display()
            );
            return Self { home, marker };
        }
        let home = planted.var.join("victim/home");
        let marker = format!("VICTIM-{:x}", rand_u64());
        plant(
            &home.join(".ssh/id_ed25519"),
            format!("-----BEGIN OPENSSH PRIVATE KEY----- {marker}\n").as_bytes(),
            0o644,
        );
        plant(
            &home.join("project/notes.txt"),
            format!("notes {marker}\n").as_bytes(),
            0o644,
        );
        for dir in [
            planted.var.join("victim"),
            home.clone(),
            home.join(".ssh"),
            home.join("project"),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { home, marker }
    }
}

/// What the kernel says a path is: stat and inotify attacks only count when they see the real
/// file, not a stand-in a sandbox shows at the same path.
fn identity(path: &Path) -> Value {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json!({
        "dev": m.dev(),
        "ino": m.ino(),
        "size": m.size(),
        "major": libc::major(m.dev()),
        "minor": libc::minor(m.dev()),
    })
}

/// One path as seen from outside the sandbox: what an attack that worked would change.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Missing,
    File {
        meta: [i64; 7],
        content: Vec<u8>,
    },
    Dir {
        meta: [i64; 7],
        names: BTreeSet<std::ffi::OsString>,
    },
    Link {
        meta: [i64; 7],
        target: PathBuf,
    },
}

impl Seen {
    fn of(path: &Path) -> Self {
        let Ok(m) = std::fs::symlink_metadata(path) else {
            return Self::Missing;
        };
        // ctime catches every metadata change, even one that was undone afterwards.
        let meta = [
            i64::from(m.mode()),
            i64::from(m.uid()),
            i64::from(m.gid()),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ];
        if m.is_dir() {
            let names = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            Self::Dir { meta, names }
        } else if m.is_symlink() {
            Self::Link {
                meta,
                target: std::fs::read_link(path).unwrap(),
            }
        } else {
            Self::File {
                meta,
                content: std::fs::read(path).unwrap_or_default(),
            }
        }
    }
}

/// Paths no attack may change, as they were before a run.
struct Snapshot(Vec<(PathBuf, Seen)>);

impl Snapshot {
    fn take(paths: Vec<PathBuf>) -> Self {
        Self(
            paths
                .into_iter()
                .map(|p| (p.clone(), Seen::of(&p)))
                .collect(),
        )
    }

    /// What differs now, one line per path.
    fn changed(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(path, before)| {
                let now = Seen::of(path);
                (now != *before).then(|| {
                    let what = match (before, &now) {
                        (Seen::Missing, _) => "created".to_owned(),
                        (_, Seen::Missing) => "deleted".to_owned(),
                        (Seen::File { content: a, .. }, Seen::File { content: b, .. })
                            if a != b =>
                        {
                            "content changed".to_owned()
                        }
                        (Seen::Dir { names: a, .. }, Seen::Dir { names: b, .. }) if a != b => {
                            format!(
                                "entries {:?}",
                                b.symmetric_difference(a).collect::<Vec<_>>()
                            )
                        }
                        _ => "metadata changed (mode, owner, times or xattrs: ctime)".to_owned(),
                    };
                    format!("{}: {what}", path.display())
                })
            })
            .collect()
    }
}

struct Fixture {
    planted: Planted,
    victim: Victim,
    /// The extension, copied next to the workspaces (an extension folder its user owns, like
    /// `~/.vscode/extensions/...`; attacks on it never touch the repository).
    extension: PathBuf,
    storage: PathBuf,
    tcp_port: u16,
    udp_port: u16,
    abstract_name: String,
    hits: Vec<(&'static str, Arc<AtomicUsize>)>,
    _leak: std::fs::File,
    bystander: std::process::Child,
}

impl Fixture {
    #[expect(clippy::too_many_lines)] // one list of planted files
    fn new() -> Self {
        let marker = marker();
        let planted = Planted::new();
        let victim = Victim::find_or_plant(&planted);
        let home = |rel: &str| planted.home.join(rel);
        let var = |rel: &str| planted.var.join(rel);
        let key = format!("-----BEGIN OPENSSH PRIVATE KEY----- {marker}\n");
        let git_config = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n";
        for (path, contents, mode) in [
            // The user's home.
            (home(".ssh/id_rsa"), key.clone(), 0o600),
            (home(".ssh/id_ed25519"), key.clone(), 0o600),
            (
                home(".aws/credentials"),
                format!("[default]\naws_secret_access_key = {marker}\n"),
                0o600,
            ),
            (
                home(".config/google-chrome/Default/Login Data"),
                format!("cookie {marker}"),
                0o600,
            ),
            // Outside every view, owned by the supervisor's user: the metadata target.
            (
                home(".bashrc"),
                "# the user's shell start-up\n".into(),
                0o644,
            ),
            // The baseline workspace.
            (var("workspace/src/readable.txt"), "readable".into(), 0o644),
            (
                var("workspace/src/existing.txt"),
                "existing\n".into(),
                0o644,
            ),
            (var("workspace/src/meta-target.txt"), "meta\n".into(), 0o644),
            (
                var("workspace/private/secret.txt"),
                marker.to_owned(),
                0o644,
            ),
            (
                var(&format!("workspace/{READ_WRITE_DIR}/existing.txt")),
                "existing\n".into(),
                0o644,
            ),
            // The glob workspace.
            (var("ws-glob/.ssh/id_ed25519"), key.clone(), 0o600),
            (var("ws-glob/.git/config"), git_config.into(), 0o644),
            (
                var("ws-glob/.git/hooks/pre-commit.sample"),
                "#!/bin/sh\n".into(),
                0o755,
            ),
            (
                var("ws-glob/notes/todo.txt"),
                "todo: write more\n".into(),
                0o644,
            ),
            (var("ws-glob/notes/delete-me.md"), "keep me\n".into(), 0o644),
            (var("ws-glob/README.md"), "# project\n".into(), 0o644),
            // The unscoped workspace (the config and grants file are written per run).
            (var("ws-unscoped/.git/config"), git_config.into(), 0o644),
            (
                var("ws-unscoped/.git/hooks/pre-commit.sample"),
                "#!/bin/sh\n".into(),
                0o755,
            ),
            (
                var("ws-unscoped/.vscode/settings.json"),
                "{}\n".into(),
                0o644,
            ),
            (var("ws-unscoped/src/main.txt"), "main\n".into(), 0o644),
            // Everything else.
            (var("other-storage/secret.txt"), marker.to_owned(), 0o644),
            (var("leak-canary"), marker.to_owned(), 0o644),
        ] {
            plant(&path, contents.as_bytes(), mode);
        }
        // A copy of a binary outside every view: root's own when the supervisor is root, so
        // that `chmod u+s` on it would hand root to every local user.
        plant(
            &var("secrets/escape-true"),
            &std::fs::read("/bin/true").unwrap(),
            0o755,
        );
        std::os::unix::fs::symlink(
            format!("/nonexistent/{marker}/id_ed25519"),
            home(".config/link-to-key"),
        )
        .unwrap();
        for rel in ["workspace/out", "outside", "storage"] {
            std::fs::create_dir_all(var(rel)).unwrap();
        }
        let extension = var("extensions/test.escape-1.0.0");
        copy_tree(&common::fixture("escape"), &extension);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let unix = UnixListener::bind(var("outside/listener.sock")).unwrap();
        let abstract_name = format!("dscode-escape-{}-{:x}", std::process::id(), rand_u64());
        let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = UnixListener::bind_addr(&addr).unwrap();
        let control = UnixListener::bind(var("control.sock")).unwrap();
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
        let leak = std::fs::File::open(var("leak-canary")).unwrap();
        nix::fcntl::fcntl(
            &leak,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .unwrap();
        let bystander = std::process::Command::new("sleep")
            .arg("300")
            .spawn()
            .unwrap();
        let fixture = Self {
            storage: var("storage"),
            extension,
            victim,
            planted,
            tcp_port,
            udp_port,
            abstract_name,
            hits,
            _leak: leak,
            bystander,
        };
        fixture.plant_supervisor_config();
        fixture
    }

    /// A path under the planted `/var` tree.
    fn path(&self, rel: &str) -> PathBuf {
        self.planted.var.join(rel)
    }

    fn home(&self, rel: &str) -> PathBuf {
        self.planted.home.join(rel)
    }

    fn workspace(&self, scenario: Scenario) -> PathBuf {
        self.path(scenario.workspace_dir())
    }

    /// An [`Env`] whose runtime directory is outside /tmp too.
    fn env(&self) -> Env {
        Env::new_in(&self.planted.var)
    }

    fn targets(&self, env: &Env, scenario: Scenario) -> Value {
        let workspace = self.workspace(scenario);
        let mut identities = serde_json::Map::new();
        for path in [
            self.home(".ssh/id_ed25519"),
            self.victim.home.join(".ssh/id_ed25519"),
            self.planted.home.clone(),
            self.victim.home.clone(),
            PathBuf::from("/etc"),
        ] {
            identities.insert(path.display().to_string(), identity(&path));
        }
        json!({
            "scenario": scenario.name(),
            "home": self.planted.home,
            "marker": marker(),
            "workspace": workspace,
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
            "victimHome": self.victim.home,
            "victimMarker": self.victim.marker,
            "metaOutside": self.home(".bashrc"),
            "suidCopy": self.path("secrets/escape-true"),
            "outsideLink": self.home(".config/link-to-key"),
            "readWriteDir": workspace.join(READ_WRITE_DIR),
            "grantsFile": workspace.join("grants.toml"),
            "configFile": workspace.join("dscode-exthost.toml"),
            "identities": identities,
        })
    }

    /// What no attack of `scenario` may change.
    fn guarded(&self, scenario: Scenario) -> Vec<PathBuf> {
        let ws = self.workspace(scenario);
        match scenario {
            Scenario::Baseline => {
                let mut paths: Vec<PathBuf> = [
                    "",
                    ".ssh",
                    ".ssh/id_rsa",
                    ".ssh/id_ed25519",
                    ".aws/credentials",
                    ".config/google-chrome/Default/Login Data",
                    ".config/link-to-key",
                    ".bashrc",
                ]
                .iter()
                .map(|rel| self.home(rel))
                .collect();
                paths.extend(
                    [
                        "src",
                        "src/readable.txt",
                        "src/existing.txt",
                        "src/meta-target.txt",
                    ]
                    .iter()
                    .chain(&["private/secret.txt"])
                    .map(|rel| ws.join(rel)),
                );
                paths.extend(
                    [
                        "secrets",
                        "secrets/escape-true",
                        "other-storage/secret.txt",
                        "outside",
                    ]
                    .iter()
                    .map(|rel| self.path(rel)),
                );
                paths.extend(
                    ["", "README.md", "package.json", "bin/hello"]
                        .iter()
                        .map(|rel| self.extension.join(rel)),
                );
                paths.extend(
                    [
                        "",
                        ".ssh",
                        ".ssh/id_ed25519",
                        "project",
                        "project/notes.txt",
                    ]
                    .iter()
                    .map(|rel| self.victim.home.join(rel)),
                );
                paths
            }
            Scenario::Glob => [
                ".ssh/id_ed25519",
                ".git",
                ".git/config",
                ".git/hooks",
                "notes/delete-me.md",
                "notes/todo.txt",
                "sub",
            ]
            .iter()
            .map(|rel| ws.join(rel))
            .collect(),
            Scenario::Unscoped => [
                ".git",
                ".git/config",
                ".git/hooks",
                ".vscode",
                ".vscode/settings.json",
                ".vscode/tasks.json",
                ".envrc",
                "grants.toml",
                "dscode-exthost.toml",
            ]
            .iter()
            .map(|rel| ws.join(rel))
            .collect(),
        }
    }

    fn spec(&self, env: &Env, sandbox: SandboxSpec) -> HostSpec {
        let mut spec = env.spec(&self.extension, options());
        spec.storage_path = Some(self.storage.clone());
        spec.sandbox = sandbox;
        spec
    }

    /// The grant `scenario` runs with.
    fn grant(scenario: Scenario) -> Grant {
        let allow: Vec<String> = scenario.allow().iter().map(|s| (*s).to_owned()).collect();
        Grant {
            version: "1.0.0".into(),
            requested: allow.clone(),
            allow,
            deny: Vec::new(),
        }
    }

    /// The supervisor's config file in the unscoped workspace, naming the grants file beside
    /// it, as a user who keeps the supervisor's setup in the project has it.
    fn plant_supervisor_config(&self) -> PathBuf {
        let workspace = self.workspace(Scenario::Unscoped);
        let config = workspace.join("dscode-exthost.toml");
        let text = format!(
            "[supervisor]\nworkspace = [{:?}]\ngrants = \"grants.toml\"\n\n[[extension]]\npath = {:?}\n",
            workspace.display().to_string(),
            self.extension.display().to_string(),
        );
        plant(&config, text.as_bytes(), 0o644);
        let mut grants = toml_table(EXTENSION_ID, &Self::grant(Scenario::Unscoped));
        grants.insert(0, "# The supervisor's own grants.\n".into());
        plant(
            &workspace.join("grants.toml"),
            grants.concat().as_bytes(),
            0o644,
        );
        config
    }

    /// The supervisor `scenario` runs under. The unscoped run's is set up the way
    /// `dscode-exthost run` sets itself up from its config file (which lies in the workspace):
    /// its grants file, its workspace and its own files kept private.
    async fn supervisor(&self, env: &Env, scenario: Scenario) -> Supervisor {
        let builder = Supervisor::builder()
            .node_runtime(env.node.clone())
            .without_secrets();
        let builder = if scenario == Scenario::Unscoped {
            let config =
                Config::load(&self.workspace(scenario).join("dscode-exthost.toml")).unwrap();
            builder
                .workspace(config.workspace())
                .policy(GrantsOnDisk::new(config.grants_path()))
                .private_paths(config.private_paths())
        } else {
            let mut grants = GrantsFile::default();
            grants
                .extensions
                .insert(EXTENSION_ID.into(), Self::grant(scenario));
            builder.workspace([self.workspace(scenario)]).policy(grants)
        };
        builder.build().await.unwrap()
    }

    /// Starts the hostile extension with `scenario`'s grants and the view they give.
    async fn start(&self, env: &Env, scenario: Scenario, sandbox: SandboxSpec) -> HostHandle {
        let supervisor = self.supervisor(env, scenario).await;
        let host = supervisor
            .add_host(self.spec(env, sandbox))
            .await
            .expect("the hostile extension is added");
        host.start().await.expect("the hostile extension starts");
        host
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

/// A grants-file table for one extension, as `dscode-exthost grant` writes it.
fn toml_table(extension: &str, grant: &Grant) -> Vec<String> {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        format!("[extensions.{extension:?}]\n"),
        format!("version = {:?}\n", grant.version),
        format!("requested = [{}]\n", list(&grant.requested)),
        format!("allow = [{}]\n", list(&grant.allow)),
    ]
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

/// Runs every attack of `targets.scenario`; returns the results array.
async fn run_attacks(host: &HostHandle, targets: &Value) -> Vec<Value> {
    let out = host
        .execute_command("escape.run", &raw(&json!([targets]).to_string()))
        .await
        .expect("escape.run answers");
    let out = json(&out);
    let results = out["results"].as_array().cloned().expect("results");
    println!(
        "--- scenario {} ({} attacks, {} ms)",
        targets["scenario"].as_str().unwrap_or("?"),
        results.len(),
        out["durationMs"]
    );
    for r in &results {
        println!(
            "{:<36} attack {:<9} control {:<4} | {} | {}",
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

/// The attacks added for issue 11, each of which the suite must see run.
const NEW_ATTACKS: &[&str] = &[
    // glob scopes
    "glob.read-ssh-key",
    "glob.broker-read-ssh-key",
    "glob.write-git-hook",
    "glob.write-git-config",
    "glob.delete-without-permission",
    "glob.nested-git-repo",
    // protected paths
    "protected.direct-git-config",
    "protected.broker-git-config",
    "protected.direct-git-hook",
    "protected.broker-git-hook",
    "protected.direct-vscode-tasks",
    "protected.broker-vscode-tasks",
    "protected.direct-envrc",
    "protected.broker-envrc",
    // the supervisor's own files
    "selfgrant.direct-grants-file",
    "selfgrant.broker-grants-file",
    "selfgrant.direct-config-file",
    "selfgrant.broker-config-file",
    // read+write of one folder (bwrap's dedup)
    "fs.modify-readonly-grant",
    // another user's home, leases, inotify, stat
    "fs.read-victim-ssh-key",
    "fs.read-victim-project",
    "fs.list-victim-home",
    "fs.lease-workspace-file",
    "fs.inotify-outside",
    "fs.inotify-victim-home",
    "fs.inotify-etc",
    "fs.stat-outside",
    "fs.lstat-victim",
    "fs.readlink-outside",
    // exec
    "exec.memfd-execveat",
    "exec.memfd-proc-fd",
    "exec.tmp-binary",
    "exec.storage-binary",
    "exec.dlopen-tmp",
    "exec.dlopen-storage",
    // x32
    "kernel.x32-getpid",
    "kernel.x32-unshare",
    "kernel.x32-ptrace",
    // metadata
    "meta.chmod-outside",
    "meta.chmod-setuid-outside",
    "meta.chown-outside",
    "meta.utimes-outside",
    "meta.fchmod-rdonly-fd-outside",
    "meta.fchown-rdonly-fd-outside",
    "meta.futimes-rdonly-fd-outside",
    "meta.fchmodat-outside",
    "meta.fchmodat2-opath-outside",
    "meta.setxattr-outside",
    "meta.fsetxattr-rdonly-fd-outside",
    "meta.chmod-readonly-workspace",
    "meta.chmod-setuid-readonly-workspace",
    "meta.chown-readonly-workspace",
    "meta.utimes-readonly-workspace",
    "meta.fchmod-rdonly-fd-readonly-workspace",
    "meta.fchown-rdonly-fd-readonly-workspace",
    "meta.futimes-rdonly-fd-readonly-workspace",
    "meta.fchmodat-readonly-workspace",
    "meta.fchmodat2-opath-readonly-workspace",
    "meta.setxattr-readonly-workspace",
    "meta.fsetxattr-rdonly-fd-readonly-workspace",
    "meta.chmod-extension",
    "meta.utimes-extension",
    "meta.fchmod-rdonly-fd-extension",
    "meta.fchmodat2-opath-extension",
    "meta.setxattr-extension",
    "meta.setuid-binary-outside",
];

/// One run per scenario: what each returned and what changed that no attack may change.
struct Runs(Vec<(Scenario, Vec<Value>, Vec<String>)>);

impl Runs {
    fn results(&self) -> impl Iterator<Item = &Value> {
        self.0.iter().flat_map(|(_, results, _)| results)
    }

    fn ids(&self, scenario: Scenario) -> BTreeSet<String> {
        self.0
            .iter()
            .filter(|(s, _, _)| *s == scenario)
            .flat_map(|(_, results, _)| results)
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    fn succeeded(&self) -> BTreeSet<&str> {
        self.results()
            .filter(|r| r["attack"]["succeeded"] == true)
            .map(|r| r["id"].as_str().unwrap())
            .collect()
    }

    fn missing_new_attacks(&self) -> Vec<&'static str> {
        let ran: BTreeSet<_> = self.results().map(|r| r["id"].as_str().unwrap()).collect();
        NEW_ATTACKS
            .iter()
            .copied()
            .filter(|id| !ran.contains(id))
            .collect()
    }
}

/// Runs every scenario in `sandbox`, checking the sandbox report when `backend` is given.
async fn run_all(fixture: &Fixture, env: &Env, sandbox: &SandboxSpec) -> Runs {
    let mut runs = Vec::new();
    for scenario in Scenario::ALL {
        let snapshot = Snapshot::take(fixture.guarded(scenario));
        let host = fixture.start(env, scenario, sandbox.clone()).await;
        if sandbox.profile.backend != Backend::None {
            let report = host
                .status()
                .sandbox
                .expect("a sandboxed host has a report");
            assert_eq!(report.backend, sandbox.profile.backend);
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
        }
        let mut targets = fixture.targets(env, scenario);
        // Without Landlock the OS cannot let a host change files without also letting it
        // create `.git`, so bubblewrap alone leaves workspace writes to the broker.
        targets["directWrites"] = json!(sandbox.profile.backend != Backend::Bwrap);
        let results = run_attacks(&host, &targets).await;
        // The host is still healthy after all of it.
        assert_eq!(host.status().state, S::Running, "{}", scenario.name());
        host.stop().await;
        runs.push((scenario, results, snapshot.changed()));
    }
    Runs(runs)
}

async fn escape_suite(backend: Backend) {
    let fixture = Fixture::new();
    let env = fixture.env();
    let runs = run_all(&fixture, &env, &profile(backend)).await;
    let ids = runs.ids(Scenario::Baseline);
    assert!(
        ids.len() >= 30,
        "only {} distinct attacks: {ids:?}",
        ids.len()
    );
    let missing = runs.missing_new_attacks();
    assert!(
        missing.is_empty(),
        "{backend}: attacks not run: {missing:?}"
    );
    let line = |r: &Value, part: &str| {
        format!(
            "{}: {}",
            r["id"].as_str().unwrap_or("?"),
            r[part]["evidence"].as_str().unwrap_or("")
        )
    };
    let escaped: Vec<_> = runs
        .results()
        .filter(|r| r["attack"]["succeeded"] != false)
        .map(|r| line(r, "attack"))
        .collect();
    let broken: Vec<_> = runs
        .results()
        .filter(|r| r["control"]["ok"] != true)
        .map(|r| line(r, "control"))
        .collect();
    // Seen from outside: what no attack may change is unchanged, what the attacks aimed at saw
    // nothing, and nothing appeared where nothing may be written.
    let changed: Vec<_> = runs
        .0
        .iter()
        .flat_map(|(s, _, changed)| changed.iter().map(move |c| format!("{}: {c}", s.name())))
        .collect();
    let outside: Vec<_> = std::fs::read_dir(fixture.path("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "listener.sock")
        .collect();
    let reached = fixture.reached();
    // One report with everything, so that one run shows all that is wrong.
    assert!(
        escaped.is_empty()
            && broken.is_empty()
            && changed.is_empty()
            && reached.is_empty()
            && outside.is_empty(),
        "{backend}: {} attacks succeeded: {escaped:#?}\n{} positive controls failed: {broken:#?}\n\
         changed from outside: {changed:#?}\nreached: {reached:?}\nwrote outside: {outside:?}",
        escaped.len(),
        broken.len(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_landlock() {
    if in_planted_environment("escape_suite_landlock").await {
        escape_suite(Backend::Landlock).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_bwrap() {
    if in_planted_environment("escape_suite_bwrap").await {
        escape_suite(Backend::Bwrap).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn escape_suite_bwrap_landlock() {
    if in_planted_environment("escape_suite_bwrap_landlock").await {
        escape_suite(Backend::BwrapLandlock).await;
    }
}

/// New attacks that cannot succeed even without a sandbox, and why. Everything else in
/// [`NEW_ATTACKS`] must succeed there, or it measures nothing.
fn cannot_succeed_unsandboxed(id: &str, x32_kernel: bool) -> Option<&'static str> {
    if id.starts_with("glob.broker-")
        || id.starts_with("protected.broker-")
        || id.starts_with("selfgrant.broker-")
    {
        // Today's broker serves protected paths and the supervisor's own files, so these do
        // succeed now; once it refuses them they fail with or without an OS sandbox.
        return Some("the broker decides, whatever the backend");
    }
    if id.starts_with("kernel.x32-") && !x32_kernel {
        return Some("this kernel has no x32 ABI (CONFIG_X86_X32_ABI): it answers ENOSYS itself");
    }
    None
}

/// Whether the kernel runs x32 system calls at all (they need `CONFIG_X86_X32_ABI`).
fn kernel_has_x32() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: getpid through the x32 number takes no arguments and changes nothing.
        #[expect(unsafe_code)]
        let ret = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        ret > 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Without a sandbox the same attacks work: the suite measures something.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_sandbox_the_attacks_succeed() {
    if !in_planted_environment("without_a_sandbox_the_attacks_succeed").await {
        return;
    }
    let fixture = Fixture::new();
    let env = fixture.env();
    let runs = run_all(&fixture, &env, &common::unsandboxed()).await;
    let succeeded = runs.succeeded();
    let categories: BTreeSet<_> = runs
        .results()
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
    let missing = runs.missing_new_attacks();
    assert!(missing.is_empty(), "attacks not run: {missing:?}");
    let x32 = kernel_has_x32();
    let mut excused = Vec::new();
    let mut idle = Vec::new();
    for id in NEW_ATTACKS {
        match cannot_succeed_unsandboxed(id, x32) {
            Some(why) => excused.push(format!("{id}: {why}")),
            None if !succeeded.contains(id) => idle.push(*id),
            None => {}
        }
    }
    println!("not expected to succeed unsandboxed: {excused:#?}");
    assert!(
        idle.is_empty(),
        "new attacks that did not work even unsandboxed: {idle:?}"
    );
    let broken: Vec<_> = runs
        .results()
        .filter(|r| r["control"]["ok"] != true)
        .collect();
    assert!(
        broken.is_empty(),
        "positive controls failed unsandboxed: {broken:#?}"
    );
}

/// A host's fork bomb or memory bomb kills that host only, with the limit named; a bystander
/// keeps serving.
async fn bomb(backend: Backend, command: &str, limit: Layer) {
    let fixture = Fixture::new();
    let env = fixture.env();
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
    let supervisor = fixture.supervisor(&env, Scenario::Baseline).await;
    let host = supervisor.add_host(spec).await.unwrap();
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
    let fixture = Fixture::new();
    let env = fixture.env();
    for backend in [Backend::Landlock, Backend::BwrapLandlock] {
        let host = fixture
            .start(&env, Scenario::Baseline, profile(backend))
            .await;
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

/// A required layer must be fully enforced: a profile requiring `memory` where only the
/// watchdog stands in for a memory cgroup (partial) refuses the start and names the layer;
/// the same profile not requiring it starts, and reports the layer as partial.
#[tokio::test]
async fn a_required_layer_enforced_only_in_part_refuses_the_start() {
    let env = Env::new();
    let mut no_cgroup = settings();
    no_cgroup.cgroup_parent = Some(PathBuf::from("/nonexistent/cgroup"));
    let text = dscode_extension_host::sandbox::profile::BUILTIN[0]
        .1
        .replace(
            "required = [\"filesystem\"",
            "required = [\"memory\", \"filesystem\"",
        );
    let strict_memory = Profile::parse("memory-required", "test", &text).unwrap();
    assert!(strict_memory.requires(Layer::Memory));
    let mut spec = env.spec(&common::example("hello"), fast());
    spec.sandbox = SandboxSpec::new(strict_memory, no_cgroup.clone());
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    let err = host.start().await.unwrap_err().to_string();
    assert!(
        err.contains("sandbox unavailable") && err.contains("requires memory"),
        "{err}"
    );
    let mut spec = env.spec(&common::example("hello"), fast());
    spec.sandbox = SandboxSpec::new(Profile::load("default").unwrap(), no_cgroup);
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    host.start()
        .await
        .expect("memory is not required by default");
    let report = host.status().sandbox.unwrap();
    assert_eq!(
        report.layer(Layer::Memory).unwrap().enforcement,
        Enforcement::PartiallyEnforced,
        "{}",
        report.table()
    );
    // Each host is PID 1 of its own PID namespace, whatever the backend (bubblewrap's was
    // sometimes seen before it had forked, and reported as death-signal-only).
    assert_eq!(
        host.status().containment,
        Some(dscode_extension_host::process::Containment::PidNamespace)
    );
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
    let env = Env::new();
    let host = env.host(&common::example("hello"), fast());
    host.start().await.unwrap();
    let report = host
        .status()
        .sandbox
        .expect("a sandboxed host has a report");
    if probe.cgroup_parents.is_none() {
        // Without a cgroup, the report must say what stands in for one, not claim a cgroup.
        let memory = report.layer(Layer::Memory).unwrap();
        assert_eq!(
            memory.enforcement,
            Enforcement::PartiallyEnforced,
            "{}",
            report.table()
        );
        assert!(
            memory.detail.contains("no memory cgroup"),
            "{}",
            report.table()
        );
        let processes = report.layer(Layer::Processes).unwrap();
        assert!(
            processes.detail.contains("RLIMIT_NPROC"),
            "{}",
            report.table()
        );
        eprintln!(
            "no usable cgroup here ({}): checked that the report names the watchdog instead",
            probe.cgroups.detail
        );
        host.stop().await;
        return;
    }
    assert!(
        report
            .layer(Layer::Memory)
            .unwrap()
            .detail
            .contains("cgroup"),
        "{}",
        report.table()
    );
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
        env.spec(&common::fixture("api-client"), fast()),
        Arc::new(dscode_extension_host::rpc::NoMethods),
    );
    let read_direct = || async {
        let args = raw(&json!([file]).to_string());
        json(&host.execute_command("api.readDirect", &args).await.unwrap())
    };
    let view = |globs: &[&str]| {
        let host = host.clone();
        let grants = if globs.is_empty() {
            FsGrants::default()
        } else {
            FsGrants {
                workspace: vec![workspace.path().to_owned()],
                allow: globs
                    .iter()
                    .map(|g| PathRule {
                        permission: Permission::FileSystemRead,
                        root: ScopeRoot::Workspace,
                        glob: Glob::parse(g).unwrap(),
                    })
                    .collect(),
                deny: Vec::new(),
            }
        };
        async move { host.set_direct_view(grants).await }
    };

    assert_eq!(view(&[]).await.unwrap(), ViewChange::Unchanged);
    assert_eq!(view(&["src/**"]).await.unwrap(), ViewChange::Updated);
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
        matches!(&seen[0].reason, Reason::ViewChanged { grants } if grants.is_empty()),
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
    assert_eq!(view(&["src/**"]).await.unwrap(), ViewChange::Restarting);
    starting.await.unwrap().unwrap();
    assert_eq!(host.state(), S::Running);
    assert_eq!(read_direct().await["ok"], "direct");

    // A stop right behind a new view wins: the restart ends in Stopped, and says so.
    let mut events = host.subscribe();
    let narrowing = view(&[]);
    let stopping = {
        let host = host.clone();
        async move { host.stop().await }
    };
    let (narrowed, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(narrowing, stopping)
    })
    .await
    .expect("the new view and the stop both end");
    assert!(
        matches!(
            narrowed,
            Err(StartError::Stopped { .. }) | Ok(ViewChange::Restarting | ViewChange::Updated)
        ),
        "{narrowed:?}"
    );
    // A round trip through the host's task after both: everything they caused is published by
    // the time it is answered, so a restart behind the stop would be seen here.
    assert_eq!(view(&[]).await.unwrap(), ViewChange::Unchanged);
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|c| c.to)
        .collect();
    assert_eq!(
        seen,
        [S::Stopping, S::Stopped],
        "a stopped host stays stopped"
    );
    assert_eq!(host.state(), S::Stopped);
}

/// The real (outside) user ids of the host's processes, from `/proc`.
fn host_uids(pid: u32) -> Vec<u32> {
    let pids = dscode_extension_host::sandbox::watch::tree_pids(pid, 1000).unwrap();
    assert!(!pids.is_empty(), "no process found for pid {pid}");
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

/// No host is the machine's root: a root supervisor's hosts run as the unprivileged host user on
/// every backend, and a user's as that user (not the overflow id, which backend `none` used to
/// give them). Backend `none` started by root is the positive control: there the host is root,
/// so the check can tell.
#[tokio::test(flavor = "multi_thread")]
async fn no_host_runs_as_root_and_a_users_host_runs_as_the_user() {
    let env = Env::new();
    let me = nix::unistd::getuid().as_raw();
    let root = me == 0;
    for backend in [Backend::Landlock, Backend::Bwrap, Backend::BwrapLandlock] {
        let mut spec = env.spec(&common::example("hello"), fast());
        spec.sandbox = profile(backend);
        let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
        host.start().await.unwrap();
        assert_eq!(
            host.status().containment,
            Some(dscode_extension_host::process::Containment::PidNamespace),
            "{backend}"
        );
        let uids = host_uids(host.status().pid.unwrap());
        let expected = if root {
            dscode_extension_host::sandbox::SandboxSettings::default()
                .host_users
                .for_host("dscode.hello")
                .0
        } else {
            me
        };
        assert!(
            uids.iter().all(|&u| u == expected),
            "{backend}: host processes run as {uids:?}, expected {expected}"
        );
        host.stop().await;
    }
    let mut spec = env.spec(&common::example("hello"), fast());
    spec.sandbox = common::unsandboxed();
    let host = HostHandle::spawn(spec, Arc::new(dscode_extension_host::rpc::NoMethods));
    host.start().await.unwrap();
    let uids = host_uids(host.status().pid.unwrap());
    assert!(
        uids.iter().all(|&u| u == me),
        "none: host processes run as {uids:?}, expected the supervisor's own {me}"
    );
    // Inside, too, the user is itself: its own files are its own (the overflow id would make
    // every file look foreign and the private /tmp unwritable).
    let out = host
        .execute_command("hello.echo", &raw(r#"[{"k":1}]"#))
        .await
        .unwrap();
    assert_eq!(json(&out), json!({"k":1}));
    host.stop().await;
}
