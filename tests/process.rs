//! Properties of a spawned host process that the lifecycle relies on.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{Env, example, fast, gone};
use dscode_extension_host::process::{IPC_FD, Isolation, signal_host, spawn_host};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outlives_the_thread_that_spawned_it() {
    let env = Env::new();
    let command = env.spec(&example("hello"), fast()).command;
    let runtime = tokio::runtime::Handle::current();
    // A thread that spawns the host and then exits, as a retired runtime thread would.
    let mut host = std::thread::spawn(move || {
        let _runtime = runtime.enter();
        spawn_host(&command, "dscode.hello", &Isolation::default()).unwrap()
    })
    .join()
    .unwrap();
    // A parent-death signal tied to that thread fires as it exits; give it time to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host died with the thread that spawned it"
    );
    signal_host(host.group, libc::SIGKILL);
    host.child.wait().await.unwrap();
    assert!(gone(host.pid));
}

#[tokio::test]
async fn only_stdio_and_the_ipc_socket_are_inherited() {
    let env = Env::new();
    let secret = env.dir.path().join("supervisor-only.txt");
    std::fs::write(&secret, "not for hosts").unwrap();
    // Opened without O_CLOEXEC, as a careless library in the embedding process might.
    let path = std::ffi::CString::new(secret.to_str().unwrap()).unwrap();
    let raw = nix::fcntl::open(
        path.as_c_str(),
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    // SAFETY-free: nix returns an owned fd.
    let leaked: OwnedFd = raw;
    let command = env.spec(&example("hello"), fast()).command;
    let mut host = spawn_host(&command, "dscode.hello", &Isolation::default()).unwrap();
    let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{}/fd", host.pid))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    // Positive control: the IPC socket is there, at the number the host was told.
    assert!(
        fds.iter()
            .any(|(fd, target)| *fd == IPC_FD.to_string() && target.starts_with("socket:")),
        "{fds:?}"
    );
    assert!(
        !fds.iter()
            .any(|(_, target)| target.contains("supervisor-only")),
        "a supervisor fd leaked into the host: {fds:?}"
    );
    drop(leaked);
    signal_host(host.group, libc::SIGKILL);
    host.child.wait().await.unwrap();
}
