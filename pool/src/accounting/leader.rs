//! One pool process per database runs the bookkeeping: block tracking, payments,
//! statistics samples and retention. The one that holds a PostgreSQL advisory lock does; the
//! lock belongs to a connection of its own, so if that process dies or loses the database,
//! the lock is released and another process takes over within a few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::accounting::payments::Payer;
use crate::accounting::payout_admin;
use crate::accounting::tracker::Tracker;
use crate::config::DatabaseConfig;
use crate::store::Store;
use crate::store::lock::LeaderLock;

/// What the leader runs, and how often.
#[derive(Clone, Debug)]
pub struct Duties {
    /// The database URL (for the lock's own connection).
    pub url: String,
    /// The shared store.
    pub store: Store,
    /// Block tracking.
    pub tracker: Tracker,
    /// Payments (PPLNS mode with `payouts.payments`).
    pub payer: Option<Payer>,
    /// Sampling and retention settings.
    pub database: DatabaseConfig,
    /// Time between payment rounds.
    pub payment_interval: Duration,
}

/// Tries for the lock until `cancel` fires; while it holds the lock, does the duties.
/// `leading` says whether this process holds it right now.
pub async fn run(duties: Duties, leading: Arc<AtomicBool>, cancel: CancellationToken) {
    let retry = Duration::from_secs(duties.tracker.payouts.check_secs.clamp(1, 5));
    while !cancel.is_cancelled() {
        match LeaderLock::try_acquire(&duties.url).await {
            Ok(Some(lock)) => {
                leading.store(true, Ordering::SeqCst);
                info!("this process is the leader: it tracks blocks, pays, samples statistics");
                lead(&duties, lock, &cancel).await;
                leading.store(false, Ordering::SeqCst);
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "cannot reach PostgreSQL for the leader lock"),
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// Runs the duties on their schedules until the lock's connection fails or `cancel`.
async fn lead(duties: &Duties, mut lock: LeaderLock, cancel: &CancellationToken) {
    let check = Duration::from_secs(duties.tracker.payouts.check_secs);
    let sample = Duration::from_secs(duties.database.stats_interval_secs);
    let retention = Duration::from_secs(3600);
    let now = Instant::now();
    let (mut next_check, mut next_pay, mut next_sample, mut next_retention) =
        (now, now + check, now + sample, now);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Still holding the lock? A lost connection means another process may lead now.
        if let Err(e) = lock.alive().await {
            warn!(error = %e, "lost the leader lock's connection; stepping down");
            return;
        }
        let now = Instant::now();
        if now >= next_check {
            next_check = now + check;
            if let Err(e) = duties.tracker.step().await {
                warn!(error = %e, "block tracking round failed; retried next round");
            }
        }
        if now >= next_pay {
            next_pay = now + duties.payment_interval;
            if let Some(payer) = &duties.payer
                && let Err(e) = payer.round().await
            {
                warn!(error = %e, "payment round failed; retried next round");
            }
        }
        // What operators asked through the admin API, within a second of asking.
        if let Err(e) = payout_admin::serve(&duties.store, duties.payer.as_ref()).await {
            warn!(error = %e, "admin requests not read; retried next second");
        }
        if now >= next_sample {
            next_sample = now + sample;
            if let Err(e) = duties.store.sample_stats().await {
                warn!(error = %e, "statistics sample failed");
            }
        }
        if now >= next_retention {
            next_retention = now + retention;
            match duties
                .store
                .apply_retention(
                    duties.database.share_retention_days,
                    duties.database.stats_retention_days,
                )
                .await
            {
                Ok(0) => {}
                Ok(n) => info!(partitions = n, "dropped share partitions past retention"),
                Err(e) => warn!(error = %e, "retention failed"),
            }
        }
    }
    lock.release().await;
}
