//! What the scenarios are compared with, measured in the same run: the Rust floor (both ends of
//! a socketpair in this process, with the protocol's framing), two Node processes with the
//! host's own connection code, and a bare `node` spawn.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use dscode_extension_host::rpc::{
    HandlerFuture, IncomingRequest, NoMethods, Peer, PeerConfig, RequestHandler,
};
use dscode_extension_host::wire::{ErrorCode, ErrorObject};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// `command/execute` params as `HostHandle::execute_command` builds them, so every variant
/// pays the same supervisor-side cost per request.
pub fn command_params(command: &str, args: &RawValue) -> Box<RawValue> {
    dscode_extension_host::lifecycle::command_params(command, args)
        .expect("the benchmark's arguments are an array")
}

/// The size on the wire (header included) of a `hello.echo` request carrying `args`.
pub fn frame_bytes(args: &RawValue) -> anyhow::Result<usize> {
    use dscode_extension_host::wire::{Message, encode_message};
    let request = Message::Request {
        id: 1,
        method: "command/execute".to_owned(),
        params: Some(command_params("hello.echo", args)),
    };
    let mut buf = bytes::BytesMut::new();
    encode_message(&request, usize::MAX, &mut buf).context("the request does not encode")?;
    Ok(buf.len())
}

/// The arguments `[payload]`, a JSON string of `payload_bytes` bytes.
pub fn echo_args(payload_bytes: usize) -> Box<RawValue> {
    RawValue::from_string(format!("[\"{}\"]", "x".repeat(payload_bytes)))
        .expect("a JSON array of one string")
}

/// Answers `command/execute` with `args[0]`, the way `hello.echo` does in a host.
struct EchoFirstArg;

impl RequestHandler for EchoFirstArg {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        #[derive(serde::Deserialize)]
        struct Params {
            args: Vec<Box<RawValue>>,
        }
        Box::pin(async move {
            let params: Params = request
                .params
                .as_deref()
                .map(|p| serde_json::from_str(p.get()))
                .transpose()
                .map_err(|e| ErrorObject::new(ErrorCode::InvalidParams, e.to_string()))?
                .ok_or_else(|| ErrorObject::new(ErrorCode::InvalidParams, "no params"))?;
            Ok(params
                .args
                .into_iter()
                .next()
                .unwrap_or_else(|| RawValue::from_string("null".into()).expect("null")))
        })
    }
}

/// A client and an echo server in this process, joined by a socketpair, speaking the
/// protocol with the crate's own connection code on both ends.
pub struct RustFloor {
    client: Peer,
    _server: Peer,
}

impl RustFloor {
    /// Connects the pair; `max_frame` as for a host.
    pub fn new(max_frame: usize) -> anyhow::Result<Self> {
        let (a, b) = tokio::net::UnixStream::pair().context("socketpair")?;
        let config = PeerConfig {
            max_frame,
            request_timeout: Duration::from_secs(60),
            ..PeerConfig::default()
        };
        let (client, _) = Peer::new(a, "floor-client", config.clone(), Arc::new(NoMethods));
        let (server, _) = Peer::new(b, "floor-server", config, Arc::new(EchoFirstArg));
        Ok(Self {
            client,
            _server: server,
        })
    }

    /// One round trip.
    pub async fn call(&self, args: &RawValue) -> anyhow::Result<Box<RawValue>> {
        self.client
            .request("command/execute", Some(command_params("bench.echo", args)))
            .await
            .context("Rust floor request failed")
    }
}

/// Runs `n` sequential round trips between two Node processes (`peer.js`), after a warm-up,
/// and returns each in nanoseconds as the client measured it.
pub async fn node_to_node(
    node: &Path,
    peer_js: &Path,
    host_src: &Path,
    socket: &Path,
    n: usize,
    payload_bytes: usize,
) -> anyhow::Result<Vec<u64>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Output {
        samples_ns: Vec<u64>,
    }
    let _ = std::fs::remove_file(socket);
    let mut server = bare_node(node)
        .arg(peer_js)
        .args(["server".as_ref(), host_src.as_os_str(), socket.as_os_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("failed to start the Node baseline server")?;
    let mut ready = String::new();
    let stdout = server.stdout.take().expect("piped");
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut ready),
    )
    .await
    .context("the Node baseline server did not start within 10 s")??;
    ensure!(
        ready.trim() == "ready",
        "the Node baseline server failed to start"
    );
    let client = bare_node(node)
        .arg(peer_js)
        .args(["client".as_ref(), host_src.as_os_str(), socket.as_os_str()])
        .args([n.to_string(), payload_bytes.to_string()])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("failed to run the Node baseline client")?;
    let _ = server.kill().await;
    let _ = std::fs::remove_file(socket);
    if !client.status.success() {
        bail!(
            "the Node baseline client failed: {}",
            String::from_utf8_lossy(&client.stderr).trim()
        );
    }
    let output: Output = serde_json::from_slice(&client.stdout)
        .context("the Node baseline client printed no samples")?;
    ensure!(
        output.samples_ns.len() == n,
        "the Node baseline returned {} samples, not {n}",
        output.samples_ns.len()
    );
    Ok(output.samples_ns)
}

/// `node` with the environment a host gets: only the pass-through variables. The bench's own
/// environment may hold variables Node acts on at start-up (`NODE_EXTRA_CA_CERTS` alone adds
/// about 100 ms here) that no host ever sees.
fn bare_node(node: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(node);
    cmd.env_clear();
    for name in dscode_extension_host::process::ENV_PASSTHROUGH {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// `node -e ''` from spawn to exit: the floor any Node-based host pays, exit included.
pub async fn bare_node_exit(node: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = bare_node(node)
        .args(["-e", ""])
        .stdin(Stdio::null())
        .status()
        .await
        .context("failed to run node")?;
    let elapsed = t.elapsed();
    ensure!(status.success(), "node -e '' failed: {status}");
    Ok(elapsed)
}

/// `node` from spawn until its first line of JavaScript has run (its first byte on stdout):
/// Node's own start-up without its exit.
pub async fn bare_node_ready(node: &Path) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut child = bare_node(node)
        .args(["-e", "process.stdout.write('r')"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("failed to run node")?;
    let mut byte = [0u8; 1];
    child
        .stdout
        .as_mut()
        .expect("piped")
        .read_exact(&mut byte)
        .await
        .context("node printed nothing")?;
    let elapsed = t.elapsed();
    let _ = child.wait().await;
    Ok(elapsed)
}
