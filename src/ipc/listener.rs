//! Path-based sockets: a listener in a private directory that admits only its own user, and a
//! client that connects with bounded retries.
//!
//! Host connections never use these (they inherit a socketpair); the control socket of
//! `dscode-exthost run` does.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};

use super::connection::{Connection, ConnectionConfig, Events, RequestHandler};

/// Why a private socket could not be set up or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The socket path has no parent directory.
    #[error("socket path {0} has no parent directory")]
    NoParent(PathBuf),
    /// The directory exists but others could reach into it.
    #[error(
        "socket directory {path} is not private (owner uid {owner}, mode {mode:o}); it must be owned by uid {uid} with mode 0700: remove it or choose another --socket path"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// Our uid.
        uid: u32,
    },
    /// Creating, binding or connecting failed.
    #[error("socket {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Every connection attempt failed.
    #[error(
        "could not connect to {path} after {attempts} attempts ({source}); is `dscode-exthost run` running with this --socket?"
    )]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` with mode 0700 if it is missing, and checks that an existing one is ours and
/// private. A symlink in its place is refused (it is checked with `lstat`).
///
/// # Errors
/// [`SocketError::NotPrivate`] if someone else could reach sockets inside it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), SocketError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error(dir))?;
        }
        Err(err) => return Err(io_error(dir)(err)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_error(dir))?;
    let uid = nix::unistd::geteuid().as_raw();
    let mode = meta.permissions().mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != uid || mode & 0o077 != 0 {
        return Err(SocketError::NotPrivate {
            path: dir.to_owned(),
            owner: meta.uid(),
            mode,
            uid,
        });
    }
    Ok(())
}

/// A listener whose socket lives in a private directory and that admits only peers running as
/// the same user.
#[derive(Debug)]
pub struct PrivateListener {
    listener: UnixListener,
    path: PathBuf,
}

impl PrivateListener {
    /// Binds `path`, creating its directory with mode 0700. A stale socket file from an earlier
    /// run is replaced only if nothing answers on it.
    ///
    /// # Errors
    /// See [`SocketError`]; binding fails with `AddrInUse` if another supervisor is listening.
    pub async fn bind(path: &Path) -> Result<Self, SocketError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| SocketError::NoParent(path.to_owned()))?;
        ensure_private_dir(dir)?;
        if std::fs::symlink_metadata(path).is_ok() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(io_error(path)(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another supervisor is listening here",
                )));
            }
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
        let listener = UnixListener::bind(path).map_err(io_error(path))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error(path))?;
        Ok(Self {
            listener,
            path: path.to_owned(),
        })
    }

    /// Where the socket is.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next peer running as our user. Peers of other users are logged and dropped.
    ///
    /// # Errors
    /// Only for errors of the listening socket itself.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn accept(&self) -> io::Result<(UnixStream, u32)> {
        let uid = nix::unistd::geteuid().as_raw();
        loop {
            let (stream, _) = self.listener.accept().await?;
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == uid => return Ok((stream, cred.uid())),
                Ok(cred) => {
                    tracing::warn!(peer_uid = cred.uid(), peer_pid = ?cred.pid(), "refused a control connection from another user");
                }
                Err(err) => {
                    tracing::warn!(error = %err, "refused a control connection whose credentials could not be read");
                }
            }
        }
    }
}

impl Drop for PrivateListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

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
    config: ConnectionConfig,
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
    pub fn with_config(mut self, config: ConnectionConfig) -> Self {
        self.config = config;
        self
    }

    /// Connects to `path`, retrying while the socket is missing or refuses, and starts a
    /// [`Connection`] on it. Other errors (permission denied) fail at once.
    ///
    /// # Errors
    /// [`SocketError::Unreachable`] after the last attempt.
    pub async fn connect(
        &self,
        path: &Path,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<(Connection, Events), SocketError> {
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            match UnixStream::connect(path).await {
                Ok(stream) => {
                    return Ok(Connection::new(
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

    #[test]
    fn private_dir_is_created_0700_and_a_shared_one_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            ensure_private_dir(&dir),
            Err(SocketError::NotPrivate { .. })
        ));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            ensure_private_dir(&link),
            Err(SocketError::NotPrivate { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn connect_gives_up_after_the_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let manager = IpcManager::new().with_retry(RetryPolicy {
            attempts: 3,
            step: Duration::from_millis(5),
        });
        let err = manager
            .connect(
                &tmp.path().join("missing.sock"),
                Arc::new(super::super::connection::NoMethods),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, SocketError::Unreachable { attempts: 3, .. }),
            "{err}"
        );
    }
}
