//! A decrypted Stratum V2 frame (6-byte header, payload) decoded as the pool's V2 reader
//! decodes it, with the Stratum Reference Implementation's parsers: whatever the bytes, no
//! panic and no allocation beyond the frame; a frame that decodes encodes again and decodes
//! to the same message (the pool sends these types back to miners).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::sv2::transport::{decode_frame, encode_frame};

fuzz_target!(|data: &[u8]| {
    let mut frame = data.to_vec();
    let Ok(message) = decode_frame(&mut frame) else {
        return;
    };
    let first = format!("{message:?}");
    let mut bytes = encode_frame(message).expect("a decoded message encodes");
    let again = decode_frame(&mut bytes).expect("an encoded message decodes");
    assert_eq!(first, format!("{again:?}"));
});
