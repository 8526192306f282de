//! Arbitrary `getblocktemplate` JSON through the pool's path: decode, check, build a job
//! and a coinbase. No panic; whatever passes the check makes a job whose notify decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pool::config::Mode;
use protocol::stratum::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Some(template) = fuzz::template(&value) else {
        return;
    };
    let settings = fuzz::settings(Mode::Pplns);
    let mut maker = fuzz::maker(&settings);
    let Ok(job) = maker.make(template, fuzz::NOW) else {
        return;
    };
    if let Some(coinbase) = &job.coinbase {
        let notify = job.notify(coinbase, true);
        assert_eq!(Message::from_value(&notify.to_value()).ok(), Some(notify));
    }
});
