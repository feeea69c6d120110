//! Host processes: spawning, containment and signals.

mod spawn;
pub(crate) use spawn::hint_for;
pub mod sys;

pub use spawn::{
    Containment, ENV_PASSTHROUGH, HostCommand, IPC_FD, Isolation, OutputTail, SpawnError,
    SpawnedHost, signal_host, spawn_host,
};
