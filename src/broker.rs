//! Serving the host API: the requests an extension makes (`fs/readFile`, `secrets/get`, ...).
//!
//! A broker is a [`RequestHandler`]: it gets the caller's identity from the connection
//! ([`IncomingRequest::peer`]), never from the request. [`DenyAll`] is the default and refuses
//! everything, so an extension gets nothing unless an embedder installs a broker that grants it.

use crate::ipc::message::{ErrorCode, ErrorObject};
use crate::ipc::{HandlerFuture, IncomingRequest, RequestHandler};

/// Refuses every host API call with `PermissionDenied`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DenyAll;

impl RequestHandler for DenyAll {
    fn handle(&self, request: IncomingRequest) -> HandlerFuture {
        let message = format!(
            "extension {} may not call `{}`: no permissions are granted to it",
            request.peer, request.method
        );
        tracing::info!(extension = %request.peer, method = %request.method, "denied a host API call");
        Box::pin(async move { Err(ErrorObject::new(ErrorCode::PermissionDenied, message)) })
    }
}
