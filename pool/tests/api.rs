//! The HTTP API and `/metrics` against a real mining run: our CPU miners on a regtest node
//! pair, a real PostgreSQL, blocks confirmed and paid, then every endpoint read back and
//! checked against the database and the pool's own counters.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use serde_json::json;
use testkit::{RegtestPair, TempPostgres};

/// 2^-33: below regtest's network difficulty, so most shares are not blocks.
const D: &str = "1.1641532182693481e-10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_a_real_mining_run() {
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = pair.node(0);
    // Mature coins in the pool's wallet, so payments can be sent at once.
    wallet.generate(110).unwrap();
    let pool_address = wallet.new_address().unwrap();
    let mut cfg = pplns_config(
        vec![node_config(wallet)],
        pool_address.clone(),
        dir.path(),
        &pg,
    );
    cfg.api.pool_id = "regtest1".into();
    cfg.payouts.confirmations = 2;
    cfg.payouts.threshold = 1000;
    cfg.payouts.payment_interval_secs = 1;
    cfg.database.stats_interval_secs = 1;
    cfg.api.explorer.block = Some("https://explorer.example/block/{height}".into());
    cfg.api.explorer.tx = Some("https://explorer.example/tx/{txid}".into());
    let mut pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.expect("the API is on by default");
    let db = pool.running.store.clone().unwrap().db().clone();

    // A fresh pool: healthy once it has a job, no miners, no blocks.
    until("a job", Duration::from_secs(30), || async {
        http_get(api, "/api/health").await.0 == 200
    })
    .await;
    // A wallet-paying pool has no coinbase payouts to show.
    assert_eq!(http_get(api, "/api/coinbase").await.0, 404);
    let (_, fresh) = http_json(api, "/api/pools/regtest1").await;
    assert_eq!(fresh["pool"]["poolStats"]["connectedMiners"], 0);
    assert_eq!(fresh["pool"]["totalBlocks"], 0);
    let (status, empty) = http_json(api, "/api/pools/regtest1/blocks").await;
    assert_eq!((status, empty.as_array().map(Vec::len)), (200, Some(0)));

    let alice = pair.node(1).new_address().unwrap();
    let bob = pair.node(1).new_address().unwrap();
    let miners = [
        start_miner_with(pool.port(), &format!("{alice}.rig1"), &format!("x,d={D}")),
        start_miner_with(pool.port(), &format!("{bob}.rig2"), &format!("x,d={D}")),
    ];
    pool.accepted_blocks(6, Duration::from_secs(60)).await;
    until("payments in the API", Duration::from_secs(60), || async {
        let (_, v) = http_json(api, "/api/pools/regtest1/payments").await;
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    until("worker samples", Duration::from_secs(30), || async {
        let (_, v) = http_json(api, &format!("/api/pools/regtest1/miners/{alice}?i=minute")).await;
        v["performanceSamples"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;

    // Live figures while both miners are connected.
    let (status, pools) = http_json(api, "/api/pools").await;
    assert_eq!(status, 200);
    let p = &pools["pools"][0];
    assert_eq!(p["id"], "regtest1");
    assert_eq!(p["coin"]["algorithm"], "SHA256d");
    assert_eq!(p["paymentProcessing"]["payoutScheme"], "PPLNS");
    assert_eq!(p["address"], pool_address.as_str());
    assert_eq!(p["poolStats"]["connectedMiners"], 2);
    assert_eq!(p["poolStats"]["connectedWorkers"], 2);
    assert!(p["poolStats"]["poolHashrate"].as_f64().unwrap() > 0.0);
    assert!(p["totalBlocks"].as_i64().unwrap() >= 6);
    assert!(p["totalPaid"].as_f64().unwrap() > 0.0);
    let chain_height: u64 = wallet
        .call("getblockcount", serde_json::json!([]))
        .unwrap()
        .as_u64()
        .unwrap();
    let shown = p["networkStats"]["blockHeight"].as_u64().unwrap();
    assert!(
        shown + 2 >= chain_height && shown <= chain_height,
        "{shown} vs {chain_height}"
    );
    let (_, listed) = http_json(api, "/api/pools/regtest1/miners?pageSize=10").await;
    let listed: HashSet<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["miner"].as_str().unwrap())
        .collect();
    assert_eq!(listed, HashSet::from([alice.as_str(), bob.as_str()]));
    let (status, a) = http_json(api, &format!("/api/pools/regtest1/miners/{alice}?i=minute")).await;
    assert_eq!(status, 200);
    assert!(
        a["performance"]["workers"]["rig1"]["hashrate"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // Samples of a young pool are rated over its age, not over the whole ten minutes.
    let live = a["performance"]["workers"]["rig1"]["hashrate"]
        .as_f64()
        .unwrap();
    let samples = a["performanceSamples"].as_array().unwrap();
    let sampled = samples.last().unwrap()["workers"]["rig1"]["hashrate"]
        .as_f64()
        .unwrap();
    assert!(
        sampled > live / 5.0 && sampled < live * 5.0,
        "sampled {sampled} vs live {live}"
    );

    for m in &miners {
        m.cancel.cancel();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Best difficulties: the highest share difficulty stored, per worker, address and pool.
    let highest = |address: Option<String>| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, f64>(
                "SELECT max(share_difficulty) FROM shares WHERE $1::text IS NULL OR address = $1",
            )
            .bind(address)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    let (_, a) = http_json(api, &format!("/api/pools/regtest1/miners/{alice}")).await;
    let alice_best = highest(Some(alice.clone())).await;
    assert_eq!(
        a["bestDifficulty"]["allTime"].as_f64(),
        Some(alice_best),
        "{a}"
    );
    assert_eq!(
        a["workerBestDifficulty"]["rig1"]["allTime"].as_f64(),
        Some(alice_best)
    );
    assert!(a["bestDifficulty"]["allTimeAt"].is_string());
    assert!(
        a["bestDifficulty"]["round"].as_f64().unwrap() <= alice_best,
        "{a}"
    );
    let (_, p) = http_json(api, "/api/pools/regtest1").await;
    let pool_best = highest(None).await;
    assert_eq!(
        p["pool"]["poolStats"]["bestDifficulty"]["allTime"].as_f64(),
        Some(pool_best)
    );
    assert!(pool_best >= alice_best);

    // Accounts agree with the database.
    for address in [&alice, &bob] {
        let (_, m) = http_json(api, &format!("/api/pools/regtest1/miners/{address}")).await;
        let (balance, paid): (i64, i64) =
            sqlx::query_as("SELECT amount, paid FROM balances WHERE address = $1")
                .bind(address)
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(m["pendingBalance"].as_f64().unwrap(), balance as f64 / 1e8);
        // This round's work, from per-minute totals plus raw shares, equals the raw sum.
        let round: f64 = sqlx::query_scalar(
            "SELECT coalesce(sum(difficulty), 0) FROM shares
             WHERE address = $1 AND time > (SELECT max(found_at) FROM blocks)",
        )
        .bind(address)
        .fetch_one(&db)
        .await
        .unwrap();
        let shown = m["pendingShares"].as_f64().unwrap();
        assert!((shown - round).abs() <= round * 1e-9, "{shown} vs {round}");
        assert_eq!(m["totalPaid"].as_f64().unwrap(), paid as f64 / 1e8);
        let (_, own) = http_json(
            api,
            &format!("/api/pools/regtest1/miners/{address}/payments?pageSize=500"),
        )
        .await;
        let sum: f64 = own
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["amount"].as_f64().unwrap())
            .sum();
        assert!((sum - paid as f64 / 1e8).abs() < 1e-8, "{sum} vs {paid}");
    }
    // Miningcore's account history: the balance changes add up to the balance, the daily
    // payments to what was paid, and the /api/v2/ forms page the same rows.
    for address in [&alice, &bob] {
        let path = |p: &str| format!("/api/pools/regtest1/miners/{address}/{p}");
        let v2 = |p: &str| format!("/api/v2/pools/regtest1/miners/{address}/{p}");
        let sum = |v: &serde_json::Value| -> f64 {
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| c["amount"].as_f64().unwrap())
                .sum()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let changes = loop {
            let (balance, paid): (i64, i64) =
                sqlx::query_as("SELECT amount, paid FROM balances WHERE address = $1")
                    .bind(address)
                    .fetch_one(&db)
                    .await
                    .unwrap();
            let (_, changes) = http_json(api, &path("balancechanges?pageSize=500")).await;
            let (_, days) = http_json(api, &path("earnings/daily?pageSize=500")).await;
            if (sum(&changes) - balance as f64 / 1e8).abs() < 1e-8
                && (sum(&days) - paid as f64 / 1e8).abs() < 1e-8
            {
                break changes;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{changes} vs {balance}; {days} vs {paid}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let changes = changes.as_array().unwrap().clone();
        assert!(changes.iter().any(|c| c["amount"].as_f64().unwrap() > 0.0));
        for c in &changes {
            let usage = c["usage"].as_str().unwrap();
            assert!(
                usage.starts_with("Reward for block ") || usage.starts_with("Payment "),
                "{c}"
            );
            assert_eq!(
                (&c["poolId"], &c["address"]),
                (&json!("regtest1"), &json!(address))
            );
        }
        let (status, paged) = http_json(api, &v2("balancechanges?page=0&pageSize=2")).await;
        assert_eq!(status, 200, "{paged}");
        assert_eq!(paged["success"], json!(true));
        assert_eq!(paged["pageCount"], json!(changes.len().div_ceil(2)));
        assert_eq!(
            paged["result"].as_array().unwrap()[..],
            changes[..2.min(changes.len())]
        );
        let (_, days) = http_json(api, &path("earnings/daily")).await;
        let (_, paged) = http_json(api, &v2("earnings/daily")).await;
        assert_eq!((&paged["result"], &paged["pageCount"]), (&days, &json!(1)));
        assert!(
            days[0]["date"].as_str().unwrap().ends_with("T00:00:00Z"),
            "{days}"
        );
        let (_, own) = http_json(api, &path("payments?pageSize=500")).await;
        let (_, paged) = http_json(api, &v2("payments?pageSize=500")).await;
        assert_eq!((&paged["result"], &paged["pageCount"]), (&own, &json!(1)));
    }
    let (_, payments) = http_json(api, "/api/pools/regtest1/payments").await;
    let first = &payments[0];
    assert!(first["amount"].as_f64().unwrap() > 0.0);
    assert_eq!(
        first["transactionConfirmationData"].as_str().unwrap().len(),
        64
    );
    assert!(first["created"].as_str().unwrap().ends_with('Z'));
    let txid = first["transactionConfirmationData"].as_str().unwrap();
    assert_eq!(
        first["transactionInfoLink"],
        json!(format!("https://explorer.example/tx/{txid}"))
    );
    assert_eq!(
        first["addressInfoLink"],
        json!(null),
        "regtest: no usual explorer"
    );

    // Blocks: newest first, paged, with status and confirmation progress.
    let (_, page0) = http_json(api, "/api/pools/regtest1/blocks?page=0&pageSize=3").await;
    let (_, page1) = http_json(api, "/api/pools/regtest1/blocks?page=1&pageSize=3").await;
    let heights = |v: &serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| b["blockHeight"].as_i64().unwrap())
            .collect()
    };
    let (h0, h1) = (heights(&page0), heights(&page1));
    assert_eq!(
        page0[0]["infoLink"],
        json!(format!("https://explorer.example/block/{}", h0[0]))
    );
    let (_, v2) = http_json(api, "/api/v2/pools/regtest1/blocks?page=1&pageSize=3").await;
    assert_eq!(v2["result"], page1);
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(v2["pageCount"], json!((blocks + 2) / 3));
    let (_, v2) = http_json(api, "/api/v2/pools/regtest1/payments?pageSize=1").await;
    assert_eq!(v2["result"][0], payments[0]);
    assert_eq!((h0.len(), h1.len()), (3, 3));
    assert!(h0.windows(2).all(|w| w[0] >= w[1]) && h0[2] >= h1[0]);
    let all =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM blocks WHERE status = 'confirmed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(all > 0);
    let (_, many) = http_json(api, "/api/pools/regtest1/blocks?pageSize=500").await;
    let confirmed: Vec<&serde_json::Value> = many
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "confirmed")
        .collect();
    assert_eq!(confirmed.len() as i64, all);
    assert!(confirmed.iter().all(|b| b["confirmationProgress"] == 1.0));
    assert!(
        [alice.as_str(), bob.as_str()].contains(&many[0]["miner"].as_str().unwrap()),
        "{}",
        many[0]
    );

    let (status, perf) = http_json(api, "/api/pools/regtest1/performance?r=hour&i=minute").await;
    assert_eq!(status, 200);
    let stats = perf["stats"].as_array().unwrap();
    assert!(!stats.is_empty());
    assert!(
        stats
            .iter()
            .any(|s| s["poolHashrate"].as_f64().unwrap() > 0.0)
    );

    // Percentiles of the latencies, from the same histograms as /metrics.
    let (_, health) = http_json(api, "/api/health").await;
    let ack = &health["latency"]["shareAck"];
    assert!(ack["count"].as_u64().unwrap() > 0);
    let (p50, p99) = (ack["p50"].as_f64().unwrap(), ack["p99"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{ack}");

    // Errors: JSON with the status code.
    for (path, want) in [
        ("/api/pools/nope".to_string(), 404),
        ("/api/pools/nope/blocks".to_string(), 404),
        ("/api/v2/pools/nope/blocks".to_string(), 404),
        (
            "/api/v2/pools/regtest1/payments?pageSize=501".to_string(),
            400,
        ),
        (
            "/api/pools/regtest1/miners/not-an-address/balancechanges".to_string(),
            400,
        ),
        ("/api/pools/regtest1/blocks?pageSize=0".to_string(), 400),
        ("/api/pools/regtest1/blocks?page=x".to_string(), 400),
        ("/api/pools/regtest1/performance?i=week".to_string(), 400),
        ("/api/pools/regtest1/miners/not-an-address".to_string(), 400),
        // A valid address the pool never saw.
        (
            format!(
                "/api/pools/regtest1/miners/{}",
                pair.node(1).new_address().unwrap()
            ),
            404,
        ),
        ("/api/nothing".to_string(), 404),
    ] {
        let (status, body) = http_json(api, &path).await;
        assert_eq!(status, want, "{path}: {body}");
        assert_eq!(body["status"], want, "{path}");
        assert!(!body["error"].as_str().unwrap().is_empty(), "{path}");
    }

    // /metrics parses, and agrees with the pool's counters.
    let (status, text) = http_get(api, "/metrics").await;
    assert_eq!(status, 200);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} {label:?} missing:\n{text}"));
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: {other:?}"),
        }
    };
    let snap = pool.running.stats.snapshot();
    assert_eq!(
        value("pool_shares_total", Some(("result", "accepted"))),
        snap.accepted as f64
    );
    assert_eq!(
        value("pool_blocks_total", Some(("result", "accepted"))),
        snap.blocks_accepted as f64
    );
    assert_eq!(
        value("pool_blocks", Some(("status", "confirmed"))),
        all as f64
    );
    assert!(value("pool_job_age_seconds", None) >= 0.0);
    let histogram = |name: &str| -> Vec<prometheus_parse::HistogramCount> {
        scrape
            .samples
            .iter()
            .find_map(|s| match (&s.value, s.metric == name) {
                (prometheus_parse::Value::Histogram(h), true) => Some(h.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("histogram {name} missing"))
    };
    for name in [
        "pool_template_fetch_seconds",
        "pool_submitblock_seconds",
        "pool_share_ack_seconds",
    ] {
        let buckets = histogram(name);
        let total = buckets.last().unwrap().count;
        assert!(total > 0.0, "{name} recorded nothing");
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "{name}"
        );
    }
    // Shares still waiting for their answer when a miner left are not timed.
    assert!(histogram("pool_share_ack_seconds").last().unwrap().count <= snap.accepted as f64);
    pool.stop().await;
}
