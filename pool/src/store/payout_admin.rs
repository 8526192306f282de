//! The SQL behind the admin API's payout actions: listing payouts with their payments,
//! sending a failed payout again, cancelling one that never reached the wallet, and the
//! queue of requests that any process writes and the leader carries out (only the leader
//! talks to the wallet, so two processes never act on one payout at once).
//!
//! The decisions (and the wallet calls) are `accounting::payments`'; every change of a
//! balance here is in one transaction with the payout row that explains it, as in
//! [`crate::store::books`].

use serde_json::Value;
use sqlx::Row;

use crate::store::books::{PayoutRow, give_back, pay_from_balances, sat_from_i64};
use crate::store::{Store, StoreError};

/// One payout as the admin API lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct PayoutListing {
    /// Its id.
    pub id: i64,
    /// `intent` (in flight), `sent`, `failed` or `cancelled`.
    pub status: String,
    /// The wallet comment that identifies it.
    pub comment: String,
    /// The transaction, once sent.
    pub txid: Option<String>,
    /// Why the wallet refused it.
    pub error: Option<String>,
    /// When it was written (unix microseconds).
    pub created_us: i64,
    /// When it was sent or cancelled.
    pub settled_us: Option<i64>,
    /// The payout that sent a failed one again.
    pub retried_as: Option<i64>,
    /// Who gets how much, satoshis, by address.
    pub payments: Vec<(String, i64)>,
}

/// Why a failed payout cannot be sent again.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryRefused {
    /// No payout has that id.
    Unknown,
    /// Only a failed payout is retried; this one is in another state.
    NotFailed(String),
    /// It was retried already, as this payout.
    Retried(i64),
    /// A balance no longer holds what the payout would pay (a later round paid it).
    Short {
        /// The address.
        address: String,
        /// Its balance now.
        balance: i64,
        /// What the payout pays it.
        needed: i64,
    },
}

/// What a leader is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A payment round now.
    Round,
    /// Send a failed payout again.
    Retry(i64),
    /// Cancel a payout in flight that the wallet never saw.
    Cancel(i64),
}

impl Action {
    fn columns(self) -> (&'static str, Option<i64>) {
        match self {
            Action::Round => ("round", None),
            Action::Retry(id) => ("retry", Some(id)),
            Action::Cancel(id) => ("cancel", Some(id)),
        }
    }

    fn from_columns(action: &str, payout: Option<i64>) -> Option<Action> {
        match (action, payout) {
            ("round", _) => Some(Action::Round),
            ("retry", Some(id)) => Some(Action::Retry(id)),
            ("cancel", Some(id)) => Some(Action::Cancel(id)),
            _ => None,
        }
    }
}

/// A request's state as its asker sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestState {
    /// Not picked by a leader yet.
    Queued,
    /// A leader is on it.
    Picked,
    /// Done: the HTTP status and body to answer with.
    Done(u16, Value),
}

impl Store {
    /// Payouts, newest first, `status` ones only when given, at most `limit`.
    pub async fn payouts_listing(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PayoutListing>, StoreError> {
        self.listing(status, None, limit).await
    }

    /// One payout, as listed.
    pub async fn payout(&self, id: i64) -> Result<Option<PayoutListing>, StoreError> {
        Ok(self.listing(None, Some(id), 1).await?.pop())
    }

    async fn listing(
        &self,
        status: Option<&str>,
        id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<PayoutListing>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, status::text AS status, comment, txid, error,
                    ts_to_micros(created_at) AS created_us,
                    ts_to_micros(coalesce(sent_at, cancelled_at)) AS settled_us, retried_as
             FROM payouts
             WHERE ($1::text IS NULL OR status::text = $1) AND ($2::bigint IS NULL OR id = $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(status)
        .bind(id)
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(PayoutListing {
                id: r.try_get("id")?,
                status: r.try_get("status")?,
                comment: r.try_get("comment")?,
                txid: r.try_get("txid")?,
                error: r.try_get("error")?,
                created_us: r.try_get("created_us")?,
                settled_us: r.try_get("settled_us")?,
                retried_as: r.try_get("retried_as")?,
                payments: Vec::new(),
            });
        }
        let ids: Vec<i64> = out.iter().map(|p| p.id).collect();
        let payments = sqlx::query(
            "SELECT payout_id, address, amount FROM payments
             WHERE payout_id = ANY($1) ORDER BY payout_id, address",
        )
        .bind(&ids)
        .fetch_all(self.db())
        .await?;
        for r in &payments {
            let id: i64 = r.try_get("payout_id")?;
            if let Some(p) = out.iter_mut().find(|p| p.id == id) {
                p.payments
                    .push((r.try_get("address")?, r.try_get("amount")?));
            }
        }
        Ok(out)
    }

    /// In one transaction: a new payout intent (`comment`) paying exactly what failed
    /// payout `id` would have paid, debiting the balances again, and the failed one marked
    /// as retried by it.
    pub async fn retry_intent(
        &self,
        id: i64,
        comment: &str,
    ) -> Result<Result<PayoutRow, RetryRefused>, StoreError> {
        let mut tx = self.db().begin().await?;
        let row = sqlx::query(
            "SELECT status::text AS status, retried_as FROM payouts WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(RetryRefused::Unknown));
        };
        let status: String = row.try_get("status")?;
        if let Some(later) = row.try_get::<Option<i64>, _>("retried_as")? {
            return Ok(Err(RetryRefused::Retried(later)));
        }
        if status != "failed" {
            return Ok(Err(RetryRefused::NotFailed(status)));
        }
        // The balances are locked first, so no round debits them between the check and
        // the debit.
        sqlx::query(
            "SELECT 1 FROM balances WHERE address IN
               (SELECT address FROM payments WHERE payout_id = $1) FOR UPDATE",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let due = sqlx::query(
            "SELECT p.address, p.amount, coalesce(b.amount, 0) AS balance
             FROM payments p LEFT JOIN balances b ON b.address = p.address
             WHERE p.payout_id = $1 ORDER BY p.address",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut payments = Vec::with_capacity(due.len());
        for r in &due {
            let (address, amount, balance): (String, i64, i64) = (
                r.try_get("address")?,
                r.try_get("amount")?,
                r.try_get("balance")?,
            );
            if balance < amount {
                return Ok(Err(RetryRefused::Short {
                    address,
                    balance,
                    needed: amount,
                }));
            }
            payments.push((address, sat_from_i64(amount)));
        }
        let new_id: i64 =
            sqlx::query_scalar("INSERT INTO payouts (comment) VALUES ($1) RETURNING id")
                .bind(comment)
                .fetch_one(&mut *tx)
                .await?;
        pay_from_balances(&mut tx, new_id, &payments).await?;
        sqlx::query("UPDATE payouts SET retried_as = $2 WHERE id = $1")
            .bind(id)
            .bind(new_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(PayoutRow {
            id: new_id,
            comment: comment.to_string(),
            payments,
        }))
    }

    /// In one transaction: payout `id`, still an intent, marked cancelled and its amounts
    /// given back to the balances. False when it is not an intent (nothing changes). The
    /// caller has made sure the wallet never sent it.
    pub async fn cancel_intent(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.db().begin().await?;
        let done = sqlx::query(
            "UPDATE payouts SET status = 'cancelled', cancelled_at = now()
             WHERE id = $1 AND status = 'intent'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        give_back(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Queues `action` for the leader; its request id.
    pub async fn request(&self, action: Action) -> Result<i64, StoreError> {
        let (name, payout) = action.columns();
        Ok(sqlx::query_scalar(
            "INSERT INTO admin_requests (action, payout_id) VALUES ($1, $2) RETURNING id",
        )
        .bind(name)
        .bind(payout)
        .fetch_one(self.db())
        .await?)
    }

    /// The oldest request not picked yet, now picked (by the leader).
    pub async fn pick_request(&self) -> Result<Option<(i64, Option<Action>)>, StoreError> {
        let row = sqlx::query(
            "UPDATE admin_requests SET picked_at = now()
             WHERE id = (SELECT id FROM admin_requests WHERE picked_at IS NULL
                         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING id, action, payout_id",
        )
        .fetch_optional(self.db())
        .await?;
        row.map(|r| {
            let action: String = r.try_get("action")?;
            Ok((
                r.try_get("id")?,
                Action::from_columns(&action, r.try_get("payout_id")?),
            ))
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Writes request `id`'s outcome.
    pub async fn finish_request(
        &self,
        id: i64,
        status: u16,
        outcome: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE admin_requests SET done_at = now(), status = $2, outcome = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(i32::from(status))
        .bind(outcome.to_string())
        .execute(self.db())
        .await?;
        Ok(())
    }

    /// Where request `id` stands.
    pub async fn request_state(&self, id: i64) -> Result<RequestState, StoreError> {
        let row = sqlx::query(
            "SELECT picked_at IS NOT NULL AS picked, status, outcome
             FROM admin_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db())
        .await?;
        let Some(r) = row else {
            return Ok(RequestState::Queued);
        };
        let status: Option<i32> = r.try_get("status")?;
        let outcome: Option<Value> = r
            .try_get::<Option<String>, _>("outcome")?
            .map(|o| serde_json::from_str(&o).unwrap_or(Value::String(o)));
        Ok(match (status, outcome) {
            (Some(s), Some(o)) => RequestState::Done(u16::try_from(s).unwrap_or(500), o),
            _ if r.try_get::<bool, _>("picked")? => RequestState::Picked,
            _ => RequestState::Queued,
        })
    }

    /// Takes back request `id` if no leader has picked it; true when it was taken back.
    pub async fn withdraw_request(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM admin_requests WHERE id = $1 AND picked_at IS NULL")
            .bind(id)
            .execute(self.db())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
