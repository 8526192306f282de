//! Live counters of the whole pool: connections, shares by result and reject reason,
//! blocks; with them the per-worker live figures ([`Live`]) and the latencies of template
//! fetches, block submissions and share acknowledgements. Atomics for what every share
//! touches; a mutex only for the reject map, which is touched on rejects alone. The HTTP
//! API and `/metrics` read snapshots.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use protocol::Difficulty;

use crate::observe::best::Bests;
use crate::observe::latency::Latency;
use crate::observe::live::{Live, LiveSnapshot, Peers, combine_with};
use crate::observe::notify::Notifier;

/// The Stratum protocol a connection speaks: counters are also kept per protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Stratum v1 (plain or TLS).
    V1,
    /// Stratum V2.
    V2,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 2] = [Protocol::V1, Protocol::V2];

    /// The `protocol` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2 => "v2",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters of one protocol.
#[derive(Debug, Default)]
struct PerProtocol {
    connections: AtomicU64,
    connections_total: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// A copy of one protocol's counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtocolSnapshot {
    /// Open connections.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares.
    pub rejected: u64,
}

/// The counters.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Connections and shares, per protocol; the pool's totals are their sums.
    per_protocol: [PerProtocol; 2],
    refused: AtomicU64,
    bans: AtomicU64,
    /// Sum of accepted difficulty, as f64 bits (added with compare-and-swap).
    accepted_difficulty_bits: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    blocks_found: AtomicU64,
    blocks_accepted: AtomicU64,
    best_share_bits: AtomicU64,
    job_unix: AtomicU64,
    height: AtomicU64,
    network_difficulty_bits: AtomicU64,
    longpolls: AtomicU64,
    longpolls_abandoned: AtomicU64,
    longpolls_in_flight: AtomicU64,
    /// Connected workers and their hashrates (this process's).
    pub live: Live,
    /// The other pool processes on the same database, as they last wrote.
    pub peers: Peers,
    /// Best share difficulties of workers, addresses and the pool.
    pub best: Bests,
    /// `getblocktemplate` round trips (long polls excluded: they wait on purpose).
    pub template_fetch: Latency,
    /// `submitblock` round trips (to every node at once).
    pub submitblock: Latency,
    /// From an accepted share to its durable acknowledgement (PostgreSQL or spool).
    pub share_ack: Latency,
    /// Where events are told (`[[notify]]`); does nothing without sinks.
    pub notify: Notifier,
    /// The last block-withholding report's summary, once there is one.
    withholding: Mutex<Option<WithholdingSummary>>,
}

/// What `/metrics` shows of the last block-withholding report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WithholdingSummary {
    /// Addresses below the threshold.
    pub flagged: usize,
    /// The lowest probability of any address (1 with none).
    pub lowest: f64,
    /// Addresses in the report.
    pub addresses: usize,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Open connections.
    pub connections: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections refused by a limit or a ban.
    pub refused: u64,
    /// Bans imposed.
    pub bans: u64,
    /// Accepted shares.
    pub accepted: u64,
    /// Their summed difficulty.
    pub accepted_difficulty: f64,
    /// Rejected shares by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Block candidates found.
    pub blocks_found: u64,
    /// Blocks a node accepted.
    pub blocks_accepted: u64,
    /// Highest share difficulty seen.
    pub best_share: f64,
    /// When the current job was made (unix seconds; 0: no job yet).
    pub job_unix: u64,
    /// Height of the block being mined (0: no job yet).
    pub height: u64,
    /// Its network difficulty.
    pub network_difficulty: f64,
    /// `getblocktemplate` long polls sent.
    pub longpolls: u64,
    /// Of those, given up on before the node answered (each may hold a node RPC thread
    /// until the next block).
    pub longpolls_abandoned: u64,
    /// Long polls of this process waiting on a node now (one per node at most).
    pub longpolls_in_flight: u64,
    /// Per protocol, in [`Protocol::ALL`] order.
    pub protocols: [ProtocolSnapshot; 2],
}

impl Snapshot {
    /// The counters of `protocol`.
    pub fn protocol(&self, protocol: Protocol) -> &ProtocolSnapshot {
        &self.protocols[protocol.index()]
    }
}

impl PoolStats {
    /// Keeps the last block-withholding report's summary.
    pub fn set_withholding(&self, summary: WithholdingSummary) {
        *self
            .withholding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(summary);
    }

    /// The last block-withholding report's summary, if one was made.
    pub fn withholding(&self) -> Option<WithholdingSummary> {
        *self
            .withholding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection opened.
    pub fn connected(&self, protocol: Protocol) {
        let p = &self.per_protocol[protocol.index()];
        p.connections.fetch_add(1, Relaxed);
        p.connections_total.fetch_add(1, Relaxed);
    }

    /// A connection closed.
    pub fn disconnected(&self, protocol: Protocol) {
        self.per_protocol[protocol.index()]
            .connections
            .fetch_sub(1, Relaxed);
    }

    /// A connection was refused.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// An address was banned.
    pub fn banned(&self) {
        self.bans.fetch_add(1, Relaxed);
    }

    /// A share was accepted.
    pub fn accepted(
        &self,
        protocol: Protocol,
        difficulty: Difficulty,
        share_difficulty: Difficulty,
    ) {
        let (difficulty, share_difficulty) = (difficulty.get(), share_difficulty.get());
        self.per_protocol[protocol.index()]
            .accepted
            .fetch_add(1, Relaxed);
        let _ = self
            .accepted_difficulty_bits
            .fetch_update(Relaxed, Relaxed, |bits| {
                Some((f64::from_bits(bits) + difficulty).to_bits())
            });
        // Non-negative f64s order like their bit patterns.
        self.best_share_bits
            .fetch_max(share_difficulty.max(0.0).to_bits(), Relaxed);
    }

    /// A share was rejected.
    pub fn rejected(&self, protocol: Protocol, reason: &'static str) {
        self.per_protocol[protocol.index()]
            .rejected
            .fetch_add(1, Relaxed);
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    /// A block candidate was found.
    pub fn block_found(&self) {
        self.blocks_found.fetch_add(1, Relaxed);
    }

    /// A node accepted a block.
    pub fn block_accepted(&self) {
        self.blocks_accepted.fetch_add(1, Relaxed);
        self.best.new_round();
    }

    /// A new job went out at unix second `now`.
    pub fn job_made(&self, height: u64, network_difficulty: Difficulty, now: u64) {
        self.height.store(height, Relaxed);
        self.network_difficulty_bits
            .store(network_difficulty.get().to_bits(), Relaxed);
        self.job_unix.store(now, Relaxed);
    }

    /// A long poll was sent to a node.
    pub fn longpoll_sent(&self) {
        self.longpolls.fetch_add(1, Relaxed);
        self.longpolls_in_flight.fetch_add(1, Relaxed);
    }

    /// A long poll ended: answered by the node, or given up on.
    pub fn longpoll_ended(&self, answered: bool) {
        if !answered {
            self.longpolls_abandoned.fetch_add(1, Relaxed);
        }
        let _ = self
            .longpolls_in_flight
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// The live figures of every pool process on the database at unix second `now`: this
    /// one's as they are, the others' as they last wrote them.
    pub fn combined(&self, now: u64) -> LiveSnapshot {
        combine_with(self.live.snapshot(now), &self.peers.current())
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let protocols = Protocol::ALL.map(|p| {
            let c = &self.per_protocol[p.index()];
            ProtocolSnapshot {
                connections: c.connections.load(Relaxed),
                connections_total: c.connections_total.load(Relaxed),
                accepted: c.accepted.load(Relaxed),
                rejected: c.rejected.load(Relaxed),
            }
        });
        let sum = |f: fn(&ProtocolSnapshot) -> u64| protocols.iter().map(f).sum();
        Snapshot {
            connections: sum(|p| p.connections),
            connections_total: sum(|p| p.connections_total),
            refused: self.refused.load(Relaxed),
            bans: self.bans.load(Relaxed),
            accepted: sum(|p| p.accepted),
            accepted_difficulty: f64::from_bits(self.accepted_difficulty_bits.load(Relaxed)),
            rejected: self
                .rejected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            blocks_found: self.blocks_found.load(Relaxed),
            blocks_accepted: self.blocks_accepted.load(Relaxed),
            best_share: f64::from_bits(self.best_share_bits.load(Relaxed)),
            job_unix: self.job_unix.load(Relaxed),
            height: self.height.load(Relaxed),
            network_difficulty: f64::from_bits(self.network_difficulty_bits.load(Relaxed)),
            longpolls: self.longpolls.load(Relaxed),
            longpolls_abandoned: self.longpolls_abandoned.load(Relaxed),
            longpolls_in_flight: self.longpolls_in_flight.load(Relaxed),
            protocols,
        }
    }
}
