//! The bubblewrap command line for a host: bubblewrap makes the namespaces, the stage inside
//! builds the host's root from the same view as every other backend.
//!
//! bubblewrap's own root for the stage is a tmpfs holding a fresh `/proc`, an
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
    /// The names at the top of the supervisor's root, linked to their place under
    /// [`HOST_ROOT`] so the stage's loader and libraries are found (see [`top_level`]).
    pub links: Vec<String>,
}

/// The entries of `/` the stage may need to run (its loader, libraries, `/etc/ld.so.cache`):
/// every name but the ones bubblewrap provides itself.
#[must_use]
pub fn top_level() -> Vec<String> {
    let provided = ["proc", "dev", "tmp", "run", "sys"];
    let mut names: Vec<String> = std::fs::read_dir("/")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !provided.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The arguments after `bwrap`, ending with `-- <stage> <stage arg>`.
#[must_use]
pub fn args(namespaces: &Namespaces) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-user",
        // No `--disable-userns`: bubblewrap implements it with a second user namespace nested in
        // the first, which would not own the mount namespace the stage builds the root in. The
        // seccomp filter refuses new namespaces to the host instead.
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        // The stage is PID 1 (and reaps, and forwards signals), so every process in the sandbox
        // carries its filters: bubblewrap's own reaper would run unfiltered and dumpable, and a
        // host could rewrite it through /proc/1/mem.
        "--as-pid-1",
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
        // No `--dev`: its devpts makes bubblewrap run the sandbox in a second, nested user
        // namespace, which would not own the mount namespace. The stage binds the few device
        // files a host gets from the supervisor's /dev.
        "--dir",
        "/tmp",
        // `--dev-bind`: the stage takes the host's five device files from here, and a plain bind
        // is `nodev`.
        "--dev-bind",
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
    for name in &namespaces.links {
        args.push("--symlink".into());
        args.push(format!("{HOST_ROOT}/{name}").into());
        args.push(format!("/{name}").into());
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
            links: vec!["usr".into()],
        })
        .into_iter()
        .map(|a| a.into_string().unwrap())
        .collect();
        assert_eq!(args[0], "--unshare-net");
        assert_eq!(args[args.len() - 2], "/opt/stage");
        let bind = args.iter().position(|a| a == "--dev-bind").unwrap();
        assert_eq!(&args[bind + 1..bind + 3], ["/", HOST_ROOT]);
        let link = args.iter().position(|a| a == "--symlink").unwrap();
        assert_eq!(&args[link + 1..link + 3], ["/run/host/usr", "/usr"]);
    }
}
