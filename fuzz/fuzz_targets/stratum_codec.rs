//! The line codec fed arbitrary bytes in arbitrary chunks (the first byte sets the chunk
//! size): it must never panic, never yield a line over the limit, and every message it
//! decodes must survive a round trip through its JSON form.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use protocol::stratum::{Message, StratumCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut codec = StratumCodec::new(512);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Ok(msg))) => {
                    let again = Message::from_value(&msg.to_value());
                    assert_eq!(again.as_ref().ok(), Some(&msg), "round trip of {msg:?}");
                }
                Ok(Some(Err(_))) => {} // a bad line: answered with an error
                Ok(None) => break,     // needs more bytes
                Err(_) => return,      // over the limit: the connection closes
            }
        }
        assert!(buf.len() <= 512 + chunk, "buffered past the line limit");
    }
});
