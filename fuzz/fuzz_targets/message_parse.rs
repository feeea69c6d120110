//! Arbitrary bytes as one frame body: parsing must never panic, the error kind must match what
//! the bytes are (bad UTF-8 is never reported as anything else), and a valid message must
//! round-trip through its serialized form.
#![no_main]

use dscode_extension_host::wire::{DecodeErrorKind, Message, decode_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_body(data) {
        Ok(message) => {
            let text = serde_json::to_string(&message).expect("a decoded message serializes");
            let again: Message = serde_json::from_str(&text).expect("serialized form parses");
            assert_eq!(again, message);
        }
        Err(err) => {
            let utf8 = std::str::from_utf8(data).is_ok();
            assert_eq!(err.kind() == DecodeErrorKind::InvalidUtf8, !utf8, "{err}");
        }
    }
});
