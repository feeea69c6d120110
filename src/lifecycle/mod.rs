//! Keeping hosts alive: the state machine, the restart policy and the per-host actor.

mod actor;
pub mod backoff;
mod error;
mod handshake;
mod launch;
mod machine;
mod manager;
mod notifications;
pub mod options;
pub mod state;
mod status;
mod stop;
mod watchdog;

pub use backoff::{Decision, RestartBudget, RestartPolicy};
pub use error::{CallError, StartError};
pub use manager::{ExtensionHostManager, HostHandle, ManagerError, command_params};
pub use options::{HostOptions, HostSpec};
pub use state::{ExtensionHostState, Reason, StateChange, StopOutcome, Trigger};
pub use status::{HostStatus, ViewChange};
