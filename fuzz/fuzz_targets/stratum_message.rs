//! Arbitrary JSON decoded as a Stratum message: never a panic, and whatever decodes
//! encodes back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::stratum::Message;
use protocol::stratum::codec::parse_line;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = parse_line(data) {
        let value = msg.to_value();
        assert_eq!(Message::from_value(&value).as_ref().ok(), Some(&msg));
        // And through text, as it goes on the wire.
        let text = serde_json::to_vec(&value).expect("a Value serializes");
        assert_eq!(parse_line(&text).as_ref().ok(), Some(&msg));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = Message::from_value(&value);
    }
});
