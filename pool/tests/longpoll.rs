//! An idle pool must not starve its node: a `getblocktemplate` long poll holds one of the
//! node's RPC threads until the tip changes, even after the pool stopped waiting for it or
//! died. On a quiet chain, with a node started with two RPC threads, the pool runs past
//! several long-poll timeouts, is restarted again and again (and killed once), and the
//! node keeps answering other calls within seconds throughout.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pool::config::{Mode, PoolConfig};
use serde_json::json;
use testkit::{Node, PairOptions, RegtestPair, RpcClient};

/// The node answers a plain call within a few seconds (it cannot when every RPC thread is
/// held by a long poll: calls queue behind them).
fn answers(node: &Node) -> bool {
    let (user, password) = node.rpc_credentials();
    let quick = RpcClient::with_timeout(node.rpc_url(), user, password, Duration::from_secs(3));
    quick.call("getblockcount", json!([])).is_ok()
}

/// Checks the node every 250 ms for `d`.
async fn keeps_answering(node: &Node, d: Duration, what: &str) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        assert!(answers(node), "the node stopped answering ({what})");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn idle_pool_config(pair: &RegtestPair, dir: &std::path::Path) -> PoolConfig {
    let mut cfg = config(Mode::Solo, vec![node_config(pair.node(0))], None, dir);
    cfg.jobs.longpoll = true;
    cfg.jobs.longpoll_timeout_secs = 2;
    cfg.jobs.refresh_secs = 600;
    cfg
}

/// Waits until the pool mines on height `height`.
async fn on_height(pool: &TestPool, height: u64) {
    until(
        "the pool to pick up the new block",
        Duration::from_secs(10),
        || async { pool.running.stats.snapshot().height == height },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_never_holds_more_than_one_node_thread() {
    let pair = RegtestPair::start_with(&PairOptions {
        node_args: vec!["-rpcthreads=2".into()],
        ..PairOptions::default()
    })
    .unwrap();
    let node = pair.node(0);
    let dir = tempfile::tempdir().unwrap();

    // One pool: it long-polls from the first block it sees arrive, and on a quiet chain
    // runs past several of its 2-second long-poll timeouts.
    let pool = TestPool::start(idle_pool_config(&pair, dir.path())).await;
    on_height(&pool, node.height().unwrap() + 1).await;
    node.generate(1).unwrap();
    on_height(&pool, node.height().unwrap() + 1).await;
    keeps_answering(node, Duration::from_secs(9), "past long-poll timeouts").await;
    let s = pool.running.stats.snapshot();
    assert!(s.longpolls >= 1, "the pool long-polled: {s:?}");
    assert!(s.longpolls_abandoned >= 1, "and gave up on one: {s:?}");
    assert_eq!(
        s.longpolls, s.longpolls_abandoned,
        "but opened no other on the same tip"
    );
    // A new block frees the node's thread, and the pool long-polls again.
    node.generate(1).unwrap();
    on_height(&pool, node.height().unwrap() + 1).await;
    until(
        "a long poll on the new tip",
        Duration::from_secs(10),
        || async { pool.running.stats.snapshot().longpolls > s.longpolls },
    )
    .await;
    pool.stop().await;

    // Restarts in a row: each pool leaves its long poll waiting on the node; the next one
    // does not add its own until the tip has changed.
    for round in 0..4 {
        let pool = TestPool::start(idle_pool_config(&pair, dir.path())).await;
        keeps_answering(node, Duration::from_secs(3), &format!("restart {round}")).await;
        assert_eq!(
            pool.running.stats.snapshot().longpolls,
            0,
            "parked at start"
        );
        node.generate(1).unwrap();
        on_height(&pool, node.height().unwrap() + 1).await;
        until("a long poll", Duration::from_secs(10), || async {
            pool.running.stats.snapshot().longpolls_in_flight == 1
        })
        .await;
        keeps_answering(node, Duration::from_secs(3), &format!("restart {round}")).await;
        pool.stop().await;
    }

    // Killed during a long poll: the `pool` binary, twice in a row.
    for round in 0..2 {
        let mut child = pool_binary(&pair, dir.path());
        keeps_answering(
            node,
            Duration::from_secs(3),
            &format!("killed pool {round}"),
        )
        .await;
        node.generate(1).unwrap();
        // Give it time to see the block and open its long poll, then kill it.
        keeps_answering(
            node,
            Duration::from_secs(3),
            &format!("killed pool {round}"),
        )
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let pool = TestPool::start(idle_pool_config(&pair, dir.path())).await;
    keeps_answering(node, Duration::from_secs(4), "after kills").await;
    node.generate(1).unwrap();
    on_height(&pool, node.height().unwrap() + 1).await;
    pool.stop().await;
}

/// The `pool` binary in SOLO mode on node 0, long-polling with a 2-second timeout.
fn pool_binary(pair: &RegtestPair, dir: &std::path::Path) -> Child {
    let node = pair.node(0);
    let (user, password) = node.rpc_credentials();
    let toml = format!(
        r#"mode = "solo"
network = "regtest"
data_dir = "{data}"

[[nodes]]
url = "{url}"
user = "{user}"
password = "{password}"

[jobs]
longpoll_timeout_secs = 2

[stratum]
bind = "127.0.0.1:0"

[api]
enabled = false
"#,
        data = dir.join("binary-data").display(),
        url = node.rpc_url(),
    );
    let path = dir.join("solo.toml");
    std::fs::write(&path, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(["--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
