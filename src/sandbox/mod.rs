//! OS sandboxes for extension hosts: bubblewrap namespaces, Landlock, seccomp, dropped
//! capabilities and resource limits, chosen by a [`Profile`] and reported layer by layer.
//!
//! # How a sandboxed host starts
//!
//! The supervisor never applies Landlock or seccomp to itself. For each start it:
//! 1. resolves the profile's [`Backend`] against what the machine offers ([`probe`]);
//! 2. refuses the start with [`SandboxError::Unavailable`] if a layer the profile requires
//!    cannot be enforced (never a silent downgrade);
//! 3. creates the host's cgroup where it may, and forks. In the child, before `exec`, the
//!    process (Landlock backend) unshares its namespaces; with bubblewrap it joins the cgroup
//!    there too, while the Landlock backend's host is moved into it by the supervisor as Node
//!    boots, before any extension code is loaded ([`cgroup::attach_tree`]);
//! 4. execs the **stage**: this crate's code running in a fresh, single-threaded process inside
//!    the namespaces (bubblewrap's, or its own). The stage reads a [`stage::StagePlan`] from a
//!    private channel, mounts a private `/tmp` and `/proc` where it owns a mount namespace, sets
//!    resource limits, applies Landlock, drops every capability and verifies none is left, sets
//!    `no_new_privs`, installs the seccomp filter, reports what it enforced, and execs `node`.
//!
//! With bubblewrap the command is `bwrap … -- stage`; with Landlock alone it is the stage itself.
//! The stage is the supervisor's own executable (see [`stage::run_if_requested`]), so there is
//! nothing extra to install.

pub mod bwrap;
pub mod cgroup;
pub mod probe;
pub mod profile;
mod seccomp;
pub mod stage;

pub mod prepare;
pub mod root;
pub mod view;
pub mod watch;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use prepare::{Prepared, prepare};
pub use probe::Probe;
pub use profile::{Limits, Profile, ProfileError};

/// Which mechanism isolates a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The strongest stack the machine offers: `bwrap+landlock`, else `bwrap`, else `landlock`.
    Auto,
    /// bubblewrap namespaces and an empty root with read-only binds; seccomp inside.
    Bwrap,
    /// Landlock, seccomp and the supervisor's own namespaces; no external binary.
    Landlock,
    /// bubblewrap first, then Landlock and seccomp inside it.
    #[serde(rename = "bwrap+landlock")]
    BwrapLandlock,
    /// No sandbox at all. An explicit opt-in, warned about at every start.
    None,
}

impl Backend {
    /// The name used in profiles and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Bwrap => "bwrap",
            Self::Landlock => "landlock",
            Self::BwrapLandlock => "bwrap+landlock",
            Self::None => "none",
        }
    }

    /// Every backend, for messages.
    pub const ALL: [Self; 5] = [
        Self::Auto,
        Self::Bwrap,
        Self::Landlock,
        Self::BwrapLandlock,
        Self::None,
    ];

    pub(crate) fn uses_bwrap(self) -> bool {
        matches!(self, Self::Bwrap | Self::BwrapLandlock)
    }

    pub(crate) fn uses_landlock(self) -> bool {
        matches!(self, Self::Landlock | Self::BwrapLandlock)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|b| b.name()).collect();
                format!("is {s:?}; valid backends are {}", names.join(", "))
            })
    }
}

/// One isolation layer, reported separately at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    /// User, PID, network, IPC, UTS and mount namespaces.
    Namespaces,
    /// The file-system view: only the runtime, the extension, its storage and granted paths.
    Filesystem,
    /// No sockets of its own: no TCP, UDP, DNS, abstract or pathname Unix sockets.
    Network,
    /// The seccomp filter (ptrace, `process_vm_*`, keyrings, `io_uring`, mount, bpf, ...).
    Seccomp,
    /// Every capability set empty, verified before `exec`.
    Capabilities,
    /// `no_new_privs`: setuid binaries and file capabilities grant nothing.
    NoNewPrivs,
    /// A cleared environment plus an allow-list.
    Environment,
    /// Only stdio and the IPC socket are inherited.
    Descriptors,
    /// A private, size-capped `/tmp`.
    Tmp,
    /// A memory limit that does not break V8 (no `RLIMIT_AS`).
    Memory,
    /// A limit on processes and threads.
    Processes,
    /// A CPU quota.
    Cpu,
    /// Limits on open files and file size.
    Files,
    /// No core dumps.
    CoreDumps,
}

impl Layer {
    /// Every layer, in report order.
    pub const ALL: [Self; 14] = [
        Self::Namespaces,
        Self::Filesystem,
        Self::Network,
        Self::Seccomp,
        Self::Capabilities,
        Self::NoNewPrivs,
        Self::Environment,
        Self::Descriptors,
        Self::Tmp,
        Self::Memory,
        Self::Processes,
        Self::Cpu,
        Self::Files,
        Self::CoreDumps,
    ];

    /// The name used in profiles and reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Filesystem => "filesystem",
            Self::Network => "network",
            Self::Seccomp => "seccomp",
            Self::Capabilities => "capabilities",
            Self::NoNewPrivs => "no-new-privs",
            Self::Environment => "environment",
            Self::Descriptors => "descriptors",
            Self::Tmp => "tmp",
            Self::Memory => "memory",
            Self::Processes => "processes",
            Self::Cpu => "cpu",
            Self::Files => "files",
            Self::CoreDumps => "core-dumps",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|l| l.name()).collect();
                format!(
                    "has an unknown layer {s:?}; valid layers are {}",
                    names.join(", ")
                )
            })
    }
}

/// How completely a layer is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Enforcement {
    /// Not in force at all.
    NotEnforced,
    /// In force with gaps the detail names.
    PartiallyEnforced,
    /// In force as the profile asks.
    FullyEnforced,
}

/// What one layer amounts to for one host start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The layer.
    pub layer: Layer,
    /// How completely it is enforced.
    pub enforcement: Enforcement,
    /// The mechanism, or why it is missing and what to do about it.
    pub detail: String,
    /// Whether the profile requires it.
    #[serde(default)]
    pub required: bool,
}

impl LayerReport {
    pub(crate) fn new(layer: Layer, enforcement: Enforcement, detail: impl Into<String>) -> Self {
        Self {
            layer,
            enforcement,
            detail: detail.into(),
            required: false,
        }
    }

    pub(crate) fn full(layer: Layer, detail: impl Into<String>) -> Self {
        Self::new(layer, Enforcement::FullyEnforced, detail)
    }

    pub(crate) fn partial(layer: Layer, detail: impl Into<String>) -> Self {
        Self::new(layer, Enforcement::PartiallyEnforced, detail)
    }

    pub(crate) fn missing(layer: Layer, detail: impl Into<String>) -> Self {
        Self::new(layer, Enforcement::NotEnforced, detail)
    }
}

/// What a host start enforced, layer by layer. Logged at every start and kept in the host's
/// status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcementReport {
    /// The profile's name.
    pub profile: String,
    /// The backend that ran (never `auto`).
    pub backend: Backend,
    /// One entry per layer, in [`Layer::ALL`] order.
    pub layers: Vec<LayerReport>,
}

impl EnforcementReport {
    /// The entry for `layer`.
    #[must_use]
    pub fn layer(&self, layer: Layer) -> Option<&LayerReport> {
        self.layers.iter().find(|l| l.layer == layer)
    }

    /// The weakest enforcement among all layers.
    #[must_use]
    pub fn overall(&self) -> Enforcement {
        self.layers
            .iter()
            .map(|l| l.enforcement)
            .min()
            .unwrap_or(Enforcement::NotEnforced)
    }

    /// One line per layer, for logs and the demo.
    #[must_use]
    pub fn table(&self) -> String {
        use fmt::Write as _;
        let mut out = format!(
            "sandbox: profile {} on backend {}\n",
            self.profile, self.backend
        );
        for l in &self.layers {
            let mark = match l.enforcement {
                Enforcement::FullyEnforced => "full   ",
                Enforcement::PartiallyEnforced => "partial",
                Enforcement::NotEnforced => "none   ",
            };
            let required = if l.required { " (required)" } else { "" };
            let _ = writeln!(out, "  {mark} {:<13}{}{required}", l.layer.name(), l.detail);
        }
        out
    }
}

/// Why a host was not started in a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A layer the profile requires cannot be enforced on this machine.
    #[error(
        "sandbox unavailable: the {profile} profile requires {layer} on the {backend} backend, which cannot be enforced here: {message}"
    )]
    Unavailable {
        /// The profile.
        profile: String,
        /// The backend.
        backend: Backend,
        /// The layer.
        layer: Layer,
        /// Why, and what the user can do.
        message: String,
    },
    /// The host program does not exist.
    #[error("`{0}` was not found")]
    ProgramNotFound(PathBuf),
    /// The stage executable cannot be found or opened (see [`SandboxSettings::stage`]).
    #[error("cannot use the stage executable {path}")]
    Stage {
        /// The executable (or where it was looked for).
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path of the view cannot be prepared for the host's root (a root supervisor clones and
    /// flags each one itself).
    #[error("cannot prepare {path} for the host's root")]
    View {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host's storage folder cannot be given to the host user of a root supervisor.
    #[error("cannot give the storage folder {path} to the host user {uid}")]
    Storage {
        /// The folder.
        path: PathBuf,
        /// The host user.
        uid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The stage refused for a reason that is not a layer (it says which).
    #[error("the sandbox stage failed: {0}")]
    StageFailed(String),
}

/// The range of ids a root supervisor gives its hosts: each host gets its own uid and gid (the
/// same number), fixed by its extension id, so two hosts never share a user and a host's
/// storage keeps its owner across restarts. The range must be one no account and no other
/// program of the machine uses; the default, 1,879,048,192 (`0x7000_0000`) and the 16,777,216
/// ids after it, is above the ranges distributions, systemd and container tools hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostUsers {
    /// The first id of the range.
    pub first: u32,
    /// How many ids it holds.
    pub count: u32,
}

impl Default for HostUsers {
    fn default() -> Self {
        Self {
            first: 0x7000_0000,
            count: 1 << 24,
        }
    }
}

impl HostUsers {
    /// The uid and gid of the host of `extension` (FNV-1a of the id, within the range).
    #[must_use]
    pub fn for_host(self, extension: &str) -> (u32, u32) {
        let hash = extension.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let offset = u32::try_from(hash % u64::from(self.count.max(1))).unwrap_or(0);
        let id = self.first.saturating_add(offset);
        (id, id)
    }
}

/// Where the sandbox finds its helpers.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The `bwrap` executable (looked up on `PATH` if it has no slash).
    pub bwrap: PathBuf,
    /// The stage executable: a program whose `main` calls [`stage::run_if_requested`] first.
    /// `None` uses the current executable, which must do so (`dscode-exthost` does).
    pub stage: Option<PathBuf>,
    /// The cgroup under which hosts get their own cgroups; `None` detects one.
    pub cgroup_parent: Option<PathBuf>,
    /// The supervisor's own files and folders (its config, grants, state and runtime folder):
    /// in no host's view, whatever it was granted.
    pub private: Vec<PathBuf>,
    /// The unprivileged users a root supervisor runs its hosts as: never the machine's root,
    /// and never an id another process of the machine runs as (a process of the host's user
    /// outside the sandbox would own the host's namespaces).
    pub host_users: HostUsers,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            bwrap: PathBuf::from("bwrap"),
            stage: None,
            cgroup_parent: None,
            private: Vec::new(),
            host_users: HostUsers::default(),
        }
    }
}

/// The sandbox for one host: a profile, the helpers, and what its grants let it reach.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The profile.
    pub profile: Arc<Profile>,
    /// Helpers.
    pub settings: Arc<SandboxSettings>,
    /// The host's `fileSystem` grants; [`view::compute`] turns them into what the OS shows it at
    /// each start.
    pub grants: view::FsGrants,
}

impl SandboxSpec {
    /// The built-in default profile with default settings and no workspace access.
    #[must_use]
    pub fn default_profile() -> Self {
        Self::new(Profile::default_profile(), SandboxSettings::default())
    }

    /// A profile with settings and no workspace access.
    #[must_use]
    pub fn new(profile: Profile, settings: SandboxSettings) -> Self {
        Self {
            profile: Arc::new(profile),
            settings: Arc::new(settings),
            grants: view::FsGrants::default(),
        }
    }

    /// No sandbox (backend `none`). Every start logs a warning.
    #[must_use]
    pub fn none() -> Self {
        let profile = Profile::parse("none", "built-in `none`", "backend = \"none\"")
            .expect("the none profile is valid");
        Self::new(profile, SandboxSettings::default())
    }
}
