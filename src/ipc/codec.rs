//! Frames and messages on the byte stream.
//!
//! A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Framing is tokio-util's
//! [`LengthDelimitedCodec`], configured with the maximum frame size so that an oversize length is
//! refused before any buffer grows for it. [`MessageCodec`] adds the typed layer.
//!
//! Errors come in two tiers. A [`FrameError`] (oversize length, stream cut mid-frame, I/O) means the
//! byte stream can no longer be trusted and ends the connection. A [`MessageError`] (bad UTF-8, bad
//! JSON, a broken envelope) leaves the stream in sync, so the decoder yields it as an *item*,
//! `Ok(Some(Err(..)))`, and the connection drops that one frame and goes on.

use std::io::{self, Write};

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use super::message::{Message, RequestId};

/// The default maximum frame body: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

const HEADER_LEN: usize = 4;

/// A failure that leaves the byte stream unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a frame larger than allowed; its body was not read.
    #[error("peer announced a {len}-byte frame, above the {max}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes of it were received)")]
    Truncated {
        /// How many bytes of the incomplete frame had arrived.
        buffered: usize,
    },
    /// Reading or writing the socket failed.
    #[error("socket i/o failed")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// The conformance-vector name of this error (`proto-schema/PROTOCOL.md`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "frame_too_large",
            Self::Truncated { .. } => "truncated",
            Self::Io(_) => "io",
        }
    }
}

/// A frame that arrived intact but does not hold a valid message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The body is not UTF-8.
    #[error("frame body is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The body is not JSON.
    #[error("frame body is not JSON")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but breaks the envelope rules.
    #[error("frame body is not a valid message")]
    InvalidMessage {
        /// What is wrong, from the parser.
        #[source]
        source: serde_json::Error,
        /// The request id, when the body is a request whose id could still be read, so the
        /// receiver can answer it with an error instead of leaving the sender waiting.
        request_id: Option<RequestId>,
    },
}

impl MessageError {
    /// The conformance-vector name of this error (`proto-schema/PROTOCOL.md`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidMessage { .. } => "invalid_message",
        }
    }

    /// The id of the request this frame tried to be, if one could be read.
    #[must_use]
    pub fn request_id(&self) -> Option<RequestId> {
        match self {
            Self::InvalidMessage { request_id, .. } => *request_id,
            _ => None,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded message would exceed the maximum frame size.
    #[error("message is larger than the {max}-byte frame limit")]
    TooLarge {
        /// The configured maximum.
        max: usize,
    },
    /// A value could not be represented as JSON.
    #[error("message could not be serialized")]
    Serialize(#[source] serde_json::Error),
    /// Required by the `Encoder` trait; encoding into memory never produces it.
    #[error("i/o error while encoding")]
    Io(#[from] io::Error),
}

/// Encodes [`Message`]s and decodes frames into them.
#[derive(Debug)]
pub struct MessageCodec {
    frames: LengthDelimitedCodec,
    max_frame: usize,
    /// True once the inner codec has consumed a header and waits for that frame's body.
    in_body: bool,
}

impl MessageCodec {
    /// A codec with the given maximum frame body size, in bytes.
    ///
    /// # Panics
    /// If `max_frame` does not fit the 4-byte length header.
    #[must_use]
    pub fn new(max_frame: usize) -> Self {
        assert!(
            u32::try_from(max_frame).is_ok(),
            "max_frame must fit in a u32 length header"
        );
        let frames = LengthDelimitedCodec::builder()
            .big_endian()
            .length_field_length(HEADER_LEN)
            .max_frame_length(max_frame)
            .new_codec();
        Self {
            frames,
            max_frame,
            in_body: false,
        }
    }

    /// The maximum frame body size, in bytes.
    #[must_use]
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Checks the next frame's announced length without consuming anything, so an oversize frame is
    /// reported with its length and nothing is buffered for it.
    fn check_header(&self, src: &BytesMut) -> Result<(), FrameError> {
        if self.in_body {
            return Ok(());
        }
        if let Some(header) = src.get(..HEADER_LEN) {
            let len = u64::from(u32::from_be_bytes(header.try_into().expect("4 bytes")));
            if len > self.max_frame as u64 {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
        }
        Ok(())
    }
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Parses one frame body.
///
/// # Errors
/// Returns the [`MessageError`] tier matching the conformance vectors.
pub fn decode_body(body: &[u8]) -> Result<Message, MessageError> {
    serde_json::from_slice(body).map_err(|source| classify(body, source))
}

/// Sorts a parse failure into the vector categories. Runs only on the error path, so valid
/// frames pay for one pass of parsing and nothing else. `serde_json`'s own error category cannot
/// tell "not JSON" from "JSON of the wrong shape" (a response with two keys reads as a syntax
/// error to it), so the body is parsed once more as a plain value.
fn classify(body: &[u8], source: serde_json::Error) -> MessageError {
    if let Err(err) = std::str::from_utf8(body) {
        return MessageError::InvalidUtf8 {
            offset: err.valid_up_to(),
        };
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Ok(_) => MessageError::InvalidMessage {
            request_id: probe_request_id(body),
            source,
        },
        Err(_) => MessageError::InvalidJson(source),
    }
}

/// Reads `id` from a body that claims to be a request, ignoring everything else.
fn probe_request_id(body: &[u8]) -> Option<RequestId> {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: Option<u64>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    let id = probe
        .id
        .filter(|id| *id <= super::message::MAX_REQUEST_ID)?;
    (probe.kind.as_deref() == Some("request")).then_some(id)
}

impl Decoder for MessageCodec {
    type Item = Result<Message, MessageError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        self.check_header(src)?;
        let had_header = self.in_body || src.len() >= HEADER_LEN;
        if let Some(body) = self.frames.decode(src)? {
            self.in_body = false;
            Ok(Some(decode_body(&body)))
        } else {
            // The inner codec consumes a complete header even when the body is still missing.
            self.in_body = had_header;
            Ok(None)
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() && !self.in_body => Ok(None),
            None => {
                let buffered = src.len() + if self.in_body { HEADER_LEN } else { 0 };
                src.advance(src.len());
                self.in_body = false;
                Err(FrameError::Truncated { buffered })
            }
        }
    }
}

/// Caps how much a serializer may write, so an oversize message fails once it passes the limit
/// instead of first growing a buffer to its full size.
struct LimitedWriter<'a> {
    dst: &'a mut BytesMut,
    remaining: usize,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.remaining {
            return Err(io::Error::other("frame limit reached"));
        }
        self.remaining -= buf.len();
        self.dst.put_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends one framed message to `dst`.
///
/// Serializes straight into the output buffer behind a reserved header instead of going through
/// `LengthDelimitedCodec::encode`, which would need the body in a separate buffer and copy it.
///
/// # Errors
/// [`EncodeError::TooLarge`] if the body would exceed `max_frame`; `dst` is left as it was.
pub fn encode_message(
    message: &Message,
    max_frame: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = LimitedWriter {
        dst,
        remaining: max_frame,
    };
    let result = serde_json::to_writer(&mut writer, message);
    let written = max_frame - writer.remaining;
    if let Err(err) = result {
        dst.truncate(start);
        return Err(if err.is_io() {
            EncodeError::TooLarge { max: max_frame }
        } else {
            EncodeError::Serialize(err)
        });
    }
    let len = u32::try_from(written).expect("max_frame fits in u32");
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

impl Encoder<&Message> for MessageCodec {
    type Error = EncodeError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_message(message, self.max_frame, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::message::to_raw;

    fn frame(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(body.len()).unwrap());
        buf.put_slice(body);
        buf
    }

    const HEARTBEAT: &[u8] = br#"{"id":null,"type":"heartbeat","payload":{"seq":1}}"#;

    #[test]
    fn split_header_and_split_payload_wait_for_more() {
        let whole = frame(HEARTBEAT);
        for cut in 0..whole.len() {
            let mut codec = MessageCodec::default();
            let mut buf = BytesMut::from(&whole[..cut]);
            assert!(codec.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
            buf.extend_from_slice(&whole[cut..]);
            let message = codec.decode(&mut buf).unwrap().unwrap().unwrap();
            assert_eq!(message, Message::Heartbeat { seq: 1 });
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn many_frames_in_one_read() {
        let mut buf = BytesMut::new();
        for _ in 0..3 {
            buf.extend_from_slice(&frame(HEARTBEAT));
        }
        let mut codec = MessageCodec::default();
        for _ in 0..3 {
            assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
        }
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversize_header_is_refused_before_the_body_arrives() {
        let mut codec = MessageCodec::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(17);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len: 17, max: 16 }),
            "{err}"
        );
        // Nothing was reserved for the announced body.
        assert!(buf.capacity() < 17);
    }

    #[test]
    fn oversize_in_flight_is_refused_at_the_limit() {
        let mut codec = MessageCodec::new(HEARTBEAT.len());
        let mut ok = frame(HEARTBEAT);
        assert!(codec.decode(&mut ok).unwrap().unwrap().is_ok());
        let mut big = frame(&[b' '; 64]);
        big.truncate(HEADER_LEN + 10);
        assert!(matches!(
            codec.decode(&mut big),
            Err(FrameError::TooLarge { len: 64, .. })
        ));
    }

    #[test]
    fn truncated_at_eof() {
        for cut in [2, HEADER_LEN, HEADER_LEN + 5] {
            let mut codec = MessageCodec::default();
            let mut buf = BytesMut::from(&frame(HEARTBEAT)[..cut]);
            assert!(codec.decode(&mut buf).unwrap().is_none());
            let err = codec.decode_eof(&mut buf).unwrap_err();
            assert!(
                matches!(err, FrameError::Truncated { buffered } if buffered == cut),
                "{err}"
            );
        }
        let mut empty = BytesMut::new();
        assert!(
            MessageCodec::default()
                .decode_eof(&mut empty)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn message_errors_are_items_and_the_stream_stays_in_sync() {
        let bad: [(&[u8], &str); 4] = [
            (
                b"{\"id\":null,\"type\":\"heartbeat\",\"payload\":{\"seq\":1,\"x\":\"\xff\"}}",
                "invalid_utf8",
            ),
            (b"{not json", "invalid_json"),
            (b"", "invalid_json"),
            (
                br#"{"id":null,"type":"nope","payload":{}}"#,
                "invalid_message",
            ),
        ];
        let mut buf = BytesMut::new();
        for (body, _) in bad {
            buf.extend_from_slice(&frame(body));
        }
        buf.extend_from_slice(&frame(HEARTBEAT));
        let mut codec = MessageCodec::default();
        for (_, kind) in bad {
            let err = codec.decode(&mut buf).unwrap().unwrap().unwrap_err();
            assert_eq!(err.kind(), kind, "{err}");
        }
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
    }

    #[test]
    fn invalid_request_keeps_its_id_for_the_error_reply() {
        let body = br#"{"id":42,"type":"request","payload":{"method":"","params":1}}"#;
        let err = decode_body(body).unwrap_err();
        assert_eq!(
            (err.kind(), err.request_id()),
            ("invalid_message", Some(42))
        );
        let notification = br#"{"id":null,"type":"notification","payload":{}}"#;
        assert_eq!(decode_body(notification).unwrap_err().request_id(), None);
        // An id the peer could not have issued is not echoed back.
        let too_big = br#"{"id":9007199254740992,"type":"request","payload":{"method":"m"}}"#;
        assert_eq!(decode_body(too_big).unwrap_err().request_id(), None);
    }

    #[test]
    fn encode_round_trips_and_refuses_oversize() {
        let message = Message::Response {
            id: 9,
            outcome: Ok(to_raw(&"x".repeat(100)).unwrap()),
        };
        let mut codec = MessageCodec::new(160);
        let mut buf = BytesMut::from(&b"keep"[..]);
        codec.encode(&message, &mut buf).unwrap();
        assert_eq!(&buf[..4], b"keep");
        buf.advance(4);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap().unwrap(), message);

        let big = Message::Response {
            id: 9,
            outcome: Ok(to_raw(&"x".repeat(200)).unwrap()),
        };
        let mut out = BytesMut::from(&b"keep"[..]);
        assert!(matches!(
            codec.encode(&big, &mut out),
            Err(EncodeError::TooLarge { max: 160 })
        ));
        assert_eq!(&out[..], b"keep");
    }
}
