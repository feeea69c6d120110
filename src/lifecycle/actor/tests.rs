//! The actor against a paused clock: the waits the machine asks for are timers the actor arms,
//! so a test can check them to the millisecond without sleeping.
//!
//! The host here never gets a process: its spawn fails before any is made (a working directory
//! that does not exist, or, where a stage runs, a plan too large for the stage's channel), a
//! failure worth a retry. No real I/O is waited for, so the paused clock only moves when every
//! task waits for a timer.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::lifecycle::{
    ExtensionHostState as S, HostHandle, HostOptions, HostSpec, Reason, RestartPolicy, StartError,
    StateChange,
};
use crate::process::HostCommand;
use crate::rpc::NoMethods;
use crate::sandbox::SandboxSpec;

fn failing_host(restart: RestartPolicy) -> HostHandle {
    let spec = HostSpec {
        id: "test.failing".into(),
        command: HostCommand {
            program: "/bin/sh".into(),
            args: vec!["x".repeat(1 << 20).into()],
            env: Vec::new(),
            cwd: Some("/nonexistent/working/directory".into()),
        },
        extension_path: "/nonexistent".into(),
        storage_path: None,
        version: "1.0.0".into(),
        permissions: Vec::new(),
        handshake_secrets: Vec::new(),
        secret_storage: None,
        options: HostOptions {
            restart,
            ..HostOptions::default()
        },
        sandbox: SandboxSpec::none(),
    };
    HostHandle::spawn(spec, Arc::new(NoMethods))
}

async fn next(events: &mut tokio::sync::mpsc::UnboundedReceiver<StateChange>) -> StateChange {
    events.recv().await.expect("the host's task is running")
}

#[tokio::test(start_paused = true)]
async fn restarts_wait_1_2_and_4_seconds_then_the_host_is_crashed() {
    let host = failing_host(RestartPolicy::default());
    let mut events = host.subscribe();
    let start = {
        let host = host.clone();
        tokio::spawn(async move { host.start().await })
    };
    let mut backoff_began = None;
    let mut waits = Vec::new();
    loop {
        let change = next(&mut events).await;
        match change.to {
            S::Restarting => {
                assert!(matches!(change.reason, Reason::Backoff { .. }), "{change}");
                backoff_began = Some(Instant::now());
            }
            S::Starting => {
                if let Some(began) = backoff_began.take() {
                    waits.push(began.elapsed());
                }
            }
            S::Crashed => break,
            S::Unhealthy => {
                assert!(
                    matches!(change.reason, Reason::SpawnFailed { .. }),
                    "{change}"
                );
            }
            _ => panic!("unexpected {change}"),
        }
    }
    let secs = Duration::from_secs;
    assert_eq!(waits, [secs(1), secs(2), secs(4)]);
    assert!(matches!(
        start.await.unwrap(),
        Err(StartError::Crashed {
            reason: Reason::GaveUp { restarts: 3, .. },
            ..
        })
    ));
    assert_eq!(host.status().restarts, 3);
}

#[tokio::test(start_paused = true)]
async fn a_stop_ends_an_hour_of_backoff_at_once() {
    let hour = Duration::from_secs(3600);
    let host = failing_host(RestartPolicy {
        initial_backoff: hour,
        max_backoff: hour,
        ..RestartPolicy::default()
    });
    let mut events = host.subscribe();
    let start = {
        let host = host.clone();
        tokio::spawn(async move { host.start().await })
    };
    while next(&mut events).await.to != S::Restarting {}
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), host.stop())
        .await
        .expect("stop() must not wait for the backoff");
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "stop() waited {:?} of the backoff",
        stopping.elapsed()
    );
    assert_eq!(host.state(), S::Stopped);
    assert!(matches!(
        start.await.unwrap(),
        Err(StartError::Stopped { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_last_handle_going_stops_the_host_and_ends_its_task() {
    let hour = Duration::from_secs(3600);
    let host = failing_host(RestartPolicy {
        initial_backoff: hour,
        max_backoff: hour,
        ..RestartPolicy::default()
    });
    let mut events = host.subscribe();
    // Given up on after a minute of the hour's backoff; the host keeps waiting it out.
    let started = tokio::time::timeout(Duration::from_secs(60), host.start()).await;
    assert!(started.is_err(), "{started:?}");
    assert_eq!(host.state(), S::Restarting);
    let dropped = Instant::now();
    drop(host);
    let mut after = Vec::new();
    // Closed once the task ends and drops its subscribers.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = events.recv().await {
            after.push(change.to);
        }
    })
    .await;
    assert!(ended.is_ok(), "the task did not end; saw {after:?}");
    // The stream ends: the task is gone, after the stop the dropped handle meant.
    assert_eq!(
        after,
        [
            S::Starting,
            S::Unhealthy,
            S::Restarting,
            S::Stopping,
            S::Stopped
        ]
    );
    assert!(dropped.elapsed() < Duration::from_secs(1));
}
