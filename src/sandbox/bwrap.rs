//! The bubblewrap command line for a host: bubblewrap makes the namespaces, the stage inside
//! builds the host's root from the same view as every other backend.
//!
//! bubblewrap's own root for the stage is a tmpfs holding a fresh `/proc`, a minimal `/dev`, an
//! empty `/tmp` (where the stage assembles the host's root) and the supervisor's tree read-write
//! at [`HOST_ROOT`], the stage's only way to reach the paths of the view when the supervisor is
//! a user (a root supervisor sends them as mount trees instead). The stage keeps
//! `CAP_SYS_ADMIN` in bubblewrap's user namespace to build the root, then `pivot_root`s into it,
//! detaches everything else, and drops every capability before the host runs.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where the stage finds the supervisor's tree inside bubblewrap.
pub const HOST_ROOT: &str = "/run/host";

/// What bubblewrap is asked for.
#[derive(Debug, Clone)]
pub struct Namespaces {
    /// Keep the network namespace of the supervisor (profiles with `network.allow`).
    pub share_network: bool,
    /// The stage executable.
    pub stage: PathBuf,
}

/// The arguments after `bwrap`, ending with `-- <stage> <stage arg>`.
#[must_use]
pub fn args(namespaces: &Namespaces) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-user",
        "--disable-userns",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        // For the stage alone: it builds the host's root, then drops both.
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--cap-add",
        "CAP_SETPCAP",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--dir",
        "/tmp",
        "--bind",
        "/",
        HOST_ROOT,
        "--chdir",
        "/",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    if !namespaces.share_network {
        args.insert(0, "--unshare-net".into());
    }
    args.push("--".into());
    args.push(namespaces.stage.clone().into());
    args.push(super::stage::STAGE_ARG.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_runs_last_with_the_host_tree_at_its_place() {
        let args: Vec<String> = args(&Namespaces {
            share_network: false,
            stage: "/opt/stage".into(),
        })
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        assert_eq!(args[0], "--unshare-net");
        assert_eq!(args[args.len() - 2], "/opt/stage");
        let bind = args.iter().position(|a| a == "--bind").unwrap();
        assert_eq!(&args[bind + 1..bind + 3], ["/", HOST_ROOT]);
    }
}
