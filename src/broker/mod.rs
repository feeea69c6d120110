//! Serving the host API: the requests an extension makes (`fs/readFile`, `clipboard/readText`,
//! `commands/execute`, ...).
//!
//! A [`Broker`] is a [`RequestHandler`](crate::rpc::RequestHandler). Each request is parsed once
//! into a typed call (private `call` module), which names the permission and scope it needs and
//! the rate-limit family it is charged to; then it passes the layers of the private `layers`
//! module in order: the caller's identity comes from the connection, never from the request;
//! the caller's rate limit for the call's family is charged; the permission and its scope (the
//! path, host or command id) are checked against what the manifest asked for and the policy
//! granted, a deny always winning; only then is the call served. Files are served by the
//! supervisor itself, through a [`PathValidator`](crate::paths::PathValidator) that opens them
//! beneath an allowed root; clipboard, messages, input boxes and terminals go to an
//! embedder-supplied [`UiHandler`]; another extension's commands go to an embedder-supplied
//! [`CommandRouter`].
//!
//! | module | holds |
//! |---|---|
//! | `service` | [`Broker`], [`ExtensionInfo`], [`RegisterError`], [`DenyAll`]: who is served, with which roots and permissions |
//! | `call` | `HostCall` and `Need`: parsing a request, and what each call needs |
//! | `layers` | identity → rate limit → permission → handler |
//! | `check` | the permission layer, including the path checks (scopes, protected names, private files, recursive deletes) |
//! | `fs`, `secrets`, `ui`, `commands`, `network` | the handlers, one per API family |
//! | `error` | `CallError`, the typed refusals and failures, and the wire error each becomes |
//!
//! [`DenyAll`] refuses everything and is what a manager uses unless told otherwise.

mod call;
mod check;
mod commands;
mod error;
mod fs;
mod layers;
mod network;
mod secrets;
mod service;
mod ui;

pub use commands::{CommandFuture, CommandRouter};
pub use service::{Broker, DenyAll, ExtensionInfo, RegisterError};
pub use ui::{ConsoleUi, UiFuture, UiHandler, UiRequest};
