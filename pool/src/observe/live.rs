//! Live figures kept in memory for the API and the metrics: who is connected, and each
//! worker's accepted share difficulty over the last ten minutes in ten-second buckets.
//!
//! Hashrate = accepted difficulty × 2^32 / seconds (a difficulty-1 share takes 2^32 hashes
//! on average), over the ten-minute window, or over the time since the pool started when
//! that is shorter, so a fresh pool does not report a tenth of its rate.
//!
//! Each worker also keeps its sessions (one per connection that authorized it: what
//! public-pool calls a client): the session id (the connection's extranonce1), the user
//! agent, when it started, its last share, its best share difficulty and its hashrate
//! over ten one-minute buckets. A closed session stays while it has shares in the window.
//!
//! `Live` holds this process's connections only. With several pool processes on one
//! database, each writes its snapshot to PostgreSQL every few seconds
//! (`store::live_view`) and keeps the others' in [`Peers`]; [`combine`] adds them up into
//! the one view the API and `/metrics` show. History comes from PostgreSQL (`pool_stats`,
//! `miner_stats`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use protocol::Difficulty;
use protocol::target::hashrate;

/// The window hashrates are averaged over, seconds.
pub const WINDOW_SECS: u64 = 600;
const BUCKET_SECS: u64 = 10;
const BUCKETS: usize = (WINDOW_SECS / BUCKET_SECS) as usize;

/// One bucket: which one (unix seconds / its length, which fits 32 bits for a thousand
/// years), and what came in it. 16 bytes: a worker holds sixty of them.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    slot: u32,
    shares: u32,
    difficulty: f64,
}

impl Bucket {
    /// Adds a share to the bucket of `slot` at `buckets[slot % len]`, starting it afresh
    /// when it held an older slot.
    fn add(buckets: &mut [Bucket], slot: u64, difficulty: f64) {
        let len = buckets.len() as u64;
        let bucket = &mut buckets[(slot % len) as usize];
        let slot = u32::try_from(slot).unwrap_or(u32::MAX);
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        bucket.difficulty += difficulty;
        bucket.shares = bucket.shares.saturating_add(1);
    }

    /// (difficulty, shares) of the buckets holding a slot from `oldest` to `newest`.
    fn sum(buckets: &[Bucket], oldest: u64, newest: u64) -> (f64, u64) {
        buckets
            .iter()
            .filter(|b| b.shares > 0 && (oldest..=newest).contains(&u64::from(b.slot)))
            .fold((0.0, 0), |(d, n), b| {
                (d + b.difficulty, n + u64::from(b.shares))
            })
    }
}

/// A session's buckets: ten of a minute each (a tenth of a worker's memory per session).
const SESSION_BUCKET_SECS: u64 = 60;
const SESSION_BUCKETS: usize = (WINDOW_SECS / SESSION_BUCKET_SECS) as usize;

#[derive(Debug)]
struct Session {
    facts: SessionFacts,
    minutes: [Bucket; SESSION_BUCKETS],
}

/// A session apart from its buckets: what a snapshot copies out as it is.
#[derive(Clone, Debug)]
struct SessionFacts {
    id: [u8; 4],
    user_agent: Arc<str>,
    started: u64,
    connected: bool,
    last_share: Option<u64>,
    best: f64,
}

impl Session {
    /// Difficulty in the buckets of the window ending at `now`, and the seconds they span.
    fn window(&self, now: u64) -> (f64, u64) {
        let newest = now / SESSION_BUCKET_SECS;
        let oldest = newest.saturating_sub(SESSION_BUCKETS as u64 - 1);
        let (difficulty, _) = Bucket::sum(&self.minutes, oldest, newest);
        (difficulty, now - oldest * SESSION_BUCKET_SECS)
    }

    /// A share in minute `minute`. One a whole window or more older than the newest
    /// bucket means the wall clock stepped back: the buckets start again from it, as a
    /// worker's [`Window`] does, instead of the share taking a newer minute's place.
    fn add(&mut self, minute: u64, difficulty: f64) {
        let newest = self.minutes.iter().map(|b| u64::from(b.slot)).max();
        if newest.is_some_and(|newest| minute + SESSION_BUCKETS as u64 <= newest) {
            self.minutes = [Bucket::default(); SESSION_BUCKETS];
        }
        Bucket::add(&mut self.minutes, minute, difficulty);
    }
}

/// A worker's ten-second buckets, with the sums of those inside the window that ends at
/// the newest bucket written. A snapshot (made under the lock every share waits on) reads
/// the sums of a worker and takes off the few buckets the window left since its newest
/// share, instead of adding up its sixty buckets.
#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    /// The newest slot a share went to.
    newest: u64,
    /// Difficulty and shares of the buckets from `newest - (BUCKETS - 1)` to `newest`.
    difficulty: f64,
    shares: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            buckets: [Bucket::default(); BUCKETS],
            newest: 0,
            difficulty: 0.0,
            shares: 0,
        }
    }

    /// A share in `slot`. One a whole window or more older than the newest slot means the
    /// wall clock stepped back (a share's time only moves forward within a session): the
    /// window starts again from it, so the latest clock wins, as it did before the sums.
    fn add(&mut self, slot: u64, difficulty: f64) {
        let len = BUCKETS as u64;
        if slot + len <= self.newest {
            *self = Window::new();
        }
        if slot > self.newest {
            // The window moves: its sums added up afresh, once per ten seconds at most,
            // so that they never carry the rounding of a subtraction.
            (self.difficulty, self.shares) = self.scan(slot);
            self.newest = slot;
        }
        Bucket::add(&mut self.buckets, slot, difficulty);
        self.difficulty += difficulty;
        self.shares += 1;
    }

    /// (difficulty, shares) of the buckets inside the window ending at slot `newest`,
    /// bucket by bucket.
    fn scan(&self, newest: u64) -> (f64, u64) {
        Bucket::sum(
            &self.buckets,
            newest.saturating_sub(BUCKETS as u64 - 1),
            newest,
        )
    }

    /// (difficulty, shares) of the buckets inside the window ending at `now`: the sums,
    /// less the buckets the window has left since the newest share (none or one for a
    /// worker submitting now).
    fn at(&self, now: u64) -> (f64, u64) {
        let len = BUCKETS as u64;
        let newest = now / BUCKET_SECS;
        if newest < self.newest {
            // Asked about a time before the newest share.
            return self.scan(newest);
        }
        if newest - self.newest >= len {
            return (0.0, 0);
        }
        let (mut difficulty, mut shares) = (self.difficulty, self.shares);
        for next in self.newest + 1..=newest {
            let leaving = &self.buckets[(next % len) as usize];
            if u64::from(leaving.slot) + len == next {
                difficulty -= leaving.difficulty;
                shares = shares.saturating_sub(u64::from(leaving.shares));
            }
        }
        if shares == 0 {
            difficulty = 0.0;
        }
        (difficulty.max(0.0), shares)
    }
}

/// A worker: its sessions, and its buckets from its first share on (a worker that has
/// only connected holds none: a tenth of the memory at ten thousand idle miners).
#[derive(Debug, Default)]
struct Worker {
    connections: u32,
    window: Option<Box<Window>>,
    last_share: Option<u64>,
    sessions: Vec<Session>,
}

impl Worker {
    /// (difficulty, shares) of the buckets inside the window ending at `now`.
    fn window(&self, now: u64) -> (f64, u64) {
        self.window.as_ref().map_or((0.0, 0), |w| w.at(now))
    }
}

/// Workers by address, then by worker name: looked up by `&str`, so a share allocates no
/// key; shared names, so a snapshot copies none.
type Workers = BTreeMap<Arc<str>, BTreeMap<Arc<str>, Worker>>;

/// The record of `address.worker`, made when missing.
fn worker_mut<'m>(w: &'m mut Workers, address: &str, worker: &str) -> Option<&'m mut Worker> {
    if !w.contains_key(address) {
        w.insert(Arc::from(address), BTreeMap::new());
    }
    let by_name = w.get_mut(address)?;
    if !by_name.contains_key(worker) {
        by_name.insert(Arc::from(worker), Worker::default());
    }
    by_name.get_mut(worker)
}

/// The live state; cheap to update from every connection task.
#[derive(Debug)]
pub struct Live {
    started: u64,
    workers: Mutex<Workers>,
}

/// One worker now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerLive {
    /// Payout address.
    pub address: String,
    /// Worker name (empty when none).
    pub worker: String,
    /// Open connections authorized as this worker.
    pub connections: u32,
    /// H/s over the window.
    pub hashrate: f64,
    /// Accepted shares per second over the window.
    pub shares_per_sec: f64,
    /// Unix seconds of its last accepted share.
    pub last_share: Option<u64>,
    /// Its sessions, oldest first.
    pub sessions: Vec<SessionLive>,
}

/// One session (connection) of a worker now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionLive {
    /// The connection's extranonce1: 8 hex digits, the subscribe's session id.
    pub id: String,
    /// What the miner called itself (`mining.subscribe`; V2: vendor/hardware/firmware).
    pub user_agent: String,
    /// Unix seconds it authorized.
    pub started: u64,
    /// Whether it is still connected.
    pub connected: bool,
    /// Unix seconds of its last accepted share.
    pub last_share: Option<u64>,
    /// Its best share difficulty (the hashes', not the targets').
    pub best: f64,
    /// H/s over the window (or since it started, when that is shorter).
    pub hashrate: f64,
}

/// The pool now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveSnapshot {
    /// Every worker connected now or with shares in the window, by address then name.
    pub workers: Vec<WorkerLive>,
    /// Distinct addresses with at least one connection.
    pub miners: usize,
    /// Distinct (address, worker) with at least one connection.
    pub connected_workers: usize,
    /// Pool H/s over the window.
    pub hashrate: f64,
    /// Pool accepted shares per second over the window.
    pub shares_per_sec: f64,
}

impl Default for Live {
    /// Empty, as of now.
    fn default() -> Self {
        Live::new(u64::from(crate::clock::unix_now()))
    }
}

impl Live {
    /// Empty, as of unix second `now`.
    pub fn new(now: u64) -> Live {
        Live {
            started: now,
            workers: Mutex::new(BTreeMap::new()),
        }
    }

    /// Unix second the figures started (the pool's start).
    pub fn started(&self) -> u64 {
        self.started
    }

    fn with<R>(&self, f: impl FnOnce(&mut Workers) -> R) -> R {
        f(&mut self.workers.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A connection authorized as `address.worker`: session `id` (its extranonce1), with
    /// the user agent it gave, at unix second `now`.
    pub fn connected(&self, address: &str, worker: &str, id: [u8; 4], user_agent: &str, now: u64) {
        self.with(|w| {
            let Some(entry) = worker_mut(w, address, worker) else {
                return;
            };
            entry.connections += 1;
            // A resumed session (same extranonce1) takes up its old record.
            entry
                .sessions
                .retain(|s| s.facts.id != id || s.facts.connected);
            // Nearly every worker has one session: a Vec's first push reserves four.
            entry.sessions.reserve_exact(1);
            entry.sessions.push(Session {
                facts: SessionFacts {
                    id,
                    user_agent: Arc::from(user_agent),
                    started: now,
                    connected: true,
                    last_share: None,
                    best: 0.0,
                },
                minutes: [Bucket::default(); SESSION_BUCKETS],
            });
        });
    }

    /// Session `id` of `address.worker` closed.
    pub fn disconnected(&self, address: &str, worker: &str, id: [u8; 4]) {
        self.with(|w| {
            if let Some(entry) = w.get_mut(address).and_then(|m| m.get_mut(worker)) {
                entry.connections = entry.connections.saturating_sub(1);
                if let Some(s) = entry
                    .sessions
                    .iter_mut()
                    .find(|s| s.facts.id == id && s.facts.connected)
                {
                    s.facts.connected = false;
                }
            }
        });
    }

    /// An accepted share credited at `difficulty`, whose hash has difficulty `actual`, from
    /// session `id` (when known) at unix second `now`.
    pub fn share(
        &self,
        address: &str,
        worker: &str,
        id: Option<[u8; 4]>,
        difficulty: Difficulty,
        actual: Difficulty,
        now: u64,
    ) {
        let difficulty = difficulty.get();
        let slot = now / BUCKET_SECS;
        self.with(|w| {
            let Some(entry) = worker_mut(w, address, worker) else {
                return;
            };
            entry
                .window
                .get_or_insert_with(|| Box::new(Window::new()))
                .add(slot, difficulty);
            entry.last_share = Some(entry.last_share.map_or(now, |t| t.max(now)));
            let Some(session) =
                id.and_then(|id| entry.sessions.iter_mut().rev().find(|s| s.facts.id == id))
            else {
                return;
            };
            session.add(now / SESSION_BUCKET_SECS, difficulty);
            let facts = &mut session.facts;
            facts.last_share = Some(facts.last_share.map_or(now, |t| t.max(now)));
            facts.best = facts.best.max(actual.get());
        });
    }

    /// The figures at unix second `now`; forgets workers that left and have no share in
    /// the window.
    pub fn snapshot(&self, now: u64) -> LiveSnapshot {
        let span = now
            .saturating_sub(self.started)
            .clamp(BUCKET_SECS, WINDOW_SECS) as f64;
        // Every share waits on this lock: under it, only forget what left and copy the
        // figures out, the names shared (a reference count each, no allocation per
        // worker). The rows and their text are made once it is released: with 19,000
        // workers, making them under it kept shares waiting 10-12 ms, then 5-6, and 3-4
        // with each worker's running window sums (`cargo bench -p benches --bench
        // live_snapshot`).
        let (workers, sessions) = self.with(|w| {
            let count = w.values().map(BTreeMap::len).sum();
            let mut workers = Vec::with_capacity(count);
            let mut sessions = Vec::with_capacity(count);
            // One pass, in address then name order.
            w.retain(|address, by_name| {
                by_name.retain(|worker, v| {
                    let (difficulty, shares) = v.window(now);
                    if v.connections == 0 && shares == 0 {
                        return false;
                    }
                    let first = sessions.len();
                    v.sessions.retain(|s| {
                        let (difficulty, covered) = s.window(now);
                        let keep = s.facts.connected || difficulty > 0.0;
                        if keep {
                            sessions.push(SessionFigures {
                                facts: s.facts.clone(),
                                difficulty,
                                covered,
                            });
                        }
                        keep
                    });
                    workers.push(WorkerFigures {
                        address: address.clone(),
                        worker: worker.clone(),
                        connections: v.connections,
                        difficulty,
                        shares,
                        last_share: v.last_share,
                        sessions: first..sessions.len(),
                    });
                    true
                });
                !by_name.is_empty()
            });
            (workers, sessions)
        });
        let rows = workers
            .into_iter()
            .map(|w| WorkerLive {
                // `String::from`, not `to_string`: that formats through `Display`.
                address: String::from(&*w.address),
                worker: String::from(&*w.worker),
                connections: w.connections,
                hashrate: hashrate(w.difficulty, span),
                shares_per_sec: w.shares as f64 / span,
                last_share: w.last_share,
                sessions: sessions[w.sessions]
                    .iter()
                    .map(
                        |SessionFigures {
                             facts: s,
                             difficulty,
                             covered,
                         }| {
                            let since = s.started.max(self.started);
                            let span = now.saturating_sub(since).min(*covered).max(BUCKET_SECS);
                            SessionLive {
                                id: hex::encode(s.id),
                                user_agent: String::from(&*s.user_agent),
                                started: s.started,
                                connected: s.connected,
                                last_share: s.last_share,
                                best: s.best,
                                hashrate: hashrate(*difficulty, span as f64),
                            }
                        },
                    )
                    .collect(),
            })
            .collect();
        LiveSnapshot::of_workers(rows)
    }
}

/// A worker's figures as copied out under the lock ([`Live::snapshot`]).
struct WorkerFigures {
    address: Arc<str>,
    worker: Arc<str>,
    connections: u32,
    difficulty: f64,
    shares: u64,
    last_share: Option<u64>,
    /// Its sessions' place among the [`SessionFigures`] copied with it.
    sessions: Range<usize>,
}

/// A session's figures as copied out under the lock.
struct SessionFigures {
    facts: SessionFacts,
    difficulty: f64,
    covered: u64,
}

impl LiveSnapshot {
    /// The pool of `workers` (in address and name order), its totals counted from them.
    pub fn of_workers(workers: Vec<WorkerLive>) -> LiveSnapshot {
        let mut out = LiveSnapshot::default();
        let mut addresses = BTreeSet::new();
        for w in workers {
            if w.connections > 0 {
                addresses.insert(w.address.clone());
                out.connected_workers += 1;
            }
            out.hashrate += w.hashrate;
            out.shares_per_sec += w.shares_per_sec;
            out.workers.push(w);
        }
        out.miners = addresses.len();
        out
    }
}

/// Adds up the snapshots of several pool processes: a worker connected to two processes
/// is one worker with both its connections, sessions and hashrates; a miner counts once.
pub fn combine(parts: impl IntoIterator<Item = LiveSnapshot>) -> LiveSnapshot {
    let mut by_worker: BTreeMap<(String, String), WorkerLive> = BTreeMap::new();
    for part in parts {
        for w in part.workers {
            match by_worker.entry((w.address.clone(), w.worker.clone())) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(w);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    let to = slot.get_mut();
                    to.connections = to.connections.saturating_add(w.connections);
                    to.hashrate += w.hashrate;
                    to.shares_per_sec += w.shares_per_sec;
                    to.last_share = to.last_share.max(w.last_share);
                    to.sessions.extend(w.sessions);
                    to.sessions.sort_by_key(|s| s.started);
                }
            }
        }
    }
    LiveSnapshot::of_workers(by_worker.into_values().collect())
}

/// This process's snapshot with the other processes' added ([`combine`]). Alone (one
/// process, the usual case) it is its own snapshot as it is: combining it with nothing
/// would give the same rows and totals after copying every name into a map.
pub fn combine_with(own: LiveSnapshot, peers: &[Peer]) -> LiveSnapshot {
    if peers.is_empty() {
        return own;
    }
    combine(std::iter::once(own).chain(peers.iter().map(|p| p.snapshot.clone())))
}

/// Another pool process on the same database, as its last snapshot showed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Its name in `live_snapshots`: host, process id and start time.
    pub process: String,
    /// Its `stratum.instance_id`.
    pub instance_id: u8,
    /// Unix second it started.
    pub started: u64,
    /// Seconds since it wrote the snapshot (by the database's clock).
    pub age_secs: f64,
    /// Its workers then.
    pub snapshot: LiveSnapshot,
}

/// The other processes' snapshots, as last read from the database.
#[derive(Debug, Default)]
pub struct Peers {
    /// Until when they count, and them: shared, so that each API call, `/metrics` scrape
    /// and offline check takes a reference, not a copy of every other process's workers.
    read: Mutex<Option<(Instant, Arc<[Peer]>)>>,
}

impl Peers {
    /// The processes read just now, to count for `valid_for` unless read again (if the
    /// database goes away, what it said last is soon too old to add).
    pub fn set(&self, peers: Vec<Peer>, valid_for: Duration) {
        let until = Instant::now() + valid_for;
        *self.read.lock().unwrap_or_else(PoisonError::into_inner) = Some((until, peers.into()));
    }

    /// The processes that count now.
    pub fn current(&self) -> Arc<[Peer]> {
        match &*self.read.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((until, peers)) if Instant::now() <= *until => peers.clone(),
            _ => Arc::new([]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn the_running_window_sums_what_a_scan_of_its_buckets_sums() {
        // Shares at times that mostly creep forward, sometimes jump (a quiet worker), and
        // sometimes come late (a share stamped before the newest, or a clock stepped back);
        // after each, the window's figures at several times, one of them earlier, against
        // the buckets summed one by one.
        let mut window = Window::new();
        let mut now = T0;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for i in 0..20_000 {
            now += match random(100) {
                0 => 300 + random(900),
                1..=4 => 0,
                _ => random(4),
            };
            let at = if random(10) == 0 {
                now.saturating_sub(random(700))
            } else {
                now
            };
            let difficulty = [1e-10, 0.5, 3.0, 1e6][random(4) as usize];
            window.add(at / BUCKET_SECS, difficulty);
            for query in [
                now.saturating_sub(random(300)),
                now,
                now + 5,
                now + 90,
                now + 700,
            ] {
                let (d, n) = window.scan(query / BUCKET_SECS);
                let (got_d, got_n) = window.at(query);
                assert_eq!(got_n, n, "shares at {query} after share {i}");
                // A bucket taken off the sums leaves at most their rounding.
                assert!(
                    (got_d - d).abs() <= 1e-12 * window.difficulty.max(1.0),
                    "difficulty at {query} after share {i}: {got_d} against {d}"
                );
            }
        }
    }

    #[test]
    fn hashrate_is_difficulty_times_2_32_over_the_window() {
        let live = Live::new(T0 - 3600);
        let one = Difficulty::new(1.0).unwrap();
        let five = Difficulty::new(5.0).unwrap();
        live.connected(
            "addr1",
            "rig1",
            [0, 0, 0, 1],
            "bitaxe/BM1370/v2.9.0",
            T0 - 60,
        );
        live.connected("addr1", "rig2", [0, 0, 0, 2], "", T0 - 60);
        live.connected("addr2", "", [0, 0, 0, 3], "", T0 - 60);
        // 600 difficulty-1 shares over ten minutes from rig1: 2^32 H/s.
        for i in 0..600 {
            live.share("addr1", "rig1", Some([0, 0, 0, 1]), one, one, T0 + i);
        }
        // rig2: 60 shares of difficulty 5 in the last minute.
        for i in 0..60 {
            live.share("addr1", "rig2", None, five, five, T0 + 540 + i);
        }
        let s = live.snapshot(T0 + 599);
        assert_eq!(s.miners, 2);
        assert_eq!(s.connected_workers, 3);
        let rig1 = &s.workers[0];
        assert_eq!(
            (rig1.address.as_str(), rig1.worker.as_str()),
            ("addr1", "rig1")
        );
        assert!(
            (rig1.hashrate - 4_294_967_296.0).abs() < 1.0,
            "{}",
            rig1.hashrate
        );
        assert!((rig1.shares_per_sec - 1.0).abs() < 1e-9);
        assert_eq!(rig1.last_share, Some(T0 + 599));
        // Its session: public-pool's client record.
        let session = &rig1.sessions[0];
        assert_eq!(
            (session.id.as_str(), session.user_agent.as_str()),
            ("00000001", "bitaxe/BM1370/v2.9.0")
        );
        assert_eq!((session.started, session.connected), (T0 - 60, true));
        assert_eq!((session.last_share, session.best), (Some(T0 + 599), 1.0));
        assert!(
            (session.hashrate / 4_294_967_296.0 - 1.0).abs() < 0.01,
            "{}",
            session.hashrate
        );
        // rig2's shares came without a session: its session shows none.
        assert_eq!(s.workers[1].sessions[0].hashrate, 0.0);
        assert_eq!(s.workers[1].sessions[0].last_share, None);
        let rig2 = &s.workers[1];
        assert!((rig2.hashrate - 300.0 * 4_294_967_296.0 / 600.0).abs() < 1.0);
        assert_eq!(s.workers[2].hashrate, 0.0);
        assert!((s.hashrate - rig1.hashrate - rig2.hashrate).abs() < 1.0);
    }

    #[test]
    fn old_shares_leave_the_window_and_gone_workers_are_forgotten() {
        let live = Live::new(T0 - 3600);
        live.connected("a", "w", [1, 2, 3, 4], "x", T0);
        let two = Difficulty::new(2.0).unwrap();
        live.share("a", "w", Some([1, 2, 3, 4]), two, two, T0);
        live.disconnected("a", "w", [1, 2, 3, 4]);
        let s = live.snapshot(T0 + 5);
        assert_eq!((s.miners, s.connected_workers, s.workers.len()), (0, 0, 1));
        // The closed session stays while its share is in the window.
        assert_eq!(s.workers[0].sessions.len(), 1);
        assert!(!s.workers[0].sessions[0].connected);
        assert_eq!(s.workers[0].sessions[0].best, 2.0);
        assert!(s.hashrate > 0.0);
        // Ten minutes on, the share is out of the window and the worker is gone.
        let s = live.snapshot(T0 + WINDOW_SECS + BUCKET_SECS);
        assert_eq!(s, LiveSnapshot::default());
        // A bucket reused a window later starts from zero.
        let one = Difficulty::new(1.0).unwrap();
        live.share("a", "w", None, one, one, T0 + WINDOW_SECS);
        let s = live.snapshot(T0 + WINDOW_SECS);
        assert!((s.shares_per_sec * 600.0 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_session_after_the_clock_steps_back_counts_only_the_latest_clock() {
        let live = Live::new(T0 - 3600);
        let id = [9, 9, 9, 9];
        live.connected("a", "w", id, "x", T0);
        let five = Difficulty::new(5.0).unwrap();
        // Shares ten and eleven minutes on, then the clock steps back to T0: that share
        // falls in the minute bucket of the one ten minutes on (ten buckets of a minute).
        live.share("a", "w", Some(id), five, five, T0 + 600);
        live.share("a", "w", Some(id), five, five, T0 + 660);
        live.share("a", "w", Some(id), Difficulty::ONE, Difficulty::ONE, T0);
        // Once the clock is back at T0 + 660, the shares from before the step count no
        // more for the session than for the worker (whose window started again at T0).
        let s = live.snapshot(T0 + 660);
        assert_eq!(s.workers[0].hashrate, 0.0);
        assert_eq!(s.workers[0].sessions[0].hashrate, 0.0);
        // On the clock of the step, the session has its one share.
        let s = live.snapshot(T0 + 30);
        let session = &s.workers[0].sessions[0];
        let expected = 4_294_967_296.0 / 30.0;
        assert!(
            (session.hashrate / expected - 1.0).abs() < 1e-9,
            "{} against {expected}",
            session.hashrate
        );
    }

    #[test]
    fn a_fresh_pool_divides_by_its_age_not_the_whole_window() {
        let live = Live::new(T0);
        for i in 0..60 {
            live.share("a", "", None, Difficulty::ONE, Difficulty::ONE, T0 + i);
        }
        let s = live.snapshot(T0 + 60);
        assert!(
            (s.shares_per_sec - 1.0).abs() < 1e-9,
            "{}",
            s.shares_per_sec
        );
    }

    #[test]
    fn a_process_alone_is_its_own_snapshot() {
        // What the shortcut returns is what combining with nothing gives.
        let live = Live::new(T0);
        let d = Difficulty::new(2.0).unwrap();
        for (addr, worker, id) in [("a", "x", 1u8), ("a", "y", 2), ("b", "x", 3), ("a", "x", 4)] {
            live.connected(addr, worker, [id; 4], "cpuminer/2.5.1", T0 + u64::from(id));
            live.share(addr, worker, Some([id; 4]), d, d, T0 + 30);
        }
        live.disconnected("b", "x", [3; 4]);
        let own = live.snapshot(T0 + 40);
        assert_eq!(combine_with(own.clone(), &[]), combine([own.clone()]));
        assert_eq!(combine_with(own.clone(), &[]), own);
    }

    #[test]
    fn combined_processes_count_a_worker_and_a_miner_once() {
        let one = Difficulty::new(1.0).unwrap();
        // Process A: alice.rig1 on two connections, bob gone but with shares.
        let a = Live::new(T0 - 3600);
        a.connected("alice", "rig1", [0, 0, 0, 1], "a", T0);
        a.connected("alice", "rig1", [0, 0, 0, 2], "a", T0 + 5);
        a.connected("bob", "", [0, 0, 0, 3], "b", T0);
        for i in 0..60 {
            a.share("alice", "rig1", Some([0, 0, 0, 1]), one, one, T0 + i);
            a.share("bob", "", Some([0, 0, 0, 3]), one, one, T0 + i);
        }
        a.disconnected("bob", "", [0, 0, 0, 3]);
        // Process B: alice.rig1 again, alice.rig2, carol.
        let b = Live::new(T0 - 3600);
        b.connected("alice", "rig1", [7, 0, 0, 1], "a", T0 + 1);
        b.connected("alice", "rig2", [7, 0, 0, 2], "a", T0);
        b.connected("carol", "x", [7, 0, 0, 3], "c", T0);
        for i in 0..120 {
            b.share("alice", "rig1", Some([7, 0, 0, 1]), one, one, T0 + i);
        }
        let (sa, sb) = (a.snapshot(T0 + 599), b.snapshot(T0 + 599));
        let all = combine([sa.clone(), sb.clone()]);
        assert_eq!(all.miners, 2, "alice and carol connected; bob is not");
        assert_eq!(all.connected_workers, 3, "alice.rig1, alice.rig2, carol.x");
        assert_eq!(all.workers.len(), 4, "bob's shares still count");
        assert!((all.hashrate - sa.hashrate - sb.hashrate).abs() < 1.0);
        assert!((all.shares_per_sec - sa.shares_per_sec - sb.shares_per_sec).abs() < 1e-9);
        let rig1 = all
            .workers
            .iter()
            .find(|w| w.address == "alice" && w.worker == "rig1")
            .unwrap();
        assert_eq!(rig1.connections, 3);
        assert_eq!(rig1.last_share, Some(T0 + 119));
        let ids: Vec<&str> = rig1.sessions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["00000001", "07000001", "00000002"], "by start time");
        assert!((rig1.shares_per_sec - 180.0 / 600.0).abs() < 1e-9);
        // A snapshot survives the trip through the database's JSON.
        let json = serde_json::to_string(&sb.workers).unwrap();
        let back: Vec<WorkerLive> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sb.workers);
        // One process alone is itself.
        assert_eq!(combine([sa.clone()]), sa);
    }

    #[test]
    fn peers_stop_counting_when_not_read_again() {
        let peers = Peers::default();
        assert!(peers.current().is_empty());
        let peer = Peer {
            process: "h/1/2".into(),
            instance_id: 1,
            started: T0,
            age_secs: 0.5,
            snapshot: LiveSnapshot::default(),
        };
        peers.set(vec![peer.clone()], Duration::from_secs(60));
        assert_eq!(&peers.current()[..], std::slice::from_ref(&peer));
        // Shared, not copied, between calls.
        assert!(Arc::ptr_eq(&peers.current(), &peers.current()));
        peers.set(vec![peer], Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(peers.current().is_empty());
    }
}
