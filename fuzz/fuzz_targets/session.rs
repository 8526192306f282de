//! The pool's session state machine fed arbitrary message sequences: lines split on '\n'
//! go to `Session::handle`; a line starting with '#' advances the clock by its second byte
//! in seconds and ticks, one starting with '@' brings a new block's job. Whatever comes in,
//! no panic, and the session's own invariants hold: a closed session stays closed, and an
//! accepted share is reported once with its difficulty.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pool::chain::template::Template;
use pool::config::Mode;
use pool::stratum::session::{Event, Session};
use protocol::stratum::codec::parse_line;

fn testnet() -> Arc<Template> {
    static T: OnceLock<Arc<Template>> = OnceLock::new();
    T.get_or_init(fuzz::testnet_template).clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mode = if first & 1 == 0 {
        Mode::Solo
    } else {
        Mode::Pplns
    };
    let settings = fuzz::settings(mode);
    let mut maker = fuzz::maker(&settings);
    let t0 = Instant::now();
    let mut now = t0;
    let mut session = Session::new(
        settings,
        maker.ids(),
        [0, 0, 0, 9],
        t0,
        i64::from(fuzz::NOW) * 1_000_000,
    );
    let mut height = 200;
    let template = if first & 2 == 0 {
        fuzz::template(&fuzz::regtest_gbt(height)).expect("regtest template")
    } else {
        testnet()
    };
    session.on_job(now, fuzz::job(&mut maker, template));
    for line in rest.split(|&b| b == b'\n') {
        now += Duration::from_millis(20);
        match line.first() {
            Some(b'#') => {
                now += Duration::from_secs(u64::from(line.get(1).copied().unwrap_or(1)));
                session.on_tick(now);
            }
            Some(b'@') => {
                height += 1;
                let t = fuzz::template(&fuzz::regtest_gbt(height)).expect("regtest template");
                session.on_job(now, fuzz::job(&mut maker, t));
            }
            _ => session.handle(now, parse_line(line)),
        }
        while session.poll_transmit().is_some() {}
        while let Some(event) = session.poll_event() {
            if let Event::Share(share) = event {
                assert!(share.accepted.difficulty.get() > 0.0);
                assert!(share.accepted.share_difficulty.get() > 0.0);
            }
        }
    }
});
