//! The PPLNS window from the database: the last `size` of share difficulty up to a moment,
//! per address, the oldest share counted only in part so that the window is exactly
//! `size` (when that much work exists).
//!
//! Reading millions of shares would take seconds, so the window is put together from three
//! pieces: the raw shares of the minute the block was found in (up to the block), the
//! per-minute totals (`share_minutes`) of the whole minutes before it, and the raw shares of
//! the one minute where the window begins, walked newest first. When retention has already
//! dropped that minute's raw shares, its totals are counted pro rata instead.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::Row;

use crate::accounting::pplns::Weight;
use crate::store::{Store, StoreError};

const MINUTE_US: i64 = 60_000_000;

/// A window's content.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Difficulty per address, largest first (ties by address).
    pub weights: Vec<Weight>,
    /// The difficulty found (the window's size, or less when the pool has not seen that
    /// much work).
    pub filled: f64,
}

/// Adds up difficulty per address until a size is reached.
#[derive(Default)]
struct Filler {
    by_address: HashMap<String, f64>,
    filled: f64,
}

impl Filler {
    /// Counts `difficulty` for `address`, or the part of it that still fits in `size`;
    /// returns true once the window is full.
    fn add(&mut self, address: &str, difficulty: f64, size: f64) -> bool {
        let room = size - self.filled;
        if room <= 0.0 {
            return true;
        }
        let counted = difficulty.min(room);
        *self.by_address.entry(address.to_string()).or_default() += counted;
        self.filled += counted;
        difficulty >= room
    }

    fn finish(self) -> Window {
        let mut weights: Vec<Weight> = self
            .by_address
            .into_iter()
            .map(|(address, difficulty)| Weight {
                address,
                difficulty,
            })
            .collect();
        crate::accounting::pplns::sort_weights(&mut weights);
        Window {
            weights,
            filled: self.filled,
        }
    }
}

impl Store {
    /// The window of `size` difficulty ending at `end_us` (inclusive).
    pub async fn pplns_window(&self, end_us: i64, size: f64) -> Result<Window, StoreError> {
        let mut fill = Filler::default();
        let head = end_us - end_us.rem_euclid(MINUTE_US);
        if self.walk_raw(&mut fill, head, end_us, size).await? {
            return Ok(fill.finish());
        }
        // Whole minutes before the block's, newest first, until one holds the window's start.
        let mut minutes = sqlx::query(
            "SELECT ts_to_micros(minute) AS m, sum(difficulty) AS d FROM share_minutes
             WHERE minute < micros_to_ts($1) GROUP BY minute ORDER BY minute DESC",
        )
        .bind(head)
        .fetch(self.db());
        let mut through = head; // whole minutes from here up to `head` are inside
        let mut boundary = None;
        let mut whole = 0.0;
        while let Some(row) = minutes.try_next().await? {
            let minute: i64 = row.try_get("m")?;
            let total: f64 = row.try_get("d")?;
            if fill.filled + whole + total >= size {
                boundary = Some(minute);
                break;
            }
            whole += total;
            through = minute;
        }
        drop(minutes);
        // Without a boundary every minute on record is inside.
        let full = sqlx::query(
            "SELECT address, sum(difficulty) AS d FROM share_minutes
             WHERE ($1::bigint IS NULL OR minute >= micros_to_ts($1)) AND minute < micros_to_ts($2)
             GROUP BY address ORDER BY address",
        )
        .bind(boundary.map(|_| through))
        .bind(head)
        .fetch_all(self.db())
        .await?;
        for row in full {
            let address: String = row.try_get("address")?;
            let difficulty: f64 = row.try_get("d")?;
            *fill.by_address.entry(address).or_default() += difficulty;
            fill.filled += difficulty;
        }
        if let Some(minute) = boundary {
            self.fill_boundary(&mut fill, minute, size).await?;
        }
        Ok(fill.finish())
    }

    /// Walks the raw shares in `[from_us, to_us]` newest first; true once the window is full.
    async fn walk_raw(
        &self,
        fill: &mut Filler,
        from_us: i64,
        to_us: i64,
        size: f64,
    ) -> Result<bool, StoreError> {
        let mut rows = sqlx::query(
            "SELECT address, difficulty FROM shares
             WHERE time >= micros_to_ts($1) AND time <= micros_to_ts($2)
             ORDER BY time DESC, uid DESC",
        )
        .bind(from_us)
        .bind(to_us)
        .fetch(self.db());
        while let Some(row) = rows.try_next().await? {
            let address: String = row.try_get("address")?;
            let difficulty: f64 = row.try_get("difficulty")?;
            if fill.add(&address, difficulty, size) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The minute where the window begins: its raw shares newest first, or, when retention
    /// has dropped some of them, its per-address totals pro rata.
    async fn fill_boundary(
        &self,
        fill: &mut Filler,
        minute: i64,
        size: f64,
    ) -> Result<(), StoreError> {
        let totals = sqlx::query(
            "SELECT address, difficulty, shares FROM share_minutes
             WHERE minute = micros_to_ts($1) ORDER BY address",
        )
        .bind(minute)
        .fetch_all(self.db())
        .await?;
        let mut recorded = 0i64;
        let mut per_address = Vec::new();
        for row in totals {
            recorded += row.try_get::<i64, _>("shares")?;
            per_address.push((
                row.try_get::<String, _>("address")?,
                row.try_get::<f64, _>("difficulty")?,
            ));
        }
        let raw: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM shares
             WHERE time >= micros_to_ts($1) AND time < micros_to_ts($1 + $2)",
        )
        .bind(minute)
        .bind(MINUTE_US)
        .fetch_one(self.db())
        .await?;
        if raw >= recorded {
            self.walk_raw(fill, minute, minute + MINUTE_US - 1, size)
                .await?;
            return Ok(());
        }
        let total: f64 = per_address.iter().map(|(_, d)| d).sum();
        let part = ((size - fill.filled) / total).clamp(0.0, 1.0);
        for (address, difficulty) in per_address {
            *fill.by_address.entry(address).or_default() += difficulty * part;
            fill.filled += difficulty * part;
        }
        Ok(())
    }

    /// Share difficulty accepted in `(from_us, to_us]` (`from_us` None: since the start):
    /// a block's effort is this over the network difficulty.
    pub async fn difficulty_between(
        &self,
        from_us: Option<i64>,
        to_us: i64,
    ) -> Result<f64, StoreError> {
        let head = to_us - to_us.rem_euclid(MINUTE_US);
        let raw = |lo: i64, hi: i64| {
            sqlx::query_scalar::<_, Option<f64>>(
                "SELECT sum(difficulty) FROM shares
                 WHERE time > micros_to_ts($1) AND time <= micros_to_ts($2)",
            )
            .bind(lo)
            .bind(hi)
        };
        if let Some(from) = from_us
            && from >= head
        {
            return Ok(raw(from, to_us).fetch_one(self.db()).await?.unwrap_or(0.0));
        }
        // The block's minute raw, whole minutes from totals, the first minute raw.
        let first_whole = from_us.map(|f| f - f.rem_euclid(MINUTE_US) + MINUTE_US);
        let mut sum = raw(head - 1, to_us)
            .fetch_one(self.db())
            .await?
            .unwrap_or(0.0);
        sum += sqlx::query_scalar::<_, Option<f64>>(
            "SELECT sum(difficulty) FROM share_minutes
             WHERE ($1::bigint IS NULL OR minute >= micros_to_ts($1)) AND minute < micros_to_ts($2)",
        )
        .bind(first_whole)
        .bind(head)
        .fetch_one(self.db())
        .await?
        .unwrap_or(0.0);
        if let (Some(from), Some(first_whole)) = (from_us, first_whole)
            && first_whole > from
        {
            sum += raw(from, first_whole - 1)
                .fetch_one(self.db())
                .await?
                .unwrap_or(0.0);
        }
        Ok(sum)
    }
}
