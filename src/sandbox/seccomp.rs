//! The seccomp filter every sandboxed host runs under.
//!
//! Default allow, with a deny list: what an extension host never needs and an attacker wants.
//! Denied calls fail with an errno rather than killing the process, so Node and libuv take their
//! fallback paths (`io_uring` and `clone3` return `ENOSYS`, which both treat as "not supported").

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Calls that fail with `EPERM`, unconditionally.
const DENIED: &[(&str, libc::c_long)] = &[
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("vhangup", libc::SYS_vhangup),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

/// Calls that fail with `ENOSYS`: callers fall back to an older interface.
const UNSUPPORTED: &[(&str, libc::c_long)] = &[
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    // clone3 passes its flags in memory, out of a filter's reach; glibc then uses clone, whose
    // namespace flags the filter can see.
    ("clone3", libc::SYS_clone3),
];

/// Terminal ioctls that inject input or talk to the console.
#[allow(clippy::unnecessary_cast)] // the request type differs between C libraries
const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

/// `clone` flags that create namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

/// What the filter blocks, for the report.
pub(crate) fn summary(network: bool) -> String {
    let mut s = String::from(
        "ptrace, process_vm_*, keyctl/add_key/request_key, unshare/setns and namespace clone flags, mount APIs, bpf, perf_event_open, userfaultfd, modules, TIOCSTI (EPERM); io_uring, clone3 (ENOSYS)",
    );
    if !network {
        s.push_str("; socket() (EPERM)");
    }
    s
}

fn arch() -> Result<TargetArch, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        "riscv64" => Ok(TargetArch::riscv64),
        other => Err(format!("no seccomp filter for architecture {other}")),
    }
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).map_err(|e| e.to_string())
}

/// Builds the two filters (EPERM list, ENOSYS list). `network` keeps `socket()` allowed.
pub(crate) fn build(network: bool) -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    if !network {
        eperm.insert(libc::SYS_socket, Vec::new());
    }
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|&request| {
            let c = SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)
                .map_err(|e| e.to_string())?;
            SeccompRule::new(vec![c]).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    eperm.insert(libc::SYS_ioctl, ioctl_rules);
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(flag), flag)?])
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    eperm.insert(libc::SYS_clone, clone_rules);
    let enosys: BTreeMap<i64, Vec<SeccompRule>> = UNSUPPORTED
        .iter()
        .map(|(_, nr)| (*nr, Vec::new()))
        .collect();
    let errno = |e: i32| SeccompAction::Errno(u32::try_from(e).expect("errno is positive"));
    [(eperm, libc::EPERM), (enosys, libc::ENOSYS)]
        .into_iter()
        .map(|(rules, code)| {
            let filter = SeccompFilter::new(rules, SeccompAction::Allow, errno(code), arch)
                .map_err(|e| e.to_string())?;
            BpfProgram::try_from(filter).map_err(|e| e.to_string())
        })
        .collect()
}

/// Installs the filters on the calling thread (and everything it execs or forks afterwards).
/// Sets `no_new_privs` first, as the kernel requires without `CAP_SYS_ADMIN`.
pub(crate) fn apply(programs: &[BpfProgram]) -> Result<(), String> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_for_this_machine() {
        let with_net = build(true).unwrap();
        let without = build(false).unwrap();
        assert_eq!(with_net.len(), 2);
        // The socket rule makes the no-network filter longer.
        assert!(without[0].len() > with_net[0].len());
    }
}
