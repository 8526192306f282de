//! The API's history from a PostgreSQL read replica (`database.read_url`): a real
//! streaming standby that testkit makes with `pg_basebackup`. While its replay is paused
//! the API shows the blocks the replica has, and the primary takes the new ones; when it
//! stops, the primary answers; when it comes back, it answers again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// 2^-33: below regtest's network difficulty.
const D: &str = "1.1641532182693481e-10";

/// How many blocks the API lists (one per page: the page count).
async fn api_blocks(api: SocketAddr) -> usize {
    let (status, v) = http_json(api, "/api/v2/pools/pool/blocks?pageSize=1").await;
    assert_eq!(status, 200, "{v}");
    v["pageCount"].as_u64().unwrap() as usize
}

async fn metrics(api: SocketAddr) -> String {
    http_get(api, "/metrics").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_comes_from_the_replica_and_from_the_primary_when_it_stops() {
    let setup = Setup::start();
    let mut replica = setup.pg.start_replica().unwrap();
    let mut cfg = setup.config();
    cfg.payouts.payments = false;
    cfg.database.read_url = Some(replica.url());
    let mut pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();
    let primary = pool.running.store.clone().unwrap().db().clone();
    let standby = sqlx::PgPool::connect(&replica.url()).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&standby)
        .await
        .unwrap();
    assert!(in_recovery, "testkit's replica is a standby");
    until("the replica in use", Duration::from_secs(30), || async {
        metric(&metrics(api).await, "pool_read_replica_up") == Some(1.0)
    })
    .await;

    // Blocks found; the replica streams them and the API shows them from it.
    let alice = setup.pair.node(1).new_address().unwrap();
    let miner = start_miner_with(pool.port(), &format!("{alice}.rig1"), &format!("x,d={D}"));
    pool.accepted_blocks(2, Duration::from_secs(60)).await;
    until(
        "blocks through the replica",
        Duration::from_secs(30),
        || async { api_blocks(api).await >= 2 },
    )
    .await;

    // The replica stops replaying: the API keeps showing what it has, while the primary
    // takes every new block.
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&standby)
        .await
        .unwrap();
    until("replay paused", Duration::from_secs(30), || async {
        let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&standby)
            .await
            .unwrap();
        state == "paused"
    })
    .await;
    let frozen = api_blocks(api).await;
    pool.accepted_blocks(3, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_primary: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(&primary)
        .await
        .unwrap();
    assert!(
        on_primary as usize >= frozen + 3,
        "{on_primary} vs {frozen}"
    );
    assert_eq!(
        api_blocks(api).await,
        frozen,
        "history from the paused replica"
    );
    let text = metrics(api).await;
    assert!(metric(&text, "pool_history_reads_total{database=\"replica\"}").unwrap() > 0.0);

    // Replay goes on: the API catches up.
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&standby)
        .await
        .unwrap();
    until("the replica caught up", Duration::from_secs(30), || async {
        api_blocks(api).await >= on_primary as usize
    })
    .await;
    miner.cancel.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks")
        .fetch_one(&primary)
        .await
        .unwrap();

    // The replica stops: the primary answers, at once (the read that fails on the
    // replica is asked again there).
    standby.close().await;
    tokio::task::block_in_place(|| replica.stop_server()).unwrap();
    assert_eq!(api_blocks(api).await, all as usize, "the primary answers");
    let (status, _) = http_json(api, &format!("/api/pools/pool/miners/{alice}")).await;
    assert_eq!(status, 200);
    let text = metrics(api).await;
    assert_eq!(metric(&text, "pool_read_replica_up"), Some(0.0), "{text}");
    assert!(metric(&text, "pool_history_read_fallbacks_total").unwrap() >= 1.0);
    let from_primary = metric(&text, "pool_history_reads_total{database=\"primary\"}").unwrap();
    assert!(from_primary >= 1.0, "{text}");

    // It comes back: history is read from it again.
    tokio::task::block_in_place(|| replica.start_server()).unwrap();
    until(
        "the replica back in use",
        Duration::from_secs(30),
        || async { metric(&metrics(api).await, "pool_read_replica_up") == Some(1.0) },
    )
    .await;
    let before = metric(
        &metrics(api).await,
        "pool_history_reads_total{database=\"replica\"}",
    );
    assert_eq!(api_blocks(api).await, all as usize);
    let after = metric(
        &metrics(api).await,
        "pool_history_reads_total{database=\"replica\"}",
    );
    assert!(after > before, "{before:?} -> {after:?}");
    pool.stop().await;
}
