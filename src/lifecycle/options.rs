//! What to run as a host, and the timings it runs under.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::backoff::{RestartPolicy, millis};
use crate::process::HostCommand;
use crate::rpc::PeerConfig;
use crate::wire::DEFAULT_MAX_FRAME;

/// Timings and limits of one host. Every field has a default; config files set them in
/// milliseconds (`heartbeat_interval_ms = 1000`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostOptions {
    /// How often the host must send a heartbeat.
    #[serde(rename = "heartbeat_interval_ms", with = "millis")]
    pub heartbeat_interval: Duration,
    /// Silence after which a running host counts as hung and is restarted.
    #[serde(rename = "heartbeat_timeout_ms", with = "millis")]
    pub heartbeat_timeout: Duration,
    /// Time from spawn to the host's handshake.
    #[serde(rename = "handshake_timeout_ms", with = "millis")]
    pub handshake_timeout: Duration,
    /// Time for `activate()`.
    #[serde(rename = "activation_timeout_ms", with = "millis")]
    pub activation_timeout: Duration,
    /// Default deadline of requests to the host.
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    /// Time the host gets for `deactivate()` after the shutdown message, before SIGTERM.
    #[serde(rename = "shutdown_grace_ms", with = "millis")]
    pub shutdown_grace: Duration,
    /// Time between SIGTERM and SIGKILL.
    #[serde(rename = "term_grace_ms", with = "millis")]
    pub term_grace: Duration,
    /// Largest frame body in either direction, in bytes.
    pub max_frame_bytes: usize,
    /// Incoming requests from the host handled at once.
    pub max_incoming_requests: usize,
    /// Restart backoff and crash-loop budget.
    pub restart: RestartPolicy,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            activation_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            term_grace: Duration::from_secs(2),
            max_frame_bytes: DEFAULT_MAX_FRAME,
            max_incoming_requests: 1024,
            restart: RestartPolicy::default(),
        }
    }
}

impl HostOptions {
    /// The connection settings these options imply.
    #[must_use]
    pub fn connection_config(&self) -> PeerConfig {
        PeerConfig {
            max_frame: self.max_frame_bytes,
            request_timeout: self.request_timeout,
            max_incoming: self.max_incoming_requests,
            ..PeerConfig::default()
        }
    }
}

/// One host to supervise.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The extension id (`publisher.name`); the host's identity on its connection.
    pub id: String,
    /// The process to run.
    pub command: HostCommand,
    /// The extension folder, handed to the host in the handshake.
    pub extension_path: PathBuf,
    /// A folder the extension may write to.
    pub storage_path: Option<PathBuf>,
    /// The extension's version (grants are recorded against it).
    pub version: String,
    /// The permissions its manifest asks for. Asking grants nothing; see [`crate::permissions`].
    pub permissions: Vec<crate::permissions::PermissionRequest>,
    /// Names of this host's own secrets to hand it in the handshake (never in its environment).
    pub handshake_secrets: Vec<String>,
    /// Where those secrets are read from.
    pub secret_storage: Option<crate::secrets::SecretStorage>,
    /// Timings and limits.
    pub options: HostOptions,
    /// The sandbox it runs in.
    pub sandbox: crate::sandbox::SandboxSpec,
}
