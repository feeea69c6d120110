//! What serves the requests a peer sends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::wire::{ErrorCode, ErrorObject, RequestId};

/// An incoming request, as handed to a [`RequestHandler`].
#[derive(Debug)]
pub struct IncomingRequest {
    /// Who sent it: fixed when the connection was made, never read from a message.
    pub peer: Arc<str>,
    /// The peer's id for the request.
    pub id: RequestId,
    /// What to run.
    pub method: String,
    /// Arguments, unparsed.
    pub params: Option<Box<RawValue>>,
    /// Fires when the peer cancels the request or the connection closes.
    pub cancel: CancellationToken,
}

/// What a handler returns: the result, or the error to answer with.
pub type HandlerResult = Result<Box<RawValue>, ErrorObject>;

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerResult> + Send>>;

/// Serves requests that the peer sends.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request. Runs in a task of its own, beside the other requests in flight.
    ///
    /// # Cancel safety
    /// The future is dropped when the peer cancels the request or the connection closes, so it
    /// must leave nothing half done when dropped at an `.await`.
    fn handle(&self, request: IncomingRequest) -> HandlerFuture;
}

/// A handler that knows no methods: every request is answered `MethodNotFound`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMethods;

impl RequestHandler for NoMethods {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let message = format!("no handler for method `{}`", request.method);
        Box::pin(async move { Err(ErrorObject::new(ErrorCode::MethodNotFound, message)) })
    }
}
