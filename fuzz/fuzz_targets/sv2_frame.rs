//! A decrypted Stratum V2 frame (6-byte header, payload) decoded as the pool's V2 reader
//! decodes it, with the Stratum Reference Implementation's parsers: whatever the bytes, no
//! panic and no allocation beyond the frame; a frame that decodes encodes again and decodes
//! to the same message (the pool sends these types back to miners).
#![no_main]

use codec_sv2::{Encoder, MessageFrame};
use libfuzzer_sys::fuzz_target;
use parsers_sv2::AnyMessageOwned;
use pool::stratum::v2::transport::decode_frame;

fuzz_target!(|data: &[u8]| {
    let mut frame = data.to_vec();
    let Ok(message) = decode_frame(&mut frame) else {
        return;
    };
    let first = format!("{message:?}");
    let Ok(framed) = MessageFrame::<AnyMessageOwned>::try_from(message) else {
        return;
    };
    let mut encoder = Encoder::new();
    let encoded = encoder.encode(framed).expect("a decoded message encodes");
    let mut bytes = AsRef::<[u8]>::as_ref(&encoded).to_vec();
    let again = decode_frame(&mut bytes).expect("an encoded message decodes");
    assert_eq!(first, format!("{again:?}"));
});
