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

use protocol::Amount;
use serde_json::{Map, Value, json};
use tracing::{error, info, warn};

use crate::accounting::tracker::TrackError;
use crate::chain::node::{Node, NodeError};
use crate::observe::notify::{Note, Notifier};
use crate::store::Store;
use crate::store::books::PayoutRow;

/// Where a test may make the process die on purpose (`POOL_CRASH_AT=<point>`), to prove
/// that a restart finishes the job: `after-payout-intent`, `after-payout-send`. Compiled
/// in only with the `crash-points` feature, which only the pool's tests enable.
#[cfg(feature = "crash-points")]
fn crash_point(point: &str) {
    if std::env::var("POOL_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("POOL_CRASH_AT={point}: aborting on purpose");
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_point: &str) {}

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
    pub threshold: Amount,
    /// Where payments are told.
    pub notify: Notifier,
}

impl Payer {
    /// Reconciles open intents, then pays every balance over the threshold. The payout
    /// written, if anyone was due.
    pub async fn round(&self) -> Result<Option<i64>, TrackError> {
        self.reconcile().await?;
        let Some(payout) = self
            .store
            .write_intent(self.threshold, &new_comment())
            .await?
        else {
            return Ok(None);
        };
        crash_point("after-payout-intent");
        self.send(&payout).await?;
        Ok(Some(payout.id))
    }

    /// The txid of the wallet transaction carrying `comment`, if the wallet sent one.
    pub async fn sent_with(&self, comment: &str) -> Result<Option<String>, TrackError> {
        Ok(find_comment(&self.wallet_history().await?, comment))
    }

    async fn wallet_history(&self) -> Result<Value, TrackError> {
        Ok(self
            .wallet
            .call("listtransactions", json!(["*", WALLET_LOOKBACK, 0]))
            .await?)
    }

    /// Settles intents left by an earlier round or process.
    pub async fn reconcile(&self) -> Result<(), TrackError> {
        let open = self.store.open_intents().await?;
        if open.is_empty() {
            return Ok(());
        }
        let history = self.wallet_history().await?;
        for (id, comment) in open {
            match find_comment(&history, &comment) {
                Some(txid) => {
                    info!(
                        payout = id,
                        txid, "payout found in the wallet: it was sent before a restart"
                    );
                    self.store.mark_sent(id, &txid).await?;
                }
                None => {
                    let payments = self.store.payments_of(id).await?;
                    info!(
                        payout = id,
                        "payout intent never reached the wallet: sending it now"
                    );
                    self.send(&PayoutRow {
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

    /// Sends an intent with `sendmany`: recorded as sent, or failed (amounts back to the
    /// balances) when the wallet refuses; an error when the outcome is unknown (the
    /// intent stays and the next round reconciles it).
    pub async fn send(&self, payout: &PayoutRow) -> Result<(), TrackError> {
        let mut amounts = Map::new();
        for (address, amount) in &payout.payments {
            amounts.insert(address.clone(), json!(amount.to_btc()));
        }
        let total: u64 = payout.payments.iter().map(|(_, a)| a.to_sat()).sum();
        match self
            .wallet
            .call("sendmany", json!(["", amounts, 1, payout.comment]))
            .await
        {
            Ok(Value::String(txid)) => {
                crash_point("after-payout-send");
                info!(payout = payout.id, %txid, miners = payout.payments.len(), total, "payout sent");
                self.notify.send(Note::PaymentSent {
                    txid: txid.clone(),
                    total,
                    miners: payout.payments.len(),
                });
                Ok(self.store.mark_sent(payout.id, &txid).await?)
            }
            Ok(other) => Err(TrackError::Reply {
                method: "sendmany",
                reply: other.to_string(),
            }),
            Err(NodeError::Rpc { code, message, .. }) => {
                // The wallet refused: nothing was sent. Give the amounts back.
                error!(payout = payout.id, code, %message, total, "the wallet refused the payout; balances restored");
                Ok(self
                    .store
                    .fail_payout(payout.id, &format!("{message} (code {code})"))
                    .await?)
            }
            Err(e) => {
                // Unknown whether it went out: the intent stays and is reconciled later.
                warn!(payout = payout.id, error = %e, "payout outcome unknown; reconciled next round");
                Err(e.into())
            }
        }
    }
}

/// A payout's wallet comment: 64 bits that differ between payouts, processes and
/// databases sharing one wallet.
pub fn new_comment() -> String {
    format!("sha256d-pool payout {:016x}", crate::clock::random_u64())
}

/// The txid of the transaction in `listtransactions`' answer that carries `comment`.
fn find_comment(history: &Value, comment: &str) -> Option<String> {
    history.as_array()?.iter().find_map(|tx| {
        (tx.get("comment").and_then(Value::as_str) == Some(comment))
            .then(|| tx.get("txid").and_then(Value::as_str).map(str::to_string))
            .flatten()
    })
}
