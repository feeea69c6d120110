//! Sandbox profiles: deny-by-default TOML files saying which backend to use, which layers must be
//! enforced, what the host may see of the file system, and its resource limits.
//!
//! The schema is documented in `sandbox-profiles/README.md`; the built-in profiles `default` and
//! `strict` are the files in that folder, embedded at build time.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Backend, Layer};

/// The built-in profiles, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "default",
        include_str!("../../sandbox-profiles/default.toml"),
    ),
    ("strict", include_str!("../../sandbox-profiles/strict.toml")),
];

/// A parsed and validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name (its file stem, or the built-in name).
    pub name: String,
    /// Which backend runs the host.
    pub backend: Backend,
    /// Layers whose failure refuses the start; every other layer is best effort.
    pub required: Vec<Layer>,
    /// Read-only paths the host runtime needs (`node`, its libraries). Missing ones are skipped.
    pub runtime: Vec<PathBuf>,
    /// More read-only paths.
    pub read: Vec<PathBuf>,
    /// More writable paths.
    pub write: Vec<PathBuf>,
    /// Names that stay read-only inside writable folders unless a grant writes them out
    /// (default: [`super::view::PROTECTED`]).
    pub protected: Vec<String>,
    /// Size of the private `/tmp`, in bytes.
    pub tmp_bytes: u64,
    /// Whether the host may open sockets itself. Profiles shipped here say no: network access
    /// goes through the broker, host by host.
    pub network: bool,
    /// Resource limits.
    pub limits: Limits,
    /// Environment variables passed through from the supervisor, on top of the host's own.
    pub env: Vec<String>,
}

/// Resource limits for one host (its whole process tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes (resident, not address space: V8 reserves far more than it uses).
    pub memory_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
    /// CPU, in percent of one core.
    pub cpu_percent: u64,
    /// Open file descriptors per process.
    pub open_files: u64,
    /// Largest file a process may write, in bytes.
    pub file_size_bytes: u64,
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// Neither a built-in name nor a readable file.
    #[error(
        "sandbox profile `{name}` is neither a built-in profile ({builtins}) nor a readable file"
    )]
    NotFound {
        /// What was asked for.
        name: String,
        /// The built-in names.
        builtins: String,
        /// Why the file could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key.
    #[error("sandbox profile {origin}: {message}")]
    Syntax {
        /// The file or built-in name.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("sandbox profile {origin}: `{key}` {problem}")]
    Invalid {
        /// The file or built-in name.
        origin: String,
        /// The offending key.
        key: String,
        /// What is wrong and what is valid.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    backend: String,
    #[serde(default)]
    layers: RawLayers,
    #[serde(default)]
    filesystem: RawFilesystem,
    #[serde(default)]
    network: RawNetwork,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    environment: RawEnvironment,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLayers {
    #[serde(default)]
    required: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    #[serde(default)]
    runtime: Vec<PathBuf>,
    #[serde(default)]
    read: Vec<PathBuf>,
    #[serde(default)]
    write: Vec<PathBuf>,
    #[serde(default)]
    protected: Option<Vec<String>>,
    #[serde(default = "default_tmp_mb")]
    tmp_size_mb: u64,
}

impl Default for RawFilesystem {
    fn default() -> Self {
        Self {
            runtime: Vec::new(),
            read: Vec::new(),
            write: Vec::new(),
            protected: None,
            tmp_size_mb: default_tmp_mb(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    #[serde(default)]
    allow: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_memory_mb")]
    memory_mb: u64,
    #[serde(default = "default_pids")]
    pids: u64,
    #[serde(default = "default_cpu")]
    cpu_percent: u64,
    #[serde(default = "default_open_files")]
    open_files: u64,
    #[serde(default = "default_file_size_mb")]
    file_size_mb: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            memory_mb: default_memory_mb(),
            pids: default_pids(),
            cpu_percent: default_cpu(),
            open_files: default_open_files(),
            file_size_mb: default_file_size_mb(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    #[serde(default)]
    pass: Vec<String>,
}

fn default_tmp_mb() -> u64 {
    64
}
fn default_memory_mb() -> u64 {
    1024
}
fn default_pids() -> u64 {
    128
}
fn default_cpu() -> u64 {
    100
}
fn default_open_files() -> u64 {
    1024
}
fn default_file_size_mb() -> u64 {
    256
}

/// Variables a profile may never pass through: they change what the host runs or loads.
const NEVER_PASSED: &[&str] = &[
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PYTHONPATH",
    "PYTHONSTARTUP",
];

const MIB: u64 = 1024 * 1024;

impl Profile {
    /// A built-in profile (`default`, `strict`) or a profile file.
    ///
    /// # Errors
    /// [`ProfileError`] naming the file and the key at fault.
    pub fn load(name_or_path: &str) -> Result<Self, ProfileError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(name, _)| *name == name_or_path) {
            return Self::parse(name, &format!("built-in `{name}`"), text);
        }
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::NotFound {
            name: name_or_path.to_owned(),
            builtins: BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            source,
        })?;
        let name = path
            .file_stem()
            .map_or_else(|| name_or_path.to_owned(), |s| s.to_string_lossy().into());
        Self::parse(&name, &path.display().to_string(), &text)
    }

    /// The built-in default profile.
    #[must_use]
    pub fn default_profile() -> Self {
        Self::load("default").expect("the built-in default profile is valid")
    }

    /// Parses profile text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`ProfileError::Syntax`] or [`ProfileError::Invalid`].
    #[expect(clippy::too_many_lines, reason = "one check per key, in file order")]
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Self, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|err| ProfileError::Syntax {
            origin: origin.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: &str, problem: String| ProfileError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            problem,
        };
        let backend = raw
            .backend
            .parse::<Backend>()
            .map_err(|problem| invalid("backend", problem))?;
        let required = raw
            .layers
            .required
            .iter()
            .map(|layer| {
                layer
                    .parse::<Layer>()
                    .map_err(|problem| invalid("layers.required", problem))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (key, paths) in [
            ("filesystem.runtime", &raw.filesystem.runtime),
            ("filesystem.read", &raw.filesystem.read),
            ("filesystem.write", &raw.filesystem.write),
        ] {
            for path in paths {
                check_path(path).map_err(|problem| invalid(key, problem))?;
            }
        }
        for path in &raw.filesystem.write {
            if path == Path::new("/") {
                return Err(invalid("filesystem.write", "must not contain `/`".into()));
            }
        }
        for name in &raw.environment.pass {
            if NEVER_PASSED.contains(&name.as_str()) {
                return Err(invalid(
                    "environment.pass",
                    format!("must not contain `{name}`: it changes what the host loads"),
                ));
            }
            if name.is_empty() || name.contains('=') {
                return Err(invalid(
                    "environment.pass",
                    format!("has an invalid name {name:?}"),
                ));
            }
        }
        let protected = match raw.filesystem.protected {
            None => super::view::PROTECTED
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Some(names) => {
                for name in &names {
                    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                        return Err(invalid(
                            "filesystem.protected",
                            format!(
                                "has {name:?}; entries are file or folder names such as \".git\""
                            ),
                        ));
                    }
                }
                names
            }
        };
        let limits = &raw.limits;
        for (key, value, min) in [
            ("limits.memory_mb", limits.memory_mb, 32),
            ("limits.pids", limits.pids, 16),
            ("limits.cpu_percent", limits.cpu_percent, 1),
            ("limits.open_files", limits.open_files, 64),
            ("limits.file_size_mb", limits.file_size_mb, 1),
            ("filesystem.tmp_size_mb", raw.filesystem.tmp_size_mb, 1),
        ] {
            if value < min {
                return Err(invalid(key, format!("is {value}; the minimum is {min}")));
            }
        }
        Ok(Self {
            name: name.to_owned(),
            backend,
            required,
            runtime: raw.filesystem.runtime,
            read: raw.filesystem.read,
            write: raw.filesystem.write,
            protected,
            tmp_bytes: raw.filesystem.tmp_size_mb.saturating_mul(MIB),
            network: raw.network.allow,
            limits: Limits {
                memory_bytes: limits.memory_mb.saturating_mul(MIB),
                pids: limits.pids,
                cpu_percent: limits.cpu_percent,
                open_files: limits.open_files,
                file_size_bytes: limits.file_size_mb.saturating_mul(MIB),
            },
            env: raw.environment.pass,
        })
    }

    /// Whether `layer` must be enforced for a start to go ahead.
    #[must_use]
    pub fn requires(&self, layer: Layer) -> bool {
        self.required.contains(&layer)
    }
}

fn check_path(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err(format!(
            "has a relative path {}: paths must be absolute",
            path.display()
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("has a path with `..`: {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_are_valid_and_deny_by_default() {
        for (name, _) in BUILTIN {
            let profile = Profile::load(name).unwrap();
            assert!(
                !profile.network,
                "{name} must not allow direct network access"
            );
            assert!(
                profile.write.is_empty(),
                "{name} must not add writable paths"
            );
            assert!(profile.requires(Layer::Filesystem), "{name}");
            assert!(profile.requires(Layer::Seccomp), "{name}");
        }
        assert_eq!(Profile::default_profile().backend, Backend::Landlock);
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        let err = Profile::parse(
            "t",
            "t.toml",
            "backend = \"landlock\"\n[limits]\nmemroy_mb = 5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("t.toml") && err.contains("memroy_mb"), "{err}");
        let err = Profile::parse("t", "t.toml", "backend = \"docker\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`backend`") && err.contains("bwrap+landlock"),
            "{err}"
        );
        let err = Profile::parse(
            "t",
            "t.toml",
            "backend = \"none\"\n[layers]\nrequired = [\"magic\"]",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("layers.required") && err.contains("seccomp"),
            "{err}"
        );
    }

    #[test]
    fn bad_paths_limits_and_env_are_rejected() {
        for (text, key) in [
            ("[filesystem]\nread = [\"relative\"]", "filesystem.read"),
            (
                "[filesystem]\nwrite = [\"/tmp/../etc\"]",
                "filesystem.write",
            ),
            ("[filesystem]\nwrite = [\"/\"]", "filesystem.write"),
            ("[limits]\nmemory_mb = 1", "limits.memory_mb"),
            ("[limits]\npids = 0", "limits.pids"),
            ("[environment]\npass = [\"LD_PRELOAD\"]", "environment.pass"),
        ] {
            let text = format!("backend = \"landlock\"\n{text}\n");
            let err = Profile::parse("t", "t.toml", &text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        // The positive control: the same keys with valid values parse.
        let ok = "backend = \"landlock\"\n[filesystem]\nread = [\"/opt/x\"]\nwrite = [\"/srv/x\"]\n[limits]\nmemory_mb = 64\npids = 32\n[environment]\npass = [\"HTTP_PROXY\"]\n";
        let profile = Profile::parse("t", "t.toml", ok).unwrap();
        assert_eq!(profile.limits.memory_bytes, 64 * MIB);
        assert_eq!(profile.env, ["HTTP_PROXY"]);
    }

    #[test]
    fn missing_profile_lists_the_builtins() {
        let err = Profile::load("/nonexistent/profile.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("default, strict"), "{err}");
    }
}
