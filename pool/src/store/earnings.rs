//! Reads for Miningcore's account history endpoints: balance changes (credits of confirmed
//! blocks in, payments out), payments summed per day, and the row counts their paged
//! (`/api/v2/`) forms need. Amounts in satoshis, times in unix microseconds.

use sqlx::FromRow;

use crate::store::reads::PAYMENTS;
use crate::store::{Store, StoreError};

/// One change of an address's balance.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct BalanceChange {
    /// Satoshis: positive for a credit, negative for a payment.
    pub amount: i64,
    /// What it was: `Reward for block <height>`, `Payment <txid>`, `Payment in flight`.
    pub usage: String,
    /// When (a credit: when its block confirmed; a payment: when it was sent or written).
    pub time_us: i64,
}

/// Payments of one day.
#[derive(Clone, Debug, PartialEq, FromRow)]
pub struct DayAmount {
    /// Satoshis paid that day.
    pub amount: i64,
    /// Midnight UTC of the day.
    pub day_us: i64,
}

/// `$1`'s balance changes: wallet-method credits of confirmed blocks, and its payments in
/// flight or sent (a failed or cancelled payout gave its amount back: it changed nothing).
const CHANGES: &str = "
    SELECT c.amount, 'Reward for block ' || b.height AS usage,
           ts_to_micros(c.credited_at) AS time_us
    FROM credits c JOIN blocks b ON b.hash = c.block_hash
    WHERE c.address = $1 AND c.credited_at IS NOT NULL AND c.amount > 0
    UNION ALL
    SELECT -p.amount, CASE WHEN o.status = 'sent' THEN 'Payment ' || o.txid
                           ELSE 'Payment in flight' END,
           ts_to_micros(coalesce(o.sent_at, o.created_at))
    FROM payments p JOIN payouts o ON o.id = p.payout_id
    WHERE p.address = $1 AND o.status IN ('sent', 'intent')";

/// `$1`'s payments summed per UTC day (Miningcore's "daily earnings" are its payments).
const DAYS: &str = "
    SELECT sum(amount)::bigint AS amount,
           ts_to_micros(date_trunc('day', micros_to_ts(time_us) AT TIME ZONE 'UTC')
                        AT TIME ZONE 'UTC') AS day_us
    FROM payments_of GROUP BY day_us";

impl Store {
    /// `address`'s balance changes, newest first.
    pub async fn balance_changes(
        &self,
        address: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<BalanceChange>, StoreError> {
        let sql =
            format!("SELECT * FROM ({CHANGES}) x ORDER BY time_us DESC, usage OFFSET $2 LIMIT $3");
        self.read_page(&sql, address, offset, limit).await
    }

    /// How many balance changes `address` has.
    pub async fn balance_changes_count(&self, address: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT count(*) FROM ({CHANGES}) x");
        self.read_count(&sql, address).await
    }

    /// `address`'s payments per day, newest day first.
    pub async fn earnings_by_day(
        &self,
        address: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<DayAmount>, StoreError> {
        let sql = format!(
            "WITH payments_of AS ({PAYMENTS}) {DAYS} ORDER BY day_us DESC OFFSET $2 LIMIT $3"
        );
        self.read_page(&sql, address, offset, limit).await
    }

    /// On how many days `address` was paid.
    pub async fn earnings_days(&self, address: &str) -> Result<i64, StoreError> {
        let sql = format!("WITH payments_of AS ({PAYMENTS}) SELECT count(*) FROM ({DAYS}) x");
        self.read_count(&sql, address).await
    }

    /// How many payments there are (`address`'s only, when given).
    pub async fn payments_count(&self, address: Option<&str>) -> Result<i64, StoreError> {
        let sql = format!("SELECT count(*) FROM ({PAYMENTS}) x");
        self.read_count(&sql, address).await
    }

    /// How many blocks the pool found.
    pub async fn blocks_count(&self) -> Result<i64, StoreError> {
        self.read(move |db| async move {
            sqlx::query_scalar("SELECT count(*) FROM blocks")
                .fetch_one(&db)
                .await
        })
        .await
    }
}
