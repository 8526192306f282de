//! The HTTP JSON API (off by default; `--api-bind ADDR`, optional `--api-token`): `GET
//! /2/summary` shaped like xmrig's, so dashboards and scripts written for xmrig can read
//! it, `GET /health`, and `POST /json_rpc` with xmrig's `pause` and `resume` methods,
//! which need `--api-token` (without one the API only reads).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::stats::{Snapshot, Stats};

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// The live statistics.
    pub stats: Arc<Stats>,
    /// Bearer token required on every request, when set.
    pub token: Option<String>,
    /// Worker name shown in the summary.
    pub worker: String,
    /// Hashing threads.
    pub threads: usize,
    /// The engine, for the per-device rows (`gpus`).
    pub engine: Option<Arc<Engine>>,
    /// Why the backend runs (the start-up choice, or `--backend`).
    pub backend_reason: Option<String>,
}

/// The router: `/2/summary`, `/1/summary` (same body), `/health`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/2/summary", get(summary))
        .route("/1/summary", get(summary))
        .route("/health", get(|| async { "ok" }))
        .route("/json_rpc", post(json_rpc))
        .with_state(state)
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    match &state.token {
        None => true,
        Some(token) => headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| given == token),
    }
}

async fn summary(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    Json(summary_json(&state, Instant::now())).into_response()
}

/// `POST /json_rpc`: `{"jsonrpc": "2.0", "id": 1, "method": "pause"}` (or `resume`), as
/// xmrig's API takes them. Only with a token: an API anyone on the network may read must
/// not let them stop the miner.
async fn json_rpc(State(state): State<ApiState>, headers: HeaderMap, body: String) -> Response {
    if state.token.is_none() {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error": "control needs --api-token (this API only reads without one)"})),
        )
            .into_response();
    }
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong bearer token"})),
        )
            .into_response();
    }
    let call: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            return Json(json!({"jsonrpc": "2.0", "id": null,
                "error": {"code": -32700, "message": format!("parse error: {e}")}}))
            .into_response();
        }
    };
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let reply = |result: Result<Value, (i64, String)>| match result {
        Ok(r) => Json(json!({"jsonrpc": "2.0", "id": id, "result": r})).into_response(),
        Err((code, message)) => {
            Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
                .into_response()
        }
    };
    let Some(engine) = &state.engine else {
        return reply(Err((-32000, "no hashing engine in this process".into())));
    };
    match call.get("method").and_then(Value::as_str) {
        Some("pause") => {
            if engine.pause() {
                tracing::info!("paused through the API");
            }
            reply(Ok(json!({"status": "OK", "paused": true})))
        }
        Some("resume") => {
            if engine.resume() {
                tracing::info!("resumed through the API");
            }
            reply(Ok(json!({"status": "OK", "paused": false})))
        }
        Some(other) => reply(Err((-32601, format!("method not found: {other}")))),
        None => reply(Err((-32600, "no method".into()))),
    }
}

/// The summary body.
pub fn summary_json(state: &ApiState, now: Instant) -> Value {
    let s = state.stats.snapshot(now);
    let rate = |r: Option<f64>| r.map_or(Value::Null, |v| json!(v));
    json!({
        "id": "sha256d-miner",
        "worker_id": state.worker,
        "uptime": s.uptime as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "kind": "miner",
        "ua": format!("sha256d-miner/{}", env!("CARGO_PKG_VERSION")),
        "algo": "sha256d",
        "backend": s.backend,
        "backend_reason": state.backend_reason,
        "paused": state.engine.as_ref().is_some_and(|e| e.is_paused()),
        "hashrate": {
            "total": s.total.iter().map(|r| rate(*r)).collect::<Vec<_>>(),
            "highest": s.highest,
            "threads": s.threads.iter().map(|t| t.iter().map(|r| rate(*r)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        },
        "results": {
            "diff_current": s.difficulty,
            "shares_good": s.accepted,
            "shares_total": s.accepted + s.rejected,
            "shares_stale": s.stale,
            "hashes_total": s.hashes,
            "reject_reasons": s.reject_reasons,
            "blocks": s.blocks,
            "block_candidates": s.block_candidates,
        },
        "connection": {
            "pool": s.pool,
            "uptime": s.connected_for as u64,
            "failures": s.failures,
            "accepted": s.accepted,
            "rejected": s.rejected,
            "diff": s.difficulty,
        },
        "cpu": {
            "threads": state.threads,
            "temperature_c": crate::sensors::cpu_sensors(std::path::Path::new("/sys/class/hwmon"))
                .read()
                .temperature_c,
            "held": state.engine.as_ref().is_some_and(|e| {
                (0..state.threads).any(|w| e.is_held(w))
            }),
        },
        "gpus": gpu_rows(state, &s),
    })
}

/// One row per OpenCL device: its name, hash rate over the three windows, solutions found,
/// accepted and rejected by the pool, hardware errors (candidates the CPU re-check
/// contradicted), why the device stopped if it was lost (`null` while it works), and
/// temperature (°C), fan (RPM or %) and power (W) where the platform exposes them (hwmon
/// or NVML; `null` otherwise).
fn gpu_rows(state: &ApiState, s: &Snapshot) -> Vec<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(engine) = &state.engine else {
        return Vec::new();
    };
    let rate = |r: &Option<f64>| r.map_or(Value::Null, |v| json!(v));
    engine
        .gpu_workers()
        .map(|(i, name, w)| {
            let sensors = engine.sensors(i).unwrap_or_default();
            json!({
                "name": name,
                "hashrate": s.threads.get(i).map(|t| t.iter().map(rate).collect::<Vec<_>>()),
                "found": w.found.load(Relaxed),
                "accepted": w.accepted.load(Relaxed),
                "rejected": w.rejected.load(Relaxed),
                "hardware_errors": w.hardware_errors.load(Relaxed),
                "lost": w.lost(),
                "held": engine.is_held(i),
                "temperature_c": sensors.temperature_c,
                "fan_rpm": sensors.fan_rpm,
                "fan_percent": sensors.fan_percent,
                "power_w": sensors.power_w,
            })
        })
        .collect()
}
