//! One miner's Stratum session as a state machine with no IO and no clock.
//!
//! The connection driver (`connection.rs`) feeds it lines ([`Session::handle`]), jobs
//! ([`Session::on_job`]) and ticks ([`Session::on_tick`]), each with `now`, and takes what
//! to send ([`Session::poll_transmit`]) and what happened ([`Session::poll_event`]).
//!
//! What miners in the field expect, and what this does:
//! - `mining.configure` (BIP 310) may come first; the granted version mask is the
//!   requested one within the pool's, and submits are checked against it.
//! - Work is sent once the connection is subscribed and authorized: `set_difficulty`, then
//!   `notify`. A new difficulty (vardiff, `suggest_difficulty`, the network cap) is sent
//!   with the current work reissued under a new job id and a later ntime (a miner that
//!   starts its nonces over must not find the same headers), so it applies from the next job;
//!   shares on older jobs are checked against the lower of the two difficulties.
//! - Each job keeps the set of shares accepted on it, so duplicates are caught; jobs of an
//!   older block answer "stale", forgotten ones "job not found".
//! - Every reply carries `"error": null` or an error triple.
//! - The message rate limit (`limits.messages_per_sec`) counts junk only: malformed lines,
//!   requests other than submits, and submits refused for a reason the miner could have
//!   avoided (unknown job, duplicate, low difficulty, unauthorized...). Valid shares, and
//!   stale ones, are never counted: on an easy chain a real miner submits every hash it
//!   finds, as fast as it finds them, and that is vardiff's and backpressure's business.
//! - A submit that arrives before the connection is subscribed and authorized (a miner
//!   flushing shares of its last connection as it reconnects) is held and answered after
//!   the authorize reply, so that a miner which takes the first reply for the answer to
//!   its authorize reads the right one. Its refusal does not count against it; if the
//!   connection did not resume the session the miner asked for, they are stale (made
//!   with another extranonce1).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use protocol::Difficulty;
use protocol::address::{self, Network, PayoutAddress};
use protocol::block::Solution;
use protocol::coinbase::Coinbase;
use protocol::stratum::{
    ConfigureResult, FrameError, Id, Message, Method, Reconnect, SetExtranonce, StratumCodec,
    StratumError, Submit, SubscribeResult,
};
use serde_json::{Value, json};

use crate::chain::jobs::{CoinbaseSettings, Job, JobId, JobIds};
use crate::config::{LimitsConfig, Mode, VardiffConfig};
use crate::shares::bucket::Bucket;
use crate::shares::profile;
use crate::shares::record::{AckToken, BlockEvent, ShareEvent};
use crate::shares::validate::{self, Accepted, Reject, ShareKey};
use crate::shares::vardiff::{Bounds, Vardiff};
pub use crate::stratum::events::{CloseReason, Event, Outgoing};

/// What every session of a pool shares.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// SOLO or PPLNS.
    pub mode: Mode,
    /// The network usernames' addresses must belong to.
    pub network: Network,
    /// The version bits the pool lets miners roll.
    pub version_mask: u32,
    /// Coinbase layout (pool tag, extranonce2 size).
    pub coinbase: CoinbaseSettings,
    /// Vardiff settings.
    pub vardiff: VardiffConfig,
    /// Jobs kept per connection for late shares.
    pub keep_jobs: usize,
    /// Latest ntime accepted, ahead of the pool's clock.
    pub max_ntime_ahead: u32,
    /// Limits.
    pub limits: LimitsConfig,
    /// Answer an accepted share only once the store says it is durable
    /// ([`Session::share_stored`]); without a store the answer goes out at once.
    pub ack_when_stored: bool,
}

/// Longest user agent kept (characters); the rest is cut.
pub const USER_AGENT_MAX: usize = 128;

/// Submits held until the connection is subscribed and authorized; more are refused.
const HELD_SUBMITS: usize = 32;

/// A job as sent on this connection.
#[derive(Debug)]
struct SentJob {
    job: Arc<Job>,
    coinbase: Arc<Coinbase>,
    difficulty: Difficulty,
}

/// The session.
#[derive(Debug)]
pub struct Session {
    settings: Arc<SessionSettings>,
    ids: JobIds,
    extranonce1: [u8; 4],
    subscribed: bool,
    extranonce_subscribed: bool,
    version_mask: u32,
    users: Vec<String>,
    payout: Option<PayoutAddress>,
    vardiff: Vardiff,
    /// What the miner called itself in `mining.subscribe` (at most [`USER_AGENT_MAX`]).
    user_agent: Option<String>,
    /// The difficulty profile it matched, if any.
    profile: Option<String>,
    /// The difficulty last sent with `set_difficulty`.
    sent_difficulty: Option<Difficulty>,
    current: Option<Arc<Job>>,
    jobs: VecDeque<SentJob>,
    /// Shares accepted per work ([`Job::work`]) of the jobs kept: a job reissued under a
    /// new id shares its set, so the same share is not accepted under both ids.
    seen: Vec<(JobId, HashSet<ShareKey>)>,
    invalid_in_row: u32,
    bad_lines_in_row: u32,
    /// Junk messages (see the module docs), not all messages.
    bucket: Bucket,
    /// Answers waiting for the store, by token, oldest first: the store answers in order,
    /// so the one answered is at the front (no hashing per share).
    awaiting: VecDeque<(u64, Id)>,
    next_ack: u64,
    /// Submits that came before subscribe and authorize (at most [`HELD_SUBMITS`]).
    held: VecDeque<(Id, Submit)>,
    /// The miner subscribed with the session id it got (our extranonce1): its work from
    /// the last connection is still good.
    resumed: bool,
    /// The number of the first job of the current block this connection was given: a job
    /// id below it names a job of an older block.
    block_first_job: Option<JobId>,
    connected: Instant,
    /// Unix microseconds at `connected`: with `Instant`s this gives the wall clock (ntime
    /// checks, when a share or block was found) without reading it.
    connected_us: i64,
    last_message: Instant,
    closing: bool,
    out: VecDeque<Outgoing>,
    events: VecDeque<Event>,
}

/// Splits `address.worker` (a few miners use `_`, which addresses never contain).
pub fn split_user(user: &str) -> (&str, &str) {
    user.split_once(['.', '_']).unwrap_or((user, ""))
}

/// A user agent as kept: printable characters only, at most [`USER_AGENT_MAX`].
pub fn clean_user_agent(agent: &str) -> String {
    agent
        .chars()
        .filter(|c| !c.is_control())
        .take(USER_AGENT_MAX)
        .collect::<String>()
        .trim()
        .to_string()
}

/// The `d=N` option of a password like `x,d=512`.
pub fn password_difficulty(password: &str) -> Option<Difficulty> {
    password
        .split([',', ';', ' '])
        .filter_map(|kv| kv.trim().strip_prefix("d="))
        .filter_map(|v| v.parse::<f64>().ok())
        .find_map(Difficulty::new)
}

impl Session {
    /// A new connection with its extranonce1, at `now` (unix microseconds `now_unix_us`).
    pub fn new(
        settings: Arc<SessionSettings>,
        ids: JobIds,
        extranonce1: [u8; 4],
        now: Instant,
        now_unix_us: i64,
    ) -> Session {
        let rate = f64::from(settings.limits.messages_per_sec);
        Session {
            vardiff: Vardiff::new(&settings.vardiff, now),
            settings,
            ids,
            extranonce1,
            subscribed: false,
            extranonce_subscribed: false,
            version_mask: 0,
            users: Vec::new(),
            payout: None,
            user_agent: None,
            profile: None,
            sent_difficulty: None,
            current: None,
            jobs: VecDeque::new(),
            seen: Vec::new(),
            invalid_in_row: 0,
            bad_lines_in_row: 0,
            bucket: Bucket::new(rate, now),
            awaiting: VecDeque::new(),
            next_ack: 0,
            held: VecDeque::new(),
            resumed: false,
            block_first_job: None,
            connected: now,
            connected_us: now_unix_us,
            last_message: now,
            closing: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The extranonce1.
    pub fn extranonce1(&self) -> [u8; 4] {
        self.extranonce1
    }

    /// Takes another extranonce1 before subscribing (a miner resuming its session).
    pub fn resume_extranonce1(&mut self, extranonce1: [u8; 4]) -> bool {
        if self.subscribed {
            return false;
        }
        self.extranonce1 = extranonce1;
        true
    }

    /// Whether `mining.subscribe` was answered.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// Whether a worker is authorized.
    pub fn is_authorized(&self) -> bool {
        !self.users.is_empty()
    }

    /// The difficulty in force.
    pub fn difficulty(&self) -> Difficulty {
        self.vardiff.difficulty()
    }

    /// The user agent from `mining.subscribe`.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The difficulty profile in force, if one matched.
    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    /// Picks the difficulty profile for the user agent and the first worker name, until
    /// work has been sent (then the connection keeps what it has).
    fn choose_profile(&mut self, worker: &str) {
        if self.sent_difficulty.is_some() {
            return;
        }
        let cfg = &self.settings.vardiff;
        let chosen = profile::choose(
            cfg,
            self.settings.network,
            self.user_agent.as_deref(),
            worker,
        );
        let bounds = chosen
            .as_ref()
            .map_or_else(|| Bounds::of(cfg), |c| c.bounds);
        self.profile = chosen.map(|c| c.name);
        if self.vardiff.bounds() != bounds
            && let Some(d) = self.vardiff.set_bounds(bounds)
        {
            self.difficulty_changed(d);
        }
    }

    /// The first authorized username.
    pub fn user(&self) -> Option<&str> {
        self.users.first().map(String::as_str)
    }

    /// Unix microseconds at `now`.
    fn unix_us(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.connected).as_micros();
        self.connected_us
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }

    /// Unix seconds at `now`.
    fn unix_time(&self, now: Instant) -> u32 {
        u32::try_from(self.unix_us(now) / 1_000_000).unwrap_or(u32::MAX)
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Outgoing> {
        let out = self.out.pop_front();
        if out.is_none() {
            // An idle connection keeps no queue (a few hundred bytes each).
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

    fn close(&mut self, reason: CloseReason) {
        if !self.closing {
            self.closing = true;
            self.events.push_back(Event::Close(reason));
        }
    }

    fn reply(&mut self, id: Id, result: Value) {
        self.out.push_back(Message::result(id, result).into());
    }

    fn reply_error(&mut self, id: Id, error: StratumError) {
        self.out.push_back(Message::error(id, error).into());
    }

    /// Counts a junk message against the rate limit; closes the connection when over it.
    fn charge(&mut self, now: Instant) {
        if !self.bucket.take(now) {
            self.close(CloseReason::Flood);
        }
    }

    /// Handles one decoded line (or why it could not be decoded).
    pub fn handle(&mut self, now: Instant, line: Result<Message, FrameError>) {
        if self.closing {
            return;
        }
        self.last_message = now;
        // Submits are charged by their outcome (in `submit`), everything else here.
        if !matches!(
            line,
            Ok(Message::Request {
                method: Method::Submit(_),
                ..
            })
        ) {
            self.charge(now);
            if self.closing {
                return;
            }
        }
        let message = match line {
            Ok(m) => m,
            Err(FrameError::LineTooLong { .. }) => {
                self.close(CloseReason::LineTooLong);
                return;
            }
            Err(e) => {
                self.bad_lines_in_row += 1;
                let id = e.request_id().cloned().unwrap_or(Id::Null);
                self.reply_error(
                    id,
                    StratumError::new(StratumError::OTHER, format!("Malformed request: {e}")),
                );
                if self.bad_lines_in_row >= self.settings.limits.max_bad_lines {
                    self.close(CloseReason::BadLines(self.bad_lines_in_row));
                }
                return;
            }
        };
        self.bad_lines_in_row = 0;
        let (id, method) = match message {
            Message::Request { id, method } => (id, method),
            Message::Response(_) => return, // e.g. a client.get_version answer
        };
        match method {
            Method::Configure(c) => {
                let mut result = ConfigureResult::default();
                if let Some(asked) = c.version_rolling_mask() {
                    self.version_mask = asked & self.settings.version_mask;
                    result.version_rolling_mask = Some(self.version_mask);
                }
                if let Some(d) = c.minimum_difficulty() {
                    result.minimum_difficulty = Some(true);
                    if let Some(d) = self.vardiff.suggest(d) {
                        self.difficulty_changed(d);
                    }
                }
                self.reply(id, result.to_value());
            }
            Method::Subscribe(sub) => {
                let first = !self.subscribed;
                self.subscribed = true;
                let sid = hex::encode(self.extranonce1);
                if first {
                    self.resumed = sub.session_id.as_deref() == Some(sid.as_str());
                    self.user_agent = sub.user_agent.as_deref().map(clean_user_agent);
                    let worker = self.user().map(|u| split_user(u).1.to_string());
                    self.choose_profile(worker.as_deref().unwrap_or(""));
                }
                let result = SubscribeResult {
                    subscriptions: vec![
                        ("mining.set_difficulty".into(), sid.clone()),
                        ("mining.notify".into(), sid),
                    ],
                    extranonce1: self.extranonce1.to_vec(),
                    extranonce2_size: self.settings.coinbase.extranonce2_size,
                };
                self.reply(id, result.to_value());
                if first {
                    self.start_work();
                    self.release_held(now);
                }
            }
            Method::Authorize(a) => self.authorize(now, id, &a.user, a.password.as_deref()),
            Method::Submit(s) => {
                if self.subscribed && self.is_authorized() {
                    self.submit(now, id, &s, false);
                } else if self.held.len() < HELD_SUBMITS {
                    self.held.push_back((id, s));
                } else {
                    self.submit(now, id, &s, false);
                }
            }
            Method::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.reply(id, json!(true));
            }
            Method::SuggestDifficulty(d) => {
                if let Some(d) = self.vardiff.suggest(d) {
                    self.difficulty_changed(d);
                }
                if id != Id::Null {
                    self.reply(id, json!(true));
                }
            }
            Method::GetTransactions(_) => self.reply(id, json!([])),
            other => {
                if id != Id::Null {
                    self.reply_error(
                        id,
                        StratumError::new(
                            StratumError::METHOD_NOT_FOUND,
                            format!("Method not found: {}", other.name()),
                        ),
                    );
                }
            }
        }
    }

    fn authorize(&mut self, now: Instant, id: Id, user: &str, password: Option<&str>) {
        let (addr, _) = split_user(user);
        let payout = match address::parse(addr, self.settings.network) {
            Ok(p) => p,
            Err(e) => {
                self.reply_error(
                    id,
                    StratumError::new(
                        StratumError::UNAUTHORIZED,
                        format!("Username must be a payout address (ADDRESS.worker): {e}"),
                    ),
                );
                return;
            }
        };
        if self.settings.mode == Mode::Solo
            && let Some(current) = &self.payout
            && current.script_pubkey != payout.script_pubkey
        {
            self.reply_error(
                id,
                StratumError::new(
                    StratumError::UNAUTHORIZED,
                    format!(
                        "SOLO mode pays one address per connection ({}); open another connection",
                        current.text
                    ),
                ),
            );
            return;
        }
        if self.users.is_empty() {
            self.choose_profile(split_user(user).1);
        }
        if let Some(d) = password.and_then(password_difficulty)
            && let Some(d) = self.vardiff.fix(d)
        {
            self.difficulty_changed(d);
        }
        let first = self.users.is_empty();
        if !self.users.iter().any(|u| u == user) {
            // Most connections authorize one worker: room for exactly that.
            self.users.reserve_exact(1);
            self.users.push(user.to_string());
        }
        if self.payout.is_none() {
            self.payout = Some(payout);
        }
        self.reply(id, json!(true));
        self.events.push_back(Event::Authorized {
            user: user.to_string(),
            session_id: self.extranonce1,
            user_agent: self.user_agent.clone(),
        });
        if first {
            self.start_work();
            self.release_held(now);
        }
    }

    /// Answers the submits held for subscribe and authorize, now that both are done.
    fn release_held(&mut self, now: Instant) {
        if !(self.subscribed && self.is_authorized()) {
            return;
        }
        while let Some((id, submit)) = self.held.pop_front() {
            if self.resumed {
                self.submit(now, id, &submit, true);
            } else {
                // Made with the extranonce1 of a session this connection did not resume:
                // they cannot be checked, and are no fault of the miner's.
                self.reply_error(id, Reject::Stale.to_error());
                self.events.push_back(Event::Rejected {
                    user: submit.worker.clone(),
                    reason: Reject::Stale,
                });
            }
        }
    }

    /// Sends the first difficulty and job once both subscribed and authorized.
    fn start_work(&mut self) {
        if self.subscribed && self.is_authorized() && self.current.is_some() {
            self.send_current(true);
        }
    }

    fn difficulty_changed(&mut self, d: Difficulty) {
        self.events.push_back(Event::Difficulty(d));
        if self.subscribed && self.is_authorized() && self.sent_difficulty.is_some() {
            self.send_current(false);
        }
    }

    /// Sends `set_difficulty` if it changed, then the current job: the job itself the
    /// first time, reissued under a new id when only the difficulty changed.
    fn send_current(&mut self, fresh: bool) {
        let Some(job) = self.current.clone() else {
            return;
        };
        let d = self.vardiff.difficulty();
        if self.sent_difficulty != Some(d) {
            self.out
                .push_back(Message::notification(Method::SetDifficulty(d)).into());
            self.sent_difficulty = Some(d);
        }
        let already_sent = self.jobs.iter().any(|s| s.job.id == job.id);
        let clean = !already_sent && (job.clean || fresh);
        // The same work goes out again with a later ntime than it had on this connection,
        // so that a miner starting its nonces over finds new headers, not duplicates.
        let ntime_floor = self
            .jobs
            .iter()
            .filter(|s| s.job.work == job.work)
            .map(|s| s.job.ntime.saturating_add(1))
            .max();
        let job = match ntime_floor {
            Some(floor) if already_sent || job.ntime < floor => {
                Arc::new(job.reissue(self.ids.next(), clean, job.ntime.max(floor)))
            }
            _ => job,
        };
        self.send_job(job, clean);
    }

    /// The coinbase this connection mines `job` with and its `mining.notify` line. PPLNS:
    /// the pool's coinbase and the job's shared line. SOLO: the address's coinbase, shared
    /// by its connections (a reissue of the last job reuses this connection's).
    fn work_of(&self, job: &Job, clean: bool) -> Option<(Arc<Coinbase>, Bytes)> {
        if let (Some(cb), Some(line)) = (&job.coinbase, job.notify_line(clean)) {
            return Some((cb.clone(), line));
        }
        if let Some(last) = self.jobs.back()
            && Arc::ptr_eq(&last.job.template, &job.template)
        {
            let coinbase = last.coinbase.clone();
            let mut line = BytesMut::new();
            StratumCodec::write(&job.notify(&coinbase, clean), &mut line);
            return Some((coinbase, line.freeze()));
        }
        let payout = self.payout.as_ref()?;
        let work = job
            .solo_work(&payout.script_pubkey, &self.settings.coinbase)
            .ok()?;
        Some((work.coinbase.clone(), work.notify_line(job, clean)))
    }

    fn send_job(&mut self, job: Arc<Job>, clean: bool) {
        let Some((coinbase, line)) = self.work_of(&job, clean) else {
            return;
        };
        self.out.push_back(Outgoing::Line(line));
        if !self.seen.iter().any(|(work, _)| *work == job.work) {
            // Grown one at a time: an idle miner holds one or two works, not room for four.
            self.seen.reserve_exact(1);
            self.seen.push((job.work, HashSet::new()));
        }
        self.jobs.push_back(SentJob {
            job,
            coinbase,
            difficulty: self.vardiff.difficulty(),
        });
        while self.jobs.len() > self.settings.keep_jobs {
            self.jobs.pop_front();
        }
        let jobs = &self.jobs;
        self.seen
            .retain(|(work, _)| jobs.iter().any(|j| j.job.work == *work));
    }

    /// A new job from the template feed.
    pub fn on_job(&mut self, _now: Instant, job: Arc<Job>) {
        if self.closing {
            return;
        }
        let capped = self
            .vardiff
            .set_network_difficulty(job.network_difficulty());
        if let Some(d) = capped {
            self.events.push_back(Event::Difficulty(d));
        }
        let new_block = self
            .current
            .as_ref()
            .is_none_or(|c| c.checked().prev_hash != job.checked().prev_hash);
        if new_block {
            self.block_first_job = Some(job.id);
        }
        self.current = Some(job.clone());
        if self.subscribed && self.is_authorized() {
            self.send_current(false);
        }
    }

    /// Timers: authorization and idle timeouts, and vardiff for quiet miners.
    pub fn on_tick(&mut self, now: Instant) {
        if self.closing {
            return;
        }
        let limits = &self.settings.limits;
        if !self.is_authorized()
            && now.saturating_duration_since(self.connected) >= limits.authorize_timeout()
        {
            while let Some((id, _)) = self.held.pop_front() {
                self.reply_error(id, Reject::Unauthorized.to_error());
            }
            self.close(CloseReason::AuthorizeTimeout);
            return;
        }
        if now.saturating_duration_since(self.last_message)
            >= Duration::from_secs(limits.idle_timeout_secs)
        {
            self.close(CloseReason::Idle);
            return;
        }
        if let Some(d) = self.vardiff.on_tick(now) {
            self.difficulty_changed(d);
        }
    }

    /// Gives the connection a new extranonce1. Miners that sent
    /// `mining.extranonce.subscribe` get `mining.set_extranonce` and clean work; others are
    /// asked to reconnect. Returns whether the miner could take it without reconnecting.
    pub fn change_extranonce1(&mut self, extranonce1: [u8; 4]) -> bool {
        if !self.extranonce_subscribed {
            self.out
                .push_back(Message::notification(Method::Reconnect(Reconnect::default())).into());
            self.close(CloseReason::Shutdown);
            return false;
        }
        self.extranonce1 = extranonce1;
        self.jobs.clear(); // work with the old extranonce1 is gone
        self.seen.clear();
        self.out.push_back(
            Message::notification(Method::SetExtranonce(SetExtranonce {
                extranonce1: extranonce1.to_vec(),
                extranonce2_size: self.settings.coinbase.extranonce2_size,
            }))
            .into(),
        );
        if self.subscribed && self.is_authorized() {
            self.send_current(true);
        }
        true
    }

    /// The store's word on an accepted share that waits for it: answer the miner.
    pub fn share_stored(&mut self, token: AckToken, stored: bool) {
        let Some(at) = self.awaiting.iter().position(|(t, _)| *t == token.0) else {
            return;
        };
        let Some((_, id)) = self.awaiting.remove(at) else {
            return;
        };
        if stored {
            self.reply(id, json!(true));
        } else {
            self.reply_error(
                id,
                StratumError::new(
                    StratumError::OTHER,
                    "Share not recorded: the pool cannot store shares right now",
                ),
            );
        }
    }

    /// Shows the miner a line (`client.show_message`).
    pub fn show_message(&mut self, text: &str) {
        self.out
            .push_back(Message::notification(Method::ShowMessage(text.to_string())).into());
    }

    /// Shutdown: show a message, ask to reconnect, close.
    pub fn shutdown(&mut self, message: &str) {
        self.out
            .push_back(Message::notification(Method::ShowMessage(message.to_string())).into());
        self.out
            .push_back(Message::notification(Method::Reconnect(Reconnect::default())).into());
        self.close(CloseReason::Shutdown);
    }

    /// Checks a submit and answers it. `held`: it waited for subscribe and authorize, so it
    /// was made for an earlier connection and a refusal does not count against the miner.
    fn submit(&mut self, now: Instant, id: Id, s: &Submit, held: bool) {
        let result = self.check(now, s);
        match result {
            Ok((accepted, job, coinbase)) => {
                self.invalid_in_row = 0;
                let awaiting_ack = if self.settings.ack_when_stored {
                    self.next_ack += 1;
                    self.awaiting.push_back((self.next_ack, id));
                    Some(AckToken(self.next_ack))
                } else {
                    self.reply(id, json!(true));
                    None
                };
                let (address, worker) = split_user(&s.worker);
                let t = job.checked();
                if accepted.block {
                    let solution = Solution {
                        extranonce1: &self.extranonce1,
                        extranonce2: &s.extranonce2,
                        version: accepted.header.version,
                        time: s.ntime,
                        nonce: s.nonce,
                    };
                    let found = self.unix_us(now);
                    let user = s.worker.clone();
                    if let Some(b) = BlockEvent::assemble(&job, &coinbase, &solution, user, found) {
                        self.events.push_back(Event::Block(Box::new(b)));
                    }
                }
                self.events.push_back(Event::Share(Box::new(ShareEvent {
                    user: s.worker.clone(),
                    address: address.to_string(),
                    worker: worker.to_string(),
                    height: t.height,
                    network_difficulty: job.network_difficulty(),
                    accepted: accepted.clone(),
                    time_us: self.unix_us(now),
                    awaiting_ack,
                })));
                if let Some(d) = self.vardiff.on_share(now, accepted.difficulty) {
                    self.difficulty_changed(d);
                }
            }
            Err(reason) => {
                self.reply_error(id, reason.to_error());
                let counts = !reason.is_honest() && !held;
                if counts {
                    self.invalid_in_row += 1;
                }
                self.events.push_back(Event::Rejected {
                    user: s.worker.clone(),
                    reason,
                });
                let ban = self.settings.limits.ban_after_invalid;
                if ban > 0 && self.invalid_in_row >= ban {
                    self.close(CloseReason::Banned(self.invalid_in_row));
                } else if counts {
                    self.charge(now);
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn check(
        &mut self,
        now: Instant,
        s: &Submit,
    ) -> Result<(Accepted, Arc<Job>, Arc<Coinbase>), Reject> {
        if !self.subscribed {
            return Err(Reject::NotSubscribed);
        }
        if !self.users.contains(&s.worker) {
            return Err(Reject::Unauthorized);
        }
        let current_prev = self.current.as_ref().map(|j| j.checked().prev_hash);
        let now_unix = self.unix_time(now);
        let current_difficulty = self.vardiff.difficulty();
        let extranonce1 = self.extranonce1;
        let version_mask = self.version_mask;
        let max_ahead = self.settings.max_ntime_ahead;
        let block_first_job = self.block_first_job;
        let id = JobId::parse(&s.job_id);
        let Some(sent) = self.jobs.iter_mut().rev().find(|j| Some(j.job.id) == id) else {
            // A job of an older block (of this connection, forgotten, or of the miner's
            // last connection, maybe to the pool process before this one) is stale, which
            // is no fault of the miner's; a made-up id is not.
            let older = id
                .filter(|id| self.ids.could_be_ours(*id))
                .zip(block_first_job)
                .is_some_and(|(n, first)| n < first);
            return Err(if older {
                Reject::Stale
            } else {
                Reject::UnknownJob
            });
        };
        if Some(sent.job.checked().prev_hash) != current_prev {
            return Err(Reject::Stale);
        }
        let difficulty = sent.difficulty.min(current_difficulty);
        let target = difficulty.target();
        let ctx = validate::Context {
            job: &sent.job,
            coinbase: &sent.coinbase,
            extranonce1: &extranonce1,
            version_mask,
            difficulty,
            target,
            now: now_unix,
            max_ntime_ahead: max_ahead,
        };
        let work = sent.job.work;
        let mut fresh = HashSet::new();
        let seen = self
            .seen
            .iter_mut()
            .find(|(w, _)| *w == work)
            .map_or(&mut fresh, |(_, set)| set);
        let accepted = validate::validate(&ctx, s, seen)?;
        Ok((accepted, sent.job.clone(), sent.coinbase.clone()))
    }
}

#[cfg(test)]
mod tests;
