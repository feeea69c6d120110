//! Requests to a real Node.js host: round trips, concurrency, timeouts and cancellation.

mod common;

use std::time::Duration;

use common::{Env, example, fast, fixture, json, raw};
use dscode_extension_host::lifecycle::{CallError, ExtensionHostState};
use dscode_extension_host::process::Containment;
use dscode_extension_host::rpc::{RequestError, RequestStage};
use dscode_extension_host::wire::ErrorCode;

#[tokio::test]
async fn handshake_activation_and_a_command_round_trip() {
    let env = Env::new();
    let host = env.host(&example("hello"), fast());
    host.start().await.expect("host starts");
    let status = host.status();
    assert_eq!(status.state, ExtensionHostState::Running);
    assert!(
        status.commands.contains(&"hello.greet".to_owned()),
        "{:?}",
        status.commands
    );
    assert!(status.pid.is_some_and(common::alive));
    assert_eq!(status.containment, Some(Containment::PidNamespace));
    let reply = host
        .execute_command("hello.greet", &raw(r#"["Ada"]"#))
        .await
        .unwrap();
    assert_eq!(json(&reply), "Hello, Ada!");
    host.stop().await;
    assert_eq!(host.state(), ExtensionHostState::Stopped);
}

#[tokio::test]
async fn unknown_command_and_throwing_command_are_structured_errors() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    host.start().await.unwrap();
    let err = host
        .execute_command("nope.nothing", &raw("[]"))
        .await
        .unwrap_err();
    assert!(
        err.remote()
            .is_some_and(|e| e.is(ErrorCode::CommandNotFound)),
        "{err}"
    );
    let err = host
        .execute_command("faulty.throw", &raw("[]"))
        .await
        .unwrap_err();
    let Some(error) = err.remote() else {
        panic!("{err}")
    };
    assert!(
        error.is(ErrorCode::ExtensionError) && error.message.contains("boom"),
        "{error}"
    );
    // Positive control: the host still serves requests after both errors.
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
async fn a_thousand_concurrent_requests_are_all_answered() {
    let env = Env::new();
    let host = env.host(&example("hello"), fast());
    host.start().await.unwrap();
    let calls = (0..1000).map(|i| {
        let host = host.clone();
        async move {
            host.execute_command("hello.add", &raw(&format!("[{i}, 1]")))
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(json(&result.unwrap()), serde_json::json!(i + 1));
    }
    host.stop().await;
}

#[tokio::test]
async fn a_slow_command_does_not_delay_a_fast_one() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    host.start().await.unwrap();
    let slow = {
        let host = host.clone();
        tokio::spawn(async move { host.execute_command("faulty.slow", &raw("[3000]")).await })
    };
    // The fast command completes while the slow one is still pending: ordering, not timing.
    let fast_reply = host
        .execute_command("faulty.fast", &raw("[]"))
        .await
        .unwrap();
    assert_eq!(json(&fast_reply), "fast");
    assert!(
        !slow.is_finished(),
        "the slow command finished before the fast one returned"
    );
    assert_eq!(json(&slow.await.unwrap().unwrap()), "slow");
    host.stop().await;
}

/// A request that outlives its deadline fails with `Timeout`, the host is told to cancel it, and
/// the answer the host sends anyway is dropped: it reaches no other caller and costs the
/// connection nothing. The host's gate answers only when opened, and `faulty.openGate` answers
/// only after the gate's late answer was written, so when its answer is back the late one has
/// been read: no sleeps, no guessing when it arrives.
#[tokio::test]
async fn a_request_that_outlives_its_timeout_errors_and_the_late_reply_is_ignored() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    host.start().await.unwrap();
    let params = raw(r#"{"command":"faulty.gate","args":[]}"#);
    let err = host
        .request_with(
            "command/execute",
            Some(params),
            Duration::from_millis(50),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Request(RequestError::Timeout {
                stage: RequestStage::AwaitingAnswer,
                ..
            })
        ),
        "{err:?}"
    );
    // The cancel left before this request, so the gate's token has fired by the time it runs.
    let opened = host
        .execute_command("faulty.openGate", &raw("[]"))
        .await
        .unwrap();
    assert_eq!(
        json(&opened),
        serde_json::json!({"opened": true, "gateWasCancelled": true}),
        "the late answer went to another caller, or the host was never told to cancel"
    );
    // The late answer cost the connection nothing.
    assert_eq!(
        json(
            &host
                .execute_command("faulty.fast", &raw("[]"))
                .await
                .unwrap()
        ),
        "fast"
    );
    assert_eq!(host.state(), ExtensionHostState::Running);
    host.stop().await;
}

/// Cancelling a request reaches the extension's cancellation token. The host says when the
/// command is running, so the cancel cannot overtake it, and the cancel leaves before the
/// question that checks it, so the answer is final: no sleeps, no polling.
#[tokio::test]
async fn cancelling_a_request_reaches_the_extensions_token() {
    let env = Env::new();
    let host = env.host(&fixture("faulty"), fast());
    host.start().await.unwrap();
    assert_eq!(
        json(
            &host
                .execute_command("faulty.wasCancelled", &raw("[]"))
                .await
                .unwrap()
        ),
        false
    );
    let token = tokio_util::sync::CancellationToken::new();
    let call = {
        let host = host.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let params = raw(r#"{"command":"faulty.cancellable","args":[]}"#);
            host.request_with(
                "command/execute",
                Some(params),
                Duration::from_secs(30),
                Some(&token),
            )
            .await
        })
    };
    assert_eq!(
        json(
            &host
                .execute_command("faulty.whenCancellableStarted", &raw("[]"))
                .await
                .unwrap()
        ),
        true
    );
    token.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            CallError::Request(RequestError::Cancelled {
                stage: RequestStage::AwaitingAnswer,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        json(
            &host
                .execute_command("faulty.wasCancelled", &raw("[]"))
                .await
                .unwrap()
        ),
        true,
        "the extension never saw the cancellation"
    );
    host.stop().await;
}

#[tokio::test]
async fn echo_forwards_params_untouched_and_big_payloads_fit() {
    let env = Env::new();
    let host = env.host(&example("hello"), fast());
    host.start().await.unwrap();
    let payload = format!(r#"{{"text":"{}","n":[1,2,3]}}"#, "é".repeat(200_000));
    let reply = host
        .request("host/echo", Some(raw(&payload)))
        .await
        .unwrap();
    assert_eq!(
        json(&reply),
        serde_json::from_str::<serde_json::Value>(&payload).unwrap()
    );
    // Over the 1 MiB limit: refused on our side before sending, and the host stays up.
    let too_big = format!(r#""{}""#, "x".repeat(1 << 20));
    let err = host
        .request("host/echo", Some(raw(&too_big)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Request(RequestError::Encode(_))),
        "{err}"
    );
    assert_eq!(
        json(&host.request("host/echo", Some(raw("[1]"))).await.unwrap()),
        serde_json::json!([1])
    );
    host.stop().await;
}
