//! Bans shared between pool processes (`shared_bans`, `limits.share_bans`): written by
//! the process that bans, lifted by the one whose admin API lifts, read by all. Times
//! are the database's, so hosts whose clocks differ agree on when a ban ends.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::Row;

use crate::store::{Store, StoreError};

/// One row as read: a ban in force (`left`), or one that ended or was lifted (`None`).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedBan {
    /// The banned address.
    pub ip: IpAddr,
    /// Time it has left; `None` when it ended or was lifted.
    pub left: Option<Duration>,
    /// The process that wrote the row last.
    pub updated_by: String,
    /// When, unix seconds by the database's clock (a row's version).
    pub updated_at: f64,
}

impl Store {
    /// Writes bans this process made: each `(address, time left)`.
    pub async fn publish_bans(
        &self,
        process: &str,
        bans: &[(IpAddr, Duration)],
    ) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        for (ip, left) in bans {
            sqlx::query(
                "INSERT INTO shared_bans (ip, until, updated_by)
                 VALUES ($1, clock_timestamp() + make_interval(secs => $2), $3)
                 ON CONFLICT (ip) DO UPDATE
                 SET until = excluded.until, updated_at = clock_timestamp(),
                     updated_by = excluded.updated_by",
            )
            .bind(ip.to_string())
            .bind(left.as_secs_f64())
            .bind(process)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM shared_bans WHERE until < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends the ban on `ip` for every process now (the admin API lifted it).
    pub async fn lift_shared_ban(&self, ip: IpAddr, process: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE shared_bans SET until = clock_timestamp(), updated_at = clock_timestamp(),
                                    updated_by = $2
             WHERE ip = $1",
        )
        .bind(ip.to_string())
        .bind(process)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// The rows changed after `since` (unix seconds, less `overlap` for writes that
    /// committed late), or with no `since` every ban in force.
    pub async fn shared_bans_since(
        &self,
        since: Option<f64>,
        overlap: Duration,
    ) -> Result<Vec<SharedBan>, StoreError> {
        let rows = sqlx::query(
            "SELECT ip, extract(epoch FROM until - clock_timestamp())::float8 AS left_secs,
                    updated_by, extract(epoch FROM updated_at)::float8 AS updated_at
             FROM shared_bans
             WHERE CASE WHEN $1::float8 IS NULL THEN until > clock_timestamp()
                        ELSE updated_at > to_timestamp($1) - make_interval(secs => $2) END
             ORDER BY updated_at",
        )
        .bind(since)
        .bind(overlap.as_secs_f64())
        .fetch_all(self.db())
        .await?;
        let mut bans = Vec::with_capacity(rows.len());
        for r in rows {
            let text: String = r.try_get("ip")?;
            // A row this pool did not write sensibly is skipped, not fatal.
            let Ok(ip) = text.parse::<IpAddr>() else {
                continue;
            };
            let left: f64 = r.try_get("left_secs")?;
            bans.push(SharedBan {
                ip,
                left: (left > 0.0).then(|| Duration::from_secs_f64(left)),
                updated_by: r.try_get("updated_by")?,
                updated_at: r.try_get("updated_at")?,
            });
        }
        Ok(bans)
    }
}
