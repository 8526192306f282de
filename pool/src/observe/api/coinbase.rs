//! What the current job's coinbase pays (`payouts.method = "coinbase"`), so that a miner
//! can see what it gets before it mines: `GET /api/coinbase` (every output and the fee)
//! and `GET /api/coinbase/{address}` (its output now and the balance the pool carries
//! for it). Amounts in coins, as the rest of the API.

use axum::Json;
use axum::extract::{Path, State};
use protocol::Amount;
use serde_json::{Value, json};

use crate::config::PayoutMethod;
use crate::observe::api::{ApiError, ApiState, check_address};

/// Satoshis as coins.
pub(crate) fn coins(sat: u64) -> f64 {
    Amount::from_sat(sat).to_btc()
}

/// The current job's payout record; 404 when the pool pays from its wallet, 503 before
/// the first job.
fn current_payout(
    state: &ApiState,
) -> Result<(u64, std::sync::Arc<crate::chain::jobs::Payout>), ApiError> {
    if state.facts.method != PayoutMethod::Coinbase {
        return Err(ApiError::NotFound(
            "this pool pays from its wallet (payouts.method = \"wallet\"): coinbases pay the pool's address".into(),
        ));
    }
    let job = state.job.borrow().clone();
    let job =
        job.ok_or_else(|| ApiError::Unavailable("no job yet: the node has not answered".into()))?;
    let payout = job
        .payout
        .clone()
        .ok_or_else(|| ApiError::Unavailable("the current job has no payout record yet".into()))?;
    Ok((job.checked().height, payout))
}

/// `GET /api/coinbase`: the current job's outputs, the pool's output and every credit.
pub async fn current(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let (height, payout) = current_payout(&state)?;
    let mut paid: Vec<&crate::chain::jobs::PayoutRow> =
        payout.rows.iter().filter(|r| r.output.is_some()).collect();
    paid.sort_by_key(|r| r.output);
    let outputs: Vec<Value> = paid
        .iter()
        .map(|r| json!({"index": r.output, "address": r.address, "amount": coins(r.paid)}))
        .collect();
    let reward = payout.pool + payout.rows.iter().map(|r| r.paid).sum::<u64>();
    let credits: Vec<Value> = payout
        .rows
        .iter()
        .map(|r| {
            json!({
                "address": r.address,
                "difficulty": r.difficulty,
                "credit": coins(r.credit),
                "paid": coins(r.paid),
            })
        })
        .collect();
    Ok(Json(json!({
        "height": height,
        "reward": coins(reward),
        "feePercent": state.facts.fee_percent,
        "outputs": outputs,
        "pool": {
            "index": paid.len(),
            "address": state.facts.pool_address,
            "amount": coins(payout.pool),
        },
        "credits": credits,
    })))
}

/// `GET /api/coinbase/{address}`: the address's output in the current job (null when it
/// has none: nothing owed, or carried), its credit there, and what the pool carries for
/// it now (from PostgreSQL: blocks found so far, orphans excluded).
pub async fn of_address(
    State(state): State<ApiState>,
    Path(text): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_address(&state, &text)?;
    let (height, payout) = current_payout(&state)?;
    let row = payout.rows.iter().find(|r| r.address == text);
    let carried = match &state.store {
        Some(store) => store
            .carried_balances()
            .await?
            .into_iter()
            .find(|(a, _)| *a == text)
            .map_or(0, |(_, n)| n.to_sat()),
        None => 0,
    };
    Ok(Json(json!({
        "address": text,
        "height": height,
        "output": row.and_then(|r| r.output.map(|i| json!({"index": i, "amount": coins(r.paid)}))),
        "credit": coins(row.map_or(0, |r| r.credit)),
        "carried": coins(carried),
    })))
}
