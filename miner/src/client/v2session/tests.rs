//! The V2 client session driven with literal messages, as a pool sends them.

use super::*;
use binary_sv2::{B032Owned, B064KOwned, Seq0255Owned, Sv2OptionOwned};
use common_messages_sv2::{ReconnectOwned, SetupConnectionErrorOwned, SetupConnectionSuccess};
use mining_sv2::{
    NewExtendedMiningJobOwned, NewMiningJobOwned, OpenExtendedMiningChannelSuccessOwned,
    OpenMiningChannelErrorOwned, OpenStandardMiningChannelSuccessOwned, SetNewPrevHashOwned,
    SetTargetOwned, SubmitSharesErrorOwned, SubmitSharesSuccess,
};

const USER: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn.rig1";
const PREFIX: [u8; 5] = [0, 0, 0, 9, 0];
const BITS: u32 = 0x207f_ffff;
const NTIME: u32 = 1_700_000_100;

fn config(channel: ChannelKind) -> V2Config {
    V2Config {
        user: USER.into(),
        agent: "sha256d-miner/0.1.0".into(),
        channel,
        nominal_hash_rate: 30e6,
        version_rolling: true,
        extranonce_range: None,
    }
}

fn drain(s: &mut V2Session) -> Vec<AnyMessageOwned> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn events(s: &mut V2Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn target_bytes(d: f64) -> [u8; 32] {
    Difficulty::new(d).unwrap().target().to_le_bytes()
}

fn mining(m: MiningOwned) -> AnyMessageOwned {
    AnyMessageOwned::Mining(m)
}

fn setup_success() -> AnyMessageOwned {
    AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(
        SetupConnectionSuccess {
            used_version: 2,
            flags: 0,
        },
    ))
}

fn hash(byte: u8) -> [u8; 32] {
    [byte; 32]
}

fn extended_job(id: u32, future: bool) -> AnyMessageOwned {
    mining(MiningOwned::NewExtendedMiningJob(
        NewExtendedMiningJobOwned {
            channel_id: 2,
            job_id: id,
            min_ntime: Sv2OptionOwned::new((!future).then_some(NTIME + 5)),
            version: 0x2000_0000,
            version_rolling_allowed: true,
            merkle_path: Seq0255Owned::try_from(vec![U256Owned::from(hash(7))]).unwrap(),
            coinbase_tx_prefix: B064KOwned::try_from(vec![1, 2, 3]).unwrap(),
            coinbase_tx_suffix: B064KOwned::try_from(vec![4, 5]).unwrap(),
        },
    ))
}

fn prev_hash(job: u32, byte: u8) -> AnyMessageOwned {
    mining(MiningOwned::SetNewPrevHash(SetNewPrevHashOwned {
        channel_id: 2,
        job_id: job,
        prev_hash: U256Owned::from(hash(byte)),
        min_ntime: NTIME,
        nbits: BITS,
    }))
}

/// A session with an open extended channel (id 2) and an active job (id 1).
fn extended() -> V2Session {
    let mut s = V2Session::new(config(ChannelKind::Extended), "pool.test", 3336);
    drain(&mut s);
    s.handle(setup_success());
    drain(&mut s);
    s.handle(mining(MiningOwned::OpenExtendedMiningChannelSuccess(
        OpenExtendedMiningChannelSuccessOwned {
            request_id: 1,
            channel_id: 2,
            target: U256Owned::from(target_bytes(1e-9)),
            extranonce_size: 7,
            extranonce_prefix: B032Owned::try_from(PREFIX.to_vec()).unwrap(),
            group_channel_id: 1,
        },
    )));
    s.handle(extended_job(1, true));
    s.handle(prev_hash(1, 0xaa));
    s
}

fn found(job: &str, header: BlockHeader, extranonce2: Vec<u8>, worker: usize) -> Found {
    Found {
        worker,
        job_id: job.into(),
        extranonce2,
        hash: header.hash(),
        header,
    }
}

/// A header of the active work whose hash does (or does not) meet the network target.
fn header_of(work: &Work, block: bool) -> BlockHeader {
    let network = Target::from_compact(work.header.bits).unwrap();
    (0..)
        .map(|nonce| BlockHeader {
            nonce,
            ..work.header
        })
        .find(|h| network.is_met_by(&h.hash()) == block)
        .unwrap()
}

fn last_work(events: &[Event]) -> Work {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Work(w) => Some((**w).clone()),
            _ => None,
        })
        .expect("work")
}

#[test]
fn setup_first_then_the_channel_then_work_for_the_engine() {
    let mut s = V2Session::new(config(ChannelKind::Extended), "pool.test", 3336);
    let out = drain(&mut s);
    let [AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(setup))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(setup.protocol, Protocol::MiningProtocol);
    assert_eq!((setup.min_version, setup.max_version), (2, 2));
    assert_eq!(setup.flags, REQUIRES_VERSION_ROLLING);
    assert_eq!(setup.endpoint_host.as_utf8_or_hex(), "pool.test");
    assert_eq!(setup.endpoint_port, 3336);
    assert_eq!(setup.vendor.as_utf8_or_hex(), "sha256d-miner");
    assert_eq!(setup.firmware.as_utf8_or_hex(), "0.1.0");
    // Nothing more until the pool accepts.
    assert!(drain(&mut s).is_empty());
    s.handle(setup_success());
    let out = drain(&mut s);
    let [AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannel(open))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(open.user_identity.as_utf8_or_hex(), USER);
    assert_eq!(open.nominal_hash_rate, 30e6);
    assert_eq!(open.min_extranonce_size, 4);
    assert!(!s.is_ready());

    let s = &mut extended();
    assert!(s.is_ready());
    let ev = events(s);
    assert!(ev.contains(&Event::Authorized));
    assert!(ev.contains(&Event::Subscribed {
        extranonce1: PREFIX.to_vec(),
        extranonce2_size: 7
    }));
    let work = last_work(&ev);
    assert_eq!(work.job_id, "1");
    assert_eq!(work.header.prev_hash, Hash256(hash(0xaa)));
    assert_eq!(work.header.bits, CompactTarget(BITS));
    assert_eq!(work.header.time, NTIME);
    assert_eq!(work.header.version, 0x2000_0000);
    assert_eq!(work.version_mask, VERSION_ROLLING_MASK);
    assert_eq!(work.target, Difficulty::new(1e-9).unwrap().target());
    let e = work.extranonce.unwrap();
    assert_eq!(
        (e.coinb1, e.extranonce1, e.coinb2, e.size),
        (vec![1, 2, 3], PREFIX.to_vec(), vec![4, 5], 7)
    );
    assert_eq!(e.merkle_branch, vec![Hash256(hash(7))]);
    assert_eq!((e.first, e.count), (0, 1 << 56));
}

#[test]
fn shares_carry_the_channel_and_batched_acknowledgements_count_each() {
    let mut s = extended();
    let work = last_work(&events(&mut s));
    let network = Target::from_compact(work.header.bits).unwrap();
    let headers: Vec<BlockHeader> = (0..)
        .map(|nonce| BlockHeader {
            nonce,
            ..work.header
        })
        .filter(|h| !network.is_met_by(&h.hash()))
        .take(3)
        .collect();
    let h = headers[0];
    for (i, worker) in [(0usize, 0usize), (1, 1), (2, 0)] {
        let f = found("1", headers[i], vec![i as u8; 7], worker);
        assert_eq!(s.submit(&f), Submitted::Share);
    }
    let out = drain(&mut s);
    assert_eq!(out.len(), 3);
    let AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(first)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            first.channel_id,
            first.sequence_number,
            first.job_id,
            first.nonce,
            first.ntime
        ),
        (2, 0, 1, h.nonce, NTIME)
    );
    assert_eq!(first.extranonce.to_owned_bytes(), vec![0; 7]);
    // One success for the first two, an error for the third.
    s.handle(mining(MiningOwned::SubmitSharesSuccess(
        SubmitSharesSuccess {
            channel_id: 2,
            last_sequence_number: 1,
            new_submits_accepted_count: 2,
            new_shares_sum: 2,
        },
    )));
    s.handle(mining(MiningOwned::SubmitSharesError(
        SubmitSharesErrorOwned {
            channel_id: 2,
            sequence_number: 2,
            error_code: "stale-share".to_string().try_into().unwrap(),
        },
    )));
    let ev = events(&mut s);
    let accepted: Vec<usize> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Accepted { worker, .. } => Some(*worker),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, [0, 1]);
    assert!(ev.iter().any(|e| matches!(e,
        Event::Rejected { reason, stale: true, worker: 0, .. } if reason == "stale-share")));
}

#[test]
fn set_target_applies_at_once_and_a_new_block_voids_old_jobs() {
    let mut s = extended();
    events(&mut s);
    s.handle(mining(MiningOwned::SetTarget(SetTargetOwned {
        channel_id: 2,
        maximum_target: U256Owned::from(target_bytes(2e-9)),
    })));
    let ev = events(&mut s);
    assert!(ev.contains(&Event::Difficulty(Difficulty::of_target(
        &Target::from_le_bytes(target_bytes(2e-9))
    ))));
    let work = last_work(&ev);
    assert_eq!(work.job_id, "1");
    assert_eq!(work.target, Target::from_le_bytes(target_bytes(2e-9)));
    // A refresh on the same block is active at once.
    s.handle(extended_job(2, false));
    let work = last_work(&events(&mut s));
    assert_eq!((work.job_id.as_str(), work.header.time), ("2", NTIME + 5));
    // A future job waits for its prev hash; then the older jobs are gone.
    let old = found("1", header_of(&work, false), vec![0; 7], 0);
    s.handle(extended_job(3, true));
    assert!(events(&mut s).is_empty(), "a future job is not work yet");
    s.handle(prev_hash(3, 0xbb));
    let work = last_work(&events(&mut s));
    assert_eq!(
        (work.job_id.as_str(), work.header.prev_hash),
        ("3", Hash256(hash(0xbb)))
    );
    assert_eq!(s.submit(&old), Submitted::UnknownJob);
    // A prev hash for a job never sent is the pool's mistake, reported.
    s.handle(prev_hash(9, 0xcc));
    assert!(matches!(&events(&mut s)[..], [Event::Protocol(_)]));
}

#[test]
fn a_block_is_submitted_once_and_later_solutions_of_its_job_dropped() {
    let mut s = extended();
    let work = last_work(&events(&mut s));
    let block = found("1", header_of(&work, true), vec![0; 7], 0);
    assert_eq!(s.submit(&block), Submitted::Block);
    let share = found("1", header_of(&work, false), vec![0; 7], 0);
    assert_eq!(s.submit(&share), Submitted::AfterBlock);
    assert_eq!(drain(&mut s).len(), 1);
}

#[test]
fn a_standard_channel_mines_the_pool_s_merkle_root() {
    let mut s = V2Session::new(config(ChannelKind::Standard), "pool.test", 3336);
    let out = drain(&mut s);
    let AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(setup)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        setup.flags,
        REQUIRES_VERSION_ROLLING | REQUIRES_STANDARD_JOBS
    );
    s.handle(setup_success());
    let out = drain(&mut s);
    assert!(
        matches!(&out[..], [AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannel(o))] if o.user_identity.as_utf8_or_hex() == USER),
        "{out:?}"
    );
    let mut whole = PREFIX.to_vec();
    whole.extend_from_slice(&[0; 7]);
    s.handle(mining(MiningOwned::OpenStandardMiningChannelSuccess(
        OpenStandardMiningChannelSuccessOwned {
            request_id: 1,
            channel_id: 2,
            target: U256Owned::from(target_bytes(1e-9)),
            extranonce_prefix: B032Owned::try_from(whole).unwrap(),
            group_channel_id: 1,
        },
    )));
    s.handle(mining(MiningOwned::NewMiningJob(NewMiningJobOwned {
        channel_id: 2,
        job_id: 1,
        min_ntime: Sv2OptionOwned::new(None),
        version: 0x2000_0000,
        merkle_root: U256Owned::from(hash(0x42)),
    })));
    s.handle(prev_hash(1, 0xaa));
    let work = last_work(&events(&mut s));
    assert!(work.extranonce.is_none(), "the header is mined as given");
    assert_eq!(work.header.merkle_root, Hash256(hash(0x42)));
    let f = found("1", header_of(&work, false), Vec::new(), 0);
    assert_eq!(s.submit(&f), Submitted::Share);
    let out = drain(&mut s);
    let [AnyMessageOwned::Mining(MiningOwned::SubmitSharesStandard(m))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!((m.channel_id, m.job_id, m.nonce), (2, 1, f.header.nonce));
}

#[test]
fn refusals_and_reconnect_reach_the_driver() {
    let mut s = V2Session::new(config(ChannelKind::Standard), "pool.test", 3336);
    s.handle(AnyMessageOwned::Common(
        CommonMessagesOwned::SetupConnectionError(SetupConnectionErrorOwned {
            flags: REQUIRES_STANDARD_JOBS,
            error_code: "unsupported-feature-flags".to_string().try_into().unwrap(),
        }),
    ));
    assert!(matches!(&events(&mut s)[..],
        [Event::AuthorizationFailed(m)] if m.contains("unsupported-feature-flags")));

    let mut s = V2Session::new(config(ChannelKind::Extended), "pool.test", 3336);
    s.handle(setup_success());
    s.handle(mining(MiningOwned::OpenMiningChannelError(
        OpenMiningChannelErrorOwned {
            request_id: 1,
            error_code: "invalid-user-identity".to_string().try_into().unwrap(),
        },
    )));
    assert!(matches!(&events(&mut s)[..],
        [Event::AuthorizationFailed(m)] if m.contains("invalid-user-identity")));

    let mut s = extended();
    events(&mut s);
    s.handle(AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(
        ReconnectOwned {
            new_host: String::new().try_into().unwrap(),
            new_port: 0,
        },
    )));
    assert_eq!(
        events(&mut s),
        [Event::Reconnect(Reconnect {
            host: None,
            port: None,
            wait: None
        })]
    );
}
