//! `/api/admin/`: acting on the running pool without a database prompt. Off unless
//! `api.admin_token` is set (then every other path answers 404, as if it did not exist);
//! each request must carry `Authorization: Bearer TOKEN`, compared in constant time, and
//! every change is logged with what it changed.
//!
//! - `GET /api/admin/bans`: the banned addresses and the time their bans have left;
//! - `DELETE /api/admin/bans/{ip}`: lifts a ban (and forgets the address's strikes);
//! - `POST /api/admin/message` `{"text": "..."}`: shows a line to every connected Stratum
//!   v1 miner (`client.show_message`; Stratum V2 has no such message);
//! - `POST /api/admin/reload`: what SIGHUP does (the TLS certificate and key re-read);
//! - `POST /api/admin/miners/{address}/settings` `{"paymentThreshold": 0.05}`: an
//!   address's payment threshold set by the operator (for addresses that cannot sign);
//! - `GET /api/admin/withholding?hours=24&p=0.001`: found against expected blocks per
//!   address over the window asked for ([`crate::accounting::withholding`]);
//! - `GET /api/admin/processes`: the pool processes on the database that the live view
//!   adds up ([`crate::observe::processes`]), this one first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::accounting::withholding::{DEFAULT_P, from_store};
use crate::observe::api::ApiState;
use crate::observe::api::time::{iso8601, now};
use crate::observe::live::LiveSnapshot;
use crate::stratum::shared::Shared;
use crate::stratum::tls::Certificates;

/// Longest message shown to miners, characters.
pub const MESSAGE_MAX: usize = 512;

/// What the admin API acts on.
#[derive(Debug)]
pub struct Admin {
    token: String,
    shared: Arc<Shared>,
    certificates: Option<Arc<Certificates>>,
}

impl Admin {
    /// The admin API with its token, acting on the connections' shared state and the TLS
    /// listener's certificate (when there is one).
    pub fn new(
        token: String,
        shared: Arc<Shared>,
        certificates: Option<Arc<Certificates>>,
    ) -> Admin {
        Admin {
            token,
            shared,
            certificates,
        }
    }
}

/// Why an admin request is refused.
#[derive(Debug)]
pub enum Refused {
    /// The admin API is off: the path does not exist.
    Off,
    /// No token, or the wrong one.
    Unauthorized,
    /// The request itself is wrong.
    BadRequest(String),
    /// Nothing to act on.
    NotFound(String),
    /// It needs the database, which is not configured or not answering.
    Unavailable(String),
    /// It contradicts the pool's state; nothing changed.
    Conflict(String),
    /// It was tried and failed; nothing changed.
    Failed(String),
}

/// A database error is logged, not shown (as in the rest of the API).
impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "admin API request failed on the database");
        Refused::Unavailable("the database did not answer; try again later".into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Refused::Off => (StatusCode::NOT_FOUND, "no such endpoint".to_string()),
            Refused::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "this needs Authorization: Bearer <api.admin_token>".to_string(),
            ),
            Refused::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Refused::NotFound(m) => (StatusCode::NOT_FOUND, m),
            Refused::Conflict(m) => (StatusCode::CONFLICT, m),
            Refused::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            Refused::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        let body = Json(json!({"error": message, "status": status.as_u16()}));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// The admin API, when the request carries its token.
pub(crate) fn authorized<'s>(
    state: &'s ApiState,
    headers: &HeaderMap,
) -> Result<&'s Admin, Refused> {
    let admin = state.admin.as_deref().ok_or(Refused::Off)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(Refused::Unauthorized)?;
    if same_secret(given.trim().as_bytes(), admin.token.as_bytes()) {
        Ok(admin)
    } else {
        Err(Refused::Unauthorized)
    }
}

/// Compares two secrets in time that depends on their lengths only, not on where they
/// first differ (a byte-by-byte early exit would let a client find the token a byte at a
/// time by timing).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// `GET /api/admin/bans`.
pub async fn bans(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refused> {
    let admin = authorized(&state, &headers)?;
    let bans: Vec<Value> = admin
        .shared
        .admission
        .bans(Instant::now())
        .into_iter()
        .map(|(ip, left)| json!({"address": ip.to_string(), "secondsLeft": left.as_secs()}))
        .collect();
    Ok(Json(json!({ "bans": bans })))
}

/// `DELETE /api/admin/bans/{ip}`.
pub async fn lift(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(ip): Path<String>,
) -> Result<Json<Value>, Refused> {
    let admin = authorized(&state, &headers)?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| Refused::BadRequest(format!("{ip:?} is not an IP address")))?;
    if !admin.shared.admission.lift(ip, Instant::now()) {
        return Err(Refused::NotFound(format!("{ip} is not banned")));
    }
    // Every pool process on the database lifts it too (limits.share_bans).
    let everywhere = match &state.store {
        Some(store) => match store.lift_shared_ban(ip, &state.facts.process).await {
            Ok(()) => true,
            Err(e) => {
                warn!(%ip, error = %e, "admin API: ban lifted here only; the database did not take the lift");
                false
            }
        },
        None => false,
    };
    info!(%ip, everywhere, "admin API: ban lifted");
    Ok(Json(
        json!({ "lifted": ip.to_string(), "allProcesses": everywhere }),
    ))
}

/// `POST /api/admin/message` with `{"text": "..."}`.
pub async fn message(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Refused> {
    let admin = authorized(&state, &headers)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| Refused::BadRequest(format!("the body must be JSON: {e}")))?;
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Refused::BadRequest("the body must be {\"text\": \"...\"}".into()))?;
    if text.chars().count() > MESSAGE_MAX || text.chars().any(char::is_control) {
        return Err(Refused::BadRequest(format!(
            "the text must be one line of at most {MESSAGE_MAX} characters"
        )));
    }
    let connections = admin.shared.announce(text);
    info!(connections, text, "admin API: message shown to miners");
    Ok(Json(json!({ "text": text, "connections": connections })))
}

/// `POST /api/admin/reload`: re-reads what SIGHUP re-reads (the TLS certificate and key).
pub async fn reload(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refused> {
    let admin = authorized(&state, &headers)?;
    let Some(certificates) = &admin.certificates else {
        return Ok(Json(
            json!({"reloaded": [], "note": "nothing to reload: no [stratum.tls]"}),
        ));
    };
    match certificates.reload() {
        Ok(()) => {
            info!("admin API: TLS certificate reloaded");
            Ok(Json(json!({ "reloaded": ["tls"] })))
        }
        Err(e) => {
            tracing::error!(error = %e, "admin API: TLS certificate not reloaded; the old one stays in use");
            Err(Refused::Failed(format!(
                "TLS certificate not reloaded, the old one stays in use: {e}"
            )))
        }
    }
}

/// `POST /api/admin/miners/{address}/settings` with `{"paymentThreshold": 0.05}` (coins):
/// sets an address's threshold for a miner whose address cannot sign (a multisig or
/// taproot one), without the operator's bounds. It counts as signed now, so the miner's
/// own later signature still changes it.
pub async fn miner_settings(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(address): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Refused> {
    use crate::observe::api::miner_settings::satoshis;
    authorized(&state, &headers)?;
    let address = protocol::address::parse(&address, state.facts.network)
        .map_err(|e| Refused::BadRequest(format!("not an address on this pool's network: {e}")))?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| Refused::BadRequest(format!("the body must be JSON: {e}")))?;
    let threshold = body
        .get("paymentThreshold")
        .ok_or_else(|| Refused::BadRequest("the body must be {\"paymentThreshold\": coins}".into()))
        .and_then(|v| {
            satoshis(v).map_err(|_| Refused::BadRequest(format!("{v} is not an amount in coins")))
        })?;
    if threshold < 546 {
        return Err(Refused::BadRequest("at least 0.00000546 (dust)".into()));
    }
    let store = state
        .store
        .as_ref()
        .ok_or_else(|| Refused::Unavailable("settings need the pool's database".into()))?;
    let at = i64::try_from(now()).unwrap_or(i64::MAX);
    let threshold_sat = i64::try_from(threshold).unwrap_or(i64::MAX);
    if !store
        .set_payment_threshold(&address.text, threshold_sat, at)
        .await?
    {
        return Err(Refused::Conflict(
            "the address signed a change in this very second or later; try again".into(),
        ));
    }
    info!(address = %address.text, threshold, "admin API: payment threshold set");
    Ok(Json(json!({
        "address": address.text,
        "paymentThreshold": threshold as f64 / 100_000_000.0,
    })))
}

/// `GET /api/admin/processes`.
pub async fn processes(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refused> {
    authorized(&state, &headers)?;
    let stats = &state.stats;
    let now = now();
    let row = |process: &str, instance: u8, started: u64, age: Option<f64>, live: &LiveSnapshot| {
        json!({
            "process": process,
            "thisProcess": age.is_none(),
            "instanceId": instance,
            "started": iso8601(i64::try_from(started).unwrap_or(i64::MAX)),
            "secondsSinceWritten": age.unwrap_or(0.0),
            "connectedMiners": live.miners,
            "connectedWorkers": live.connected_workers,
            "hashrate": live.hashrate,
            "sharesPerSecond": live.shares_per_sec,
        })
    };
    let started = stats.live.started();
    let own = stats.live.snapshot(now);
    let peers = stats.peers.current();
    let mut rows = vec![row(
        &state.facts.process,
        state.facts.instance_id,
        started,
        None,
        &own,
    )];
    for p in peers.iter() {
        rows.push(row(
            &p.process,
            p.instance_id,
            p.started,
            Some(p.age_secs),
            &p.snapshot,
        ));
    }
    let all = crate::observe::live::combine_with(own, &peers);
    Ok(Json(json!({
        "processes": rows,
        "combined": {
            "connectedMiners": all.miners,
            "connectedWorkers": all.connected_workers,
            "hashrate": all.hashrate,
            "sharesPerSecond": all.shares_per_sec,
        },
    })))
}

/// `GET /api/admin/withholding?hours=24&p=0.001`.
pub async fn withholding(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Refused> {
    authorized(&state, &headers)?;
    let hours: u32 = match q.get("hours") {
        None => 24,
        Some(h) => h
            .parse()
            .ok()
            .filter(|h| (1..=24 * 90).contains(h))
            .ok_or_else(|| Refused::BadRequest(format!("hours must be 1 to 2160, not {h:?}")))?,
    };
    let threshold: f64 = match q.get("p") {
        None => DEFAULT_P,
        Some(p) => p
            .parse()
            .ok()
            .filter(|p: &f64| *p > 0.0 && *p < 1.0)
            .ok_or_else(|| Refused::BadRequest(format!("p must be between 0 and 1, not {p:?}")))?,
    };
    let store = state
        .store
        .as_ref()
        .ok_or_else(|| Refused::Unavailable("the report needs the pool's database".into()))?;
    let lines: Vec<Value> = from_store(store, hours, now())
        .await?
        .into_iter()
        .map(|l| {
            json!({
                "address": l.address,
                "shares": l.work.shares,
                "difficulty": l.work.difficulty,
                "expectedBlocks": l.work.expected_blocks,
                "foundBlocks": l.found,
                "probability": l.probability,
                "flagged": l.probability < threshold,
            })
        })
        .collect();
    Ok(Json(json!({
        "hours": hours,
        "threshold": threshold,
        "addresses": lines,
    })))
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_match_only_when_equal() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_secret(b"", b"0123456789abcdef"));
    }
}
