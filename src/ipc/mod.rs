//! The wire protocol: framing, typed messages, connections and sockets.

pub mod codec;
pub mod connection;
pub mod listener;
pub mod message;

pub use codec::{DEFAULT_MAX_FRAME, EncodeError, FrameError, MessageCodec, MessageError};
pub use connection::{
    CloseReason, Connection, ConnectionConfig, Event, Events, HandlerFuture, HandlerResult,
    IncomingRequest, NoMethods, RequestError, RequestHandler, SendError,
};
pub use listener::{IpcManager, PrivateListener, RetryPolicy, SocketError};
pub use message::{
    ErrorCode, ErrorObject, Handshake, HostConfig, Message, PROTOCOL_VERSION, RequestId,
};
