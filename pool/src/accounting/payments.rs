//! Payments through the node wallet (the leader runs them), safe across crashes.
//!
//! 1. Intent: in one transaction, every balance at or above the threshold is debited and a
//!    `payouts` row (status `intent`, a unique comment) with its `payments` is written.
//! 2. Send: `sendmany` with that comment; the txid is recorded (`sent`).
//! 3. Reconcile, before every round and so at every start: an intent without a txid is
//!    looked up in the wallet by its comment. Found: it was sent, the txid is recorded.
//!    Not found: it was never sent, and is sent now.
//!
//! A crash anywhere leaves either an intent (reconciled) or a recorded payment: no one is
//! paid twice and no balance disappears. A send the node refuses outright (not enough
//! funds yet, a bad address) is marked `failed` and its amounts go back to the balances.
//! Payments use the first configured node's wallet.

use serde_json::{Map, Value, json};
use sqlx::Row;
use tracing::{error, info, warn};

use crate::accounting::tracker::TrackError;
use crate::chain::node::{Node, NodeError};
use crate::store::Store;

/// Where a test may make the process die on purpose (`POOL_CRASH_AT=<point>`), to prove
/// that a restart finishes the job: `after-payout-intent`, `after-payout-send`.
fn crash_point(point: &str) {
    if std::env::var("POOL_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("POOL_CRASH_AT={point}: aborting on purpose");
        std::process::abort();
    }
}

/// How many recent wallet transactions are searched for an intent's comment.
const WALLET_LOOKBACK: u64 = 10_000;

/// Pays balances.
#[derive(Clone, Debug)]
pub struct Payer {
    /// The database.
    pub store: Store,
    /// The node whose wallet pays.
    pub wallet: Node,
    /// Least balance paid.
    pub threshold: u64,
}

/// One payout as sent to the wallet.
#[derive(Debug)]
struct Payout {
    id: i64,
    comment: String,
    payments: Vec<(String, i64)>,
}

impl Payer {
    /// Reconciles open intents, then pays every balance over the threshold.
    pub async fn round(&self) -> Result<(), TrackError> {
        self.reconcile().await?;
        if let Some(payout) = self.intend().await? {
            crash_point("after-payout-intent");
            self.send(&payout).await?;
        }
        Ok(())
    }

    /// Settles intents left by an earlier round or process.
    pub async fn reconcile(&self) -> Result<(), TrackError> {
        let open =
            sqlx::query("SELECT id, comment FROM payouts WHERE status = 'intent' ORDER BY id")
                .fetch_all(self.store.db())
                .await?;
        if open.is_empty() {
            return Ok(());
        }
        let history = self
            .wallet
            .call("listtransactions", json!(["*", WALLET_LOOKBACK, 0]))
            .await?;
        for row in open {
            let id: i64 = row.try_get("id")?;
            let comment: String = row.try_get("comment")?;
            let sent = history.as_array().and_then(|txs| {
                txs.iter().find_map(|tx| {
                    (tx.get("comment").and_then(Value::as_str) == Some(comment.as_str()))
                        .then(|| tx.get("txid").and_then(Value::as_str))
                        .flatten()
                })
            });
            match sent {
                Some(txid) => {
                    info!(
                        payout = id,
                        txid, "payout found in the wallet: it was sent before a restart"
                    );
                    self.mark_sent(id, txid).await?;
                }
                None => {
                    let payments = self.payments_of(id).await?;
                    info!(
                        payout = id,
                        "payout intent never reached the wallet: sending it now"
                    );
                    self.send(&Payout {
                        id,
                        comment,
                        payments,
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn payments_of(&self, id: i64) -> Result<Vec<(String, i64)>, TrackError> {
        let rows = sqlx::query(
            "SELECT address, amount FROM payments WHERE payout_id = $1 ORDER BY address",
        )
        .bind(id)
        .fetch_all(self.store.db())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("amount")?)))
            .collect()
    }

    /// Debits the balances due and writes the intent; None when nobody is due.
    async fn intend(&self) -> Result<Option<Payout>, TrackError> {
        let mut tx = self.store.db().begin().await?;
        let due = sqlx::query(
            "SELECT address, amount FROM balances WHERE amount >= $1 ORDER BY address FOR UPDATE",
        )
        .bind(i64::try_from(self.threshold).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(None);
        }
        let payments: Vec<(String, i64)> = due
            .iter()
            .map(|r| Ok((r.try_get("address")?, r.try_get("amount")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let comment = format!("sha256d-pool payout {:016x}", unique_token());
        let id: i64 = sqlx::query_scalar("INSERT INTO payouts (comment) VALUES ($1) RETURNING id")
            .bind(&comment)
            .fetch_one(&mut *tx)
            .await?;
        for (address, amount) in &payments {
            sqlx::query("INSERT INTO payments (payout_id, address, amount) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(address)
                .bind(amount)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE balances SET amount = amount - $2, paid = paid + $2, updated_at = now()
                 WHERE address = $1",
            )
            .bind(address)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(Payout {
            id,
            comment,
            payments,
        }))
    }

    async fn send(&self, payout: &Payout) -> Result<(), TrackError> {
        let mut amounts = Map::new();
        for (address, amount) in &payout.payments {
            amounts.insert(address.clone(), json!(*amount as f64 / 1e8));
        }
        let total: i64 = payout.payments.iter().map(|(_, a)| a).sum();
        match self
            .wallet
            .call("sendmany", json!(["", amounts, 1, payout.comment]))
            .await
        {
            Ok(Value::String(txid)) => {
                crash_point("after-payout-send");
                info!(payout = payout.id, %txid, miners = payout.payments.len(), total, "payout sent");
                self.mark_sent(payout.id, &txid).await
            }
            Ok(other) => Err(TrackError::Reply {
                method: "sendmany",
                reply: other.to_string(),
            }),
            Err(NodeError::Rpc { code, message, .. }) => {
                // The wallet refused: nothing was sent. Give the amounts back.
                error!(payout = payout.id, code, %message, total, "the wallet refused the payout; balances restored");
                self.fail(payout.id, &format!("{message} (code {code})"))
                    .await
            }
            Err(e) => {
                // Unknown whether it went out: the intent stays and is reconciled later.
                warn!(payout = payout.id, error = %e, "payout outcome unknown; reconciled next round");
                Err(e.into())
            }
        }
    }

    async fn mark_sent(&self, id: i64, txid: &str) -> Result<(), TrackError> {
        sqlx::query(
            "UPDATE payouts SET status = 'sent', txid = $2, sent_at = now()
             WHERE id = $1 AND status = 'intent'",
        )
        .bind(id)
        .bind(txid)
        .execute(self.store.db())
        .await?;
        Ok(())
    }

    async fn fail(&self, id: i64, why: &str) -> Result<(), TrackError> {
        let mut tx = self.store.db().begin().await?;
        let done = sqlx::query(
            "UPDATE payouts SET status = 'failed', error = $2 WHERE id = $1 AND status = 'intent'",
        )
        .bind(id)
        .bind(why)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            sqlx::query(
                "UPDATE balances b SET amount = b.amount + p.amount, paid = b.paid - p.amount,
                                       updated_at = now()
                 FROM payments p WHERE p.payout_id = $1 AND p.address = b.address",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// 64 bits that differ between payouts, processes and databases sharing one wallet.
fn unique_token() -> u64 {
    crate::clock::random_u64()
}
