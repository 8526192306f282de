//! Our miner's Stratum client session against the pool's session, both sans-IO, in
//! virtual time and without a socket: every line crosses as text through the codec, so a
//! drift between what one side writes and the other reads fails here in milliseconds.
//!
//! The miner subscribes, authorizes with version rolling, finds shares on the work it is
//! given (with its own header code, `engine::Plan`), has them accepted, follows a
//! difficulty change and a new block, and submits a block the pool turns into one.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use miner::client::{
    ChannelKind, Event as MinerEvent, Session as MinerSession, SessionConfig, Submitted, V2Config,
    V2Session,
};
use miner::engine::{Found, Plan, Work};
use parsers_sv2::AnyMessageOwned;
use pool::chain::jobs::{CoinbaseSettings, JobMaker};
use pool::chain::template::Template;
use pool::config::{LimitsConfig, Mode, VardiffConfig};
use pool::stratum::session::{Event as PoolEvent, Session as PoolSession, SessionSettings};
use pool::stratum::v2::session::Session as V2PoolSession;
use protocol::address::Network;
use protocol::stratum::{Message, StratumCodec};
use protocol::sv2::transport::{decode_frame, encode_frame};
use protocol::{Hash256, Target};

const ADDRESS: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";
const NOW_UNIX: u32 = 1_700_000_100;
const PREV_A: &str = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
const PREV_B: &str = "1f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";

/// A regtest template as a Bitcoin SV node sends it (one transaction, no segwit), on `prev`.
fn template(prev: &str, height: u64) -> Arc<Template> {
    let mut json: serde_json::Value =
        serde_json::from_str(include_str!("data/gbt-regtest-sv.json")).unwrap();
    json["previousblockhash"] = prev.into();
    json["longpollid"] = format!("{prev}1").into();
    json["height"] = height.into();
    let raw = protocol::template::BlockTemplate::from_json(&json).unwrap();
    Arc::new(Template {
        checked: raw.validate().unwrap(),
        node: "test".into(),
        fetch_time: Duration::ZERO,
    })
}

/// A line as it crosses the wire: written by one side's codec, read by the other's.
fn wire(msg: &Message) -> Result<Message, protocol::stratum::FrameError> {
    let mut buf = BytesMut::new();
    StratumCodec::write(msg, &mut buf);
    let mut codec = StratumCodec::new(protocol::stratum::codec::MAX_LINE_FROM_POOL);
    codec.next_line(&mut buf).expect("one whole line")
}

struct Pair {
    pool: PoolSession,
    miner: MinerSession,
    maker: JobMaker,
    now: Instant,
    pool_events: Vec<PoolEvent>,
    miner_events: Vec<MinerEvent>,
}

/// Solutions of `work` meeting `target`, found the way the engine builds headers.
fn solve(work: &Work, target: Target, count: usize, skip: usize) -> Vec<Found> {
    let plan = Plan::new(work.clone());
    let (header, extranonce2) = plan.header_for(0);
    (0u32..)
        .map(|nonce| {
            let mut h = header;
            h.nonce = nonce;
            (h, h.hash())
        })
        .filter(|(_, hash)| target.is_met_by(hash))
        .skip(skip)
        .take(count)
        .map(|(header, hash)| Found {
            worker: 0,
            job_id: work.job_id.clone(),
            extranonce2: extranonce2.clone(),
            header,
            hash,
        })
        .collect()
}

/// The pool's settings for both pairs.
fn settings() -> Arc<SessionSettings> {
    Arc::new(SessionSettings {
        mode: Mode::Pplns,
        network: Network::Regtest,
        version_mask: 0x1fff_e000,
        coinbase: CoinbaseSettings {
            pool_tag: b"/pair/".to_vec(),
            extranonce2_size: 8,
        },
        vardiff: VardiffConfig {
            start: 1e-10,
            min: 1e-12,
            ..VardiffConfig::default()
        },
        keep_jobs: 8,
        max_ntime_ahead: 7000,
        limits: LimitsConfig::default(),
        ack_when_stored: false,
    })
}

impl Pair {
    fn new() -> Pair {
        let settings = settings();
        let maker = JobMaker::new(settings.coinbase.clone(), Some(vec![0x51]));
        let now = Instant::now();
        let pool = PoolSession::new(
            settings,
            maker.ids(),
            [0, 0, 0, 7],
            now,
            i64::from(NOW_UNIX) * 1_000_000,
        );
        let miner = MinerSession::new(
            SessionConfig {
                user: format!("{ADDRESS}.pair"),
                password: "x".into(),
                agent: "sha256d-miner/test".into(),
                suggest_difficulty: None,
                version_rolling_mask: Some(0x1fff_e000),
                extranonce2_range: None,
            },
            None,
        );
        Pair {
            pool,
            miner,
            maker,
            now,
            pool_events: Vec::new(),
            miner_events: Vec::new(),
        }
    }

    fn job(&mut self, prev: &str, height: u64) {
        let job = self.maker.make(template(prev, height), NOW_UNIX).unwrap();
        self.pool.on_job(self.now, Arc::new(job));
        self.pump();
    }

    /// Moves lines both ways until both sides are quiet; 10 ms of virtual time a round.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(m) = self.miner.poll_transmit() {
                self.now += Duration::from_millis(10);
                self.pool.handle(self.now, wire(&m));
                moved = true;
            }
            while let Some(m) = self.pool.poll_transmit() {
                self.miner
                    .handle(wire(&m.into_message().expect("a line")).unwrap());
                moved = true;
            }
            self.pool_events
                .extend(std::iter::from_fn(|| self.pool.poll_event()));
            self.miner_events
                .extend(std::iter::from_fn(|| self.miner.poll_event()));
            if !moved {
                return;
            }
        }
    }

    fn last_work(&self) -> Work {
        self.miner_events
            .iter()
            .rev()
            .find_map(|e| match e {
                MinerEvent::Work(w) => Some((**w).clone()),
                _ => None,
            })
            .expect("work for the miner")
    }

    fn accepted(&self) -> usize {
        self.miner_events
            .iter()
            .filter(|e| matches!(e, MinerEvent::Accepted { .. }))
            .count()
    }

    fn rejected(&self) -> Vec<String> {
        self.miner_events
            .iter()
            .filter_map(|e| match e {
                MinerEvent::Rejected { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn our_miner_and_our_pool_agree_on_every_line() {
    let mut p = Pair::new();
    p.job(PREV_A, 2);
    p.pump();
    assert!(
        p.miner_events
            .iter()
            .any(|e| matches!(e, MinerEvent::Authorized))
    );
    assert!(
        p.miner_events
            .contains(&MinerEvent::VersionRolling(0x1fff_e000))
    );
    let work = p.last_work();
    assert_eq!(work.header.prev_hash, PREV_A.parse::<Hash256>().unwrap());
    assert_eq!(work.version_mask, 0x1fff_e000);

    // Shares below the network target: accepted, with the difficulty the miner holds.
    let network = Target::from_compact(work.header.bits).unwrap();
    let shares: Vec<Found> = solve(&work, work.target, 40, 0)
        .into_iter()
        .filter(|f| !network.is_met_by(&f.hash))
        .take(4)
        .collect();
    for f in &shares {
        assert_eq!(p.miner.submit(f), Submitted::Share);
    }
    p.pump();
    assert_eq!(p.accepted(), 4, "rejected: {:?}", p.rejected());
    let pool_shares = p
        .pool_events
        .iter()
        .filter(|e| matches!(e, PoolEvent::Share(_)))
        .count();
    assert_eq!(pool_shares, 4);

    // One more share makes vardiff's first retarget: the miner follows the new
    // difficulty and the work it comes with, and its shares on it are still good.
    let more = solve(&work, work.target, 60, 0);
    let fifth = more
        .iter()
        .filter(|f| !network.is_met_by(&f.hash))
        .find(|f| shares.iter().all(|s| s.hash != f.hash))
        .unwrap()
        .clone();
    p.miner.submit(&fifth);
    p.pump();
    assert_eq!(p.accepted(), 5, "rejected: {:?}", p.rejected());
    let retargeted = p
        .miner_events
        .iter()
        .any(|e| matches!(e, MinerEvent::Difficulty(_)));
    assert!(retargeted, "{:?}", p.miner_events);
    let reissued = p.last_work();
    assert_ne!(reissued.job_id, work.job_id);
    assert!(reissued.header.time > work.header.time, "a later ntime");
    let on_new = solve(&reissued, reissued.target, 1, 0);
    p.miner.submit(&on_new[0]);
    p.pump();
    assert_eq!(p.accepted(), 6, "rejected: {:?}", p.rejected());

    // A new block: clean work; a block found on it becomes the pool's block event.
    p.job(PREV_B, 3);
    let fresh = p.last_work();
    assert_eq!(fresh.header.prev_hash, PREV_B.parse::<Hash256>().unwrap());
    let block = solve(&fresh, network, 1, 0).remove(0);
    assert_eq!(p.miner.submit(&block), Submitted::Block);
    p.pump();
    let found = p
        .pool_events
        .iter()
        .rev()
        .find_map(|e| match e {
            PoolEvent::Block(b) => Some(b.clone()),
            _ => None,
        })
        .expect("the pool saw the block");
    assert_eq!(found.hash, block.hash);
    // The block the pool would submit starts with the header the miner hashed.
    assert_eq!(&found.hex[..160], hex::encode(block.header.encode()));
    assert_eq!(found.height, 3);
    assert!(p.rejected().is_empty(), "{:?}", p.rejected());
}

/// Our miner's V2 session against the pool's V2 session: every message crosses as a frame
/// (SRI's encoder on one side, the V2 reader's decoding on the other).
struct V2Pair {
    pool: V2PoolSession,
    miner: V2Session,
    maker: JobMaker,
    now: Instant,
    pool_events: Vec<PoolEvent>,
    miner_events: Vec<MinerEvent>,
}

fn frame(message: AnyMessageOwned) -> AnyMessageOwned {
    let mut bytes = encode_frame(message).unwrap();
    decode_frame(&mut bytes).unwrap()
}

impl V2Pair {
    fn new(channel: ChannelKind) -> V2Pair {
        let settings = settings();
        let maker = JobMaker::new(settings.coinbase.clone(), Some(vec![0x51]));
        let now = Instant::now();
        let pool = V2PoolSession::new(settings, [0, 0, 0, 7], now, i64::from(NOW_UNIX) * 1_000_000);
        let miner = V2Session::new(
            V2Config {
                user: format!("{ADDRESS}.v2pair"),
                agent: "sha256d-miner/test".into(),
                channel,
                nominal_hash_rate: 0.0,
                version_rolling: true,
                extranonce_range: None,
            },
            "127.0.0.1",
            3336,
        );
        V2Pair {
            pool,
            miner,
            maker,
            now,
            pool_events: Vec::new(),
            miner_events: Vec::new(),
        }
    }

    fn job(&mut self, prev: &str, height: u64) {
        let job = self.maker.make(template(prev, height), NOW_UNIX).unwrap();
        self.pool.on_job(self.now, Arc::new(job));
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(m) = self.miner.poll_transmit() {
                self.now += Duration::from_millis(10);
                self.pool.handle(self.now, frame(m));
                moved = true;
            }
            while let Some(m) = self.pool.poll_transmit() {
                self.miner.handle(frame(m));
                moved = true;
            }
            self.pool_events
                .extend(std::iter::from_fn(|| self.pool.poll_event()));
            self.miner_events
                .extend(std::iter::from_fn(|| self.miner.poll_event()));
            if !moved {
                return;
            }
        }
    }

    fn last_work(&self) -> Work {
        self.miner_events
            .iter()
            .rev()
            .find_map(|e| match e {
                MinerEvent::Work(w) => Some((**w).clone()),
                _ => None,
            })
            .expect("work for the miner")
    }

    fn accepted(&self) -> usize {
        self.miner_events
            .iter()
            .filter(|e| matches!(e, MinerEvent::Accepted { .. }))
            .count()
    }
}

#[test]
fn our_v2_miner_and_our_v2_pool_agree_on_every_frame() {
    for channel in [ChannelKind::Extended, ChannelKind::Standard] {
        let mut p = V2Pair::new(channel);
        p.job(PREV_A, 2);
        assert!(
            p.miner_events.contains(&MinerEvent::Authorized),
            "{channel:?}: {:?}",
            p.miner_events
        );
        let work = p.last_work();
        assert_eq!(work.header.prev_hash, PREV_A.parse::<Hash256>().unwrap());
        assert_eq!(work.version_mask, 0x1fff_e000);
        assert_eq!(work.extranonce.is_some(), channel == ChannelKind::Extended);

        // Shares found the way the engine builds headers: accepted.
        let network = Target::from_compact(work.header.bits).unwrap();
        let shares: Vec<Found> = solve(&work, work.target, 40, 0)
            .into_iter()
            .filter(|f| !network.is_met_by(&f.hash))
            .take(4)
            .collect();
        for f in &shares {
            assert_eq!(p.miner.submit(f), Submitted::Share);
        }
        p.pump();
        assert_eq!(p.accepted(), 4, "{channel:?}: {:?}", p.miner_events);
        let pool_shares = p
            .pool_events
            .iter()
            .filter(|e| matches!(e, PoolEvent::Share(_)))
            .count();
        assert_eq!(pool_shares, 4);

        // A new block: the miner moves to it; a block found there is the pool's block.
        p.job(PREV_B, 3);
        let fresh = p.last_work();
        assert_eq!(fresh.header.prev_hash, PREV_B.parse::<Hash256>().unwrap());
        let block = solve(&fresh, network, 1, 0).remove(0);
        assert_eq!(p.miner.submit(&block), Submitted::Block);
        p.pump();
        let found = p
            .pool_events
            .iter()
            .rev()
            .find_map(|e| match e {
                PoolEvent::Block(b) => Some(b.clone()),
                _ => None,
            })
            .expect("the pool saw the block");
        assert_eq!(found.hash, block.hash);
        assert_eq!(&found.hex[..160], hex::encode(block.header.encode()));
        assert_eq!(p.accepted(), 5);
    }
}
