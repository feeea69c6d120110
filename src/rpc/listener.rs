//! The private control socket: a listener in a directory only its user can reach (mode 0700,
//! checked), admitting only peers that run as the same user (`SO_PEERCRED`).
//!
//! Host connections never use it (they inherit a socketpair); the control socket of
//! `dscode-exthost run` does.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

/// Why a private socket could not be set up or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The socket path has no parent directory.
    #[error("socket path {path} has no parent directory")]
    NoParent {
        /// The socket path.
        path: PathBuf,
    },
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
    #[error("cannot use socket {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Every connection attempt failed.
    #[error(
        "could not connect to {path} after {attempts} attempts (is `dscode-exthost run` running with this --socket?)"
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

pub(super) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` with mode 0700 if it is missing, and checks that an existing one is ours and
/// private. A symlink in its place is refused (it is checked with `lstat`).
///
/// # Errors
/// [`SocketError::NotPrivate`] if someone else could reach sockets inside it,
/// [`SocketError::Io`] if it cannot be created or inspected.
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
/// the same user. The socket file is removed when it is dropped.
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
            .ok_or_else(|| SocketError::NoParent {
                path: path.to_owned(),
            })?;
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

    /// Waits for the next peer running as our user, and returns it with its uid. Peers of
    /// other users are logged and dropped.
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn the_socket_is_0600_and_removed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("private/control.sock");
        let listener = PrivateListener::bind(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Positive control: our own user gets in.
        let client = UnixStream::connect(&path).await.unwrap();
        let (_server, uid) = listener.accept().await.unwrap();
        assert_eq!(uid, nix::unistd::geteuid().as_raw());
        drop(client);
        drop(listener);
        assert!(!path.exists());
    }
}
