//! Share validation with arbitrary submits against real jobs (the regtest template, where
//! half of all hashes are blocks, and a real testnet3 one). The bytes give the job, the
//! extranonce2, ntime, nonce and version bits. Properties: no panic; an accepted share's
//! header, rebuilt independently from the job's `mining.notify`, hashes to what was
//! accepted and meets the target; the same share again is a duplicate.
#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pool::chain::jobs::{Job, coinbase_for};
use pool::config::Mode;
use pool::shares::validate::{self, Context, Reject};
use protocol::Difficulty;
use protocol::coinbase::Coinbase;
use protocol::stratum::{Message, Method, Submit, share_header};

struct Fixture {
    job: Arc<Job>,
    coinbase: Coinbase,
}

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| {
        let settings = fuzz::settings(Mode::Solo);
        let mut maker = fuzz::maker(&settings);
        let script = vec![
            0x76, 0xa9, 0x14, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0x88,
            0xac,
        ];
        let make = |maker: &mut pool::chain::jobs::JobMaker, t| {
            let job = fuzz::job(maker, t);
            let coinbase =
                coinbase_for(job.checked(), &script, &settings.coinbase).expect("coinbase");
            Fixture { job, coinbase }
        };
        let regtest = fuzz::template(&fuzz::regtest_gbt(200)).expect("regtest template");
        [
            make(&mut maker, regtest),
            make(&mut maker, fuzz::testnet_template()),
        ]
    })
}

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let [which, en2_len, flags] = take::<3>(&mut data);
    let fixture = &fixtures()[usize::from(which & 1)];
    let en2_len = usize::from(en2_len % 12);
    let extranonce2: Vec<u8> = (0..en2_len)
        .map(|i| data.get(i).copied().unwrap_or(0))
        .collect();
    data = &data[en2_len.min(data.len())..];
    let ntime_offset = u32::from_le_bytes(take::<4>(&mut data));
    let nonce = u32::from_le_bytes(take::<4>(&mut data));
    let bits = u32::from_le_bytes(take::<4>(&mut data));
    let template = fixture.job.checked();
    // Mostly near the template's time, sometimes anywhere.
    let ntime = if flags & 1 == 0 {
        template.mintime.wrapping_add(ntime_offset % 8000)
    } else {
        ntime_offset
    };
    let version_mask = if flags & 2 == 0 { 0x1fffe000 } else { 0 };
    let version_bits = (flags & 4 != 0).then_some(if flags & 8 == 0 {
        bits & 0x1fffe000
    } else {
        bits
    });
    let difficulty = [1e-12, 1e-10, 1.0, 1e12][usize::from(flags >> 6)];
    let difficulty = Difficulty::new(difficulty).unwrap_or(Difficulty::ONE);
    let extranonce1 = [0, 0, 0, 9];
    let ctx = Context {
        job: &fixture.job,
        coinbase: &fixture.coinbase,
        extranonce1: &extranonce1,
        version_mask,
        difficulty,
        target: difficulty.target(),
        now: fuzz::NOW,
        max_ntime_ahead: 7000,
    };
    let submit = Submit {
        worker: "w".into(),
        job_id: fixture.job.id.to_string(),
        extranonce2: extranonce2.clone(),
        ntime,
        nonce,
        version_bits,
    };
    let mut seen = HashSet::new();
    let Ok(accepted) = validate::validate(&ctx, &submit, &mut seen) else {
        return;
    };
    // Rebuild from what the miner was sent.
    let Message::Request {
        method: Method::Notify(notify),
        ..
    } = fixture.job.notify(&fixture.coinbase, true)
    else {
        panic!("a job's notify is a mining.notify request");
    };
    let version = match version_bits {
        Some(b) => (notify.version & !version_mask) | b,
        None => notify.version,
    };
    let header = share_header(&notify, &extranonce1, &extranonce2, version, ntime, nonce);
    assert_eq!(header, accepted.header);
    let hash = header.hash();
    assert_eq!(hash, accepted.hash);
    assert!(ctx.target.is_met_by(&hash) || template.target.is_met_by(&hash));
    assert_eq!(accepted.block, template.target.is_met_by(&hash));
    assert!(matches!(
        validate::validate(&ctx, &submit, &mut seen),
        Err(Reject::Duplicate)
    ));
});
