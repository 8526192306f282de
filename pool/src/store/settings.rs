//! Miners' own settings (`miner_settings`): the payment threshold an address chose with a
//! signed message, and the timestamp of that message, which the next one must pass.

use sqlx::Row;

use crate::store::{Store, StoreError};

/// An address's settings as it last signed them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinerSettings {
    /// Least balance paid to it, satoshis.
    pub payment_threshold: i64,
    /// The timestamp in the signed message (unix seconds).
    pub signed_at: i64,
    /// When the pool took it (unix microseconds).
    pub updated_us: i64,
}

impl Store {
    /// `address`'s settings, if it ever set any.
    pub async fn miner_settings(&self, address: &str) -> Result<Option<MinerSettings>, StoreError> {
        let row = sqlx::query(
            "SELECT payment_threshold, signed_at, ts_to_micros(updated_at) AS updated_us
             FROM miner_settings WHERE address = $1",
        )
        .bind(address)
        .fetch_optional(self.db())
        .await?;
        row.map(|r| {
            Ok(MinerSettings {
                payment_threshold: r.try_get("payment_threshold")?,
                signed_at: r.try_get("signed_at")?,
                updated_us: r.try_get("updated_us")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Sets `address`'s payment threshold from a message signed at `signed_at`; false (and
    /// nothing changes) when a message signed at that time or later was taken before.
    pub async fn set_payment_threshold(
        &self,
        address: &str,
        threshold: i64,
        signed_at: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO miner_settings (address, payment_threshold, signed_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (address) DO UPDATE
               SET payment_threshold = EXCLUDED.payment_threshold,
                   signed_at = EXCLUDED.signed_at, updated_at = now()
               WHERE miner_settings.signed_at < EXCLUDED.signed_at",
        )
        .bind(address)
        .bind(threshold)
        .bind(signed_at)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
