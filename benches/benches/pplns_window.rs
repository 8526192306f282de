//! How long the PPLNS window takes for a window of ten million shares, against a real
//! PostgreSQL started by testkit. For comparison it also times a plain aggregate over the
//! same shares (what a window computed from raw rows would at least cost).
//!
//! `BENCH_SHARES` sets the number of shares (default 10,000,000); the shares are spread
//! over 1,000 addresses at 1,000 shares per second, so the window spans about 2.8 hours.
//!
//! Coinbase payouts (`payouts.method = "coinbase"`) read that window for every job, plus
//! the carried balances over every coinbase-payout block: this times that read over 10,000
//! blocks of 100 payout rows each (a million rows), and the split and plan of a job's
//! coinbase from the 1,000-address window.

use std::time::{Duration, Instant};

use pool::store::Store;
use testkit::TempPostgres;

const ADDRESSES: i64 = 1000;

fn main() {
    let shares: i64 = std::env::var("BENCH_SHARES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let pg = TempPostgres::start().expect("a throwaway PostgreSQL (run scripts/setup)");
    runtime.block_on(run(&pg, shares));
}

async fn run(pg: &TempPostgres, shares: i64) {
    let store = Store::open(&pg.url(), 4, Duration::from_secs(30))
        .await
        .expect("the store");
    let db = store.db();
    // One share per millisecond, ending now.
    let end: i64 = pool::clock::now_us();
    let start = end - shares * 1000;
    let fill = Instant::now();
    for day in (start / 86_400_000_000)..=(end / 86_400_000_000) {
        sqlx::query("SELECT ensure_share_partition((micros_to_ts($1) AT TIME ZONE 'UTC')::date)")
            .bind(day * 86_400_000_000)
            .execute(db)
            .await
            .expect("partition");
    }
    sqlx::query(
        "INSERT INTO shares (time, uid, address, worker, difficulty, share_difficulty,
                             network_difficulty, height, instance)
         SELECT micros_to_ts($1 + i * 1000), i, 'addr' || (i % $3), 'w' || (i % 3),
                1 + (i % 7), 2 + (i % 7), 1e6, 100, 0
         FROM generate_series(1, $2) AS i",
    )
    .bind(start)
    .bind(shares)
    .bind(ADDRESSES)
    .execute(db)
    .await
    .expect("shares");
    sqlx::query(
        "INSERT INTO share_minutes (minute, address, worker, difficulty, shares)
         SELECT date_trunc('minute', time), address, worker, sum(difficulty), count(*)
         FROM shares GROUP BY 1, 2, 3",
    )
    .execute(db)
    .await
    .expect("minute totals");
    sqlx::query("VACUUM ANALYZE")
        .execute(db)
        .await
        .expect("vacuum");
    let total: f64 = sqlx::query_scalar("SELECT sum(difficulty) FROM shares")
        .fetch_one(db)
        .await
        .expect("total");
    println!(
        "{shares} shares over {ADDRESSES} addresses loaded in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    // A window that holds all but the oldest few shares.
    let size = total - 10.0;
    let mut window_times = Vec::new();
    let mut filled = 0.0;
    for _ in 0..5 {
        let t = Instant::now();
        let w = store.pplns_window(end, size).await.expect("window");
        window_times.push(t.elapsed().as_secs_f64());
        filled = w.filled;
        assert_eq!(w.weights.len() as i64, ADDRESSES);
    }
    let mut raw_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows: Vec<(String, f64)> =
            sqlx::query_as("SELECT address, sum(difficulty) FROM shares GROUP BY address")
                .fetch_all(db)
                .await
                .expect("raw aggregate");
        raw_times.push(t.elapsed().as_secs_f64());
        assert_eq!(rows.len() as i64, ADDRESSES);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };

    // Coinbase payouts: 10,000 blocks of 100 rows, all paid but every tenth row of the
    // last ten blocks (carried, as the output cap would leave them).
    sqlx::query(
        "INSERT INTO blocks (hash, height, found_at, finder, reward, network_difficulty,
                             coinbase_pool)
         SELECT 'b' || i, i, micros_to_ts($1 - (10000 - i)::bigint * 1000000), 'addr0', 5000000000,
                1e6, 50000000
         FROM generate_series(1, 10000) AS i",
    )
    .bind(start)
    .execute(db)
    .await
    .expect("blocks");
    sqlx::query(
        "INSERT INTO coinbase_payouts (block_hash, address, difficulty, credit, paid,
                                       output_index)
         SELECT 'b' || i, 'addr' || ((i * 100 + j) % $1), 1.0, 49000000,
                CASE WHEN j % 10 = 0 AND i > 9990 THEN 0 ELSE 49000000 END, j
         FROM generate_series(1, 10000) AS i, generate_series(0, 99) AS j",
    )
    .bind(ADDRESSES)
    .execute(db)
    .await
    .expect("payout rows");
    sqlx::query("VACUUM ANALYZE")
        .execute(db)
        .await
        .expect("vacuum");
    let mut carried_times = Vec::new();
    let mut carried = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        carried = store.carried_with_blocks(64).await.expect("carried").0;
        carried_times.push(t.elapsed().as_secs_f64());
    }
    let window = store.pplns_window(end, size).await.expect("window");
    let mut plan_times = Vec::new();
    let mut outputs = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let split = pool::accounting::pplns::split(
            protocol::Amount::from_sat(312_500_000),
            pool::accounting::pplns::fee_ppm(1.0),
            size,
            &window.weights,
            pool::config::Unfilled::ShareAll,
        );
        let plan = pool::accounting::coinbase_plan::plan(
            &split,
            &carried,
            100,
            protocol::Amount::from_sat(10_000),
        );
        plan_times.push(t.elapsed().as_secs_f64());
        outputs = plan.outputs.len();
    }
    println!(
        "carried balances over 10000 coinbase blocks (1000000 rows, {} carried): median {:.3} s of 5",
        carried.len(),
        median(&mut carried_times)
    );
    println!(
        "split and plan of a {ADDRESSES}-address window into {outputs} outputs: median {:.6} s of 20",
        median(&mut plan_times)
    );
    println!(
        "pplns_window over {shares} shares (filled {:.0} of {size:.0}): median {:.3} s of 5",
        filled,
        median(&mut window_times)
    );
    println!(
        "plain GROUP BY over the raw shares, for comparison: median {:.3} s of 3",
        median(&mut raw_times)
    );
}
