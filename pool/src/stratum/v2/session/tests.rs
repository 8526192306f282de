//! The V2 session driven with owned messages and virtual time. The miner side (coinbase,
//! merkle root, header, hash) is computed here from the messages alone, with the `bitcoin`
//! crate's hashes, the way a V2 miner does it: a mistake in a byte order on the pool side
//! shows up as shares that do not verify.

use super::*;
use crate::chain::jobs::CoinbaseSettings;
use crate::chain::jobs::JobMaker;
use crate::chain::jobs::tests::{PREV_A, PREV_B, regtest_template};
use crate::config::{LimitsConfig, Mode, VardiffConfig};
use bitcoin::hashes::{Hash, sha256d};
use common_messages_sv2::SetupConnectionOwned;
use mining_sv2::{
    CloseChannelOwned, OpenStandardMiningChannelOwned, SubmitSharesExtendedOwned,
    SubmitSharesStandard,
};
use protocol::Hash256;
use protocol::address::Network;
use std::collections::BTreeMap;

const ADDR: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";
const ADDR2: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const EN1: [u8; 4] = [0, 0, 0, 9];
const NOW_UNIX: u32 = 1_700_000_100;
const MASK: u32 = 0x1fffe000;

fn settings(mode: Mode) -> SessionSettings {
    SessionSettings {
        mode,
        network: Network::Regtest,
        version_mask: MASK,
        coinbase: CoinbaseSettings {
            pool_tag: b"/t/".to_vec(),
            extranonce2_size: 8,
        },
        vardiff: VardiffConfig {
            start: 3e-10,
            min: 1e-12,
            ..VardiffConfig::default()
        },
        keep_jobs: 4,
        max_ntime_ahead: 7000,
        limits: LimitsConfig {
            ban_after_invalid: 10,
            ..LimitsConfig::default()
        },
        ack_when_stored: false,
    }
}

fn text(s: &str) -> Str0255Owned {
    s.to_string().try_into().unwrap()
}

fn setup_message(protocol: Protocol, min: u16, max: u16, flags: u32) -> AnyMessageOwned {
    AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(SetupConnectionOwned {
        protocol,
        min_version: min,
        max_version: max,
        flags,
        endpoint_host: text("pool.test"),
        endpoint_port: 3334,
        vendor: text("test-miner"),
        hardware_version: text(""),
        firmware: text(""),
        device_id: text("rig"),
    }))
}

fn open_message(
    request_id: u32,
    user: &str,
    hash_rate: f32,
    max_target: [u8; 32],
    min_extranonce: u16,
) -> AnyMessageOwned {
    AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannel(
        OpenExtendedMiningChannelOwned {
            request_id,
            user_identity: text(user),
            nominal_hash_rate: hash_rate,
            max_target: U256Owned::from(max_target),
            min_extranonce_size: min_extranonce,
        },
    ))
}

/// What a V2 miner keeps of one job.
#[derive(Clone, Debug)]
struct MinerJob {
    id: u32,
    version: u32,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    branch: Vec<[u8; 32]>,
    /// A standard channel's job: the pool computed the merkle root.
    merkle_root: Option<[u8; 32]>,
    min_ntime: Option<u32>,
}

/// What a V2 miner keeps of one channel.
#[derive(Clone, Debug, Default)]
struct MinerChannel {
    id: u32,
    extranonce_prefix: Vec<u8>,
    extranonce_size: usize,
    target: [u8; 32],
    jobs: Vec<MinerJob>,
    active: Option<u32>,
    prev_hash: [u8; 32],
    nbits: u32,
    ntime: u32,
}

impl MinerChannel {
    fn active_job(&self) -> &MinerJob {
        let id = self.active.expect("an active job");
        self.jobs.iter().find(|j| j.id == id).expect("the job")
    }

    /// The header hash of a share, as the miner computes it.
    fn hash(&self, job: &MinerJob, extranonce: &[u8], version: u32, nonce: u32) -> Hash256 {
        let root = job.merkle_root.unwrap_or_else(|| {
            let mut coinbase = job.prefix.clone();
            coinbase.extend_from_slice(&self.extranonce_prefix);
            coinbase.extend_from_slice(extranonce);
            coinbase.extend_from_slice(&job.suffix);
            let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
            for step in &job.branch {
                let mut pair = root.to_vec();
                pair.extend_from_slice(step);
                root = sha256d::Hash::hash(&pair).to_byte_array();
            }
            root
        });
        let mut header = version.to_le_bytes().to_vec();
        header.extend_from_slice(&self.prev_hash);
        header.extend_from_slice(&root);
        header.extend_from_slice(&self.ntime.to_le_bytes());
        header.extend_from_slice(&self.nbits.to_le_bytes());
        header.extend_from_slice(&nonce.to_le_bytes());
        Hash256(sha256d::Hash::hash(&header).to_byte_array())
    }

    fn meets(&self, hash: &Hash256, target: [u8; 32]) -> bool {
        Target::from_le_bytes(target).is_met_by(hash)
    }

    fn network(&self) -> Target {
        Target::from_compact(protocol::CompactTarget(self.nbits)).unwrap()
    }

    /// Nonces of the active job whose hashes meet the channel's target and are not blocks.
    fn shares(&self, extranonce: &[u8], count: usize) -> Vec<u32> {
        let job = self.active_job();
        (0..)
            .filter(|&x| {
                let h = self.hash(job, extranonce, job.version, x);
                self.meets(&h, self.target) && !self.network().is_met_by(&h)
            })
            .take(count)
            .collect()
    }

    /// A nonce whose hash does not meet the channel's target.
    fn low(&self, extranonce: &[u8]) -> u32 {
        let job = self.active_job();
        (0..)
            .find(|&x| !self.meets(&self.hash(job, extranonce, job.version, x), self.target))
            .unwrap()
    }

    fn submit(&self, sequence: u32, job: u32, extranonce: &[u8], nonce: u32) -> AnyMessageOwned {
        let version = self
            .jobs
            .iter()
            .find(|j| j.id == job)
            .map_or(0, |j| j.version);
        self.submit_with(sequence, job, extranonce, version, nonce)
    }

    fn submit_with(
        &self,
        sequence: u32,
        job: u32,
        extranonce: &[u8],
        version: u32,
        nonce: u32,
    ) -> AnyMessageOwned {
        AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(
            SubmitSharesExtendedOwned {
                channel_id: self.id,
                sequence_number: sequence,
                job_id: job,
                nonce,
                ntime: self.ntime,
                version,
                extranonce: extranonce.to_vec().try_into().unwrap(),
            },
        ))
    }
}

impl MinerChannel {
    fn submit_standard(&self, sequence: u32, job: u32, nonce: u32) -> AnyMessageOwned {
        let version = self
            .jobs
            .iter()
            .find(|j| j.id == job)
            .map_or(0, |j| j.version);
        AnyMessageOwned::Mining(MiningOwned::SubmitSharesStandard(SubmitSharesStandard {
            channel_id: self.id,
            sequence_number: sequence,
            job_id: job,
            nonce,
            ntime: self.ntime,
            version,
        }))
    }
}

fn open_standard_message(request_id: u32, user: &str, hash_rate: f32) -> AnyMessageOwned {
    AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannel(
        OpenStandardMiningChannelOwned {
            request_id,
            user_identity: text(user),
            nominal_hash_rate: hash_rate,
            max_target: U256Owned::from([0xff; 32]),
        },
    ))
}

struct Harness {
    session: Session,
    maker: JobMaker,
    now: Instant,
    set_up: bool,
    last_job: Option<Arc<Job>>,
    channels: BTreeMap<u32, MinerChannel>,
}

impl Harness {
    fn new(mode: Mode) -> Harness {
        Harness::with(settings(mode))
    }

    fn with(s: SessionSettings) -> Harness {
        let pool_script = (s.mode == Mode::Pplns).then(|| vec![0x51]);
        let maker = JobMaker::new(s.coinbase.clone(), pool_script);
        let now = Instant::now();
        let session = Session::new(Arc::new(s), EN1, now, i64::from(NOW_UNIX) * 1_000_000);
        Harness {
            session,
            maker,
            now,
            set_up: false,
            last_job: None,
            channels: BTreeMap::new(),
        }
    }

    /// Sends one message; returns what the pool answered, after the miner took it in.
    fn send(&mut self, message: AnyMessageOwned) -> Vec<AnyMessageOwned> {
        self.now += Duration::from_millis(50);
        self.session.handle(self.now, message);
        self.drain()
    }

    fn job(&mut self, prev: &str, height: u64) -> Vec<AnyMessageOwned> {
        let job = self
            .maker
            .make(regtest_template(prev, height), NOW_UNIX)
            .unwrap();
        let job = Arc::new(job);
        self.last_job = Some(job.clone());
        self.session.on_job(self.now, job);
        self.drain()
    }

    /// The feed's refresh of the last job with nothing new: the same work.
    fn refresh(&mut self, prev: &str, height: u64) -> Vec<AnyMessageOwned> {
        let mut job = self
            .maker
            .make(regtest_template(prev, height), NOW_UNIX)
            .unwrap();
        job.work = self.last_job.as_ref().expect("a job before").work;
        self.session.on_job(self.now, Arc::new(job));
        self.drain()
    }

    /// The messages sent since, each also applied to the miner's view.
    fn drain(&mut self) -> Vec<AnyMessageOwned> {
        let out: Vec<_> = std::iter::from_fn(|| self.session.poll_transmit()).collect();
        for m in &out {
            self.apply(m);
        }
        out
    }

    fn apply(&mut self, m: &AnyMessageOwned) {
        let AnyMessageOwned::Mining(m) = m else {
            return;
        };
        match m {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => {
                self.channels.insert(
                    s.channel_id,
                    MinerChannel {
                        id: s.channel_id,
                        extranonce_prefix: s.extranonce_prefix.to_owned_bytes(),
                        extranonce_size: usize::from(s.extranonce_size),
                        target: s.target.to_array(),
                        ..MinerChannel::default()
                    },
                );
            }
            MiningOwned::NewExtendedMiningJob(j) => {
                let c = self
                    .channels
                    .get_mut(&j.channel_id)
                    .expect("job on an open channel");
                let min_ntime = j.min_ntime.clone().into_inner();
                c.jobs.push(MinerJob {
                    id: j.job_id,
                    version: j.version,
                    prefix: j.coinbase_tx_prefix.to_owned_bytes(),
                    suffix: j.coinbase_tx_suffix.to_owned_bytes(),
                    branch: j.merkle_path.iter().map(|h| h.to_array()).collect(),
                    merkle_root: None,
                    min_ntime,
                });
                if let Some(ntime) = min_ntime {
                    c.active = Some(j.job_id);
                    c.ntime = ntime;
                }
            }
            MiningOwned::OpenStandardMiningChannelSuccess(s) => {
                self.channels.insert(
                    s.channel_id,
                    MinerChannel {
                        id: s.channel_id,
                        extranonce_prefix: s.extranonce_prefix.to_owned_bytes(),
                        extranonce_size: 0,
                        target: s.target.to_array(),
                        ..MinerChannel::default()
                    },
                );
            }
            MiningOwned::NewMiningJob(j) => {
                let c = self
                    .channels
                    .get_mut(&j.channel_id)
                    .expect("job on an open channel");
                let min_ntime = j.min_ntime.clone().into_inner();
                c.jobs.push(MinerJob {
                    id: j.job_id,
                    version: j.version,
                    prefix: Vec::new(),
                    suffix: Vec::new(),
                    branch: Vec::new(),
                    merkle_root: Some(j.merkle_root.to_array()),
                    min_ntime,
                });
                if let Some(ntime) = min_ntime {
                    c.active = Some(j.job_id);
                    c.ntime = ntime;
                }
            }
            MiningOwned::SetNewPrevHash(p) => {
                let c = self
                    .channels
                    .get_mut(&p.channel_id)
                    .expect("an open channel");
                assert!(
                    c.jobs
                        .iter()
                        .any(|j| j.id == p.job_id && j.min_ntime.is_none()),
                    "SetNewPrevHash names a future job sent before it"
                );
                c.jobs.retain(|j| j.id == p.job_id);
                c.active = Some(p.job_id);
                c.prev_hash = p.prev_hash.to_array();
                c.nbits = p.nbits;
                c.ntime = p.min_ntime;
            }
            MiningOwned::SetExtranoncePrefix(p) => {
                if let Some(c) = self.channels.get_mut(&p.channel_id) {
                    c.extranonce_prefix = p.extranonce_prefix.to_owned_bytes();
                }
            }
            MiningOwned::SetTarget(t) => {
                if let Some(c) = self.channels.get_mut(&t.channel_id) {
                    c.target = t.maximum_target.to_array();
                }
            }
            _ => {}
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn setup(&mut self) {
        let out = self.send(setup_message(
            Protocol::MiningProtocol,
            2,
            2,
            flags::REQUIRES_VERSION_ROLLING,
        ));
        assert!(
            matches!(
                &out[..],
                [AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(s))]
                    if s.used_version == 2
            ),
            "{out:?}"
        );
        self.set_up = true;
    }

    /// Setup (once), a job and an open channel for `user`; returns the channel's id.
    fn open(&mut self, user: &str) -> u32 {
        if !self.set_up {
            self.setup();
            self.job(PREV_A, 2);
        }
        let out = self.send(open_message(7, user, 0.0, [0xff; 32], 0));
        let id = out
            .iter()
            .find_map(|m| match m {
                AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannelSuccess(s)) => {
                    Some(s.channel_id)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("channel opened: {out:?}"));
        assert!(self.channels[&id].active.is_some(), "work at once: {out:?}");
        id
    }

    fn miner(&self, id: u32) -> MinerChannel {
        self.channels[&id].clone()
    }
}

fn success(out: &[AnyMessageOwned]) -> Option<(u32, u32)> {
    out.iter().find_map(|m| match m {
        AnyMessageOwned::Mining(MiningOwned::SubmitSharesSuccess(s)) => {
            Some((s.channel_id, s.last_sequence_number))
        }
        _ => None,
    })
}

fn share_error(out: &[AnyMessageOwned]) -> Option<(u32, String)> {
    out.iter().find_map(|m| match m {
        AnyMessageOwned::Mining(MiningOwned::SubmitSharesError(e)) => {
            Some((e.sequence_number, e.error_code.as_utf8_or_hex()))
        }
        _ => None,
    })
}

fn open_error(out: &[AnyMessageOwned]) -> Option<String> {
    out.iter().find_map(|m| match m {
        AnyMessageOwned::Mining(MiningOwned::OpenMiningChannelError(e)) => {
            Some(e.error_code.as_utf8_or_hex())
        }
        _ => None,
    })
}

fn closes(events: &[Event]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Close(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

const EXTRANONCE: [u8; 7] = [1, 2, 3, 4, 5, 6, 7];

#[test]
fn setup_then_a_channel_then_a_future_job_and_its_prev_hash() {
    let mut h = Harness::new(Mode::Pplns);
    h.setup();
    h.job(PREV_A, 2);
    let user = format!("{ADDR}.rig1");
    let out = h.send(open_message(7, &user, 0.0, [0xff; 32], 4));
    let AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannelSuccess(s)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(s.request_id, 7);
    assert_eq!(s.channel_id, FIRST_CHANNEL);
    assert_eq!(s.group_channel_id, GROUP_CHANNEL);
    assert_ne!(s.channel_id, s.group_channel_id);
    assert_eq!(s.extranonce_prefix.to_owned_bytes(), [0, 0, 0, 9, 0]);
    assert_eq!(
        s.extranonce_size, 7,
        "the pool's 8 bytes less the channel's own"
    );
    let start = Difficulty::new(3e-10).unwrap().target();
    assert_eq!(Target::from_le_bytes(s.target.to_array()), start);
    // A future job, then the prev hash naming it: what the reference translator expects.
    let AnyMessageOwned::Mining(MiningOwned::NewExtendedMiningJob(j)) = &out[1] else {
        panic!("{out:?}")
    };
    assert!(j.min_ntime.clone().into_inner().is_none(), "a future job");
    assert!(j.version_rolling_allowed);
    let AnyMessageOwned::Mining(MiningOwned::SetNewPrevHash(p)) = &out[2] else {
        panic!("{out:?}")
    };
    assert_eq!(p.job_id, j.job_id);
    assert_eq!(p.min_ntime, NOW_UNIX);
    // The header's byte order: the template's prev hash as it sits in the header.
    let mut header_order = hex::decode(PREV_A).unwrap();
    header_order.reverse();
    assert_eq!(p.prev_hash.to_array().to_vec(), header_order);
    assert_eq!(p.nbits, 0x207fffff);
    let events = h.events();
    assert!(matches!(&events[0], Event::Authorized { user: u, .. } if *u == user));
}

#[test]
fn setup_refusals_say_why_and_close() {
    let cases = [
        (
            setup_message(Protocol::JobDeclarationProtocol, 2, 2, 0),
            "unsupported-protocol",
            0,
        ),
        (
            setup_message(Protocol::MiningProtocol, 3, 4, 0),
            "protocol-version-mismatch",
            0,
        ),
        (
            setup_message(
                Protocol::MiningProtocol,
                2,
                2,
                flags::REQUIRES_WORK_SELECTION,
            ),
            "unsupported-feature-flags",
            flags::REQUIRES_WORK_SELECTION,
        ),
        (
            setup_message(
                Protocol::MiningProtocol,
                2,
                2,
                flags::REQUIRES_STANDARD_JOBS | flags::REQUIRES_WORK_SELECTION,
            ),
            "unsupported-feature-flags",
            flags::REQUIRES_WORK_SELECTION,
        ),
    ];
    for (message, code, bad_flags) in cases {
        let mut h = Harness::new(Mode::Pplns);
        let out = h.send(message);
        let [AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionError(e))] = &out[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!(e.error_code.as_utf8_or_hex(), code);
        assert_eq!(e.flags, bad_flags);
        assert_eq!(closes(&h.events()), [CloseReason::Shutdown]);
    }
    // A message before SetupConnection is a protocol error.
    let mut h = Harness::new(Mode::Pplns);
    h.send(open_message(1, ADDR, 0.0, [0xff; 32], 0));
    assert_eq!(closes(&h.events()), [CloseReason::BadLines(1)]);
    // So is a second SetupConnection.
    let mut h = Harness::new(Mode::Pplns);
    h.setup();
    h.send(setup_message(Protocol::MiningProtocol, 2, 2, 0));
    assert_eq!(closes(&h.events()), [CloseReason::BadLines(1)]);
}

#[test]
fn channel_refusals_keep_the_connection() {
    let mut h = Harness::new(Mode::Pplns);
    h.setup();
    h.job(PREV_A, 2);
    let out = h.send(open_message(1, "not-an-address.w", 0.0, [0xff; 32], 0));
    assert_eq!(open_error(&out).as_deref(), Some("invalid-user-identity"));
    let out = h.send(open_message(2, ADDR, 0.0, [0xff; 32], 8));
    assert_eq!(
        open_error(&out).as_deref(),
        Some("min-extranonce-size-too-large")
    );
    let out = h.send(open_message(3, ADDR, f32::NAN, [0xff; 32], 0));
    assert_eq!(
        open_error(&out).as_deref(),
        Some("invalid-nominal-hashrate")
    );
    let out = h.send(open_standard_message(4, "not-an-address", 1e9));
    assert_eq!(open_error(&out).as_deref(), Some("invalid-user-identity"));
    assert!(closes(&h.events()).is_empty());
    // Still good for a channel.
    h.open(ADDR);
}

#[test]
fn valid_shares_are_accepted_and_credited_to_the_channel() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let id = h.open(&user);
    h.events();
    let m = h.miner(id);
    assert_eq!(m.extranonce_size, EXTRANONCE.len());
    let job = m.active_job().id;
    let nonces = m.shares(&EXTRANONCE, 3);
    for (i, &x) in nonces.iter().enumerate() {
        let sequence = 100 + i as u32;
        let out = h.send(m.submit(sequence, job, &EXTRANONCE, x));
        assert_eq!(success(&out), Some((id, sequence)), "{out:?}");
    }
    let shares: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Share(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(shares.len(), 3);
    assert_eq!(shares[0].address, ADDR);
    assert_eq!(shares[0].worker, "rig1");
    assert_eq!(shares[0].height, 2);
    assert_eq!(
        shares[0].accepted.hash,
        m.hash(
            m.active_job(),
            &EXTRANONCE,
            m.active_job().version,
            nonces[0]
        )
    );
    assert_eq!(shares[0].time_us, i64::from(NOW_UNIX) * 1_000_000 + 150_000);
    // Rolled version bits within the mask count too.
    let job = m.active_job();
    let version = job.version | 0x0000_e000;
    let x = (0..)
        .find(|&x| {
            let hash = m.hash(job, &EXTRANONCE, version, x);
            m.meets(&hash, m.target) && !m.network().is_met_by(&hash)
        })
        .unwrap();
    let out = h.send(m.submit_with(7, job.id, &EXTRANONCE, version, x));
    assert_eq!(success(&out), Some((id, 7)), "{out:?}");
}

#[test]
fn a_block_share_assembles_the_block_the_miner_hashed() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    h.events();
    let m = h.miner(id);
    let job = m.active_job();
    let x = (0..)
        .find(|&x| {
            m.network()
                .is_met_by(&m.hash(job, &EXTRANONCE, job.version, x))
        })
        .unwrap();
    let out = h.send(m.submit(1, job.id, &EXTRANONCE, x));
    assert_eq!(success(&out), Some((id, 1)));
    let block = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Block(b) => Some(b),
            _ => None,
        })
        .expect("a block event");
    let hash = m.hash(job, &EXTRANONCE, job.version, x);
    assert_eq!(block.hash, hash);
    assert_eq!(block.height, 2);
    let bytes = hex::decode(&block.hex).unwrap();
    let decoded: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).unwrap();
    assert!(decoded.check_merkle_root());
    assert_eq!(decoded.block_hash().to_byte_array(), hash.0);
    let coinbase = bitcoin::consensus::serialize(&decoded.txdata[0].input[0].script_sig);
    let mut extranonce = m.extranonce_prefix.clone();
    extranonce.extend_from_slice(&EXTRANONCE);
    assert!(
        coinbase.windows(extranonce.len()).any(|w| w == extranonce),
        "the coinbase carries the prefix and the miner's extranonce"
    );
}

#[test]
fn every_kind_of_bad_share_gets_its_error_code() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let m = h.miner(id);
    let job = m.active_job().clone();
    let good = m.shares(&EXTRANONCE, 2);
    assert!(success(&h.send(m.submit(1, job.id, &EXTRANONCE, good[0]))).is_some());
    let cases: Vec<(AnyMessageOwned, &str)> = vec![
        (m.submit(2, job.id, &EXTRANONCE, good[0]), "duplicate-share"),
        (m.submit(3, 999, &EXTRANONCE, good[1]), "invalid-job-id"),
        (
            m.submit(4, job.id, &EXTRANONCE, m.low(&EXTRANONCE)),
            "difficulty-too-low",
        ),
        (
            m.submit(5, job.id, &EXTRANONCE[..6], good[1]),
            "bad-extranonce-size",
        ),
        (
            m.submit_with(6, job.id, &EXTRANONCE, job.version | 1, good[1]),
            "invalid-non-rollable-version-bit",
        ),
        (
            MinerChannel {
                id: 77,
                ..m.clone()
            }
            .submit(7, job.id, &EXTRANONCE, good[1]),
            "invalid-channel-id",
        ),
    ];
    for (message, code) in cases {
        let out = h.send(message);
        let (_, got) = share_error(&out).unwrap_or_else(|| panic!("{code}: {out:?}"));
        assert_eq!(got, code);
    }
    assert!(closes(&h.events()).is_empty());
}

#[test]
fn a_new_block_makes_old_jobs_stale_without_counting_towards_a_ban() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let old = h.miner(id);
    let nonces = old.shares(&EXTRANONCE, 12);
    let out = h.job(PREV_B, 3);
    // A future job and the prev hash naming it.
    assert!(matches!(
        &out[..],
        [
            AnyMessageOwned::Mining(MiningOwned::NewExtendedMiningJob(_)),
            AnyMessageOwned::Mining(MiningOwned::SetNewPrevHash(_)),
        ]
    ));
    for (i, &x) in nonces.iter().enumerate() {
        let out = h.send(old.submit(i as u32, old.active_job().id, &EXTRANONCE, x));
        assert_eq!(
            share_error(&out).map(|e| e.1).as_deref(),
            Some("stale-share")
        );
    }
    assert!(closes(&h.events()).is_empty(), "stale shares never ban");
    // Shares on the new block count.
    let m = h.miner(id);
    assert_eq!(m.prev_hash, Hash256::from_display_hex(PREV_B).unwrap().0);
    let x = m.shares(&EXTRANONCE, 1)[0];
    assert!(success(&h.send(m.submit(50, m.active_job().id, &EXTRANONCE, x))).is_some());
}

#[test]
fn a_run_of_invalid_shares_bans() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let m = h.miner(id);
    for i in 0..10 {
        h.send(m.submit(i, 999, &EXTRANONCE, i));
    }
    assert_eq!(closes(&h.events()), [CloseReason::Banned(10)]);
}

#[test]
fn a_refresh_on_the_same_block_is_active_at_once_with_a_new_ntime() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let first = h.miner(id);
    let x = first.shares(&EXTRANONCE, 1)[0];
    assert!(success(&h.send(first.submit(1, first.active_job().id, &EXTRANONCE, x))).is_some());
    // The feed refreshes with nothing new (the same work): it goes out active at once, with
    // a later ntime, so a miner starting its nonces over finds new headers.
    let out = h.refresh(PREV_A, 2);
    let [AnyMessageOwned::Mining(MiningOwned::NewExtendedMiningJob(j))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(j.min_ntime.clone().into_inner(), Some(NOW_UNIX + 1));
    let m = h.miner(id);
    assert_ne!(m.active_job().id, first.active_job().id);
    assert_eq!(m.ntime, NOW_UNIX + 1);
    for (i, y) in m.shares(&EXTRANONCE, 5).into_iter().enumerate() {
        let out = h.send(m.submit(10 + i as u32, m.active_job().id, &EXTRANONCE, y));
        assert!(success(&out).is_some(), "{out:?}");
    }
    // The header already credited, sent again under the new job id, counts once.
    let version = first.active_job().version;
    let again = first.submit_with(2, m.active_job().id, &EXTRANONCE, version, x);
    let out = h.send(again);
    assert_eq!(
        share_error(&out).map(|e| e.1).as_deref(),
        Some("duplicate-share")
    );
    // The first job still takes its other shares.
    let y = first.shares(&EXTRANONCE, 2)[1];
    assert!(success(&h.send(first.submit(3, first.active_job().id, &EXTRANONCE, y))).is_some());
}

#[test]
fn channels_of_one_connection_have_their_own_prefix_and_payout() {
    let mut h = Harness::new(Mode::Solo);
    let a = h.open(ADDR);
    let b = h.open(&format!("{ADDR2}.second"));
    let (ma, mb) = (h.miner(a), h.miner(b));
    assert_eq!(ma.extranonce_prefix, [0, 0, 0, 9, 0]);
    assert_eq!(mb.extranonce_prefix, [0, 0, 0, 9, 1]);
    // SOLO: each channel's coinbase pays its own address.
    let script = |addr: &str| {
        protocol::address::parse(addr, Network::Regtest)
            .unwrap()
            .script_pubkey
    };
    let pays = |m: &MinerChannel, addr: &str| {
        let suffix = &m.active_job().suffix;
        let s = script(addr);
        suffix.windows(s.len()).any(|w| w == s)
    };
    assert!(pays(&ma, ADDR) && !pays(&ma, ADDR2));
    assert!(pays(&mb, ADDR2) && !pays(&mb, ADDR));
    // The same extranonce on both channels is different work.
    let x = mb.shares(&EXTRANONCE, 1)[0];
    assert!(success(&h.send(mb.submit(1, mb.active_job().id, &EXTRANONCE, x))).is_some());
    let events = h.events();
    let share = events
        .iter()
        .find_map(|e| match e {
            Event::Share(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(share.address, ADDR2);
    assert_eq!(share.worker, "second");
    // A closed channel takes no more shares; the other goes on.
    h.send(AnyMessageOwned::Mining(MiningOwned::CloseChannel(
        CloseChannelOwned {
            channel_id: b,
            reason_code: text("bye"),
        },
    )));
    let y = mb.shares(&EXTRANONCE, 2)[1];
    let out = h.send(mb.submit(2, mb.active_job().id, &EXTRANONCE, y));
    assert_eq!(
        share_error(&out).map(|e| e.1).as_deref(),
        Some("invalid-channel-id")
    );
    let z = ma.shares(&EXTRANONCE, 1)[0];
    assert!(success(&h.send(ma.submit(3, ma.active_job().id, &EXTRANONCE, z))).is_some());
}

#[test]
fn declared_hash_rate_and_maximum_target_set_the_difficulty() {
    let mut h = Harness::new(Mode::Pplns);
    h.setup();
    h.job(PREV_A, 2);
    // 1 TH/s at the default share interval.
    let out = h.send(open_message(1, ADDR, 1e12, [0xff; 32], 0));
    let AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannelSuccess(s)) = &out[0] else {
        panic!("{out:?}")
    };
    let d = Difficulty::of_target(&Target::from_le_bytes(s.target.to_array())).get();
    let want = 1e12 * VardiffConfig::default().target_secs / 4_294_967_296.0;
    // Within the network's difficulty: regtest caps it.
    let network = h.miner(s.channel_id).network();
    let cap = Difficulty::of_target(&network).get();
    assert!(
        (d - want.min(cap)).abs() / d < 1e-3,
        "{d} for {want} capped at {cap}"
    );
    // A miner that takes nothing easier than difficulty 4e-10 gets at least that.
    let floor = Difficulty::new(4e-10).unwrap().target().to_le_bytes();
    let out = h.send(open_message(2, ADDR, 0.0, floor, 0));
    let AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannelSuccess(s)) = &out[0] else {
        panic!("{out:?}")
    };
    let d = Difficulty::of_target(&Target::from_le_bytes(s.target.to_array())).get();
    assert!(d >= 4e-10 * 0.999, "{d}");
    // UpdateChannel raises it further, through SetTarget.
    let floor = Difficulty::new(4.5e-10).unwrap().target().to_le_bytes();
    let out = h.send(AnyMessageOwned::Mining(MiningOwned::UpdateChannel(
        UpdateChannelOwned {
            channel_id: s.channel_id,
            nominal_hash_rate: 0.0,
            maximum_target: U256Owned::from(floor),
        },
    )));
    let [AnyMessageOwned::Mining(MiningOwned::SetTarget(t))] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(t.channel_id, s.channel_id);
    let d = Difficulty::of_target(&Target::from_le_bytes(t.maximum_target.to_array())).get();
    assert!(d >= 4.5e-10 * 0.999, "{d}");
}

#[test]
fn vardiff_moves_a_fast_channel_and_old_shares_still_count() {
    let mut s = settings(Mode::Pplns);
    s.vardiff.start = 1e-12;
    let mut h = Harness::with(s);
    let id = h.open(ADDR);
    let m = h.miner(id);
    let nonces = m.shares(&EXTRANONCE, 200);
    let mut retargeted = None;
    for (i, &x) in nonces.iter().enumerate() {
        let out = h.send(m.submit(i as u32, m.active_job().id, &EXTRANONCE, x));
        if let Some(t) = out.iter().find_map(|o| match o {
            AnyMessageOwned::Mining(MiningOwned::SetTarget(t)) => Some(t.clone()),
            _ => None,
        }) {
            retargeted = Some((i, t));
            break;
        }
        assert!(success(&out).is_some(), "{out:?}");
    }
    let (i, t) = retargeted.expect("a fast channel is retargeted");
    let new = Target::from_le_bytes(t.maximum_target.to_array());
    assert!(new < Target::from_le_bytes(m.target), "harder");
    // A share found before the new target arrived still counts at the old one.
    let out = h.send(m.submit(9999, m.active_job().id, &EXTRANONCE, nonces[i + 1]));
    assert!(success(&out).is_some(), "{out:?}");
}

#[test]
fn with_a_store_the_answer_waits_until_the_share_is_durable() {
    let mut s = settings(Mode::Pplns);
    s.ack_when_stored = true;
    let mut h = Harness::with(s);
    let id = h.open(ADDR);
    h.events();
    let m = h.miner(id);
    let nonces = m.shares(&EXTRANONCE, 2);
    let out = h.send(m.submit(5, m.active_job().id, &EXTRANONCE, nonces[0]));
    assert!(out.is_empty(), "answered before the store: {out:?}");
    let token = |h: &mut Harness| {
        h.events()
            .into_iter()
            .find_map(|e| match e {
                Event::Share(s) => s.awaiting_ack,
                _ => None,
            })
            .expect("a token")
    };
    let t = token(&mut h);
    h.session.share_stored(t, true);
    assert_eq!(success(&h.drain()), Some((id, 5)));
    h.session.share_stored(t, true);
    assert!(h.drain().is_empty(), "answered once");
    h.send(m.submit(6, m.active_job().id, &EXTRANONCE, nonces[1]));
    let t = token(&mut h);
    h.session.share_stored(t, false);
    assert_eq!(
        share_error(&h.drain()),
        Some((6, "share-not-recorded".to_string()))
    );
}

#[test]
fn timeouts_floods_and_shutdown_close() {
    // No channel in time.
    let mut h = Harness::new(Mode::Pplns);
    h.setup();
    let limit = settings(Mode::Pplns).limits.authorize_timeout();
    h.session.on_tick(h.now + limit);
    assert_eq!(closes(&h.events()), [CloseReason::AuthorizeTimeout]);
    // Silent too long.
    let mut h = Harness::new(Mode::Pplns);
    h.open(ADDR);
    let idle = Duration::from_secs(settings(Mode::Pplns).limits.idle_timeout_secs);
    h.session.on_tick(h.now + idle);
    assert_eq!(closes(&h.events()), [CloseReason::Idle]);
    // Junk faster than the limit.
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let channel_id = h.miner(id).id;
    for _ in 0..1000 {
        h.session.handle(
            h.now,
            AnyMessageOwned::Mining(MiningOwned::UpdateChannel(UpdateChannelOwned {
                channel_id,
                nominal_hash_rate: 0.0,
                maximum_target: U256Owned::from([0xff; 32]),
            })),
        );
    }
    assert_eq!(closes(&h.events()), [CloseReason::Flood]);
    // Shutdown.
    let mut h = Harness::new(Mode::Pplns);
    h.open(ADDR);
    h.session.shutdown();
    assert_eq!(closes(&h.events()), [CloseReason::Shutdown]);
}

#[test]
fn a_flood_of_valid_shares_is_never_closed() {
    let mut h = Harness::new(Mode::Pplns);
    let id = h.open(ADDR);
    let m = h.miner(id);
    let nonces = m.shares(&EXTRANONCE, 300);
    for (i, &x) in nonces.iter().enumerate() {
        // All within one instant: far over the message rate.
        h.session
            .handle(h.now, m.submit(i as u32, m.active_job().id, &EXTRANONCE, x));
    }
    assert!(closes(&h.events()).is_empty());
}

/// Opens a standard channel on a connection that asked for standard jobs only.
fn open_standard(h: &mut Harness, user: &str) -> u32 {
    let out = h.send(setup_message(
        Protocol::MiningProtocol,
        2,
        2,
        flags::REQUIRES_STANDARD_JOBS | flags::REQUIRES_VERSION_ROLLING,
    ));
    assert!(
        matches!(
            &out[..],
            [AnyMessageOwned::Common(
                CommonMessagesOwned::SetupConnectionSuccess(_)
            )]
        ),
        "standard jobs are supported: {out:?}"
    );
    h.set_up = true;
    h.job(PREV_A, 2);
    let out = h.send(open_standard_message(9, user, 0.0));
    let AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannelSuccess(s)) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(s.request_id, 9);
    assert_eq!(s.group_channel_id, GROUP_CHANNEL);
    // The whole extranonce: extranonce1, the channel's byte, the rest zero.
    let mut whole = EN1.to_vec();
    whole.extend_from_slice(&[0; 8]);
    assert_eq!(s.extranonce_prefix.to_owned_bytes(), whole);
    assert!(
        matches!(&out[1], AnyMessageOwned::Mining(MiningOwned::NewMiningJob(j))
            if j.channel_id == s.channel_id && j.min_ntime.clone().into_inner().is_none()),
        "a future job: {out:?}"
    );
    assert!(
        matches!(
            &out[2],
            AnyMessageOwned::Mining(MiningOwned::SetNewPrevHash(_))
        ),
        "{out:?}"
    );
    s.channel_id
}

#[test]
fn a_standard_channel_mines_headers_on_the_pool_s_merkle_root() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.asic");
    let id = open_standard(&mut h, &user);
    let events = h.events();
    assert!(matches!(&events[0], Event::Authorized { user: u, .. } if *u == user));
    let m = h.miner(id);
    let job = m.active_job().clone();
    // Shares: the header over the pool's merkle root, the nonce and ntime the miner's.
    let nonces = m.shares(&[], 2);
    for (i, &x) in nonces.iter().enumerate() {
        let out = h.send(m.submit_standard(20 + i as u32, job.id, x));
        assert_eq!(success(&out), Some((id, 20 + i as u32)), "{out:?}");
    }
    let shares: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Share(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(shares.len(), 2);
    assert_eq!(
        (shares[0].address.as_str(), shares[0].worker.as_str()),
        (ADDR, "asic")
    );
    assert_eq!(
        shares[0].accepted.hash,
        m.hash(&job, &[], job.version, nonces[0])
    );
    // The same share twice is a duplicate, as on an extended channel.
    let out = h.send(m.submit_standard(30, job.id, nonces[0]));
    assert_eq!(share_error(&out), Some((30, "duplicate-share".into())));
    // A block: what the pool assembles is the header the miner hashed, and its merkle
    // root (checked by the `bitcoin` crate from the transactions) is the one the pool
    // sent: so the pool's root was computed over the extranonce it announced.
    let x = (0..)
        .find(|&x| m.network().is_met_by(&m.hash(&job, &[], job.version, x)))
        .unwrap();
    let out = h.send(m.submit_standard(31, job.id, x));
    assert_eq!(success(&out), Some((id, 31)), "{out:?}");
    let block = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Block(b) => Some(b),
            _ => None,
        })
        .expect("a block event");
    let hash = m.hash(&job, &[], job.version, x);
    assert_eq!(block.hash, hash);
    let decoded: bitcoin::Block =
        bitcoin::consensus::deserialize(&hex::decode(&block.hex).unwrap()).unwrap();
    assert!(decoded.check_merkle_root());
    assert_eq!(
        decoded.header.merkle_root.to_byte_array(),
        job.merkle_root.unwrap()
    );
    let script_sig = bitcoin::consensus::serialize(&decoded.txdata[0].input[0].script_sig);
    assert!(
        script_sig
            .windows(m.extranonce_prefix.len())
            .any(|w| w == m.extranonce_prefix),
        "the coinbase carries the extranonce announced"
    );
}

#[test]
fn standard_channels_get_their_own_roots_and_new_blocks() {
    let mut h = Harness::new(Mode::Solo);
    let a = open_standard(&mut h, ADDR);
    let out = h.send(open_standard_message(10, ADDR2, 0.0));
    let b = match &out[0] {
        AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannelSuccess(s)) => s.channel_id,
        other => panic!("{other:?}"),
    };
    assert_ne!(a, b);
    // Different prefixes and (SOLO: different payouts too) different roots.
    let (ma, mb) = (h.miner(a), h.miner(b));
    assert_ne!(ma.extranonce_prefix, mb.extranonce_prefix);
    assert_ne!(ma.active_job().merkle_root, mb.active_job().merkle_root);
    // A new block: a future job and SetNewPrevHash on each channel; the old job is stale.
    let old = ma.active_job().clone();
    let x = ma.shares(&[], 1)[0];
    let out = h.job(PREV_B, 3);
    let roots: Vec<_> = out
        .iter()
        .filter_map(|m| match m {
            AnyMessageOwned::Mining(MiningOwned::NewMiningJob(j)) => Some(j.channel_id),
            _ => None,
        })
        .collect();
    assert_eq!(roots, [a, b]);
    let out = h.send(ma.submit_standard(1, old.id, x));
    assert_eq!(share_error(&out), Some((1, "stale-share".into())));
    // A standard submit on an extended channel cannot name its extranonce.
    let e = h.open(ADDR);
    let me = h.miner(e);
    let out = h.send(me.submit_standard(2, me.active_job().id, 1));
    assert_eq!(share_error(&out), Some((2, "bad-extranonce-size".into())));
}

#[test]
fn shutdown_asks_to_reconnect_except_the_translator_that_cannot() {
    let reconnects = |out: &[AnyMessageOwned]| {
        out.iter()
            .filter_map(|m| match m {
                AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(r)) => {
                    Some((r.new_host.as_utf8_or_hex(), r.new_port))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    // A miner: Reconnect to the present host and port, then the close.
    let mut h = Harness::new(Mode::Pplns);
    h.open(ADDR);
    h.events();
    h.session.shutdown();
    assert_eq!(reconnects(&h.drain()), [(String::new(), 0)]);
    assert_eq!(closes(&h.events()), [CloseReason::Shutdown]);
    // Once only, and nothing after.
    h.session.shutdown();
    assert!(h.drain().is_empty());
    // SRI's translator 0.6.0 panics on Reconnect: a plain close.
    let mut h = Harness::new(Mode::Pplns);
    let AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(mut setup)) = setup_message(
        Protocol::MiningProtocol,
        2,
        2,
        flags::REQUIRES_VERSION_ROLLING,
    ) else {
        unreachable!()
    };
    setup.vendor = text("SRI");
    setup.hardware_version = text("Translator Proxy");
    h.send(AnyMessageOwned::Common(
        CommonMessagesOwned::SetupConnection(setup),
    ));
    h.session.shutdown();
    assert!(reconnects(&h.drain()).is_empty());
    assert_eq!(closes(&h.events()), [CloseReason::Shutdown]);
    // Before SetupConnection there is nobody to ask.
    let mut h = Harness::new(Mode::Pplns);
    h.session.shutdown();
    assert!(h.drain().is_empty());
}

#[test]
fn a_new_extranonce1_moves_every_channel_and_old_jobs_go_stale() {
    let mut h = Harness::new(Mode::Pplns);
    let e = h.open(ADDR);
    let s = h.send(open_standard_message(11, ADDR, 0.0));
    let s = match &s[0] {
        AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannelSuccess(m)) => m.channel_id,
        other => panic!("{other:?}"),
    };
    h.events();
    let (old_e, old_s) = (h.miner(e), h.miner(s));
    let x = old_e.shares(&EXTRANONCE, 1)[0];
    let new = [0, 0, 0, 42];
    h.session.change_extranonce1(new);
    let out = h.drain();
    let prefixes: BTreeMap<u32, Vec<u8>> = out
        .iter()
        .filter_map(|m| match m {
            AnyMessageOwned::Mining(MiningOwned::SetExtranoncePrefix(p)) => {
                Some((p.channel_id, p.extranonce_prefix.to_owned_bytes()))
            }
            _ => None,
        })
        .collect();
    // The new extranonce1 and the channel's own byte; the standard channel's whole
    // extranonce.
    let mut want_e = new.to_vec();
    want_e.push(old_e.extranonce_prefix[4]);
    let mut want_s = new.to_vec();
    want_s.push(old_s.extranonce_prefix[4]);
    want_s.resize(old_s.extranonce_prefix.len(), 0);
    assert_eq!(
        prefixes,
        BTreeMap::from([(e, want_e.clone()), (s, want_s.clone())])
    );
    // Each channel has work at once, on the new prefix.
    for id in [e, s] {
        let m = h.miner(id);
        assert_ne!(
            m.active_job().id,
            if id == e {
                old_e.active_job().id
            } else {
                old_s.active_job().id
            }
        );
    }
    // A share on the old job is stale (free); shares on the new work are accepted.
    let out = h.send(old_e.submit(1, old_e.active_job().id, &EXTRANONCE, x));
    assert_eq!(share_error(&out), Some((1, "stale-share".into())));
    let m = h.miner(e);
    assert_eq!(m.extranonce_prefix, want_e);
    let y = m.shares(&EXTRANONCE, 1)[0];
    let out = h.send(m.submit(2, m.active_job().id, &EXTRANONCE, y));
    assert_eq!(success(&out), Some((e, 2)), "{out:?}");
    let ms = h.miner(s);
    let z = ms.shares(&[], 1)[0];
    let out = h.send(ms.submit_standard(3, ms.active_job().id, z));
    assert_eq!(success(&out), Some((s, 3)), "{out:?}");
    let shares = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Share(_)))
        .count();
    assert_eq!(shares, 2);
}
