//! Group commit: everything that arrived while the last commit was in flight goes into the
//! next one, so one fsync serves many shares. Each share carries a one-shot channel that is
//! answered once the share is durable, in PostgreSQL or in the [`Spool`]; only then does
//! its connection tell the miner "accepted". If neither can take it, the channel is
//! dropped and the miner is told the share was not recorded.
//!
//! A fresh batch goes in through [`Store::write_new`], on a connection the writer keeps
//! for itself; one that fails, and everything
//! replayed from the spool, goes through the idempotent [`Store::write`], so a batch that
//! did reach the database before its commit was reported lost is not counted twice.
//!
//! While the spool holds anything, new batches go to the spool too (so the database
//! receives records in the order they were accepted), and every `retry` the writer tries to
//! replay the spool into the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgConnection;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::observe::latency::Latency;
use crate::shares::record::ShareEvent;
use crate::store::spool::Spool;
use crate::store::{Record, ShareRow, Store, StoreError};

/// A record and, for a share, whom to tell once it is durable.
#[derive(Debug)]
pub struct Submission {
    /// What to store.
    pub record: Record,
    /// Answered when durable; dropped when it could not be stored.
    pub durable: Option<oneshot::Sender<()>>,
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Most records per commit.
    pub batch_max: usize,
    /// A commit slower than this counts as failed.
    pub write_timeout: Duration,
    /// Time between attempts to replay the spool.
    pub retry: Duration,
}

/// Counters the writer keeps (read by the statistics and the tests).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records committed straight to PostgreSQL.
    pub stored: AtomicU64,
    /// Records written to the spool.
    pub spooled: AtomicU64,
    /// Records replayed from the spool into PostgreSQL.
    pub replayed: AtomicU64,
    /// Records neither could take (their shares were answered with an error).
    pub lost: AtomicU64,
    /// How long each commit of new records to PostgreSQL took, failed ones included
    /// (`pool_store_commit_seconds`; with `stored`, the shares per commit).
    pub commit: Latency,
}

/// Runs until every sender is gone, then returns (what is spooled stays spooled).
pub async fn run(
    store: Store,
    mut spool: Spool,
    mut incoming: mpsc::Receiver<Submission>,
    options: WriterOptions,
    stats: Arc<WriterStats>,
) {
    if !spool.is_empty() {
        info!(records = spool.len(), file = %spool.path().display(), "replaying the spool left by an earlier run");
    }
    let mut next_replay = Instant::now();
    // The connection fresh batches are committed on; dropped after any failure (it may be
    // mid-transaction or dead) and made again for the next batch.
    let mut conn: Option<PgConnection> = None;
    loop {
        let first = if spool.is_empty() {
            incoming.recv().await
        } else {
            tokio::select! {
                s = incoming.recv() => s,
                _ = tokio::time::sleep_until(next_replay) => {
                    replay(&store, &mut spool, &options, &stats).await;
                    next_replay = Instant::now() + options.retry;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < options.batch_max {
            match incoming.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        if !spool.is_empty() && Instant::now() >= next_replay {
            replay(&store, &mut spool, &options, &stats).await;
            next_replay = Instant::now() + options.retry;
        }
        let (records, acks): (Vec<Record>, Vec<_>) =
            batch.into_iter().map(|s| (s.record, s.durable)).unzip();
        let stored = if spool.is_empty() {
            let started = std::time::Instant::now();
            let written = write_new(&store, &mut conn, &records, options.write_timeout).await;
            stats.commit.record(started.elapsed());
            match written {
                Ok(()) => {
                    stats
                        .stored
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    warn!(error = %e, records = records.len(), "cannot write to PostgreSQL; spooling to disk until it is back");
                    next_replay = Instant::now() + options.retry;
                    false
                }
            }
        } else {
            false
        };
        let durable = stored
            || match spool.append(&records) {
                Ok(()) => {
                    stats
                        .spooled
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    error!(error = %e, file = %spool.path().display(), records = records.len(), "cannot write the spool either: these shares are answered as not recorded");
                    stats
                        .lost
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                    false
                }
            };
        if durable {
            for tx in acks.into_iter().flatten() {
                let _ = tx.send(());
            }
        }
    }
    if !spool.is_empty() {
        replay(&store, &mut spool, &options, &stats).await;
    }
}

/// Fresh records, on the writer's own connection (made when there is none).
async fn write_new(
    store: &Store,
    conn: &mut Option<PgConnection>,
    records: &[Record],
    timeout: Duration,
) -> Result<(), StoreError> {
    let written = tokio::time::timeout(timeout, async {
        let c = match conn.take() {
            Some(c) => c,
            None => store.writer_connection().await?,
        };
        store.write_new(conn.insert(c), records).await
    })
    .await
    .map_err(|_| StoreError::Timeout(timeout))
    .and_then(|r| r);
    if written.is_err() {
        *conn = None;
    }
    written
}

/// Records from the spool, some perhaps written already ([`Store::write`]).
async fn replay_write(
    store: &Store,
    records: &[Record],
    timeout: Duration,
) -> Result<(), StoreError> {
    tokio::time::timeout(timeout, store.write(records))
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
}

/// Moves the spool into the database, in batches; on success the file is emptied.
async fn replay(store: &Store, spool: &mut Spool, options: &WriterOptions, stats: &WriterStats) {
    // A cheap, short question first: a long outage then neither re-reads the file every
    // retry nor holds up the shares waiting behind this call for a whole write timeout.
    let ping_timeout = options.write_timeout.min(Duration::from_millis(500));
    if tokio::time::timeout(ping_timeout, store.ping())
        .await
        .map_or(true, |r| r.is_err())
    {
        return;
    }
    let records = match spool.read() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, file = %spool.path().display(), "cannot read the spool");
            return;
        }
    };
    for chunk in records.chunks(options.batch_max.max(1)) {
        if let Err(e) = replay_write(store, chunk, options.write_timeout).await {
            warn!(error = %e, waiting = records.len(), "PostgreSQL still unavailable; shares stay in the spool");
            return;
        }
    }
    match spool.clear() {
        Ok(()) => {
            stats
                .replayed
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            info!(records = records.len(), "spooled records are in PostgreSQL");
        }
        Err(e) => {
            error!(error = %e, file = %spool.path().display(), "cannot empty the spool (it will be replayed again, harmlessly)")
        }
    }
}

/// The store's writer, as the connections see it.
#[derive(Debug)]
pub struct ShareSink {
    /// The writer's queue.
    pub writer: mpsc::Sender<Submission>,
    /// This process (`stratum.instance_id`), written with every share.
    pub instance: i16,
    /// The next share's uid: a random high part per process run, a counter below.
    next_uid: AtomicI64,
}

impl ShareSink {
    /// A sink with a fresh uid space.
    pub fn new(writer: mpsc::Sender<Submission>, instance: u8) -> ShareSink {
        ShareSink {
            writer,
            instance: i16::from(instance),
            next_uid: AtomicI64::new(uid_base()),
        }
    }

    /// The row for an accepted share, with the next uid.
    pub fn row(&self, share: &ShareEvent) -> ShareRow {
        let uid = self.next_uid.fetch_add(1, Ordering::Relaxed);
        ShareRow::of(share, uid, self.instance)
    }
}

/// 23 random bits (positive i64) above a 40-bit counter: uids of different runs differ,
/// and the shares table keys on (time, uid), so even a collision would need the same
/// microsecond.
fn uid_base() -> i64 {
    let random = crate::clock::random_u64();
    ((random & 0x7f_ffff) << 40) as i64
}
