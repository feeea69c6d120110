//! The client side of a path-based socket: connect with bounded retries, then converse.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixStream;

use super::config::PeerConfig;
use super::events::Events;
use super::handler::RequestHandler;
use super::listener::{SocketError, io_error};
use super::peer::Peer;

/// How a client retries a connection to a socket that may not exist yet.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, at least one.
    pub attempts: u32,
    /// Delay after the first failure; each later delay adds this much again (linear backoff).
    pub step: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 10,
            step: Duration::from_millis(50),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    #[must_use]
    pub fn delay_after(&self, attempt: u32) -> Duration {
        self.step * attempt
    }
}

/// Opens client connections to path-based sockets (the seed's `IpcManager`).
#[derive(Debug, Clone, Default)]
pub struct IpcManager {
    retry: RetryPolicy,
    config: PeerConfig,
}

impl IpcManager {
    /// A manager with the default retry policy and connection settings.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `retry` for later connections.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses `config` for later connections.
    #[must_use]
    pub fn with_config(mut self, config: PeerConfig) -> Self {
        self.config = config;
        self
    }

    /// Connects to `path`, retrying while the socket is missing or refuses, and starts a
    /// [`Peer`] on it. Other errors (permission denied) fail at once.
    ///
    /// # Errors
    /// [`SocketError::Unreachable`] after the last attempt, [`SocketError::Io`] for an error
    /// that retrying cannot cure.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is connected until it returns.
    pub async fn connect(
        &self,
        path: &Path,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<(Peer, Events), SocketError> {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            match UnixStream::connect(path).await {
                Ok(stream) => {
                    return Ok(Peer::new(
                        stream,
                        format!("socket {}", path.display()),
                        self.config.clone(),
                        handler,
                    ));
                }
                Err(err) if attempt < attempts && is_transient(&err) => {
                    tokio::time::sleep(self.retry.delay_after(attempt)).await;
                    attempt += 1;
                }
                Err(source) if is_transient(&source) => {
                    return Err(SocketError::Unreachable {
                        path: path.to_owned(),
                        attempts,
                        source,
                    });
                }
                Err(source) => return Err(io_error(path)(source)),
            }
        }
    }
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::super::handler::NoMethods;
    use super::*;

    #[test]
    fn linear_backoff() {
        let policy = RetryPolicy {
            attempts: 3,
            step: Duration::from_millis(10),
        };
        let delays: Vec<_> = (1..=3).map(|n| policy.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 30]);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_gives_up_after_the_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let manager = IpcManager::new().with_retry(RetryPolicy {
            attempts: 3,
            step: Duration::from_millis(5),
        });
        let err = manager
            .connect(&tmp.path().join("missing.sock"), Arc::new(NoMethods))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SocketError::Unreachable { attempts: 3, .. }),
            "{err}"
        );
    }
}
