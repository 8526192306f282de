//! The pool's HTTP side, on its own address (`api.bind`, `--api-bind`), apart from Stratum:
//!
//! - a JSON API shaped like Miningcore's (`/api/pools`, `/api/pools/{id}` and its
//!   `performance`, `miners`, `miners/{address}`, `blocks`, `payments`; `/api/health`), so
//!   dashboards written for Miningcore can read it ([`miningcore`]);
//! - public-pool's endpoints (`/api/client/{address}` and below, `/api/info`,
//!   `/api/info/chart`, `/api/pool`, `/api/network`), which NerdMiner firmware and
//!   home-miner apps read ([`publicpool`]);
//! - what the current job's coinbase pays, with coinbase payouts ([`coinbase`]);
//! - Prometheus `/metrics` ([`metrics`]);
//! - in front of all of them, CORS and a per-client request limit ([`guard`]);
//! - `/api/admin/` when `api.admin_token` is set: bans, a message to every miner,
//!   the block-withholding report ([`admin`]) and wallet payouts by hand
//!   ([`admin_payouts`]);
//! - the dashboard at `/`: one static page (`dashboard.html`, compiled in) that reads the
//!   JSON API from the browser, so it needs no build step and shows what the API shows.
//!
//! Live figures come from memory ([`crate::observe::stats::PoolStats`]); history, accounts, blocks
//! and payments from PostgreSQL. Errors are JSON `{"error", "status"}` with the status code:
//! 404 for an unknown pool id or address, 400 for bad parameters, 503 when the figure needs
//! a database that is not configured or not answering.

pub mod admin;
pub mod admin_payouts;
pub mod coinbase;
pub mod explorer;
pub mod guard;
pub mod history;
pub mod metrics;
pub mod miner_settings;
pub mod miningcore;
pub mod publicpool;
pub mod stream;
pub mod time;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use protocol::address::Network;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::chain::jobs::Job;
use crate::chain::node::Node;
use crate::config::{Mode, PayoutMethod, PoolConfig};
use crate::observe::stats::PoolStats;
use crate::store::Store;
use crate::store::writer::WriterStats;
use tokio::sync::watch;

/// The settings the API shows, fixed at start.
#[derive(Clone, Debug)]
pub struct PoolFacts {
    /// The pool's id in URLs (`api.pool_id`).
    pub id: String,
    /// SOLO or PPLNS.
    pub mode: Mode,
    /// The chain.
    pub network: Network,
    /// The pool's own address (PPLNS).
    pub pool_address: Option<String>,
    /// The Stratum port.
    pub stratum_port: u16,
    /// Starting, least and most difficulty.
    pub vardiff: (f64, f64, f64),
    /// Fee, percent.
    pub fee_percent: f64,
    /// PPLNS window factor.
    pub window_factor: f64,
    /// Confirmations before a block's reward is credited.
    pub confirmations: u64,
    /// Whether payments are sent.
    pub payments: bool,
    /// Least payment, satoshis.
    pub threshold: u64,
    /// Wallet payments or coinbase payouts.
    pub method: PayoutMethod,
    /// The payment thresholds a miner may set for itself (least, most), satoshis.
    pub miner_threshold: (u64, u64),
    /// Block explorer links.
    pub explorer: explorer::Explorer,
    /// This process's `stratum.instance_id`.
    pub instance_id: u8,
    /// Its name among the pool processes on the database (`observe::processes`).
    pub process: String,
}

impl PoolFacts {
    /// From the settings and the bound Stratum port.
    pub fn new(config: &PoolConfig, network: Network, stratum_port: u16) -> PoolFacts {
        PoolFacts {
            id: config.api.pool_id.clone(),
            mode: config.mode,
            network,
            pool_address: config.pool_address.clone(),
            stratum_port,
            instance_id: config.stratum.instance_id,
            process: String::new(),
            vardiff: (config.vardiff.start, config.vardiff.min, config.vardiff.max),
            fee_percent: config.payouts.fee_percent,
            window_factor: config.payouts.window_factor,
            confirmations: config.payouts.confirmations,
            payments: config.payouts.payments,
            threshold: config.payouts.threshold,
            method: config.payouts.method,
            miner_threshold: config.payouts.miner_threshold_bounds(),
            explorer: explorer::Explorer::new(&config.api.explorer, network),
        }
    }
}

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// Fixed facts.
    pub facts: Arc<PoolFacts>,
    /// Live counters, figures and latencies.
    pub stats: Arc<PoolStats>,
    /// The store, when a database is configured.
    pub store: Option<Store>,
    /// What the share writer has done.
    pub writer: Arc<WriterStats>,
    /// Whether this process does the bookkeeping now.
    pub leading: Arc<AtomicBool>,
    /// The nodes, in order of preference (`/api/network` asks them).
    pub nodes: Vec<Node>,
    /// The current job (`/api/coinbase` shows its outputs).
    pub job: watch::Receiver<Option<Arc<Job>>>,
    /// The admin API, when `api.admin_token` is set.
    pub admin: Option<Arc<admin::Admin>>,
    /// CORS and the per-client request limit.
    pub guard: Arc<guard::Guard>,
    /// Fires when the pool stops: open push streams end, so the server can.
    pub shutdown: CancellationToken,
}

/// The router: the dashboard, the JSON API and `/metrics`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/api/health", get(miningcore::health))
        .route("/api/pools", get(miningcore::pools))
        .route("/api/pools/{id}", get(miningcore::pool))
        .route("/api/pools/{id}/performance", get(miningcore::performance))
        .route("/api/pools/{id}/miners", get(miningcore::miners))
        .route("/api/pools/{id}/miners/{address}", get(miningcore::miner))
        .route(
            "/api/pools/{id}/miners/{address}/payments",
            get(miningcore::miner_payments),
        )
        .route(
            "/api/pools/{id}/miners/{address}/settings",
            get(miner_settings::get).post(miner_settings::post),
        )
        .route(
            "/api/pools/{id}/miners/{address}/balancechanges",
            get(history::balance_changes),
        )
        .route(
            "/api/pools/{id}/miners/{address}/earnings/daily",
            get(history::earnings_daily),
        )
        .route("/api/v2/pools/{id}/blocks", get(history::blocks_v2))
        .route("/api/v2/pools/{id}/payments", get(history::payments_v2))
        .route(
            "/api/v2/pools/{id}/miners/{address}/payments",
            get(history::miner_payments_v2),
        )
        .route(
            "/api/v2/pools/{id}/miners/{address}/balancechanges",
            get(history::balance_changes_v2),
        )
        .route(
            "/api/v2/pools/{id}/miners/{address}/earnings/daily",
            get(history::earnings_daily_v2),
        )
        .route("/api/pools/{id}/stream", get(stream::stream))
        .route("/api/pools/{id}/blocks", get(miningcore::blocks))
        .route("/api/pools/{id}/payments", get(miningcore::payments))
        .route("/api/coinbase", get(coinbase::current))
        .route("/api/coinbase/{address}", get(coinbase::of_address))
        .route("/api/client/{address}", get(publicpool::client))
        .route("/api/client/{address}/chart", get(publicpool::client_chart))
        .route("/api/client/{address}/{worker}", get(publicpool::worker))
        .route(
            "/api/client/{address}/{worker}/{session}",
            get(publicpool::session),
        )
        .route("/api/info", get(publicpool::info))
        .route("/api/info/chart", get(publicpool::info_chart))
        .route("/api/pool", get(publicpool::pool))
        .route("/api/network", get(publicpool::network))
        .route("/metrics", get(metrics::metrics))
        .route("/api/admin/bans", get(admin::bans))
        .route("/api/admin/bans/{ip}", delete(admin::lift))
        .route("/api/admin/message", post(admin::message))
        .route("/api/admin/withholding", get(admin::withholding))
        .route("/api/admin/processes", get(admin::processes))
        .route(
            "/api/admin/miners/{address}/settings",
            post(admin::miner_settings),
        )
        .route("/api/admin/reload", post(admin::reload))
        .route("/api/admin/payouts", get(admin_payouts::list))
        .route("/api/admin/payouts/round", post(admin_payouts::round))
        .route("/api/admin/payouts/{id}/retry", post(admin_payouts::retry))
        .route(
            "/api/admin/payouts/{id}/cancel",
            post(admin_payouts::cancel),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// The dashboard page.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// Binds `bind` and serves until `cancel` fires; returns the bound address.
pub async fn start(
    bind: SocketAddr,
    reuse_port: bool,
    state: ApiState,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    // With `stratum.reuse_port` the API shares its port during a rolling restart too.
    let listener = crate::net::bind(bind, reuse_port)?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await });
        if let Err(e) = serve.await {
            warn!(error = %e, "the HTTP API stopped");
        }
    });
    Ok((addr, task))
}

/// An API error: a status code and a message, as JSON.
#[derive(Debug)]
pub enum ApiError {
    /// 400.
    BadRequest(String),
    /// 403: a signature that does not verify.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: the request contradicts the pool's state (a replayed signature, a setting the
    /// pool does not have).
    Conflict(String),
    /// 503: no database, or it does not answer.
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (
            status,
            axum::Json(json!({"error": message, "status": status.as_u16()})),
        )
            .into_response()
    }
}

/// A database error is logged here, never shown: its text can name tables, hosts and
/// users. The client gets a short 503.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "API request failed on the database");
        ApiError::Unavailable("the database did not answer; try again later".into())
    }
}

/// An address from a path, checked against the pool's network: a typo is a 400.
pub(crate) fn check_address(state: &ApiState, text: &str) -> Result<(), ApiError> {
    protocol::address::parse(text, state.facts.network)
        .map(|_| ())
        .map_err(|e| ApiError::BadRequest(format!("not an address on this pool's network: {e}")))
}

/// Paging as Miningcore takes it: `page` from 0, `pageSize` 1..=500 (default 15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl Page {
    /// From the query string.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Page, ApiError> {
        let number =
            |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| match q.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "{name} must be a whole number from {} to {}, not {v:?}",
                            range.start(),
                            range.end()
                        ))
                    }),
            };
        let page = number("page", 0, 0..=1_000_000)?;
        let size = number("pageSize", 15, 1..=500)?;
        Ok(Page {
            offset: page * size,
            limit: size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_bounds_and_errors() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            Page::from_query(&q(&[])).unwrap(),
            Page {
                offset: 0,
                limit: 15
            }
        );
        assert_eq!(
            Page::from_query(&q(&[("page", "2"), ("pageSize", "50")])).unwrap(),
            Page {
                offset: 100,
                limit: 50
            }
        );
        for bad in [
            ("page", "-1"),
            ("pageSize", "0"),
            ("pageSize", "501"),
            ("page", "x"),
        ] {
            assert!(matches!(
                Page::from_query(&q(&[bad])),
                Err(ApiError::BadRequest(_))
            ));
        }
    }
}
