//! The bytes and the envelope: frames on the stream and the typed messages inside them. No I/O
//! happens here; [`crate::rpc`] feeds it what the socket delivers.
//!
//! A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON; the JSON is an
//! envelope `{"id", "type", "payload"}` read into a [`Message`], whose variants make the per-type
//! id rules part of the type. [`MessageCodec`] does both steps. The maximum frame size
//! ([`DEFAULT_MAX_FRAME`] unless configured) is checked before any buffer grows, on both encode
//! and decode. Decoding errors come in two tiers ([`FrameError`] ends the stream,
//! [`MessageError`] drops one frame), named by [`DecodeErrorKind`] as the conformance vectors in
//! `proto-schema/vectors` name them.

mod codec;
mod de;
mod error;
mod error_object;
mod frame;
mod handshake;
mod message;
mod name;
mod payload;

pub use codec::{MessageCodec, decode_body, encode_message};
pub use error::{DecodeErrorKind, EncodeError, FrameError, MessageError};
pub use error_object::{ErrorCode, ErrorObject};
pub use frame::DEFAULT_MAX_FRAME;
pub use handshake::{Handshake, HandshakeSecrets, HostConfig};
pub use message::{Kind, MAX_REQUEST_ID, Message, PROTOCOL_VERSION, RequestId, raw_null, to_raw};
