//! Host runtimes: the embedded Node.js host, and where the supervisor keeps its runtime files.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use crate::extension::{Manifest, ManifestError};
use crate::lifecycle::{HostOptions, HostSpec};
use crate::process::HostCommand;
use crate::rpc::{SocketError, ensure_private_dir};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

pub use embedded::{EXAMPLE_EXTENSIONS, NODE_HOST};

/// Where the supervisor's runtime directory is expected: `$RUNTIME_DIRECTORY` (systemd's
/// `RuntimeDirectory=`), else `$XDG_RUNTIME_DIR/dscode-exthost`, else `/run/dscode-exthost` for
/// root, else `/tmp/dscode-exthost-<uid>`. Nothing is created; clients look here.
#[must_use]
pub fn expected_runtime_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dirs) = std::env::var_os("RUNTIME_DIRECTORY") {
        let first = dirs.to_string_lossy().split(':').next().map(PathBuf::from);
        if let Some(dir) = first.filter(|p| p.is_absolute()) {
            return dir;
        }
    }
    if let Some(base) = absolute("XDG_RUNTIME_DIR") {
        return base.join("dscode-exthost");
    }
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/dscode-exthost");
    }
    std::env::temp_dir().join(format!("dscode-exthost-{uid}"))
}

/// The supervisor's private runtime directory ([`expected_runtime_dir`]), created with mode
/// 0700 and checked to be ours. Under `/tmp`, where anyone may create a name first, a directory
/// someone else made there does not stop the supervisor: it uses a fresh directory of its own
/// beside it (and says so; clients then need `--socket`).
///
/// # Errors
/// If no private directory can be made.
pub fn runtime_dir() -> Result<PathBuf, SocketError> {
    let dir = expected_runtime_dir();
    match ensure_private_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(SocketError::NotPrivate { .. }) if dir.starts_with(std::env::temp_dir()) => {
            let fresh = fresh_private_dir(&dir)?;
            tracing::warn!(squatted = %dir.display(), using = %fresh.display(), "the runtime directory is taken by someone else; using a fresh one (clients need --socket)");
            Ok(fresh)
        }
        Err(err) => Err(err),
    }
}

/// A new directory `<dir>-<random>`, created (never reused) with mode 0700.
fn fresh_private_dir(dir: &Path) -> Result<PathBuf, SocketError> {
    use std::hash::BuildHasher;
    use std::os::unix::fs::DirBuilderExt;
    let mut last = None;
    for attempt in 0u32..16 {
        let token =
            std::collections::hash_map::RandomState::new().hash_one((std::process::id(), attempt));
        let fresh = PathBuf::from(format!("{}-{token:016x}", dir.display()));
        match std::fs::DirBuilder::new().mode(0o700).create(&fresh) {
            Ok(()) => {
                ensure_private_dir(&fresh)?;
                return Ok(fresh);
            }
            Err(err) => last = Some(err),
        }
    }
    Err(SocketError::Io {
        path: dir.to_owned(),
        source: last.unwrap_or_else(|| io::Error::other("no fresh directory")),
    })
}

/// The supervisor's state folder, where it keeps the grants file: `$STATE_DIRECTORY` (what
/// systemd's `StateDirectory=` sets), else `$XDG_STATE_HOME/dscode-exthost`, else
/// `/var/lib/dscode-exthost` for root and `~/.local/state/dscode-exthost` for a user. `None`
/// when none of these can be told (no `HOME`).
#[must_use]
pub fn state_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dirs) = std::env::var_os("STATE_DIRECTORY") {
        // A colon-separated list when the unit names several; the first is ours.
        let first = dirs.to_string_lossy().split(':').next().map(PathBuf::from);
        if let Some(dir) = first.filter(|p| p.is_absolute()) {
            return Some(dir);
        }
    }
    if let Some(base) = absolute("XDG_STATE_HOME") {
        return Some(base.join("dscode-exthost"));
    }
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/lib/dscode-exthost"));
    }
    absolute("HOME").map(|home| home.join(".local/state/dscode-exthost"))
}

/// Writes embedded files under `dir` (which must be private), skipping files already present
/// with the same contents. Returns `dir`.
///
/// # Errors
/// On any write failure.
pub fn write_tree(dir: &Path, files: &[(&str, &str)]) -> io::Result<PathBuf> {
    for (rel, contents) in files {
        let path = dir.join(rel);
        if std::fs::read(&path).is_ok_and(|existing| existing == contents.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Write then rename, so a concurrent supervisor never runs a half-written file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(dir.to_owned())
}

/// The Node.js runtime: the `node` executable and the host script it runs.
#[derive(Debug, Clone)]
pub struct NodeRuntime {
    /// The `node` executable (looked up on `PATH` if it has no slash).
    pub node: PathBuf,
    /// `main.js` of the host.
    pub host_main: PathBuf,
}

impl NodeRuntime {
    /// Unpacks the embedded host into `<runtime_dir>/node-host-<hash>` and uses `node` to run it.
    /// The hash covers the files' contents, so versions never overwrite each other.
    ///
    /// # Errors
    /// If the runtime directory is unusable or a file cannot be written.
    pub fn embedded(node: impl Into<PathBuf>) -> io::Result<Self> {
        let base = runtime_dir().map_err(io::Error::other)?;
        Self::embedded_in(&base, node)
    }

    /// Like [`NodeRuntime::embedded`], under a directory the caller chose (it must be private).
    ///
    /// # Errors
    /// If a file cannot be written.
    pub fn embedded_in(base: &Path, node: impl Into<PathBuf>) -> io::Result<Self> {
        let mut hasher = DefaultHasher::new();
        NODE_HOST.hash(&mut hasher);
        let dir = write_tree(
            &base.join(format!("node-host-{:016x}", hasher.finish())),
            NODE_HOST,
        )?;
        Ok(Self {
            node: node.into(),
            host_main: dir.join("src/main.js"),
        })
    }

    /// A host for the extension in `extension_dir`: reads its manifest for the id.
    ///
    /// # Errors
    /// If the manifest is missing or invalid.
    pub fn host_spec(
        &self,
        extension_dir: &Path,
        options: HostOptions,
    ) -> Result<HostSpec, ManifestError> {
        let extension_dir =
            std::path::absolute(extension_dir).unwrap_or_else(|_| extension_dir.to_owned());
        let manifest = Manifest::load(&extension_dir)?;
        Ok(HostSpec {
            id: manifest.id(),
            command: HostCommand {
                program: self.node.clone(),
                args: vec![self.host_main.clone().into_os_string()],
                env: Vec::new(),
                cwd: Some(extension_dir.clone()),
            },
            extension_path: extension_dir,
            storage_path: None,
            version: manifest.version.clone(),
            permissions: manifest.requested_permissions(),
            handshake_secrets: Vec::new(),
            secret_storage: None,
            options,
            sandbox: crate::sandbox::SandboxSpec::default_profile(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_host_has_its_entry_point_and_examples() {
        assert!(
            NODE_HOST.iter().any(|(path, _)| *path == "src/main.js"),
            "{:?}",
            NODE_HOST.iter().map(|f| f.0).collect::<Vec<_>>()
        );
        assert!(
            EXAMPLE_EXTENSIONS
                .iter()
                .any(|(path, _)| *path == "hello/package.json")
        );
    }

    #[test]
    fn unpacking_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeRuntime::embedded_in(dir.path(), "node").unwrap();
        let b = NodeRuntime::embedded_in(dir.path(), "node").unwrap();
        assert_eq!(a.host_main, b.host_main);
        assert!(a.host_main.is_file());
    }
}
