//! The conversation against a raw peer on a real socketpair: what it refuses and when it hangs up.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::*;
use crate::wire::{ErrorCode, ErrorObject, raw_null};

/// Answers `wait` never and everything else with `null`.
struct Stalling;

impl RequestHandler for Stalling {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        if request.method == "wait" {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async { Ok(raw_null()) })
        }
    }
}

fn start(config: PeerConfig) -> (Peer, Events, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (peer, events) = Peer::new(ours, "test peer", config, Arc::new(Stalling));
    (peer, events, theirs)
}

async fn send(theirs: &mut UnixStream, body: &str) {
    let len = u32::try_from(body.len()).unwrap();
    theirs.write_all(&len.to_be_bytes()).await.unwrap();
    theirs.write_all(body.as_bytes()).await.unwrap();
}

async fn receive(theirs: &mut UnixStream) -> serde_json::Value {
    let len = tokio::time::timeout(Duration::from_secs(10), theirs.read_u32())
        .await
        .expect("an answer")
        .unwrap();
    let mut body = vec![0; len as usize];
    theirs.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn request(id: u64, method: &str) -> String {
    format!(r#"{{"id":{id},"type":"request","payload":{{"method":"{method}"}}}}"#)
}

fn error_code(answer: &serde_json::Value) -> &str {
    answer["payload"]["error"]["code"]
        .as_str()
        .unwrap_or("none")
}

#[tokio::test]
async fn a_duplicate_id_in_flight_is_refused_and_the_first_request_still_runs() {
    let (_peer, _events, mut theirs) = start(PeerConfig::default());
    send(&mut theirs, &request(1, "wait")).await;
    send(&mut theirs, &request(1, "wait")).await;
    let answer = receive(&mut theirs).await;
    assert_eq!(
        (answer["id"].as_u64(), error_code(&answer)),
        (Some(1), "InvalidRequest")
    );
    // Positive control: a fresh id is served.
    send(&mut theirs, &request(2, "now")).await;
    let answer = receive(&mut theirs).await;
    assert_eq!(answer["id"], 2);
    assert!(answer["payload"]["result"].is_null(), "{answer}");
}

#[tokio::test]
async fn beyond_max_incoming_the_peer_is_told_busy() {
    let config = PeerConfig {
        max_incoming: 2,
        ..PeerConfig::default()
    };
    let (_peer, _events, mut theirs) = start(config);
    for id in 1..=3 {
        send(&mut theirs, &request(id, "wait")).await;
    }
    let answer = receive(&mut theirs).await;
    assert_eq!(
        (answer["id"].as_u64(), error_code(&answer)),
        (Some(3), "Busy")
    );
}

#[tokio::test]
async fn a_long_method_name_is_refused_without_being_echoed() {
    let (_peer, _events, mut theirs) = start(PeerConfig::default());
    let name = "m".repeat(MAX_METHOD_LEN + 1);
    send(&mut theirs, &request(5, &name)).await;
    let answer = receive(&mut theirs).await;
    assert_eq!(error_code(&answer), "InvalidRequest");
    assert!(answer.to_string().len() < 200, "{answer}");
}

#[tokio::test]
async fn answers_to_requests_never_sent_use_up_the_bad_frame_budget() {
    let config = PeerConfig {
        max_bad_frames: 2,
        ..PeerConfig::default()
    };
    let (peer, _events, mut theirs) = start(config);
    for id in [7, 8, 9] {
        send(
            &mut theirs,
            &format!(r#"{{"id":{id},"type":"response","payload":{{"result":1}}}}"#),
        )
        .await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), peer.closed())
        .await
        .expect("closed");
    assert!(
        matches!(closed, CloseReason::TooManyBadFrames { count: 3 }),
        "{closed}"
    );
    let err = peer.request("late", None).await.unwrap_err();
    assert!(matches!(err, RequestError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn our_request_gets_its_answer_and_an_error_answer_is_remote() {
    let (peer, _events, mut theirs) = start(PeerConfig::default());
    let call = tokio::spawn({
        let peer = peer.clone();
        async move { peer.request("first", None).await }
    });
    let asked = receive(&mut theirs).await;
    assert_eq!(
        (asked["id"].as_u64(), asked["type"].as_str()),
        (Some(1), Some("request"))
    );
    let error = serde_json::to_string(&ErrorObject::new(ErrorCode::NotFound, "no")).unwrap();
    send(
        &mut theirs,
        &format!(r#"{{"id":1,"type":"response","payload":{{"error":{error}}}}}"#),
    )
    .await;
    let err = call.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RequestError::Remote(e) if e.is(ErrorCode::NotFound)),
        "{err}"
    );
    assert_eq!(peer.pending_requests(), 0);
}

#[tokio::test]
async fn notifications_and_heartbeats_reach_the_owner() {
    let (_peer, mut events, mut theirs) = start(PeerConfig::default());
    let mut heartbeats = events.heartbeats();
    send(
        &mut theirs,
        r#"{"id":null,"type":"heartbeat","payload":{"seq":4}}"#,
    )
    .await;
    send(
        &mut theirs,
        r#"{"id":null,"type":"notification","payload":{"method":"log","params":[1]}}"#,
    )
    .await;
    assert_eq!(heartbeats.changed().await, Some(4));
    let Some(Event::Notification { method, params }) = events.recv().await else {
        panic!("no notification")
    };
    assert_eq!((method.as_str(), params.unwrap().get()), ("log", "[1]"));
    drop(theirs);
    assert!(events.recv().await.is_none());
    assert_eq!(heartbeats.changed().await, None);
}
