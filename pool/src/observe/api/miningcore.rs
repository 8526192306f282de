//! The JSON endpoints, in Miningcore's shapes and field names (camelCase, amounts in
//! coins, times in ISO 8601), with a few additions a Bitcoin pool needs (job age, best
//! share, per-status block counts). docs/api.md has an example of every response.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::time::{iso8601, iso8601_us, now};
use super::{ApiError, ApiState, Page, check_address};
use crate::config::Mode;
use crate::observe::best::{Best, Scope};
use crate::observe::live::{LiveSnapshot, WorkerLive};
use crate::store::Store;
use crate::store::reads::Interval;

type Params = Query<HashMap<String, String>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// Satoshis per coin.
const COIN: f64 = 100_000_000.0;

fn coins(sats: i64) -> f64 {
    sats as f64 / COIN
}

/// The coin's symbol and name: Bitcoin Cash on its networks, else Bitcoin.
pub fn coin(network: protocol::address::Network) -> (&'static str, &'static str) {
    if network.cashaddr_prefix().is_some() {
        ("BCH", "Bitcoin Cash")
    } else {
        ("BTC", "Bitcoin")
    }
}

/// Expected network hashrate: a block every ten minutes at this difficulty.
fn network_hashrate(difficulty: f64) -> f64 {
    protocol::target::hashrate(difficulty, 600.0)
}

pub(crate) fn check_id(state: &ApiState, id: &str) -> Result<(), ApiError> {
    if id == state.facts.id {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "no pool {id:?}; this server runs {:?}",
            state.facts.id
        )))
    }
}

pub(crate) fn store(state: &ApiState) -> Result<&Store, ApiError> {
    state.store.as_ref().ok_or_else(|| {
        ApiError::Unavailable(
            "no database is configured (database.url): history, blocks and payments need one"
                .into(),
        )
    })
}

/// `r` (range: hour, day, week, month; default day) and `i` (interval: minute, hour, day;
/// default hour), as Miningcore's performance endpoints take them.
fn range_and_interval(q: &HashMap<String, String>) -> Result<(f64, Interval), ApiError> {
    let range = match q.get("r").map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("day") => 86_400.0,
        Some("hour") => 3_600.0,
        Some("week") => 7.0 * 86_400.0,
        Some("month") => 30.0 * 86_400.0,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "r must be hour, day, week or month, not {other:?}"
            )));
        }
    };
    let interval = match q.get("i").map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("hour") => Interval::Hour,
        Some("minute") => Interval::Minute,
        Some("day") => Interval::Day,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "i must be minute, hour or day, not {other:?}"
            )));
        }
    };
    Ok((range, interval))
}

/// The live workers grouped by address, highest hashrate first.
fn miners_by_hashrate(live: &LiveSnapshot) -> Vec<(String, f64, f64)> {
    let mut by: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for w in &live.workers {
        let e = by.entry(&w.address).or_default();
        e.0 += w.hashrate;
        e.1 += w.shares_per_sec;
    }
    let mut out: Vec<(String, f64, f64)> = by
        .into_iter()
        .map(|(a, (h, s))| (a.to_string(), h, s))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn workers_json<'a>(rows: impl Iterator<Item = &'a WorkerLive>) -> Value {
    let map: serde_json::Map<String, Value> = rows
        .map(|w| {
            (
                w.worker.clone(),
                json!({"hashrate": w.hashrate, "sharesPerSecond": w.shares_per_sec}),
            )
        })
        .collect();
    Value::Object(map)
}

/// Best share difficulties as the API shows them.
fn best_json(b: &Best) -> Value {
    let at = |us: i64| (us > 0).then(|| iso8601_us(us));
    json!({
        "round": b.round,
        "roundAt": at(b.round_us),
        "allTime": b.all_time,
        "allTimeAt": at(b.all_time_us),
    })
}

/// The pool's bests, and an address's and its workers' when one is given: from the
/// database when there is one (the figures every pool process shares and that survive
/// restarts), else this process's since it started.
pub async fn bests(state: &ApiState, address: Option<&str>) -> (Best, Best, Vec<(String, Best)>) {
    if let Some(store) = &state.store {
        match store.bests_of(address.unwrap_or("")).await {
            Ok(rows) => {
                let (mut pool, mut own, mut workers) =
                    (Best::default(), Best::default(), Vec::new());
                for (scope, best) in rows {
                    match scope {
                        Scope::Pool => pool = best,
                        Scope::Address(_) => own = best,
                        Scope::Worker(_, w) => workers.push((w, best)),
                    }
                }
                workers.sort_by(|a, b| a.0.cmp(&b.0));
                return (pool, own, workers);
            }
            Err(e) => {
                tracing::warn!(error = %e, "best difficulties from memory: the database did not answer")
            }
        }
    }
    let pool = state.stats.best.get(&Scope::Pool);
    let (own, workers) = address.map_or_else(Default::default, |a| state.stats.best.of_address(a));
    (pool, own, workers)
}

/// A latency's count and percentiles, seconds.
fn percentiles(l: &crate::observe::latency::LatencySnapshot) -> Value {
    json!({"count": l.count, "p50": l.p50, "p90": l.p90, "p99": l.p99})
}

/// `GET /api/health`: 200 when the pool has a job and its database (if any) answers,
/// else 503, with what is wrong.
pub async fn health(State(state): State<ApiState>) -> Response {
    let snap = state.stats.snapshot();
    let database = match &state.store {
        None => "not configured",
        Some(store) => match store.ping().await {
            Ok(()) => "ok",
            Err(_) => "unreachable",
        },
    };
    let has_job = snap.job_unix > 0;
    let healthy = has_job && database != "unreachable";
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "stratum": {"connections": snap.connections},
        "node": {
            "hasJob": has_job,
            "height": has_job.then_some(snap.height),
            "jobAgeSeconds": has_job.then(|| now().saturating_sub(snap.job_unix)),
        },
        "database": database,
        "leader": state.leading.load(Ordering::Relaxed),
        "latency": {
            "templateFetch": percentiles(&state.stats.template_fetch.snapshot()),
            "submitBlock": percentiles(&state.stats.submitblock.snapshot()),
            "shareAck": percentiles(&state.stats.share_ack.snapshot()),
        },
        "shareWriter": {
            "stored": state.writer.stored.load(Ordering::Relaxed),
            "spooled": state.writer.spooled.load(Ordering::Relaxed),
            "replayed": state.writer.replayed.load(Ordering::Relaxed),
            "lost": state.writer.lost.load(Ordering::Relaxed),
        },
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn pool_info(state: &ApiState) -> Value {
    let facts = &state.facts;
    let now = now();
    let live = state.stats.combined(now);
    let snap = state.stats.snapshot();
    // Totals need the database; live figures are shown without it.
    let totals = match &state.store {
        Some(store) => store.totals().await.ok(),
        None => None,
    };
    let network_difficulty = snap.network_difficulty;
    let (best, _, _) = bests(state, None).await;
    let (symbol, name) = coin(facts.network);
    let top: Vec<Value> = miners_by_hashrate(&live)
        .into_iter()
        .take(10)
        .map(|(miner, h, s)| json!({"miner": miner, "hashrate": h, "sharesPerSecond": s}))
        .collect();
    let mut ports = serde_json::Map::new();
    ports.insert(
        facts.stratum_port.to_string(),
        json!({
            "difficulty": facts.vardiff.0,
            "varDiff": {"minDiff": facts.vardiff.1, "maxDiff": facts.vardiff.2},
        }),
    );
    json!({
        "id": facts.id,
        "coin": {"type": symbol, "name": name, "symbol": symbol, "algorithm": "SHA256d"},
        "ports": ports,
        "paymentProcessing": {
            "enabled": facts.mode == Mode::Pplns && facts.payments,
            "minimumPayment": coins(i64::try_from(facts.threshold).unwrap_or(i64::MAX)),
            "payoutScheme": match facts.mode { Mode::Pplns => "PPLNS", Mode::Solo => "SOLO" },
            "payoutSchemeConfig": {"factor": facts.window_factor},
        },
        "poolFeePercent": facts.fee_percent,
        "address": facts.pool_address,
        "poolStats": {
            "connectedMiners": live.miners,
            "connectedWorkers": live.connected_workers,
            "poolHashrate": live.hashrate,
            "sharesPerSecond": live.shares_per_sec,
            "acceptedShares": snap.accepted,
            "rejectedShares": snap.rejected.values().sum::<u64>(),
            "bestShareDifficulty": snap.best_share,
            "bestDifficulty": best_json(&best),
        },
        "networkStats": {
            "networkType": facts.network.to_string(),
            "networkHashrate": network_hashrate(network_difficulty),
            "networkDifficulty": network_difficulty,
            // The chain's height: the block being mined is one above it.
            "blockHeight": snap.height.saturating_sub(1),
            "jobAgeSeconds": (snap.job_unix > 0).then(|| now.saturating_sub(snap.job_unix)),
        },
        "topMiners": top,
        "totalPaid": totals.as_ref().map(|t| coins(t.paid)),
        "totalBlocks": totals.as_ref().map(|t| t.blocks),
        "blocksByStatus": totals.as_ref().map(|t| {
            t.by_status.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()
        }),
        "lastPoolBlockTime": totals.as_ref().and_then(|t| t.last_block_us).map(iso8601_us),
        "poolEffort": totals.as_ref().and_then(|t| {
            (network_difficulty > 0.0).then(|| t.round_difficulty / network_difficulty)
        }),
    })
}

/// `GET /api/pools`.
pub async fn pools(State(state): State<ApiState>) -> Json<Value> {
    Json(json!({"pools": [pool_info(&state).await]}))
}

/// `GET /api/pools/{id}`.
pub async fn pool(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    check_id(&state, &id)?;
    Ok(Json(json!({"pool": pool_info(&state).await})))
}

/// `GET /api/pools/{id}/performance?r=day&i=hour`: pool samples, oldest first.
pub async fn performance(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    let (range, interval) = range_and_interval(&q)?;
    let samples = store(&state)?.pool_samples(range, interval).await?;
    let stats: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "created": iso8601_us(s.time_us),
                "poolHashrate": s.hashrate,
                "sharesPerSecond": s.shares_per_sec,
                "connectedMiners": s.miners,
                "connectedWorkers": s.workers,
            })
        })
        .collect();
    Ok(Json(json!({"stats": stats})))
}

/// `GET /api/pools/{id}/miners?page=0&pageSize=15`: live miners, highest hashrate first.
pub async fn miners(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    let page = Page::from_query(&q)?;
    let live = state.stats.combined(now());
    let rows: Vec<Value> = miners_by_hashrate(&live)
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(0))
        .map(|(miner, h, s)| json!({"miner": miner, "hashrate": h, "sharesPerSecond": s}))
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// `GET /api/pools/{id}/miners/{address}?r=day&i=hour`: balance, this round's work, live
/// workers and their history.
pub async fn miner(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    check_address(&state, &address)?;
    let (range, interval) = range_and_interval(&q)?;
    let now = now();
    let live = state.stats.combined(now);
    let mine: Vec<&WorkerLive> = live
        .workers
        .iter()
        .filter(|w| w.address == address)
        .collect();
    let (account, samples) = match &state.store {
        Some(store) => (
            Some(store.account(&address).await?),
            store.worker_samples(&address, range, interval).await?,
        ),
        None => (None, Vec::new()),
    };
    let known = !mine.is_empty() || account.as_ref().is_some_and(|a| a.known);
    if !known {
        return Err(ApiError::NotFound(format!(
            "the pool has no shares, balance or payments for {address}"
        )));
    }
    let mut by_time: BTreeMap<i64, serde_json::Map<String, Value>> = BTreeMap::new();
    for s in &samples {
        by_time.entry(s.time_us).or_default().insert(
            s.worker.clone(),
            json!({"hashrate": s.hashrate, "sharesPerSecond": s.shares_per_sec}),
        );
    }
    let history: Vec<Value> = by_time
        .into_iter()
        .map(|(t, workers)| json!({"created": iso8601_us(t), "workers": workers}))
        .collect();
    let a = account.unwrap_or_default();
    let with_db = state.store.is_some();
    let (_, own, by_worker) = bests(&state, Some(&address)).await;
    let by_worker: serde_json::Map<String, Value> = by_worker
        .iter()
        .map(|(w, b)| (w.clone(), best_json(b)))
        .collect();
    Ok(Json(json!({
        "bestDifficulty": best_json(&own),
        "workerBestDifficulty": by_worker,
        "pendingShares": with_db.then_some(a.round_difficulty),
        "pendingBalance": with_db.then(|| coins(a.balance)),
        "totalPaid": with_db.then(|| coins(a.paid)),
        "todayPaid": with_db.then(|| coins(a.paid_today)),
        "lastPayment": a.last_payment_us.map(iso8601_us),
        "lastPaymentLink": a.last_payment_txid.as_deref().and_then(|t| state.facts.explorer.tx(t)),
        "performance": {
            "created": iso8601(i64::try_from(now).unwrap_or(0)),
            "workers": workers_json(mine.iter().copied()),
        },
        "performanceSamples": history,
    })))
}

/// `GET /api/pools/{id}/miners/{address}/payments?page=0&pageSize=15`.
pub async fn miner_payments(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    Query(q): Params,
) -> ApiResult {
    check_address(&state, &address)?;
    payments_of(&state, &id, Some(&address), &q).await
}

/// `GET /api/pools/{id}/payments?page=0&pageSize=15`: payments sent, newest first.
pub async fn payments(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    payments_of(&state, &id, None, &q).await
}

async fn payments_of(
    state: &ApiState,
    id: &str,
    address: Option<&str>,
    q: &HashMap<String, String>,
) -> ApiResult {
    check_id(state, id)?;
    let rows = payment_rows(state, address, Page::from_query(q)?).await?;
    Ok(Json(Value::Array(rows)))
}

/// One page of payments in Miningcore's shape (`address`'s only, when given).
pub(crate) async fn payment_rows(
    state: &ApiState,
    address: Option<&str>,
    page: Page,
) -> Result<Vec<Value>, ApiError> {
    let rows = store(state)?
        .payments_page(address, page.offset, page.limit)
        .await?;
    let explorer = &state.facts.explorer;
    Ok(rows
        .iter()
        .map(|p| {
            json!({
                "coin": coin(state.facts.network).0,
                "address": p.address,
                "addressInfoLink": explorer.address(&p.address),
                "amount": coins(p.amount),
                "transactionConfirmationData": p.txid,
                "transactionInfoLink": p.txid.as_deref().and_then(|t| explorer.tx(t)),
                "created": iso8601_us(p.time_us),
                // Coinbase payouts: paid by an output of this block's coinbase.
                "blockHash": p.block_hash,
                "outputIndex": p.output_index,
            })
        })
        .collect())
}

/// `GET /api/pools/{id}/blocks?page=0&pageSize=15`: blocks found, newest first, with their
/// status and how far along their confirmations are.
pub async fn blocks(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    check_id(&state, &id)?;
    let rows = block_rows(&state, Page::from_query(&q)?).await?;
    Ok(Json(Value::Array(rows)))
}

/// One page of blocks in Miningcore's shape.
pub(crate) async fn block_rows(state: &ApiState, page: Page) -> Result<Vec<Value>, ApiError> {
    let rows = store(state)?.blocks_page(page.offset, page.limit).await?;
    let needed = state.facts.confirmations.max(1) as f64;
    Ok(rows
        .iter()
        .map(|v| {
            let b = &v.block;
            let (miner, worker) = b.finder.split_once('.').unwrap_or((&b.finder, ""));
            let progress = match v.status.as_str() {
                "confirmed" => 1.0,
                "orphaned" => 0.0,
                _ => (v.confirmations.max(0) as f64 / needed).min(1.0),
            };
            json!({
                "poolId": state.facts.id,
                "blockHeight": b.height,
                "networkDifficulty": b.network_difficulty,
                "status": v.status,
                "confirmations": v.confirmations,
                "confirmationProgress": progress,
                "effort": v.effort,
                "transactionConfirmationData": b.hash,
                "reward": coins(b.reward),
                "infoLink": state.facts.explorer.block(&b.hash, b.height),
                "hash": b.hash,
                "miner": miner,
                "worker": worker,
                "created": iso8601_us(b.found_us),
            })
        })
        .collect())
}
