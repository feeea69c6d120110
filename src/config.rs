//! The supervisor's TOML config file (`dscode-exthost run --config FILE`).
//!
//! ```toml
//! [supervisor]
//! control_socket = "/run/user/1000/dscode-exthost/control.sock"  # default: in the runtime dir
//! node = "node"                                                 # the Node.js executable
//! workspace = ["~/src/project"]                                 # folders that can be granted
//! grants = "grants.toml"                                        # default: in the state folder
//!
//! [rate_limit]              # host API requests per extension
//! per_second = 100
//! burst = 200
//!
//! [defaults]                # HostOptions for every host; all optional
//! heartbeat_interval_ms = 1000
//! heartbeat_timeout_ms = 10000
//! [defaults.restart]
//! backoff_initial_ms = 1000
//! max_restarts = 3
//! window_s = 300
//!
//! [[extension]]             # a Node.js extension folder
//! path = "examples/extensions/hello"
//!
//! [[host]]                  # any program that speaks the protocol
//! id = "local.agent-factory"
//! command = ["python3", "examples/agent-factory/host.py"]
//! ```
//!
//! Relative paths are relative to the config file. Unknown keys are errors that name the file,
//! the line and the key, so a typo never silently drops a setting.

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lifecycle::{HostOptions, HostSpec};
use crate::permissions::PermissionRequest;
use crate::process::HostCommand;
use crate::runtime::NodeRuntime;

/// A parsed config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Supervisor-wide settings.
    #[serde(default)]
    pub supervisor: SupervisorSection,
    /// Options applied to every host.
    #[serde(default)]
    pub defaults: HostOptions,
    /// Node.js extensions to run.
    #[serde(default, rename = "extension")]
    pub extensions: Vec<ExtensionEntry>,
    /// Other protocol-speaking programs to run.
    #[serde(default, rename = "host")]
    pub hosts: Vec<HostEntry>,
    /// Request rate limits of the host API.
    #[serde(default)]
    pub rate_limit: crate::ratelimit::RateLimitConfig,
    /// The sandbox hosts run in.
    #[serde(default)]
    pub sandbox: SandboxSection,
    #[serde(skip)]
    base: PathBuf,
    #[serde(skip)]
    path: Option<PathBuf>,
    /// The state folder ([`crate::runtime::state_dir`] unless set with
    /// [`Config::with_state_dir`]).
    #[serde(skip)]
    state: Option<PathBuf>,
    #[serde(skip)]
    profiles: BTreeMap<String, crate::sandbox::SandboxSpec>,
}

/// `[sandbox]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// The profile for every host: `default`, `strict`, or a profile file (relative to the
    /// config file). Default `default`.
    pub profile: Option<String>,
    /// The `bwrap` executable; default `bwrap` on `PATH`.
    pub bwrap: Option<PathBuf>,
    /// The stage executable; default the supervisor's own.
    pub stage: Option<PathBuf>,
    /// A delegated cgroup to create host cgroups under; default detected.
    pub cgroup_parent: Option<PathBuf>,
}

/// `[supervisor]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSection {
    /// Where the control socket goes; default `<runtime dir>/control.sock`.
    pub control_socket: Option<PathBuf>,
    /// The Node.js executable; default `node` on `PATH`.
    pub node: Option<PathBuf>,
    /// Workspace folders extensions may be granted access to.
    #[serde(default)]
    pub workspace: Vec<PathBuf>,
    /// The grants file; default `grants.toml` in the state folder
    /// ([`crate::runtime::state_dir`]), where no workspace grant can reach it.
    pub grants: Option<PathBuf>,
    /// Control clients connected at once (default 64); one more is closed as it arrives.
    pub control_max_clients: Option<usize>,
    /// Seconds a control client may stay connected with no request in flight (default 300).
    pub control_idle_timeout_s: Option<u64>,
}

/// `[[extension]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionEntry {
    /// The extension folder (with `package.json`).
    pub path: PathBuf,
    /// A sandbox profile for this extension instead of `[sandbox] profile`.
    pub sandbox: Option<String>,
}

/// `[[host]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// The host's id, `publisher.name`.
    pub id: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Working directory; default the config file's directory.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The host's version, which grants are recorded against.
    #[serde(default = "default_version")]
    pub version: String,
    /// The permissions it asks for, as in an extension manifest.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Names of its secrets (set with `dscode-exthost secret set ID NAME`) to hand it in the
    /// handshake, such as a model API key; they never go into its environment.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// A sandbox profile for this host instead of `[sandbox] profile`.
    pub sandbox: Option<String>,
}

fn default_version() -> String {
    "0.0.0".to_owned()
}

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and key.
        message: String,
    },
    /// A value is not acceptable.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        crate::permissions::policy::single_link(path).map_err(read)?;
        let text = std::fs::read_to_string(path).map_err(read)?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        // Absolute, so that paths resolved against it mean the same whatever the working
        // directory later is.
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.base = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_owned());
        config.path = Some(path.to_owned());
        config.state = crate::runtime::state_dir();
        config.load_profiles().map_err(|err| ConfigError::Invalid {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        if let Err(err) = crate::supervisor::check_workspace(&config.workspace()) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: format!("[supervisor] workspace: {err}"),
            });
        }
        for host in &config.hosts {
            if host.command.is_empty() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!("[[host]] {} has an empty `command`", host.id),
                });
            }
            for entry in &host.permissions {
                PermissionRequest::parse(entry).map_err(|err| ConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!("[[host]] {}: {err}", host.id),
                })?;
            }
        }
        Ok(config)
    }

    /// Parses config text; relative paths will resolve against the current directory.
    ///
    /// # Errors
    /// The parser's message, which names the line, column and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|err| err.to_string().trim_end().to_owned())
    }

    /// Loads every sandbox profile the file names, so a bad one fails the load.
    fn load_profiles(&mut self) -> Result<(), crate::sandbox::ProfileError> {
        let settings = std::sync::Arc::new(crate::sandbox::SandboxSettings {
            bwrap: self.sandbox.bwrap.clone().unwrap_or_else(|| "bwrap".into()),
            stage: self.sandbox.stage.as_deref().map(|p| self.resolve(p)),
            cgroup_parent: self
                .sandbox
                .cgroup_parent
                .as_deref()
                .map(|p| self.resolve(p)),
            private: self.private_paths(),
            ..crate::sandbox::SandboxSettings::default()
        });
        let names: Vec<String> = std::iter::once(self.sandbox.profile.clone())
            .chain(self.extensions.iter().map(|e| e.sandbox.clone()))
            .chain(self.hosts.iter().map(|h| h.sandbox.clone()))
            .map(|name| name.unwrap_or_else(|| "default".into()))
            .collect();
        for name in names {
            if self.profiles.contains_key(&name) {
                continue;
            }
            let builtin = crate::sandbox::profile::BUILTIN
                .iter()
                .any(|(n, _)| *n == name);
            let location = if builtin {
                name.clone()
            } else {
                self.resolve(Path::new(&name)).display().to_string()
            };
            let profile = crate::sandbox::Profile::load(&location)?;
            let spec = crate::sandbox::SandboxSpec {
                profile: std::sync::Arc::new(profile),
                settings: std::sync::Arc::clone(&settings),
                grants: crate::sandbox::view::FsGrants::default(),
            };
            self.profiles.insert(name, spec);
        }
        Ok(())
    }

    /// The sandbox for a host whose entry names `profile` (or none).
    #[must_use]
    pub fn sandbox_for(&self, profile: Option<&str>) -> crate::sandbox::SandboxSpec {
        let name = profile
            .or(self.sandbox.profile.as_deref())
            .unwrap_or("default");
        self.profiles
            .get(name)
            .cloned()
            .unwrap_or_else(crate::sandbox::SandboxSpec::default_profile)
    }

    /// `path` as the config means it: `~/...` in the user's home, relative to the config file's
    /// folder, or absolute.
    fn resolve(&self, path: &Path) -> PathBuf {
        if let Ok(rest) = path.strip_prefix("~")
            && let Some(home) = std::env::var_os("HOME").filter(|h| Path::new(h).is_absolute())
        {
            return Path::new(&home).join(rest);
        }
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    /// The Node.js executable to use.
    #[must_use]
    pub fn node(&self) -> PathBuf {
        self.supervisor
            .node
            .clone()
            .unwrap_or_else(|| "node".into())
    }

    /// The workspace folders, resolved.
    #[must_use]
    pub fn workspace(&self) -> Vec<PathBuf> {
        self.supervisor
            .workspace
            .iter()
            .map(|p| self.resolve(p))
            .collect()
    }

    /// The supervisor's own files, which no host's view may hold and the broker never serves:
    /// this config, the grants file, the control socket. (Files, not their folders: the state
    /// and runtime folders also hold what hosts run, such as the unpacked node-host.)
    #[must_use]
    pub fn private_paths(&self) -> Vec<PathBuf> {
        let mut private: Vec<PathBuf> = self.path.iter().cloned().collect();
        private.push(self.grants_path());
        private.extend(self.control_socket());
        private
    }

    /// The grants file: `[supervisor] grants`, else `grants.toml` in the state folder (beside
    /// the config file when there is no state folder to be found).
    #[must_use]
    pub fn grants_path(&self) -> PathBuf {
        match (&self.supervisor.grants, &self.state) {
            (Some(path), _) => self.resolve(path),
            (None, Some(state)) => state.join("grants.toml"),
            (None, None) => self.legacy_grants_path(),
        }
    }

    /// The same config with `dir` as its state folder (for an embedder that keeps its own).
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state = Some(dir.into());
        self
    }

    /// Where the grants file was by default before it moved to the state folder.
    fn legacy_grants_path(&self) -> PathBuf {
        self.resolve(Path::new("grants.toml"))
    }

    /// Moves a `grants.toml` beside the config file (the old default) to the state folder, once:
    /// inside a workspace a host granted write could edit it and grant itself anything. Returns
    /// what was moved, to log.
    ///
    /// # Errors
    /// If the state folder cannot be made or the file cannot be moved.
    pub fn migrate_grants(&self) -> std::io::Result<Option<(PathBuf, PathBuf)>> {
        if self.supervisor.grants.is_some() {
            return Ok(None);
        }
        let (old, new) = (self.legacy_grants_path(), self.grants_path());
        if old == new || !old.is_file() || new.exists() {
            return Ok(None);
        }
        if let Some(dir) = new.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        crate::permissions::policy::single_link(&old)?;
        // A rename within one file system; else a copy that lands whole, then the removal.
        if std::fs::rename(&old, &new).is_err() {
            crate::permissions::policy::replace_file(&new, &std::fs::read(&old)?)?;
            std::fs::remove_file(&old)?;
        }
        Ok(Some((old, new)))
    }

    /// What control clients may make the supervisor hold.
    #[must_use]
    pub fn control_limits(&self) -> crate::control::ControlLimits {
        let mut limits = crate::control::ControlLimits::default();
        if let Some(max) = self.supervisor.control_max_clients {
            limits.max_clients = max.max(1);
        }
        if let Some(idle) = self.supervisor.control_idle_timeout_s {
            limits.idle_timeout = std::time::Duration::from_secs(idle.max(1));
        }
        limits
    }

    /// The control socket path, if the file sets one.
    #[must_use]
    pub fn control_socket(&self) -> Option<PathBuf> {
        self.supervisor
            .control_socket
            .as_deref()
            .map(|p| self.resolve(p))
    }

    /// The hosts this config describes.
    ///
    /// # Errors
    /// If an extension's manifest cannot be read.
    pub fn host_specs(
        &self,
        node: &NodeRuntime,
    ) -> Result<Vec<HostSpec>, crate::extension::ManifestError> {
        let mut specs = Vec::new();
        for entry in &self.extensions {
            let mut spec = node.host_spec(&self.resolve(&entry.path), self.defaults.clone())?;
            spec.sandbox = self.sandbox_for(entry.sandbox.as_deref());
            specs.push(spec);
        }
        for host in &self.hosts {
            let (program, args) = host
                .command
                .split_first()
                .expect("checked non-empty in load");
            let cwd = host
                .cwd
                .as_deref()
                .map_or_else(|| self.base.clone(), |p| self.resolve(p));
            let cwd = std::path::absolute(&cwd).unwrap_or(cwd);
            specs.push(HostSpec {
                id: host.id.clone(),
                command: HostCommand {
                    program: program.into(),
                    args: args.iter().map(Into::into).collect(),
                    env: host.env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
                    cwd: Some(cwd.clone()),
                },
                extension_path: cwd,
                storage_path: None,
                version: host.version.clone(),
                permissions: host
                    .permissions
                    .iter()
                    .filter_map(|e| PermissionRequest::parse(e).ok())
                    .collect(),
                handshake_secrets: host.secrets.clone(),
                secret_storage: None,
                options: self.defaults.clone(),
                sandbox: self.sandbox_for(host.sandbox.as_deref()),
            });
        }
        Ok(specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let config = Config::parse(
            r#"
            [supervisor]
            node = "/usr/bin/node"
            [defaults]
            heartbeat_interval_ms = 250
            [defaults.restart]
            max_restarts = 5
            [[extension]]
            path = "ext/a"
            [[host]]
            id = "local.py"
            command = ["python3", "host.py"]
            env = { MODE = "test" }
            "#,
        )
        .unwrap();
        assert_eq!(config.defaults.heartbeat_interval.as_millis(), 250);
        assert_eq!(config.defaults.restart.max_restarts, 5);
        assert_eq!(
            config.defaults.restart.initial_backoff.as_millis(),
            1000,
            "unset fields keep defaults"
        );
        assert_eq!(config.hosts[0].env["MODE"], "test");
    }

    #[test]
    fn unknown_keys_name_the_line_and_the_key() {
        let err =
            Config::parse("[defaults]\nheartbeat_interval_ms = 5\nheartbaet_timeout_ms = 9\n")
                .unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("heartbaet_timeout_ms"),
            "{err}"
        );
        let err = Config::parse("[[extension]]\npath = \"a\"\nwatch = true\n").unwrap_err();
        assert!(err.contains("line 3") && err.contains("watch"), "{err}");
    }

    #[test]
    fn the_grants_file_defaults_to_the_state_folder_and_an_old_one_moves_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("project/exthost.toml");
        std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        std::fs::write(&config_path, "").unwrap();
        let legacy = dir.path().join("project/grants.toml");
        std::fs::write(&legacy, "[extensions]\n").unwrap();
        let state = dir.path().join("state");
        let config = Config::load(&config_path).unwrap().with_state_dir(&state);
        assert_eq!(config.grants_path(), state.join("grants.toml"));
        assert!(config.private_paths().contains(&state.join("grants.toml")));
        let moved = config.migrate_grants().unwrap();
        assert_eq!(moved, Some((legacy.clone(), state.join("grants.toml"))));
        assert!(!legacy.exists());
        assert_eq!(
            std::fs::read_to_string(state.join("grants.toml")).unwrap(),
            "[extensions]\n"
        );
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the state folder is the supervisor's alone");
        // Once moved, nothing moves again; a file named in the config stays where it is.
        std::fs::write(&legacy, "[extensions]\n").unwrap();
        assert_eq!(config.migrate_grants().unwrap(), None);
        std::fs::write(&config_path, "[supervisor]\ngrants = \"g.toml\"\n").unwrap();
        let named = Config::load(&config_path).unwrap().with_state_dir(&state);
        assert_eq!(named.grants_path(), dir.path().join("project/g.toml"));
        assert_eq!(named.migrate_grants().unwrap(), None);
    }

    #[test]
    fn paths_resolve_against_the_config_folder_and_home() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exthost.toml");
        std::fs::write(
            &path,
            "[supervisor]\nworkspace = [\"~/src/project\", \"rel\", \"/abs\"]\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            config.workspace(),
            [
                home.join("src/project"),
                folder.join("rel"),
                PathBuf::from("/abs")
            ]
        );
    }

    #[test]
    fn load_names_the_file_and_rejects_empty_commands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exthost.toml");
        std::fs::write(&path, "[[host]]\nid = \"a.b\"\ncommand = []\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("exthost.toml") && err.contains("empty `command`"),
            "{err}"
        );
        std::fs::write(
            &path,
            "[[host]]\nid = \"a.b\"\ncommand = [\"x\"]\npermissions = [\"network.htp\"]\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("a.b") && err.contains("unknown permission `network.htp`"),
            "{err}"
        );
        std::fs::write(&path, "[supervisr]\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("exthost.toml") && err.contains("supervisr") && err.contains("line 1"),
            "{err}"
        );
    }
}
