//! Our Stratum V2 port against the Stratum Reference Implementation's translator proxy
//! (`translator_sv2` 0.6.0, installed by `scripts/setup`): two of our CPU miners speak
//! Stratum v1 to the translator, which mines for them on the pool's V2 port, on the regtest
//! pair with a real PostgreSQL. Blocks are accepted by the node, every share the pool
//! accepted is in PostgreSQL, and PPLNS credits the translator's address.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::v2::{AUTHORITY_PUBLIC, v2_config};
use common::*;
use pool::observe::stats::Protocol;
use testkit::Translator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_miners_behind_the_reference_translator_mine_on_the_v2_port() {
    let setup = Setup::start();
    let dave = setup.pair.node(1).new_address().unwrap();
    let mut cfg = setup.config();
    cfg.stratum.v2 = Some(v2_config());
    cfg.payouts.payments = false;
    cfg.payouts.window_factor = 1000.0;
    let mut pool = TestPool::start(cfg).await;
    let db = pool.running.store.clone().unwrap().db().clone();
    let v2_addr = pool.running.v2_addr.unwrap();
    let mut translator = Translator::start(v2_addr, AUTHORITY_PUBLIC, &dave).unwrap();

    // The translator names its channels after itself; what the miners authorize as is
    // theirs to keep.
    let a = start_miner(translator.port(), "rig-a");
    let b = start_miner(translator.port(), "rig-b");
    let blocks = tokio::time::timeout(
        Duration::from_secs(150),
        pool.accepted_blocks(3, Duration::from_secs(150)),
    )
    .await
    .unwrap_or_else(|_| panic!("no blocks; the translator said:\n{}", translator.log()));
    for block in &blocks {
        assert!(block.accepted);
        let height = setup.pair.node(0).height().unwrap();
        assert!(block.height <= height);
    }
    a.cancel.cancel();
    b.cancel.cancel();

    // Every share the pool accepted over V2 is in PostgreSQL, under the translator's
    // address and one worker per miner.
    until("the V2 shares stored", Duration::from_secs(20), || async {
        let accepted = pool
            .running
            .stats
            .snapshot()
            .protocol(Protocol::V2)
            .accepted;
        let stored = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM shares WHERE address = $1")
            .bind(&dave)
            .fetch_one(&db)
            .await
            .unwrap();
        accepted > 0 && stored as u64 == accepted
    })
    .await;
    let workers: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT worker FROM shares WHERE address = $1 ORDER BY 1")
            .bind(&dave)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(
        workers.len() == 2 && workers.iter().all(|w| w.starts_with("miner")),
        "{workers:?}"
    );
    let finders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM blocks WHERE finder LIKE $1 || '.miner%'")
            .bind(&dave)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(finders >= 3, "{finders} blocks by the translator's miners");
    // And PPLNS credits the translator's address.
    until(
        "credits to the translator's address",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM credits WHERE address = $1 AND amount > 0",
            )
            .bind(&dave)
            .fetch_one(&db)
            .await
            .unwrap();
            n > 0
        },
    )
    .await;
    // The pool shuts down: the translator (which panics on a Reconnect) only sees the
    // close, tries to reconnect, and gives up cleanly when nobody answers.
    pool.stop().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while translator.is_running() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = translator.log();
    assert!(
        !log.contains("panicked") && log.contains("Failed to reconnect"),
        "the translator handles the pool's shutdown:\n{log}"
    );
}
