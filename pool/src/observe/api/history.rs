//! The rest of Miningcore's account history, which its web UIs call:
//!
//! - `/api/pools/{id}/miners/{address}/balancechanges`: credits of confirmed blocks in,
//!   payments out (`{poolId, address, amount, usage, created}`);
//! - `/api/pools/{id}/miners/{address}/earnings/daily`: payments summed per UTC day
//!   (`{amount, date}`; Miningcore's "daily earnings" are its payments too);
//! - the paged `/api/v2/` forms of those two and of blocks, payments and a miner's
//!   payments: `{"success": true, "result": [...], "pageCount": n}`.
//!
//! `pageCount` is the number of pages (the count over the page size, rounded up), so the
//! last page is `pageCount - 1`. Miningcore rounds down, which hides a last partial page.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use crate::observe::api::miningcore::{block_rows, check_id, payment_rows, store};
use crate::observe::api::time::iso8601_us;
use crate::observe::api::{ApiError, ApiState, Page, check_address};

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Json<Value>, ApiError>;

fn coins(sats: i64) -> f64 {
    sats as f64 / 100_000_000.0
}

/// Miningcore's paged envelope.
fn paged(rows: Vec<Value>, count: i64, page: Page) -> Json<Value> {
    let pages = (count.max(0) + page.limit - 1) / page.limit;
    Json(json!({"success": true, "result": rows, "pageCount": pages}))
}

async fn change_rows(state: &ApiState, address: &str, page: Page) -> Result<Vec<Value>, ApiError> {
    let rows = store(state)?
        .balance_changes(address, page.offset, page.limit)
        .await?;
    Ok(rows
        .iter()
        .map(|c| {
            json!({
                "poolId": state.facts.id,
                "address": address,
                "amount": coins(c.amount),
                "usage": c.usage,
                "created": iso8601_us(c.time_us),
            })
        })
        .collect())
}

async fn day_rows(state: &ApiState, address: &str, page: Page) -> Result<Vec<Value>, ApiError> {
    let rows = store(state)?
        .earnings_by_day(address, page.offset, page.limit)
        .await?;
    Ok(rows
        .iter()
        .map(|d| json!({"amount": coins(d.amount), "date": iso8601_us(d.day_us)}))
        .collect())
}

/// The pool id and address of a miner's path, checked; and the page asked for.
fn miner_page(
    state: &ApiState,
    id: &str,
    address: &str,
    q: &HashMap<String, String>,
) -> Result<Page, ApiError> {
    check_id(state, id)?;
    check_address(state, address)?;
    Page::from_query(q)
}

/// `GET /api/pools/{id}/miners/{address}/balancechanges?page=0&pageSize=15`.
pub async fn balance_changes(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let page = miner_page(&state, &id, &address, &q)?;
    Ok(Json(Value::Array(
        change_rows(&state, &address, page).await?,
    )))
}

/// `GET /api/pools/{id}/miners/{address}/earnings/daily?page=0&pageSize=15`.
pub async fn earnings_daily(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let page = miner_page(&state, &id, &address, &q)?;
    Ok(Json(Value::Array(day_rows(&state, &address, page).await?)))
}

/// `GET /api/v2/pools/{id}/blocks`.
pub async fn blocks_v2(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    let page = Page::from_query(&q)?;
    let rows = block_rows(&state, page).await?;
    let count = store(&state)?.blocks_count().await?;
    Ok(paged(rows, count, page))
}

/// `GET /api/v2/pools/{id}/payments`.
pub async fn payments_v2(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    let page = Page::from_query(&q)?;
    let rows = payment_rows(&state, None, page).await?;
    let count = store(&state)?.payments_count(None).await?;
    Ok(paged(rows, count, page))
}

/// `GET /api/v2/pools/{id}/miners/{address}/payments`.
pub async fn miner_payments_v2(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let page = miner_page(&state, &id, &address, &q)?;
    let rows = payment_rows(&state, Some(&address), page).await?;
    let count = store(&state)?.payments_count(Some(&address)).await?;
    Ok(paged(rows, count, page))
}

/// `GET /api/v2/pools/{id}/miners/{address}/balancechanges`.
pub async fn balance_changes_v2(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let page = miner_page(&state, &id, &address, &q)?;
    let rows = change_rows(&state, &address, page).await?;
    let count = store(&state)?.balance_changes_count(&address).await?;
    Ok(paged(rows, count, page))
}

/// `GET /api/v2/pools/{id}/miners/{address}/earnings/daily`.
pub async fn earnings_daily_v2(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    let page = miner_page(&state, &id, &address, &q)?;
    let rows = day_rows(&state, &address, page).await?;
    let count = store(&state)?.earnings_days(&address).await?;
    Ok(paged(rows, count, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_count_rounds_up() {
        let page = |limit| Page { offset: 0, limit };
        let count = |n, limit| paged(Vec::new(), n, page(limit)).0["pageCount"].clone();
        assert_eq!(count(0, 15), json!(0));
        assert_eq!(count(15, 15), json!(1));
        assert_eq!(count(16, 15), json!(2));
        assert_eq!(count(1, 1), json!(1));
    }
}
