//! Stratum V2 end to end on the regtest pair with a real PostgreSQL: a V2 miner (the Stratum
//! Reference Implementation's messages over the pool's Noise transport) and our v1 CPU
//! miner on one pool at once, both paid from one PPLNS window; SOLO over V2; the handshake
//! against a wrong authority key; junk on the V2 port.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::v2::{Answer, V2Miner, authority, v2_config};
use common::*;
use miner::client::{ChannelKind, PoolUrl};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned};
use pool::config::Mode;
use protocol::sv2::keys::AuthorityKeys;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// What a V2 miner did until it was stopped.
#[derive(Debug, Default)]
struct Mined {
    accepted: u64,
    refused: Vec<String>,
    blocks: u64,
}

/// Mines on one channel for `user` until `stop`.
fn spawn_v2_miner(
    addr: SocketAddr,
    user: String,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<Mined> {
    tokio::spawn(async move {
        let mut miner = V2Miner::connect(addr, authority()).await.unwrap();
        miner.setup().await;
        let channel = miner.open(&user, 0.0).await;
        let mut mined = Mined::default();
        while !stop.is_cancelled() {
            let (answer, block) = miner.mine_one(channel).await;
            match answer {
                Answer::Accepted => mined.accepted += 1,
                Answer::Refused(code) => mined.refused.push(code),
            }
            mined.blocks += u64::from(block);
            // About a share every 20 ms: a few thousand in the test, not millions.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        mined
    })
}

async fn count(db: &PgPool, sql: &str, address: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(address)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_miners_are_paid_from_one_pplns_window() {
    let setup = Setup::start();
    let alice = setup.pair.node(1).new_address().unwrap();
    let bob = setup.pair.node(1).new_address().unwrap();
    let mut cfg = setup.config();
    cfg.stratum.v2 = Some(v2_config());
    cfg.payouts.payments = false;
    // Every share is worth the network difficulty here: a window of many shares, so that
    // a block's window reaches back over both miners.
    cfg.payouts.window_factor = 1000.0;
    let mut pool = TestPool::start(cfg).await;
    let v2_addr = pool.running.v2_addr.expect("the V2 port is bound");
    let db = pool.running.store.clone().unwrap().db().clone();

    let v1 = start_miner(pool.port(), &format!("{alice}.v1rig"));
    let stop = CancellationToken::new();
    let v2 = spawn_v2_miner(v2_addr, format!("{bob}.v2rig"), stop.clone());
    let blocks = pool.accepted_blocks(4, Duration::from_secs(120)).await;
    assert!(blocks.iter().all(|b| b.accepted));
    // At regtest difficulty every share is a block and our v1 miner, hashing flat out,
    // wins nearly every race; once it stops the V2 miner finds blocks of its own.
    // (On regtest nearly every V2 share is a block candidate too, and stale once another
    // block lands: wait for a few stored shares as well, not only the block.)
    v1.cancel.cancel();
    until(
        "a block found over V2, and V2 shares stored",
        Duration::from_secs(60),
        || async {
            let block = count(
                &db,
                "SELECT count(*) FROM blocks WHERE finder = $1 || '.v2rig'",
                &bob,
            );
            let shares = count(
                &db,
                "SELECT count(*) FROM shares WHERE address = $1 AND worker = 'v2rig'",
                &bob,
            );
            block.await > 0 && shares.await >= 3
        },
    )
    .await;
    stop.cancel();
    let mined = v2.await.unwrap();
    assert!(mined.accepted >= 3, "{mined:?}");
    // Blocks of the pool make some shares stale on the way; nothing else is refused.
    let refused: BTreeSet<&str> = mined.refused.iter().map(|r| r.as_str()).collect();
    assert!(
        refused.is_subset(&BTreeSet::from(["stale-share"])),
        "{refused:?}"
    );

    // Every share the pool accepted over V2 is in PostgreSQL (it answered only once it was).
    let stored = count(
        &db,
        "SELECT count(*) FROM shares WHERE address = $1 AND worker = 'v2rig'",
        &bob,
    )
    .await;
    assert_eq!(stored as u64, mined.accepted);
    assert!(
        count(
            &db,
            "SELECT count(*) FROM shares WHERE address = $1",
            &alice
        )
        .await
            > 0
    );

    // One window pays both: a block whose credits name Alice (v1) and Bob (V2).
    until(
        "a block crediting both",
        Duration::from_secs(60),
        || async {
            let both: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM credits a JOIN credits b USING (block_hash)
             WHERE a.address = $1 AND b.address = $2 AND a.amount > 0 AND b.amount > 0",
            )
            .bind(&alice)
            .bind(&bob)
            .fetch_one(&db)
            .await
            .unwrap();
            both > 0
        },
    )
    .await;

    // The API and the metrics see the V2 worker and its protocol.
    let api = pool.running.api_addr.unwrap();
    let (_, m) = http_json(api, &format!("/api/pools/pool/miners/{bob}")).await;
    assert!(m["pendingShares"].as_f64().unwrap() >= 0.0, "{m}");
    let (_, metrics) = http_get(api, "/metrics").await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("pool_shares_total{") && l.contains("protocol=\"v2\""))
        .unwrap_or_else(|| panic!("no V2 share series in\n{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value >= mined.accepted as f64, "{line}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solo_over_v2_pays_the_channel_address() {
    let pair = testkit::RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let carol = pair.node(1).new_address().unwrap();
    let mut cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.stratum.v2 = Some(v2_config());
    cfg.vardiff.min = 1e-12;
    let mut pool = TestPool::start(cfg).await;
    let stop = CancellationToken::new();
    let v2 = spawn_v2_miner(
        pool.running.v2_addr.unwrap(),
        format!("{carol}.solo"),
        stop.clone(),
    );
    let blocks = pool.accepted_blocks(2, Duration::from_secs(120)).await;
    stop.cancel();
    let mined = v2.await.unwrap();
    assert!(mined.blocks >= 2, "{mined:?}");
    for b in &blocks {
        let outputs = coinbase_outputs(pair.node(0), &b.hash.to_string());
        assert_eq!(
            outputs[0].1,
            script_of(&carol),
            "the coinbase pays the miner"
        );
    }
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_and_junk_on_the_v2_port() {
    let pair = testkit::RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.stratum.v2 = Some(v2_config());
    cfg.vardiff.min = 1e-12;
    let pool = TestPool::start(cfg).await;
    let addr = pool.running.v2_addr.unwrap();

    // A miner that trusts another authority refuses the pool's certificate.
    let other = AuthorityKeys::generate(|| [7; 32]).public;
    assert!(V2Miner::connect(addr, other).await.is_err());

    // pooler's cpuminer on the V2 port, reconnecting in a loop: closed at once each time
    // and never banned (a v1 miner on the wrong port is no attack), so the right client
    // still gets in afterwards.
    for _ in 0..12 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer/2.5.1\"]}\n",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the pool closes a v1 miner on the V2 port");
        assert!(buf.is_empty(), "and sends it nothing");
    }
    let mut miner = V2Miner::connect(addr, authority()).await.unwrap();
    miner.setup().await;
    let channel = miner.open(&pair.node(1).new_address().unwrap(), 0.0).await;
    assert_eq!(miner.mine_fresh(channel).await, Answer::Accepted);

    // A share on a channel that does not exist: an error code, the connection stays.
    let mut wrong = miner.channels[&channel].clone();
    wrong.id = 99;
    miner.channels.insert(99, wrong);
    let (answer, _) = miner.mine_one(99).await;
    assert_eq!(answer, Answer::Refused("invalid-channel-id".into()));
    assert_eq!(miner.mine_fresh(channel).await, Answer::Accepted);

    // Distinct channels of one connection get distinct extranonce prefixes.
    let second = miner.open(&pair.node(1).new_address().unwrap(), 0.0).await;
    let prefixes: BTreeSet<_> = [channel, second]
        .iter()
        .map(|c| miner.channels[c].extranonce_prefix.clone())
        .collect();
    assert_eq!(prefixes.len(), 2);
    assert_eq!(miner.mine_fresh(second).await, Answer::Accepted);

    // Shutdown: a Reconnect to the same host and port, then the close.
    pool.stop().await;
    let mut reconnect = None;
    while let Some(m) = miner.recv().await {
        if let AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(r)) = m {
            reconnect = Some((r.new_host.as_utf8_or_hex(), r.new_port));
        }
    }
    assert_eq!(reconnect, Some((String::new(), 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_miner_mines_over_v2_on_both_channel_kinds_and_fails_over_to_v1() {
    let pair = testkit::RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.stratum.v2 = Some(v2_config());
    cfg.vardiff.min = 1e-12;
    let pool = TestPool::start(cfg).await;
    let v2 = pool.running.v2_addr.unwrap();
    let v2_url = PoolUrl::v2("127.0.0.1", v2.port(), authority());

    // `miner -o stratum2+tcp://...`: extended channel by default, then standard.
    for channel in [ChannelKind::Extended, ChannelKind::Standard] {
        let address = pair.node(1).new_address().unwrap();
        let miner = start_miner_on(vec![v2_url.clone()], &address, channel);
        until(
            &format!("shares accepted over V2 ({channel:?})"),
            Duration::from_secs(60),
            || async { miner.stats.snapshot(std::time::Instant::now()).accepted >= 20 },
        )
        .await;
        let s = miner.stats.snapshot(std::time::Instant::now());
        // A block found on the way (one share in a few hundred here) can make a share in
        // flight stale; nothing else is refused.
        assert!(
            s.reject_reasons.keys().all(|r| r == "stale-share") && s.rejected <= s.accepted / 4,
            "{:?}",
            s.reject_reasons
        );
        assert_eq!(s.pool.as_deref(), Some(v2_url.to_string().as_str()));
        miner.cancel.cancel();
    }

    // A wrong authority key: the handshake fails with an error that says so, and the
    // miner goes on to the next pool in its list (a v1 one), never to plain text on the
    // V2 port.
    let wrong = PoolUrl::v2(
        "127.0.0.1",
        v2.port(),
        AuthorityKeys::generate(|| [9; 32]).public,
    );
    let address = pair.node(1).new_address().unwrap();
    let miner = start_miner_on(
        vec![wrong, PoolUrl::v1("127.0.0.1", pool.port())],
        &address,
        ChannelKind::Extended,
    );
    until(
        "the miner on the v1 pool after the V2 one failed",
        Duration::from_secs(60),
        || async { miner.stats.snapshot(std::time::Instant::now()).accepted >= 5 },
    )
    .await;
    let s = miner.stats.snapshot(std::time::Instant::now());
    assert!(s.failures >= 1);
    assert_eq!(
        s.pool.as_deref(),
        Some(format!("stratum+tcp://127.0.0.1:{}", pool.port()).as_str())
    );
    miner.cancel.cancel();
    pool.stop().await;
}
