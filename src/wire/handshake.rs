//! The payload of a `handshake`, the first message in each direction.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The payload of a handshake, in either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Handshake {
    /// The protocol version the sender speaks.
    pub protocol_version: u32,
    /// From the host: the id it was told (informational). From the supervisor: the authoritative id.
    pub extension_id: String,
    /// The sender's process id.
    pub pid: u32,
    /// `"node"`, `"python"`, ... for hosts; `"dscode-exthost"` for the supervisor.
    pub runtime: String,
    /// The runtime's version, if the sender knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_version: Option<String>,
    /// Sent by the supervisor only: what the host needs to run.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::de::object_field"
    )]
    pub config: Option<HostConfig>,
}

/// Settings the supervisor hands a host in its handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostConfig {
    /// The extension folder (the one with `package.json`).
    pub extension_path: String,
    /// How often the host must send a heartbeat, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// How long `deactivate()` may take on shutdown, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// A folder the extension may write to, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_path: Option<String>,
    /// Secrets the host was configured to receive, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<HandshakeSecrets>,
}

/// Secrets handed to a host in its handshake, so they never sit in its environment or argv.
/// `Debug` shows the names only, and the values are zeroized when this is dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandshakeSecrets(BTreeMap<String, String>);

impl HandshakeSecrets {
    /// Adds a secret; the caller exposes the value explicitly to put it here.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The value of `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl fmt::Debug for HandshakeSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<redacted>")))
            .finish()
    }
}

impl Drop for HandshakeSecrets {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_secrets_never_show_in_debug_output() {
        let mut secrets = HandshakeSecrets::default();
        secrets.insert("MODEL_API_KEY", "sk-very-secret");
        let config = HostConfig {
            extension_path: "/x".into(),
            heartbeat_interval_ms: 1,
            shutdown_grace_ms: 1,
            storage_path: None,
            secrets: Some(secrets),
        };
        let shown = format!("{config:?}");
        assert!(
            shown.contains("MODEL_API_KEY") && !shown.contains("sk-very-secret"),
            "{shown}"
        );
        // Positive control: the wire form carries the value, since delivering it is the point.
        assert!(
            serde_json::to_string(&config)
                .unwrap()
                .contains("sk-very-secret")
        );
    }
}
