//! Block tracking (the leader runs it): a found block's PPLNS window is frozen into
//! `credits` a few seconds after it is found; the block then stays pending until the chain
//! decides. The hash at its height on the node's best chain settles it: a different hash
//! means orphaned (nobody is credited), ours with enough confirmations means confirmed,
//! and its credits move into `balances` in the same transaction that marks it so.

use serde_json::{Value, json};
use sqlx::Row;
use tracing::{info, warn};

use crate::accounting::pplns::{self, Weight};
use crate::chain::node::{Node, NodeError, call_any};
use crate::config::{Mode, PayoutsConfig};
use crate::store::{Store, StoreError};

/// Why a tracking round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No node could answer.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// The node answered something unexpected.
    #[error("node: unexpected {method} reply: {reply}")]
    Reply {
        /// The call.
        method: &'static str,
        /// What it said.
        reply: String,
    },
}

impl From<sqlx::Error> for TrackError {
    fn from(e: sqlx::Error) -> Self {
        TrackError::Store(StoreError::Db(e))
    }
}

/// Freezes windows and decides pending blocks.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// The database.
    pub store: Store,
    /// Nodes, in order of preference.
    pub nodes: Vec<Node>,
    /// SOLO blocks are tracked too, but credit no one.
    pub mode: Mode,
    /// Window, fee, policy, confirmations.
    pub payouts: PayoutsConfig,
}

impl Tracker {
    /// One round: freeze what is due, then check every pending block.
    pub async fn step(&self) -> Result<(), TrackError> {
        self.freeze_due().await?;
        self.decide_pending().await
    }

    /// Freezes the windows of blocks found more than `freeze_delay_secs` ago.
    pub async fn freeze_due(&self) -> Result<(), TrackError> {
        let due = sqlx::query(
            "SELECT hash, ts_to_micros(found_at) AS found, reward, network_difficulty
             FROM blocks
             WHERE frozen_at IS NULL AND found_at <= now() - make_interval(secs => $1)
             ORDER BY found_at",
        )
        .bind(self.payouts.freeze_delay_secs as f64)
        .fetch_all(self.store.db())
        .await?;
        for row in due {
            let hash: String = row.try_get("hash")?;
            let found: i64 = row.try_get("found")?;
            let reward: i64 = row.try_get("reward")?;
            let network: f64 = row.try_get("network_difficulty")?;
            self.freeze(&hash, found, u64::try_from(reward).unwrap_or(0), network)
                .await?;
        }
        Ok(())
    }

    async fn freeze(
        &self,
        hash: &str,
        found: i64,
        reward: u64,
        network: f64,
    ) -> Result<(), TrackError> {
        let db = self.store.db();
        let previous: Option<i64> = sqlx::query_scalar(
            "SELECT max(ts_to_micros(found_at)) FROM blocks WHERE found_at < micros_to_ts($1)",
        )
        .bind(found)
        .fetch_one(db)
        .await?;
        let effort = self.store.difficulty_between(previous, found).await? / network;
        let size = self.payouts.window_factor * network;
        let (weights, filled, split) = match self.mode {
            Mode::Pplns => {
                let window = self.store.pplns_window(found, size).await?;
                let split = pplns::split(
                    reward,
                    pplns::fee_ppm(self.payouts.fee_percent),
                    size,
                    &window.weights,
                    self.payouts.unfilled,
                );
                (window.weights, window.filled, Some(split))
            }
            Mode::Solo => (Vec::new(), 0.0, None),
        };
        let mut tx = db.begin().await?;
        let frozen = sqlx::query(
            "UPDATE blocks SET frozen_at = now(), effort = $2, window_difficulty = $3,
                              window_filled = $4, pool_amount = $5
             WHERE hash = $1 AND frozen_at IS NULL",
        )
        .bind(hash)
        .bind(effort)
        .bind(size)
        .bind(filled)
        .bind(split.as_ref().map(|s| s.pool_amount() as i64))
        .execute(&mut *tx)
        .await?;
        if frozen.rows_affected() == 0 {
            return Ok(()); // another round got there first
        }
        if let Some(split) = &split {
            let difficulty = |address: &str| {
                weights
                    .iter()
                    .find(|w: &&Weight| w.address == address)
                    .map_or(0.0, |w| w.difficulty)
            };
            let addresses: Vec<&str> = split.credits.iter().map(|(a, _)| a.as_str()).collect();
            sqlx::query(
                "INSERT INTO credits (block_hash, address, difficulty, amount)
                 SELECT $1, a, d, m FROM unnest($2::text[], $3::float8[], $4::bigint[]) AS x(a, d, m)",
            )
            .bind(hash)
            .bind(&addresses)
            .bind(addresses.iter().map(|a| difficulty(a)).collect::<Vec<_>>())
            .bind(split.credits.iter().map(|(_, c)| *c as i64).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        info!(
            block = hash,
            effort = format!("{:.1}%", effort * 100.0),
            window_filled = format!("{:.1}%", filled / size * 100.0),
            miners = split.as_ref().map_or(0, |s| s.credits.len()),
            pool_keeps = split.as_ref().map_or(0, |s| s.pool_amount()),
            "PPLNS window frozen"
        );
        Ok(())
    }

    /// Checks every pending block whose window is frozen against the best chain.
    pub async fn decide_pending(&self) -> Result<(), TrackError> {
        let pending = sqlx::query(
            "SELECT hash, height FROM blocks
             WHERE status = 'pending' AND frozen_at IS NOT NULL ORDER BY height",
        )
        .fetch_all(self.store.db())
        .await?;
        if pending.is_empty() {
            return Ok(());
        }
        let tip = call_any(&self.nodes, "getblockcount", json!([])).await?;
        let tip = tip.as_i64().ok_or_else(|| TrackError::Reply {
            method: "getblockcount",
            reply: tip.to_string(),
        })?;
        for row in pending {
            let hash: String = row.try_get("hash")?;
            let height: i64 = row.try_get("height")?;
            if height > tip {
                continue; // the node is behind, or a reorg made the chain shorter for now
            }
            let at = call_any(&self.nodes, "getblockhash", json!([height])).await?;
            let Value::String(at) = at else {
                return Err(TrackError::Reply {
                    method: "getblockhash",
                    reply: at.to_string(),
                });
            };
            if at != hash {
                self.orphan(&hash, height, &at).await?;
                continue;
            }
            let confirmations = tip - height + 1;
            if confirmations >= i64::try_from(self.payouts.confirmations).unwrap_or(i64::MAX) {
                self.confirm(&hash, height, confirmations).await?;
            } else {
                sqlx::query("UPDATE blocks SET confirmations = $2 WHERE hash = $1")
                    .bind(&hash)
                    .bind(confirmations)
                    .execute(self.store.db())
                    .await?;
            }
        }
        Ok(())
    }

    async fn orphan(&self, hash: &str, height: i64, instead: &str) -> Result<(), TrackError> {
        let done = sqlx::query(
            "UPDATE blocks SET status = 'orphaned', confirmations = 0, decided_at = now()
             WHERE hash = $1 AND status = 'pending'",
        )
        .bind(hash)
        .execute(self.store.db())
        .await?;
        if done.rows_affected() > 0 {
            warn!(
                block = hash,
                height,
                chain_has = instead,
                "block orphaned: nobody is credited"
            );
        }
        Ok(())
    }

    async fn confirm(&self, hash: &str, height: i64, confirmations: i64) -> Result<(), TrackError> {
        let mut tx = self.store.db().begin().await?;
        let done = sqlx::query(
            "UPDATE blocks SET status = 'confirmed', confirmations = $2, decided_at = now()
             WHERE hash = $1 AND status = 'pending'",
        )
        .bind(hash)
        .bind(confirmations)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(());
        }
        let credited = sqlx::query(
            "INSERT INTO balances (address, amount)
             SELECT address, amount FROM credits
             WHERE block_hash = $1 AND credited_at IS NULL AND amount > 0
             ON CONFLICT (address) DO UPDATE
             SET amount = balances.amount + EXCLUDED.amount, updated_at = now()",
        )
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE credits SET credited_at = now() WHERE block_hash = $1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        info!(
            block = hash,
            height,
            confirmations,
            miners = credited.rows_affected(),
            "block confirmed: credits moved to balances"
        );
        Ok(())
    }
}
