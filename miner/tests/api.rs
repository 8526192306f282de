//! The JSON API: xmrig's /2/summary shape, and the bearer token.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use miner::api::{ApiState, router};
use miner::stats::Stats;

#[tokio::test]
async fn summary_with_and_without_the_token() {
    let t0 = Instant::now();
    let stats = Arc::new(Stats::new(t0, "avx512"));
    for s in 0..=12u64 {
        stats.sample(
            t0 + Duration::from_secs(s),
            vec![30_000_000 * s, 31_000_000 * s],
        );
    }
    stats.accepted(0.5);
    stats.rejected("Stale share", true);
    stats.set_pool(Some("stratum+tcp://127.0.0.1:3333".into()), t0);
    let state = ApiState {
        stats,
        token: Some("s3cret".into()),
        worker: "addr.rig1".into(),
        threads: 2,
        engine: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let (anon, authed) = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://127.0.0.1:{port}/2/summary");
        let anon = agent.get(&url).call().unwrap().status().as_u16();
        let mut resp = agent
            .get(&url)
            .header("Authorization", "Bearer s3cret")
            .call()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        (anon, body)
    })
    .await
    .unwrap();
    assert_eq!(anon, 401);
    assert_eq!(authed["worker_id"], "addr.rig1");
    assert_eq!(authed["hashrate"]["total"][0], 61_000_000.0);
    assert_eq!(authed["hashrate"]["threads"].as_array().unwrap().len(), 2);
    assert_eq!(authed["results"]["shares_good"], 1);
    assert_eq!(authed["results"]["shares_total"], 2);
    assert_eq!(authed["results"]["reject_reasons"]["Stale share"], 1);
    assert_eq!(authed["connection"]["pool"], "stratum+tcp://127.0.0.1:3333");
    assert_eq!(authed["backend"], "avx512");
}
