//! The two exchanges that make a spawned host Running: the handshake on the bare transport
//! ([`exchange`]), in which the supervisor tells the host who it is and hands it its settings
//! and secrets, and the activation request on the started connection ([`activate`]).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::options::HostSpec;
use crate::rpc::{Peer, ReadError, RequestError, Transport, WriteError};
use crate::secrets::SecretError;
use crate::wire::{
    FrameError, Handshake, HandshakeSecrets, HostConfig, Kind, Message, MessageError,
    PROTOCOL_VERSION,
};

/// Why the handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// The host closed the connection without a word.
    #[error("host closed the connection before its handshake")]
    Closed,
    /// Its first frame held no valid message.
    #[error("malformed handshake")]
    Malformed(#[source] MessageError),
    /// The byte stream broke.
    #[error(transparent)]
    Frame(FrameError),
    /// Reading the socket failed.
    #[error("reading from the peer failed")]
    Read(#[source] std::io::Error),
    /// The host's first message was something else.
    #[error("expected a handshake, got a {kind}")]
    Unexpected {
        /// What it sent.
        kind: Kind,
    },
    /// The host speaks another protocol version.
    #[error("host speaks protocol version {host}, the supervisor speaks {PROTOCOL_VERSION}")]
    Version {
        /// The version it speaks.
        host: u32,
    },
    /// The secrets the host is configured to receive are not all there.
    #[error(transparent)]
    Secrets(SecretsError),
    /// The supervisor's handshake could not be sent.
    #[error("could not send handshake")]
    Send(#[source] WriteError),
    /// No handshake arrived in time.
    #[error("no handshake within {} ms", after.as_millis())]
    Timeout {
        /// The handshake timeout.
        after: Duration,
    },
}

/// Why a host's handshake secrets could not be handed over.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretsError {
    /// There is nowhere to read them from.
    #[error("{id} needs secrets in its handshake, but no secret storage is available")]
    NoStorage {
        /// The extension.
        id: String,
    },
    /// One is not set.
    #[error("secret {name} of {id} is not set: run `dscode-exthost secret set {id} {name}`")]
    NotSet {
        /// The extension.
        id: String,
        /// The secret.
        name: String,
    },
    /// One could not be read.
    #[error("could not read secret {name} of {id}")]
    Unreadable {
        /// The extension.
        id: String,
        /// The secret.
        name: String,
        /// Why.
        #[source]
        source: SecretError,
    },
}

/// Why activation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActivationError {
    /// The request failed: `activate()` threw or timed out, or the connection closed.
    #[error(transparent)]
    Request(RequestError),
    /// The answer is not the list of commands it should be.
    #[error("activation result is malformed")]
    Malformed(#[source] serde_json::Error),
}

/// Reads the host's handshake and answers with the authoritative identity and config, within
/// the handshake timeout. The transport is handed back for the connection.
pub(crate) async fn exchange(
    spec: Arc<HostSpec>,
    mut transport: Transport,
) -> (Transport, Result<(), HandshakeError>) {
    let after = spec.options.handshake_timeout;
    let outcome = tokio::time::timeout(after, handshake(&spec, &mut transport))
        .await
        .unwrap_or(Err(HandshakeError::Timeout { after }));
    (transport, outcome)
}

async fn handshake(spec: &HostSpec, transport: &mut Transport) -> Result<(), HandshakeError> {
    let first = match transport.read_message().await {
        Ok(None) => return Err(HandshakeError::Closed),
        Ok(Some(message)) => message,
        Err(ReadError::Message(err)) => return Err(HandshakeError::Malformed(err)),
        Err(ReadError::Frame(err)) => return Err(HandshakeError::Frame(err)),
        Err(ReadError::Io(err)) => return Err(HandshakeError::Read(err)),
    };
    let Message::Handshake(hello) = first else {
        return Err(HandshakeError::Unexpected { kind: first.kind() });
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(HandshakeError::Version {
            host: hello.protocol_version,
        });
    }
    if !hello.extension_id.is_empty() && hello.extension_id != spec.id {
        // The connection decides who the peer is; a host that believes otherwise is only logged.
        tracing::warn!(extension = %spec.id, claimed = %hello.extension_id, "host claimed another extension id; ignored");
    }
    let options = &spec.options;
    let secrets = handshake_secrets(spec)
        .await
        .map_err(HandshakeError::Secrets)?;
    let reply = Message::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        extension_id: spec.id.clone(),
        pid: std::process::id(),
        runtime: "dscode-exthost".into(),
        runtime_version: Some(env!("CARGO_PKG_VERSION").into()),
        config: Some(HostConfig {
            extension_path: spec.extension_path.display().to_string(),
            heartbeat_interval_ms: millis(options.heartbeat_interval).max(1),
            shutdown_grace_ms: millis(options.shutdown_grace),
            storage_path: spec.storage_path.as_ref().map(|p| p.display().to_string()),
            secrets,
        }),
    });
    transport
        .write_message(&reply)
        .await
        .map_err(HandshakeError::Send)
}

/// Reads the secrets a host is configured to receive. A missing one fails the start for good:
/// restarting cannot make it appear.
async fn handshake_secrets(spec: &HostSpec) -> Result<Option<HandshakeSecrets>, SecretsError> {
    if spec.handshake_secrets.is_empty() {
        return Ok(None);
    }
    let id = || spec.id.clone();
    let storage = spec
        .secret_storage
        .as_ref()
        .ok_or_else(|| SecretsError::NoStorage { id: id() })?;
    let mut secrets = HandshakeSecrets::default();
    for name in &spec.handshake_secrets {
        match storage.get(&spec.id, name).await {
            Ok(Some(secret)) => secrets.insert(name.clone(), secret.expose_secret()),
            Ok(None) => {
                return Err(SecretsError::NotSet {
                    id: id(),
                    name: name.clone(),
                });
            }
            Err(source) => {
                return Err(SecretsError::Unreadable {
                    id: id(),
                    name: name.clone(),
                    source,
                });
            }
        }
    }
    Ok(Some(secrets))
}

/// Asks the host to activate its extension; the commands it registered.
///
/// # Errors
/// [`ActivationError`] when the request fails or its answer is malformed.
pub(crate) async fn activate(
    connection: Peer,
    timeout: Duration,
) -> Result<Vec<String>, ActivationError> {
    #[derive(Deserialize)]
    struct Activated {
        commands: Vec<String>,
    }
    let params = crate::wire::to_raw(&serde_json::json!({})).expect("static json");
    let result: Box<RawValue> = connection
        .request_with("extension/activate", Some(params), timeout, None)
        .await
        .map_err(ActivationError::Request)?;
    serde_json::from_str::<Activated>(result.get())
        .map(|activated| activated.commands)
        .map_err(ActivationError::Malformed)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
