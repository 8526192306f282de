//! The endpoints of public-pool's API, with its JSON shapes, for what home miners already
//! read: NerdMiner firmware asks `/api/client/{address}` for `bestDifficulty`,
//! `workersCount` and each worker's `sessionId` and `hashRate`; public-pool's web UI and
//! phone apps read the rest. Field names and types follow public-pool's controllers
//! (numbers where it sends numbers, the per-session best as a two-decimal string as it
//! does, times in ISO 8601); docs/pool.md lists them.
//!
//! A "worker" here is public-pool's client: one session (connection) of one
//! `ADDRESS.worker`, named by the connection's extranonce1 (the session id it subscribed
//! with). Sessions are this process's, from memory ([`crate::observe::live`]); bests come
//! from the database when there is one (shared, surviving restarts), and charts from its
//! samples (`miner_stats`, `pool_stats`; empty without a database).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::chain::node::call_any;
use crate::observe::api::miningcore::bests;
use crate::observe::api::time::{iso8601, iso8601_us, now};
use crate::observe::api::{ApiError, ApiState, check_address};
use crate::observe::live::{LiveSnapshot, SessionLive, WorkerLive};
use crate::store::reads::Interval;
use crate::stratum::session::split_user;

/// How far back the charts go (public-pool: a day), and their step (ten minutes).
const CHART_SECS: i64 = 86_400;
const CHART_STEP_SECS: i64 = 600;

/// Blocks listed in `/api/info` and `/api/pool`, newest first.
const BLOCKS_LISTED: i64 = 100;

/// High scores listed in `/api/info`.
const HIGH_SCORES: usize = 10;

/// The address's live workers (each with its sessions).
fn workers_of<'a>(live: &'a LiveSnapshot, address: &str) -> Vec<&'a WorkerLive> {
    live.workers
        .iter()
        .filter(|w| w.address == address)
        .collect()
}

/// A session as public-pool lists it under `/api/client/{address}`.
fn session_json(worker: &str, s: &SessionLive) -> Value {
    let seen = s.last_share.unwrap_or(s.started);
    json!({
        "sessionId": s.id,
        "name": worker,
        "bestDifficulty": format!("{:.2}", s.best),
        "hashRate": s.hashrate,
        "startTime": iso8601(s.started as i64),
        "lastSeen": iso8601(seen as i64),
    })
}

/// `GET /api/client/{address}`: the address's best difficulty (omitted before its first
/// share, as public-pool does for an address it has no settings for), and its sessions.
pub async fn client(
    State(state): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_address(&state, &address)?;
    let live = state.stats.combined(now());
    let sessions: Vec<Value> = workers_of(&live, &address)
        .into_iter()
        .flat_map(|w| w.sessions.iter().map(|s| session_json(&w.worker, s)))
        .collect();
    let (_, own, _) = bests(&state, Some(&address)).await;
    let mut out = json!({
        "workersCount": sessions.len(),
        "workers": sessions,
    });
    if own.all_time > 0.0 {
        out["bestDifficulty"] = json!(own.all_time);
    }
    Ok(Json(out))
}

/// Ten-minute chart points `{label, data}` (ISO time, H/s) from samples of
/// (unix microseconds, H/s): each step's mean of every series summed, as public-pool
/// sums its clients.
fn chart(samples: impl IntoIterator<Item = (i64, String, f64)>) -> Vec<Value> {
    // step -> series -> (sum, count)
    let mut steps: BTreeMap<i64, BTreeMap<String, (f64, u32)>> = BTreeMap::new();
    for (time_us, series, hashrate) in samples {
        let step = time_us.div_euclid(1_000_000).div_euclid(CHART_STEP_SECS) * CHART_STEP_SECS;
        let slot = steps.entry(step).or_default().entry(series).or_default();
        slot.0 += hashrate;
        slot.1 += 1;
    }
    steps
        .into_iter()
        .map(|(step, series)| {
            let total: f64 = series.values().map(|(sum, n)| sum / f64::from(*n)).sum();
            json!({"label": iso8601(step), "data": total})
        })
        .collect()
}

/// An address's (or one worker's) chart over the last `secs`; empty without a database.
async fn address_chart(
    state: &ApiState,
    address: &str,
    worker: Option<&str>,
    secs: i64,
) -> Result<Vec<Value>, ApiError> {
    let Some(store) = &state.store else {
        return Ok(Vec::new());
    };
    let samples = store
        .worker_samples(address, secs as f64, Interval::Minute)
        .await?;
    Ok(chart(
        samples
            .into_iter()
            .filter(|s| worker.is_none_or(|w| s.worker == w))
            .map(|s| (s.time_us, s.worker, s.hashrate)),
    ))
}

/// `GET /api/client/{address}/chart`: the address's hashrate over the last day.
pub async fn client_chart(
    State(state): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_address(&state, &address)?;
    Ok(Json(Value::Array(
        address_chart(&state, &address, None, CHART_SECS).await?,
    )))
}

/// `GET /api/client/{address}/{worker}`: one worker name's best (whole) and chart.
pub async fn worker(
    State(state): State<ApiState>,
    Path((address, worker)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_address(&state, &address)?;
    let (_, _, by_worker) = bests(&state, Some(&address)).await;
    let best = by_worker
        .iter()
        .find(|(w, _)| *w == worker)
        .map_or(0.0, |(_, b)| b.all_time);
    Ok(Json(json!({
        "name": worker,
        "bestDifficulty": best.floor() as u64,
        "chartData": address_chart(&state, &address, Some(&worker), CHART_SECS).await?,
    })))
}

/// `GET /api/client/{address}/{worker}/{sessionId}`: one session: its best (whole), its
/// start, and its worker's chart since it started.
pub async fn session(
    State(state): State<ApiState>,
    Path((address, worker, session_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    check_address(&state, &address)?;
    let now = now();
    let live = state.stats.combined(now);
    let found = workers_of(&live, &address)
        .into_iter()
        .filter(|w| w.worker == worker)
        .flat_map(|w| w.sessions.iter())
        .find(|s| s.id.eq_ignore_ascii_case(&session_id))
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no session {session_id} of {address}.{worker} on this pool now"
            ))
        })?;
    let since = now.saturating_sub(found.started).max(60) as i64;
    Ok(Json(json!({
        "sessionId": found.id,
        "name": worker,
        "bestDifficulty": found.best.floor() as u64,
        "chartData": address_chart(&state, &address, Some(&worker), since.min(CHART_SECS)).await?,
        "startTime": iso8601(found.started as i64),
    })))
}

/// The newest blocks as public-pool lists them: who found them (the session id is not
/// kept with a block: empty).
async fn found_blocks(state: &ApiState) -> Result<Vec<Value>, ApiError> {
    let Some(store) = &state.store else {
        return Ok(Vec::new());
    };
    let blocks = store.blocks_page(0, BLOCKS_LISTED).await?;
    Ok(blocks
        .iter()
        .map(|b| {
            let (address, worker) = split_user(&b.block.finder);
            json!({
                "height": b.block.height,
                "minerAddress": address,
                "worker": worker,
                "sessionId": "",
            })
        })
        .collect())
}

/// `GET /api/info`: blocks found, live sessions by user agent, the high scores (each
/// address's all-time best, highest first) and when the pool started.
pub async fn info(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let live = state.stats.combined(now());
    // user agent -> (sessions, best, H/s)
    let mut agents: BTreeMap<&str, (u64, f64, f64)> = BTreeMap::new();
    for s in live.workers.iter().flat_map(|w| w.sessions.iter()) {
        let a = agents.entry(s.user_agent.as_str()).or_default();
        a.0 += 1;
        a.1 = a.1.max(s.best);
        a.2 += s.hashrate;
    }
    let mut user_agents: Vec<(&str, (u64, f64, f64))> = agents.into_iter().collect();
    user_agents.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
    let user_agents: Vec<Value> = user_agents
        .into_iter()
        .map(|(agent, (count, best, hashrate))| {
            json!({
                "userAgent": agent,
                "count": count,
                "bestDifficulty": best,
                "totalHashRate": hashrate,
            })
        })
        .collect();
    let top = match &state.store {
        Some(store) => store.top_address_bests(HIGH_SCORES as i64).await?,
        None => state
            .stats
            .best
            .top_addresses(HIGH_SCORES)
            .into_iter()
            .map(|(a, b)| (a, b.all_time, b.all_time_us))
            .collect(),
    };
    let high_scores: Vec<Value> = top
        .iter()
        .map(|(address, best, at_us)| {
            json!({
                "updatedAt": iso8601_us(*at_us),
                "bestDifficulty": best,
                "bestDifficultyUserAgent": agent_of_best(&live, address),
            })
        })
        .collect();
    Ok(Json(json!({
        "blockData": found_blocks(&state).await?,
        "userAgents": user_agents,
        "highScores": high_scores,
        "uptime": iso8601(state.stats.live.started() as i64),
    })))
}

/// The user agent of the address's live session with the highest best: the device that
/// most likely set its record (empty when none of its sessions is live here).
fn agent_of_best(live: &LiveSnapshot, address: &str) -> String {
    workers_of(live, address)
        .into_iter()
        .flat_map(|w| w.sessions.iter())
        .max_by(|a, b| a.best.total_cmp(&b.best))
        .map(|s| s.user_agent.clone())
        .unwrap_or_default()
}

/// `GET /api/info/chart`: the pool's hashrate over the last day.
pub async fn info_chart(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let Some(store) = &state.store else {
        return Ok(Json(json!([])));
    };
    let samples = store
        .pool_samples(CHART_SECS as f64, Interval::Minute)
        .await?;
    Ok(Json(Value::Array(chart(
        samples
            .into_iter()
            .map(|s| (s.time_us, String::new(), s.hashrate)),
    ))))
}

/// `GET /api/pool`: the pool's hashrate, height, connected sessions, blocks and fee.
pub async fn pool(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let live = state.stats.combined(now());
    let sessions = live
        .workers
        .iter()
        .flat_map(|w| w.sessions.iter())
        .filter(|s| s.connected)
        .count();
    Ok(Json(json!({
        "totalHashRate": live.hashrate,
        "blockHeight": state.stats.snapshot().height,
        "totalMiners": sessions,
        "blocksFound": found_blocks(&state).await?,
        "fee": state.facts.fee_percent,
    })))
}

/// `GET /api/network`: the node's `getmininginfo`, as public-pool passes it on.
pub async fn network(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    call_any(&state.nodes, "getmininginfo", json!([]))
        .await
        .map(Json)
        .map_err(|e| {
            tracing::warn!(error = %e, "getmininginfo for /api/network failed");
            ApiError::Unavailable("the node did not answer; try again later".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_average_each_series_then_sum_them_per_ten_minutes() {
        let t = 1_800_000_000i64 * 1_000_000;
        let m = 60_000_000;
        let points = chart(vec![
            (t, "a".to_string(), 100.0),
            (t + m, "a".to_string(), 300.0),
            (t, "b".to_string(), 50.0),
            (t + 10 * m, "a".to_string(), 7.0),
        ]);
        assert_eq!(
            points,
            vec![
                json!({"label": "2027-01-15T08:00:00Z", "data": 250.0}),
                json!({"label": "2027-01-15T08:10:00Z", "data": 7.0}),
            ]
        );
    }
}
