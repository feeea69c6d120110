//! Faults in a real Node.js host: exits, hangs, crash loops, stubborn processes, and the
//! supervisor itself being killed.

mod common;

use std::time::Duration;

use common::{Env, example, fast, fixture, gone, json, raw, until_state};
use dscode_extension_host::lifecycle::{ExtensionHostState as S, Reason, StartError, StopOutcome};

#[tokio::test]
async fn process_exit_is_noticed_and_the_host_restarts() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    let mut events = host.subscribe();
    host.start().await.unwrap();
    until_state(&mut events, S::Running).await;
    let first_pid = host.status().pid.unwrap();

    let _ = host.execute_command("faulty.exit", &raw("[1]")).await;
    let seen = until_state(&mut events, S::Running).await;
    let path: Vec<_> = seen.iter().map(|c| c.to).collect();
    assert_eq!(path, [S::Unhealthy, S::Restarting, S::Starting, S::Running]);
    assert!(
        matches!(&seen[0].reason, Reason::Exited { code: Some(1), .. }),
        "{:?}",
        seen[0].reason
    );
    assert!(matches!(seen[1].reason, Reason::Backoff { attempt: 1, .. }));

    let status = host.status();
    assert_eq!(status.restarts, 1);
    assert_ne!(status.pid, Some(first_pid));
    assert!(gone(first_pid));
    assert_eq!(
        json(
            &host
                .execute_command("faulty.fast", &raw("[]"))
                .await
                .unwrap()
        ),
        "fast"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_busy_loop_is_detected_as_a_hang_and_restarted() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    let mut events = host.subscribe();
    host.start().await.unwrap();
    until_state(&mut events, S::Running).await;
    let hung_pid = host.status().pid.unwrap();

    let call = {
        let host = host.clone();
        tokio::spawn(async move { host.execute_command("faulty.hang", &raw("[]")).await })
    };
    let seen = until_state(&mut events, S::Running).await;
    assert!(
        matches!(seen[0].reason, Reason::Hung { .. }),
        "{:?}",
        seen[0].reason
    );
    assert_eq!(seen[0].to, S::Unhealthy);
    // The request to the hung host fails instead of hanging forever.
    assert!(call.await.unwrap().is_err());
    assert!(gone(hung_pid), "the hung process was not killed");
    assert_eq!(
        json(
            &host
                .execute_command("faulty.fast", &raw("[]"))
                .await
                .unwrap()
        ),
        "fast"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_host_that_crashes_on_every_start_is_crashed_after_the_budget() {
    let env = Env::new();
    let host = env.host(&fixture("crash-on-start"), fast());
    let mut events = host.subscribe();
    let err = host.start().await.unwrap_err();
    let StartError::Crashed {
        reason: Reason::GaveUp { restarts, last },
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*restarts, 3);
    assert!(
        matches!(**last, Reason::Exited { code: Some(3), .. }),
        "{last:?}"
    );
    assert!(err.to_string().contains("exited with code 3"), "{err}");

    let seen = until_state(&mut events, S::Crashed).await;
    let restarts = seen.iter().filter(|c| c.to == S::Restarting).count();
    assert_eq!(restarts, 3);
    // Backoff doubles: 20, 40, 80 ms with the test policy.
    let delays: Vec<_> = seen
        .iter()
        .filter_map(|c| match c.reason {
            Reason::Backoff { delay, .. } if c.to == S::Restarting => Some(delay.as_millis()),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [20, 40, 80]);
    assert_eq!(host.state(), S::Crashed);

    // A crashed host can be stopped (and started again by an explicit start).
    host.stop().await;
    assert_eq!(host.state(), S::Stopped);
}

#[tokio::test]
async fn activation_failure_is_reported_with_the_extension_message() {
    let env = Env::new();
    let mut options = fast();
    options.restart.max_restarts = 0;
    let host = env.host(&fixture("activate-throws"), options);
    let err = host.start().await.unwrap_err();
    assert!(
        err.to_string().contains("activation failed on purpose"),
        "{err}"
    );
}

#[tokio::test]
async fn stop_during_backoff_stops_at_once() {
    let env = Env::new();
    let mut options = fast();
    options.restart.initial_backoff = Duration::from_secs(3600);
    options.restart.max_backoff = Duration::from_secs(3600);
    let host = env.host(&fixture("crash-on-start"), options);
    let mut events = host.subscribe();
    let start = {
        let host = host.clone();
        tokio::spawn(async move { host.start().await })
    };
    until_state(&mut events, S::Restarting).await;
    // An hour of backoff is pending; stop must not wait for it.
    tokio::time::timeout(Duration::from_secs(10), host.stop())
        .await
        .expect("stop returned promptly");
    assert_eq!(host.state(), S::Stopped);
    assert!(matches!(
        start.await.unwrap(),
        Err(StartError::Stopped { .. })
    ));
}

#[tokio::test]
async fn a_host_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let env = Env::new();
    let host = env.host(&fixture("wedged-deactivate"), fast());
    let mut events = host.subscribe();
    host.start().await.unwrap();
    let pid = host.status().pid.unwrap();
    host.stop().await;
    let seen = until_state(&mut events, S::Stopped).await;
    assert!(
        matches!(
            seen.last().unwrap().reason,
            Reason::Stopped {
                how: StopOutcome::Killed
            }
        ),
        "{seen:?}"
    );
    assert!(gone(pid));
}

#[tokio::test]
async fn graceful_stop_runs_deactivate() {
    let env = Env::new();
    let host = env.host(&example("hello"), fast());
    let mut events = host.subscribe();
    host.start().await.unwrap();
    let pid = host.status().pid.unwrap();
    host.stop().await;
    let seen = until_state(&mut events, S::Stopped).await;
    let path: Vec<_> = seen.iter().map(|c| c.to).collect();
    assert_eq!(path, [S::Starting, S::Running, S::Stopping, S::Stopped]);
    assert!(matches!(
        seen.last().unwrap().reason,
        Reason::Stopped {
            how: StopOutcome::Graceful
        }
    ));
    assert!(gone(pid));
}

#[tokio::test]
async fn a_missing_runtime_is_a_clear_error_and_no_retry() {
    let env = Env::new();
    let mut spec = env.spec(&example("hello"), fast());
    spec.command.program = "/nonexistent/node".into();
    let host = dscode_extension_host::lifecycle::HostHandle::spawn(
        spec,
        std::sync::Arc::new(dscode_extension_host::rpc::NoMethods),
    );
    let err = host.start().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/node")
            && text.contains("not found")
            && text.contains("install Node.js"),
        "{text}"
    );
    assert_eq!(host.status().restarts, 0);
}
