//! The broker with real hosts: permissions, scopes, deny precedence, identity and rate limits,
//! each denial beside the allowed operation that proves the path works.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Env, fast, fixture, json, raw};
use dscode_extension_host::broker::{Broker, ConsoleUi, ExtensionInfo};
use dscode_extension_host::lifecycle::HostHandle;
use dscode_extension_host::permissions::{
    Grant, GrantNothing, GrantsFile, GrantsOnDisk, PermissionPolicy,
};
use dscode_extension_host::ratelimit::RateLimitConfig;
use dscode_extension_host::secrets::SecretStorage;
use serde_json::Value;

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
