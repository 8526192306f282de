//! Payments survive crashes: the `pool` binary is killed on purpose (POOL_CRASH_AT) between
//! the payout intent and `sendmany`, and again between `sendmany` and recording its txid;
//! each restart finishes the payout, and nobody is paid twice or loses a satoshi.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{balances, credit, write_pool_toml};
use pool::store::Store;
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::{Node, RegtestPair, TempPostgres};

fn write_config(dir: &Path, node: &Node, pool_address: &str, db: &str) -> std::path::PathBuf {
    write_pool_toml(
        dir,
        node,
        pool_address,
        &format!(
            r#"[stratum]
bind = "127.0.0.1:0"

[api]
bind = "127.0.0.1:0"

[database]
url = "{db}"

[payouts]
check_secs = 1
payment_interval_secs = 1
threshold = 1000000
"#
        ),
    )
}

fn start_pool(config: &Path, log: &Path, crash_at: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pool"));
    cmd.arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    match crash_at {
        Some(point) => cmd.env("POOL_CRASH_AT", point),
        None => cmd.env_remove("POOL_CRASH_AT"),
    };
    cmd.spawn().unwrap()
}

/// Waits for the process to die on its own (the crash point).
fn wait_crash(child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the pool was meant to abort");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no crash: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

async fn payout_status(db: &PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT status::text, txid FROM payouts ORDER BY id")
        .fetch_all(db)
        .await
        .unwrap()
}

/// Wallet transactions that carry a payout comment: (comment, txid), one per txid.
fn wallet_payouts(node: &Node) -> Vec<(String, String)> {
    let txs = node
        .call("listtransactions", json!(["*", 10000, 0]))
        .unwrap();
    let mut seen: Vec<(String, String)> = txs
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["category"] == "send")
        .filter_map(|t| {
            let comment = t.get("comment")?.as_str()?;
            comment
                .starts_with("sha256d-pool payout")
                .then(|| (comment.to_string(), t["txid"].as_str().unwrap().to_string()))
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

fn received(node: &Node, address: &str) -> u64 {
    let v: Value = node
        .call("getreceivedbyaddress", json!([address, 1]))
        .unwrap();
    (v.as_f64().unwrap() * 1e8).round() as u64
}

async fn until_sent(db: &PgPool, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = payout_status(db).await;
        if s.len() == n && s.iter().all(|(st, _)| st == "sent") {
            return;
        }
        assert!(Instant::now() < deadline, "payouts not sent: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_killed_before_or_after_sendmany_is_paid_exactly_once() {
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wallet = pair.node(0);
    // Mature coins in the paying wallet.
    wallet.generate(110).unwrap();
    pair.wait_synced().unwrap();
    let pool_address = wallet.new_address().unwrap();
    let mut payees = [
        pair.node(1).new_address().unwrap(),
        pair.node(1).new_address().unwrap(),
    ];
    payees.sort();
    let store = Store::open(&pg.url(), 2, Duration::from_secs(10))
        .await
        .unwrap();
    let db = store.db().clone();
    let config = write_config(dir.path(), wallet, &pool_address, &pg.url());
    let log = dir.path().join("pool.log");

    // 1. Killed after the intent, before sendmany.
    credit(&db, &payees, [30_000_000, 12_345_678]).await;
    let mut child = start_pool(&config, &log, Some("after-payout-intent"));
    tokio::task::block_in_place(|| wait_crash(&mut child, &log));
    assert_eq!(payout_status(&db).await, vec![("intent".into(), None)]);
    assert_eq!(
        balances(&db).await,
        vec![
            (payees[0].clone(), 0, 30_000_000),
            (payees[1].clone(), 0, 12_345_678)
        ],
        "debited with the intent"
    );
    assert!(wallet_payouts(wallet).is_empty(), "nothing sent yet");
    let child = start_pool(&config, &log, None);
    until_sent(&db, 1).await;
    stop(child);
    let sent = wallet_payouts(wallet);
    assert_eq!(sent.len(), 1, "one transaction: {sent:?}");

    // 2. Killed after sendmany, before the txid is recorded.
    credit(&db, &payees, [5_000_000, 7_000_000]).await;
    let mut child = start_pool(&config, &log, Some("after-payout-send"));
    tokio::task::block_in_place(|| wait_crash(&mut child, &log));
    let status = payout_status(&db).await;
    assert_eq!(status[1], ("intent".into(), None));
    assert_eq!(wallet_payouts(wallet).len(), 2, "the wallet did send it");
    let child = start_pool(&config, &log, None);
    until_sent(&db, 2).await;
    // Another round with nothing due pays nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(child);
    let sent = wallet_payouts(wallet);
    assert_eq!(sent.len(), 2, "no payout sent twice: {sent:?}");
    let status = payout_status(&db).await;
    assert_eq!(status.len(), 2);
    // The txids recorded are the wallet's, one per payout.
    let txids: Vec<&str> = sent.iter().map(|(_, t)| t.as_str()).collect();
    let recorded: Vec<&str> = status.iter().map(|(_, t)| t.as_deref().unwrap()).collect();
    assert_ne!(recorded[0], recorded[1]);
    assert!(
        recorded.iter().all(|t| txids.contains(t)),
        "{recorded:?} vs {txids:?}"
    );

    wallet.generate(1).unwrap();
    pair.wait_synced().unwrap();
    assert_eq!(received(pair.node(1), &payees[0]), 35_000_000);
    assert_eq!(received(pair.node(1), &payees[1]), 19_345_678);
    assert_eq!(
        balances(&db).await,
        vec![
            (payees[0].clone(), 0, 35_000_000),
            (payees[1].clone(), 0, 19_345_678)
        ]
    );
}
