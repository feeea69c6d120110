//! `commands/execute`: an extension running a command another extension registered, through a
//! [`CommandRouter`] the embedder provides.
//!
//! The broker checks the caller's `commands.execute` scope (a command id or a prefix such as
//! `git.*`) before the router sees the call; which host registered the command, and whether it
//! is running, is the router's to know. Without a router every such call answers `Unsupported`.

use std::future::Future;
use std::pin::Pin;

use serde_json::value::RawValue;

use super::error::CallError;
use crate::wire::ErrorObject;

/// A boxed command future: the command's result, or the error to answer with.
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<Box<RawValue>, ErrorObject>> + Send>>;

/// Runs a command for an extension that asked with `commands/execute`, in the host of the
/// extension that registered it. Only called after the broker has checked the caller's
/// `commands.execute` permission for that command id.
pub trait CommandRouter: Send + Sync + 'static {
    /// Runs `command` with `args` (a JSON array, passed on unparsed) for `caller`. Answer
    /// `CommandNotFound` when no running host registered it, and pass the target host's own
    /// errors (`ExtensionError`, ...) on as they came.
    ///
    /// # Cancel safety
    /// The future is dropped when the caller cancels its request or its connection closes.
    fn execute(&self, caller: &str, command: &str, args: Box<RawValue>) -> CommandFuture;
}

/// Hands a checked `commands/execute` to the router.
pub(crate) async fn execute(
    router: Option<&dyn CommandRouter>,
    caller: &str,
    command: &str,
    args: Box<RawValue>,
) -> Result<Box<RawValue>, CallError> {
    let router = router.ok_or(CallError::NoCommandRouter)?;
    tracing::debug!(
        extension = caller,
        command,
        "running another extension's command"
    );
    router
        .execute(caller, command, args)
        .await
        .map_err(CallError::Remote)
}
