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
pub mod copy;
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

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

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

    /// A connection of its own for the share writer ([`Store::write_new`]). A commit on a
    /// connection borrowed from the pool cost two more round trips: sqlx pings a
    /// connection when it is taken from the pool and again when it is given back, and
    /// below capacity a commit is one statement.
    pub async fn writer_connection(&self) -> Result<PgConnection, StoreError> {
        Ok(PgConnection::connect_with(&self.db.connect_options()).await?)
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
        let shares = share_rows(records);
        self.ensure_partitions(shares.iter().map(|s| s.time_us))
            .await?;
        let mut tx = self.db.begin().await?;
        write_blocks(&mut tx, records).await?;
        if !shares.is_empty() {
            insert_shares(&mut tx, &shares).await?;
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT ts_to_micros(max(found_at)) FROM blocks")
                .fetch_one(&mut *tx)
                .await?;
        let todo = self.best_candidates(&shares, last);
        let raised = self.raise_bests(&mut tx, todo).await?;
        tx.commit().await?;
        // Only what is committed is known to be there.
        self.known_bests(raised);
        Ok(())
    }

    /// Writes a batch of records that were never written before (the writer's common
    /// path: shares just accepted, with fresh uids), with as few round trips to the
    /// database as the batch allows. A share already present makes the whole batch fail
    /// rather than count twice; the writer then spools it and replays it through
    /// [`Store::write`].
    ///
    /// Why: below capacity a commit carries a few dozen shares, and its round trips cost
    /// the pool and the database more CPU than the rows (docs/benchmarks.md). So a batch
    /// without blocks whose shares raise no best this process knows of is one statement
    /// in autocommit (shares, per-minute totals summed here, and the newest block's time
    /// read back); a large batch copies its shares ([`copy`], cheaper per row than an
    /// insert); blocks and bests go in one transaction with the shares.
    pub async fn write_new(
        &self,
        conn: &mut PgConnection,
        records: &[Record],
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let shares = share_rows(records);
        self.ensure_partitions(shares.iter().map(|s| s.time_us))
            .await?;
        let has_blocks = shares.len() < records.len();
        let totals = copy::minute_totals(&shares);
        let known_last = self.known_last_block();
        let todo = self.best_candidates(&shares, known_last);
        if !has_blocks && todo.is_empty() && shares.len() < COPY_FROM {
            let last = new_shares(&shares, &totals).fetch_one(&mut *conn).await?;
            if last != known_last {
                // A block since the batch before (or this process's first batch): the
                // round started over, so the shares may hold round bests after all. They
                // are raised in a second, short transaction; a crash between the two
                // statements would lose only those bests, never a share or a total.
                let todo = self.best_candidates(&shares, last);
                let mut tx = conn.begin().await?;
                let raised = self.raise_bests(&mut tx, todo).await?;
                tx.commit().await?;
                self.known_bests(raised);
            }
            return Ok(());
        }
        let mut tx = conn.begin().await?;
        write_blocks(&mut tx, records).await?;
        let last: Option<i64> = if shares.len() >= COPY_FROM {
            copy_shares(&mut tx, &shares).await?;
            bind_minutes(sqlx::query_scalar(MINUTES), &totals)
                .fetch_one(&mut *tx)
                .await?
        } else {
            new_shares(&shares, &totals).fetch_one(&mut *tx).await?
        };
        let todo = if last == todo.last_block_us() {
            todo
        } else {
            self.best_candidates(&shares, last)
        };
        let raised = self.raise_bests(&mut tx, todo).await?;
        tx.commit().await?;
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

/// From this many new shares on, a batch copies them (binary `COPY`, two round trips and a
/// transaction) rather than inserting them in its one statement: per row a copy costs the
/// database less, per batch more.
const COPY_FROM: usize = 500;

/// The CTE that adds new shares' per-minute totals ($1..$5: minute, address, worker,
/// difficulty, shares), shared by [`MINUTES`] and [`NEW_SHARES_AND_MINUTES`].
macro_rules! minutes_cte {
    () => {
        "minutes AS (
            INSERT INTO share_minutes (minute, address, worker, difficulty, shares)
            SELECT micros_to_ts(m), a, w, d, n
            FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::bigint[])
                 AS x(m, a, w, d, n)
            ON CONFLICT (minute, address, worker) DO UPDATE
            SET difficulty = share_minutes.difficulty + EXCLUDED.difficulty,
                shares = share_minutes.shares + EXCLUDED.shares)"
    };
}

/// The per-minute totals of new shares, then the newest block's time.
const MINUTES: &str = concat!(
    "WITH ",
    minutes_cte!(),
    " SELECT ts_to_micros(max(found_at)) FROM blocks"
);

/// New shares ($6..$14, the columns of [`bind_shares`]), their per-minute totals
/// ($1..$5) and the newest block's time, in one statement. No `ON CONFLICT`: new shares
/// cannot be there, and one that is fails the batch rather than be counted twice.
const NEW_SHARES_AND_MINUTES: &str = concat!(
    "WITH shares_in AS (
        INSERT INTO shares (time, uid, address, worker, difficulty, share_difficulty,
                            network_difficulty, height, instance)
        SELECT micros_to_ts(t), u, a, w, d, sd, nd, h, i
        FROM unnest($6::bigint[], $7::bigint[], $8::text[], $9::text[],
                    $10::float8[], $11::float8[], $12::float8[], $13::bigint[],
                    $14::smallint[]) AS x(t, u, a, w, d, sd, nd, h, i)), ",
    minutes_cte!(),
    " SELECT ts_to_micros(max(found_at)) FROM blocks"
);

type PgQueryScalar<'q> =
    sqlx::query::QueryScalar<'q, sqlx::Postgres, Option<i64>, sqlx::postgres::PgArguments>;

/// [`NEW_SHARES_AND_MINUTES`] with its parameters bound.
fn new_shares<'q>(shares: &[&'q ShareRow], totals: &[copy::MinuteTotal<'q>]) -> PgQueryScalar<'q> {
    bind_shares(
        bind_minutes(sqlx::query_scalar(NEW_SHARES_AND_MINUTES), totals),
        shares,
    )
}

/// Binds the per-minute totals as [`MINUTES`]' $1..$5.
fn bind_minutes<'q>(
    query: PgQueryScalar<'q>,
    totals: &[copy::MinuteTotal<'q>],
) -> PgQueryScalar<'q> {
    query
        .bind(totals.iter().map(|t| t.minute_us).collect::<Vec<_>>())
        .bind(totals.iter().map(|t| t.address).collect::<Vec<_>>())
        .bind(totals.iter().map(|t| t.worker).collect::<Vec<_>>())
        .bind(totals.iter().map(|t| t.difficulty).collect::<Vec<_>>())
        .bind(totals.iter().map(|t| t.shares).collect::<Vec<_>>())
}

/// Binds the shares' columns, in the order of `copy::SHARE_COLUMNS`, as the next nine
/// parameters.
fn bind_shares<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    shares: &[&'q ShareRow],
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    query
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
}

/// The share rows of a batch.
fn share_rows(records: &[Record]) -> Vec<&ShareRow> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Share(s) => Some(s),
            Record::Block(_) => None,
        })
        .collect()
}

/// The batch's blocks, first: a share's round is decided by the newest block before it.
async fn write_blocks(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    records: &[Record],
) -> Result<(), StoreError> {
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
            .execute(&mut **tx)
            .await?;
            if let Some(payout) = &b.payout {
                write_payout(tx, &b.hash, payout).await?;
            }
        }
    }
    Ok(())
}

/// Shares that may be in the table already (a replay): those are skipped, and only the
/// inserted rows are added to the per-minute totals.
async fn insert_shares(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    shares: &[&ShareRow],
) -> Result<(), StoreError> {
    let query = sqlx::query_scalar::<_, i64>(
        "WITH new AS (
            INSERT INTO shares (time, uid, address, worker, difficulty, share_difficulty,
                                network_difficulty, height, instance)
            SELECT micros_to_ts(t), u, a, w, d, sd, nd, h, i
            FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                        $5::float8[], $6::float8[], $7::float8[], $8::bigint[],
                        $9::smallint[]) AS x(t, u, a, w, d, sd, nd, h, i)
            ON CONFLICT DO NOTHING
            RETURNING time, address, worker, difficulty),
         minutes AS (
            INSERT INTO share_minutes (minute, address, worker, difficulty, shares)
            SELECT date_trunc('minute', time), address, worker, sum(difficulty), count(*)
            FROM new GROUP BY 1, 2, 3
            ON CONFLICT (minute, address, worker) DO UPDATE
            SET difficulty = share_minutes.difficulty + EXCLUDED.difficulty,
                shares = share_minutes.shares + EXCLUDED.shares)
         SELECT count(*) FROM new",
    );
    bind_shares(query, shares).fetch_one(&mut **tx).await?;
    Ok(())
}

/// New shares by binary `COPY` ([`copy`]), inside the batch's transaction.
async fn copy_shares(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    shares: &[&ShareRow],
) -> Result<(), StoreError> {
    let payload = copy::encode(shares);
    let mut copy_in = (**tx)
        .copy_in_raw(&format!(
            "COPY shares ({}) FROM STDIN (FORMAT binary)",
            copy::SHARE_COLUMNS
        ))
        .await?;
    copy_in.send(payload).await?;
    copy_in.finish().await?;
    Ok(())
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
