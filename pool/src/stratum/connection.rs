//! One connection: moves lines between the socket and the [`Session`] state machine, feeds
//! it jobs and a one-second tick, and routes its events (shares to the counters and the
//! store's writer, blocks to the submitter, closes to admission). It decides nothing: the
//! session says what a close is and when a share or block was found.
//!
//! Writes are bounded by a timeout, so a miner that stops reading cannot hold the task;
//! reads stop while [`MAX_ACKS_IN_FLIGHT`] shares wait for the store, so a miner that
//! submits faster than the store commits is slowed down, never queued without bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use protocol::stratum::{Message, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::now_us;
use crate::net::peer_ip;
use crate::observe::live::Live;
use crate::observe::stats::Protocol;
use crate::shares::extranonce::Lease;
use crate::shares::record::AckToken;
use crate::stratum::lines::Lines;
use crate::stratum::session::{CloseReason, Event, Session};
use crate::stratum::shared::{Ack, Shared};

/// How long a write may take before the miner counts as not reading.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for the store to confirm shares already accepted.
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shares waiting for the store, oldest first: each ends as (token, stored?).
///
/// The queue exists only while a share waits: an empty `FuturesOrdered` still holds two
/// allocations (its ready queue and that queue's stub task, about 160 bytes with the
/// allocator's share), which every idle connection paid.
pub(crate) struct Acks(Option<FuturesOrdered<Ack>>);

impl Acks {
    pub(crate) fn new() -> Acks {
        Acks(None)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push_back(&mut self, ack: Ack) {
        self.0
            .get_or_insert_with(FuturesOrdered::new)
            .push_back(ack);
    }

    /// The oldest share's answer once the store has given it; `None` when none waits.
    /// Cancel safe, as `FuturesOrdered::next` is: an answer is taken only when returned.
    pub(crate) async fn next(&mut self) -> Option<(AckToken, bool)> {
        let queue = self.0.as_mut()?;
        let answer = queue.next().await;
        if queue.is_empty() {
            self.0 = None;
        }
        answer
    }
}

/// Shares of one connection waiting for the store at most: beyond this the connection
/// stops reading until the store catches up, so a miner that submits faster than the
/// database commits is slowed by TCP, not queued in memory or closed.
pub(crate) const MAX_ACKS_IN_FLIGHT: usize = 256;

/// Serves one miner until it leaves, misbehaves, or the pool shuts down.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    mut lease: Lease,
    shared: &Shared,
    cancel: CancellationToken,
) {
    let mut lines = Lines::new(stream, shared.settings.limits.max_line);
    let mut jobs = shared.jobs.clone();
    let mut announcements = shared.announcements.subscribe();
    let mut session = Session::new(
        shared.settings.clone(),
        shared.ids.clone(),
        lease.bytes(),
        Instant::now(),
        now_us(),
    );
    if let Some(job) = jobs.borrow_and_update().clone() {
        session.on_job(Instant::now(), job);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutting_down = false;
    let mut acks = Acks::new();
    let mut presence = Presence::new(&shared.stats.live);
    // One registration with the token for the connection's life, not one per loop turn
    // (thousands of tasks re-registering on one token's lock showed in the profile).
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    debug!(%peer, extranonce1 = %hex::encode(lease.bytes()), "connected");
    let end = loop {
        // Send what the session queued, then act on what happened.
        while let Some(out) = session.poll_transmit() {
            lines.feed(&out);
        }
        if lines.has_pending() {
            match tokio::time::timeout(WRITE_TIMEOUT, lines.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break format!("write failed: {e}"),
                Err(_) => break "not reading (write timed out)".to_string(),
            }
        }
        let events = std::iter::from_fn(|| session.poll_event());
        let mut notices = Vec::new();
        let closing = route_events(
            Protocol::V1,
            events,
            peer,
            shared,
            &mut acks,
            &mut presence,
            &mut notices,
        )
        .await;
        for text in notices {
            session.show_message(&text);
        }
        if let Some(reason) = closing {
            if reason == CloseReason::Shutdown {
                // The miner must read our reconnect request before the socket goes.
                close_gently(lines).await;
            }
            break reason.to_string();
        }
        tokio::select! {
            _ = &mut cancelled, if !shutting_down => {
                shutting_down = true;
                // Answer the shares already accepted before saying goodbye.
                let settle = async {
                    while let Some((id, stored)) = acks.next().await {
                        session.share_stored(id, stored);
                    }
                };
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, settle).await;
                session.shutdown(&shared.shutdown_message);
            }
            Some((id, stored)) = acks.next(), if !acks.is_empty() => {
                session.share_stored(id, stored);
            }
            item = lines.next(), if acks.len() < MAX_ACKS_IN_FLIGHT => match item {
                None => break "closed by the miner".to_string(),
                Some(Err(e)) => break format!("read failed: {e}"),
                Some(Ok(line)) => {
                    if let Ok(Message::Request { method: Method::Subscribe(s), .. }) = &line {
                        resume(&mut lease, &mut session, s.session_id.as_deref(), shared);
                    }
                    session.handle(Instant::now(), line);
                }
            },
            changed = jobs.changed() => {
                if changed.is_err() {
                    // The job feed ended: the pool is stopping.
                    shutting_down = true;
                    session.shutdown(&shared.shutdown_message);
                } else if let Some(job) = jobs.borrow_and_update().clone() {
                    session.on_job(Instant::now(), job);
                }
            }
            changed = announcements.changed() => {
                let text = announcements.borrow_and_update().clone();
                if let (Ok(()), Some(text)) = (changed, text) {
                    session.show_message(&text);
                }
            }
            _ = tick.tick() => session.on_tick(Instant::now()),
        }
    };
    debug!(%peer, user = session.user().unwrap_or("-"), reason = %end, "disconnected");
}

/// How long a gentle close waits for the miner to read our last lines and close its side.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Sends our FIN, then reads and drops what the miner still sends until it closes too (at
/// most [`LINGER`]): a socket closed with unread input is reset, and a reset can destroy the
/// `client.reconnect` we just sent before the miner reads it.
async fn close_gently<S: AsyncRead + AsyncWrite + Unpin>(lines: Lines<S>) {
    let mut stream = lines.into_inner();
    let _ = tokio::time::timeout(LINGER, async {
        let _ = stream.shutdown().await;
        // On the heap: an array here would make every connection's task 4 KiB larger.
        let mut buf = vec![0u8; 4096];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// A miner that subscribes with the session id it had (our extranonce1 hex) gets the same
/// extranonce1 back when it is free, so its work stays valid across a reconnect.
fn resume(lease: &mut Lease, session: &mut Session, id: Option<&str>, shared: &Shared) {
    let Some(bytes) = id
        .and_then(|id| hex::decode(id).ok())
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    else {
        return;
    };
    if bytes == lease.bytes() || session.is_subscribed() {
        return;
    }
    if let Some(claimed) = shared.extranonces.claim(bytes)
        && session.resume_extranonce1(claimed.bytes())
    {
        *lease = claimed;
    }
}

/// The workers a connection authorized, each a session in [`Live`] (counted as connected
/// until the connection ends, however it ends).
pub(crate) struct Presence<'a> {
    live: &'a Live,
    workers: Vec<(String, String, [u8; 4])>,
}

impl<'a> Presence<'a> {
    /// Nobody yet.
    pub(crate) fn new(live: &'a Live) -> Presence<'a> {
        Presence {
            live,
            workers: Vec::new(),
        }
    }

    fn add(&mut self, user: &str, id: [u8; 4], user_agent: Option<&str>) {
        let (address, worker) = crate::stratum::session::split_user(user);
        if !self
            .workers
            .iter()
            .any(|(a, w, _)| a == address && w == worker)
        {
            let now = u64::from(crate::clock::unix_now());
            self.live
                .connected(address, worker, id, user_agent.unwrap_or(""), now);
            self.workers.reserve_exact(1);
            self.workers
                .push((address.to_string(), worker.to_string(), id));
        }
    }

    /// The session id `address.worker` authorized with on this connection.
    pub(crate) fn session_of(&self, address: &str, worker: &str) -> Option<[u8; 4]> {
        self.workers
            .iter()
            .find(|(a, w, _)| a == address && w == worker)
            .map(|(_, _, id)| *id)
    }
}

impl Drop for Presence<'_> {
    fn drop(&mut self) {
        for (address, worker, id) in &self.workers {
            self.live.disconnected(address, worker, *id);
        }
    }
}

/// Routes a session's events (v1 or V2); returns why to close, if it asked to. A full
/// writer or block queue makes this wait: the connection reads no more from its miner
/// meanwhile.
pub(crate) async fn route_events(
    protocol: Protocol,
    events: impl Iterator<Item = Event>,
    peer: SocketAddr,
    shared: &Shared,
    acks: &mut Acks,
    presence: &mut Presence<'_>,
    notices: &mut Vec<String>,
) -> Option<CloseReason> {
    let mut close = None;
    for event in events {
        match event {
            Event::Authorized {
                user,
                session_id,
                user_agent,
            } => {
                presence.add(&user, session_id, user_agent.as_deref());
                debug!(%peer, %user, agent = user_agent.as_deref().unwrap_or("-"), "authorized");
            }
            Event::Share(share) => {
                let session = presence.session_of(&share.address, &share.worker);
                if let Some(ack) = shared
                    .record_share(&share, session, protocol, notices)
                    .await
                {
                    acks.push_back(ack);
                }
            }
            Event::Rejected { user, reason } => {
                shared.stats.rejected(protocol, reason.label());
                debug!(%peer, %user, reason = reason.label(), "share rejected");
            }
            Event::Block(block) => {
                // On an easy chain every share is a candidate: the submitter logs what the
                // node made of them at INFO, once per block.
                debug!(%peer, user = %block.user, height = block.height, hash = %block.hash, "block candidate");
                shared.submit_block(block).await;
            }
            Event::Difficulty(d) => {
                debug!(%peer, difficulty = %d, "difficulty")
            }
            Event::Close(reason) => {
                log_close(&reason, peer, shared);
                if let CloseReason::Banned(_) = reason {
                    shared.admission.ban(peer_ip(&peer), Instant::now());
                }
                if reason.is_violation() {
                    strike(shared, peer);
                }
                close = Some(reason);
            }
        }
    }
    close
}

/// One line per close, naming the setting that caused it.
fn log_close(reason: &CloseReason, peer: SocketAddr, shared: &Shared) {
    let limits = &shared.settings.limits;
    match reason {
        CloseReason::Banned(n) => {
            warn!(%peer, invalid = n, ban_secs = limits.ban_secs, "banned: a run of invalid shares (limits.ban_after_invalid)")
        }
        CloseReason::Shutdown => {}
        CloseReason::LineTooLong => {
            warn!(%peer, limit = limits.max_line, "closing: line over the limit (limits.max_line)")
        }
        CloseReason::Flood => {
            warn!(%peer, limit = limits.messages_per_sec, "closing: too many junk messages (limits.messages_per_sec)")
        }
        CloseReason::BadLines(n) => {
            info!(%peer, lines = n, "closing: malformed lines in a row (limits.max_bad_lines)")
        }
        CloseReason::AuthorizeTimeout => {
            info!(%peer, secs = limits.authorize_timeout_secs, "closing: not authorized in time (limits.authorize_timeout_secs)")
        }
        other => info!(%peer, reason = %other, "closing"),
    }
}

/// Counts a protocol-violation close against the peer's address; logs the ban it causes.
pub(crate) fn strike(shared: &Shared, peer: SocketAddr) {
    if shared.admission.strike(peer_ip(&peer), Instant::now()) {
        warn!(
            %peer,
            violations = shared.settings.limits.ban_after_violations,
            ban_secs = shared.settings.limits.ban_secs,
            "banned: repeated protocol violations (limits.ban_after_violations)"
        );
    }
}
