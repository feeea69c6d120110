//! The composition root: a `Supervisor` built from code wires the broker, the hosts, their
//! grants and their sandbox views, and keeps the views following grants and workspace changes,
//! with real `node` hosts in the default sandbox.

mod common;

use std::path::{Path, PathBuf};

use common::{Env, fast, json, raw, sandbox};
use dscode_extension_host::lifecycle::ExtensionHostState as S;
use dscode_extension_host::permissions::{GrantsFile, GrantsOnDisk};
use dscode_extension_host::{Supervisor, SupervisorError};
use serde_json::{Value, json};

/// A workspace with `src/a.txt`, outside /tmp's special cases (a tempdir is fine: the default
/// sandbox moves the host's scratch space when the view holds something under /tmp).
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "granted text").unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn file(&self) -> String {
        self.dir.path().join("src/a.txt").display().to_string()
    }
}

fn builder(env: &Env) -> dscode_extension_host::SupervisorBuilder {
    Supervisor::builder()
        .node_runtime(env.node.clone())
        .sandbox(sandbox())
        .host_options(fast())
        .without_secrets()
}

async fn call(supervisor: &Supervisor, id: &str, command: &str, args: Value) -> Value {
    json(
        &supervisor
            .execute_command(id, command, &raw(&args.to_string()))
            .await
            .unwrap(),
    )
}

/// Added, granted and viewed in one call: the broker serves the grant and the sandbox shows it,
/// and a grants reload narrows both, restarting the host whose view changed.
#[tokio::test(flavor = "multi_thread")]
async fn an_added_extension_gets_its_grant_in_the_broker_and_its_sandbox() {
    let env = Env::new();
    let ws = Workspace::new();
    let grants_dir = tempfile::tempdir().unwrap();
    let grants_path = grants_dir.path().join("grants.toml");
    let mut file = GrantsFile::load(&grants_path).unwrap();
    file.grant("test.api-client", "1.0.0", &[], "fileSystem.read")
        .unwrap();
    file.save().unwrap();
    let supervisor = builder(&env)
        .workspace([ws.root()])
        .policy(GrantsOnDisk::new(&grants_path))
        .build()
        .await
        .unwrap();
    let host = supervisor
        .add_extension(common::fixture("api-client"))
        .await
        .unwrap();
    host.start().await.unwrap();
    let id = "test.api-client";
    assert_eq!(
        call(&supervisor, id, "api.read", json!([ws.file()])).await["ok"],
        "granted text"
    );
    assert_eq!(
        call(&supervisor, id, "api.readDirect", json!([ws.file()])).await["ok"],
        "granted text",
        "the host's own fs reaches the granted folder"
    );
    let first_pid = host.status().pid;

    let mut file = GrantsFile::load(&grants_path).unwrap();
    assert!(file.revoke(id, "fileSystem.read").unwrap());
    file.save().unwrap();
    let restarted = supervisor.reload_grants().await.unwrap();
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert!(restarted[0].1.is_ok(), "{restarted:?}");
    assert_eq!(host.state(), S::Running);
    assert_ne!(host.status().pid, first_pid, "restarted for its new view");
    assert_eq!(
        call(&supervisor, id, "api.read", json!([ws.file()])).await["code"],
        "PermissionDenied"
    );
    let direct = call(&supervisor, id, "api.readDirect", json!([ws.file()])).await;
    assert!(direct["ok"].is_null(), "{direct}");
    supervisor.shutdown().await;
}

/// A new set of workspace folders reaches the broker and the views at once.
#[tokio::test(flavor = "multi_thread")]
async fn workspace_folders_can_change_and_views_follow() {
    let env = Env::new();
    let (old, new) = (Workspace::new(), Workspace::new());
    let mut grants = GrantsFile::default();
    grants
        .grant("test.api-client", "1.0.0", &[], "fileSystem.read")
        .unwrap();
    let supervisor = builder(&env)
        .workspace([old.root()])
        .policy(grants)
        .build()
        .await
        .unwrap();
    supervisor
        .add_extension(common::fixture("api-client"))
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let id = "test.api-client";
    assert_eq!(
        call(&supervisor, id, "api.readDirect", json!([old.file()])).await["ok"],
        "granted text"
    );
    let restarted = supervisor.set_workspace([new.root()]).await.unwrap();
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    for (file, expected) in [(new.file(), Some("granted text")), (old.file(), None)] {
        let broker = call(&supervisor, id, "api.read", json!([file])).await;
        let direct = call(&supervisor, id, "api.readDirect", json!([file])).await;
        assert_eq!(broker["ok"].as_str(), expected, "{broker}");
        assert_eq!(direct["ok"].as_str(), expected, "{direct}");
    }
    // Folders that nest are refused, and nothing changes.
    let nested = supervisor
        .set_workspace([new.root(), new.root().join("src")])
        .await
        .unwrap_err();
    assert!(
        matches!(nested, SupervisorError::NestedWorkspace { .. }),
        "{nested}"
    );
    assert_eq!(
        call(&supervisor, id, "api.read", json!([new.file()])).await["ok"],
        "granted text"
    );
    supervisor.shutdown().await;
}

/// One extension runs another's command through the supervisor, within its
/// `commands.execute` scope (`hello.*` in its manifest) and only when granted.
#[tokio::test(flavor = "multi_thread")]
async fn an_extension_runs_another_extensions_command_within_its_scope() {
    let env = Env::new();
    for granted in [true, false] {
        let mut grants = GrantsFile::default();
        if granted {
            grants
                .grant("test.api-client", "1.0.0", &[], "commands.execute")
                .unwrap();
        }
        let supervisor = builder(&env).policy(grants).build().await.unwrap();
        for extension in [common::fixture("api-client"), common::example("hello")] {
            supervisor
                .add_extension(extension)
                .await
                .unwrap()
                .start()
                .await
                .unwrap();
        }
        let greet = call(
            &supervisor,
            "test.api-client",
            "api.execute",
            json!(["hello.greet", ["Ada"]]),
        )
        .await;
        if granted {
            assert_eq!(greet["ok"], "Hello, Ada!", "{greet}");
        } else {
            assert_eq!(greet["code"], "PermissionDenied", "{greet}");
        }
        supervisor.shutdown().await;
    }
}

/// Removing an extension stops its host and the broker forgets it; ids stay unique.
#[tokio::test(flavor = "multi_thread")]
async fn extensions_are_removed_and_ids_stay_unique() {
    let env = Env::new();
    let supervisor = builder(&env).build().await.unwrap();
    let hello = supervisor
        .add_extension(common::example("hello"))
        .await
        .unwrap();
    let again = supervisor
        .add_extension(common::example("hello"))
        .await
        .unwrap_err();
    assert!(again.to_string().contains("dscode.hello"), "{again}");
    hello.start().await.unwrap();
    let mut events = supervisor.events();
    supervisor.remove("dscode.hello").await.unwrap();
    assert_eq!(hello.state(), S::Stopped);
    assert!(supervisor.host("dscode.hello").is_none());
    assert!(supervisor.broker().permissions("dscode.hello").is_none());
    let stopped = events.next().await.expect("an event");
    assert_eq!(stopped.to, S::Stopping);
    assert!(matches!(
        supervisor.remove("dscode.hello").await,
        Err(SupervisorError::Unknown(_))
    ));
    // The id is free again.
    supervisor
        .add_extension(common::example("hello"))
        .await
        .unwrap();
    supervisor.shutdown().await;
}

/// The supervisor's own files are private from code too: no host may read them through the
/// broker, even inside a granted workspace folder.
#[tokio::test(flavor = "multi_thread")]
async fn private_paths_are_refused_inside_a_granted_folder() {
    let env = Env::new();
    let ws = Workspace::new();
    let secret: &Path = &ws.root().join("src/editor-state.json");
    std::fs::write(secret, "{}").unwrap();
    let mut grants = GrantsFile::default();
    grants
        .grant("test.api-client", "1.0.0", &[], "fileSystem.read")
        .unwrap();
    let supervisor = builder(&env)
        .workspace([ws.root()])
        .policy(grants)
        .private_paths([secret.to_owned()])
        .build()
        .await
        .unwrap();
    supervisor
        .add_extension(common::fixture("api-client"))
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let id = "test.api-client";
    let path = secret.display().to_string();
    assert_eq!(
        call(&supervisor, id, "api.read", json!([path])).await["code"],
        "PermissionDenied"
    );
    let direct = call(&supervisor, id, "api.readDirect", json!([path])).await;
    assert!(direct["ok"].is_null(), "{direct}");
    assert_eq!(
        call(&supervisor, id, "api.read", json!([ws.file()])).await["ok"],
        "granted text",
        "positive control: the rest of the folder is served"
    );
    supervisor.shutdown().await;
}
