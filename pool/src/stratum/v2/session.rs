//! One Stratum V2 connection as a state machine with no IO and no clock, like the v1
//! session: the driver feeds it decoded messages ([`Session::handle`]), jobs
//! ([`Session::on_job`]) and ticks ([`Session::on_tick`]), each with `now`, and takes the
//! messages to send ([`Session::poll_transmit`]) and what happened
//! ([`Session::poll_event`]: the same events as v1, so shares, blocks and closes go the same
//! way to the store, the submitter and admission).
//!
//! What it speaks (the Mining Protocol, version 2):
//! - `SetupConnection` first; version rolling and standard-jobs-only connections are
//!   supported, work selection (job declaration) is refused with
//!   `unsupported-feature-flags`.
//! - Extended channels: each has an extranonce prefix (the connection's extranonce1 and a
//!   byte of its own, so up to 256 channels share one lease) and leaves the miner the rest
//!   of the pool's extranonce2 size. The user identity is `ADDRESS[.WORKER]`, as for v1.
//!   Its first target comes from the declared hash rate, then vardiff moves it through
//!   `SetTarget`; a `max_target` (the least difficulty the miner takes) is honoured.
//! - Jobs: on a new block a future job and `SetNewPrevHash` naming it; a refresh on the same
//!   block as a job active at once. The same work never goes out twice with one ntime.
//! - `SubmitSharesExtended` is checked by the same share validation as v1; its answer
//!   (`SubmitShares.Success`) goes out only once the store has it, like v1's. Refusals carry
//!   the spec's error codes; the same junk rules, rate limit and bans apply.
//! - Standard channels (header-only mining, as small ASICs do it): the pool fixes the whole
//!   extranonce (the channel's prefix, the rest zero) and sends each job as a merkle root
//!   computed for that channel (`NewMiningJob`); `SubmitSharesStandard` goes through the
//!   same validation with that extranonce. Group channels exist only as an id: every job
//!   is sent on each channel.
//! - `UpdateChannel` re-declares the hash rate and maximum target, `CloseChannel` ends a
//!   channel; [`Session::change_extranonce1`] moves every channel to a new prefix with
//!   `SetExtranoncePrefix`; at shutdown a `Reconnect` to the same host and port, then the
//!   close (after the connection has answered the shares it holds).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary_sv2::{B032Owned, B064KOwned, Seq0255Owned, Str0255Owned, Sv2OptionOwned, U256Owned};
use common_messages_sv2::{
    Protocol, ReconnectOwned, SetupConnectionErrorOwned, SetupConnectionSuccess,
};
use mining_sv2::{
    NewExtendedMiningJobOwned, NewMiningJobOwned, OpenExtendedMiningChannelOwned,
    OpenExtendedMiningChannelSuccessOwned, OpenMiningChannelErrorOwned,
    OpenStandardMiningChannelOwned, OpenStandardMiningChannelSuccessOwned,
    SetExtranoncePrefixOwned, SetNewPrevHashOwned, SetTargetOwned, SubmitSharesErrorOwned,
    SubmitSharesSuccess, UpdateChannelOwned,
};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
use protocol::address::{self, PayoutAddress};
use protocol::block::Solution;
use protocol::coinbase::Coinbase;
use protocol::stratum::{Submit, merkle_root};
use protocol::{Difficulty, Target};

use crate::chain::jobs::{Job, JobId, coinbase_for};
use crate::shares::bucket::Bucket;
use crate::shares::profile;
use crate::shares::record::{AckToken, BlockEvent, ShareEvent};
use crate::shares::validate::{self, Reject, ShareKey};
use crate::shares::vardiff::Vardiff;
use crate::stratum::events::{CloseReason, Event};
use crate::stratum::session::{SessionSettings, clean_user_agent, split_user};

/// The group channel every extended channel of a connection belongs to.
pub const GROUP_CHANNEL: u32 = 1;
/// The first channel id of a connection.
pub const FIRST_CHANNEL: u32 = 2;
/// Channels per connection: each takes one byte of the extranonce.
pub const MAX_CHANNELS: usize = 256;

/// `SetupConnection` flags of the Mining Protocol.
pub mod flags {
    /// The miner only takes standard jobs (header-only mining).
    pub const REQUIRES_STANDARD_JOBS: u32 = 1;
    /// The miner selects its own work (job declaration).
    pub const REQUIRES_WORK_SELECTION: u32 = 1 << 1;
    /// The miner rolls version bits.
    pub const REQUIRES_VERSION_ROLLING: u32 = 1 << 2;
}

/// The protocol version this pool speaks.
const VERSION: u16 = 2;

/// A job as sent on one channel.
#[derive(Debug)]
struct ChannelJob {
    id: u32,
    job: Arc<Job>,
    coinbase: Arc<Coinbase>,
    ntime: u32,
}

/// One extended channel.
#[derive(Debug)]
struct Channel {
    /// A standard channel (header-only mining): the pool fixes the whole extranonce and
    /// sends merkle roots; otherwise extended (the miner rolls its part of the extranonce).
    standard: bool,
    /// `ADDRESS[.WORKER]` as the miner gave it; the two parts are cut from it per share
    /// ([`split_user`]) rather than kept as two more strings per channel.
    user: String,
    payout: PayoutAddress,
    /// The connection's extranonce1 and this channel's byte.
    prefix: [u8; 5],
    vardiff: Vardiff,
    /// The difficulty before the last `SetTarget`: shares already in flight meet it.
    previous: Option<Difficulty>,
    jobs: VecDeque<ChannelJob>,
    next_job: u32,
    /// The id of the first job of the current block on this channel.
    block_first_job: Option<u32>,
    /// Shares accepted per work of the jobs kept.
    seen: Vec<(JobId, HashSet<ShareKey>)>,
    invalid_in_row: u32,
}

/// A connection's channels by id, sorted by id. Most connections open one channel, and a
/// map's node has room for eleven inline (a channel was 472 bytes): that room was 5.2 KiB
/// of every idle V2 connection. A proxy's hundreds of channels are found by binary search.
#[derive(Debug, Default)]
struct Channels(Vec<(u32, Channel)>);

impl Channels {
    fn position(&self, id: u32) -> Result<usize, usize> {
        self.0.binary_search_by_key(&id, |(i, _)| *i)
    }

    fn get(&self, id: &u32) -> Option<&Channel> {
        let at = self.position(*id).ok()?;
        self.0.get(at).map(|(_, c)| c)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Channel> {
        let at = self.position(*id).ok()?;
        self.0.get_mut(at).map(|(_, c)| c)
    }

    /// Opens (or replaces) channel `id`: room for exactly the first, growing as usual after
    /// it (a proxy opens hundreds).
    fn insert(&mut self, id: u32, channel: Channel) {
        match self.position(id) {
            Ok(at) => self.0[at].1 = channel,
            Err(at) => {
                if self.0.is_empty() {
                    self.0.reserve_exact(1);
                }
                self.0.insert(at, (id, channel));
            }
        }
    }

    /// Closes channel `id`; the room of a proxy's closed channels goes back once three
    /// quarters of it are unused.
    fn remove(&mut self, id: &u32) {
        if let Ok(at) = self.position(*id) {
            self.0.remove(at);
            if self.0.len() <= self.0.capacity() / 4 {
                self.0.shrink_to_fit();
            }
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The open channels' ids, in order.
    fn ids(&self) -> Vec<u32> {
        self.0.iter().map(|(id, _)| *id).collect()
    }
}

/// A share as either kind of channel submits it.
#[derive(Debug)]
struct ShareIn {
    channel: u32,
    sequence: u32,
    job: u32,
    nonce: u32,
    ntime: u32,
    version: u32,
    /// The miner's part of the extranonce (none on a standard channel).
    extranonce: Vec<u8>,
}

/// What an answer waiting for the store will say.
#[derive(Debug)]
struct Awaiting {
    channel: u32,
    sequence: u32,
    difficulty: Difficulty,
}

/// The session.
#[derive(Debug)]
pub struct Session {
    settings: Arc<SessionSettings>,
    extranonce1: [u8; 4],
    set_up: bool,
    /// Whether to ask the miner to reconnect when the pool shuts down (see
    /// [`handles_reconnect`]).
    reconnect_on_shutdown: bool,
    /// `vendor/hardware_version/firmware` from SetupConnection: what v1 calls the user
    /// agent (difficulty profiles, the API).
    user_agent: Option<String>,
    channels: Channels,
    next_channel: u32,
    current: Option<Arc<Job>>,
    bucket: Bucket,
    awaiting: HashMap<u64, Awaiting>,
    next_ack: u64,
    connected: Instant,
    connected_us: i64,
    last_message: Instant,
    /// Frames in a row that were not messages this pool knows.
    bad_in_row: u32,
    closing: bool,
    out: VecDeque<AnyMessageOwned>,
    events: VecDeque<Event>,
}

/// A string field of a V2 message (255 bytes at most: longer text is cut).
fn str0255(text: &str) -> Str0255Owned {
    let mut text = text.to_string();
    while text.len() > 255 {
        text.pop();
    }
    text.try_into().unwrap_or_else(|_| {
        // Only a string over 255 bytes is refused, and this one is not.
        Str0255Owned::try_from(String::new()).unwrap_or_else(|_| unreachable!())
    })
}

/// A hash or target in the byte order V2 carries (internal, little-endian).
fn u256(bytes: [u8; 32]) -> U256Owned {
    U256Owned::from(bytes)
}

/// The error code of a refused share, as the spec names them.
pub fn error_code(reason: &Reject) -> &'static str {
    match reason {
        Reject::UnknownJob => "invalid-job-id",
        Reject::Stale => "stale-share",
        Reject::Extranonce2Size { .. } => "bad-extranonce-size",
        Reject::VersionBits { .. } => "invalid-non-rollable-version-bit",
        Reject::Duplicate => "duplicate-share",
        Reject::LowDifficulty { .. } => "difficulty-too-low",
        Reject::NtimeOutOfRange { .. } => "invalid-share",
        Reject::Unauthorized | Reject::NotSubscribed => "invalid-channel-id",
    }
}

impl Session {
    /// A new connection with its extranonce1 lease, at `now` (unix microseconds
    /// `now_unix_us`).
    pub fn new(
        settings: Arc<SessionSettings>,
        extranonce1: [u8; 4],
        now: Instant,
        now_unix_us: i64,
    ) -> Session {
        let rate = f64::from(settings.limits.messages_per_sec);
        Session {
            settings,
            extranonce1,
            set_up: false,
            reconnect_on_shutdown: false,
            user_agent: None,
            channels: Channels::default(),
            next_channel: FIRST_CHANNEL,
            current: None,
            bucket: Bucket::new(rate, now),
            awaiting: HashMap::new(),
            next_ack: 0,
            connected: now,
            connected_us: now_unix_us,
            last_message: now,
            bad_in_row: 0,
            closing: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<AnyMessageOwned> {
        let out = self.out.pop_front();
        if out.is_none() {
            // An idle connection keeps no queue (a message is 152 bytes, and the queue
            // grew to eight of them while the connection was set up).
            self.out = VecDeque::new();
        }
        out
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front();
        if event.is_none() {
            self.events = VecDeque::new();
        }
        event
    }

    /// Whether `SetupConnection` succeeded.
    pub fn is_set_up(&self) -> bool {
        self.set_up
    }

    /// `vendor/hardware_version/firmware` from SetupConnection.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// Open channels.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    fn unix_us(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.connected).as_micros();
        self.connected_us
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    fn close(&mut self, reason: CloseReason) {
        if !self.closing {
            self.closing = true;
            self.events.push_back(Event::Close(reason));
        }
    }

    fn send(&mut self, message: AnyMessageOwned) {
        self.out.push_back(message);
    }

    fn send_mining(&mut self, message: MiningOwned) {
        self.out.push_back(AnyMessageOwned::Mining(message));
    }

    /// Counts a junk message against the rate limit; closes when over it.
    fn charge(&mut self, now: Instant) {
        if !self.bucket.take(now) {
            self.close(CloseReason::Flood);
        }
    }

    /// Handles one message from the miner.
    pub fn handle(&mut self, now: Instant, message: AnyMessageOwned) {
        if self.closing {
            return;
        }
        self.last_message = now;
        self.bad_in_row = 0;
        match message {
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(setup)) => {
                self.charge(now);
                let vendor = setup.vendor.as_utf8_or_hex();
                let hardware = setup.hardware_version.as_utf8_or_hex();
                self.reconnect_on_shutdown = handles_reconnect(&vendor, &hardware);
                let parts = [vendor, hardware, setup.firmware.as_utf8_or_hex()];
                let agent = parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("/");
                self.user_agent = Some(clean_user_agent(&agent));
                self.setup(
                    setup.protocol,
                    setup.min_version,
                    setup.max_version,
                    setup.flags,
                );
            }
            _ if !self.set_up => {
                // Anything before SetupConnection is a protocol error.
                self.close(CloseReason::BadLines(1));
            }
            AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannel(open)) => {
                self.charge(now);
                self.open_extended(now, open);
            }
            AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannel(open)) => {
                self.charge(now);
                self.open_standard(now, open);
            }
            AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(m)) => {
                let share = ShareIn {
                    channel: m.channel_id,
                    sequence: m.sequence_number,
                    job: m.job_id,
                    nonce: m.nonce,
                    ntime: m.ntime,
                    version: m.version,
                    extranonce: m.extranonce.into_bytes(),
                };
                self.submit(now, share);
            }
            AnyMessageOwned::Mining(MiningOwned::SubmitSharesStandard(m)) => {
                let standard = self.channels.get(&m.channel_id).is_some_and(|c| c.standard);
                let share = ShareIn {
                    channel: m.channel_id,
                    sequence: m.sequence_number,
                    job: m.job_id,
                    nonce: m.nonce,
                    ntime: m.ntime,
                    version: m.version,
                    // The pool fixed the whole extranonce: all but the channel's byte zero.
                    // (A standard submit on an extended channel gets a size error.)
                    extranonce: if standard {
                        vec![0; self.miner_extranonce_size()]
                    } else {
                        Vec::new()
                    },
                };
                self.submit(now, share);
            }
            AnyMessageOwned::Mining(MiningOwned::UpdateChannel(update)) => {
                self.charge(now);
                self.update_channel(update);
            }
            AnyMessageOwned::Mining(MiningOwned::CloseChannel(close)) => {
                self.charge(now);
                self.channels.remove(&close.channel_id);
            }
            _ => {
                // A message a pool never receives, or one of a feature we refused.
                self.charge(now);
                self.close(CloseReason::BadLines(1));
            }
        }
    }

    /// A frame that decrypted but holds no message this pool knows: junk, like a malformed
    /// v1 line (a run of them closes, and each counts against the rate limit).
    pub fn on_malformed(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        self.last_message = now;
        self.bad_in_row += 1;
        self.charge(now);
        let limit = self.settings.limits.max_bad_lines;
        if limit > 0 && self.bad_in_row >= limit {
            self.close(CloseReason::BadLines(self.bad_in_row));
        }
    }

    fn setup(&mut self, protocol: Protocol, min: u16, max: u16, flags: u32) {
        let error = |flags: u32, code: &str| {
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionError(
                SetupConnectionErrorOwned {
                    flags,
                    error_code: str0255(code),
                },
            ))
        };
        if self.set_up {
            self.close(CloseReason::BadLines(1));
            return;
        }
        let refusal = if protocol != Protocol::MiningProtocol {
            Some(error(0, "unsupported-protocol"))
        } else if !(min..=max).contains(&VERSION) {
            Some(error(0, "protocol-version-mismatch"))
        } else {
            let unsupported = flags & flags::REQUIRES_WORK_SELECTION;
            (unsupported != 0).then(|| error(unsupported, "unsupported-feature-flags"))
        };
        if let Some(refusal) = refusal {
            self.send(refusal);
            self.close(CloseReason::Shutdown);
            return;
        }
        self.set_up = true;
        self.send(AnyMessageOwned::Common(
            CommonMessagesOwned::SetupConnectionSuccess(SetupConnectionSuccess {
                used_version: VERSION,
                flags: 0,
            }),
        ));
    }

    /// The miner's part of the extranonce on an extended channel: the pool's extranonce2
    /// less the channel's byte.
    fn miner_extranonce_size(&self) -> usize {
        self.settings.coinbase.extranonce2_size.saturating_sub(1)
    }

    fn open_extended(&mut self, now: Instant, open: OpenExtendedMiningChannelOwned) {
        let request = OpenRequest {
            id: open.request_id,
            user: open.user_identity.as_utf8_or_hex(),
            hash_rate: open.nominal_hash_rate,
            max_target: open.max_target.to_array(),
            standard: false,
        };
        if usize::from(open.min_extranonce_size) > self.miner_extranonce_size() {
            return self.refuse_channel(request.id, "min-extranonce-size-too-large");
        }
        let Some(id) = self.open_channel(now, &request) else {
            return;
        };
        let Some(channel) = self.channels.get(&id) else {
            return;
        };
        let message = OpenExtendedMiningChannelSuccessOwned {
            request_id: request.id,
            channel_id: id,
            target: u256(channel.vardiff.difficulty().target().to_le_bytes()),
            extranonce_size: u16::try_from(self.miner_extranonce_size()).unwrap_or(0),
            extranonce_prefix: bytes(channel.prefix.to_vec()),
            group_channel_id: GROUP_CHANNEL,
        };
        self.send_mining(MiningOwned::OpenExtendedMiningChannelSuccess(message));
        self.channel_opened(id, request.user);
    }

    fn open_standard(&mut self, now: Instant, open: OpenStandardMiningChannelOwned) {
        let request = OpenRequest {
            id: open.request_id,
            user: open.user_identity.as_utf8_or_hex(),
            hash_rate: open.nominal_hash_rate,
            max_target: open.max_target.to_array(),
            standard: true,
        };
        let Some(id) = self.open_channel(now, &request) else {
            return;
        };
        let Some(channel) = self.channels.get(&id) else {
            return;
        };
        // The whole extranonce, which the miner never changes.
        let target = u256(channel.vardiff.difficulty().target().to_le_bytes());
        let message = OpenStandardMiningChannelSuccessOwned {
            request_id: request.id,
            channel_id: id,
            target,
            extranonce_prefix: bytes(self.announced_prefix(id)),
            group_channel_id: GROUP_CHANNEL,
        };
        self.send_mining(MiningOwned::OpenStandardMiningChannelSuccess(message));
        self.channel_opened(id, request.user);
    }

    /// The extranonce prefix a channel is told: the connection's extranonce1 and the
    /// channel's byte, and on a standard channel the rest of the extranonce too (zeros).
    fn announced_prefix(&self, id: u32) -> Vec<u8> {
        let Some(channel) = self.channels.get(&id) else {
            return Vec::new();
        };
        let mut prefix = channel.prefix.to_vec();
        if channel.standard {
            prefix.resize(4 + self.settings.coinbase.extranonce2_size, 0);
        }
        prefix
    }

    fn refuse_channel(&mut self, request_id: u32, code: &str) {
        self.send_mining(MiningOwned::OpenMiningChannelError(
            OpenMiningChannelErrorOwned {
                request_id,
                error_code: str0255(code),
            },
        ));
    }

    /// Checks a request and opens its channel (the caller answers); `None`: refused.
    fn open_channel(&mut self, now: Instant, request: &OpenRequest) -> Option<u32> {
        let (addr, worker) = split_user(&request.user);
        let Ok(payout) = address::parse(addr, self.settings.network) else {
            self.refuse_channel(request.id, "invalid-user-identity");
            return None;
        };
        let hash_rate = f64::from(request.hash_rate);
        if !hash_rate.is_finite() || hash_rate < 0.0 {
            self.refuse_channel(request.id, "invalid-nominal-hashrate");
            return None;
        }
        if self.channels.len() >= MAX_CHANNELS {
            self.refuse_channel(request.id, "channel-capacity-exhausted");
            return None;
        }
        let id = self.next_channel;
        self.next_channel += 1;
        let mut vardiff = Vardiff::new(&self.settings.vardiff, now);
        let chosen = profile::choose(
            &self.settings.vardiff,
            self.settings.network,
            self.user_agent.as_deref(),
            worker,
        );
        if let Some(chosen) = &chosen {
            vardiff.set_bounds(chosen.bounds);
        }
        if let Some(job) = &self.current {
            vardiff.set_network_difficulty(job.network_difficulty());
        }
        if let Some(d) = vardiff.for_hash_rate(hash_rate) {
            vardiff.start_at(d);
        }
        // The least difficulty the miner takes: its maximum target.
        let max_target = Target::from_le_bytes(request.max_target);
        vardiff.raise_floor(Difficulty::of_target(&max_target));
        let byte = u8::try_from((id - FIRST_CHANNEL) as usize % MAX_CHANNELS).unwrap_or(0);
        let e = self.extranonce1;
        let channel = Channel {
            standard: request.standard,
            user: request.user.clone(),
            payout,
            prefix: [e[0], e[1], e[2], e[3], byte],
            previous: None,
            vardiff,
            jobs: VecDeque::new(),
            next_job: 1,
            block_first_job: None,
            seen: Vec::new(),
            invalid_in_row: 0,
        };
        self.channels.insert(id, channel);
        Some(id)
    }

    /// After the success message: the event, and work at once.
    fn channel_opened(&mut self, id: u32, user: String) {
        self.events.push_back(Event::Authorized {
            user,
            session_id: self.extranonce1,
            user_agent: self.user_agent.clone(),
        });
        if let Some(job) = self.current.clone() {
            self.send_job(id, job, true);
        }
    }
}

/// What both kinds of open request ask for.
struct OpenRequest {
    id: u32,
    user: String,
    hash_rate: f32,
    max_target: [u8; 32],
    standard: bool,
}

/// Whether a miner that set up with this vendor and hardware version handles `Reconnect`.
/// SRI's translator proxy 0.6.0 does not: its handler is unimplemented and the panic takes
/// down the proxy with every miner behind it, where a plain close makes it reconnect.
fn handles_reconnect(vendor: &str, hardware_version: &str) -> bool {
    !(vendor == "SRI" && hardware_version == "Translator Proxy")
}

/// A byte field of a V2 message; our own, at most 32 bytes.
fn bytes(data: Vec<u8>) -> B032Owned {
    B032Owned::try_from(data).unwrap_or_else(|_| unreachable!("an extranonce over 32 bytes"))
}

impl Session {
    /// A new job from the template feed, for every channel.
    pub fn on_job(&mut self, _now: Instant, job: Arc<Job>) {
        if self.closing {
            return;
        }
        let new_block = self
            .current
            .as_ref()
            .is_none_or(|c| c.checked().prev_hash != job.checked().prev_hash);
        self.current = Some(job.clone());
        let ids: Vec<u32> = self.channels.ids();
        for id in ids {
            if let Some(channel) = self.channels.get_mut(&id)
                && let Some(d) = channel
                    .vardiff
                    .set_network_difficulty(job.network_difficulty())
            {
                let previous = channel.vardiff.difficulty();
                channel.previous = Some(previous.max(d));
                self.set_target(id, d);
            }
            self.send_job(id, job.clone(), new_block);
        }
    }

    /// Sends `job` on channel `id`: on a new block as a future job with `SetNewPrevHash`,
    /// otherwise active at once. The same work goes out with a later ntime than it had on
    /// the channel, so a miner starting its nonces over finds new headers.
    fn send_job(&mut self, id: u32, job: Arc<Job>, new_block: bool) {
        let settings = self.settings.clone();
        // Every V2 miner may roll the version bits the pool allows (jobs and shares only
        // exist once the connection is set up).
        let version_rolling = settings.version_mask != 0;
        let Some(channel) = self.channels.get_mut(&id) else {
            return;
        };
        let coinbase = match &job.coinbase {
            Some(cb) => cb.clone(),
            None => {
                // SOLO: the channel's own address gets the reward.
                let reuse = channel
                    .jobs
                    .back()
                    .filter(|last| Arc::ptr_eq(&last.job.template, &job.template))
                    .map(|last| last.coinbase.clone());
                match reuse {
                    Some(cb) => cb,
                    None => match coinbase_for(
                        job.checked(),
                        &channel.payout.script_pubkey,
                        &settings.coinbase,
                    ) {
                        Ok(cb) => Arc::new(cb),
                        Err(_) => return,
                    },
                }
            }
        };
        let ntime = channel
            .jobs
            .iter()
            .filter(|j| j.job.work == job.work)
            .map(|j| j.ntime.saturating_add(1))
            .max()
            .map_or(job.ntime, |floor| floor.max(job.ntime));
        let job_id = channel.next_job;
        channel.next_job = channel.next_job.wrapping_add(1).max(1);
        if new_block {
            channel.block_first_job = Some(job_id);
        }
        let t = job.checked();
        let min_ntime = Sv2OptionOwned::new(if new_block { None } else { Some(ntime) });
        let message = if channel.standard {
            // Header-only mining: the merkle root of the channel's fixed extranonce.
            let mut extranonce2 = vec![0; settings.coinbase.extranonce2_size];
            extranonce2[0] = channel.prefix[4];
            let root = merkle_root(
                &coinbase.coinb1,
                &channel.prefix[..4],
                &extranonce2,
                &coinbase.coinb2,
                &job.branch,
            );
            MiningOwned::NewMiningJob(NewMiningJobOwned {
                channel_id: id,
                job_id,
                min_ntime,
                version: t.version,
                merkle_root: u256(root.0),
            })
        } else {
            let branch: Vec<U256Owned> = job.branch.iter().map(|h| u256(h.0)).collect();
            MiningOwned::NewExtendedMiningJob(NewExtendedMiningJobOwned {
                channel_id: id,
                job_id,
                min_ntime,
                version: t.version,
                version_rolling_allowed: version_rolling,
                merkle_path: Seq0255Owned::try_from(branch).unwrap_or_else(|_| {
                    // A block has at most 2^32 transactions: a branch of at most 32 hashes.
                    unreachable!()
                }),
                coinbase_tx_prefix: B064KOwned::try_from(coinbase.coinb1.clone())
                    .unwrap_or_else(|_| unreachable!()),
                coinbase_tx_suffix: B064KOwned::try_from(coinbase.coinb2.clone())
                    .unwrap_or_else(|_| unreachable!()),
            })
        };
        if !channel.seen.iter().any(|(work, _)| *work == job.work) {
            // Grown one at a time: an idle miner holds one or two works, not room for four.
            channel.seen.reserve_exact(1);
            channel.seen.push((job.work, HashSet::new()));
        }
        channel.jobs.push_back(ChannelJob {
            id: job_id,
            job: job.clone(),
            coinbase,
            ntime,
        });
        while channel.jobs.len() > settings.keep_jobs {
            channel.jobs.pop_front();
        }
        let jobs = &channel.jobs;
        channel
            .seen
            .retain(|(work, _)| jobs.iter().any(|j| j.job.work == *work));
        self.send_mining(message);
        if new_block {
            self.send_mining(MiningOwned::SetNewPrevHash(SetNewPrevHashOwned {
                channel_id: id,
                job_id,
                prev_hash: u256(t.prev_hash.0),
                min_ntime: ntime,
                nbits: t.bits.0,
            }));
        }
    }

    fn set_target(&mut self, id: u32, d: Difficulty) {
        self.events.push_back(Event::Difficulty(d));
        self.send_mining(MiningOwned::SetTarget(SetTargetOwned {
            channel_id: id,
            maximum_target: u256(d.target().to_le_bytes()),
        }));
    }

    fn update_channel(&mut self, update: UpdateChannelOwned) {
        let id = update.channel_id;
        let Some(channel) = self.channels.get_mut(&id) else {
            return;
        };
        let max_target = Target::from_le_bytes(update.maximum_target.to_array());
        let before = channel.vardiff.difficulty();
        let mut changed = channel
            .vardiff
            .raise_floor(Difficulty::of_target(&max_target));
        let hash_rate = f64::from(update.nominal_hash_rate);
        if hash_rate.is_finite()
            && hash_rate > 0.0
            && let Some(d) = channel.vardiff.for_hash_rate(hash_rate)
        {
            changed = channel.vardiff.start_at(d).or(changed);
        }
        if let Some(d) = changed {
            channel.previous = Some(before);
            self.set_target(id, d);
        }
    }

    fn refuse(&mut self, now: Instant, channel: u32, sequence: u32, reason: Reject) {
        let user = self
            .channels
            .get(&channel)
            .map(|c| c.user.clone())
            .unwrap_or_default();
        self.send_mining(MiningOwned::SubmitSharesError(SubmitSharesErrorOwned {
            channel_id: channel,
            sequence_number: sequence,
            error_code: str0255(error_code(&reason)),
        }));
        let honest = reason.is_honest();
        self.events.push_back(Event::Rejected { user, reason });
        if honest {
            return;
        }
        let ban = self.settings.limits.ban_after_invalid;
        let in_row = match self.channels.get_mut(&channel) {
            Some(c) => {
                c.invalid_in_row += 1;
                c.invalid_in_row
            }
            None => 1,
        };
        if ban > 0 && in_row >= ban {
            self.close(CloseReason::Banned(in_row));
        } else {
            self.charge(now);
        }
    }

    fn submit(&mut self, now: Instant, m: ShareIn) {
        let (channel_id, sequence) = (m.channel, m.sequence);
        let unix_us = self.unix_us(now);
        let now_unix = u32::try_from(unix_us / 1_000_000).unwrap_or(u32::MAX);
        let current_prev = self.current.as_ref().map(|j| j.checked().prev_hash);
        let mask = self.settings.version_mask;
        let extranonce1 = self.extranonce1;
        let max_ahead = self.settings.max_ntime_ahead;
        let Some(channel) = self.channels.get_mut(&channel_id) else {
            return self.refuse(now, channel_id, sequence, Reject::Unauthorized);
        };
        let Some(sent) = channel.jobs.iter().find(|j| j.id == m.job) else {
            let older = channel
                .block_first_job
                .is_some_and(|first| m.job < first && m.job >= 1);
            let reason = if older {
                Reject::Stale
            } else {
                Reject::UnknownJob
            };
            return self.refuse(now, channel_id, sequence, reason);
        };
        if Some(sent.job.checked().prev_hash) != current_prev {
            return self.refuse(now, channel_id, sequence, Reject::Stale);
        }
        let template_version = sent.job.checked().version;
        if (m.version ^ template_version) & !mask != 0 {
            let reason = Reject::VersionBits {
                bits: m.version,
                mask,
            };
            return self.refuse(now, channel_id, sequence, reason);
        }
        let mut extranonce2 = vec![channel.prefix[4]];
        extranonce2.extend_from_slice(&m.extranonce);
        let submit = Submit {
            worker: channel.user.clone(),
            job_id: sent.job.id.to_string(),
            extranonce2,
            ntime: m.ntime,
            nonce: m.nonce,
            version_bits: (mask != 0).then_some(m.version & mask),
        };
        let current = channel.vardiff.difficulty();
        let difficulty = channel.previous.map_or(current, |p| p.min(current));
        let ctx = validate::Context {
            job: &sent.job,
            coinbase: &sent.coinbase,
            extranonce1: &extranonce1,
            version_mask: mask,
            difficulty,
            target: difficulty.target(),
            now: now_unix,
            max_ntime_ahead: max_ahead,
        };
        let work = sent.job.work;
        let (job, coinbase) = (sent.job.clone(), sent.coinbase.clone());
        let mut fresh = HashSet::new();
        let seen = channel
            .seen
            .iter_mut()
            .find(|(w, _)| *w == work)
            .map_or(&mut fresh, |(_, set)| set);
        let accepted = match validate::validate(&ctx, &submit, seen) {
            Ok(a) => a,
            Err(reason) => return self.refuse(now, channel_id, sequence, reason),
        };
        channel.invalid_in_row = 0;
        let (address, worker) = split_user(&channel.user);
        let (user, address, worker) = (
            channel.user.clone(),
            address.to_string(),
            worker.to_string(),
        );
        let retarget = channel.vardiff.on_share(now, accepted.difficulty);
        if retarget.is_some() {
            channel.previous = Some(current);
        }
        let t = job.checked();
        if accepted.block {
            let solution = Solution {
                extranonce1: &extranonce1,
                extranonce2: &submit.extranonce2,
                version: accepted.header.version,
                time: m.ntime,
                nonce: m.nonce,
            };
            if let Some(b) = BlockEvent::assemble(&job, &coinbase, &solution, user.clone(), unix_us)
            {
                self.events.push_back(Event::Block(Box::new(b)));
            }
        }
        let awaiting_ack = if self.settings.ack_when_stored {
            self.next_ack += 1;
            self.awaiting.insert(
                self.next_ack,
                Awaiting {
                    channel: channel_id,
                    sequence,
                    difficulty: accepted.difficulty,
                },
            );
            Some(AckToken(self.next_ack))
        } else {
            self.success(channel_id, sequence, accepted.difficulty);
            None
        };
        self.events.push_back(Event::Share(Box::new(ShareEvent {
            user,
            address,
            worker,
            height: t.height,
            network_difficulty: job.network_difficulty(),
            time_us: unix_us,
            accepted,
            awaiting_ack,
        })));
        if let Some(d) = retarget {
            self.set_target(channel_id, d);
        }
    }

    fn success(&mut self, channel: u32, sequence: u32, difficulty: Difficulty) {
        self.send_mining(MiningOwned::SubmitSharesSuccess(SubmitSharesSuccess {
            channel_id: channel,
            last_sequence_number: sequence,
            new_submits_accepted_count: 1,
            // Whole difficulty-1 shares (at least one: a share was accepted).
            new_shares_sum: (difficulty.get() as u64).max(1),
        }));
    }

    /// The store's word on an accepted share that waits for it: answer the miner.
    pub fn share_stored(&mut self, token: AckToken, stored: bool) {
        let Some(a) = self.awaiting.remove(&token.0) else {
            return;
        };
        if stored {
            self.success(a.channel, a.sequence, a.difficulty);
        } else {
            self.send_mining(MiningOwned::SubmitSharesError(SubmitSharesErrorOwned {
                channel_id: a.channel,
                sequence_number: a.sequence,
                error_code: str0255("share-not-recorded"),
            }));
        }
    }

    /// Timers: setup and channel timeouts, idle connections, vardiff for quiet channels.
    pub fn on_tick(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        let limits = &self.settings.limits;
        if self.channels.is_empty()
            && now.saturating_duration_since(self.connected) >= limits.authorize_timeout()
        {
            self.close(CloseReason::AuthorizeTimeout);
            return;
        }
        if now.saturating_duration_since(self.last_message)
            >= Duration::from_secs(limits.idle_timeout_secs)
        {
            self.close(CloseReason::Idle);
            return;
        }
        let ids: Vec<u32> = self.channels.ids();
        for id in ids {
            let Some(channel) = self.channels.get_mut(&id) else {
                continue;
            };
            let before = channel.vardiff.difficulty();
            if let Some(d) = channel.vardiff.on_tick(now) {
                channel.previous = Some(before);
                self.set_target(id, d);
            }
        }
    }

    /// Shutdown: the connection is closed (the reference translator cannot take a
    /// `Reconnect` yet; miners reconnect on their own).
    ///
    /// A miner that handles it is first sent `Reconnect` with no host and port (the spec's
    /// "reconnect to the present host and port"): in a rolling restart the new process
    /// already listens there.
    pub fn shutdown(&mut self) {
        if self.set_up && self.reconnect_on_shutdown && !self.closing {
            self.send(AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(
                ReconnectOwned {
                    new_host: str0255(""),
                    new_port: 0,
                },
            )));
        }
        self.close(CloseReason::Shutdown);
    }

    /// Gives the connection a new extranonce1: every channel gets `SetExtranoncePrefix`
    /// (its new prefix: the new extranonce1 and its own byte; a standard channel's whole
    /// extranonce) and the current work again at once. Shares on jobs sent before are
    /// stale from then on (free, like a new block's).
    pub fn change_extranonce1(&mut self, extranonce1: [u8; 4]) {
        if self.closing {
            return;
        }
        self.extranonce1 = extranonce1;
        let ids: Vec<u32> = self.channels.ids();
        for id in ids {
            let Some(channel) = self.channels.get_mut(&id) else {
                continue;
            };
            let e = extranonce1;
            channel.prefix = [e[0], e[1], e[2], e[3], channel.prefix[4]];
            channel.jobs.clear();
            channel.seen.clear();
            // Any job id the channel sent before is older than the next one: stale.
            channel.block_first_job = Some(channel.next_job);
            let prefix = self.announced_prefix(id);
            self.send_mining(MiningOwned::SetExtranoncePrefix(SetExtranoncePrefixOwned {
                channel_id: id,
                extranonce_prefix: bytes(prefix),
            }));
            if let Some(job) = self.current.clone() {
                self.send_job(id, job, false);
            }
        }
    }
}

#[cfg(test)]
mod tests;
