//! How long the PPLNS window takes for a window of ten million shares, against a real
//! PostgreSQL started by testkit. For comparison it also times a plain aggregate over the
//! same shares (what a window computed from raw rows would at least cost).
//!
//! `BENCH_SHARES` sets the number of shares (default 10,000,000); the shares are spread
//! over 1,000 addresses at 1,000 shares per second, so the window spans about 2.8 hours.

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
