//! The bubblewrap command line for a host.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What the host sees through bubblewrap.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Bound read-only at the same path.
    pub read: Vec<PathBuf>,
    /// Bound read-write at the same path.
    pub write: Vec<PathBuf>,
    /// Size of the private `/tmp` in bytes.
    pub tmp_bytes: u64,
    /// Keep the network namespace of the supervisor (profiles with `network.allow`).
    pub share_network: bool,
}

/// The arguments after `bwrap`, ending with `-- <stage> <stage arg>`.
#[must_use]
pub fn args(view: &View, stage: &Path, cwd: &Path) -> Vec<OsString> {
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
        "--proc",
        "/proc",
        // bubblewrap covers /proc/irq and /proc/bus but not always /proc/sys; read-only
        // sysctls are all a host needs.
        "--ro-bind",
        "/proc/sys",
        "/proc/sys",
        "--dev",
        "/dev",
        "--remount-ro",
        "/dev",
        "--size",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    if !view.share_network {
        args.insert(0, "--unshare-net".into());
    }
    args.push(view.tmp_bytes.to_string().into());
    args.extend(["--tmpfs", "/tmp"].map(OsString::from));
    // Parents before children, so a bind inside another bind lands on top of it; writable
    // before read-only at the same depth does not matter, since paths are distinct.
    let mut binds: Vec<(&Path, bool)> = view
        .read
        .iter()
        .map(|p| (p.as_path(), false))
        .chain(view.write.iter().map(|p| (p.as_path(), true)))
        .chain(std::iter::once((stage, false)))
        .collect();
    binds.sort_by_key(|(p, _)| p.components().count());
    binds.dedup_by_key(|(p, _)| p.to_path_buf());
    for (path, writable) in binds {
        args.push(if writable { "--bind" } else { "--ro-bind" }.into());
        args.push(path.into());
        args.push(path.into());
    }
    args.push("--chdir".into());
    args.push(cwd.into());
    args.push("--".into());
    args.push(stage.into());
    args.push(super::stage::STAGE_ARG.into());
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_bound_before_children_and_tmp_comes_first() {
        let view = View {
            read: vec!["/tmp/x/ext".into(), "/usr".into()],
            write: vec!["/tmp/x/ext/storage".into()],
            tmp_bytes: 1 << 20,
            share_network: false,
        };
        let args: Vec<String> = args(&view, Path::new("/opt/stage"), Path::new("/tmp/x/ext"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let at = |s: &str| args.iter().position(|a| a == s).unwrap();
        assert!(at("/tmp") < at("/usr"));
        assert!(at("/tmp/x/ext") < at("/tmp/x/ext/storage"));
        assert_eq!(args[0], "--unshare-net");
        assert_eq!(args[args.len() - 2], "/opt/stage");
    }
}
