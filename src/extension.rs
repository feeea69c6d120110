//! Reading an extension folder's `package.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::permissions::PermissionRequest;

/// The parts of `package.json` the supervisor reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// The extension's name, unique per publisher.
    pub name: String,
    /// Who publishes it.
    pub publisher: String,
    /// Its version.
    pub version: String,
    /// The entry file, relative to the folder.
    pub main: String,
    /// The permissions it asks for, in dot notation (`fileSystem.read`). Asking grants nothing.
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// Why an extension folder cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// `package.json` could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `package.json` is not valid JSON or lacks a field.
    #[error("{path} is not a valid extension manifest: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: serde_json::Error,
    },
    /// A field has a value that is not allowed.
    #[error("{path}: `{field}` {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

impl Manifest {
    /// Reads and checks `<dir>/package.json`.
    ///
    /// # Errors
    /// See [`ManifestError`].
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join("package.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest: Self =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
                path: path.clone(),
                source,
            })?;
        let invalid = |field, problem: String| ManifestError::Invalid {
            path: path.clone(),
            field,
            problem,
        };
        check_id_part(&manifest.publisher).map_err(|p| invalid("publisher", p))?;
        check_id_part(&manifest.name).map_err(|p| invalid("name", p))?;
        for entry in &manifest.permissions {
            PermissionRequest::parse(entry)
                .map_err(|err| invalid("permissions", err.to_string()))?;
        }
        let main = Path::new(&manifest.main);
        if manifest.main.is_empty()
            || main.is_absolute()
            || main
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(
                "main",
                format!(
                    "must be a relative path inside the extension folder, got {:?}",
                    manifest.main
                ),
            ));
        }
        Ok(manifest)
    }

    /// The permissions it asks for, parsed (they were checked by [`Manifest::load`]).
    #[must_use]
    pub fn requested_permissions(&self) -> Vec<PermissionRequest> {
        self.permissions
            .iter()
            .filter_map(|entry| PermissionRequest::parse(entry).ok())
            .collect()
    }

    /// The extension id, `publisher.name`.
    #[must_use]
    pub fn id(&self) -> String {
        format!("{}.{}", self.publisher, self.name)
    }
}

/// Publisher and name: 1 to 64 of `[A-Za-z0-9_-]`, starting with a letter or digit, so the id
/// `publisher.name` splits unambiguously and is safe in paths and keyring keys.
fn check_id_part(part: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&part.len())
        && part
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to 64 letters, digits, `-` or `_`, starting with a letter or digit; got {part:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: &str) -> Result<Manifest, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), json).unwrap();
        Manifest::load(dir.path())
    }

    #[test]
    fn valid_manifest_gives_publisher_dot_name() {
        let m = load(r#"{"name":"hello","publisher":"dscode","version":"1.0.0","main":"extension.js","permissions":["fileSystem.read"]}"#).unwrap();
        assert_eq!(m.id(), "dscode.hello");
        assert_eq!(m.permissions, ["fileSystem.read"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let table = [
            (
                r#"{"name":"a.b","publisher":"p","version":"1","main":"m.js"}"#,
                "`name`",
            ),
            (
                r#"{"name":"a","publisher":"","version":"1","main":"m.js"}"#,
                "`publisher`",
            ),
            (
                r#"{"name":"a","publisher":"p","version":"1","main":"../m.js"}"#,
                "`main`",
            ),
            (
                r#"{"name":"a","publisher":"p","version":"1","main":"/m.js"}"#,
                "`main`",
            ),
            (
                r#"{"name":"a","publisher":"p","version":"1"}"#,
                "missing field `main`",
            ),
            (
                r#"{"name":"a","publisher":"p","version":"1","main":"m.js","permissions":["fileSystem.raed"]}"#,
                "unknown permission `fileSystem.raed`; valid permissions are",
            ),
        ];
        for (json, needle) in table {
            let err = load(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
