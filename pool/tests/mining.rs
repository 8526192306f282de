//! End to end on a regtest node pair: the pool and our CPU miner find blocks the node
//! accepts; SOLO pays the miner's address, PPLNS the pool's; a dead first node is skipped;
//! a node stopped and restarted during mining costs no connection, and blocks found
//! afterwards are accepted.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use pool::config::{Mode, NodeConfig};
use testkit::{RegtestPair, TempPostgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_mode_pays_the_miner_and_skips_a_dead_node() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let miner_address = pair.node(1).new_address().unwrap();
    // The first node is not there: the pool must fail over to the second.
    let dead = NodeConfig {
        url: format!("http://127.0.0.1:{}/", testkit::free_port().unwrap()),
        user: Some("x".into()),
        password: Some("x".into()),
        cookie_file: None,
        zmq_hashblock: None,
    };
    let nodes = vec![dead, node_config(pair.node(0))];
    let mut pool = TestPool::start(config(Mode::Solo, nodes, None, dir.path())).await;
    let start_height = pair.node(0).height().unwrap();
    let miner = start_miner(pool.port(), &format!("{miner_address}.rig1"));

    let blocks = pool.accepted_blocks(3, Duration::from_secs(120)).await;
    let script = script_of(&miner_address);
    for b in &blocks {
        let outputs = coinbase_outputs(pair.node(0), &b.hash.to_string());
        assert_eq!(outputs[0].1, script, "the coinbase pays the miner");
        assert_eq!(outputs[0].0, b.reward);
        assert!(b.height > start_height);
    }
    assert!(pair.node(0).height().unwrap() >= start_height + 3);
    // Each block is kept with its hex.
    let kept = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .count();
    assert!(kept >= 3, "{kept} block files");
    let log = std::fs::read_to_string(dir.path().join("blocks.jsonl")).unwrap();
    assert!(log.contains(&blocks[0].hash.to_string()));

    let stats = pool.running.stats.snapshot();
    assert!(stats.accepted >= 3, "{stats:?}");
    // The miner counts the block candidates it sent (the pool decides which are blocks).
    let sent = miner.stats.snapshot(Instant::now()).block_candidates;
    assert!(sent >= 3, "the miner counted {sent} block candidates");

    // Without a database the API still has the live figures; history says it needs one.
    let api = pool.running.api_addr.unwrap();
    let (status, health) = http_json(api, "/api/health").await;
    assert_eq!(
        (status, health["database"].as_str()),
        (200, Some("not configured"))
    );
    let (_, pools) = http_json(api, "/api/pools/pool").await;
    assert_eq!(pools["pool"]["paymentProcessing"]["payoutScheme"], "SOLO");
    assert_eq!(pools["pool"]["poolStats"]["connectedMiners"], 1);
    assert!(pools["pool"]["totalBlocks"].is_null());
    let (_, miner_view) = http_json(api, &format!("/api/pools/pool/miners/{miner_address}")).await;
    assert!(miner_view["performance"]["workers"]["rig1"].is_object());
    // Best difficulties without a database: this process's, since it started.
    let pool_best = pools["pool"]["poolStats"]["bestDifficulty"]["allTime"]
        .as_f64()
        .unwrap();
    let rig_best = miner_view["workerBestDifficulty"]["rig1"]["allTime"]
        .as_f64()
        .unwrap();
    assert!(rig_best > 0.0 && rig_best <= pool_best, "{miner_view}");
    let (_, metrics) = http_get(api, "/metrics").await;
    assert!(
        metrics.contains("pool_best_difficulty{period=\"all_time\"}"),
        "{metrics}"
    );
    assert!(miner_view["pendingBalance"].is_null());
    for path in ["/api/pools/pool/blocks", "/api/pools/pool/payments"] {
        let (status, body) = http_json(api, path).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("database.url"),
            "{body}"
        );
    }
    miner.cancel.cancel();
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pplns_mode_pays_the_pool() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool_address = pair.node(0).new_address().unwrap();
    let miner_address = pair.node(1).new_address().unwrap();
    let nodes = vec![node_config(pair.node(0)), node_config(pair.node(1))];
    let pg = TempPostgres::start().unwrap();
    let mut pool = TestPool::start(with_database(
        config(Mode::Pplns, nodes, Some(pool_address.clone()), dir.path()),
        &pg,
    ))
    .await;
    let miner = start_miner(pool.port(), &format!("{miner_address}.rig1"));
    let blocks = pool.accepted_blocks(3, Duration::from_secs(120)).await;
    for b in &blocks {
        let outputs = coinbase_outputs(pair.node(0), &b.hash.to_string());
        assert_eq!(
            outputs[0].1,
            script_of(&pool_address),
            "the coinbase pays the pool"
        );
        assert_eq!(b.user, format!("{miner_address}.rig1"));
    }
    miner.cancel.cancel();
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_keeps_miners_connected_and_blocks_resume() {
    let mut pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let miner_address = pair.node(0).new_address().unwrap();
    // Node 1 is the one with `-connect` to node 0, so it finds its peer again on restart.
    let nodes = vec![node_config(pair.node(1))];
    let mut pool = TestPool::start(config(Mode::Solo, nodes, None, dir.path())).await;
    let miner = start_miner(pool.port(), &format!("{miner_address}.rig1"));
    pool.accepted_blocks(2, Duration::from_secs(120)).await;
    let connected_before = pool.running.stats.snapshot().connections_total;

    let height_at_stop = pair.node(1).height().unwrap();
    tokio::task::block_in_place(|| pair.node_mut(1).stop()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = pool.running.stats.snapshot();
    assert_eq!(
        during.connections, 1,
        "the miner stays connected: {during:?}"
    );
    // A candidate found as the node went away may have been refused; forget it.
    while pool.running.blocks.try_recv().is_ok() {}

    tokio::task::block_in_place(|| pair.node_mut(1).restart()).unwrap();
    // The miner kept hashing the last job: its next block may be taken the moment the
    // node is back, so count from the height at the stop (a candidate a block ahead of it
    // may still be the one that wins at the restart).
    let blocks = pool.accepted_blocks(2, Duration::from_secs(120)).await;
    assert!(
        blocks.iter().all(|b| b.height > height_at_stop),
        "{blocks:?}"
    );
    let after = pool.running.stats.snapshot();
    assert_eq!(
        after.connections_total, connected_before,
        "no reconnect was needed: {after:?}"
    );
    miner.cancel.cancel();
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_auth_is_read_again_after_a_401() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join(".cookie");
    std::fs::write(&cookie, "__cookie__:stale").unwrap();
    let node = pool::chain::node::Node::new(
        &NodeConfig {
            url: pair.node(0).rpc_url().to_string(),
            user: None,
            password: None,
            cookie_file: Some(cookie.clone()),
            zmq_hashblock: None,
        },
        Duration::from_secs(5),
    );
    let err = node
        .call("getblockcount", serde_json::json!([]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    // The node restarted and wrote a new cookie: the next call reads it.
    let (user, password) = pair.node(0).rpc_credentials();
    std::fs::write(&cookie, format!("{user}:{password}\n")).unwrap();
    let height = node
        .call("getblockcount", serde_json::json!([]))
        .await
        .unwrap();
    assert_eq!(height.as_u64(), Some(pair.node(0).height().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_hashblock_brings_new_blocks_without_polling() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let pair = RegtestPair::start_with_zmq().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_config(pair.node(0));
    node.zmq_hashblock = pair.node(0).zmq_hashblock();
    let mut cfg = config(Mode::Solo, vec![node], None, dir.path());
    // No long poll and slow polls: only ZMQ can bring the new block quickly.
    cfg.jobs.longpoll = false;
    cfg.jobs.block_poll_ms = 600_000;
    cfg.jobs.refresh_secs = 600;
    let pool = TestPool::start(cfg).await;
    let address = pair.node(0).new_address().unwrap();

    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", pool.port()))
        .await
        .unwrap();
    let opening = format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}}\n\
         {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{address}\",\"x\"]}}\n"
    );
    conn.write_all(opening.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(conn).lines();
    let mut first_job = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("a job for the new block within 10 s")
            .unwrap()
            .unwrap();
        let msg: serde_json::Value = serde_json::from_str(&line).unwrap();
        if msg["method"] != "mining.notify" {
            continue;
        }
        let prev = msg["params"][1].clone();
        match &first_job {
            None => {
                first_job = Some(prev);
                // Give the subscription a moment, then mine a block on the node.
                tokio::time::sleep(Duration::from_millis(500)).await;
                pair.node(0).generate(1).unwrap();
            }
            Some(first) if *first != prev => {
                assert_eq!(msg["params"][8], serde_json::json!(true), "clean_jobs");
                break;
            }
            Some(_) => {}
        }
    }
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_cash_addresses_are_usernames_and_blocks_pay_them() {
    // The BSV regtest node takes the same scripts as a BCH one: a CashAddr P2PKH pays
    // the legacy script of its hash.
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.network = "bch-regtest".into();
    let mut pool = TestPool::start(cfg).await;
    let legacy = pair.node(1).new_address().unwrap();
    let script = script_of(&legacy);
    assert_eq!(&script[..3], [0x76, 0xa9, 0x14], "the node hands out P2PKH");
    let cash = protocol::cashaddr::CashAddr {
        prefix: "bchreg".into(),
        type_bits: 0,
        hash: script[3..23].to_vec(),
    }
    .to_string();

    // A typo in a CashAddr is refused at authorize with a reason a person can act on.
    let mut typo = cash.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'q' { b'p' } else { b'q' };
    let typo = String::from_utf8(typo).unwrap();
    let answer = authorize_reply(pool.port(), &format!("{typo}.rig")).await;
    assert_eq!(answer["result"], serde_json::Value::Null, "{answer}");
    let reason = answer["error"][1].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("checksum mismatch"), "{reason}");

    // With the prefix and, on another connection, without it: both are the same script.
    let with_prefix = start_miner(pool.port(), &format!("{cash}.rig1"));
    let blocks = pool.accepted_blocks(1, Duration::from_secs(120)).await;
    with_prefix.cancel.cancel();
    let bare = cash.trim_start_matches("bchreg:").to_string();
    let without = start_miner(pool.port(), &format!("{bare}.rig2"));
    let more = pool.accepted_blocks(1, Duration::from_secs(120)).await;
    without.cancel.cancel();
    for b in blocks.iter().chain(&more) {
        let outputs = coinbase_outputs(pair.node(0), &b.hash.to_string());
        assert_eq!(outputs[0].1, script, "block {} pays the CashAddr", b.height);
    }
    // The API names the coin, and takes the CashAddr as a miner's address.
    let api = pool.running.api_addr.unwrap();
    let (_, p) = http_json(api, "/api/pools/pool").await;
    assert_eq!(p["pool"]["coin"]["symbol"], "BCH", "{p}");
    let (status, _) = http_json(api, &format!("/api/pools/pool/miners/{cash}")).await;
    assert_eq!(status, 200);
    pool.stop().await;
}

/// The reply to `mining.authorize` for `user` on a fresh connection.
async fn authorize_reply(port: u16, user: &str) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let lines = format!(
        "{}\n{}\n",
        serde_json::json!({"id": 1, "method": "mining.subscribe", "params": ["test/1"]}),
        serde_json::json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]}),
    );
    write.write_all(lines.as_bytes()).await.unwrap();
    let mut read = BufReader::new(read).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), read.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["id"] == 2 {
            return v;
        }
    }
}
