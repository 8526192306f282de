//! What stands in front of every API request: CORS for the origins the operator lists
//! (`api.cors_origins`) and a per-client request limit on the public API
//! (`api.rate_limit`, requests per minute; `/metrics` and `/api/admin/` are not
//! limited). The client is the TCP peer, or for a request from one of
//! `api.trusted_proxies` the last address of its `X-Forwarded-For` (what the proxy
//! itself appended). A client over its limit gets `429` with `Retry-After` until its
//! minute is over, counted in `/metrics` (`pool_api_rate_limited_total`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::net::Trusted;
use crate::observe::api::ApiState;

/// Clients remembered at most before the ones of past minutes are forgotten.
const PRUNE_ABOVE: usize = 65_536;

/// The guard's settings and counts.
#[derive(Debug, Default)]
pub struct Guard {
    /// Allowed origins (`*` for any).
    origins: Vec<String>,
    /// Requests per minute per client; 0: no limit.
    per_minute: u32,
    proxies: Trusted,
    /// Per client: (minute, requests in it).
    counts: Mutex<HashMap<IpAddr, (u64, u32)>>,
    /// Requests refused with 429.
    pub limited: AtomicU64,
}

impl Guard {
    /// A guard for these origins, limit and proxies.
    pub fn new(origins: Vec<String>, per_minute: u32, proxies: Trusted) -> Guard {
        Guard {
            origins,
            per_minute,
            proxies,
            ..Guard::default()
        }
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if any.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.origins.iter().any(|o| o == "*") {
            return Some(HeaderValue::from_static("*"));
        }
        self.origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    /// Counts a request of `client` at unix second `now`; the seconds to wait when it is
    /// over the limit.
    pub fn charge(&self, client: IpAddr, now: u64) -> Option<u64> {
        if self.per_minute == 0 {
            return None;
        }
        let minute = now / 60;
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() > PRUNE_ABOVE {
            counts.retain(|_, (m, _)| *m == minute);
        }
        let entry = counts.entry(client).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            self.limited.fetch_add(1, Ordering::Relaxed);
            return Some(60 - now % 60);
        }
        entry.1 += 1;
        None
    }

    /// Who sent the request: the peer, or the address a trusted proxy appended.
    fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.proxies.contains(peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|a| a.trim().parse().ok());
        Some(forwarded.unwrap_or(peer))
    }
}

/// Whether `path` is under the limit (the public API and the dashboard).
fn limited_path(path: &str) -> bool {
    !(path == "/metrics" || path.starts_with("/api/admin/"))
}

/// The middleware.
pub async fn guard(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let guard = &state.guard;
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| guard.allow(o));
    // A CORS preflight from an allowed origin is answered here.
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        && let Some(origin) = &origin
    {
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()),
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, DELETE"),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("Authorization, Content-Type"),
                ),
                (
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                ),
                (header::VARY, HeaderValue::from_static("Origin")),
            ],
        )
            .into_response();
    }
    if limited_path(request.uri().path()) {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(client) = guard.client(peer, request.headers())
            && let Some(wait) = guard.charge(client, crate::observe::api::time::now())
        {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(json!({
                    "error": "too many requests from this address (api.rate_limit); try again later",
                    "status": 429,
                })),
            )
                .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&wait.to_string()).unwrap_or(HeaderValue::from_static("60")),
            );
            add_cors(&mut response, origin.as_ref());
            return response;
        }
    }
    let mut response = next.run(request).await;
    add_cors(&mut response, origin.as_ref());
    response
}

fn add_cors(response: &mut Response, origin: Option<&HeaderValue>) {
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_client_gets_its_requests_per_minute_then_waits_for_the_next() {
        let g = Guard::new(Vec::new(), 3, Trusted::default());
        let t = 6_000_000 + 50; // 50 s into a minute
        for _ in 0..3 {
            assert_eq!(g.charge(ip(1), t), None);
        }
        assert_eq!(g.charge(ip(1), t + 1), Some(9), "until the minute is over");
        assert_eq!(g.charge(ip(2), t + 1), None, "others are not affected");
        assert_eq!(g.charge(ip(1), t + 10), None, "a new minute");
        assert_eq!(g.limited.load(Ordering::Relaxed), 1);
        let off = Guard::new(Vec::new(), 0, Trusted::default());
        assert!((0..1000).all(|_| off.charge(ip(1), t).is_none()));
    }

    #[test]
    fn origins_are_allowed_by_name_or_all() {
        let g = Guard::new(vec!["https://stats.example".into()], 0, Trusted::default());
        assert_eq!(
            g.allow("https://stats.example"),
            Some(HeaderValue::from_static("https://stats.example"))
        );
        assert_eq!(g.allow("https://evil.example"), None);
        let any = Guard::new(vec!["*".into()], 0, Trusted::default());
        assert_eq!(
            any.allow("https://x.example"),
            Some(HeaderValue::from_static("*"))
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_it_appended() {
        let proxies = Trusted::parse(&["127.0.0.1".to_string()]).unwrap();
        let g = Guard::new(Vec::new(), 1, proxies);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 10.0.0.9"),
        );
        let proxy = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(g.client(Some(proxy), &headers), Some(ip(9)));
        assert_eq!(g.client(Some(proxy), &HeaderMap::new()), Some(proxy));
        assert_eq!(
            g.client(Some(ip(5)), &headers),
            Some(ip(5)),
            "not a proxy: its own"
        );
    }
}
