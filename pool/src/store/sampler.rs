//! Statistics samples for the dashboard (the leader takes them): every interval, the
//! hashrate and share rate of the pool and of each miner's worker over the last ten
//! minutes, from the per-minute share totals, so shares from every pool process count.
//!
//! Hashrate = accepted share difficulty x 2^32 / seconds (`protocol::target::hashrate`,
//! written out in SQL with its constant).

use protocol::target::HASHES_PER_DIFFICULTY;

use crate::store::{Store, StoreError};

/// The span a sample averages over (seconds).
pub const SAMPLE_SPAN_SECS: i64 = 600;

impl Store {
    /// Writes one sample of `pool_stats` and `miner_stats` at the current time; returns the
    /// pool's hashrate.
    pub async fn sample_stats(&self) -> Result<f64, StoreError> {
        let mut tx = self.db().begin().await?;
        // Whole minutes back to ten minutes ago, plus the current one so far.
        let span = "date_trunc('minute', now()) - make_interval(secs => $1)";
        // Rates are per second of the span, or of the time since the first share if the
        // pool is younger than the span (a fresh pool is not a tenth as fast); at least ten
        // seconds, as for the live figures.
        let secs = format!(
            "greatest(10.0, extract(epoch FROM now() - greatest({span}, \
             (SELECT min(time) FROM shares))))"
        );
        sqlx::query(&format!(
            "INSERT INTO miner_stats (time, address, worker, hashrate, shares_per_sec)
             SELECT now(), address, worker,
                    sum(difficulty) * {HASHES_PER_DIFFICULTY:?} / {secs},
                    sum(shares) / {secs}
             FROM share_minutes WHERE minute >= {span}
             GROUP BY address, worker"
        ))
        .bind(SAMPLE_SPAN_SECS as f64)
        .execute(&mut *tx)
        .await?;
        let hashrate: f64 = sqlx::query_scalar(&format!(
            "INSERT INTO pool_stats (time, hashrate, shares_per_sec, miners, workers)
             SELECT now(),
                    coalesce(sum(difficulty), 0) * {HASHES_PER_DIFFICULTY:?} / {secs},
                    coalesce(sum(shares), 0) / {secs},
                    count(DISTINCT address), count(DISTINCT (address, worker))
             FROM share_minutes WHERE minute >= {span}
             RETURNING hashrate"
        ))
        .bind(SAMPLE_SPAN_SECS as f64)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(hashrate)
    }
}
