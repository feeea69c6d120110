//! The broker with real hosts: permissions, scopes, deny precedence, identity and rate limits,
//! each denial beside the allowed operation that proves the path works; every call served with
//! its permission and refused without it; commands of other extensions; workspace changes.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Env, example, fast, fixture, json, raw};
use dscode_extension_host::broker::{
    Broker, CommandFuture, CommandRouter, ConsoleUi, ExtensionInfo, RegisterError, UiFuture,
    UiHandler, UiRequest,
};
use dscode_extension_host::lifecycle::HostHandle;
use dscode_extension_host::permissions::{
    Grant, GrantNothing, GrantsFile, GrantsOnDisk, Permission, PermissionPolicy, PermissionRequest,
};
use dscode_extension_host::ratelimit::RateLimitConfig;
use dscode_extension_host::rpc::{IncomingRequest, RequestHandler};
use dscode_extension_host::secrets::SecretStorage;
use dscode_extension_host::wire::{ErrorCode, ErrorObject};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A workspace with files inside and outside the scopes the fixture asks for.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in [
            ("src/a.txt", "inside"),
            ("src/private/key", "private"),
            ("secret.txt", "outside the scope"),
        ] {
            let path = dir.path().join("ws").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("ws/out")).unwrap();
        std::fs::write(dir.path().join("elsewhere.txt"), "not in any root").unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn path(&self, rel: &str) -> String {
        self.root().join(rel).display().to_string()
    }
}

fn grants(extension: &str, allow: &[&str], deny: &[&str]) -> Arc<dyn PermissionPolicy> {
    let mut file = GrantsFile::default();
    let requested: Vec<String> = [
        "fileSystem.read:src/**",
        "fileSystem.write:out/**",
        "clipboard.read",
        "clipboard.write",
        "network.http:api.example.com",
    ]
    .map(String::from)
    .to_vec();
    file.extensions.insert(
        extension.to_owned(),
        Grant {
            version: "1.0.0".into(),
            requested,
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        },
    );
    Arc::new(file)
}

async fn start(
    env: &Env,
    ws: &Workspace,
    extension: &Path,
    policy: Arc<dyn PermissionPolicy>,
    limits: RateLimitConfig,
) -> (HostHandle, Broker) {
    let broker = Broker::new(
        vec![ws.root()],
        policy,
        Arc::new(ConsoleUi::default()),
        limits,
    );
    let host = serve(&broker, env.spec(extension, fast())).await;
    (host, broker)
}

/// Registers the extension with the broker, then starts its host served by that broker.
async fn serve(broker: &Broker, spec: dscode_extension_host::lifecycle::HostSpec) -> HostHandle {
    broker
        .register(ExtensionInfo::from_spec(&spec))
        .await
        .unwrap();
    let host = HostHandle::spawn(spec, Arc::new(broker.clone()));
    host.start().await.unwrap();
    host
}

async fn call(host: &HostHandle, command: &str, args: Value) -> Value {
    json(
        &host
            .execute_command(command, &raw(&args.to_string()))
            .await
            .unwrap(),
    )
}

fn code(outcome: &Value) -> &str {
    outcome["code"].as_str().unwrap_or("ok")
}

#[tokio::test]
async fn without_a_grant_every_api_is_denied() {
    let (env, ws) = (Env::new(), Workspace::new());
    let (host, _) = start(
        &env,
        &ws,
        &fixture("api-client"),
        Arc::new(GrantNothing),
        RateLimitConfig::default(),
    )
    .await;
    for (command, args) in [
        ("api.read", serde_json::json!([ws.path("src/a.txt")])),
        ("api.write", serde_json::json!([ws.path("out/x.txt"), "x"])),
        ("api.clipboard", serde_json::json!(["x"])),
        ("api.fetch", serde_json::json!(["https://api.example.com/"])),
    ] {
        let outcome = call(&host, command, args).await;
        assert_eq!(code(&outcome), "PermissionDenied", "{command}: {outcome}");
    }
    let outcome = call(&host, "api.read", serde_json::json!([ws.path("src/a.txt")])).await;
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("lacks `fileSystem.read` for workspace:src/a.txt"),
        "{outcome}"
    );
    assert!(!ws.root().join("out/x.txt").exists());
    host.stop().await;
}

#[tokio::test]
async fn a_scoped_grant_works_inside_its_scope_only() {
    let (env, ws) = (Env::new(), Workspace::new());
    let policy = grants(
        "test.api-client",
        &[
            "fileSystem.read",
            "fileSystem.write",
            "clipboard.read",
            "clipboard.write",
            "network.http",
        ],
        &[],
    );
    let (host, _) = start(
        &env,
        &ws,
        &fixture("api-client"),
        policy,
        RateLimitConfig::default(),
    )
    .await;

    // Inside the scopes the manifest asked for.
    assert_eq!(
        call(&host, "api.read", serde_json::json!([ws.path("src/a.txt")])).await["ok"],
        "inside"
    );
    assert_eq!(
        code(
            &call(
                &host,
                "api.write",
                serde_json::json!([ws.path("out/new.txt"), "written"])
            )
            .await
        ),
        "ok"
    );
    assert_eq!(
        std::fs::read_to_string(ws.root().join("out/new.txt")).unwrap(),
        "written"
    );
    assert_eq!(
        call(&host, "api.clipboard", serde_json::json!(["copied"])).await["ok"],
        "copied"
    );
    let listing = call(&host, "api.list", serde_json::json!([ws.path("src")])).await;
    assert_eq!(listing["ok"].as_array().unwrap().len(), 2, "{listing}");

    // Outside them: the grant was unscoped, but the manifest's scope is what applies.
    assert_eq!(
        code(
            &call(
                &host,
                "api.read",
                serde_json::json!([ws.path("secret.txt")])
            )
            .await
        ),
        "PermissionDenied"
    );
    assert_eq!(
        code(
            &call(
                &host,
                "api.write",
                serde_json::json!([ws.path("src/evil.txt"), "x"])
            )
            .await
        ),
        "PermissionDenied"
    );
    assert!(!ws.root().join("src/evil.txt").exists());
    // Outside every root: refused without naming the host path.
    let outcome = call(
        &host,
        "api.read",
        serde_json::json!([ws.dir.path().join("elsewhere.txt").display().to_string()]),
    )
    .await;
    assert_eq!(code(&outcome), "InvalidPath", "{outcome}");
    assert!(
        !outcome["message"].as_str().unwrap().contains("elsewhere"),
        "{outcome}"
    );
    let outcome = call(
        &host,
        "api.read",
        serde_json::json!([format!("{}/src/../../elsewhere.txt", ws.root().display())]),
    )
    .await;
    assert_eq!(code(&outcome), "InvalidPath", "{outcome}");

    host.stop().await;
}

#[tokio::test]
async fn the_network_scope_is_checked_before_anything_else() {
    let (env, ws) = (Env::new(), Workspace::new());
    let policy = grants("test.api-client", &["network.http"], &[]);
    let (host, _) = start(
        &env,
        &ws,
        &fixture("api-client"),
        policy,
        RateLimitConfig::default(),
    )
    .await;
    // The network scope is checked before anything else happens.
    assert_eq!(
        code(
            &call(
                &host,
                "api.fetch",
                serde_json::json!(["https://evil.example.org/"])
            )
            .await
        ),
        "PermissionDenied"
    );
    assert_eq!(
        code(
            &call(
                &host,
                "api.fetch",
                serde_json::json!(["https://api.example.com/v1"])
            )
            .await
        ),
        "Unsupported"
    );
    host.stop().await;
}

#[tokio::test]
async fn symbolic_links_cannot_carry_a_read_across_a_scope_or_a_deny() {
    let (env, ws) = (Env::new(), Workspace::new());
    // Links inside the workspace that lead out of the granted scope and into a denied one.
    std::os::unix::fs::symlink("../secret.txt", ws.root().join("src/to-secret")).unwrap();
    std::os::unix::fs::symlink("private/key", ws.root().join("src/to-private")).unwrap();
    let policy = grants(
        "test.api-client",
        &["fileSystem.read"],
        &["fileSystem.read:src/private/**"],
    );
    let (host, _) = start(
        &env,
        &ws,
        &fixture("api-client"),
        policy,
        RateLimitConfig::default(),
    )
    .await;
    for link in ["src/to-secret", "src/to-private"] {
        let outcome = call(&host, "api.read", serde_json::json!([ws.path(link)])).await;
        assert_eq!(code(&outcome), "InvalidPath", "{link}: {outcome}");
        assert!(outcome.get("ok").is_none(), "{link} leaked {outcome}");
    }
    // Positive control: a regular file in the scope reads fine.
    assert_eq!(
        call(&host, "api.read", serde_json::json!([ws.path("src/a.txt")])).await["ok"],
        "inside"
    );
    host.stop().await;
}

#[tokio::test]
async fn deny_wins_over_allow() {
    let (env, ws) = (Env::new(), Workspace::new());
    let policy = grants(
        "test.api-client",
        &["fileSystem.read"],
        &["fileSystem.read:src/private/**"],
    );
    let (host, _) = start(
        &env,
        &ws,
        &fixture("api-client"),
        policy,
        RateLimitConfig::default(),
    )
    .await;
    let outcome = call(
        &host,
        "api.read",
        serde_json::json!([ws.path("src/private/key")]),
    )
    .await;
    assert_eq!(code(&outcome), "PermissionDenied");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("denied by policy"),
        "{outcome}"
    );
    assert_eq!(
        call(&host, "api.read", serde_json::json!([ws.path("src/a.txt")])).await["ok"],
        "inside"
    );
    host.stop().await;
}

#[tokio::test]
async fn revoking_takes_effect_at_the_next_reload() {
    let (env, ws) = (Env::new(), Workspace::new());
    let dir = tempfile::tempdir().unwrap();
    let grants_path = dir.path().join("grants.toml");
    let mut file = GrantsFile::load(&grants_path).unwrap();
    file.grant("test.api-client", "1.0.0", &[], "fileSystem.read")
        .unwrap();
    file.save().unwrap();
    let policy = Arc::new(GrantsOnDisk::new(&grants_path));
    let (host, broker) = start(
        &env,
        &ws,
        &fixture("api-client"),
        policy,
        RateLimitConfig::default(),
    )
    .await;
    let read = serde_json::json!([ws.path("src/a.txt")]);
    assert_eq!(call(&host, "api.read", read.clone()).await["ok"], "inside");

    let mut file = GrantsFile::load(&grants_path).unwrap();
    assert!(file.revoke("test.api-client", "fileSystem.read").unwrap());
    file.save().unwrap();
    broker.reload().await.unwrap();
    assert_eq!(
        code(&call(&host, "api.read", read).await),
        "PermissionDenied"
    );
    host.stop().await;
}

/// Copies the fixture under another extension id.
fn second_client(dir: &Path) -> PathBuf {
    let copy = dir.join("api-client-2");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        fixture("api-client").join("extension.js"),
        copy.join("extension.js"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(fixture("api-client").join("package.json"))
        .unwrap()
        .replace("\"api-client\"", "\"api-client-2\"");
    std::fs::write(copy.join("package.json"), manifest).unwrap();
    copy
}

#[tokio::test]
async fn identity_comes_from_the_connection() {
    let (env, ws) = (Env::new(), Workspace::new());
    let dir = tempfile::tempdir().unwrap();
    let policy = grants("test.api-client", &["fileSystem.read"], &[]);
    let broker = Broker::new(
        vec![ws.root()],
        policy,
        Arc::new(ConsoleUi::default()),
        RateLimitConfig::default(),
    );
    let mut hosts = Vec::new();
    for extension in [fixture("api-client"), second_client(dir.path())] {
        hosts.push(serve(&broker, env.spec(&extension, fast())).await);
    }
    // The same code, the same request: only the connection differs.
    let args = serde_json::json!([ws.path("src/a.txt")]);
    assert_eq!(
        call(&hosts[0], "api.read", args.clone()).await["ok"],
        "inside"
    );
    assert_eq!(
        code(&call(&hosts[1], "api.read", args).await),
        "PermissionDenied"
    );
    for host in hosts {
        host.stop().await;
    }
}

#[tokio::test]
async fn a_flooding_extension_is_limited_and_another_keeps_its_latency() {
    let (env, ws) = (Env::new(), Workspace::new());
    let dir = tempfile::tempdir().unwrap();
    let mut file = GrantsFile::default();
    for id in ["test.api-client", "test.api-client-2"] {
        file.grant(id, "1.0.0", &[], "fileSystem.read").unwrap();
    }
    let limits: RateLimitConfig = toml::from_str("per_second = 50\nburst = 50\n").unwrap();
    let broker = Broker::new(
        vec![ws.root()],
        Arc::new(file),
        Arc::new(ConsoleUi::default()),
        limits,
    );
    let mut hosts = Vec::new();
    for extension in [fixture("api-client"), second_client(dir.path())] {
        hosts.push(serve(&broker, env.spec(&extension, fast())).await);
    }
    let (flooder, victim) = (&hosts[0], &hosts[1]);
    let target = ws.path("src/a.txt");

    let sample = |host: HostHandle, target: String| async move {
        let mut latencies = Vec::new();
        for _ in 0..15 {
            let started = Instant::now();
            let outcome = call(&host, "api.stat", serde_json::json!([target])).await;
            latencies.push(started.elapsed());
            assert_eq!(code(&outcome), "ok", "{outcome}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        latencies.sort();
        latencies[latencies.len() / 2]
    };
    let baseline = sample(victim.clone(), target.clone()).await;
    // The flood keeps 64 requests in flight for 4 s, longer than the samples take; that it was
    // still running when they ended is checked, so the samples cannot miss it.
    let flood = {
        let flooder = flooder.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let tally = call(
                &flooder,
                "api.floodFor",
                serde_json::json!([target, 64, 4000]),
            )
            .await;
            (tally, Instant::now())
        })
    };
    // Sampling starts once the flood is being refused, i.e. under way.
    let under_way = Instant::now();
    loop {
        let probe = call(flooder, "api.stat", serde_json::json!([target])).await;
        if code(&probe) == "RateLimited" {
            break;
        }
        assert!(
            under_way.elapsed() < Duration::from_secs(10),
            "the flood never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let during = sample(victim.clone(), target.clone()).await;
    let sampled_until = Instant::now();
    let (tally, flood_ended) = flood.await.unwrap();
    assert!(
        flood_ended > sampled_until,
        "the flood ended before the samples did: they measured nothing"
    );
    assert!(
        tally["RateLimited"].as_u64().unwrap_or(0) >= 1000,
        "flood was not limited: {tally}"
    );
    assert!(
        tally["ok"].as_u64().unwrap_or(0) >= 1,
        "flood got nothing through: {tally}"
    );
    // A ratio measured in this run, with a wide margin for a noisy 2-core machine.
    let ratio = during.as_secs_f64() / baseline.as_secs_f64().max(1e-4);
    println!(
        "victim median latency: baseline {baseline:?}, during flood {during:?}, ratio {ratio:.2}"
    );
    assert!(
        ratio < 10.0,
        "victim slowed down {ratio:.1}x during the flood ({baseline:?} -> {during:?})"
    );
    for host in hosts {
        host.stop().await;
    }
}

#[tokio::test]
async fn secrets_are_per_extension_and_need_their_permission() {
    let (env, ws) = (Env::new(), Workspace::new());
    let dir = tempfile::tempdir().unwrap();
    let storage = SecretStorage::detect()
        .await
        .expect("a secret backend (run the tests under scripts/with-keyring)");
    // Unique ids: keyring backends outlive the test process.
    let suffix = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut file = GrantsFile::default();
    let mut hosts = Vec::new();
    let mut specs = Vec::new();
    for (i, name) in [format!("api-a{suffix}"), format!("api-b{suffix}")]
        .into_iter()
        .enumerate()
    {
        let copy = dir.path().join(&name);
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(
            fixture("api-client").join("extension.js"),
            copy.join("extension.js"),
        )
        .unwrap();
        let manifest = std::fs::read_to_string(fixture("api-client").join("package.json"))
            .unwrap()
            .replace("\"api-client\"", &format!("\"{name}\""));
        std::fs::write(copy.join("package.json"), manifest).unwrap();
        let spec = env.spec(&copy, fast());
        // Only the first gets secrets.write; both get secrets.read.
        file.grant(&spec.id, "1.0.0", &[], "secrets.read").unwrap();
        if i == 0 {
            file.grant(&spec.id, "1.0.0", &[], "secrets.write").unwrap();
        }
        specs.push(spec);
    }
    let broker = Broker::new(
        vec![ws.root()],
        Arc::new(file),
        Arc::new(ConsoleUi::default()),
        RateLimitConfig::default(),
    );
    broker.set_secret_storage(storage.clone());
    for spec in specs {
        hosts.push(serve(&broker, spec).await);
    }
    let (a, b) = (&hosts[0], &hosts[1]);
    assert_eq!(
        code(
            &call(
                a,
                "api.storeSecret",
                serde_json::json!(["token", "a-secret"])
            )
            .await
        ),
        "ok"
    );
    assert_eq!(
        call(a, "api.secret", serde_json::json!(["token"])).await["ok"],
        "a-secret"
    );
    // The same key from another extension is another secret: B sees nothing of A's.
    assert_eq!(
        call(b, "api.secret", serde_json::json!(["token"])).await["ok"],
        Value::Null
    );
    // B lacks secrets.write.
    let outcome = call(
        b,
        "api.storeSecret",
        serde_json::json!(["token", "b-secret"]),
    )
    .await;
    assert_eq!(code(&outcome), "PermissionDenied", "{outcome}");
    assert_eq!(
        call(a, "api.secret", serde_json::json!(["token"])).await["ok"],
        "a-secret"
    );
    for host in &hosts {
        storage.delete_all_for_extension(host.id()).await.unwrap();
        host.stop().await;
    }
}

/// A policy whose allow and deny lists the test changes (followed by `Broker::reload`).
#[derive(Default)]
struct Switch(Mutex<(Vec<String>, Vec<String>)>);

impl Switch {
    fn set<'a>(
        &self,
        allow: impl IntoIterator<Item = &'a str>,
        deny: impl IntoIterator<Item = &'a str>,
    ) {
        *self.0.lock().unwrap() = (
            allow.into_iter().map(str::to_owned).collect(),
            deny.into_iter().map(str::to_owned).collect(),
        );
    }
}

impl PermissionPolicy for Switch {
    fn grant_for<'a>(
        &'a self,
        _: &'a str,
        version: &'a str,
        _: &'a [PermissionRequest],
    ) -> Pin<Box<dyn Future<Output = Option<Grant>> + Send + 'a>> {
        let (allow, deny) = self.0.lock().unwrap().clone();
        let grant = Grant {
            version: version.to_owned(),
            requested: Vec::new(),
            allow,
            deny,
        };
        Box::pin(async move { Some(grant) })
    }
}

/// An editor UI that answers every request and records what reached it.
#[derive(Default)]
struct TestUi {
    seen: Mutex<Vec<UiRequest>>,
}

impl UiHandler for TestUi {
    fn handle(&self, _extension: &str, request: UiRequest) -> UiFuture {
        let answer = match &request {
            UiRequest::ClipboardRead => json!("from the editor"),
            UiRequest::InputBox { .. } => json!("typed"),
            UiRequest::TerminalCreate { .. } => json!("t1"),
            _ => Value::Null,
        };
        self.seen.lock().unwrap().push(request);
        Box::pin(async move { Ok(answer) })
    }
}

/// Routes `commands/execute` to whichever test host registered the command, recording each
/// call that reached it.
#[derive(Default)]
struct Hosts {
    hosts: Mutex<Vec<HostHandle>>,
    seen: Mutex<Vec<(String, String)>>,
}

impl CommandRouter for Hosts {
    fn execute(&self, caller: &str, command: &str, args: Box<RawValue>) -> CommandFuture {
        self.seen
            .lock()
            .unwrap()
            .push((caller.to_owned(), command.to_owned()));
        let host = self
            .hosts
            .lock()
            .unwrap()
            .iter()
            .find(|h| h.status().commands.iter().any(|c| c == command))
            .cloned();
        let command = command.to_owned();
        Box::pin(async move {
            let Some(host) = host else {
                return Err(ErrorObject::new(
                    ErrorCode::CommandNotFound,
                    format!("no running extension registered `{command}`"),
                ));
            };
            host.execute_command(&command, &args)
                .await
                .map_err(|e| e.to_error_object())
        })
    }
}

/// A request straight to the broker, as the connection of `peer` would hand it over.
async fn direct(
    broker: &Broker,
    peer: &str,
    method: &str,
    params: &Value,
) -> Result<Value, ErrorObject> {
    let request = IncomingRequest {
        peer: peer.into(),
        id: 1,
        method: method.to_owned(),
        params: Some(raw(&params.to_string())),
        cancel: CancellationToken::new(),
    };
    broker.handle(request).await.map(|r| json(&r))
}

/// Each permission, a call that needs it, and the call's outcome once it is allowed (the result,
/// or the error code). Secrets (there is no store here) and fetch (not carried yet) answer
/// `Unsupported` once past the check.
fn one_call_per_permission(ws: &Workspace) -> Vec<(&'static str, &'static str, Value, Value)> {
    vec![
        (
            "fileSystem.read",
            "api.read",
            json!([ws.path("src/a.txt")]),
            json!({"ok": "inside"}),
        ),
        (
            "fileSystem.read",
            "api.stat",
            json!([ws.path("src/a.txt")]),
            json!("ok"),
        ),
        (
            "fileSystem.read",
            "api.list",
            json!([ws.path("src")]),
            json!("ok"),
        ),
        (
            "fileSystem.write",
            "api.write",
            json!([ws.path("out/new.txt"), "written"]),
            json!({"ok": null}),
        ),
        (
            "fileSystem.delete",
            "api.delete",
            json!([ws.path("out/doomed.txt"), false]),
            json!({"ok": null}),
        ),
        (
            "clipboard.read",
            "api.clipboardRead",
            json!([]),
            json!({"ok": "from the editor"}),
        ),
        (
            "clipboard.write",
            "api.clipboardWrite",
            json!(["copied"]),
            json!({"ok": null}),
        ),
        (
            "secrets.read",
            "api.secret",
            json!(["token"]),
            json!("Unsupported"),
        ),
        (
            "secrets.write",
            "api.storeSecret",
            json!(["token", "v"]),
            json!("Unsupported"),
        ),
        (
            "secrets.write",
            "api.deleteSecret",
            json!(["token"]),
            json!("Unsupported"),
        ),
        (
            "ui.showMessage",
            "api.message",
            json!(["info", "hello"]),
            json!({"ok": null}),
        ),
        (
            "ui.input",
            "api.input",
            json!([{"prompt": "Name?", "placeHolder": "ada", "password": true}]),
            json!({"ok": "typed"}),
        ),
        (
            "terminal.create",
            "api.terminal",
            json!(["build"]),
            json!({"ok": "t1"}),
        ),
        (
            "terminal.write",
            "api.sendText",
            json!(["t1", "make\n"]),
            json!({"ok": null}),
        ),
        (
            "network.http",
            "api.fetch",
            json!(["https://api.example.com/v1"]),
            json!("Unsupported"),
        ),
        (
            "commands.execute",
            "api.execute",
            json!(["hello.greet", ["Ada"]]),
            json!({"ok": "Hello, Ada!"}),
        ),
    ]
}

#[tokio::test]
async fn each_call_is_served_with_its_permission_and_refused_without_it() {
    let (env, ws) = (Env::new(), Workspace::new());
    let policy = Arc::new(Switch::default());
    let ui = Arc::new(TestUi::default());
    let broker = Broker::new(
        vec![ws.root()],
        policy.clone(),
        ui.clone(),
        RateLimitConfig::default(),
    );
    let router = Arc::new(Hosts::default());
    broker.set_command_router(router.clone());
    let target = serve(&broker, env.spec(&example("hello"), fast())).await;
    router.hosts.lock().unwrap().push(target.clone());
    let host = serve(&broker, env.spec(&fixture("api-client"), fast())).await;
    let doomed = ws.root().join("out/doomed.txt");
    let table = one_call_per_permission(&ws);
    let covered: BTreeSet<_> = table.iter().map(|row| row.0).collect();
    let all: BTreeSet<_> = Permission::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(covered, all, "every grantable permission has a row");

    std::fs::write(&doomed, "x").unwrap();
    for (permission, command, args, served) in &table {
        // Everything else granted, this one not: refused, and nothing reaches the editor.
        policy.set(all.iter().copied().filter(|p| p != permission), []);
        broker.reload().await.unwrap();
        let reached = ui.seen.lock().unwrap().len();
        let outcome = call(&host, command, args.clone()).await;
        assert_eq!(
            code(&outcome),
            "PermissionDenied",
            "{command} without {permission}: {outcome}"
        );
        assert_eq!(
            outcome["data"]["permission"], *permission,
            "{command}: {outcome}"
        );
        assert_eq!(
            ui.seen.lock().unwrap().len(),
            reached,
            "{command} reached the editor"
        );
        // Only this one granted: served.
        policy.set([*permission], []);
        broker.reload().await.unwrap();
        let outcome = call(&host, command, args.clone()).await;
        match served {
            Value::String(expected) => assert_eq!(
                code(&outcome),
                expected,
                "{command} with {permission}: {outcome}"
            ),
            expected => assert_eq!(&outcome, expected, "{command} with {permission}"),
        }
    }
    assert!(!doomed.exists());
    assert_eq!(
        std::fs::read_to_string(ws.root().join("out/new.txt")).unwrap(),
        "written"
    );
    // The editor saw the allowed UI calls only, each with what the extension sent.
    assert_eq!(
        *ui.seen.lock().unwrap(),
        [
            UiRequest::ClipboardRead,
            UiRequest::ClipboardWrite {
                text: "copied".into()
            },
            UiRequest::ShowMessage {
                level: "info".into(),
                message: "hello".into()
            },
            UiRequest::InputBox {
                title: None,
                prompt: Some("Name?".into()),
                placeholder: Some("ada".into()),
                value: None,
                password: true,
            },
            UiRequest::TerminalCreate {
                name: "build".into()
            },
            UiRequest::TerminalWrite {
                id: "t1".into(),
                text: "make\n".into()
            },
        ]
    );
    assert_eq!(
        *router.seen.lock().unwrap(),
        [("test.api-client".to_owned(), "hello.greet".to_owned())]
    );
    host.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn other_extensions_commands_are_checked_by_id_before_the_router_sees_them() {
    let (env, ws) = (Env::new(), Workspace::new());
    let policy = Arc::new(Switch::default());
    policy.set(["commands.execute"], ["commands.execute:hello.add"]);
    let broker = Broker::new(
        vec![ws.root()],
        policy.clone(),
        Arc::new(ConsoleUi::default()),
        RateLimitConfig::default(),
    );
    let host = serve(&broker, env.spec(&fixture("api-client"), fast())).await;
    let execute = |command: &str, args: Value| call(&host, "api.execute", json!([command, args]));

    // No router: the check still comes first, then the call is not offered.
    let outcome = execute("hello.greet", json!(["Ada"])).await;
    assert_eq!(code(&outcome), "Unsupported", "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("set no command router"),
        "{outcome}"
    );
    assert_eq!(
        code(&execute("hello.add", json!([1, 2])).await),
        "PermissionDenied"
    );

    let router = Arc::new(Hosts::default());
    broker.set_command_router(router.clone());
    let target = serve(&broker, env.spec(&example("hello"), fast())).await;
    router.hosts.lock().unwrap().push(target.clone());
    assert_eq!(
        execute("hello.greet", json!(["Ada"])).await,
        json!({"ok": "Hello, Ada!"})
    );
    // A deny inside the manifest's scope wins over the unscoped allow.
    let outcome = execute("hello.add", json!([1, 2])).await;
    assert_eq!(code(&outcome), "PermissionDenied", "{outcome}");
    let message = outcome["message"].as_str().unwrap();
    assert!(
        message.contains("for command hello.add (denied by policy)"),
        "{outcome}"
    );
    // Outside the scope the manifest asked for (`hello.*`).
    let outcome = execute("word-count.count", json!([])).await;
    assert_eq!(code(&outcome), "PermissionDenied", "{outcome}");
    assert!(
        outcome["message"]
            .as_str()
            .unwrap()
            .contains("lacks `commands.execute` for command word-count.count"),
        "{outcome}"
    );
    // In scope but registered by nobody: the router's answer comes back as it was.
    assert_eq!(
        code(&execute("hello.nope", json!([])).await),
        "CommandNotFound"
    );
    // The extension's own command runs in its own host, needing no permission.
    assert_eq!(
        execute("api.echo", json!([1, "two"])).await,
        json!({"ok": [1, "two"]})
    );
    // Only the calls that passed the check reached the router.
    let seen: Vec<_> = router
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(seen, ["hello.greet", "hello.nope"]);

    policy.set([], []);
    broker.reload().await.unwrap();
    let outcome = execute("hello.greet", json!(["Ada"])).await;
    assert_eq!(code(&outcome), "PermissionDenied", "{outcome}");
    assert_eq!(outcome["data"]["permission"], "commands.execute");
    host.stop().await;
    target.stop().await;
}

#[tokio::test(start_paused = true)]
async fn identity_comes_before_the_rate_limit_and_the_rate_limit_before_parsing_and_permissions() {
    let ws = Workspace::new();
    let limits: RateLimitConfig = toml::from_str("per_second = 1\nburst = 3\n").unwrap();
    let broker = Broker::new(
        vec![ws.root()],
        Arc::new(GrantNothing),
        Arc::new(ConsoleUi::default()),
        limits,
    );
    let id = "test.direct";
    // Not registered: refused before anything is charged.
    for _ in 0..5 {
        let err = direct(&broker, id, "clipboard/readText", &json!({}))
            .await
            .unwrap_err();
        assert!(err.is(ErrorCode::PermissionDenied), "{err}");
        assert!(
            err.message.contains("is not registered with the broker"),
            "{err}"
        );
    }
    broker
        .register(ExtensionInfo {
            id: id.into(),
            version: "1.0.0".into(),
            requested: Vec::new(),
            extension_path: ws.root(),
            storage_path: None,
            protected: Vec::new(),
        })
        .await
        .unwrap();
    // Malformed calls spend the budget like any other, so a flood of them is limited too.
    let answers = [
        direct(&broker, id, "clipboard/read", &json!({})).await,
        direct(&broker, id, "clipboard/writeText", &json!({"txt": "x"})).await,
        direct(&broker, id, "clipboard/readText", &json!({})).await,
        direct(&broker, id, "clipboard/readText", &json!({})).await,
    ];
    let codes: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().unwrap_err().code.as_str())
        .collect();
    assert_eq!(
        codes,
        [
            "MethodNotFound",
            "InvalidParams",
            "PermissionDenied",
            "RateLimited"
        ]
    );
    let limited = answers[3].as_ref().unwrap_err();
    let data: Value = serde_json::from_str(limited.data.as_ref().unwrap().get()).unwrap();
    assert!(data["retryAfterMs"].as_u64().unwrap() >= 1, "{data}");
    assert!(
        direct(&broker, id, "nope", &json!({}))
            .await
            .unwrap_err()
            .is(ErrorCode::RateLimited)
    );
}

#[tokio::test]
async fn a_new_workspace_is_served_from_the_next_call_and_named_in_the_view() {
    let (env, ws, other) = (Env::new(), Workspace::new(), Workspace::new());
    std::fs::write(other.root().join("src/b.txt"), "other").unwrap();
    let mut file = GrantsFile::default();
    for extension in ["test.api-client", "test.no-host"] {
        file.grant(extension, "1.0.0", &[], "fileSystem.read")
            .unwrap();
    }
    let broker = Broker::new(
        vec![ws.root()],
        Arc::new(file),
        Arc::new(ConsoleUi::default()),
        RateLimitConfig::default(),
    );
    let host = serve(&broker, env.spec(&fixture("api-client"), fast())).await;
    let read = |path: String| call(&host, "api.read", json!([path]));
    let view = |id: &str| broker.direct_view(id).unwrap().workspace;
    assert_eq!(read(ws.path("src/a.txt")).await["ok"], "inside");
    assert_eq!(code(&read(other.path("src/b.txt")).await), "InvalidPath");
    assert_eq!(view("test.api-client"), [ws.root()]);

    broker.set_workspace(vec![other.root()]).await.unwrap();
    assert_eq!(read(other.path("src/b.txt")).await["ok"], "other");
    let outcome = read(ws.path("src/a.txt")).await;
    assert_eq!(
        code(&outcome),
        "InvalidPath",
        "the old folder is still served: {outcome}"
    );
    assert_eq!(view("test.api-client"), [other.root()]);

    // An extension whose folder is gone cannot have its roots reopened: it fails closed, the
    // error names it, and the others are updated all the same.
    let gone = tempfile::tempdir().unwrap();
    broker
        .register(ExtensionInfo {
            id: "test.no-host".into(),
            version: "1.0.0".into(),
            requested: vec![PermissionRequest::parse("fileSystem.read").unwrap()],
            extension_path: gone.path().to_owned(),
            storage_path: None,
            protected: Vec::new(),
        })
        .await
        .unwrap();
    let params = json!({"path": other.path("src/b.txt")});
    assert_eq!(
        direct(&broker, "test.no-host", "fs/readFile", &params)
            .await
            .unwrap(),
        "other"
    );
    let gone_path = gone.path().to_owned();
    drop(gone);
    assert!(!gone_path.exists());
    let err = broker.set_workspace(vec![ws.root()]).await.unwrap_err();
    assert!(
        matches!(&err, RegisterError::Root { id, .. } if id == "test.no-host"),
        "{err:?}"
    );
    assert_eq!(read(ws.path("src/a.txt")).await["ok"], "inside");
    assert_eq!(view("test.api-client"), [ws.root()]);
    assert_eq!(view("test.no-host"), [ws.root()]);
    for path in [ws.path("src/a.txt"), other.path("src/b.txt")] {
        let err = direct(
            &broker,
            "test.no-host",
            "fs/readFile",
            &json!({"path": path}),
        )
        .await
        .unwrap_err();
        assert!(err.is(ErrorCode::InvalidPath), "{err}");
    }
    host.stop().await;
}
