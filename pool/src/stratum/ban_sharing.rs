//! Bans shared between the pool processes on one database (`limits.share_bans`): a flood
//! banned on one process is refused on all. Every `database.live_interval_secs` this
//! task writes the bans this process made since it last looked (`store::shared_bans`),
//! and applies the rows the other processes changed: their bans, and bans lifted through
//! any process's admin API (which sets the row to end now).
//!
//! Connections already open from a newly banned address on another process stay until
//! they trip that process's own limits; the ban refuses new ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::Store;
use crate::stratum::shared::Shared;

/// Writes and applies bans every `interval` until `cancel`; `process` is this pool's name
/// among the processes (`observe::processes::process_name`).
pub async fn run(
    store: Store,
    shared: Arc<Shared>,
    process: String,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Bans written, with when they end: a ban is written again only if it was extended.
    let mut written: HashMap<IpAddr, Instant> = HashMap::new();
    // The version (updated_at) of each row applied: rows are read again for a while
    // (writes that commit late), and one must not undo a newer ban made meanwhile.
    let mut applied: HashMap<IpAddr, f64> = HashMap::new();
    let mut since: Option<f64> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        written.retain(|_, until| *until > now);
        let fresh: Vec<(IpAddr, Duration)> = shared
            .admission
            .own_bans(now)
            .into_iter()
            .filter(|(ip, left)| {
                written
                    .get(ip)
                    .is_none_or(|until| now + *left > *until + Duration::from_secs(1))
            })
            .collect();
        let exchanged = async {
            if !fresh.is_empty() {
                store.publish_bans(&process, &fresh).await?;
            }
            store.shared_bans_since(since, interval * 3).await
        };
        let rows = match tokio::time::timeout(interval.max(Duration::from_secs(1)), exchanged).await
        {
            Ok(Ok(rows)) => {
                if failing {
                    info!("shared bans: the database answers again");
                    failing = false;
                }
                rows
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(error = %e, "shared bans: cannot exchange bans; this process bans on its own meanwhile");
                    failing = true;
                }
                continue;
            }
            Err(_) => {
                if !failing {
                    warn!("shared bans: the database did not answer in time");
                    failing = true;
                }
                continue;
            }
        };
        for (ip, left) in fresh {
            written.insert(ip, now + left);
        }
        for row in rows {
            since = Some(since.map_or(row.updated_at, |s| s.max(row.updated_at)));
            if applied
                .get(&row.ip)
                .is_some_and(|version| *version >= row.updated_at)
            {
                continue;
            }
            applied.insert(row.ip, row.updated_at);
            if row.updated_by == process {
                continue;
            }
            if row.left.is_some() {
                info!(address = %row.ip, by = %row.updated_by, "banned by another pool process");
            } else {
                written.remove(&row.ip);
            }
            shared.admission.apply_shared(row.ip, row.left, now);
        }
        // Versions older than the re-read window are not read again.
        if let Some(since) = since {
            let horizon = since - (interval * 3).as_secs_f64() - 1.0;
            applied.retain(|_, version| *version >= horizon);
        }
    }
}
