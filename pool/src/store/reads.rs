//! Reads for the HTTP API: history and accounts, each row mapped by `sqlx::FromRow` from
//! columns named as the fields. Amounts stay in satoshis and times in unix microseconds
//! here; the API turns them into Miningcore's shapes.

use sqlx::FromRow;

use crate::store::{BlockRow, Store, StoreError};

/// Every payment, one row each, `$1`'s only when `$1` is not null: wallet payments sent,
/// and the outputs of confirmed coinbase-payout blocks.
pub(crate) const PAYMENTS: &str = "
    SELECT p.address, p.amount, o.txid, NULL::text AS block_hash, NULL::int AS output_index,
           ts_to_micros(coalesce(o.sent_at, o.created_at)) AS time_us
    FROM payments p JOIN payouts o ON o.id = p.payout_id
    WHERE o.status = 'sent' AND ($1::text IS NULL OR p.address = $1)
    UNION ALL
    SELECT c.address, c.paid, NULL, c.block_hash, c.output_index, ts_to_micros(b.found_at)
    FROM coinbase_payouts c JOIN blocks b ON b.hash = c.block_hash
    WHERE b.status = 'confirmed' AND c.paid > 0 AND ($1::text IS NULL OR c.address = $1)";

/// How samples are grouped (`date_trunc` units).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// One sample per minute.
    Minute,
    /// One per hour (Miningcore's default).
    Hour,
    /// One per day.
    Day,
}

impl Interval {
    fn unit(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }
}

/// The pool over one interval.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct PoolSample {
    /// Start of the interval.
    pub time_us: i64,
    /// Mean H/s.
    pub hashrate: f64,
    /// Mean accepted shares per second.
    pub shares_per_sec: f64,
    /// Most miners seen at once.
    pub miners: i64,
    /// Most workers seen at once.
    pub workers: i64,
}

/// One worker over one interval.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct WorkerSample {
    /// Start of the interval.
    pub time_us: i64,
    /// Worker name.
    pub worker: String,
    /// Mean H/s.
    pub hashrate: f64,
    /// Mean accepted shares per second.
    pub shares_per_sec: f64,
}

/// A found block as the API shows it: the stored block and where it stands.
/// One address's work over a window (the withholding report).
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct AddressWork {
    /// The payout address.
    pub address: String,
    /// Accepted shares.
    pub shares: i64,
    /// Their credited difficulty, summed.
    pub difficulty: f64,
    /// The blocks they were expected to find: each share's difficulty over the network
    /// difficulty then, summed.
    pub expected_blocks: f64,
}

#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct BlockView {
    /// The block as found.
    #[sqlx(flatten)]
    pub block: BlockRow,
    /// pending, confirmed or orphaned.
    pub status: String,
    /// Confirmations at the last check.
    pub confirmations: i64,
    /// Share difficulty of the round over network difficulty (set when frozen).
    pub effort: Option<f64>,
}

/// One payment to one address.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct PaymentRow {
    /// The address paid.
    pub address: String,
    /// Satoshis.
    pub amount: i64,
    /// The wallet transaction (none for a coinbase payout).
    pub txid: Option<String>,
    /// A coinbase payout's block.
    pub block_hash: Option<String>,
    /// A coinbase payout's output index in that block's coinbase.
    pub output_index: Option<i32>,
    /// When it was sent (a coinbase payout: when its block was found).
    pub time_us: i64,
}

/// One address's account.
#[derive(Clone, Debug, Default, PartialEq, FromRow)]
pub struct Account {
    /// Whether the pool has ever seen the address (shares, credits or payments).
    pub known: bool,
    /// Credited, not yet paid, satoshis.
    pub balance: i64,
    /// Paid in all, satoshis.
    pub paid: i64,
    /// Paid since midnight UTC, satoshis.
    pub paid_today: i64,
    /// The last payment's time.
    pub last_payment_us: Option<i64>,
    /// The last wallet payment's transaction.
    pub last_payment_txid: Option<String>,
    /// Share difficulty since the pool's last block: this round's work.
    pub round_difficulty: f64,
}

/// How long the pool-wide totals are kept before they are read again.
pub const TOTALS_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Pool-wide totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Paid to miners in all, satoshis.
    pub paid: i64,
    /// Blocks found (every status).
    pub blocks: i64,
    /// Pending, confirmed and orphaned counts.
    pub by_status: [(String, i64); 3],
    /// The last block's time.
    pub last_block_us: Option<i64>,
    /// Share difficulty since the last block.
    pub round_difficulty: f64,
}

/// The row behind [`Totals`].
#[derive(FromRow)]
struct TotalsRow {
    paid: i64,
    blocks: i64,
    pending: i64,
    confirmed: i64,
    orphaned: i64,
    last_block_us: Option<i64>,
    round_difficulty: f64,
}

/// Share difficulty since the pool's last block (all of it before the first block):
/// whole minutes after the block's minute from `share_minutes`, the rest of the block's
/// own minute from raw `shares`, so the sum is exact without scanning a long round's
/// shares. `{and}` narrows both to one address (`$1`).
fn round_difficulty_sql(and: &str) -> String {
    let last = "coalesce((SELECT max(found_at) FROM blocks), 'epoch'::timestamptz)";
    format!(
        "(coalesce((SELECT sum(difficulty) FROM share_minutes
                    WHERE minute > date_trunc('minute', {last}) {and}), 0)
          + coalesce((SELECT sum(difficulty) FROM shares
                      WHERE time > {last}
                        AND time < date_trunc('minute', {last}) + interval '1 minute' {and}), 0))"
    )
}

impl Store {
    /// The pool's samples of the last `since_secs`, grouped by `interval`, oldest first.
    pub async fn pool_samples(
        &self,
        since_secs: f64,
        interval: Interval,
    ) -> Result<Vec<PoolSample>, StoreError> {
        self.read(move |db| async move {
            sqlx::query_as(
                "SELECT ts_to_micros(date_trunc($2, time)) AS time_us, avg(hashrate) AS hashrate,
                    avg(shares_per_sec) AS shares_per_sec, max(miners)::bigint AS miners,
                    max(workers)::bigint AS workers
             FROM pool_stats WHERE time >= now() - make_interval(secs => $1)
             GROUP BY 1 ORDER BY 1",
            )
            .bind(since_secs)
            .bind(interval.unit())
            .fetch_all(&db)
            .await
        })
        .await
    }

    /// One address's per-worker samples of the last `since_secs`, oldest first.
    pub async fn worker_samples(
        &self,
        address: &str,
        since_secs: f64,
        interval: Interval,
    ) -> Result<Vec<WorkerSample>, StoreError> {
        self.read(move |db| async move {
            sqlx::query_as(
                "SELECT ts_to_micros(date_trunc($3, time)) AS time_us, worker,
                    avg(hashrate) AS hashrate, avg(shares_per_sec) AS shares_per_sec
             FROM miner_stats
             WHERE address = $1 AND time >= now() - make_interval(secs => $2)
             GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .bind(address)
            .bind(since_secs)
            .bind(interval.unit())
            .fetch_all(&db)
            .await
        })
        .await
    }

    /// Per address since `since_us`: shares, their credited difficulty, and the blocks
    /// they were expected to find (each share's difficulty over the network's then), for
    /// the withholding report.
    pub async fn work_by_address(&self, since_us: i64) -> Result<Vec<AddressWork>, StoreError> {
        self.read(move |db| async move {
            sqlx::query_as(
                "SELECT address, count(*) AS shares, sum(difficulty) AS difficulty,
                    sum(least(difficulty / network_difficulty, 1.0)) AS expected_blocks
             FROM shares WHERE time >= micros_to_ts($1) AND network_difficulty > 0
             GROUP BY address ORDER BY address",
            )
            .bind(since_us)
            .fetch_all(&db)
            .await
        })
        .await
    }

    /// The finders (usernames) of the blocks found since `since_us`, orphaned ones too: a
    /// block found counts for its finder whatever the chain made of it.
    pub async fn finders_since(&self, since_us: i64) -> Result<Vec<String>, StoreError> {
        self.read(move |db| async move {
            sqlx::query_scalar("SELECT finder FROM blocks WHERE found_at >= micros_to_ts($1)")
                .bind(since_us)
                .fetch_all(&db)
                .await
        })
        .await
    }

    /// Blocks, newest first.
    pub async fn blocks_page(&self, offset: i64, limit: i64) -> Result<Vec<BlockView>, StoreError> {
        self.read(move |db| async move {
            sqlx::query_as(
                "SELECT hash, height, ts_to_micros(found_at) AS found_us, finder, reward,
                    network_difficulty, status::text AS status, confirmations, effort
             FROM blocks ORDER BY found_at DESC, hash OFFSET $1 LIMIT $2",
            )
            .bind(offset)
            .bind(limit)
            .fetch_all(&db)
            .await
        })
        .await
    }

    /// Payments sent, newest first, wallet payments and the outputs of confirmed
    /// coinbase-payout blocks alike; one address's when `address` is given.
    pub async fn payments_page(
        &self,
        address: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let sql = format!(
            "SELECT * FROM ({PAYMENTS}) x ORDER BY time_us DESC, address OFFSET $2 LIMIT $3"
        );
        self.read_page(&sql, address, offset, limit).await
    }

    /// The rows of `sql` for `key` ($1), `offset` ($2) and `limit` ($3).
    pub(crate) async fn read_page<'q, T, K>(
        &self,
        sql: &'q str,
        key: K,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
        K: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Copy + 'q,
    {
        self.read(move |db| async move {
            let query = sqlx::query_as(sql).bind(key).bind(offset).bind(limit);
            query.fetch_all(&db).await
        })
        .await
    }

    /// The count that `sql` gives for `key` ($1).
    pub(crate) async fn read_count<'q, K>(&self, sql: &'q str, key: K) -> Result<i64, StoreError>
    where
        K: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Copy + 'q,
    {
        self.read(move |db| async move { sqlx::query_scalar(sql).bind(key).fetch_one(&db).await })
            .await
    }

    /// One address's account.
    pub async fn account(&self, address: &str) -> Result<Account, StoreError> {
        self.read(move |db| async move {
            sqlx::query_as(&format!(
                "SELECT
               coalesce((SELECT amount FROM balances WHERE address = $1), 0) AS balance,
               coalesce((SELECT paid FROM balances WHERE address = $1), 0) AS paid,
               coalesce((SELECT sum(p.amount) FROM payments p JOIN payouts o ON o.id = p.payout_id
                         WHERE p.address = $1 AND o.status = 'sent'
                           AND o.sent_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                            AT TIME ZONE 'UTC'), 0)::bigint AS paid_today,
               (SELECT ts_to_micros(max(o.sent_at)) FROM payments p
                  JOIN payouts o ON o.id = p.payout_id
                WHERE p.address = $1 AND o.status = 'sent') AS last_payment_us,
               (SELECT o.txid FROM payments p JOIN payouts o ON o.id = p.payout_id
                WHERE p.address = $1 AND o.status = 'sent'
                ORDER BY o.sent_at DESC LIMIT 1) AS last_payment_txid,
               {round} AS round_difficulty,
               EXISTS (SELECT 1 FROM share_minutes WHERE address = $1)
                 OR EXISTS (SELECT 1 FROM balances WHERE address = $1)
                 OR EXISTS (SELECT 1 FROM credits WHERE address = $1) AS known",
                round = round_difficulty_sql("AND address = $1")
            ))
            .bind(address)
            .fetch_one(&db)
            .await
        })
        .await
    }

    /// Blocks by status: pending, confirmed, orphaned (for `/metrics`; from the totals,
    /// so at most [`TOTALS_FOR`] old).
    pub async fn block_counts(&self) -> Result<[(String, i64); 3], StoreError> {
        Ok(self.totals().await?.by_status)
    }

    /// Pool-wide totals, read at most once per [`TOTALS_FOR`]: every visitor of a public
    /// dashboard asks for them, and they count whole tables.
    pub async fn totals(&self) -> Result<Totals, StoreError> {
        {
            let cached = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, totals)) = &*cached
                && at.elapsed() < TOTALS_FOR
            {
                return Ok(totals.clone());
            }
        }
        let totals = self.read_totals().await?;
        *self.totals.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((std::time::Instant::now(), totals.clone()));
        Ok(totals)
    }

    async fn read_totals(&self) -> Result<Totals, StoreError> {
        let sql = format!(
            "SELECT
               coalesce((SELECT sum(paid) FROM balances), 0)::bigint AS paid,
               (SELECT count(*) FROM blocks) AS blocks,
               (SELECT count(*) FROM blocks WHERE status = 'pending') AS pending,
               (SELECT count(*) FROM blocks WHERE status = 'confirmed') AS confirmed,
               (SELECT count(*) FROM blocks WHERE status = 'orphaned') AS orphaned,
               (SELECT ts_to_micros(max(found_at)) FROM blocks) AS last_block_us,
               {round} AS round_difficulty",
            round = round_difficulty_sql("")
        );
        let sql = sql.as_str();
        let r: TotalsRow = self
            .read(move |db| async move { sqlx::query_as(sql).fetch_one(&db).await })
            .await?;
        Ok(Totals {
            paid: r.paid,
            blocks: r.blocks,
            by_status: [
                ("pending".into(), r.pending),
                ("confirmed".into(), r.confirmed),
                ("orphaned".into(), r.orphaned),
            ],
            last_block_us: r.last_block_us,
            round_difficulty: r.round_difficulty,
        })
    }
}
