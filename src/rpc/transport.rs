//! A framed socket before the conversation starts: whole messages, one at a time.

use std::io;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{Decoder, FramedRead};

use crate::wire::{EncodeError, FrameError, Message, MessageCodec, MessageError};

/// A connected socket that reads and writes whole messages, for the exchange that precedes a
/// conversation (the handshake). [`Peer::start`](super::Peer::start) takes it over, with any bytes
/// of later frames it has already read.
#[derive(Debug)]
pub struct Transport {
    pub(super) frames: FramedRead<OwnedReadHalf, StreamCodec>,
    pub(super) write: OwnedWriteHalf,
}

/// Why [`Transport::read_message`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The byte stream broke; nothing more can be read.
    #[error("byte stream from the peer broke")]
    Frame(#[source] FrameError),
    /// Reading the socket failed.
    #[error("reading from the peer failed")]
    Io(#[source] io::Error),
    /// A frame arrived whole but holds no valid message; it was dropped and the stream is still
    /// usable.
    #[error("peer sent a malformed message")]
    Message(#[source] MessageError),
}

/// Why [`Transport::write_message`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The message could not be encoded; nothing was written.
    #[error("message could not be encoded")]
    Encode(#[from] EncodeError),
    /// Writing the socket failed.
    #[error("writing to the peer failed")]
    Io(#[source] io::Error),
}

impl Transport {
    /// Frames `stream`, refusing frames above `max_frame` bytes in either direction.
    ///
    /// # Panics
    /// If `max_frame` does not fit the 4-byte length header.
    #[must_use]
    pub fn new(stream: UnixStream, max_frame: usize) -> Self {
        let (read, write) = stream.into_split();
        Self {
            frames: FramedRead::new(read, StreamCodec(MessageCodec::new(max_frame))),
            write,
        }
    }

    /// The next message; `Ok(None)` once the peer has closed its end between frames.
    ///
    /// # Errors
    /// See [`ReadError`].
    ///
    /// # Cancel safety
    /// Cancel safe: bytes read before the future is dropped stay buffered for the next call.
    pub async fn read_message(&mut self) -> Result<Option<Message>, ReadError> {
        match self.frames.next().await {
            None => Ok(None),
            Some(Ok(Ok(message))) => Ok(Some(message)),
            Some(Ok(Err(err))) => Err(ReadError::Message(err)),
            Some(Err(StreamError::Frame(err))) => Err(ReadError::Frame(err)),
            Some(Err(StreamError::Io(err))) => Err(ReadError::Io(err)),
        }
    }

    /// Writes one message.
    ///
    /// # Errors
    /// See [`WriteError`].
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped call may have written part of the frame.
    pub async fn write_message(&mut self, message: &Message) -> Result<(), WriteError> {
        let mut buf = BytesMut::new();
        self.frames.decoder().0.encode(message, &mut buf)?;
        self.write.write_all(&buf).await.map_err(WriteError::Io)
    }
}

/// tokio-util's framing over the sans-IO [`MessageCodec`].
#[derive(Debug)]
pub(super) struct StreamCodec(pub(super) MessageCodec);

/// A failure that ends the inbound stream.
#[derive(Debug)]
pub(super) enum StreamError {
    Frame(FrameError),
    Io(io::Error),
}

impl From<io::Error> for StreamError {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

impl Decoder for StreamCodec {
    type Item = Result<Message, MessageError>;
    type Error = StreamError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, StreamError> {
        self.0.decode(src).map_err(StreamError::Frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, StreamError> {
        self.0.decode_eof(src).map_err(StreamError::Frame)
    }
}
