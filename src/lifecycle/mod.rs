//! Keeping hosts alive: the state machine, the restart policy and the per-host task.

pub mod backoff;
mod job;
mod manager;
pub mod options;
pub mod state;

pub use backoff::{Decision, RestartBudget, RestartPolicy};
pub use job::{HostStatus, StartError, ViewChange};
pub use manager::{ExtensionHostManager, HostHandle, ManagerError, command_params};
pub use options::{HostOptions, HostSpec};
pub use state::{ExtensionHostState, Reason, StateChange, StopOutcome, Trigger};
