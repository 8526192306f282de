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
        backend_reason: Some("avx512: first of the usual ranking".into()),
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
    assert_eq!(
        authed["backend_reason"],
        "avx512: first of the usual ranking"
    );
}

/// Pause and resume as xmrig's API takes them: only with the token; the engine stops and
/// the 10 s hash rate falls to zero, then both come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_through_the_api() {
    use miner::engine::Engine;
    use miner::hash::Backend;
    let (tx, _rx) = miner::engine::solution_channel();
    let engine = Arc::new(Engine::start(Backend::supported()[0], 1, tx).unwrap());
    let work = miner::engine::Work {
        job_id: "j".into(),
        header: protocol::BlockHeader {
            version: 0x2000_0000,
            prev_hash: protocol::sha256d(b"pause"),
            merkle_root: protocol::Hash256::ZERO,
            time: 1_795_000_000,
            bits: protocol::CompactTarget(0x207fffff),
            nonce: 0,
        },
        target: protocol::Target::ZERO,
        version_mask: 0,
        extranonce: None,
    };
    engine.set_work(work);
    let t0 = Instant::now();
    let stats = Arc::new(Stats::new(t0, engine.backend().name()));
    let counts = |e: &Engine| -> Vec<u64> {
        e.stats()
            .iter()
            .map(|s| s.hashes.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    };
    let serve = |token: Option<&str>| {
        let state = ApiState {
            stats: stats.clone(),
            token: token.map(str::to_string),
            worker: "addr.rig1".into(),
            threads: 1,
            engine: Some(engine.clone()),
            backend_reason: None,
        };
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move { axum::serve(listener, router(state)).await });
            port
        }
    };
    let (open, guarded) = (serve(None).await, serve(Some("s3cret")).await);
    let call = move |port: u16, token: Option<&'static str>, method: &'static str| {
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let mut request = agent.post(&format!("http://127.0.0.1:{port}/json_rpc"));
            if let Some(t) = token {
                request = request.header("Authorization", format!("Bearer {t}"));
            }
            let mut resp = request
                .send(format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}"}}"#))
                .unwrap();
            let status = resp.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
            (status, body)
        })
    };
    let summary = move |port: u16| {
        tokio::task::spawn_blocking(move || {
            let mut resp = ureq::get(&format!("http://127.0.0.1:{port}/2/summary"))
                .header("Authorization", "Bearer s3cret")
                .call()
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&resp.body_mut().read_to_string().unwrap())
                .unwrap()
        })
    };

    // Hashing: a 10 s rate above zero.
    stats.sample(t0, counts(&engine));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stats.sample(t0 + Duration::from_secs(2), counts(&engine));
    let s = summary(guarded).await.unwrap();
    assert!(s["hashrate"]["total"][0].as_f64().unwrap() > 0.0, "{s}");
    assert_eq!(s["paused"], false);

    // No token configured: control refused. Wrong token: refused.
    let (status, _) = call(open, None, "pause").await.unwrap();
    assert_eq!(status, 403);
    let (status, _) = call(guarded, Some("wrong"), "pause").await.unwrap();
    assert_eq!(status, 401);
    assert!(!engine.is_paused());
    let (_, body) = call(guarded, Some("s3cret"), "stop-everything")
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], -32601, "{body}");

    // Paused: nothing more is hashed; the 10 s rate falls to zero.
    let (status, body) = call(guarded, Some("s3cret"), "pause").await.unwrap();
    assert_eq!(
        (status, &body["id"], &body["result"]["status"]),
        (200, &json(7), &json("OK"))
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = counts(&engine);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(counts(&engine), stopped, "no hashing while paused");
    stats.sample(t0 + Duration::from_secs(14), stopped.clone());
    stats.sample(t0 + Duration::from_secs(16), stopped);
    let s = summary(guarded).await.unwrap();
    assert_eq!(s["paused"], true);
    assert_eq!(s["hashrate"]["total"][0].as_f64(), Some(0.0), "{s}");

    // Resumed: hashing again, and the rate with it.
    let (_, body) = call(guarded, Some("s3cret"), "resume").await.unwrap();
    assert_eq!(body["result"]["paused"], false, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stats.sample(t0 + Duration::from_secs(18), counts(&engine));
    let s = summary(guarded).await.unwrap();
    assert_eq!(s["paused"], false);
    assert!(s["hashrate"]["total"][0].as_f64().unwrap() > 0.0, "{s}");
}

fn json<T: Into<serde_json::Value>>(v: T) -> serde_json::Value {
    v.into()
}
