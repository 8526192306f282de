//! Mining statistics: hash rates over 10 s, 60 s and 15 min per thread and in total, share
//! counts with the pool's reject reasons, and the connection. Shared by the work source
//! (which records), the console line and the JSON API (which read). Time comes in as an
//! argument, so the windows are tested without sleeping.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The hash-rate windows, as xmrig reports them.
pub const WINDOWS: [Duration; 3] = [
    Duration::from_secs(10),
    Duration::from_secs(60),
    Duration::from_secs(900),
];

/// A snapshot of everything, for display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Seconds since start.
    pub uptime: f64,
    /// Total H/s over each of [`WINDOWS`] (`None` until a window has data).
    pub total: [Option<f64>; 3],
    /// Per-thread H/s over each window.
    pub threads: Vec<[Option<f64>; 3]>,
    /// Highest 10 s total seen.
    pub highest: f64,
    /// Hashes done in all.
    pub hashes: u64,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares (stale ones included).
    pub rejected: u64,
    /// Rejected as stale.
    pub stale: u64,
    /// Reject reasons as the pool gave them, with counts.
    pub reject_reasons: BTreeMap<String, u64>,
    /// Sum of the difficulty of accepted shares.
    pub accepted_difficulty: f64,
    /// The current share difficulty.
    pub difficulty: f64,
    /// Where we mine now (pool URL or node), if connected.
    pub pool: Option<String>,
    /// Seconds connected to it.
    pub connected_for: f64,
    /// Connection failures so far.
    pub failures: u64,
    /// Block candidates submitted: solutions that meet the network target, sent to the
    /// node (solo) or to the pool, which decides (pool mode).
    pub block_candidates: u64,
    /// Blocks the node accepted (solo mode; in pool mode the pool knows, not the miner).
    pub blocks: u64,
    /// The backend in use.
    pub backend: String,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    samples: VecDeque<(Instant, Vec<u64>)>,
    highest: f64,
    accepted: u64,
    rejected: u64,
    stale: u64,
    reject_reasons: BTreeMap<String, u64>,
    accepted_difficulty: f64,
    difficulty: f64,
    pool: Option<(String, Instant)>,
    failures: u64,
    block_candidates: u64,
    blocks: u64,
    backend: String,
}

/// The shared statistics. A `std::sync::Mutex`: every critical section is a few field
/// updates, never held across an `.await`.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Stats {
    /// Fresh statistics starting at `now`.
    pub fn new(now: Instant, backend: &str) -> Stats {
        Stats {
            inner: Mutex::new(Inner {
                started: now,
                samples: VecDeque::new(),
                highest: 0.0,
                accepted: 0,
                rejected: 0,
                stale: 0,
                reject_reasons: BTreeMap::new(),
                accepted_difficulty: 0.0,
                difficulty: 0.0,
                pool: None,
                failures: 0,
                block_candidates: 0,
                blocks: 0,
                backend: backend.to_string(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the per-thread cumulative hash counters at `now` (call about once a second).
    pub fn sample(&self, now: Instant, per_thread: Vec<u64>) {
        let mut s = self.lock();
        s.samples.push_back((now, per_thread));
        let keep = WINDOWS[2] + Duration::from_secs(5);
        while s
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > keep)
        {
            s.samples.pop_front();
        }
        if let Some(rate) = rate_over(&s.samples, WINDOWS[0]).map(|(t, _)| t) {
            s.highest = s.highest.max(rate);
        }
    }

    /// An accepted share.
    pub fn accepted(&self, difficulty: f64) {
        let mut s = self.lock();
        s.accepted += 1;
        s.accepted_difficulty += difficulty;
    }

    /// A rejected share with the pool's reason.
    pub fn rejected(&self, reason: &str, stale: bool) {
        let mut s = self.lock();
        s.rejected += 1;
        if stale {
            s.stale += 1;
        }
        *s.reject_reasons.entry(reason.to_string()).or_default() += 1;
    }

    /// A block candidate submitted (to the node when solo, to the pool otherwise).
    pub fn block_candidate(&self) {
        self.lock().block_candidates += 1;
    }

    /// A block accepted by the node (solo mode).
    pub fn block(&self) {
        self.lock().blocks += 1;
    }

    /// The share difficulty in use.
    pub fn set_difficulty(&self, difficulty: f64) {
        self.lock().difficulty = difficulty;
    }

    /// Connected to `pool` at `now`, or disconnected (`None`).
    pub fn set_pool(&self, pool: Option<String>, now: Instant) {
        self.lock().pool = pool.map(|p| (p, now));
    }

    /// A failed connection attempt.
    pub fn failure(&self) {
        self.lock().failures += 1;
    }

    /// Everything, as of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let s = self.lock();
        let threads_n = s.samples.back().map_or(0, |(_, v)| v.len());
        let mut total = [None; 3];
        let mut threads = vec![[None; 3]; threads_n];
        for (w, window) in WINDOWS.iter().enumerate() {
            if let Some((t, per)) = rate_over(&s.samples, *window) {
                total[w] = Some(t);
                for (i, r) in per.into_iter().enumerate() {
                    if let Some(slot) = threads.get_mut(i) {
                        slot[w] = Some(r);
                    }
                }
            }
        }
        Snapshot {
            uptime: now.duration_since(s.started).as_secs_f64(),
            total,
            threads,
            highest: s.highest,
            hashes: s.samples.back().map_or(0, |(_, v)| v.iter().sum()),
            accepted: s.accepted,
            rejected: s.rejected,
            stale: s.stale,
            reject_reasons: s.reject_reasons.clone(),
            accepted_difficulty: s.accepted_difficulty,
            difficulty: s.difficulty,
            pool: s.pool.as_ref().map(|(p, _)| p.clone()),
            connected_for: s
                .pool
                .as_ref()
                .map_or(0.0, |(_, t)| now.duration_since(*t).as_secs_f64()),
            failures: s.failures,
            block_candidates: s.block_candidates,
            blocks: s.blocks,
            backend: s.backend.clone(),
        }
    }
}

/// Total and per-thread H/s between the newest sample and the oldest one within `window`.
/// `None` until the samples span half the window, but never more than 2 s: every window
/// shows from 2 s of data on, over the data there is.
fn rate_over(samples: &VecDeque<(Instant, Vec<u64>)>, window: Duration) -> Option<(f64, Vec<f64>)> {
    let (newest_t, newest) = samples.back()?;
    let (oldest_t, oldest) = samples
        .iter()
        .find(|(t, _)| newest_t.duration_since(*t) <= window)?;
    let span = newest_t.duration_since(*oldest_t).as_secs_f64();
    if span < (window.as_secs_f64() / 2.0).clamp(0.5, 2.0) {
        return None;
    }
    let per: Vec<f64> = newest
        .iter()
        .zip(oldest.iter().chain(std::iter::repeat(&0)))
        .map(|(n, o)| n.saturating_sub(*o) as f64 / span)
        .collect();
    Some((per.iter().sum(), per))
}

/// Formats H/s with a unit (H/s, kH/s, MH/s, GH/s, TH/s).
pub fn format_rate(hs: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut v = hs;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.2} {}", units[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_samples() {
        let t0 = Instant::now();
        let stats = Stats::new(t0, "scalar");
        // Two threads at 1000 and 3000 H/s for 20 seconds.
        for s in 0..=20u64 {
            stats.sample(t0 + Duration::from_secs(s), vec![1000 * s, 3000 * s]);
        }
        let snap = stats.snapshot(t0 + Duration::from_secs(20));
        assert_eq!(snap.total[0], Some(4000.0));
        assert_eq!(snap.threads[1][0], Some(3000.0));
        // 20 s of data: the 60 s window (needs 2 s) shows, the 15 min one too (needs 2 s of span).
        assert_eq!(snap.total[1], Some(4000.0));
        assert_eq!(snap.hashes, 80_000);
        // The rate then halves: the 10 s window sees it first.
        for s in 21..=30u64 {
            stats.sample(
                t0 + Duration::from_secs(s),
                vec![20_000 + 500 * (s - 20), 60_000 + 1500 * (s - 20)],
            );
        }
        let snap = stats.snapshot(t0 + Duration::from_secs(30));
        assert_eq!(snap.total[0], Some(2000.0));
        assert!(snap.total[1].unwrap() > 2000.0 && snap.total[1].unwrap() < 4000.0);
        assert_eq!(snap.highest, 4000.0);
    }

    #[test]
    fn shares_and_reasons() {
        let stats = Stats::new(Instant::now(), "scalar");
        stats.accepted(2.0);
        stats.rejected("Stale share", true);
        stats.rejected("Duplicate share", false);
        stats.rejected("Duplicate share", false);
        let s = stats.snapshot(Instant::now());
        assert_eq!((s.accepted, s.rejected, s.stale), (1, 3, 1));
        assert_eq!(s.reject_reasons["Duplicate share"], 2);
        assert_eq!(format_rate(32_300_000.0), "32.30 MH/s");
    }
}
