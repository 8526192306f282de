//! The pool's Stratum V2 session fed arbitrary sequences of events. The input is read as
//! operations, each a tag byte and its arguments, so that the fuzzer reaches deep states
//! (channels open, shares checked, blocks found) without having to forge a whole binary
//! message first; one operation hands it raw frames as the V2 reader decodes them.
//!
//! | tag % 8 | operation                      | arguments                                   |
//! |---------|--------------------------------|---------------------------------------------|
//! | 0       | time passes, stores answer     | seconds; stored (bit 0)                     |
//! | 1       | a new block's job              |                                             |
//! | 2       | a refresh on the same block    |                                             |
//! | 3       | a raw frame                    | length, then that many bytes                |
//! | 4       | SetupConnection                | protocol, version, flags                    |
//! | 5       | OpenExtendedMiningChannel      | user, hash rate (4), max target byte, size  |
//! | 6       | OpenStandardMiningChannel      | user, hash rate (4), max target byte        |
//! | 7       | a share, extended or standard  | kind, channel, job, nonce (4), ntime, version (2), extranonce |
//!
//! Invariants: no panic; nothing is accepted after the session closed; every accepted
//! share is answered once (at once, or when the store says so); a share's difficulties are
//! positive.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use binary_sv2::{Str0255Owned, U256Owned};
use common_messages_sv2::{Protocol, SetupConnectionOwned};
use libfuzzer_sys::fuzz_target;
use mining_sv2::{
    OpenExtendedMiningChannelOwned, OpenStandardMiningChannelOwned, SubmitSharesExtendedOwned,
    SubmitSharesStandard,
};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
use pool::config::Mode;
use pool::shares::record::AckToken;
use pool::stratum::events::Event;
use pool::stratum::v2::session::Session;
use protocol::sv2::transport::decode_frame;

const USERS: [&str; 4] = [
    "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",
    "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn.rig1",
    "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA.asic",
    "not-an-address",
];

/// The input, read a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn text(s: &str) -> Str0255Owned {
    Str0255Owned::try_from(s.to_string()).expect("a short string")
}

fn message(input: &mut Input, tag: u8) -> Option<AnyMessageOwned> {
    Some(match tag {
        3 => {
            let n = usize::from(input.byte());
            let mut frame = input.bytes(n);
            return decode_frame(&mut frame).ok();
        }
        4 => {
            let protocol = match input.byte() % 4 {
                0 | 1 => Protocol::MiningProtocol,
                2 => Protocol::JobDeclarationProtocol,
                _ => Protocol::TemplateDistributionProtocol,
            };
            let version = u16::from(input.byte() % 4);
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(SetupConnectionOwned {
                protocol,
                min_version: version.min(2),
                max_version: version,
                flags: u32::from(input.byte() % 8),
                endpoint_host: text("pool.fuzz"),
                endpoint_port: 3334,
                vendor: text("fuzz"),
                hardware_version: text(""),
                firmware: text(""),
                device_id: text(""),
            }))
        }
        5 | 6 => {
            let user = text(USERS[usize::from(input.byte()) % USERS.len()]);
            let hash_rate = f32::from_bits(input.u32());
            let max_target = U256Owned::from([input.byte(); 32]);
            let request_id = u32::from(input.byte());
            if tag == 5 {
                AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannel(
                    OpenExtendedMiningChannelOwned {
                        request_id,
                        user_identity: user,
                        nominal_hash_rate: hash_rate,
                        max_target,
                        min_extranonce_size: u16::from(input.byte() % 10),
                    },
                ))
            } else {
                AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannel(
                    OpenStandardMiningChannelOwned {
                        request_id,
                        user_identity: user,
                        nominal_hash_rate: hash_rate,
                        max_target,
                    },
                ))
            }
        }
        _ => {
            let standard = input.byte() & 1 == 1;
            let channel_id = 2 + u32::from(input.byte() % 4);
            let job_id = u32::from(input.byte() % 8);
            let nonce = input.u32();
            let ntime = fuzz::NOW + u32::from(input.byte());
            let version = 0x2000_0000 | (u32::from(input.u16()) << 13 & 0x1fff_e000);
            let sequence_number = u32::from(input.byte());
            if standard {
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesStandard(SubmitSharesStandard {
                    channel_id,
                    sequence_number,
                    job_id,
                    nonce,
                    ntime,
                    version,
                }))
            } else {
                let n = usize::from(input.byte() % 9);
                let extranonce = input.bytes(n).try_into().expect("a short extranonce");
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(
                    SubmitSharesExtendedOwned {
                        channel_id,
                        sequence_number,
                        job_id,
                        nonce,
                        ntime,
                        version,
                        extranonce,
                    },
                ))
            }
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let first = input.byte();
    let mode = if first & 1 == 0 {
        Mode::Solo
    } else {
        Mode::Pplns
    };
    let mut settings = (*fuzz::settings(mode)).clone();
    settings.ack_when_stored = first & 2 == 2;
    let settings = Arc::new(settings);
    let mut maker = fuzz::maker(&settings);
    let t0 = Instant::now();
    let mut now = t0;
    let mut session = Session::new(settings, [0, 0, 0, 9], t0, i64::from(fuzz::NOW) * 1_000_000);
    let mut height = 200;
    let mut template = fuzz::template(&fuzz::regtest_gbt(height)).expect("regtest template");
    session.on_job(now, fuzz::job(&mut maker, template.clone()));
    let (mut closed, mut accepted, mut answered) = (false, 0usize, 0usize);
    let mut waiting: Vec<AckToken> = Vec::new();
    while !input.is_empty() {
        now += Duration::from_millis(20);
        let tag = input.byte() % 8;
        match tag {
            0 => {
                now += Duration::from_secs(u64::from(input.byte()));
                let stored = input.byte() & 1 == 0;
                for token in waiting.drain(..) {
                    session.share_stored(token, stored);
                    // A share the store lost is not answered as accepted.
                    accepted -= usize::from(!stored);
                }
                session.on_tick(now);
            }
            1 => {
                height += 1;
                template = fuzz::template(&fuzz::regtest_gbt(height)).expect("regtest template");
                session.on_job(now, fuzz::job(&mut maker, template.clone()));
            }
            2 => session.on_job(now, fuzz::job(&mut maker, template.clone())),
            _ => match message(&mut input, tag) {
                Some(m) => session.handle(now, m),
                None => session.on_malformed(now),
            },
        }
        while let Some(m) = session.poll_transmit() {
            if let AnyMessageOwned::Mining(MiningOwned::SubmitSharesSuccess(s)) = m {
                answered += s.new_submits_accepted_count as usize;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Close(_) => closed = true,
                Event::Share(share) => {
                    assert!(!closed, "a share accepted after the session closed");
                    assert!(share.accepted.difficulty.get() > 0.0);
                    assert!(share.accepted.share_difficulty.get() > 0.0);
                    accepted += 1;
                    if let Some(token) = share.awaiting_ack {
                        waiting.push(token);
                    }
                }
                Event::Block(_) => assert!(!closed, "a block after the session closed"),
                _ => {}
            }
        }
    }
    let unanswered = waiting.len();
    assert_eq!(answered + unanswered, accepted, "every accepted share answered once");
});
