//! Payouts by hand: what an operator asks through the admin API, carried out by the
//! leader (the only process that talks to the wallet, so a request never races a payment
//! round). Any process queues the request in PostgreSQL ([`Store::request`]); the leader
//! picks it within a second, does it and writes back an HTTP status and body.
//!
//! - a round now: what the payment interval would do later (reconcile, then pay every
//!   balance over the threshold);
//! - retry a failed payout: the wallet refused it and its amounts went back to the
//!   balances; the same payments are written as a new intent (debiting the balances again,
//!   refused if a later round paid them meanwhile) and sent. Once per failure;
//! - cancel a payout in flight: an intent whose outcome is unknown (the node went away
//!   during `sendmany`). The wallet is asked first: if it holds a transaction with the
//!   payout's comment, the payout is recorded as sent and nothing is cancelled; if not,
//!   the payout is cancelled and its amounts go back to the balances.

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::accounting::payments::{Payer, new_comment};
use crate::accounting::tracker::TrackError;
use crate::store::payout_admin::{Action, PayoutListing, RetryRefused};
use crate::store::{Store, StoreError};

/// Requests one leader tick carries out at most (the rest wait for the next tick).
const PER_TICK: usize = 8;

/// Carries out the queued requests, oldest first. `payer` is `None` on a pool that does
/// not pay from a wallet: the requests are answered so.
pub async fn serve(store: &Store, payer: Option<&Payer>) -> Result<(), StoreError> {
    for _ in 0..PER_TICK {
        let Some((id, action)) = store.pick_request().await? else {
            return Ok(());
        };
        let (status, body) = match (action, payer) {
            (None, _) => (400, error(400, "unknown request")),
            (Some(_), None) => (
                409,
                error(
                    409,
                    "this pool sends no wallet payouts (payouts.payments is off, or \
                     payouts.method is \"coinbase\")",
                ),
            ),
            (Some(action), Some(payer)) => carry_out(payer, action).await,
        };
        info!(request = id, ?action, status, outcome = %body, "admin API: payout request done");
        store.finish_request(id, status, &body).await?;
    }
    Ok(())
}

/// Does `action`; the HTTP status and body to answer with.
pub async fn carry_out(payer: &Payer, action: Action) -> (u16, Value) {
    let outcome = match action {
        Action::Round => round(payer).await,
        Action::Retry(id) => retry(payer, id).await,
        Action::Cancel(id) => cancel(payer, id).await,
    };
    outcome.unwrap_or_else(|e| {
        warn!(error = %e, ?action, "admin API: payout request failed; nothing more was done");
        (
            503,
            error(
                503,
                &format!("the node or the database did not answer ({e}); see the payout list"),
            ),
        )
    })
}

async fn round(payer: &Payer) -> Result<(u16, Value), TrackError> {
    match payer.round().await? {
        None => Ok((
            200,
            json!({"payout": null, "note": "nobody is due: no balance reaches the threshold"}),
        )),
        Some(id) => Ok((200, json!({ "payout": listed(payer, id).await? }))),
    }
}

async fn retry(payer: &Payer, id: i64) -> Result<(u16, Value), TrackError> {
    let row = match payer.store.retry_intent(id, &new_comment()).await? {
        Ok(row) => row,
        Err(RetryRefused::Unknown) => return Ok((404, error(404, &format!("no payout {id}")))),
        Err(RetryRefused::NotFailed(status)) => {
            return Ok((
                409,
                error(
                    409,
                    &format!("payout {id} is {status}: only a failed payout is retried"),
                ),
            ));
        }
        Err(RetryRefused::Retried(later)) => {
            return Ok((
                409,
                error(409, &format!("payout {id} was retried already, as {later}")),
            ));
        }
        Err(RetryRefused::Short {
            address,
            balance,
            needed,
        }) => {
            return Ok((
                409,
                error(
                    409,
                    &format!(
                        "{address} has {balance} sat now, payout {id} would pay it {needed}: \
                         a later round paid it"
                    ),
                ),
            ));
        }
    };
    info!(
        failed = id,
        payout = row.id,
        "admin API: failed payout sent again"
    );
    let sent = payer.send(&row).await;
    let payout = listed(payer, row.id).await?;
    Ok(match sent {
        Ok(()) => (200, json!({ "retried": id, "payout": payout })),
        Err(e) => (
            502,
            json!({
                "error": format!("the wallet's answer was lost ({e}); the next round reconciles it"),
                "status": 502,
                "retried": id,
                "payout": payout,
            }),
        ),
    })
}

async fn cancel(payer: &Payer, id: i64) -> Result<(u16, Value), TrackError> {
    let Some(payout) = payer.store.payout(id).await? else {
        return Ok((404, error(404, &format!("no payout {id}"))));
    };
    if payout.status != "intent" {
        return Ok((
            409,
            error(
                409,
                &format!(
                    "payout {id} is {}: only a payout in flight (intent) is cancelled",
                    payout.status
                ),
            ),
        ));
    }
    // The wallet decides: a payout it sent is paid, whatever the table says.
    if let Some(txid) = payer.sent_with(&payout.comment).await? {
        payer.store.mark_sent(id, &txid).await?;
        info!(payout = id, %txid, "admin API: cancel refused, the wallet had sent it");
        return Ok((
            409,
            json!({
                "error": format!("payout {id} was sent by the wallet as {txid}; recorded, not cancelled"),
                "status": 409,
                "payout": listed(payer, id).await?,
            }),
        ));
    }
    if !payer.store.cancel_intent(id).await? {
        return Ok((409, error(409, &format!("payout {id} changed meanwhile"))));
    }
    info!(
        payout = id,
        "admin API: payout cancelled, amounts back to the balances"
    );
    Ok((200, json!({ "cancelled": listed(payer, id).await? })))
}

async fn listed(payer: &Payer, id: i64) -> Result<Value, TrackError> {
    Ok(payer
        .store
        .payout(id)
        .await?
        .map_or(Value::Null, |p| listing_json(&p)))
}

/// A payout as the admin API shows it.
pub fn listing_json(p: &PayoutListing) -> Value {
    let micros = crate::clock::iso8601_us;
    json!({
        "id": p.id,
        "status": p.status,
        "comment": p.comment,
        "txid": p.txid,
        "error": p.error,
        "created": micros(p.created_us),
        "settled": p.settled_us.map(micros),
        "retriedAs": p.retried_as,
        "amount": p.payments.iter().map(|(_, a)| a).sum::<i64>(),
        "payments": p.payments.iter()
            .map(|(address, amount)| json!({"address": address, "amount": amount}))
            .collect::<Vec<_>>(),
    })
}

fn error(status: u16, message: &str) -> Value {
    json!({ "error": message, "status": status })
}
