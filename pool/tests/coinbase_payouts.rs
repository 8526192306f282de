//! `payouts.method = "coinbase"` on a regtest pair with PostgreSQL: two of our CPU miners
//! at different speeds, blocks found; every block's coinbase, as the node's `getblock`
//! shows it, pays exactly what the pool recorded for it (each miner's output at its index,
//! the pool's output last, the sum the block's reward), the first block of an empty window
//! pays the pool alone, both miners get paid (with one output slot for miners, in turns:
//! what one block could not pay is carried and paid by a later one), confirmed blocks
//! credit no balance (the coinbase paid them) while their credits are what the coinbase
//! paid, and after 100 more blocks the miners' wallet holds exactly what the pool recorded.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::*;
use pool::config::PayoutMethod;
use sqlx::Row;

/// Share difficulties below regtest's network difficulty: alice's shares are worth twice
/// bob's.
const D_A: &str = "2.3283064365386963e-10";
const D_B: &str = "1.1641532182693481e-10";

/// Checks every stored block against its coinbase on the chain; returns which addresses
/// were paid and how many blocks paid the pool alone.
async fn check_blocks(
    db: &sqlx::PgPool,
    node: &testkit::Node,
    pool_address: &str,
) -> (std::collections::BTreeSet<String>, usize) {
    let pool_script = script_of(pool_address);
    let mut paid_to = std::collections::BTreeSet::new();
    let mut pool_alone = 0;
    let stored = sqlx::query("SELECT hash, reward, coinbase_pool FROM blocks ORDER BY height")
        .fetch_all(db)
        .await
        .unwrap();
    assert!(!stored.is_empty());
    for row in &stored {
        let hash: String = row.get("hash");
        let reward: i64 = row.get("reward");
        let pool_part: Option<i64> = row.get("coinbase_pool");
        let pool_part = pool_part.expect("every block of a coinbase-payout pool has its record");
        let outputs = coinbase_outputs(node, &hash);
        let paying: u64 = outputs.iter().map(|(v, _)| *v).sum();
        assert_eq!(
            paying, reward as u64,
            "{hash}: the coinbase pays the whole reward"
        );
        let rows = sqlx::query(
            "SELECT address, paid, output_index FROM coinbase_payouts
             WHERE block_hash = $1 ORDER BY output_index NULLS LAST, address",
        )
        .bind(&hash)
        .fetch_all(db)
        .await
        .unwrap();
        let mut paid_total = 0i64;
        let mut miners = 0;
        for r in &rows {
            let address: String = r.get("address");
            let paid: i64 = r.get("paid");
            let index: Option<i32> = r.get("output_index");
            match index {
                Some(i) => {
                    let (value, script) = &outputs[i as usize];
                    assert_eq!(*value as i64, paid, "{hash}: {address}'s output");
                    assert_eq!(*script, script_of(&address), "{hash}: output {i}");
                    paid_total += paid;
                    miners += 1;
                    paid_to.insert(address);
                }
                None => assert_eq!(paid, 0, "{hash}: {address} is carried, not paid"),
            }
        }
        // The pool's output comes after the miners'.
        if pool_part > 0 {
            assert_eq!(
                outputs[miners],
                (pool_part as u64, pool_script.clone()),
                "{hash}"
            );
        }
        assert_eq!(paid_total + pool_part, reward, "{hash}: the record adds up");
        if rows.is_empty() {
            pool_alone += 1;
        }
    }
    (paid_to, pool_alone)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbases_pay_the_window_directly() {
    let setup = Setup::start();
    let mut cfg = setup.config();
    cfg.payouts.method = PayoutMethod::Coinbase;
    cfg.payouts.min_output = 1000;
    // One output for miners: each coinbase pays one, the other is carried.
    cfg.payouts.max_outputs = 2;
    cfg.payouts.confirmations = 1;
    cfg.payouts.check_secs = 1;
    cfg.payouts.freeze_delay_secs = 1;
    cfg.jobs.refresh_secs = 1;
    let mut pool = TestPool::start(cfg).await;
    let db = pool.running.store.clone().unwrap().db().clone();
    let alice = setup.pair.node(1).new_address().unwrap();
    let bob = setup.pair.node(1).new_address().unwrap();
    let miners = [
        start_miner_with(pool.port(), &format!("{alice}.a"), &format!("x,d={D_A}")),
        start_miner_with(pool.port(), &format!("{bob}.b"), &format!("x,d={D_B}")),
    ];
    // Enough blocks that later ones are split by a window holding both miners.
    let blocks = pool.accepted_blocks(10, Duration::from_secs(120)).await;
    assert!(blocks.len() >= 10);
    until(
        "coinbase rows and decisions",
        Duration::from_secs(60),
        || async {
            let decided: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM blocks WHERE status = 'confirmed' AND coinbase_pool IS NOT NULL",
        )
        .fetch_one(&db)
        .await
        .unwrap();
            decided >= 10
        },
    )
    .await;

    let node = setup.pair.node(0);
    let (paid_to, pool_alone) = check_blocks(&db, node, &setup.pool_address).await;
    let (paid_alice, paid_bob) = (paid_to.contains(&alice), paid_to.contains(&bob));
    assert!(
        pool_alone >= 1,
        "the first block, with an empty window, pays the pool alone"
    );
    assert!(paid_alice && paid_bob, "both miners were paid in coinbases");
    let carried_paid: i64 =
        sqlx::query_scalar("SELECT count(*) FROM coinbase_payouts WHERE paid > credit")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        carried_paid > 0,
        "a carried balance was paid by a later coinbase"
    );

    // Confirmed: credits are what the coinbases paid; no balance to pay from a wallet.
    let balances: i64 = sqlx::query_scalar("SELECT count(*) FROM balances")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(balances, 0);
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM credits c JOIN coinbase_payouts p
           ON p.block_hash = c.block_hash AND p.address = c.address
         WHERE c.amount <> p.paid",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    let credited: i64 = sqlx::query_scalar("SELECT count(*) FROM credits")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(credited > 0);

    // The API: the current job's outputs, one miner's part, coinbase payouts as payments.
    let api = pool.running.api_addr.unwrap();
    let (status, now) = http_json(api, "/api/coinbase").await;
    assert_eq!(status, 200, "{now}");
    let outputs = now["outputs"].as_array().unwrap();
    assert!(!outputs.is_empty(), "{now}");
    let sum: f64 = outputs
        .iter()
        .map(|o| o["amount"].as_f64().unwrap())
        .sum::<f64>()
        + now["pool"]["amount"].as_f64().unwrap();
    assert!(
        (sum - now["reward"].as_f64().unwrap()).abs() < 1e-8,
        "{now}"
    );
    assert_eq!(now["pool"]["address"], setup.pool_address.as_str());
    assert_eq!(now["pool"]["index"], outputs.len());
    let (status, mine) = http_json(api, &format!("/api/coinbase/{alice}")).await;
    assert_eq!(status, 200, "{mine}");
    assert!(mine["credit"].as_f64().unwrap() > 0.0, "{mine}");
    assert!(mine["carried"].is_number());
    let (status, _) = http_json(api, "/api/coinbase/notanaddress").await;
    assert_eq!(status, 400);
    let (_, payments) = http_json(api, &format!("/api/pools/pool/miners/{alice}/payments")).await;
    let first = &payments.as_array().unwrap()[0];
    assert!(
        first["blockHash"].as_str().is_some_and(|h| h.len() == 64),
        "{first}"
    );
    assert!(first["outputIndex"].is_number());
    assert!(first["amount"].as_f64().unwrap() > 0.0);

    // Maturity: the miners' wallet (node 1's) holds what the coinbases paid them.
    drop(miners);
    pool.stop().await;
    setup.pair.wait_synced().unwrap();
    let recorded: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(paid), 0)::bigint FROM coinbase_payouts WHERE address = ANY($1)",
    )
    .bind(vec![alice.clone(), bob.clone()])
    .fetch_one(&db)
    .await
    .unwrap();
    let tip = node.height().unwrap();
    let scripts = [script_of(&alice), script_of(&bob)];
    let mut on_chain = 0u64;
    for height in 1..=tip {
        let hash = node
            .call("getblockhash", serde_json::json!([height]))
            .unwrap();
        for (value, script) in coinbase_outputs(node, hash.as_str().unwrap()) {
            if scripts.contains(&script) {
                on_chain += value;
            }
        }
    }
    assert_eq!(
        on_chain as i64, recorded,
        "the chain pays what the pool recorded"
    );
    node.generate(101).unwrap();
    setup.pair.wait_synced().unwrap();
    let balance = setup
        .pair
        .node(1)
        .call("getbalance", serde_json::json!([]))
        .unwrap();
    let balance = (balance.as_f64().unwrap() * 1e8).round() as i64;
    assert_eq!(balance, recorded, "mature in the miners' wallet");
}

/// The same over Stratum V2: one miner on an extended channel, one on a standard channel
/// (whose merkle root the pool computes from the same coinbase).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_channels_mine_coinbases_that_pay_the_window() {
    use common::v2::{authority, v2_config};
    use miner::client::{ChannelKind, PoolUrl};
    let setup = Setup::start();
    let mut cfg = setup.config();
    cfg.payouts.method = PayoutMethod::Coinbase;
    cfg.payouts.min_output = 1000;
    cfg.jobs.refresh_secs = 1;
    cfg.stratum.v2 = Some(v2_config());
    let mut pool = TestPool::start(cfg).await;
    let db = pool.running.store.clone().unwrap().db().clone();
    let url = PoolUrl::v2(
        "127.0.0.1",
        pool.running.v2_addr.unwrap().port(),
        authority(),
    );
    let extended = setup.pair.node(1).new_address().unwrap();
    let standard = setup.pair.node(1).new_address().unwrap();
    let miners = [
        start_miner_on(vec![url.clone()], &extended, ChannelKind::Extended),
        start_miner_on(vec![url], &standard, ChannelKind::Standard),
    ];
    pool.accepted_blocks(6, Duration::from_secs(120)).await;
    until("both V2 miners paid", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT address) FROM coinbase_payouts WHERE paid > 0",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        n >= 2
    })
    .await;
    drop(miners);
    pool.stop().await;
    setup.pair.wait_synced().unwrap();
    let (paid_to, _) = check_blocks(&db, setup.pair.node(0), &setup.pool_address).await;
    assert!(
        paid_to.contains(&extended) && paid_to.contains(&standard),
        "{paid_to:?}"
    );
}
