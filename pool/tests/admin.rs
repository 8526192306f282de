//! The admin API against a running pool on a regtest pair: the token refused and
//! accepted, a message reaching a connected miner, a ban listed, felt and lifted; no
//! admin API at all without a token; the withholding report telling a miner that drops
//! its blocks from one that does not; and CORS and the per-client limit of the public API.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::scripted::*;
use common::*;
use protocol::Target;
use protocol::stratum::{Message, Method};
use serde_json::{Value, json};
use testkit::RegtestPair;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "test-admin-token-0123456789";

/// An admin request (see `http_call`).
async fn admin(
    api: SocketAddr,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    http_call(api, method, path, token, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lifts_bans_and_speaks_to_miners_with_its_token_only() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = solo_config(pair.node(0), dir.path());
    cfg.api.admin_token = Some(TOKEN.into());
    // One junk connection is enough for a ban.
    cfg.limits.max_bad_lines = 2;
    cfg.limits.ban_after_violations = 1;
    let pool = TestPool::start(cfg).await;
    let (port, api) = (pool.port(), pool.running.api_addr.unwrap());
    let user = format!("{}.rig", pair.node(1).new_address().unwrap());
    let mut miner = Miner::open(port, &user).await;

    // The token: missing, wrong, right.
    let message = Some(json!({"text": "Maintenance at 14:00 UTC"}));
    let (status, body) = admin(api, "POST", "/api/admin/message", None, message.clone()).await;
    assert_eq!(status, 401, "{body}");
    let wrong = Some("test-admin-token-0123456780");
    let (status, _) = admin(api, "POST", "/api/admin/message", wrong, message.clone()).await;
    assert_eq!(status, 401);
    let (status, body) = admin(api, "POST", "/api/admin/message", Some(TOKEN), message).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connections"], json!(1), "{body}");
    // The miner is shown the line.
    loop {
        match next(&mut miner.conn).await.expect("still connected") {
            Message::Request {
                method: Method::ShowMessage(text),
                ..
            } => {
                assert_eq!(text, "Maintenance at 14:00 UTC");
                break;
            }
            _ => continue,
        }
    }
    let (status, _) = admin(
        api,
        "POST",
        "/api/admin/message",
        Some(TOKEN),
        Some(json!({"text": ""})),
    )
    .await;
    assert_eq!(status, 400, "an empty message");

    // Junk gets the address banned: it is listed and new connections are turned away.
    let (status, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!((status, body), (200, json!({"bans": []})));
    let mut junk = connect(port).await;
    junk.get_mut().write_all(b"junk\njunk\n").await.unwrap();
    // Answered with errors, then closed.
    while next(&mut junk).await.is_some() {}
    let (status, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["bans"][0]["address"], json!("127.0.0.1"), "{body}");
    assert!(
        body["bans"][0]["secondsLeft"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert!(!answered(port).await, "a banned address is turned away");

    // Lifted: listed no more, and the address connects again.
    let (status, _) = admin(api, "DELETE", "/api/admin/bans/127.0.0.1", None, None).await;
    assert_eq!(status, 401);
    // The first lifts it; the second finds nothing to lift.
    let lift = || {
        admin(
            api,
            "DELETE",
            "/api/admin/bans/127.0.0.1",
            Some(TOKEN),
            None,
        )
    };
    // (A pool without a database has no other processes to tell.)
    assert_eq!(
        lift().await,
        (200, json!({"lifted": "127.0.0.1", "allProcesses": false}))
    );
    assert_eq!(lift().await.0, 404, "not banned any more");
    let (status, _) = admin(
        api,
        "DELETE",
        "/api/admin/bans/not-an-ip",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (_, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(body, json!({"bans": []}));
    assert!(answered(port).await, "the address connects again");
    // A SOLO pool has no wallet payouts to act on.
    let round = "/api/admin/payouts/round";
    let (status, body) = admin(api, "POST", round, Some(TOKEN), None).await;
    assert_eq!(status, 409, "{body}");
    pool.cancel.cancel();

    // Without a token there is no admin API: 404, whatever the request carries.
    let dir = tempfile::tempdir().unwrap();
    let cfg = solo_config(pair.node(0), dir.path());
    let plain = TestPool::start(cfg).await;
    let api = plain.running.api_addr.unwrap();
    for token in [None, Some(TOKEN)] {
        let (status, _) = admin(api, "GET", "/api/admin/bans", token, None).await;
        assert_eq!(status, 404);
    }
    plain.cancel.cancel();
}

/// Submits `shares` accepted shares one at a time; a withholder skips every nonce that
/// would be a block, an honest miner submits the first share it finds whatever it is and,
/// after a block, waits for the work on top of it. The blocks found.
async fn mine(miner: &mut Miner, shares: usize, withhold: bool) -> u64 {
    let share = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
    let (mut accepted, mut blocks, mut next_nonce) = (0, 0, 0u32);
    let mut job_id = String::new();
    while accepted < shares {
        let n = miner.job().await;
        if n.job_id != job_id {
            (job_id, next_nonce) = (n.job_id.clone(), 0);
        }
        let network = Target::from_compact(n.nbits).unwrap();
        let (nonce, block) = (next_nonce..)
            .find_map(|x| {
                let h = miner.hash(&n, x, n.ntime);
                let block = network.is_met_by(&h);
                (share.is_met_by(&h) && !(withhold && block)).then_some((x, block))
            })
            .unwrap();
        next_nonce = nonce + 1;
        if miner.submit(&n, nonce, n.ntime, None).await["result"] != json!(true) {
            continue; // stale: a block changed the work meanwhile
        }
        accepted += 1;
        if block {
            blocks += 1;
            while miner.notifies.last().unwrap().prev_hash == n.prev_hash {
                if let Some(Message::Request {
                    method: Method::Notify(next),
                    ..
                }) = next(&mut miner.conn).await
                {
                    miner.notifies.push(next);
                }
            }
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_that_withholds_blocks_is_flagged_and_an_honest_one_is_not() {
    let setup = Setup::start();
    let pair = &setup.pair;
    let mut cfg = setup.config();
    cfg.api.admin_token = Some(TOKEN.into());
    cfg.alerts.withholding_check_secs = 1;
    let pool = TestPool::start(cfg).await;
    let (port, api) = (pool.port(), pool.running.api_addr.unwrap());
    let withholder = pair.node(1).new_address().unwrap();
    let honest = pair.node(1).new_address().unwrap();

    // 40 shares each at 3e-10 on regtest's 4.66e-10: about 26 blocks expected of each.
    let mut w = Miner::open(port, &format!("{withholder}.rig")).await;
    assert_eq!(mine(&mut w, 40, true).await, 0);
    let mut h = Miner::open(port, &format!("{honest}.rig")).await;
    let found = mine(&mut h, 40, false).await;

    // The last block reaches the database a moment after its share is answered.
    let path = "/api/admin/withholding?hours=1";
    let honest_found = |body: &Value| {
        body["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["address"] == json!(honest)))
            .map(|l| l["foundBlocks"].clone())
    };
    until(
        "every block in the report",
        Duration::from_secs(20),
        || async {
            let (_, body) = admin(api, "GET", path, Some(TOKEN), None).await;
            honest_found(&body) == Some(json!(found))
        },
    )
    .await;
    let (status, body) = admin(api, "GET", path, Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    let line = |address: &str| {
        body["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["address"] == json!(address))
            .cloned()
            .unwrap_or_else(|| panic!("{address} missing: {body}"))
    };
    let (w, h) = (line(&withholder), line(&honest));
    println!("withholder: {w}\nhonest: {h}");
    // First in the report, no block for some 26 expected: by chance e^-26, about 5e-12.
    assert_eq!(body["addresses"][0]["address"], json!(withholder));
    assert_eq!(w["foundBlocks"], json!(0));
    assert!(w["expectedBlocks"].as_f64().unwrap() > 20.0, "{w}");
    assert!(w["probability"].as_f64().unwrap() < 1e-6, "{w}");
    assert_eq!(w["flagged"], json!(true));
    // The honest miner found what its work should have (a false flag at p < 0.001 has a
    // chance below 0.001 of happening, less still for binomial counts).
    assert_eq!(h["foundBlocks"], json!(found));
    assert_eq!(h["flagged"], json!(false), "{h}");
    // The watch (leader, every second here) reports it in /metrics.
    until(
        "the watch's report in /metrics",
        Duration::from_secs(20),
        || async {
            let (_, metrics) = http_get(api, "/metrics").await;
            metrics.contains("pool_withholding_flagged_addresses 1\n")
        },
    )
    .await;
    let (status, _) = admin(api, "GET", path, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = admin(
        api,
        "GET",
        "/api/admin/withholding?hours=0",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400);
    pool.cancel.cancel();
}

/// A request with `headers`: (status, the response's headers).
async fn with_headers(
    api: SocketAddr,
    method: &'static str,
    path: &str,
    headers: &[(&'static str, &'static str)],
) -> (u16, ureq::http::HeaderMap) {
    let url = format!("http://{api}{path}");
    let headers = headers.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = http_agent()
            .run(request.body(String::new()).unwrap())
            .unwrap();
        (response.status().as_u16(), response.headers().clone())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_answers_listed_origins_and_limits_each_client() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = solo_config(pair.node(0), dir.path());
    cfg.api.cors_origins = vec!["https://stats.example".into()];
    cfg.api.rate_limit = 5;
    cfg.api.admin_token = Some(TOKEN.into());
    let pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();

    // CORS: the listed origin is named back, another is not; a preflight is answered.
    // (The dashboard page: always there, where /api/health may say 503 until a job.)
    let (status, h) = with_headers(api, "GET", "/", &[("Origin", "https://stats.example")]).await;
    assert_eq!(status, 200);
    assert_eq!(h["access-control-allow-origin"], "https://stats.example");
    let (_, h) = with_headers(api, "GET", "/", &[("Origin", "https://evil.example")]).await;
    assert!(h.get("access-control-allow-origin").is_none());
    let preflight = [
        ("Origin", "https://stats.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    let (status, h) = with_headers(api, "OPTIONS", "/api/pools", &preflight).await;
    assert_eq!(status, 204);
    assert_eq!(h["access-control-allow-origin"], "https://stats.example");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET")
    );

    // Five requests a minute from this address: two were counted above (a preflight is
    // not); three more pass and the next is refused until the minute is over (if the
    // minute turned meanwhile, the count starts again and the sixth of the new one is).
    let mut refused = None;
    for _ in 0..8 {
        let (status, h) = with_headers(api, "GET", "/", &[]).await;
        if status == 429 {
            refused = Some(h);
            break;
        }
        assert_eq!(status, 200);
    }
    let h = refused.expect("a 429 within eight requests of a limit of five");
    let wait: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // /metrics and the admin API are not limited; the refusal is counted.
    let (status, metrics) = http_get(api, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("pool_api_rate_limited_total 1\n"),
        "{metrics}"
    );
    let (status, _) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    pool.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_are_listed_retried_cancelled_and_paid_by_hand() {
    let setup = Setup::start();
    let wallet = setup.pair.node(0);
    let mut payees = [
        setup.pair.node(1).new_address().unwrap(),
        setup.pair.node(1).new_address().unwrap(),
    ];
    payees.sort();
    let store = pool::store::Store::open(&setup.pg.url(), 2, Duration::from_secs(10))
        .await
        .unwrap();
    let db = store.db().clone();
    // Due before the pool starts: its first round (a second after it leads) tries to pay
    // them, and the wallet, whose only coinbase is immature, refuses.
    credit(&db, &payees, [30_000_000, 12_345_678]).await;
    let mut cfg = setup.config();
    cfg.api.admin_token = Some(TOKEN.into());
    cfg.payouts.payment_interval_secs = 3600;
    let pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();
    let call = |method: &'static str, path: String| async move {
        admin(api, method, &path, Some(TOKEN), None).await
    };

    // The failed payout is listed with the wallet's reason; the amounts are back.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let (status, body) = call("GET", "/api/admin/payouts?status=failed".into()).await;
        assert_eq!(status, 200, "{body}");
        if !body["payouts"][0].is_null() {
            break body["payouts"][0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "no failed payout");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("insufficient funds"),
        "{failed}"
    );
    assert_eq!(failed["amount"], json!(42_345_678));
    assert_eq!(failed["payments"][0]["address"], json!(payees[0]));
    assert_eq!(failed["payments"][0]["amount"], json!(30_000_000));
    assert_eq!(failed["retriedAs"], json!(null));
    let first = failed["id"].as_i64().unwrap();
    let (status, _) = admin(api, "GET", "/api/admin/payouts", None, None).await;
    assert_eq!(status, 401, "listing needs the token");
    let (status, body) = call("GET", "/api/admin/payouts?status=lost".into()).await;
    assert_eq!(status, 400, "{body}");

    // Retried before the wallet has coins: a new payout, which fails too.
    let (status, body) = call("POST", format!("/api/admin/payouts/{first}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retried"], json!(first));
    assert_eq!(body["payout"]["status"], json!("failed"), "{body}");
    let second = body["payout"]["id"].as_i64().unwrap();
    let (status, body) = call("POST", format!("/api/admin/payouts/{first}/retry")).await;
    assert_eq!(status, 409, "retried once only: {body}");
    assert!(body["error"].as_str().unwrap().contains("retried already"));

    // With mature coins the retry of the retry is sent.
    wallet.generate(101).unwrap();
    setup.pair.wait_synced().unwrap();
    let (status, body) = call("POST", format!("/api/admin/payouts/{second}/retry")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payout"]["status"], json!("sent"), "{body}");
    let third = body["payout"]["id"].as_i64().unwrap();
    assert!(body["payout"]["txid"].as_str().unwrap().len() == 64);
    assert_eq!(
        balances(&db).await,
        vec![
            (payees[0].clone(), 0, 30_000_000),
            (payees[1].clone(), 0, 12_345_678)
        ]
    );
    let (status, body) = call("POST", format!("/api/admin/payouts/{third}/retry")).await;
    assert_eq!(status, 409, "a sent payout is not retried: {body}");
    let (status, _) = call("POST", "/api/admin/payouts/abc/retry".into()).await;
    assert_eq!(status, 400);
    let (status, _) = call("POST", "/api/admin/payouts/999999/retry".into()).await;
    assert_eq!(status, 404);

    // Nobody due: a round now writes nothing.
    let (status, body) = call("POST", "/api/admin/payouts/round".into()).await;
    assert_eq!((status, &body["payout"]), (200, &json!(null)), "{body}");

    // A payout in flight that the wallet never saw (as a crash after the intent leaves
    // it) is cancelled and its amounts go back.
    credit(&db, &payees, [5_000_000, 7_000_000]).await;
    let threshold = protocol::Amount::from_sat(1_000_000);
    let stuck = store
        .write_intent(threshold, "test payout in flight")
        .await
        .unwrap()
        .unwrap();
    let (status, body) = call("POST", format!("/api/admin/payouts/{}/cancel", stuck.id)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"]["status"], json!("cancelled"));
    assert_eq!(
        balances(&db).await,
        vec![
            (payees[0].clone(), 5_000_000, 30_000_000),
            (payees[1].clone(), 7_000_000, 12_345_678)
        ]
    );
    let (status, _) = call("POST", format!("/api/admin/payouts/{}/cancel", stuck.id)).await;
    assert_eq!(status, 409, "cancelled once");
    let (status, body) = call("POST", format!("/api/admin/payouts/{}/retry", stuck.id)).await;
    assert_eq!(status, 409, "a cancelled payout is not retried: {body}");

    // A round now pays what the cancel gave back.
    let (status, body) = call("POST", "/api/admin/payouts/round".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["payout"]["status"], json!("sent"), "{body}");
    assert_eq!(body["payout"]["amount"], json!(12_000_000));

    // A payout in flight that the wallet did send is recorded as sent, not cancelled.
    credit(&db, &payees, [1_000_000, 1_000_000]).await;
    let sent = store
        .write_intent(threshold, "test payout sent before a crash")
        .await
        .unwrap()
        .unwrap();
    let amounts: serde_json::Map<String, Value> =
        payees.iter().map(|a| (a.clone(), json!(0.01))).collect();
    let txid = wallet
        .call("sendmany", json!(["", amounts, 1, sent.comment]))
        .unwrap();
    let (status, body) = call("POST", format!("/api/admin/payouts/{}/cancel", sent.id)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["payout"]["status"], json!("sent"));
    assert_eq!(body["payout"]["txid"], txid);

    // Everything in the list, newest first; the wallet paid exactly what it says.
    let (_, body) = call("GET", "/api/admin/payouts".into()).await;
    let listed: Vec<(i64, &str)> = body["payouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_i64().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (sent.id, "sent"),
            (stuck.id + 1, "sent"),
            (stuck.id, "cancelled"),
            (third, "sent"),
            (second, "failed"),
            (first, "failed"),
        ]
    );
    assert_eq!(body["payouts"][4]["retriedAs"], json!(third));
    wallet.generate(1).unwrap();
    setup.pair.wait_synced().unwrap();
    for (payee, total) in payees.iter().zip([36_000_000, 20_345_678]) {
        let got = setup
            .pair
            .node(1)
            .call("getreceivedbyaddress", json!([payee, 1]))
            .unwrap();
        assert_eq!(
            (got.as_f64().unwrap() * 1e8).round() as i64,
            total,
            "{payee}"
        );
    }
    pool.stop().await;
}
