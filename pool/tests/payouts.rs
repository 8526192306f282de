//! PPLNS bookkeeping end to end on the regtest pair with a real PostgreSQL: credits follow
//! the formula recomputed from the raw shares, an orphaned block credits no one, an
//! unfilled window follows its policy, acknowledged shares survive the database being
//! away, and two pool processes share one database.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use pool::accounting::pplns::{self, Weight};
use pool::config::Unfilled;
use serde_json::json;
use sqlx::{PgPool, Row};
use testkit::{RegtestPair, TempPostgres};

/// 2^-32 and 2^-33 as the shortest decimals: exact in binary, so sums of share
/// difficulties are exact and the test's walk gives the very same numbers as the pool's.
const D_A: &str = "2.3283064365386963e-10";
const D_B: &str = "1.1641532182693481e-10";

/// Each test here runs a node pair, PostgreSQL, one or two pools and miners: on a 2-core
/// machine they take turns, so that timings do not depend on what else runs.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// The window by its definition: the newest shares up to `end`, the oldest in part.
async fn naive_weights(db: &PgPool, end_us: i64, size: f64) -> Vec<Weight> {
    let rows = sqlx::query(
        "SELECT address, difficulty FROM shares WHERE time <= micros_to_ts($1)
         ORDER BY time DESC, uid DESC",
    )
    .bind(end_us)
    .fetch_all(db)
    .await
    .unwrap();
    let mut by: BTreeMap<String, f64> = BTreeMap::new();
    let mut filled = 0.0;
    for row in rows {
        let difficulty: f64 = row.get("difficulty");
        let counted = difficulty.min(size - filled);
        if counted <= 0.0 {
            break;
        }
        *by.entry(row.get("address")).or_default() += counted;
        filled += counted;
    }
    let mut weights: Vec<Weight> = by
        .into_iter()
        .map(|(address, difficulty)| Weight {
            address,
            difficulty,
        })
        .collect();
    pplns::sort_weights(&mut weights);
    weights
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_follow_the_formula_and_an_orphan_credits_no_one() {
    let _turn = SERIAL.lock().await;
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool_address = pair.node(0).new_address().unwrap();
    let alice = pair.node(1).new_address().unwrap();
    let bob = pair.node(1).new_address().unwrap();
    let mut cfg = pplns_config(
        vec![node_config(pair.node(0)), node_config(pair.node(1))],
        pool_address,
        dir.path(),
        &pg,
    );
    cfg.payouts.confirmations = 3;
    // A window of 16 x network difficulty (32 of Alice's shares): the first blocks of a
    // fresh pool cannot fill it, later ones may.
    cfg.payouts.window_factor = 16.0;
    cfg.payouts.unfilled = Unfilled::PoolKeepsRest;
    cfg.payouts.fee_percent = 1.0;
    cfg.payouts.payments = false;
    let fee_ppm = pplns::fee_ppm(cfg.payouts.fee_percent);
    let mut pool = TestPool::start(cfg).await;
    let db = pool.running.store.clone().unwrap().db().clone();
    let a = start_miner_with(pool.port(), &format!("{alice}.a"), &format!("x,d={D_A}"));
    let b = start_miner_with(pool.port(), &format!("{bob}.b"), &format!("x,d={D_B}"));
    pool.accepted_blocks(8, Duration::from_secs(120)).await;
    a.cancel.cancel();
    b.cancel.cancel();
    until(
        "credits of the confirmed blocks",
        Duration::from_secs(30),
        || async {
            count(
                &db,
                "SELECT count(*) FROM blocks WHERE status = 'confirmed'",
            )
            .await
                >= 4
                && count(&db, "SELECT count(*) FROM blocks WHERE frozen_at IS NULL").await == 0
        },
    )
    .await;

    // Orphan the newest block: invalidate it on both nodes and let node 0 mine past it.
    let (orphan, orphan_height): (String, i64) =
        sqlx::query_as("SELECT hash, height FROM blocks ORDER BY height DESC LIMIT 1")
            .fetch_one(&db)
            .await
            .unwrap();
    for i in 0..2 {
        pair.node(i)
            .call("invalidateblock", json!([orphan]))
            .unwrap();
    }
    pair.node(0).generate(4).unwrap();
    pair.wait_synced().unwrap();
    until(
        "the orphan to be noticed",
        Duration::from_secs(30),
        || async { count(&db, "SELECT count(*) FROM blocks WHERE status = 'pending'").await == 0 },
    )
    .await;
    let status: String = sqlx::query_scalar("SELECT status::text FROM blocks WHERE hash = $1")
        .bind(&orphan)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "orphaned", "block {orphan} at {orphan_height}");
    // Blocks built on top of the orphan went with it.
    let orphans = count(&db, "SELECT count(*) FROM blocks WHERE status = 'orphaned'").await;
    assert!(orphans >= 1);

    // Every block: the frozen credits are the formula applied to the raw shares.
    let blocks = sqlx::query(
        "SELECT hash, ts_to_micros(found_at) AS found, reward, network_difficulty,
                window_difficulty, window_filled, pool_amount, status::text AS status
         FROM blocks ORDER BY found_at",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut expected_balances: BTreeMap<String, i64> = BTreeMap::new();
    let mut unfilled_seen = false;
    for row in &blocks {
        let hash: String = row.get("hash");
        let reward: i64 = row.get("reward");
        let network: f64 = row.get("network_difficulty");
        let size: f64 = row.get("window_difficulty");
        assert_eq!(size, 16.0 * network);
        let weights = naive_weights(&db, row.get("found"), size).await;
        let want = pplns::split(
            protocol::Amount::from_sat(reward as u64),
            fee_ppm,
            size,
            &weights,
            Unfilled::PoolKeepsRest,
        );
        let credits: Vec<(String, i64)> = sqlx::query_as(
            "SELECT address, amount FROM credits WHERE block_hash = $1 ORDER BY amount DESC, address",
        )
        .bind(&hash)
        .fetch_all(&db)
        .await
        .unwrap();
        let want_credits: Vec<(String, i64)> = want
            .credits
            .iter()
            .map(|(a, c)| (a.clone(), c.to_sat() as i64))
            .collect();
        assert_eq!(credits, want_credits, "block {hash}");
        let pool_amount: i64 = row.get("pool_amount");
        assert_eq!(pool_amount as u64, want.pool_amount().to_sat());
        assert_eq!(
            credits.iter().map(|(_, c)| c).sum::<i64>() + pool_amount,
            reward,
            "credits and the pool's part add up to the reward"
        );
        let filled: f64 = row.get("window_filled");
        if filled < size {
            unfilled_seen = true;
            assert!(
                want.residue > protocol::Amount::ZERO,
                "the pool keeps the empty part of the window"
            );
        }
        let status: String = row.get("status");
        let credited = count(
            &db,
            &format!("SELECT count(*) FROM credits WHERE block_hash = '{hash}' AND credited_at IS NOT NULL"),
        )
        .await;
        if status == "confirmed" {
            assert_eq!(credited, credits.len() as i64);
            for (address, amount) in credits {
                *expected_balances.entry(address).or_default() += amount;
            }
        } else {
            assert_eq!(credited, 0, "a {status} block credits no one");
        }
    }
    let fills: Vec<(f64, f64, i64)> = sqlx::query_as(
        "SELECT window_filled, window_difficulty, height FROM blocks ORDER BY found_at",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let first_shares = count(
        &db,
        "SELECT count(*) FROM shares WHERE time <= (SELECT min(found_at) FROM blocks)",
    )
    .await;
    assert!(
        unfilled_seen,
        "the first block's window cannot be full: {fills:?}, {first_shares} shares up to the first block"
    );
    let balances: BTreeMap<String, i64> =
        sqlx::query_as::<_, (String, i64)>("SELECT address, amount FROM balances")
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(balances, expected_balances);
    assert_eq!(balances.len(), 2, "both miners are credited: {balances:?}");
    // Alice's shares are worth twice Bob's but come half as often at the same hashrate.
    assert!(balances[&alice] > 0 && balances[&bob] > 0);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_shares_survive_thirty_seconds_without_postgres() {
    let _turn = SERIAL.lock().await;
    let mut setup = Setup::start();
    let mut cfg = setup.config();
    let (pair, pg) = (&setup.pair, &mut setup.pg);
    cfg.payouts.payments = false;
    let mut pool = TestPool::start(cfg).await;
    let db = pool.running.store.clone().unwrap().db().clone();
    let miners: Vec<_> = (0..2)
        .map(|i| {
            let address = pair.node(1).new_address().unwrap();
            start_miner_with(
                pool.port(),
                &format!("{address}.m{i}"),
                &format!("x,d={D_B}"),
            )
        })
        .collect();
    let acked = |miners: &[TestMiner]| {
        miners
            .iter()
            .map(|m| m.stats.snapshot(Instant::now()).accepted)
            .sum::<u64>()
    };
    pool.accepted_blocks(3, Duration::from_secs(60)).await;

    tokio::task::block_in_place(|| pg.stop_server()).unwrap();
    let before = acked(&miners);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = acked(&miners);
    eprintln!(
        "acked before {before}, after 30 s without PostgreSQL {during}; blocks {}",
        pool.running.stats.snapshot().blocks_accepted
    );
    let writer = pool.running.writer.clone();
    assert!(
        during > before + 10,
        "miners kept getting answers: {before} -> {during}"
    );
    assert!(writer.spooled.load(Ordering::Relaxed) > 0);
    tokio::task::block_in_place(|| pg.start_server()).unwrap();
    until(
        "the spool to be replayed",
        Duration::from_secs(30),
        || async { writer.replayed.load(Ordering::Relaxed) > 0 },
    )
    .await;
    for m in &miners {
        m.cancel.cancel();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let accepted = pool.running.stats.snapshot().accepted;
    let acked_by_miners = acked(&miners);
    pool.stop().await;
    assert_eq!(writer.lost.load(Ordering::Relaxed), 0);
    let stored = count(&db, "SELECT count(*) FROM shares").await;
    // Every share the pool accepted is in the table once (the key is unique), and the
    // miners were told "accepted" for no more than that.
    assert_eq!(stored as u64, accepted, "shares in PostgreSQL vs accepted");
    assert!(
        acked_by_miners <= accepted,
        "{acked_by_miners} answered, {accepted} accepted"
    );
    let minutes: i64 = count(&db, "SELECT sum(shares)::bigint FROM share_minutes").await;
    assert_eq!(minutes, stored, "per-minute totals count each share once");
    assert!(count(&db, "SELECT count(*) FROM blocks").await >= 3);
    let spool = std::fs::read_to_string(setup.dir.path().join("spool/spool.jsonl")).unwrap();
    assert!(spool.is_empty(), "the spool is emptied after the replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pool_processes_share_one_database() {
    let _turn = SERIAL.lock().await;
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let pool_address = pair.node(0).new_address().unwrap();
    let mut pools = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let mut cfg = pplns_config(
            vec![node_config(pair.node(i))],
            pool_address.clone(),
            dir.path(),
            &pg,
        );
        cfg.stratum.instance_id = 7 + i as u8;
        cfg.payouts.payments = false;
        pools.push(TestPool::start(cfg).await);
    }
    for (i, p) in pools.iter().enumerate() {
        let en1 = extranonce1(p.port()).await;
        assert!(en1.starts_with(&format!("{:02x}", 7 + i)), "{en1}");
    }
    let miners: Vec<_> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let address = pair.node(1).new_address().unwrap();
            start_miner_with(p.port(), &format!("{address}.p{i}"), &format!("x,d={D_B}"))
        })
        .collect();
    // Ten each: on regtest half of all hashes are blocks, and the miners once stalled here
    // after a few blocks, buried under millions of queued solutions.
    until(
        "blocks from both pools",
        Duration::from_secs(60),
        || async {
            pools
                .iter()
                .all(|p| p.running.stats.snapshot().blocks_accepted >= 10)
        },
    )
    .await;
    let leaders = || {
        pools
            .iter()
            .filter(|p| p.running.leading.load(Ordering::SeqCst))
            .count()
    };
    until("a leader", Duration::from_secs(10), || async {
        leaders() == 1
    })
    .await;
    for m in &miners {
        m.cancel.cancel();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = pools[0].running.store.clone().unwrap().db().clone();
    let accepted: Vec<u64> = pools
        .iter()
        .map(|p| p.running.stats.snapshot().accepted)
        .collect();
    assert_eq!(leaders(), 1, "exactly one process does the bookkeeping");
    for (i, want) in accepted.iter().enumerate() {
        let got = count(
            &db,
            &format!("SELECT count(*) FROM shares WHERE instance = {}", 7 + i),
        )
        .await;
        assert_eq!(got as u64, *want, "shares of pool {i}");
        assert!(got > 0);
    }
    // Blocks from both are tracked by the one leader.
    until("every block frozen", Duration::from_secs(20), || async {
        count(&db, "SELECT count(*) FROM blocks WHERE frozen_at IS NULL").await == 0
    })
    .await;
    // The leader stops: the other takes over.
    let first = pools
        .iter()
        .position(|p| p.running.leading.load(Ordering::SeqCst))
        .unwrap();
    let leader = pools.remove(first);
    let other = pools.remove(0);
    leader.stop().await;
    until(
        "the other process to lead",
        Duration::from_secs(15),
        || async { other.running.leading.load(Ordering::SeqCst) },
    )
    .await;
    other.stop().await;
}
