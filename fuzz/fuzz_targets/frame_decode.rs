//! Arbitrary bytes, fed to the frame decoder in arbitrary chunk sizes: it must never panic,
//! must consume input or ask for more, and every message it yields must survive an
//! encode/decode round trip unchanged.
#![no_main]

use bytes::BytesMut;
use dscode_extension_host::wire::{MessageCodec, encode_message};
use libfuzzer_sys::fuzz_target;

const MAX_FRAME: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut codec = MessageCodec::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(Ok(message))) => {
                    let mut encoded = BytesMut::new();
                    encode_message(&message, MAX_FRAME * 2, &mut encoded)
                        .expect("a decoded message re-encodes");
                    let again = MessageCodec::new(MAX_FRAME * 2)
                        .decode(&mut encoded)
                        .expect("frame")
                        .expect("whole")
                        .expect("valid");
                    assert_eq!(again, message);
                }
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                // A frame error ends the stream, as it ends the connection.
                Err(_) => return,
            }
            assert!(
                buf.len() < before || buf.is_empty(),
                "decoder made no progress"
            );
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
