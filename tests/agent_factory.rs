//! Any program that speaks the protocol can be a host: the stdlib-only Python agent factory from
//! `examples/agent-factory`, supervised like a Node host.

mod common;

use std::sync::Arc;

use common::{fast, json, raw, repo, until_state};
use dscode_extension_host::broker::DenyAll;
use dscode_extension_host::lifecycle::{ExtensionHostState as S, HostHandle, HostSpec, Reason};
use dscode_extension_host::process::HostCommand;

fn agent_factory() -> HostHandle {
    let dir = repo().join("examples/agent-factory");
    let spec = HostSpec {
        id: "local.agent-factory".into(),
        command: HostCommand {
            program: common::python(),
            args: vec![dir.join("host.py").into_os_string()],
            env: Vec::new(),
            cwd: Some(dir.clone()),
        },
        extension_path: dir,
        storage_path: None,
        version: "0.0.0".into(),
        permissions: Vec::new(),
        handshake_secrets: Vec::new(),
        secret_storage: None,
        options: fast(),
        sandbox: common::sandbox(),
    };
    HostHandle::spawn(spec, Arc::new(DenyAll))
}

#[tokio::test]
async fn state_survives_between_calls() {
    let host = agent_factory();
    host.start().await.expect("python host starts");
    assert!(host.status().commands.iter().any(|c| c == "agents.call"));
    let created = json(
        &host
            .execute_command("agents.create", &raw(r#"[{"name":"planner"}]"#))
            .await
            .unwrap(),
    );
    let id = created["id"].clone();
    for turn in 1..=3 {
        let args = serde_json::json!([id, format!("step {turn}")]).to_string();
        let reply = json(
            &host
                .execute_command("agents.call", &raw(&args))
                .await
                .unwrap(),
        );
        assert_eq!(reply["turn"], turn);
    }
    let agents = json(
        &host
            .execute_command("agents.list", &raw("[]"))
            .await
            .unwrap(),
    );
    assert_eq!(agents[0]["turns"], 3);
    host.stop().await;
}

#[tokio::test]
async fn a_crashed_python_host_is_restarted_and_state_starts_fresh() {
    let host = agent_factory();
    let mut events = host.subscribe();
    host.start().await.unwrap();
    until_state(&mut events, S::Running).await;
    host.execute_command("agents.create", &raw(r#"[{"name":"a"}]"#))
        .await
        .unwrap();
    let pid = host.status().pid.unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let seen = until_state(&mut events, S::Running).await;
    let crash = seen
        .iter()
        .find(|c| c.to == S::Unhealthy)
        .expect("unhealthy seen");
    assert!(
        matches!(
            crash.reason,
            Reason::Exited {
                signal: Some(9),
                ..
            }
        ),
        "{:?}",
        crash.reason
    );
    let agents = json(
        &host
            .execute_command("agents.list", &raw("[]"))
            .await
            .unwrap(),
    );
    assert_eq!(agents, serde_json::json!([]));
    host.stop().await;
}
