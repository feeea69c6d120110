//! A hostile host sending malformed frames: the supervisor answers or drops them with a clear
//! error, restarts only the offender when the stream breaks, and a well-behaved host beside it
//! never notices.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, example, fast, json, raw, repo, until_state};
use dscode_extension_host::broker::DenyAll;
use dscode_extension_host::lifecycle::{
    ExtensionHostManager, ExtensionHostState as S, HostSpec, Reason,
};
use dscode_extension_host::process::HostCommand;

fn rogue(mode: &str) -> HostSpec {
    let dir = repo().join("tests/fixtures/rogue");
    let mut options = fast();
    options.restart.max_restarts = 0;
    HostSpec {
        id: format!("test.rogue-{mode}"),
        command: HostCommand {
            program: common::python(),
            args: vec![dir.join("rogue_host.py").into_os_string()],
            env: vec![("ROGUE_MODE".into(), mode.into())],
            cwd: Some(dir.clone()),
        },
        extension_path: dir,
        storage_path: None,
        version: "0.0.0".into(),
        permissions: Vec::new(),
        handshake_secrets: Vec::new(),
        secret_storage: None,
        options,
        sandbox: common::sandbox(),
    }
}

async fn bystander_still_serves(manager: &ExtensionHostManager) {
    let hello = manager.get("dscode.hello").unwrap();
    assert_eq!(hello.state(), S::Running);
    let reply = hello
        .execute_command("hello.greet", &raw(r#"["still here"]"#))
        .await
        .unwrap();
    assert_eq!(json(&reply), "Hello, still here!");
}

#[tokio::test]
async fn message_level_garbage_is_dropped_and_the_connection_survives() {
    let env = Env::new();
    let manager = ExtensionHostManager::new(Arc::new(DenyAll));
    manager.add(env.spec(&example("hello"), fast())).unwrap();
    let rogue = manager.add(rogue("garbage")).unwrap();
    for (id, result) in manager.start_all().await {
        result.unwrap_or_else(|err| panic!("{id}: {err}"));
    }
    // The rogue host is still connected: its echo returns what the supervisor answered so far.
    let mut replies = serde_json::Value::Null;
    for _ in 0..50 {
        replies = json(&rogue.request("host/echo", Some(raw("[]"))).await.unwrap());
        if replies.as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Only the malformed request with a readable id gets an answer: InvalidRequest for id 77.
    assert_eq!(replies[0]["id"], 77, "{replies}");
    assert_eq!(replies[0]["payload"]["error"]["code"], "InvalidRequest");
    // A 100 kB method name is refused with a short answer that does not echo it.
    assert_eq!(replies[1]["id"], 78, "{replies}");
    assert_eq!(replies[1]["payload"]["error"]["code"], "InvalidRequest");
    assert!(replies[1].to_string().len() < 300, "{}", replies[1]);
    assert_eq!(rogue.state(), S::Running);
    bystander_still_serves(&manager).await;
    manager.stop_all().await;
}

#[tokio::test]
async fn a_request_flood_is_answered_and_denied_without_stalling() {
    let env = Env::new();
    let manager = ExtensionHostManager::new(Arc::new(DenyAll));
    manager.add(env.spec(&example("hello"), fast())).unwrap();
    let rogue = manager.add(rogue("flood")).unwrap();
    manager.start_all().await;
    let mut replies = serde_json::Value::Null;
    for _ in 0..100 {
        replies = json(&rogue.request("host/echo", Some(raw("[]"))).await.unwrap());
        if replies.as_array().unwrap().len() == 32 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let replies = replies.as_array().unwrap();
    assert_eq!(replies.len(), 32);
    assert!(
        replies
            .iter()
            .all(|r| r["payload"]["error"]["code"] == "PermissionDenied"),
        "{replies:?}"
    );
    bystander_still_serves(&manager).await;
    manager.stop_all().await;
}

#[tokio::test]
async fn frame_level_errors_end_only_the_offending_connection() {
    for mode in ["oversize", "truncate"] {
        let env = Env::new();
        let manager = ExtensionHostManager::new(Arc::new(DenyAll));
        manager.add(env.spec(&example("hello"), fast())).unwrap();
        let rogue = manager.add(rogue(mode)).unwrap();
        let mut events = rogue.subscribe();
        manager.start_all().await;
        let seen = until_state(&mut events, S::Crashed).await;
        let unhealthy = seen
            .iter()
            .find(|c| c.to == S::Unhealthy)
            .expect("unhealthy");
        let Reason::ConnectionLost { message } = &unhealthy.reason else {
            panic!("{mode}: {:?}", unhealthy.reason)
        };
        let expected = if mode == "oversize" {
            "above the 1048576-byte limit"
        } else {
            "stream ended inside a frame"
        };
        assert!(message.contains(expected), "{mode}: {message}");
        bystander_still_serves(&manager).await;
        manager.stop_all().await;
    }
}

/// A host that stops reading fills the supervisor's outbound queue with the answers it does not
/// read. A request to it must still end at its deadline, which covers the wait for room in the
/// queue (the request is never sent, so no cancel follows it), and `stop()` must end too: the
/// shutdown message cannot be queued either, so the host is terminated after the grace period.
#[tokio::test]
async fn a_host_that_stops_reading_cannot_wedge_requests_or_stop() {
    use dscode_extension_host::lifecycle::{CallError, StopOutcome};
    use dscode_extension_host::rpc::{RequestError, RequestStage};

    let manager = ExtensionHostManager::new(Arc::new(DenyAll));
    let mut spec = rogue("deaf");
    // Long enough that only the request deadline and stop() are under test, not hang detection.
    spec.options.heartbeat_timeout = Duration::from_secs(300);
    let deaf = manager.add(spec).unwrap();
    deaf.start().await.unwrap();
    // Requests are queued (and time out waiting for an answer) until the flood's denials fill
    // the queue; from then on one waits for room, and its deadline must end that wait too. The
    // queue fills within a second or two and the stall timeout (30 s) is far off.
    let mut stages = Vec::new();
    while stages.last() != Some(&RequestStage::Queueing) {
        assert!(
            stages.len() < 100,
            "no request ever waited for room: {stages:?}"
        );
        let deadline = Duration::from_millis(100);
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            deaf.request_with("host/echo", None, deadline, None),
        )
        .await
        .expect("a request to a deaf host must end at its deadline");
        match outcome {
            Err(CallError::Request(RequestError::Timeout { after, stage, .. }))
                if after == deadline =>
            {
                stages.push(stage);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
    tokio::time::timeout(Duration::from_secs(30), deaf.stop())
        .await
        .expect("stop() must finish");
    let status = deaf.status();
    assert_eq!(status.state, S::Stopped);
    assert!(
        matches!(
            status.reason,
            Reason::Stopped {
                how: StopOutcome::Terminated
            }
        ),
        "a shutdown message that cannot be queued must not count as graceful: {}",
        status.reason
    );
}

/// Answers every request with 64 KiB of text, counting the requests it was given.
struct BigAnswers(Arc<std::sync::atomic::AtomicUsize>);

impl dscode_extension_host::rpc::RequestHandler for BigAnswers {
    fn handle(
        &self,
        _request: dscode_extension_host::rpc::IncomingRequest,
    ) -> dscode_extension_host::rpc::HandlerFuture {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok(raw(&format!("\"{}\"", "x".repeat(64 * 1024)))) })
    }
}

/// Sends `count` requests for `big` on a blocking socket, from a thread of its own (the
/// writes block once the other side stops reading).
fn send_requests(
    socket: &std::os::unix::net::UnixStream,
    count: usize,
) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    let mut writer = socket.try_clone().unwrap();
    std::thread::spawn(move || {
        for id in 1..=count {
            let body = format!(r#"{{"id":{id},"type":"request","payload":{{"method":"big"}}}}"#);
            let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
            frame.extend_from_slice(body.as_bytes());
            // The connection may be closed under a flood that is not being read: that ends it.
            if writer.write_all(&frame).is_err() {
                return;
            }
        }
    })
}

fn connection_to_peer(
    config: dscode_extension_host::rpc::PeerConfig,
) -> (
    dscode_extension_host::rpc::Peer,
    std::os::unix::net::UnixStream,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let handled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (connection, _events) = dscode_extension_host::rpc::Peer::new(
        ours,
        "peer",
        config,
        Arc::new(BigAnswers(Arc::clone(&handled))),
    );
    let theirs = theirs.into_std().unwrap();
    theirs.set_nonblocking(false).unwrap();
    (connection, theirs, handled)
}

/// A peer that sends requests and never reads the answers holds at most the byte budget of
/// queued frames plus `max_incoming` answers (the rest of its requests wait in its own socket),
/// and is disconnected once it has read nothing for the stall timeout.
#[tokio::test]
async fn a_peer_that_never_reads_is_bounded_and_then_disconnected() {
    use dscode_extension_host::rpc::{CloseReason, PeerConfig};
    use std::sync::atomic::Ordering;

    const REQUESTS: usize = 2000; // 125 MiB of answers if all were kept
    const BUDGET: usize = 1024 * 1024;
    let config = PeerConfig {
        max_queued_bytes: BUDGET,
        max_incoming: 64,
        stall_timeout: Duration::from_secs(1),
        ..PeerConfig::default()
    };
    let (connection, theirs, handled) = connection_to_peer(config);
    let sender = send_requests(&theirs, REQUESTS);
    let mut fullest = 0;
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            fullest = fullest.max(connection.queued_bytes());
            if connection.is_closed() {
                return connection.closed().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a peer that reads nothing is disconnected");
    assert!(
        matches!(closed, CloseReason::Stalled { after } if after == Duration::from_secs(1)),
        "{closed}"
    );
    assert!(
        fullest > BUDGET / 2,
        "the queue never filled: {fullest} bytes"
    );
    // At most the queue's 16 answers, the 64 waiting for room, and what the kernel's socket
    // buffer took: nowhere near all of them.
    let taken = handled.load(Ordering::SeqCst);
    assert!(
        taken < REQUESTS / 4,
        "the supervisor kept answering a peer that reads nothing: {taken}"
    );
    // The sender ends once our end of the socket is gone. Joined off the runtime's thread: the
    // reader task that drops our end must be free to run meanwhile.
    drop(theirs);
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || sender.join().unwrap()),
    )
    .await
    .expect("the disconnected peer's writes fail")
    .unwrap();
}

/// Positive control: a peer that reads slowly but steadily is never cut off, even when reading
/// everything takes far longer than the stall timeout, and gets every answer.
#[tokio::test]
async fn a_slow_reader_gets_every_answer() {
    use dscode_extension_host::rpc::PeerConfig;
    use std::io::Read;

    const REQUESTS: usize = 200;
    let config = PeerConfig {
        max_queued_bytes: 256 * 1024,
        stall_timeout: Duration::from_secs(2),
        ..PeerConfig::default()
    };
    let (connection, theirs, handled) = connection_to_peer(config);
    let sender = send_requests(&theirs, REQUESTS);
    let mut reader = theirs;
    let ids = tokio::task::spawn_blocking(move || {
        let mut ids = std::collections::BTreeSet::new();
        while ids.len() < REQUESTS {
            // 64 KiB every 20 ms: about 4 s for everything, twice the stall timeout, with
            // pauses far shorter than it.
            std::thread::sleep(Duration::from_millis(20));
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            reader.read_exact(&mut body).unwrap();
            let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                reply["payload"]["result"].as_str().map(str::len),
                Some(64 * 1024),
                "{reply:.200}"
            );
            ids.insert(reply["id"].as_u64().unwrap());
        }
        (ids, reader)
    })
    .await
    .unwrap();
    let (ids, _still_open) = ids;
    sender.join().unwrap();
    assert_eq!(ids.len(), REQUESTS);
    assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), REQUESTS);
    assert!(!connection.is_closed(), "{}", connection.closed().await);
}

/// A request that timed out before it could even be queued was never seen by the peer, so the
/// peer is not sent a cancel for it; one that was queued is cancelled.
#[tokio::test]
async fn only_requests_the_peer_saw_are_cancelled() {
    use dscode_extension_host::rpc::PeerConfig;
    use std::io::Read;

    let config = PeerConfig {
        max_queued_bytes: 64 * 1024,
        ..PeerConfig::default()
    };
    let (connection, theirs, _handled) = connection_to_peer(config);
    // Far more than the socket buffer and the queue take while the peer is not reading.
    let big = raw(&format!("\"{}\"", "y".repeat(60 * 1024)));
    let mut timed_out = 0;
    for _ in 0..64 {
        let outcome = connection
            .request_with(
                "host/echo",
                Some(big.clone()),
                Duration::from_millis(50),
                None,
            )
            .await;
        assert!(
            matches!(
                outcome,
                Err(dscode_extension_host::rpc::RequestError::Timeout { .. })
            ),
            "{outcome:?}"
        );
        timed_out += 1;
    }
    assert_eq!(timed_out, 64);
    // Now read everything the peer was sent, until a quiet moment.
    let mut reader = theirs;
    reader
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let frames = tokio::task::spawn_blocking(move || {
        let mut frames = Vec::new();
        loop {
            let mut len = [0u8; 4];
            if reader.read_exact(&mut len).is_err() {
                return frames;
            }
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            reader.read_exact(&mut body).unwrap();
            let message: serde_json::Value = serde_json::from_slice(&body).unwrap();
            frames.push((
                message["type"].as_str().unwrap().to_owned(),
                message["id"].as_u64().unwrap(),
            ));
        }
    })
    .await
    .unwrap();
    let sent: std::collections::BTreeSet<u64> = frames
        .iter()
        .filter(|(kind, _)| kind == "request")
        .map(|(_, id)| *id)
        .collect();
    let cancelled: std::collections::BTreeSet<u64> = frames
        .iter()
        .filter(|(kind, _)| kind == "cancel")
        .map(|(_, id)| *id)
        .collect();
    assert!(
        !sent.is_empty() && sent.len() < 64,
        "the queue should have filled: {} sent",
        sent.len()
    );
    assert!(
        cancelled.is_subset(&sent),
        "cancels for requests never sent: {:?}",
        cancelled.difference(&sent).collect::<Vec<_>>()
    );
    assert!(
        !cancelled.is_empty(),
        "the requests that were sent are cancelled"
    );
    drop(connection);
}

/// The reader keeps reading while the outbound queue is full: an answer to the supervisor's own
/// request, sent behind a flood of requests that are refused as `Busy` and not yet read, still
/// gets through.
#[tokio::test]
async fn an_answer_behind_refused_requests_gets_through_a_full_queue() {
    use dscode_extension_host::rpc::PeerConfig;
    use std::io::Write;

    let config = PeerConfig {
        max_queued_bytes: 4096,
        max_incoming: 2,
        ..PeerConfig::default()
    };
    let (connection, theirs, handled) = connection_to_peer(config);
    let ping = {
        let connection = connection.clone();
        tokio::spawn(async move {
            connection
                .request_with("ping", None, Duration::from_secs(10), None)
                .await
        })
    };
    // Our ping is request 1. The peer never reads: it floods requests whose 64 KiB answers fill
    // its socket buffer and our queue, then answers the ping.
    let mut writer = theirs.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        for id in 1..=200 {
            let body = format!(r#"{{"id":{id},"type":"request","payload":{{"method":"big"}}}}"#);
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(body.as_bytes());
        }
        let body = r#"{"id":1,"type":"response","payload":{"result":"pong"}}"#;
        bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(body.as_bytes());
        writer.write_all(&bytes).unwrap();
    });
    let answer = ping
        .await
        .unwrap()
        .expect("the answer is read despite the full queue");
    assert_eq!(json(&answer), "pong");
    flood.join().unwrap();
    assert!(connection.queued_bytes() > 0, "the queue was full");
    assert!(handled.load(std::sync::atomic::Ordering::SeqCst) < 200);
    drop(theirs);
}
