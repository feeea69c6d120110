//! Messages on the byte stream: frames ([`super::frame`]) holding JSON envelopes
//! ([`Message`]). Does no I/O; the connection feeds it what the socket delivers.

use bytes::BytesMut;

use super::error::{EncodeError, FrameError, MessageError};
use super::frame::{DEFAULT_MAX_FRAME, FrameDecoder, encode_frame};
use super::message::{Kind, MAX_REQUEST_ID, Message, RequestId};

/// Decodes frames into [`Message`]s and encodes messages into frames, with one maximum frame
/// size for both.
///
/// Decoding yields `Ok(None)` while a frame is incomplete, `Ok(Some(Ok(message)))` for a message,
/// `Ok(Some(Err(..)))` for an intact frame that holds no valid message (the stream is still in
/// sync), and `Err(..)` when the stream is not.
#[derive(Debug)]
pub struct MessageCodec {
    frames: FrameDecoder,
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
        Self {
            frames: FrameDecoder::new(max_frame),
        }
    }

    /// The maximum frame body size, in bytes.
    #[must_use]
    pub fn max_frame(&self) -> usize {
        self.frames.max_frame()
    }

    /// Changes the maximum frame body size; a frame already announced keeps the old one.
    ///
    /// # Panics
    /// If `max_frame` does not fit the 4-byte length header.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        assert!(
            u32::try_from(max_frame).is_ok(),
            "max_frame must fit in a u32 length header"
        );
        self.frames.set_max_frame(max_frame);
    }

    /// Takes the next message off the front of `src`.
    ///
    /// # Errors
    /// A [`FrameError`] when the byte stream can no longer be trusted.
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Result<Message, MessageError>>, FrameError> {
        Ok(self.frames.decode(src)?.map(|body| decode_body(&body)))
    }

    /// Like [`MessageCodec::decode`], once the stream has ended.
    ///
    /// # Errors
    /// As `decode`, and [`FrameError::Truncated`] if the stream ended inside a frame.
    pub fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<Result<Message, MessageError>>, FrameError> {
        Ok(self.frames.decode_eof(src)?.map(|body| decode_body(&body)))
    }

    /// Appends one framed message to `dst`.
    ///
    /// # Errors
    /// As [`encode_message`].
    pub fn encode(&self, message: &Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode_message(message, self.max_frame(), dst)
    }
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

/// Appends one framed message to `dst`, serialized straight into it.
///
/// # Errors
/// [`EncodeError::TooLarge`] if the body would exceed `max_frame`; `dst` is left as it was.
pub fn encode_message(
    message: &Message,
    max_frame: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_frame(dst, max_frame, |body| serde_json::to_writer(body, message))
}

/// Parses one frame body.
///
/// # Errors
/// The [`MessageError`] the conformance vectors expect for this body.
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
        kind: Option<Kind>,
    }
    let probe: Probe = serde_json::from_slice(body).ok()?;
    let id = probe.id.filter(|id| *id <= MAX_REQUEST_ID)?;
    (probe.kind == Some(Kind::Request)).then_some(id)
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BufMut};

    use super::super::error::DecodeErrorKind;
    use super::super::message::to_raw;
    use super::*;

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
    fn oversize_is_a_frame_error_at_rest_and_in_flight() {
        let mut codec = MessageCodec::new(HEARTBEAT.len());
        let mut buf = frame(HEARTBEAT);
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
        let mut big = frame(&[b' '; 64]);
        big.truncate(10);
        let err = codec.decode(&mut big).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::FrameTooLarge);
    }

    #[test]
    fn message_errors_are_items_and_the_stream_stays_in_sync() {
        let bad: [(&[u8], DecodeErrorKind); 4] = [
            (
                b"{\"id\":null,\"type\":\"heartbeat\",\"payload\":{\"seq\":1,\"x\":\"\xff\"}}",
                DecodeErrorKind::InvalidUtf8,
            ),
            (b"{not json", DecodeErrorKind::InvalidJson),
            (b"", DecodeErrorKind::InvalidJson),
            (
                br#"{"id":null,"type":"nope","payload":{}}"#,
                DecodeErrorKind::InvalidMessage,
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
            (DecodeErrorKind::InvalidMessage, Some(42))
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
