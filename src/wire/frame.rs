//! Frames on the byte stream: a 4-byte big-endian length, then that many bytes of body.
//!
//! The length is checked against the maximum before any buffer grows for the body, in both
//! directions: [`FrameDecoder`] refuses an oversize header before reserving room for it, and
//! [`encode_frame`] stops the serializer once it passes the limit instead of first building the
//! whole body.

use std::io::{self, Write};

use bytes::{Buf, BufMut, BytesMut};

use super::error::{EncodeError, FrameError};

/// The default maximum frame body: 1 MiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Length of the frame header, in bytes.
pub(crate) const HEADER_LEN: usize = 4;

/// Where the decoder is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    /// Waiting for (the rest of) a header.
    Header,
    /// A header announced a body of this many bytes, within the limit; waiting for all of it.
    Body(usize),
}

/// Splits a byte stream into frame bodies. Does no I/O: feed it what arrives.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    max_frame: usize,
    state: DecodeState,
}

impl FrameDecoder {
    /// A decoder that refuses bodies above `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            state: DecodeState::Header,
        }
    }

    pub(crate) fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the limit; it applies from the next header on.
    pub(crate) fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// Takes the next whole body off the front of `src`, or `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] as soon as an oversize header is complete; nothing was reserved
    /// for its body.
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        if self.state == DecodeState::Header {
            let Some(header) = src.get(..HEADER_LEN) else {
                return Ok(None);
            };
            let announced = u32::from_be_bytes(header.try_into().expect("4 bytes"));
            let len = usize::try_from(announced)
                .ok()
                .filter(|len| *len <= self.max_frame)
                .ok_or(FrameError::TooLarge {
                    len: u64::from(announced),
                    max: self.max_frame,
                })?;
            src.advance(HEADER_LEN);
            // Within the limit: only now may the buffer grow for the body.
            src.reserve(len.saturating_sub(src.len()));
            self.state = DecodeState::Body(len);
        }
        let DecodeState::Body(len) = self.state else {
            unreachable!("the header was just read")
        };
        if src.len() < len {
            return Ok(None);
        }
        self.state = DecodeState::Header;
        Ok(Some(src.split_to(len)))
    }

    /// Like [`FrameDecoder::decode`], once the stream has ended: a partial frame left over is
    /// an error rather than a wait.
    ///
    /// # Errors
    /// As `decode`, and [`FrameError::Truncated`] if the stream ended inside a frame.
    pub(crate) fn decode_eof(
        &mut self,
        src: &mut BytesMut,
    ) -> Result<Option<BytesMut>, FrameError> {
        if let Some(body) = self.decode(src)? {
            return Ok(Some(body));
        }
        let header = match self.state {
            DecodeState::Header if src.is_empty() => return Ok(None),
            DecodeState::Header => 0,
            DecodeState::Body(_) => HEADER_LEN,
        };
        let buffered = header + src.len();
        src.clear();
        self.state = DecodeState::Header;
        Err(FrameError::Truncated { buffered })
    }
}

/// Caps how much a serializer may write, so an oversize body fails once it passes the limit
/// instead of first growing a buffer to its full size.
pub(crate) struct LimitedWriter<'a> {
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

/// Appends one frame to `dst`, its body written by `body` straight into the output buffer behind
/// a reserved header (no separate body buffer to copy).
///
/// # Errors
/// [`EncodeError::TooLarge`] if the body would exceed `max_frame`, [`EncodeError::Serialize`] if
/// `body` fails otherwise; either way `dst` is left as it was. A `max_frame` beyond what the
/// header can express counts as the header's maximum.
pub(crate) fn encode_frame(
    dst: &mut BytesMut,
    max_frame: usize,
    body: impl FnOnce(&mut LimitedWriter<'_>) -> serde_json::Result<()>,
) -> Result<(), EncodeError> {
    let max_frame = max_frame.min(u32::MAX as usize);
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = LimitedWriter {
        dst,
        remaining: max_frame,
    };
    let result = body(&mut writer);
    let written = max_frame - writer.remaining;
    if let Err(err) = result {
        dst.truncate(start);
        // The only I/O error `LimitedWriter` produces is hitting the limit.
        return Err(if err.is_io() {
            EncodeError::TooLarge { max: max_frame }
        } else {
            EncodeError::Serialize(err)
        });
    }
    let len = u32::try_from(written).expect("written is at most max_frame, a u32");
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(u32::try_from(body.len()).unwrap());
        buf.put_slice(body);
        buf
    }

    const BODY: &[u8] = b"{\"x\":1}";

    #[test]
    fn split_header_and_split_body_wait_for_more() {
        let whole = frame(BODY);
        for cut in 0..whole.len() {
            let mut decoder = FrameDecoder::new(64);
            let mut buf = BytesMut::from(&whole[..cut]);
            assert!(decoder.decode(&mut buf).unwrap().is_none(), "cut at {cut}");
            buf.extend_from_slice(&whole[cut..]);
            assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], BODY);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn many_frames_in_one_read_and_an_empty_body() {
        let mut buf = frame(BODY);
        buf.extend_from_slice(&frame(b""));
        buf.extend_from_slice(&frame(BODY));
        let mut decoder = FrameDecoder::new(64);
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], BODY);
        assert!(decoder.decode(&mut buf).unwrap().unwrap().is_empty());
        assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap()[..], BODY);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn oversize_at_rest_is_refused_before_anything_is_reserved() {
        let mut decoder = FrameDecoder::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(17);
        let err = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { len: 17, max: 16 });
        assert!(buf.capacity() < 17, "{} bytes reserved", buf.capacity());
        // The largest header there is, too.
        let mut buf = BytesMut::from(&[0xff; 4][..]);
        assert_eq!(
            FrameDecoder::new(16).decode(&mut buf).unwrap_err(),
            FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: 16
            }
        );
    }

    #[test]
    fn oversize_in_flight_is_refused_after_good_frames() {
        let mut decoder = FrameDecoder::new(BODY.len());
        let mut buf = frame(BODY);
        assert!(decoder.decode(&mut buf).unwrap().is_some());
        // Only the header of the next frame has arrived.
        buf.extend_from_slice(&frame(&[b' '; 64])[..HEADER_LEN]);
        assert_eq!(
            decoder.decode(&mut buf).unwrap_err(),
            FrameError::TooLarge {
                len: 64,
                max: BODY.len()
            }
        );
    }

    #[test]
    fn a_body_within_the_limit_is_reserved_for_once() {
        let mut decoder = FrameDecoder::new(1 << 16);
        let mut buf = BytesMut::new();
        buf.put_u32(4096);
        assert!(decoder.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() >= 4096);
    }

    #[test]
    fn truncated_at_eof_counts_what_arrived() {
        for cut in [2, HEADER_LEN, HEADER_LEN + 5] {
            let mut decoder = FrameDecoder::new(64);
            let mut buf = BytesMut::from(&frame(BODY)[..cut]);
            assert!(decoder.decode(&mut buf).unwrap().is_none());
            assert_eq!(
                decoder.decode_eof(&mut buf).unwrap_err(),
                FrameError::Truncated { buffered: cut }
            );
        }
        let mut empty = BytesMut::new();
        assert!(
            FrameDecoder::new(64)
                .decode_eof(&mut empty)
                .unwrap()
                .is_none()
        );
        // A whole frame just before the end is still delivered.
        let mut last = frame(BODY);
        assert!(
            FrameDecoder::new(64)
                .decode_eof(&mut last)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn encode_writes_a_header_and_refuses_oversize_in_place() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        encode_frame(&mut buf, 16, |w| {
            w.write_all(BODY).map_err(serde_json::Error::io)
        })
        .unwrap();
        assert_eq!(&buf[..4], b"keep");
        assert_eq!(&buf[4..], &frame(BODY)[..]);
        let mut out = BytesMut::from(&b"keep"[..]);
        let err = encode_frame(&mut out, 4, |w| {
            w.write_all(BODY).map_err(serde_json::Error::io)
        })
        .unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { max: 4 }), "{err}");
        assert_eq!(&out[..], b"keep");
    }
}
