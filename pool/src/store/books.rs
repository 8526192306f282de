//! The back office's SQL: blocks from found to frozen to confirmed or orphaned, the credits
//! of their PPLNS windows, balances, and payouts from intent to sent or failed. Every
//! change of a balance happens in one transaction with the row that explains it. The
//! decisions (and the node calls) are `accounting`'s; amounts cross the boundary as
//! [`Amount`] and are `bigint` satoshis in the tables.

use protocol::Amount;
use sqlx::Row;

use crate::store::{Store, StoreError};

/// A block whose PPLNS window is due to be frozen.
#[derive(Clone, Debug, PartialEq)]
pub struct DueBlock {
    /// Block hash.
    pub hash: String,
    /// When its share was accepted (unix microseconds): the end of its window.
    pub found_us: i64,
    /// The coinbase value.
    pub reward: Amount,
    /// The network difficulty it was found at.
    pub network_difficulty: f64,
}

/// What freezing a block's window writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Frozen {
    /// Work since the block before, in network difficulties.
    pub effort: f64,
    /// The difficulty the window asked for.
    pub window_difficulty: f64,
    /// The difficulty it held.
    pub window_filled: f64,
    /// What the pool keeps (fee and residue); `None` in SOLO mode.
    pub pool_amount: Option<Amount>,
    /// Per address: its difficulty in the window and its credit.
    pub credits: Vec<(String, f64, Amount)>,
}

/// A payout as written: its id, its wallet comment, and who gets how much.
#[derive(Clone, Debug, PartialEq)]
pub struct PayoutRow {
    /// Row id.
    pub id: i64,
    /// The unique comment `sendmany` carries, by which a restart finds it in the wallet.
    pub comment: String,
    /// Address and amount, by address.
    pub payments: Vec<(String, Amount)>,
}

/// Satoshis as the tables keep them.
pub fn sat_i64(amount: Amount) -> i64 {
    i64::try_from(amount.to_sat()).unwrap_or(i64::MAX)
}

/// Satoshis from the tables (negative: none).
pub fn sat_from_i64(sat: i64) -> Amount {
    Amount::from_sat(u64::try_from(sat).unwrap_or(0))
}

impl Store {
    /// Blocks found more than `delay_secs` ago whose windows are not frozen yet, oldest
    /// first.
    pub async fn due_for_freezing(&self, delay_secs: u64) -> Result<Vec<DueBlock>, StoreError> {
        let rows = sqlx::query(
            "SELECT hash, ts_to_micros(found_at) AS found, reward, network_difficulty
             FROM blocks
             WHERE frozen_at IS NULL AND found_at <= now() - make_interval(secs => $1)
             ORDER BY found_at",
        )
        .bind(delay_secs as f64)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DueBlock {
                    hash: row.try_get("hash")?,
                    found_us: row.try_get("found")?,
                    reward: sat_from_i64(row.try_get("reward")?),
                    network_difficulty: row.try_get("network_difficulty")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// When the block before the one found at `found_us` was found, if any.
    pub async fn found_before(&self, found_us: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT max(ts_to_micros(found_at)) FROM blocks WHERE found_at < micros_to_ts($1)",
        )
        .bind(found_us)
        .fetch_one(self.db())
        .await?)
    }

    /// Freezes `hash`'s window with its credits, in one transaction; false when another
    /// round froze it first.
    pub async fn freeze(&self, hash: &str, frozen: &Frozen) -> Result<bool, StoreError> {
        let mut tx = self.db().begin().await?;
        let done = sqlx::query(
            "UPDATE blocks SET frozen_at = now(), effort = $2, window_difficulty = $3,
                              window_filled = $4, pool_amount = $5
             WHERE hash = $1 AND frozen_at IS NULL",
        )
        .bind(hash)
        .bind(frozen.effort)
        .bind(frozen.window_difficulty)
        .bind(frozen.window_filled)
        .bind(frozen.pool_amount.map(sat_i64))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if !frozen.credits.is_empty() {
            let addresses: Vec<&str> = frozen.credits.iter().map(|(a, _, _)| a.as_str()).collect();
            sqlx::query(
                "INSERT INTO credits (block_hash, address, difficulty, amount)
                 SELECT $1, a, d, m FROM unnest($2::text[], $3::float8[], $4::bigint[]) AS x(a, d, m)",
            )
            .bind(hash)
            .bind(&addresses)
            .bind(frozen.credits.iter().map(|(_, d, _)| *d).collect::<Vec<_>>())
            .bind(frozen.credits.iter().map(|(_, _, m)| sat_i64(*m)).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Pending blocks whose windows are frozen: (hash, height), lowest first.
    pub async fn pending_blocks(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT hash, height FROM blocks
             WHERE status = 'pending' AND frozen_at IS NOT NULL ORDER BY height",
        )
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("hash")?, r.try_get("height")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Records a pending block's confirmations so far.
    pub async fn set_confirmations(&self, hash: &str, n: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE blocks SET confirmations = $2 WHERE hash = $1")
            .bind(hash)
            .bind(n)
            .execute(self.db())
            .await?;
        Ok(())
    }

    /// Marks a pending block orphaned (its credits are never paid); false when it was
    /// not pending.
    pub async fn orphan(&self, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE blocks SET status = 'orphaned', confirmations = 0, decided_at = now()
             WHERE hash = $1 AND status = 'pending'",
        )
        .bind(hash)
        .execute(self.db())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks a pending block confirmed and moves its credits into balances, in one
    /// transaction. The number of addresses credited, or `None` when it was not pending.
    pub async fn confirm(&self, hash: &str, confirmations: i64) -> Result<Option<u64>, StoreError> {
        let mut tx = self.db().begin().await?;
        let done = sqlx::query(
            "UPDATE blocks SET status = 'confirmed', confirmations = $2, decided_at = now()
             WHERE hash = $1 AND status = 'pending'",
        )
        .bind(hash)
        .bind(confirmations)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let credited = sqlx::query(
            "INSERT INTO balances (address, amount)
             SELECT address, amount FROM credits
             WHERE block_hash = $1 AND credited_at IS NULL AND amount > 0
               -- A coinbase-payout block's credits were paid by its coinbase.
               AND NOT EXISTS (SELECT 1 FROM coinbase_payouts p WHERE p.block_hash = $1)
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
        Ok(Some(credited.rows_affected()))
    }

    /// What each address's coinbase payouts still owe it: credit minus paid over every
    /// block not orphaned, where positive, by address.
    pub async fn carried_balances(&self) -> Result<Vec<(String, Amount)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT p.address, sum(p.credit - p.paid)::bigint
             FROM coinbase_payouts p JOIN blocks b ON b.hash = p.block_hash
             WHERE b.status <> 'orphaned'
             GROUP BY p.address HAVING sum(p.credit - p.paid) > 0 ORDER BY p.address",
        )
        .fetch_all(self.db())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(a, n)| (a, Amount::from_sat(u64::try_from(n).unwrap_or(0))))
            .collect())
    }

    /// [`Store::carried_balances`] and the newest `limit` coinbase-payout blocks they
    /// count (display hashes), read in one statement so that both see the same blocks.
    pub async fn carried_with_blocks(
        &self,
        limit: i64,
    ) -> Result<(Vec<(String, Amount)>, Vec<String>), StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "WITH counted AS (
                 SELECT hash, found_at FROM blocks
                 WHERE coinbase_pool IS NOT NULL AND status <> 'orphaned')
             (SELECT 'block', hash, 0::bigint FROM counted ORDER BY found_at DESC LIMIT $1)
             UNION ALL
             SELECT 'carried', p.address, sum(p.credit - p.paid)::bigint
             FROM coinbase_payouts p JOIN counted c ON c.hash = p.block_hash
             GROUP BY p.address HAVING sum(p.credit - p.paid) > 0",
        )
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        let mut carried = Vec::new();
        let mut blocks = Vec::new();
        for (kind, key, amount) in rows {
            if kind == "block" {
                blocks.push(key);
            } else {
                carried.push((key, Amount::from_sat(u64::try_from(amount).unwrap_or(0))));
            }
        }
        carried.sort();
        Ok((carried, blocks))
    }

    /// A coinbase-payout block's payouts: the pool's output and (address, difficulty,
    /// paid) per address; `None` for a block that paid the pool alone.
    pub async fn coinbase_payout_of(
        &self,
        hash: &str,
    ) -> Result<Option<(Amount, Vec<(String, f64, Amount)>)>, StoreError> {
        let pool: Option<Option<i64>> =
            sqlx::query_scalar("SELECT coinbase_pool FROM blocks WHERE hash = $1")
                .bind(hash)
                .fetch_optional(self.db())
                .await?;
        let Some(Some(pool)) = pool else {
            return Ok(None);
        };
        let rows: Vec<(String, f64, i64)> = sqlx::query_as(
            "SELECT address, difficulty, paid FROM coinbase_payouts
             WHERE block_hash = $1 ORDER BY paid DESC, address",
        )
        .bind(hash)
        .fetch_all(self.db())
        .await?;
        let sat = |n: i64| Amount::from_sat(u64::try_from(n).unwrap_or(0));
        Ok(Some((
            sat(pool),
            rows.into_iter().map(|(a, d, p)| (a, d, sat(p))).collect(),
        )))
    }

    /// Payouts written as intents and not known to be sent: (id, comment), oldest first.
    pub async fn open_intents(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT id, comment FROM payouts WHERE status = 'intent' ORDER BY id")
                .fetch_all(self.db())
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("comment")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The payments of payout `id`, by address.
    pub async fn payments_of(&self, id: i64) -> Result<Vec<(String, Amount)>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, amount FROM payments WHERE payout_id = $1 ORDER BY address",
        )
        .bind(id)
        .fetch_all(self.db())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("address")?, sat_from_i64(r.try_get("amount")?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// In one transaction: debits every balance of at least `threshold` (or the threshold
    /// the address set itself, [`crate::store::settings`]) and writes the
    /// payout intent (with `comment`) and its payments. `None` when nobody is due.
    pub async fn write_intent(
        &self,
        threshold: Amount,
        comment: &str,
    ) -> Result<Option<PayoutRow>, StoreError> {
        let mut tx = self.db().begin().await?;
        // An address's own threshold (signed by its key) over the pool's.
        let due = sqlx::query(
            "SELECT b.address, b.amount FROM balances b
               LEFT JOIN miner_settings s ON s.address = b.address
             WHERE b.amount >= coalesce(s.payment_threshold, $1) AND b.amount > 0
             ORDER BY b.address FOR UPDATE OF b",
        )
        .bind(sat_i64(threshold))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(None);
        }
        let payments: Vec<(String, Amount)> = due
            .iter()
            .map(|r| Ok((r.try_get("address")?, sat_from_i64(r.try_get("amount")?))))
            .collect::<Result<_, sqlx::Error>>()?;
        let id: i64 = sqlx::query_scalar("INSERT INTO payouts (comment) VALUES ($1) RETURNING id")
            .bind(comment)
            .fetch_one(&mut *tx)
            .await?;
        pay_from_balances(&mut tx, id, &payments).await?;
        tx.commit().await?;
        Ok(Some(PayoutRow {
            id,
            comment: comment.to_string(),
            payments,
        }))
    }

    /// Records that payout `id` went out as `txid`.
    pub async fn mark_sent(&self, id: i64, txid: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE payouts SET status = 'sent', txid = $2, sent_at = now()
             WHERE id = $1 AND status = 'intent'",
        )
        .bind(id)
        .bind(txid)
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Marks payout `id` failed (`why`) and gives its amounts back to the balances, in one
    /// transaction.
    pub async fn fail_payout(&self, id: i64, why: &str) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        let done = sqlx::query(
            "UPDATE payouts SET status = 'failed', error = $2 WHERE id = $1 AND status = 'intent'",
        )
        .bind(id)
        .bind(why)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            give_back(&mut tx, id).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Inside a payout's transaction: writes its `payments` and debits them from the balances.
pub(crate) async fn pay_from_balances(
    tx: &mut sqlx::PgConnection,
    id: i64,
    payments: &[(String, Amount)],
) -> Result<(), StoreError> {
    for (address, amount) in payments {
        sqlx::query("INSERT INTO payments (payout_id, address, amount) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(address)
            .bind(sat_i64(*amount))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE balances SET amount = amount - $2, paid = paid + $2, updated_at = now()
             WHERE address = $1",
        )
        .bind(address)
        .bind(sat_i64(*amount))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Inside a payout's transaction: gives its amounts back to the balances (it failed or
/// was cancelled, so nothing was paid).
pub(crate) async fn give_back(tx: &mut sqlx::PgConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE balances b SET amount = b.amount + p.amount, paid = b.paid - p.amount,
                               updated_at = now()
         FROM payments p WHERE p.payout_id = $1 AND p.address = b.address",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
