//! The effects of a stop and of a kill: the shutdown message and the signals to the host's
//! process group. When each is used, and how long each gets, is the machine's decision.

use std::time::Duration;

use super::machine::Signal;
use crate::process::signal_host;
use crate::rpc::{Peer, SendError};
use crate::wire::Message;

/// Sends the shutdown message, which gives the host `grace` to run `deactivate()` and exit.
/// Waits for room in the outbox if the host is slow to read (the machine's grace timer bounds
/// that wait too).
///
/// # Errors
/// [`SendError`] when the connection is closed or the message cannot be encoded.
pub(crate) async fn send_shutdown(connection: Peer, grace: Duration) -> Result<(), SendError> {
    let shutdown = Message::Shutdown {
        reason: Some("stop requested".into()),
        grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
    };
    connection.send(&shutdown).await
}

/// Signals every process in the host's group.
pub(crate) fn signal(group: u32, signal: Signal) {
    let number = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    signal_host(group, number);
}
