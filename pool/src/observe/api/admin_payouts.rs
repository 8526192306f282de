//! `/api/admin/payouts`: wallet payouts by hand, behind the admin token.
//!
//! - `GET /api/admin/payouts?status=intent|sent|failed|cancelled&limit=50`: newest first,
//!   each with its payments, error, txid and the payout that retried it;
//! - `POST /api/admin/payouts/round`: a payment round now;
//! - `POST /api/admin/payouts/{id}/retry`: send a failed payout again;
//! - `POST /api/admin/payouts/{id}/cancel`: cancel a payout in flight that the wallet
//!   never sent.
//!
//! The actions are carried out by the leader ([`crate::accounting::payout_admin`]): this
//! process queues the request in PostgreSQL and answers with the leader's outcome. A
//! request no leader picks within [`PICK_WAIT`] is taken back, so nothing happens later
//! behind the operator's back.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::accounting::payout_admin::listing_json;
use crate::config::{Mode, PayoutMethod};
use crate::observe::api::ApiState;
use crate::observe::api::admin::{Refused, authorized};
use crate::store::Store;
use crate::store::payout_admin::{Action, RequestState};

/// How long a request may wait for a leader to pick it (the leader looks every second).
pub const PICK_WAIT: Duration = Duration::from_secs(10);

/// How long a picked request may run (a round sends one `sendmany`).
const RUN_WAIT: Duration = Duration::from_secs(120);

/// Most payouts one listing returns.
const LIST_MAX: i64 = 1000;

/// `GET /api/admin/payouts`.
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Refused> {
    authorized(&state, &headers)?;
    let store = store(&state)?;
    let status = match q.get("status").map(String::as_str) {
        None => None,
        Some(s @ ("intent" | "sent" | "failed" | "cancelled")) => Some(s),
        Some(s) => {
            return Err(Refused::BadRequest(format!(
                "status must be intent, sent, failed or cancelled, not {s:?}"
            )));
        }
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| (1..=LIST_MAX).contains(l))
            .ok_or_else(|| {
                Refused::BadRequest(format!("limit must be 1 to {LIST_MAX}, not {l:?}"))
            })?,
    };
    let payouts: Vec<Value> = store
        .payouts_listing(status, limit)
        .await?
        .iter()
        .map(listing_json)
        .collect();
    Ok(Json(json!({ "payouts": payouts })))
}

/// `POST /api/admin/payouts/round`.
pub async fn round(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    act(&state, &headers, Action::Round).await
}

/// `POST /api/admin/payouts/{id}/retry`.
pub async fn retry(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match payout_id(&id) {
        Ok(id) => act(&state, &headers, Action::Retry(id)).await,
        Err(refused) => refused.into_response(),
    }
}

/// `POST /api/admin/payouts/{id}/cancel`.
pub async fn cancel(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match payout_id(&id) {
        Ok(id) => act(&state, &headers, Action::Cancel(id)).await,
        Err(refused) => refused.into_response(),
    }
}

fn payout_id(id: &str) -> Result<i64, Refused> {
    id.parse()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Refused::BadRequest(format!("{id:?} is not a payout id")))
}

fn store(state: &ApiState) -> Result<&Store, Refused> {
    state
        .store
        .as_ref()
        .ok_or_else(|| Refused::Unavailable("payouts need the pool's database".into()))
}

/// Queues `action` for the leader and answers with its outcome.
async fn act(state: &ApiState, headers: &HeaderMap, action: Action) -> Response {
    match ask(state, headers, action).await {
        Ok((status, body)) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn ask(
    state: &ApiState,
    headers: &HeaderMap,
    action: Action,
) -> Result<(u16, Value), Refused> {
    authorized(state, headers)?;
    let facts = &state.facts;
    if facts.mode != Mode::Pplns || facts.method != PayoutMethod::Wallet || !facts.payments {
        return Ok((
            409,
            json!({
                "error": "this pool sends no wallet payouts (PPLNS with payouts.payments on \
                          and payouts.method = \"wallet\" does)",
                "status": 409,
            }),
        ));
    }
    let store = store(state)?;
    let id = store.request(action).await?;
    let asked = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match store.request_state(id).await? {
            RequestState::Done(status, body) => return Ok((status, body)),
            RequestState::Queued if asked.elapsed() >= PICK_WAIT => {
                if store.withdraw_request(id).await? {
                    return Err(Refused::Unavailable(
                        "no pool process is leading right now (the leader holds the \
                         database's lock); nothing was done"
                            .into(),
                    ));
                }
            }
            RequestState::Picked if asked.elapsed() >= RUN_WAIT => {
                return Ok((
                    504,
                    json!({
                        "error": "the leader is still on it; see GET /api/admin/payouts",
                        "status": 504,
                        "request": id,
                    }),
                ));
            }
            RequestState::Queued | RequestState::Picked => {}
        }
    }
}
