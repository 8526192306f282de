//! One view across pool processes: the task that writes this process's live workers to
//! PostgreSQL every `database.live_interval_secs` and reads the other processes' into
//! `PoolStats::peers`, so that the API, the push stream and `/metrics` show every process
//! on the database as one pool (`PoolStats::combined`).
//!
//! A process that stops deletes its row; one that dies, or loses the database, stops
//! counting on the others once its row is `database.live_timeout_secs` old; and if this
//! process loses the database, what it read last stops counting after the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::unix_now;
use crate::observe::stats::PoolStats;
use crate::store::Store;
use crate::store::live_view::LiveRow;

/// How the task runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// This process's name in `live_snapshots` ([`process_name`]).
    pub process: String,
    /// Its `stratum.instance_id`.
    pub instance_id: u8,
    /// How often to write and read.
    pub interval: Duration,
    /// How old another process's row may be and still count.
    pub timeout: Duration,
}

/// A name no other running pool has: host, process id, start time, and a count of the
/// pools this process started (tests run several in one process).
pub fn process_name(started: u64) -> String {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let pid = std::process::id();
    match STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => format!("{host}/{pid}/{started}"),
        n => format!("{host}/{pid}/{started}/{n}"),
    }
}

/// Writes and reads until `cancel`, then takes this process's row out.
pub async fn run(
    store: Store,
    stats: Arc<PoolStats>,
    settings: Settings,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut seen = 0;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = u64::from(unix_now());
        // The snapshot is made and written as JSON, and the peers' are read, on a
        // blocking thread: work that grows with the workers (a few hundred bytes and a
        // few allocations each) stays off the runtime's threads that serve the miners,
        // and its allocations usually come from another allocator arena than the
        // connections' (docs/benchmarks.md).
        let own = stats.clone();
        let mine = tokio::task::spawn_blocking(move || {
            serde_json::to_string(&own.live.snapshot(now).workers)
        })
        .await;
        let mine = match mine {
            Ok(Ok(json)) => json,
            Ok(Err(e)) => {
                warn!(error = %e, "live view: cannot write this process's workers as JSON");
                continue;
            }
            // Only when the runtime is shutting down (or the snapshot panicked).
            Err(e) => {
                warn!(error = %e, "live view: the snapshot did not finish");
                continue;
            }
        };
        let exchanged = async {
            store
                .write_live(
                    &settings.process,
                    settings.instance_id,
                    stats.live.started(),
                    mine,
                )
                .await
                .map_err(|e| e.to_string())?;
            let rows = store
                .read_live(&settings.process, settings.timeout.as_secs())
                .await
                .map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                rows.into_iter()
                    .filter_map(LiveRow::into_peer)
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| format!("reading the others' snapshots did not finish: {e}"))
        };
        let exchanged =
            tokio::time::timeout(settings.interval.max(Duration::from_secs(1)), exchanged).await;
        // What was freed, give back now rather than at the next periodic trim.
        let _ = tokio::task::spawn_blocking(crate::memory::give_back).await;
        match exchanged {
            Ok(Ok(peers)) => {
                if failing {
                    info!("live view: the database answers again");
                    failing = false;
                }
                if peers.len() != seen {
                    info!(
                        others = peers.len(),
                        "live view: pool processes on this database besides this one"
                    );
                    seen = peers.len();
                }
                stats.peers.set(peers, settings.timeout);
            }
            Ok(Err(e)) if !failing => {
                warn!(error = %e, "live view: cannot share the live figures; showing this process's alone once the others' are too old");
                failing = true;
            }
            Err(_) if !failing => {
                warn!("live view: the database did not answer in time");
                failing = true;
            }
            _ => {}
        }
    }
    // Gone from the others' view at once, not after the timeout.
    let removed =
        tokio::time::timeout(Duration::from_secs(2), store.remove_live(&settings.process)).await;
    if !matches!(removed, Ok(Ok(()))) {
        warn!("live view: could not take this process out; the others drop it after the timeout");
    }
}
