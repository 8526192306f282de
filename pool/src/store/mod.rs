//! The PostgreSQL store: the schema (`pool/migrations`), the rows of shares and blocks
//! ([`rows`], built in that one place), their batched writes, and every query: [`writer`]
//! (group commit, spool while the database is away), [`window`] (PPLNS weights from
//! per-minute totals), [`books`] (blocks, credits, balances and payouts for the back
//! office in `accounting`), [`reads`] (the API's reads) and [`sampler`] (statistics).
//!
//! Times cross the boundary as unix microseconds (`micros_to_ts` in SQL), so that a record
//! replayed from the spool file hits exactly the key it had.

pub mod books;
pub mod lock;
pub mod reads;
pub mod rows;
pub mod sampler;
pub mod spool;
pub mod window;
pub mod writer;

pub use rows::{BlockRow, Record, ShareRow};

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::observe::best::{Best, Scope};

/// Microseconds in a day, the span of one shares partition.
const DAY_US: i64 = 86_400_000_000;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no, or could not be reached.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The operation did not finish in time.
    #[error("database: no answer within {0:?}")]
    Timeout(Duration),
}

/// A handle on the database (cheap to clone).
#[derive(Clone, Debug)]
pub struct Store {
    db: PgPool,
    days: std::sync::Arc<Mutex<HashSet<i64>>>,
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn open(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Store, StoreError> {
        let db = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&db).await?;
        Ok(Store {
            db,
            days: Default::default(),
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }

    /// The connection pool, for queries that live elsewhere (tests, the API).
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Makes sure the daily partitions of these times exist. Cached, so the common case
    /// costs nothing; creation takes a lock shared by every pool process.
    async fn ensure_partitions(&self, times: impl Iterator<Item = i64>) -> Result<(), StoreError> {
        let wanted: HashSet<i64> = times.map(|t| t.div_euclid(DAY_US)).collect();
        let missing: Vec<i64> = {
            let known = self.days.lock().unwrap_or_else(|p| p.into_inner());
            wanted.into_iter().filter(|d| !known.contains(d)).collect()
        };
        for day in missing {
            sqlx::query(
                "SELECT ensure_share_partition((micros_to_ts($1) AT TIME ZONE 'UTC')::date)",
            )
            .bind(day * DAY_US)
            .execute(&self.db)
            .await?;
            self.days
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(day);
        }
        Ok(())
    }

    /// Writes a batch in one transaction: shares (and their per-minute totals) and blocks.
    /// Records already present (a replay) are skipped, totals included, so writing a batch
    /// twice is the same as writing it once.
    pub async fn write(&self, records: &[Record]) -> Result<(), StoreError> {
        let shares: Vec<&ShareRow> = records
            .iter()
            .filter_map(|r| match r {
                Record::Share(s) => Some(s),
                Record::Block(_) => None,
            })
            .collect();
        self.ensure_partitions(shares.iter().map(|s| s.time_us))
            .await?;
        let mut tx = self.db.begin().await?;
        // Blocks first: a share's round is decided by the newest block before it.
        for record in records {
            if let Record::Block(b) = record {
                sqlx::query(
                    "INSERT INTO blocks (hash, height, found_at, finder, reward, network_difficulty)
                     VALUES ($1, $2, micros_to_ts($3), $4, $5, $6)
                     ON CONFLICT (hash) DO NOTHING",
                )
                .bind(&b.hash)
                .bind(b.height)
                .bind(b.found_us)
                .bind(&b.finder)
                .bind(b.reward)
                .bind(b.network_difficulty)
                .execute(&mut *tx)
                .await?;
            }
        }
        if !shares.is_empty() {
            sqlx::query(
                "WITH new AS (
                    INSERT INTO shares (time, uid, address, worker, difficulty, share_difficulty,
                                        network_difficulty, height, instance)
                    SELECT micros_to_ts(t), u, a, w, d, sd, nd, h, i
                    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                $5::float8[], $6::float8[], $7::float8[], $8::bigint[],
                                $9::smallint[]) AS x(t, u, a, w, d, sd, nd, h, i)
                    ON CONFLICT DO NOTHING
                    RETURNING time, address, worker, difficulty)
                 INSERT INTO share_minutes (minute, address, worker, difficulty, shares)
                 SELECT date_trunc('minute', time), address, worker, sum(difficulty), count(*)
                 FROM new GROUP BY 1, 2, 3
                 ON CONFLICT (minute, address, worker) DO UPDATE
                 SET difficulty = share_minutes.difficulty + EXCLUDED.difficulty,
                     shares = share_minutes.shares + EXCLUDED.shares",
            )
            .bind(shares.iter().map(|s| s.time_us).collect::<Vec<_>>())
            .bind(shares.iter().map(|s| s.uid).collect::<Vec<_>>())
            .bind(
                shares
                    .iter()
                    .map(|s| s.address.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(shares.iter().map(|s| s.worker.as_str()).collect::<Vec<_>>())
            .bind(shares.iter().map(|s| s.difficulty).collect::<Vec<_>>())
            .bind(
                shares
                    .iter()
                    .map(|s| s.share_difficulty)
                    .collect::<Vec<_>>(),
            )
            .bind(
                shares
                    .iter()
                    .map(|s| s.network_difficulty)
                    .collect::<Vec<_>>(),
            )
            .bind(shares.iter().map(|s| s.height).collect::<Vec<_>>())
            .bind(shares.iter().map(|s| s.instance).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
            raise_bests(&mut tx, &shares).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored best (round bests of an earlier round read as zero), for seeding the
    /// in-memory tracker at start.
    pub async fn all_bests(&self) -> Result<Vec<(Scope, Best)>, StoreError> {
        self.bests_where("$1::text = ''", "").await
    }

    /// The pool's bests, an address's and its workers' (zeros where there are none).
    pub async fn bests_of(&self, address: &str) -> Result<Vec<(Scope, Best)>, StoreError> {
        self.bests_where("scope = 'pool' OR address = $1::text", address)
            .await
    }

    async fn bests_where(
        &self,
        filter: &str,
        address: &str,
    ) -> Result<Vec<(Scope, Best)>, StoreError> {
        let rows: Vec<(String, String, String, f64, i64, f64, i64)> = sqlx::query_as(&format!(
            "WITH last AS (SELECT coalesce(max(found_at), '-infinity') AS at FROM blocks)
             SELECT scope, address, worker, all_time, ts_to_micros(all_time_at),
                    CASE WHEN round_at > last.at THEN round ELSE 0 END,
                    CASE WHEN round_at > last.at THEN ts_to_micros(round_at) ELSE 0 END
             FROM best_difficulty, last WHERE {filter}"
        ))
        .bind(address)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(scope, a, w, all_time, all_time_us, round, round_us)| {
                Some((
                    Scope::from_columns(&scope, &a, &w)?,
                    Best {
                        round,
                        round_us,
                        all_time,
                        all_time_us,
                    },
                ))
            })
            .collect())
    }

    /// Drops share partitions (and per-minute totals) older than `keep_days` and sampled
    /// statistics older than `stats_days`; returns the partitions dropped.
    pub async fn apply_retention(
        &self,
        keep_days: u32,
        stats_days: u32,
    ) -> Result<i32, StoreError> {
        let dropped: i32 = sqlx::query_scalar("SELECT drop_old_share_partitions($1)")
            .bind(i32::try_from(keep_days).unwrap_or(i32::MAX))
            .fetch_one(&self.db)
            .await?;
        for (table, days) in [
            ("share_minutes WHERE minute", keep_days),
            ("pool_stats WHERE time", stats_days),
            ("miner_stats WHERE time", stats_days),
        ] {
            sqlx::query(&format!("DELETE FROM {table} < now() - $1::interval"))
                .bind(format!("{days} days"))
                .execute(&self.db)
                .await?;
        }
        if dropped > 0 {
            // Forget the cached days, so a partition dropped here is made again if needed.
            self.days.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        Ok(dropped)
    }
}

/// Raises the bests of the shares' workers, addresses and the pool: all time, and this
/// round from the shares after the newest block (written first in the same transaction).
/// Taking the highest makes a replayed batch a no-op.
async fn raise_bests(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    shares: &[&ShareRow],
) -> Result<(), StoreError> {
    sqlx::query(
        "WITH x AS (
             SELECT micros_to_ts(t) AS time, a AS address, w AS worker, sd
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[]) AS x(t, a, w, sd)),
         last AS (SELECT coalesce(max(found_at), '-infinity') AS at FROM blocks),
         scoped AS (
             SELECT 'worker' AS scope, address, worker, time, sd FROM x
             UNION ALL SELECT 'address', address, '', time, sd FROM x
             UNION ALL SELECT 'pool', '', '', time, sd FROM x),
         ever AS (
             SELECT DISTINCT ON (scope, address, worker) scope, address, worker, sd, time
             FROM scoped ORDER BY scope, address, worker, sd DESC, time),
         now AS (
             SELECT DISTINCT ON (scope, address, worker) scope, address, worker, sd, time
             FROM scoped, last WHERE time > last.at
             ORDER BY scope, address, worker, sd DESC, time)
         INSERT INTO best_difficulty AS b
             (scope, address, worker, all_time, all_time_at, round, round_at)
         SELECT ever.scope, ever.address, ever.worker, ever.sd, ever.time,
                coalesce(now.sd, 0), coalesce(now.time, '-infinity')
         FROM ever LEFT JOIN now USING (scope, address, worker)
         ON CONFLICT (scope, address, worker) DO UPDATE SET
             all_time = greatest(b.all_time, EXCLUDED.all_time),
             all_time_at = CASE WHEN EXCLUDED.all_time > b.all_time
                                THEN EXCLUDED.all_time_at ELSE b.all_time_at END,
             round = CASE WHEN EXCLUDED.round_at > (SELECT at FROM last)
                               AND (b.round_at <= (SELECT at FROM last) OR EXCLUDED.round > b.round)
                          THEN EXCLUDED.round ELSE b.round END,
             round_at = CASE WHEN EXCLUDED.round_at > (SELECT at FROM last)
                               AND (b.round_at <= (SELECT at FROM last) OR EXCLUDED.round > b.round)
                          THEN EXCLUDED.round_at ELSE b.round_at END",
    )
    .bind(shares.iter().map(|s| s.time_us).collect::<Vec<_>>())
    .bind(
        shares
            .iter()
            .map(|s| s.address.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(shares.iter().map(|s| s.worker.as_str()).collect::<Vec<_>>())
    .bind(
        shares
            .iter()
            .map(|s| s.share_difficulty)
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
