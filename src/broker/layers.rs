//! The path of every request, as layers in a fixed order:
//!
//! 1. **identity**: the caller is the extension the connection belongs to
//!    ([`IncomingRequest::peer`]), never anything the message says;
//! 2. **rate limit**: the request is parsed into a [`HostCall`] and charged to its
//!    [family](HostCall::family) of the caller's budget (a request that does not parse is charged
//!    too, so a flood of malformed requests is limited like any other);
//! 3. **permission**: [`check::authorize`] clears what the call [needs](HostCall::needs);
//! 4. **handler**: the cleared call is served by the module of its family.
//!
//! The handler takes a [`Cleared`] call, which only the permission layer makes, so no call can
//! be served unchecked; the order of the layers is the four lines of `chain`.
//!
//! Written as a chain of functions rather than tower `Service`s/`Layer`s: the request changes
//! type at every step, each step is a plain function of shared broker state, and backpressure is
//! already the RPC layer's (its in-flight cap answers `Busy`). Tower would add `poll_ready`
//! that always says ready, boxed and cloned services, and a dependency, and remove nothing.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::call::HostCall;
use super::check::{self, Cleared};
use super::error::CallError;
use super::service::{Inner, Served};
use super::ui::UiRequest;
use super::{commands, fs, secrets, ui};
use crate::ratelimit::ApiFamily;
use crate::rpc::{HandlerResult, IncomingRequest};

/// Serves one request through every layer.
pub(crate) async fn handle(inner: Arc<Inner>, request: IncomingRequest) -> HandlerResult {
    chain(&inner, &request).await.map_err(|error| {
        let error = error.into_error_object();
        tracing::debug!(extension = %request.peer, method = %request.method, code = %error.code, "host API call refused");
        error
    })
}

async fn chain(inner: &Inner, request: &IncomingRequest) -> Result<Box<RawValue>, CallError> {
    let served = identify(inner, &request.peer)?;
    let call = limit(inner, &served, &request.method, request.params.as_deref())?;
    let cleared = check::authorize(inner, &served, call).await?;
    serve(inner, &served, cleared).await
}

/// Layer 1: the served extension the connection belongs to.
fn identify(inner: &Inner, peer: &str) -> Result<Arc<Served>, CallError> {
    inner
        .extensions
        .read()
        .expect("extensions")
        .get(peer)
        .cloned()
        .ok_or_else(|| CallError::NotRegistered {
            extension: peer.to_owned(),
        })
}

/// Layer 2: parses the request and charges it to the caller's rate limit.
fn limit(
    inner: &Inner,
    served: &Served,
    method: &str,
    params: Option<&RawValue>,
) -> Result<HostCall, CallError> {
    let parsed = HostCall::parse(method, params);
    let family = parsed
        .as_ref()
        .map_or_else(|_| ApiFamily::of_method(method), HostCall::family);
    inner.limiter.check(&served.info.id, family)?;
    parsed
}

/// Layer 4: serves a cleared call.
async fn serve(
    inner: &Inner,
    served: &Served,
    cleared: Cleared,
) -> Result<Box<RawValue>, CallError> {
    let id = served.info.id.as_str();
    let ui = |request| ui::serve(&*inner.ui, id, request);
    let storage = inner.secrets.get();
    let (call, path) = cleared.into_parts();
    match (call, path) {
        (HostCall::ReadFile { encoding, .. }, Some(target)) => {
            fs::read(target, encoding, inner.max_file).await
        }
        (HostCall::WriteFile { content, .. }, Some(target)) => fs::write(target, content).await,
        (HostCall::ReadDirectory { .. }, Some(target)) => fs::read_directory(target).await,
        (HostCall::Stat { .. }, Some(target)) => fs::stat(target).await,
        (HostCall::Delete { recursive, .. }, Some(target)) => fs::delete(target, recursive).await,
        (
            call @ (HostCall::ReadFile { .. }
            | HostCall::WriteFile { .. }
            | HostCall::ReadDirectory { .. }
            | HostCall::Stat { .. }
            | HostCall::Delete { .. }),
            None,
        ) => Err(CallError::Unchecked {
            method: call.method(),
        }),
        (HostCall::SecretGet { key }, _) => secrets::get(storage, id, &key).await,
        (HostCall::SecretStore { key, value }, _) => secrets::store(storage, id, &key, value).await,
        (HostCall::SecretDelete { key }, _) => secrets::delete(storage, id, &key).await,
        (HostCall::ClipboardRead, _) => ui(UiRequest::ClipboardRead).await,
        (HostCall::ClipboardWrite { text }, _) => ui(UiRequest::ClipboardWrite { text }).await,
        (HostCall::ShowMessage { level, message }, _) => {
            ui(UiRequest::ShowMessage {
                level: level.as_str().to_owned(),
                message,
            })
            .await
        }
        (
            HostCall::InputBox {
                title,
                prompt,
                placeholder,
                value,
                password,
            },
            _,
        ) => {
            ui(UiRequest::InputBox {
                title,
                prompt,
                placeholder,
                value,
                password,
            })
            .await
        }
        (HostCall::TerminalCreate { name }, _) => ui(UiRequest::TerminalCreate { name }).await,
        (HostCall::TerminalWrite { id: terminal, text }, _) => {
            ui(UiRequest::TerminalWrite { id: terminal, text }).await
        }
        (HostCall::Fetch { target, method, .. }, _) => {
            // The host only: a URL can carry credentials.
            tracing::debug!(
                extension = id,
                method,
                host = target.host,
                "network request allowed but not carried"
            );
            Err(CallError::NetworkUnsupported)
        }
        (HostCall::ExecuteCommand { command, args }, _) => {
            commands::execute(inner.commands.get().map(|r| &**r), id, &command, args).await
        }
    }
}
