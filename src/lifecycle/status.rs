//! What callers can read about a host: its status snapshot, and what a view change did.

use std::time::SystemTime;

use super::state::{ExtensionHostState, Reason};
use crate::process::Containment;
use crate::rpc::Peer;
use crate::sandbox::EnforcementReport;

/// A snapshot of a host, kept current by its task.
#[derive(Debug, Clone)]
pub struct HostStatus {
    /// The lifecycle state.
    pub state: ExtensionHostState,
    /// Why it is in that state.
    pub reason: Reason,
    /// When it entered that state.
    pub since: SystemTime,
    /// The host process id, while there is one.
    pub pid: Option<u32>,
    /// How the current process is contained.
    pub containment: Option<Containment>,
    /// What the sandbox enforced for the current process, layer by layer.
    pub sandbox: Option<EnforcementReport>,
    /// Restarts made since the host was created.
    pub restarts: u32,
    /// Commands the extension registered.
    pub commands: Vec<String>,
    pub(crate) connection: Option<Peer>,
}

impl HostStatus {
    /// A host that was never started.
    pub(crate) fn new() -> Self {
        Self {
            state: ExtensionHostState::Stopped,
            reason: Reason::Requested,
            since: SystemTime::now(),
            pid: None,
            containment: None,
            sandbox: None,
            restarts: 0,
            commands: Vec::new(),
            connection: None,
        }
    }
}

/// What [`crate::lifecycle::HostHandle::set_direct_view`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewChange {
    /// The host already had this view.
    Unchanged,
    /// No process has the old view (the host is stopped, crashed or about to restart): the
    /// next start uses the new one.
    Updated,
    /// A live process had the old view: it is being stopped and started again
    /// ([`Reason::ViewChanged`]). `start()` waits for the new one.
    Restarting,
}
