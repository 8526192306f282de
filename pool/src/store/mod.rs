//! The PostgreSQL store: the schema (`pool/migrations`), the rows of shares and blocks
//! ([`rows`], built in that one place), their batched writes, and every query: [`writer`]
//! (group commit, spool while the database is away), [`window`] (PPLNS weights from
//! per-minute totals), [`books`] (blocks, credits, balances and payouts for the back
//! office in `accounting`), [`reads`] (the API's reads, from a [`replica`] when there is
//! one) and [`sampler`] (statistics).
//!
//! Times cross the boundary as unix microseconds (`micros_to_ts` in SQL), so that a record
//! replayed from the spool file hits exactly the key it had.

pub mod bests;
pub mod books;
pub mod earnings;
pub mod live_view;
pub mod lock;
pub mod payout_admin;
pub mod reads;
pub mod replica;
pub mod rows;
pub mod sampler;
pub mod settings;
pub mod shared_bans;
pub mod spool;
pub mod window;
pub mod writer;

pub use rows::{BlockRow, Record, ShareRow};

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

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
    /// What this process knows the database's bests to be (see [`bests`]).
    bests: std::sync::Arc<Mutex<bests::Known>>,
    /// The read replica for the API's history (`database.read_url`), if any.
    replica: Option<std::sync::Arc<replica::Replica>>,
    /// The pool-wide totals, read at most once per [`reads::TOTALS_FOR`].
    totals: std::sync::Arc<Mutex<Option<(std::time::Instant, reads::Totals)>>>,
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
            bests: Default::default(),
            replica: None,
            totals: Default::default(),
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
                if let Some(payout) = &b.payout {
                    write_payout(&mut tx, &b.hash, payout).await?;
                }
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
        }
        let raised = self.raise_bests(&mut tx, &shares).await?;
        tx.commit().await?;
        // Only what is committed is known to be there.
        self.known_bests(raised);
        Ok(())
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

/// A coinbase-payout block's rows (a replay writes nothing twice).
async fn write_payout(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    hash: &str,
    payout: &crate::chain::jobs::Payout,
) -> Result<(), StoreError> {
    let sat = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    sqlx::query("UPDATE blocks SET coinbase_pool = $2 WHERE hash = $1")
        .bind(hash)
        .bind(sat(payout.pool))
        .execute(&mut **tx)
        .await?;
    let rows = &payout.rows;
    sqlx::query(
        "INSERT INTO coinbase_payouts (block_hash, address, difficulty, credit, paid, output_index)
         SELECT $1, a, d, c, p, o
         FROM unnest($2::text[], $3::float8[], $4::bigint[], $5::bigint[], $6::int[])
              AS x(a, d, c, p, o)
         ON CONFLICT (block_hash, address) DO NOTHING",
    )
    .bind(hash)
    .bind(rows.iter().map(|r| r.address.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.difficulty).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| sat(r.credit)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| sat(r.paid)).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.output.and_then(|o| i32::try_from(o).ok()))
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
