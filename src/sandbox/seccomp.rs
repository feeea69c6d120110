//! The seccomp filter every sandboxed host runs under.
//!
//! Default allow, with a deny list: what an extension host never needs and an attacker wants.
//! Denied calls fail with an errno rather than killing the process, so Node and libuv take their
//! fallback paths (`io_uring` and `clone3` return `ENOSYS`, which both treat as "not supported").
//!
//! Besides whole calls, the filter looks at arguments a register carries:
//! - **setuid and setgid bits**, in every call that sets a mode (`chmod` family, `open`/`openat`/
//!   `creat`, `mkdir`, `mknod`): a file the host owns (its storage, a workspace file it may
//!   change) must never become a setuid program for another local user to run;
//! - **executable memory files**: `memfd_create` only with `MFD_NOEXEC_SEAL`, so a host cannot
//!   write a program into memory and `execveat` it;
//! - **leases**: `fcntl(F_SETLEASE)` would let a host hold up the user's own editor for the
//!   lease-break time whenever it opens a file the host can read;
//! - on `x86_64`, **x32 syscall numbers** (bit 30 set), which the deny list's numbers would not
//!   match, are refused by a small hand-written program installed first.
//!
//! Paths are out of a filter's reach; what the host can see and change is the file-system
//! view's job (bind mounts and Landlock).

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

/// `(syscall, index of its mode argument)` for every call that changes the mode of a file that
/// exists: they may not make it setuid, setgid or writable by anyone (which would let any
/// local user plant a `.git` in a workspace folder).
const MODE_CHANGERS: &[(libc::c_long, u8)] = &[
    (libc::SYS_chmod, 1),
    (libc::SYS_fchmod, 1),
    (libc::SYS_fchmodat, 2),
    (libc::SYS_fchmodat2, 2),
];

/// `(syscall, index of its mode argument)` for every call that creates a file with a mode:
/// they may not make it setuid or setgid (the usual `0666` minus the umask is fine).
const MODE_SETTERS: &[(libc::c_long, u8)] = &[
    (libc::SYS_open, 2),
    (libc::SYS_openat, 3),
    (libc::SYS_creat, 1),
    (libc::SYS_mkdir, 1),
    (libc::SYS_mkdirat, 2),
    (libc::SYS_mknod, 1),
    (libc::SYS_mknodat, 2),
];

/// The mode bits no host may set: setuid and setgid.
const PRIVILEGE_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// The mode bits no host may add to a file that exists: setuid, setgid, and writable by others.
const CHANGE_BITS: [u64; 3] = [
    libc::S_ISUID as u64,
    libc::S_ISGID as u64,
    libc::S_IWOTH as u64,
];

/// `memfd_create` flags: a memory file must be sealed against exec, and may not ask for exec.
const MFD_NOEXEC_SEAL: u64 = 0x0008;
const MFD_EXEC: u64 = 0x0010;

/// `fcntl` command that takes a lease.
const F_SETLEASE: u64 = 1024;

/// The socket type bits of `socketpair`'s `type` argument (the rest are flags).
const SOCK_TYPE_MASK: u64 = 0xf;

/// The obsolete packet socket type (`libc` marks its constant deprecated; it still exists).
const SOCK_PACKET: libc::c_int = 10;

/// Calls that take their arguments from memory the filter cannot read, and that have an older
/// form it can: `ENOSYS` makes callers use the older one.
const MEMORY_ARGUMENTS: &[(&str, libc::c_long)] = &[
    // openat2's mode sits in a struct; openat carries it in a register.
    ("openat2", libc::SYS_openat2),
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
        "ptrace, process_vm_*, keyctl/add_key/request_key, unshare/setns and namespace clone flags, mount APIs, bpf, perf_event_open, userfaultfd, modules, TIOCSTI, setuid/setgid mode bits, chmod o+w, executable memfds, file leases, x32 syscalls (EPERM); io_uring, clone3, openat2 (ENOSYS)",
    );
    if !network {
        s.push_str("; socket() and datagram socketpair() (EPERM)");
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

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| e.to_string())
}

/// Rules matching when argument `arg` has any of `bits` set.
fn any_bit(arg: u8, bits: &[u64]) -> Result<Vec<SeccompRule>, String> {
    bits.iter()
        .map(|&bit| rule(vec![cond(arg, SeccompCmpOp::MaskedEq(bit), bit)?]))
        .collect()
}

/// Builds the filters: the x32 guard (`x86_64` only), the EPERM list, the ENOSYS list. `network`
/// keeps `socket()` allowed.
pub(crate) fn build(network: bool) -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut eperm: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    if !network {
        eperm.insert(libc::SYS_socket, Vec::new());
        // A connected pair is how Node talks to its children; a datagram one could `sendto`
        // any named socket in the view, so only stream and seqpacket pairs are made.
        eperm.insert(
            libc::SYS_socketpair,
            [
                libc::SOCK_DGRAM,
                libc::SOCK_RAW,
                libc::SOCK_RDM,
                SOCK_PACKET,
            ]
            .iter()
            .map(|&kind| {
                #[allow(clippy::cast_sign_loss)] // socket types are small positive numbers
                let kind = kind as u64;
                rule(vec![cond(1, SeccompCmpOp::MaskedEq(SOCK_TYPE_MASK), kind)?])
            })
            .collect::<Result<Vec<_>, String>>()?,
        );
    }
    for &(nr, arg) in MODE_CHANGERS {
        eperm.insert(nr, any_bit(arg, &CHANGE_BITS)?);
    }
    for &(nr, arg) in MODE_SETTERS {
        eperm.insert(nr, any_bit(arg, &PRIVILEGE_BITS)?);
    }
    eperm.insert(
        libc::SYS_memfd_create,
        vec![
            rule(vec![cond(1, SeccompCmpOp::MaskedEq(MFD_NOEXEC_SEAL), 0)?])?,
            rule(vec![cond(1, SeccompCmpOp::MaskedEq(MFD_EXEC), MFD_EXEC)?])?,
        ],
    );
    eperm.insert(
        libc::SYS_fcntl,
        vec![rule(vec![
            SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, F_SETLEASE)
                .map_err(|e| e.to_string())?,
        ])?],
    );
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
        .chain(MEMORY_ARGUMENTS)
        .map(|(_, nr)| (*nr, Vec::new()))
        .collect();
    let errno = |e: i32| SeccompAction::Errno(u32::try_from(e).expect("errno is positive"));
    let mut programs: Vec<BpfProgram> = x32_guard(arch).into_iter().collect();
    for (rules, code) in [(eperm, libc::EPERM), (enosys, libc::ENOSYS)] {
        let filter = SeccompFilter::new(rules, SeccompAction::Allow, errno(code), arch)
            .map_err(|e| e.to_string())?;
        programs.push(BpfProgram::try_from(filter).map_err(|e| e.to_string())?);
    }
    Ok(programs)
}

/// On `x86_64`, a program that refuses every syscall number with the x32 bit set.
///
/// x32 calls arrive with the `x86_64` audit architecture and the number or-ed with `0x4000_0000`;
/// the deny list names plain numbers, so without this an x32 `ptrace` would pass it. The kernel
/// may not offer x32 at all (then it answers `ENOSYS` itself), but the filter answers first,
/// with `EPERM`, so a test can tell the two apart.
fn x32_guard(arch: TargetArch) -> Option<BpfProgram> {
    use seccompiler::sock_filter;
    // BPF_LD | BPF_W | BPF_ABS (all but BPF_ABS are zero)
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
    const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
    const BPF_RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;
    if !matches!(arch, TargetArch::x86_64) {
        return None;
    }
    let op = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    #[allow(clippy::cast_sign_loss)] // EPERM is a small positive errno
    let refuse = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32);
    Some(vec![
        op(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
        // Another architecture: the main filters' own check decides.
        op(BPF_JMP_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        op(BPF_LD_W_ABS, 0, 0, OFFSET_NR),
        op(BPF_JMP_JGE_K, 0, 1, X32_SYSCALL_BIT),
        op(BPF_RET_K, 0, 0, refuse),
        op(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ])
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
    use crate::process::sys;

    #[test]
    fn filters_compile_for_this_machine() {
        let with_net = build(true).unwrap();
        let without = build(false).unwrap();
        let guards = usize::from(cfg!(target_arch = "x86_64"));
        assert_eq!(with_net.len(), 2 + guards);
        // The socket rule makes the no-network filter longer.
        assert!(without[guards].len() > with_net[guards].len());
    }

    /// Installs the real filter on a thread of its own (seccomp filters and `no_new_privs` are
    /// per thread) and checks each argument rule next to its allowed counterpart.
    #[test]
    fn argument_rules_refuse_what_they_name_and_nothing_beside() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let programs = build(false).unwrap();
        let outcome = std::thread::spawn(move || {
            crate::process::sys::set_no_new_privs().unwrap();
            apply(&programs).unwrap();
            let errno = |r: std::io::Result<()>| r.err().and_then(|e| e.raw_os_error());
            let chmod = |mode| {
                errno(std::fs::set_permissions(
                    &file,
                    std::fs::Permissions::from_mode(mode),
                ))
            };
            let memfd = |flags| {
                errno(
                    nix::sys::memfd::memfd_create(
                        c"probe",
                        nix::sys::memfd::MFdFlags::from_bits_retain(flags),
                    )
                    .map(drop)
                    .map_err(std::io::Error::from),
                )
            };
            let opened = std::fs::File::open(&file).unwrap();
            let fd = usize::try_from(std::os::fd::AsRawFd::as_raw_fd(&opened)).unwrap();
            let lease = errno(
                sys::raw_syscall(libc::SYS_fcntl, [fd, 1024, libc::F_RDLCK as usize]).map(drop),
            );
            let getfl = errno(
                nix::fcntl::fcntl(&opened, nix::fcntl::FcntlArg::F_GETFL)
                    .map(drop)
                    .map_err(std::io::Error::from),
            );
            let x32 = sys::raw_syscall(0x4000_0000 | libc::SYS_getpid, [0; 3])
                .err()
                .and_then(|e| e.raw_os_error());
            let native = sys::raw_syscall(libc::SYS_getpid, [0; 3]).is_ok();
            let openat2 = sys::raw_syscall(libc::SYS_openat2, [0; 3])
                .err()
                .and_then(|e| e.raw_os_error());
            (
                [chmod(0o4755), chmod(0o2755), chmod(0o757), chmod(0o755)],
                [
                    memfd(0),
                    memfd(MFD_EXEC.try_into().unwrap()),
                    memfd(MFD_NOEXEC_SEAL.try_into().unwrap()),
                ],
                (lease, getfl),
                (x32, native, openat2),
            )
        })
        .join()
        .unwrap();
        let eperm = Some(libc::EPERM);
        assert_eq!(
            outcome.0,
            [eperm, eperm, eperm, None],
            "chmod setuid, setgid, o+w, plain"
        );
        assert_eq!(
            outcome.1,
            [eperm, eperm, None],
            "memfd plain, exec, noexec-sealed"
        );
        assert_eq!(outcome.2, (eperm, None), "F_SETLEASE, F_GETFL");
        if cfg!(target_arch = "x86_64") {
            // EPERM is the filter's answer; the kernel's own (without x32) would be ENOSYS.
            assert_eq!(outcome.3.0, eperm, "x32 getpid");
        }
        assert!(outcome.3.1, "native getpid");
        assert_eq!(outcome.3.2, Some(libc::ENOSYS), "openat2");
    }
}
