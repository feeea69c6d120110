//! The conversation over one connection: requests in both directions, correlated by id, with
//! timeouts, cancellation and bounded queues. [`crate::wire`] is the bytes; this is who says what
//! to whom.
//!
//! A [`Peer`] is the cloneable handle callers hold; [`Events`] is what the owner reads
//! (notifications, heartbeats); a [`RequestHandler`] serves the peer's requests. A
//! [`Transport`] is a framed socket for the exchange before the conversation (the handshake).
//! [`PrivateListener`] and [`IpcManager`] are the two ends of a path-based control socket.
//!
//! Inside, one concept per module: the shared session state, our pending requests (`pending`),
//! the peer's requests in flight (`inbound`), the byte-bounded outbound queue and its writer task
//! (`outbox`), and the reader task that dispatches what arrives (`reader`).

mod config;
mod connect;
mod error;
mod events;
mod handler;
mod inbound;
mod listener;
mod outbox;
mod peer;
mod pending;
mod reader;
mod session;
mod transport;

pub use config::{DEFAULT_MAX_QUEUED_BYTES, PeerConfig};
pub use connect::{IpcManager, RetryPolicy};
pub(crate) use error::error_chain;
pub use error::{CloseReason, RequestError, RequestStage, SendError};
pub use events::{Event, Events, Heartbeats};
pub use handler::{HandlerFuture, HandlerResult, IncomingRequest, NoMethods, RequestHandler};
pub use inbound::MAX_METHOD_LEN;
pub use listener::{PrivateListener, SocketError, ensure_private_dir};
pub use peer::Peer;
pub use transport::{ReadError, Transport, WriteError};

#[cfg(test)]
mod tests;
