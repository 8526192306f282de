//! `[[notify]]` against a local HTTP server that records what it receives: a scripted miner
//! on a regtest pair finds blocks that are confirmed and paid, beats its best share
//! difficulty and leaves; a webhook (signed), a Discord and a Telegram sink each get what
//! they asked for, a sink whose server fails twice gets it on the third attempt, and
//! `/metrics` counts it all. A pool whose only node is unreachable says so.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::scripted::*;
use common::*;
use pool::config::{Mode, NotifyConfig, NotifyKind, PoolConfig};
use pool::observe::notify::{SIGNATURE_HEADER, sign};
use protocol::Target;
use serde_json::Value;

/// What the server received: (path, signature header, JSON body).
type Received = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

#[derive(Clone)]
struct Server {
    received: Received,
    /// Answers 500 to this many requests on /flaky first.
    flaky_failures: Arc<Mutex<u32>>,
}

async fn record(
    State(s): State<Server>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if path == "flaky" {
        let mut left = s.flaky_failures.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let json: Value = serde_json::from_slice(&body).unwrap();
    // The signature is over the exact bytes received.
    if let Some(sig) = &signature {
        assert_eq!(*sig, format!("sha256={}", sign(b"hook-secret", &body)));
    }
    s.received.lock().unwrap().push((path, signature, json));
    StatusCode::OK
}

async fn start_server() -> (SocketAddr, Server) {
    let server = Server {
        received: Arc::default(),
        flaky_failures: Arc::new(Mutex::new(2)),
    };
    let app = Router::new()
        .route("/{*path}", post(record))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, server)
}

fn sink(kind: NotifyKind, url: String) -> NotifyConfig {
    NotifyConfig {
        kind,
        url: Some(url),
        secret: None,
        bot_token: None,
        chat_id: None,
        events: None,
        best_scope: "both".into(),
        offline_minutes: 0.02,
        attempts: 5,
    }
}

fn texts(received: &Received, path: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p.starts_with(path))
        .map(|(_, _, v)| {
            v["content"]
                .as_str()
                .or(v["text"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn webhook_events(received: &Received) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "hook")
        .map(|(_, _, v)| v.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_hear_of_blocks_bests_offline_workers_payments_and_nodes() {
    let (server_addr, server) = start_server().await;
    let base = format!("http://{server_addr}");
    let setup = Setup::start();
    let wallet = setup.pair.node(0);
    wallet.generate(110).unwrap(); // mature coins: payments go out at once
    let mut cfg = setup.config();
    cfg.payouts.confirmations = 1;
    cfg.payouts.threshold = 1000;
    cfg.payouts.payment_interval_secs = 1;
    cfg.payouts.check_secs = 1;
    let mut hook = sink(NotifyKind::Webhook, format!("{base}/hook"));
    hook.secret = Some("hook-secret".into());
    let discord = NotifyConfig {
        events: Some(vec!["block_found".into(), "best_difficulty".into()]),
        best_scope: "pool".into(),
        ..sink(NotifyKind::Discord, format!("{base}/discord"))
    };
    let telegram = NotifyConfig {
        bot_token: Some("123:ABC".into()),
        chat_id: Some("-1001".into()),
        events: Some(vec!["block_found".into()]),
        ..sink(NotifyKind::Telegram, base.clone())
    };
    let flaky = NotifyConfig {
        events: Some(vec!["block_found".into()]),
        ..sink(NotifyKind::Discord, format!("{base}/flaky"))
    };
    cfg.notify = vec![hook, discord, telegram, flaky];
    let pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();

    // Shares in rising difficulty (each beats the last), then a block.
    let address = setup.pair.node(1).new_address().unwrap();
    let mut m = Miner::open_as(pool.port(), &format!("{address}.rig"), "script/1").await;
    let n = m.job().await;
    let network = Target::from_compact(n.nbits).unwrap();
    let share = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
    let mut shares: Vec<(f64, u32)> = (0..)
        .filter_map(|x| {
            let h = m.hash(&n, x, n.ntime);
            (share.is_met_by(&h) && !network.is_met_by(&h))
                .then(|| (protocol::Difficulty::of_hash(&h).get(), x))
        })
        .take(6)
        .collect();
    shares.sort_by(|a, b| a.0.total_cmp(&b.0));
    shares.dedup_by(|a, b| a.0 == b.0);
    for (_, nonce) in &shares {
        assert_eq!(m.submit(&n, *nonce, n.ntime, None).await["result"], true);
    }
    let block = (0..)
        .find(|&x| network.is_met_by(&m.hash(&n, x, n.ntime)))
        .unwrap();
    assert_eq!(m.submit(&n, block, n.ntime, None).await["result"], true);

    until(
        "block, confirmation and payment notes",
        Duration::from_secs(60),
        || async {
            let names: Vec<String> = webhook_events(&server.received)
                .iter()
                .map(|e| e["event"].as_str().unwrap().to_string())
                .collect();
            [
                "block_found",
                "block_confirmed",
                "payment_sent",
                "best_difficulty",
            ]
            .iter()
            .all(|want| names.iter().any(|n| n == want))
        },
    )
    .await;
    // The miner leaves: offline after 0.02 minutes.
    drop(m);
    until("worker offline", Duration::from_secs(20), || async {
        webhook_events(&server.received)
            .iter()
            .any(|e| e["event"] == "worker_offline")
    })
    .await;
    until(
        "the flaky sink's third attempt",
        Duration::from_secs(20),
        || async { !texts(&server.received, "flaky").is_empty() },
    )
    .await;

    let events = webhook_events(&server.received);
    let found = events.iter().find(|e| e["event"] == "block_found").unwrap();
    assert_eq!(found["data"]["finder"], format!("{address}.rig"));
    assert!(found["data"]["reward"].as_u64().unwrap() > 0);
    assert_eq!(found["pool"], "pool");
    let signed = server
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "hook")
        .all(|(_, sig, _)| sig.is_some());
    assert!(signed, "every webhook POST is signed");
    let bests: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "best_difficulty")
        .collect();
    assert!(bests.iter().any(|e| e["data"]["scope"] == "address"));
    assert!(bests.iter().any(|e| e["data"]["scope"] == "pool"));
    for b in &bests {
        assert!(b["data"]["difficulty"].as_f64() > b["data"]["previous"].as_f64());
    }
    let offline = events
        .iter()
        .find(|e| e["event"] == "worker_offline")
        .unwrap();
    assert_eq!(offline["data"]["worker"], "rig");
    let paid = events
        .iter()
        .find(|e| e["event"] == "payment_sent")
        .unwrap();
    assert!(paid["data"]["txid"].as_str().is_some_and(|t| t.len() == 64));

    // Discord: blocks and pool bests only; Telegram: its sendMessage path and chat.
    let discord = texts(&server.received, "discord");
    assert!(
        discord
            .iter()
            .any(|t| t.contains("Block") && t.contains("found by"))
    );
    assert!(discord.iter().any(|t| t.contains("New pool best share")));
    assert!(!discord.iter().any(|t| t.contains("offline")));
    let telegram: Vec<Value> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _, _)| p == "bot123:ABC/sendMessage")
        .map(|(_, _, v)| v.clone())
        .collect();
    assert_eq!(telegram[0]["chat_id"], "-1001");
    assert!(telegram[0]["text"].as_str().unwrap().contains("found by"));

    // /metrics: the flaky sink sent after two retries; nothing failed or was dropped.
    let (_, metrics) = http_get(api, "/metrics").await;
    assert!(
        metrics.contains(r#"pool_notifications_total{sink="discord3",result="retried"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"pool_notifications_total{sink="discord3",result="sent"} 1"#));
    assert!(metrics.contains(r#"pool_notifications_total{sink="webhook0",result="failed"} 0"#));
    pool.stop().await;

    // A pool whose only node does not answer: node_unreachable after three failures.
    let dead = pool::config::NodeConfig {
        url: "http://127.0.0.1:9/".into(),
        ..node_config(setup.pair.node(0))
    };
    let mut cfg: PoolConfig = config(Mode::Solo, vec![dead], None, setup.dir.path());
    let mut hook = sink(NotifyKind::Webhook, format!("{base}/dead"));
    hook.events = Some(vec!["node_unreachable".into()]);
    cfg.notify = vec![hook];
    let pool = TestPool::start(cfg).await;
    until("node_unreachable", Duration::from_secs(30), || async {
        !texts(&server.received, "dead").is_empty()
    })
    .await;
    let text = &texts(&server.received, "dead")[0];
    assert!(
        text.contains("Node http://127.0.0.1:9/ unreachable"),
        "{text}"
    );
    pool.stop().await;
}
