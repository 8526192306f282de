//! The Stratum V2 client session (the Mining Protocol) as a state machine with no IO and no
//! clock, like the v1 [`Session`](super::Session): feed it the pool's decoded messages
//! ([`V2Session::handle`]) and the engine's solutions ([`V2Session::submit`]); take what to
//! send ([`V2Session::poll_transmit`]) and what happened ([`V2Session::poll_event`], the
//! same [`Event`]s as v1, so the driver, the stats and the API treat both alike).
//!
//! What it does:
//! - `SetupConnection` (Mining Protocol, version 2, version rolling; standard jobs only when
//!   a standard channel is asked for), then, once the pool accepts, one channel: extended
//!   by default (the engine rolls the miner's part of the extranonce, across its threads and
//!   devices as it rolls extranonce2 on v1), or standard (header-only: the pool sends each
//!   job's merkle root, the engine rolls nonce and version bits).
//! - Jobs: a future job waits for the `SetNewPrevHash` that names it; a job with a
//!   `min_ntime` is active at once. `SetTarget` applies at once (the pool refuses hashes
//!   above the new target from then on), so the current work is re-issued with it.
//! - Shares: `SubmitSharesExtended` / `SubmitSharesStandard` with a sequence number each;
//!   `SubmitShares.Success` acknowledges every share up to its `last_sequence_number`
//!   that was not refused on its own (a pool may batch acknowledgements),
//!   `SubmitShares.Error` refuses one.
//! - `SetExtranoncePrefix` changes the prefix for the jobs that follow; `Reconnect` is
//!   handed to the driver like v1's `client.reconnect`.

use std::collections::{BTreeMap, VecDeque};

use binary_sv2::{Str0255Owned, U256Owned};
use common_messages_sv2::{Protocol, SetupConnectionOwned};
use mining_sv2::{
    OpenExtendedMiningChannelOwned, OpenStandardMiningChannelOwned, SubmitSharesExtendedOwned,
    SubmitSharesStandard,
};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
use protocol::stratum::Reconnect;
use protocol::{BlockHeader, CompactTarget, Difficulty, Hash256, Target};

use super::session::{Event, Submitted};
use crate::engine::{Extranonce, Found, Work};

/// Which kind of channel to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// The miner rolls its part of the extranonce (the default).
    Extended,
    /// Header-only mining: the pool computes each job's merkle root.
    Standard,
}

/// What the session needs from the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Config {
    /// The user identity: `ADDRESS[.WORKER]` on our pool (`-u`).
    pub user: String,
    /// Our name and version, sent as the vendor and firmware in `SetupConnection`.
    pub agent: String,
    /// The channel kind (`--sv2-channel`).
    pub channel: ChannelKind,
    /// The hash rate declared when opening the channel (H/s); the pool's first target
    /// comes from it. 0 leaves the choice to the pool.
    pub nominal_hash_rate: f32,
    /// Roll version bits when the pool allows it (the mask is BIP 320's, as the spec says).
    pub version_rolling: bool,
    /// Extranonce values this engine may use on an extended channel: `(first, count)`;
    /// `None` for all of them.
    pub extranonce_range: Option<(u64, u64)>,
}

/// The version bits a V2 miner may roll when a job allows it (BIP 320).
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;

/// `SetupConnection` flags of the Mining Protocol.
const REQUIRES_STANDARD_JOBS: u32 = 1;
const REQUIRES_VERSION_ROLLING: u32 = 1 << 2;

/// The request id of our one channel.
const OPEN_REQUEST: u32 = 1;

/// Where the opening stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// `SetupConnection` sent, no answer yet.
    SettingUp,
    /// The channel asked for.
    Opening,
    /// The channel is open.
    Open,
    /// The pool refused the connection or the channel: nothing more to do.
    Refused,
}

/// One job as the pool sent it.
#[derive(Clone, Debug)]
struct Job {
    version: u32,
    rolling: bool,
    /// Extended: the coinbase around the extranonce and the merkle path.
    coinbase: Option<(Vec<u8>, Vec<u8>, Vec<Hash256>)>,
    /// Standard: the merkle root the pool computed.
    merkle_root: Hash256,
    /// `None`: a future job, waiting for its `SetNewPrevHash`.
    ntime: Option<u32>,
}

/// A share waiting for its answer.
#[derive(Clone, Debug)]
struct Pending {
    job_id: String,
    difficulty: Difficulty,
    worker: usize,
}

/// One connection's V2 client state.
pub struct V2Session {
    cfg: V2Config,
    stage: Stage,
    channel: u32,
    extranonce_prefix: Vec<u8>,
    extranonce_size: usize,
    target: Target,
    jobs: BTreeMap<u32, Job>,
    /// The active job, the previous block hash and nBits it is mined on.
    active: Option<u32>,
    prev_hash: Hash256,
    bits: u32,
    next_sequence: u32,
    pending: BTreeMap<u32, Pending>,
    /// Jobs on which a block was found: further solutions are dropped quietly.
    solved: VecDeque<u32>,
    out: VecDeque<AnyMessageOwned>,
    events: VecDeque<Event>,
}

fn text(s: &str) -> Str0255Owned {
    // Our own strings; a longer one is cut to the 255 bytes the field holds.
    let mut s = s.to_string();
    while s.len() > 255 {
        s.pop();
    }
    Str0255Owned::try_from(s).unwrap_or_else(|_| unreachable!("at most 255 bytes"))
}

impl V2Session {
    /// A session for a connection whose Noise handshake is done; `SetupConnection` is
    /// queued at once. `host` and `port` are the pool's, as the miner was told them.
    pub fn new(cfg: V2Config, host: &str, port: u16) -> V2Session {
        let mut flags = 0;
        if cfg.version_rolling {
            flags |= REQUIRES_VERSION_ROLLING;
        }
        if cfg.channel == ChannelKind::Standard {
            flags |= REQUIRES_STANDARD_JOBS;
        }
        let (vendor, firmware) = cfg.agent.split_once('/').unwrap_or((&cfg.agent, ""));
        let setup = SetupConnectionOwned {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags,
            endpoint_host: text(host),
            endpoint_port: port,
            vendor: text(vendor),
            hardware_version: text("cpu/opencl"),
            firmware: text(firmware),
            device_id: text(""),
        };
        let mut s = V2Session {
            cfg,
            stage: Stage::SettingUp,
            channel: 0,
            extranonce_prefix: Vec::new(),
            extranonce_size: 0,
            target: Target::MAX,
            jobs: BTreeMap::new(),
            active: None,
            prev_hash: Hash256::ZERO,
            bits: 0,
            next_sequence: 0,
            pending: BTreeMap::new(),
            solved: VecDeque::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        s.out.push_back(AnyMessageOwned::Common(
            CommonMessagesOwned::SetupConnection(setup),
        ));
        s
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<AnyMessageOwned> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the channel is open.
    pub fn is_ready(&self) -> bool {
        self.stage == Stage::Open
    }

    /// Handles one message from the pool.
    pub fn handle(&mut self, message: AnyMessageOwned) {
        match message {
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(_))
                if self.stage == Stage::SettingUp =>
            {
                self.stage = Stage::Opening;
                self.open_channel();
            }
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionError(e)) => {
                self.stage = Stage::Refused;
                let code = e.error_code.as_utf8_or_hex();
                self.events.push_back(Event::AuthorizationFailed(format!(
                    "the pool refused the connection: {code} (flags {:#x})",
                    e.flags
                )));
            }
            AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(r)) => {
                let host = r.new_host.as_utf8_or_hex();
                self.events.push_back(Event::Reconnect(Reconnect {
                    host: (!host.is_empty()).then_some(host),
                    port: (r.new_port != 0).then_some(r.new_port),
                    wait: None,
                }));
            }
            AnyMessageOwned::Mining(m) => self.handle_mining(m),
            other => self
                .events
                .push_back(Event::Protocol(format!("unexpected message {other:?}"))),
        }
    }

    fn open_channel(&mut self) {
        let user = text(&self.cfg.user);
        let hash_rate = self.cfg.nominal_hash_rate;
        let max_target = U256Owned::from([0xff; 32]);
        let message = match self.cfg.channel {
            ChannelKind::Extended => {
                MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
                    request_id: OPEN_REQUEST,
                    user_identity: user,
                    nominal_hash_rate: hash_rate,
                    max_target,
                    // Our engine rolls up to 8 bytes; 4 give every device 2^32 coinbases.
                    min_extranonce_size: 4,
                })
            }
            ChannelKind::Standard => {
                MiningOwned::OpenStandardMiningChannel(OpenStandardMiningChannelOwned {
                    request_id: OPEN_REQUEST,
                    user_identity: user,
                    nominal_hash_rate: hash_rate,
                    max_target,
                })
            }
        };
        self.out.push_back(AnyMessageOwned::Mining(message));
    }

    fn opened(&mut self, channel: u32, target: [u8; 32], prefix: Vec<u8>, size: usize) {
        self.stage = Stage::Open;
        self.channel = channel;
        self.target = Target::from_le_bytes(target);
        self.events.push_back(Event::Subscribed {
            extranonce1: prefix.clone(),
            extranonce2_size: size,
        });
        self.extranonce_prefix = prefix;
        self.extranonce_size = size;
        self.events.push_back(Event::Authorized);
        self.events
            .push_back(Event::Difficulty(Difficulty::of_target(&self.target)));
    }

    fn handle_mining(&mut self, m: MiningOwned) {
        match m {
            MiningOwned::OpenExtendedMiningChannelSuccess(s)
                if self.stage == Stage::Opening && self.cfg.channel == ChannelKind::Extended =>
            {
                let prefix = s.extranonce_prefix.to_owned_bytes();
                self.opened(
                    s.channel_id,
                    s.target.to_array(),
                    prefix,
                    usize::from(s.extranonce_size),
                );
            }
            MiningOwned::OpenStandardMiningChannelSuccess(s)
                if self.stage == Stage::Opening && self.cfg.channel == ChannelKind::Standard =>
            {
                let prefix = s.extranonce_prefix.to_owned_bytes();
                self.opened(s.channel_id, s.target.to_array(), prefix, 0);
            }
            MiningOwned::OpenMiningChannelError(e) => {
                self.stage = Stage::Refused;
                self.events.push_back(Event::AuthorizationFailed(format!(
                    "the pool refused the channel: {}",
                    e.error_code.as_utf8_or_hex()
                )));
            }
            MiningOwned::NewExtendedMiningJob(j) if j.channel_id == self.channel => {
                let branch = j
                    .merkle_path
                    .iter()
                    .map(|h| Hash256(h.to_array()))
                    .collect();
                let job = Job {
                    version: j.version,
                    rolling: j.version_rolling_allowed,
                    coinbase: Some((
                        j.coinbase_tx_prefix.to_owned_bytes(),
                        j.coinbase_tx_suffix.to_owned_bytes(),
                        branch,
                    )),
                    merkle_root: Hash256::ZERO,
                    ntime: j.min_ntime.clone().into_inner(),
                };
                self.add_job(j.job_id, job);
            }
            MiningOwned::NewMiningJob(j) if j.channel_id == self.channel => {
                let job = Job {
                    version: j.version,
                    rolling: true,
                    coinbase: None,
                    merkle_root: Hash256(j.merkle_root.to_array()),
                    ntime: j.min_ntime.clone().into_inner(),
                };
                self.add_job(j.job_id, job);
            }
            MiningOwned::SetNewPrevHash(p) if p.channel_id == self.channel => {
                let Some(mut job) = self.jobs.remove(&p.job_id) else {
                    self.events.push_back(Event::Protocol(format!(
                        "SetNewPrevHash names job {} that was never sent",
                        p.job_id
                    )));
                    return;
                };
                // A new block: every other job is stale.
                job.ntime = Some(p.min_ntime);
                self.jobs.clear();
                self.jobs.insert(p.job_id, job);
                self.prev_hash = Hash256(p.prev_hash.to_array());
                self.bits = p.nbits;
                self.active = Some(p.job_id);
                self.emit_work();
            }
            MiningOwned::SetTarget(t) if t.channel_id == self.channel => {
                self.target = Target::from_le_bytes(t.maximum_target.to_array());
                self.events
                    .push_back(Event::Difficulty(Difficulty::of_target(&self.target)));
                self.emit_work();
            }
            MiningOwned::SetExtranoncePrefix(p) if p.channel_id == self.channel => {
                self.extranonce_prefix = p.extranonce_prefix.to_owned_bytes();
            }
            MiningOwned::SubmitSharesSuccess(s) if s.channel_id == self.channel => {
                let later = self
                    .pending
                    .split_off(&s.last_sequence_number.wrapping_add(1));
                let answered = std::mem::replace(&mut self.pending, later);
                for p in answered.into_values() {
                    self.events.push_back(Event::Accepted {
                        job_id: p.job_id,
                        difficulty: p.difficulty,
                        worker: p.worker,
                    });
                }
            }
            MiningOwned::SubmitSharesError(e) if e.channel_id == self.channel => {
                let Some(p) = self.pending.remove(&e.sequence_number) else {
                    self.events.push_back(Event::Protocol(format!(
                        "an error for share {} that was not sent",
                        e.sequence_number
                    )));
                    return;
                };
                let reason = e.error_code.as_utf8_or_hex();
                let stale = matches!(reason.as_str(), "stale-share" | "invalid-job-id");
                self.events.push_back(Event::Rejected {
                    job_id: p.job_id,
                    worker: p.worker,
                    reason,
                    stale,
                });
            }
            MiningOwned::CloseChannel(c) if c.channel_id == self.channel => {
                self.stage = Stage::Refused;
                self.events.push_back(Event::AuthorizationFailed(format!(
                    "the pool closed the channel: {}",
                    c.reason_code.as_utf8_or_hex()
                )));
            }
            // Messages for other channels (group channels) or of no use to one channel.
            MiningOwned::SetGroupChannel(_) => {}
            other => self
                .events
                .push_back(Event::Protocol(format!("ignored message {other:?}"))),
        }
    }

    fn add_job(&mut self, id: u32, job: Job) {
        let active_now = job.ntime.is_some();
        self.jobs.insert(id, job);
        // Keep the active job and a few others.
        while self.jobs.len() > 8 {
            let Some(oldest) = self.jobs.keys().copied().find(|k| Some(*k) != self.active) else {
                break;
            };
            self.jobs.remove(&oldest);
        }
        if active_now && self.bits != 0 {
            self.active = Some(id);
            self.emit_work();
        }
    }

    /// The engine work for the active job.
    fn emit_work(&mut self) {
        let Some((id, job)) = self
            .active
            .and_then(|id| self.jobs.get(&id).map(|j| (id, j)))
        else {
            return;
        };
        let Some(ntime) = job.ntime else {
            return;
        };
        let extranonce = job.coinbase.as_ref().map(|(prefix, suffix, branch)| {
            let all = if self.extranonce_size >= 8 {
                u64::MAX
            } else {
                1u64 << (8 * self.extranonce_size)
            };
            let (first, count) = self.cfg.extranonce_range.unwrap_or((0, all));
            Extranonce {
                coinb1: prefix.clone(),
                extranonce1: self.extranonce_prefix.clone(),
                coinb2: suffix.clone(),
                merkle_branch: branch.clone(),
                size: self.extranonce_size,
                first,
                count: count.min(all.saturating_sub(first)),
            }
        });
        let version_mask = if self.cfg.version_rolling && job.rolling {
            VERSION_ROLLING_MASK
        } else {
            0
        };
        let work = Work {
            job_id: id.to_string(),
            header: BlockHeader {
                version: job.version,
                prev_hash: self.prev_hash,
                merkle_root: job.merkle_root,
                time: ntime,
                bits: CompactTarget(self.bits),
                nonce: 0,
            },
            target: self.target,
            version_mask,
            extranonce,
        };
        self.events.push_back(Event::Work(Box::new(work)));
    }

    /// Queues a solution for submission and says what it did: solutions for jobs of the
    /// current block are sent; others (and any after a block on the same job) are dropped.
    pub fn submit(&mut self, found: &Found) -> Submitted {
        let Ok(job_id) = found.job_id.parse::<u32>() else {
            return Submitted::UnknownJob;
        };
        if self.solved.contains(&job_id) {
            return Submitted::AfterBlock;
        }
        if self.stage != Stage::Open || !self.jobs.contains_key(&job_id) {
            return Submitted::UnknownJob;
        }
        let block = Target::from_compact(found.header.bits).is_ok_and(|t| t.is_met_by(&found.hash));
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        let h = &found.header;
        let message = match self.cfg.channel {
            ChannelKind::Extended => {
                let Ok(extranonce) = found.extranonce2.clone().try_into() else {
                    return Submitted::UnknownJob;
                };
                MiningOwned::SubmitSharesExtended(SubmitSharesExtendedOwned {
                    channel_id: self.channel,
                    sequence_number: sequence,
                    job_id,
                    nonce: h.nonce,
                    ntime: h.time,
                    version: h.version,
                    extranonce,
                })
            }
            ChannelKind::Standard => MiningOwned::SubmitSharesStandard(SubmitSharesStandard {
                channel_id: self.channel,
                sequence_number: sequence,
                job_id,
                nonce: h.nonce,
                ntime: h.time,
                version: h.version,
            }),
        };
        self.pending.insert(
            sequence,
            Pending {
                job_id: found.job_id.clone(),
                difficulty: Difficulty::of_target(&self.target),
                worker: found.worker,
            },
        );
        self.out.push_back(AnyMessageOwned::Mining(message));
        if block {
            self.solved.push_back(job_id);
            if self.solved.len() > 16 {
                self.solved.pop_front();
            }
            return Submitted::Block;
        }
        Submitted::Share
    }
}

#[cfg(test)]
mod tests;
