//! The store against a real PostgreSQL: batched writes and replays, the PPLNS window from
//! per-minute totals against a naive walk over every share, effort, retention and the
//! statistics samples.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use pool::observe::best::Scope;
use pool::store::{BlockRow, Record, ShareRow, Store};
use testkit::TempPostgres;

const MINUTE: i64 = 60_000_000;

async fn open(pg: &TempPostgres) -> Store {
    Store::open(&pg.url(), 4, Duration::from_secs(10))
        .await
        .unwrap()
}

fn share(time_us: i64, uid: i64, address: &str, difficulty: f64) -> Record {
    Record::Share(ShareRow {
        time_us,
        uid,
        address: address.into(),
        worker: format!("w{}", uid % 3),
        difficulty,
        share_difficulty: difficulty * 1.5,
        network_difficulty: 1000.0,
        height: 100,
        instance: 0,
    })
}

/// Shares over ~12 minutes from four addresses, some at the same microsecond.
fn history(start: i64) -> Vec<Record> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut time = start;
    (0..3000)
        .map(|uid| {
            let r = next();
            if r % 5 != 0 {
                time += (r % 500_000) as i64; // up to half a second apart, often equal
            }
            let address = ["alice", "bob", "carol", "dave"][(r >> 8) as usize % 4];
            let difficulty = 2f64.powi(-(((r >> 16) % 4) as i32)) * ((r >> 24) % 7 + 1) as f64;
            share(time, uid, address, difficulty)
        })
        .collect()
}

/// The window by definition: every share up to `end`, newest first (ties by uid).
fn naive_window(records: &[Record], end: i64, size: f64) -> Vec<(String, f64)> {
    let mut shares: Vec<&ShareRow> = records
        .iter()
        .filter_map(|r| match r {
            Record::Share(s) if s.time_us <= end => Some(s),
            _ => None,
        })
        .collect();
    shares.sort_by_key(|s| std::cmp::Reverse((s.time_us, s.uid)));
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    let mut filled = 0.0;
    for s in shares {
        let counted = s.difficulty.min(size - filled);
        if counted <= 0.0 {
            break;
        }
        *by.entry(s.address.clone()).or_default() += counted;
        filled += counted;
    }
    by.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_from_minute_totals_equal_the_naive_walk() {
    let pg = TempPostgres::start().unwrap();
    let store = open(&pg).await;
    let start = 1_763_000_000_000_000 - 1_763_000_000_000_000 % MINUTE + 17_000_000;
    let records = history(start);
    // The writer's two paths: fresh batches by COPY, and a replay of one of them (a
    // batch whose commit was reported failed after all) through the idempotent insert.
    // 700 at a time (copied) and then 100 at a time (one statement each).
    let (large, small) = records.split_at(1400);
    let mut conn = store.writer_connection().await.unwrap();
    for chunk in large.chunks(700).chain(small.chunks(100)) {
        store.write_new(&mut conn, chunk).await.unwrap();
    }
    // Written twice: a replay changes nothing, totals included.
    store.write(&records[..700]).await.unwrap();
    // A fresh batch that overlaps stored shares fails whole (the writer spools it and
    // replays it through `write`) rather than counting anything twice.
    assert!(
        store
            .write_new(&mut conn, &records[690..710])
            .await
            .is_err()
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM shares")
        .fetch_one(store.db())
        .await
        .unwrap();
    assert_eq!(count, 3000);
    let minute_total: f64 = sqlx::query_scalar("SELECT sum(difficulty) FROM share_minutes")
        .fetch_one(store.db())
        .await
        .unwrap();
    let all: f64 = records
        .iter()
        .map(|r| match r {
            Record::Share(s) => s.difficulty,
            _ => 0.0,
        })
        .sum();
    assert!((minute_total - all).abs() < 1e-9 * all);

    let last = match records.last().unwrap() {
        Record::Share(s) => s.time_us,
        _ => unreachable!(),
    };
    // Ends inside the history, at a share and between shares; sizes inside one minute,
    // across many, and larger than everything (unfilled).
    for end in [
        last,
        last - 7 * MINUTE + 123,
        start + 3 * MINUTE,
        start + 45_000_000,
    ] {
        for size in [3.0, 150.0, 2000.0, 5555.5, 1e9] {
            let got = store.pplns_window(end, size).await.unwrap();
            let want = naive_window(&records, end, size);
            let mut got_sorted: Vec<(String, f64)> = got
                .weights
                .iter()
                .map(|w| (w.address.clone(), w.difficulty))
                .collect();
            got_sorted.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(got_sorted.len(), want.len(), "end {end} size {size}");
            for ((ga, gd), (wa, wd)) in got_sorted.iter().zip(&want) {
                assert_eq!(ga, wa);
                assert!(
                    (gd - wd).abs() <= 1e-9 * wd.max(1.0),
                    "{ga}: {gd} vs {wd} (end {end}, size {size})"
                );
            }
            let filled: f64 = want.iter().map(|(_, d)| d).sum();
            assert!((got.filled - filled).abs() <= 1e-9 * filled.max(1.0));
        }
    }
    // Effort: difficulty strictly after one moment, up to another.
    let naive_between = |from: Option<i64>, to: i64| -> f64 {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Share(s) if s.time_us <= to && from.is_none_or(|f| s.time_us > f) => {
                    Some(s.difficulty)
                }
                _ => None,
            })
            .sum()
    };
    for (from, to) in [
        (None, last),
        (Some(start + 90_000_000), last - MINUTE),
        (Some(start + 10), start + 20_000_000),
        (
            Some(start + 2 * MINUTE - start % MINUTE),
            start + 5 * MINUTE,
        ),
    ] {
        let got = store.difficulty_between(from, to).await.unwrap();
        let want = naive_between(from, to);
        assert!(
            (got - want).abs() <= 1e-9 * want.max(1.0),
            "{from:?}..{to}: {got} vs {want}"
        );
    }
}

/// The time conversions every share and history read goes through: exact both ways in any
/// session time zone, and inlined by the planner (a SQL function call per row cost the
/// database a tenth of its CPU at capacity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_conversions_are_exact_and_inlined() {
    let pg = TempPostgres::start().unwrap();
    let store = open(&pg).await;
    let mut conn = store.db().acquire().await.unwrap();
    sqlx::query("SET TimeZone = 'Asia/Kolkata'")
        .execute(&mut *conn)
        .await
        .unwrap();
    // 1970 to 2100, in steps that hit every microsecond digit.
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM generate_series(0::bigint, 4102444800000000, 1234567891) x
         WHERE ts_to_micros(micros_to_ts(x)) <> x
            OR micros_to_ts(x) <> 'epoch'::timestamptz + x * interval '1 microsecond'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(wrong, 0);
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN VERBOSE SELECT ts_to_micros(micros_to_ts(x)) FROM generate_series(1::bigint, 3) x",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        !plan.contains("micros_to_ts(") && !plan.contains("ts_to_micros("),
        "not inlined:\n{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_days_and_samples_count_recent_work() {
    let pg = TempPostgres::start().unwrap();
    let store = open(&pg).await;
    let now = pool::clock::now_us();
    let day = 86_400_000_000;
    store
        .write(&[
            share(now - 90 * day, 1, "old", 1.0),
            share(now - 2 * day, 2, "recent", 1.0),
            share(now - 1000, 3, "alice", 600.0),
            share(now - 500, 4, "bob", 300.0),
            Record::Block(BlockRow {
                hash: "00aa".into(),
                height: 100,
                found_us: now - 400,
                finder: "alice.w1".into(),
                reward: 5_000_000_000,
                network_difficulty: 1000.0,
                payout: None,
            }),
        ])
        .await
        .unwrap();
    let partitions = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'shares'::regclass",
        )
        .fetch_one(store.db())
        .await
        .unwrap()
    };
    assert!(partitions().await >= 3);
    assert_eq!(store.apply_retention(60, 30).await.unwrap(), 1);
    let left: Vec<String> = sqlx::query_scalar("SELECT address FROM shares ORDER BY time")
        .fetch_all(store.db())
        .await
        .unwrap();
    assert_eq!(left, ["recent", "alice", "bob"]);
    // Writing into a dropped day again recreates its partition.
    store
        .write(&[share(now - 90 * day, 5, "late", 1.0)])
        .await
        .unwrap();
    assert_eq!(store.apply_retention(60, 30).await.unwrap(), 1);

    let hashrate = store.sample_stats().await.unwrap();
    // 900 difficulty in the last ten minutes or so: 900 x 2^32 / 600..660 s.
    let expected = 900.0 * 4_294_967_296.0 / 600.0;
    assert!(
        hashrate <= expected && hashrate > expected * 600.0 / 661.0,
        "{hashrate}"
    );
    let miners: Vec<(String, f64)> =
        sqlx::query_as("SELECT address, hashrate FROM miner_stats ORDER BY address")
            .fetch_all(store.db())
            .await
            .unwrap();
    assert_eq!(miners.len(), 2);
    assert_eq!(miners[0].0, "alice");
    assert!((miners[0].1 / miners[1].1 - 2.0).abs() < 1e-9);
    let blocks: i64 = sqlx::query_scalar("SELECT count(*) FROM blocks WHERE status = 'pending'")
        .fetch_one(store.db())
        .await
        .unwrap();
    assert_eq!(blocks, 1);
}

/// A share whose hash reached `best`, of `address.worker`.
fn best_share(time_us: i64, uid: i64, address: &str, worker: &str, best: f64) -> Record {
    Record::Share(ShareRow {
        time_us,
        uid,
        address: address.into(),
        worker: worker.into(),
        difficulty: 1.0,
        share_difficulty: best,
        network_difficulty: 1000.0,
        height: 100,
        instance: 0,
    })
}

fn block(hash: &str, found_us: i64) -> Record {
    Record::Block(BlockRow {
        hash: hash.into(),
        height: 101,
        found_us,
        finder: "alice.rig1".into(),
        reward: 5_000_000_000,
        network_difficulty: 1000.0,
        payout: None,
    })
}

/// (round, all time) of a scope in the store's answer for `address`.
async fn best_of(store: &Store, address: &str, scope: &Scope) -> (f64, f64) {
    let rows = store.bests_of(address).await.unwrap();
    rows.iter()
        .find(|(s, _)| s == scope)
        .map_or((0.0, 0.0), |(_, b)| (b.round, b.all_time))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_difficulties_by_round_and_all_time_shared_by_two_pools() {
    let pg = TempPostgres::start().unwrap();
    // Two pool processes on one database.
    let (one, two) = (open(&pg).await, open(&pg).await);
    let mut one_conn = one.writer_connection().await.unwrap();
    let mut two_conn = two.writer_connection().await.unwrap();
    let t = 1_800_000_000_000_000i64;
    let rig1 = Scope::Worker("alice".into(), "rig1".into());
    let alice = Scope::Address("alice".into());
    // Fresh batches go through the writer's fast path (`write_new`); the replay at the
    // end through the idempotent one.
    one.write_new(
        &mut one_conn,
        &[
            best_share(t, 1, "alice", "rig1", 50.0),
            best_share(t + 1, 2, "alice", "rig2", 80.0),
            best_share(t + 2, 3, "bob", "", 20.0),
        ],
    )
    .await
    .unwrap();
    // The other process sees a better rig1 share: both agree on the result.
    two.write_new(
        &mut two_conn,
        &[best_share(t + 3, 1, "alice", "rig1", 60.0)],
    )
    .await
    .unwrap();
    for store in [&one, &two] {
        assert_eq!(best_of(store, "alice", &rig1).await, (60.0, 60.0));
        assert_eq!(best_of(store, "alice", &alice).await, (80.0, 80.0));
        assert_eq!(best_of(store, "alice", &Scope::Pool).await, (80.0, 80.0));
        assert_eq!(
            best_of(store, "bob", &Scope::Worker("bob".into(), "".into())).await,
            (20.0, 20.0)
        );
    }

    // A block (found by the share at t + 10) ends the round; in the same batch, a share
    // before it still counts for all time only, and one after it opens the new round.
    one.write_new(
        &mut one_conn,
        &[
            best_share(t + 9, 4, "alice", "rig1", 70.0),
            best_share(t + 10, 5, "alice", "rig2", 2000.0),
            best_share(t + 11, 6, "alice", "rig1", 3.0),
            block("00aa", t + 10),
        ],
    )
    .await
    .unwrap();
    assert_eq!(best_of(&two, "alice", &rig1).await, (3.0, 70.0));
    assert_eq!(
        best_of(&two, "alice", &Scope::Worker("alice".into(), "rig2".into())).await,
        (0.0, 2000.0)
    );
    assert_eq!(best_of(&two, "alice", &Scope::Pool).await, (3.0, 2000.0));
    assert_eq!(
        best_of(&two, "bob", &Scope::Address("bob".into())).await,
        (0.0, 20.0)
    );

    // The other process has not seen the block: by what it knows, a 5 raises nothing
    // (rig1's best is 60 there), so its batch goes in as one statement; the newest block
    // read back with it says the round started over, and 5 is rig1's round best after all.
    two.write_new(
        &mut two_conn,
        &[best_share(t + 12, 7, "alice", "rig1", 5.0)],
    )
    .await
    .unwrap();
    assert_eq!(best_of(&one, "alice", &rig1).await, (5.0, 70.0));
    assert_eq!(best_of(&one, "alice", &Scope::Pool).await, (5.0, 2000.0));

    // A replayed old batch (the spool) changes nothing.
    two.write(&[best_share(t + 3, 1, "alice", "rig1", 60.0)])
        .await
        .unwrap();
    assert_eq!(best_of(&one, "alice", &rig1).await, (5.0, 70.0));

    // A restart reads them back: everything the in-memory tracker is seeded with.
    drop((one, two));
    let again = open(&pg).await;
    let all = again.all_bests().await.unwrap();
    let pool = all.iter().find(|(s, _)| *s == Scope::Pool).unwrap().1;
    assert_eq!(
        (pool.round, pool.all_time, pool.all_time_us),
        (5.0, 2000.0, t + 10)
    );
    assert_eq!(
        all.len(),
        1 + 2 + 3,
        "the pool, two addresses, three workers"
    );
}

fn payout_block(hash: &str, height: i64, found_us: i64, rows: &[(&str, u64, u64)]) -> Record {
    Record::Block(BlockRow {
        hash: hash.into(),
        height,
        found_us,
        finder: "alice.w1".into(),
        reward: 10_000,
        network_difficulty: 1000.0,
        payout: Some(pool::chain::jobs::Payout {
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, (a, credit, paid))| pool::chain::jobs::PayoutRow {
                    address: (*a).into(),
                    difficulty: 1.0,
                    credit: *credit,
                    paid: *paid,
                    output: (*paid > 0).then_some(i as u32),
                })
                .collect(),
            pool: 10_000 - rows.iter().map(|r| r.2).sum::<u64>(),
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carried_balances_skip_orphans_and_two_processes_read_the_same_basis() {
    let pg = TempPostgres::start().unwrap();
    let (a, b) = (open(&pg).await, open(&pg).await);
    let now = pool::clock::now_us();
    // Block 1: carol's 800 is carried. Block 2 (a replay of its write changes nothing):
    // carol is paid 1,000 (200 + 800 carried); dave's 300 carried.
    a.write(&history(now - 20 * MINUTE)).await.unwrap();
    a.write(&[payout_block(
        "b1",
        101,
        now - 10 * MINUTE,
        &[("alice", 9000, 9000), ("carol", 800, 0)],
    )])
    .await
    .unwrap();
    let two = payout_block(
        "b2",
        102,
        now - 5 * MINUTE,
        &[
            ("alice", 8500, 8500),
            ("carol", 200, 1000),
            ("dave", 300, 0),
        ],
    );
    a.write(std::slice::from_ref(&two)).await.unwrap();
    b.write(std::slice::from_ref(&two)).await.unwrap();
    let sat = protocol::Amount::from_sat;
    assert_eq!(
        a.carried_balances().await.unwrap(),
        vec![("dave".to_string(), sat(300))]
    );
    // Orphan block 2: its rows stop counting. The 1,000 it paid carol is gone with it, so
    // she is owed her 800 again, and dave's 300 never existed.
    assert!(a.orphan("b2").await.unwrap());
    assert_eq!(
        a.carried_balances().await.unwrap(),
        vec![("carol".to_string(), sat(800))]
    );
    // The job maker's read: the same balances and the blocks they count, newest first.
    assert_eq!(
        a.carried_with_blocks(64).await.unwrap(),
        (
            vec![("carol".to_string(), sat(800))],
            vec!["b1".to_string()]
        )
    );
    // The tracker's view of a coinbase block: the pool's output and what each was paid.
    let (pool_part, rows) = b.coinbase_payout_of("b1").await.unwrap().unwrap();
    assert_eq!(pool_part, sat(1000));
    assert_eq!(rows[0], ("alice".to_string(), 1.0, sat(9000)));
    assert!(b.coinbase_payout_of("nope").await.unwrap().is_none());
    // Two processes on one database read the same basis: window and carried balances.
    let size = 500.0;
    let end = now - MINUTE;
    assert_eq!(
        a.pplns_window(end, size).await.unwrap(),
        b.pplns_window(end, size).await.unwrap()
    );
    assert_eq!(
        a.carried_balances().await.unwrap(),
        b.carried_balances().await.unwrap()
    );
}

/// A coinbase-payout job's outputs from the database equal the formula applied to a naive
/// walk over the raw shares: the window by definition, `pplns::split`, then the plan with
/// the balances carried by the blocks before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_outputs_follow_the_formula_over_a_naive_walk() {
    use pool::accounting::coinbase_payouts::{Payouts, read_basis};
    use pool::accounting::{coinbase_plan, pplns};
    use protocol::address::{Network, parse};
    let pg = TempPostgres::start().unwrap();
    let store = open(&pg).await;
    let addresses = [
        "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn",
        "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA",
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
        "mfxzDH4icnKjpAqADfdzk9Y6PnjSok3zfQ",
    ];
    let start = pool::clock::now_us() - 30 * MINUTE;
    // history()'s shapes with real addresses; the fourth address only a few shares.
    let records: Vec<Record> = history(start)
        .into_iter()
        .map(|r| match r {
            Record::Share(mut s) => {
                let i = ["alice", "bob", "carol", "dave"]
                    .iter()
                    .position(|n| *n == s.address)
                    .unwrap();
                s.address = addresses[if i == 3 && s.uid % 10 != 0 { 0 } else { i }].into();
                Record::Share(s)
            }
            other => other,
        })
        .collect();
    store.write(&records).await.unwrap();
    // An earlier block left the fourth address a carried balance of 700 sat.
    store
        .write(&[payout_block(
            "b0",
            99,
            start - MINUTE,
            &[(addresses[3], 700, 0)],
        )])
        .await
        .unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(include_str!("data/gbt-regtest-sv.json")).unwrap();
    json["transactions"] = serde_json::json!([]);
    let template = pool::chain::template::Template {
        checked: protocol::template::BlockTemplate::from_json(&json)
            .unwrap()
            .validate()
            .unwrap(),
        node: "test".into(),
        fetch_time: Duration::ZERO,
    };
    let config = pool::config::PayoutsConfig {
        min_output: 20_000_000,
        max_outputs: 4,
        ..Default::default()
    };
    let pool_script = parse(addresses[0], Network::Regtest).unwrap().script_pubkey;
    let payouts = Payouts::new(&config, pool_script.clone(), Network::Regtest);
    let reward = protocol::Amount::from_sat(template.checked.coinbase_value);
    for (end, size) in [
        (start + 5 * MINUTE, 900.0),
        (start + 11 * MINUTE + 123_456, 4000.0),
        (start + 40 * MINUTE, 1e9),
    ] {
        let basis = read_basis(&store, size, end).await.unwrap();
        let (outputs, payout) = payouts.paying(&template, Some(&basis), &[]).unwrap();
        // By definition: the naive window, the split, the plan.
        let mut weights: Vec<pplns::Weight> = naive_window(&records, end, size)
            .into_iter()
            .map(|(address, difficulty)| pplns::Weight {
                address,
                difficulty,
            })
            .collect();
        pplns::sort_weights(&mut weights);
        assert_eq!(weights.len(), basis.weights.len());
        for (w, b) in weights.iter().zip(&basis.weights) {
            assert_eq!(w.address, b.address);
            assert!((w.difficulty - b.difficulty).abs() <= 1e-9 * w.difficulty.max(1.0));
        }
        let split = pplns::split(
            reward,
            pplns::fee_ppm(config.fee_percent),
            size,
            &weights,
            config.unfilled,
        );
        let carried = vec![(addresses[3].to_string(), protocol::Amount::from_sat(700))];
        let plan = coinbase_plan::plan(
            &split,
            &carried,
            config.max_outputs,
            protocol::Amount::from_sat(config.min_output),
        );
        let want = coinbase_plan::outputs(&plan, &pool_script, Network::Regtest).unwrap();
        assert_eq!(outputs, want, "window ending {end}, size {size}");
        assert_eq!(
            outputs.iter().map(|o| o.value).sum::<u64>(),
            reward.to_sat()
        );
        assert_eq!(payout.pool, plan.pool.to_sat());
    }
}
