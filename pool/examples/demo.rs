//! The demo behind `scripts/demo`: the whole stack on one machine, with real parts.
//!
//! A regtest node pair and a private PostgreSQL (started by testkit in temp dirs), the
//! pool in PPLNS mode with its dashboard, and two of our CPU miners paying different
//! addresses. It runs until blocks are found, have matured (100 confirmations, as on
//! mainnet) and a payment has gone out; prints the blocks, each miner's PPLNS credits and
//! the payment; then stops everything and removes what it started. Ctrl-C does the same at
//! any point. `--keep` keeps it running (dashboard included) until Ctrl-C.
//!
//! Addresses: `DEMO_STRATUM` (default 127.0.0.1:3333) and `DEMO_API` (127.0.0.1:8080).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use miner::client::{ClientOptions, Embedded};
use miner::hash::Backend;
use pool::config::{Mode, NodeConfig, PoolConfig};
use sqlx::PgPool;
use testkit::{RegtestPair, TempPostgres};
use tokio_util::sync::CancellationToken;

/// Share difficulties below regtest's network difficulty (2^-31), so most shares are not
/// blocks: Alice's shares weigh twice Bob's.
const ALICE_DIFFICULTY: &str = "2.3283064365386963e-10";
const BOB_DIFFICULTY: &str = "1.1641532182693481e-10";

/// How long the demo may take before it gives up.
const DEADLINE: Duration = Duration::from_secs(15 * 60);

fn say(text: &str) {
    println!("demo: {text}");
}

#[allow(dead_code)] // used by `main` only
fn address_from_env(name: &str, default: &str) -> Result<SocketAddr, String> {
    let text = std::env::var(name).unwrap_or_else(|_| default.into());
    text.parse()
        .map_err(|e| format!("{name}={text:?} is not IP:PORT: {e}"))
}

// `pool/tests/demo.rs` runs this file's `run` as a test, so the README's main command
// keeps working; `main` is unused there.
#[allow(dead_code)]
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let keep = std::env::args().any(|a| a == "--keep");
    let cancel = CancellationToken::new();
    let addresses = address_from_env("DEMO_STRATUM", "127.0.0.1:3333")
        .and_then(|s| Ok((s, address_from_env("DEMO_API", "127.0.0.1:8080")?)));
    let result = match addresses {
        Err(e) => Err(e),
        Ok((stratum, api)) => tokio::select! {
            r = run(stratum, api, keep, cancel.clone()) => r,
            _ = tokio::signal::ctrl_c() => Err("stopped by Ctrl-C".into()),
        },
    };
    // Whatever happened, the pool stops here; the node pair and PostgreSQL stop and their
    // temp dirs go when `run`'s values drop (they already have, on every path).
    cancel.cancel();
    match result {
        Ok(()) => {
            say("done: everything it started is stopped and removed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo: Stratum on `stratum`, the dashboard on `api`; with `keep`, runs until
/// cancelled after the summary.
pub async fn run(
    stratum: SocketAddr,
    api: SocketAddr,
    keep: bool,
    cancel: CancellationToken,
) -> Result<(), String> {
    say("starting a regtest node pair (bitcoind from .cache/, in a temp dir)");
    let pair = blocking(RegtestPair::start)
        .await
        .map_err(|e| format!("regtest nodes: {e}"))?;
    let wallet = pair.node(0);
    say("mining 101 blocks to the pool's wallet, so it has mature coins to pay with");
    wallet
        .generate(101)
        .map_err(|e| format!("funding the wallet: {e}"))?;
    say("starting a private PostgreSQL (initdb in a temp dir)");
    let pg = blocking(TempPostgres::start)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    let data = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let pool_address = wallet.new_address().map_err(|e| e.to_string())?;
    let (user, password) = wallet.rpc_credentials();
    let mut cfg = PoolConfig {
        mode: Mode::Pplns,
        network: "regtest".into(),
        pool_address: Some(pool_address.clone()),
        data_dir: data.path().to_path_buf(),
        nodes: vec![NodeConfig::with_password(wallet.rpc_url(), user, password)],
        ..PoolConfig::default()
    };
    cfg.stratum.bind = stratum;
    cfg.api.bind = api;
    cfg.api.pool_id = "demo".into();
    cfg.database.url = Some(pg.url());
    cfg.database.stats_interval_secs = 5;
    cfg.vardiff.min = 1e-12;
    cfg.jobs.refresh_secs = 5;
    cfg.payouts.check_secs = 2;
    cfg.payouts.freeze_delay_secs = 1;
    cfg.payouts.threshold = 100_000;
    cfg.payouts.payment_interval_secs = 5;
    let running = pool::run::start(cfg, cancel.clone())
        .await
        .map_err(|e| format!("the pool: {e} (set DEMO_STRATUM / DEMO_API to free addresses)"))?;
    let db = running
        .store
        .as_ref()
        .ok_or("the pool has no store")?
        .db()
        .clone();
    say(&format!(
        "pool (PPLNS) on stratum+tcp://{}, paying out of {pool_address}",
        running.stratum_addr
    ));
    if let Some(a) = running.api_addr {
        say(&format!(
            "dashboard: http://{a}/   (API: http://{a}/api/pools, metrics: http://{a}/metrics)"
        ));
    }
    let alice = pair.node(1).new_address().map_err(|e| e.to_string())?;
    let bob = pair.node(1).new_address().map_err(|e| e.to_string())?;
    let port = running.stratum_addr.port();
    let miners = [
        start_miner(port, &format!("{alice}.rig1"), ALICE_DIFFICULTY)?,
        start_miner(port, &format!("{bob}.rig2"), BOB_DIFFICULTY)?,
    ];
    say(&format!(
        "two CPU miners (one thread each): alice {alice}, bob {bob}"
    ));
    say("mining until blocks have 100 confirmations and a payment goes out…");

    let started = Instant::now();
    let mut last = String::new();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let p = progress(&db)
            .await
            .map_err(|e| format!("reading the books: {e}"))?;
        let line = format!(
            "height {} · blocks found {} (pending {}, confirmed {}) · payments {}",
            running.stats.snapshot().height,
            p.found,
            p.pending,
            p.confirmed,
            p.payments
        );
        if line != last {
            say(&line);
            last = line;
        }
        if p.payments > 0 {
            break;
        }
        if started.elapsed() > DEADLINE {
            return Err(format!(
                "no payment after {} minutes",
                DEADLINE.as_secs() / 60
            ));
        }
    }
    for m in &miners {
        m.cancel.cancel();
    }
    summary(&db, &alice, &bob)
        .await
        .map_err(|e| e.to_string())?;
    if keep {
        say("--keep: the pool, nodes and dashboard stay up until Ctrl-C");
        std::future::pending::<()>().await;
    }
    cancel.cancel();
    drop(running);
    Ok(())
}

/// Runs a blocking start-up call off the async workers.
async fn blocking<T: Send + 'static, E: Send + 'static>(f: fn() -> Result<T, E>) -> Result<T, E> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

struct Progress {
    found: i64,
    pending: i64,
    confirmed: i64,
    payments: i64,
}

async fn progress(db: &PgPool) -> Result<Progress, sqlx::Error> {
    let (found, pending, confirmed, payments): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM blocks),
                (SELECT count(*) FROM blocks WHERE status = 'pending'),
                (SELECT count(*) FROM blocks WHERE status = 'confirmed'),
                (SELECT count(*) FROM payouts WHERE status = 'sent')",
    )
    .fetch_one(db)
    .await?;
    Ok(Progress {
        found,
        pending,
        confirmed,
        payments,
    })
}

async fn summary(db: &PgPool, alice: &str, bob: &str) -> Result<(), sqlx::Error> {
    let blocks: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT height, hash, finder, status::text FROM blocks ORDER BY height LIMIT 5",
    )
    .fetch_all(db)
    .await?;
    say("first blocks found:");
    for (height, hash, finder, status) in blocks {
        println!("  {height:>4}  {status:<9}  {hash}  by {finder}");
    }
    say("PPLNS credits (confirmed blocks), balances and payments:");
    for (name, address) in [("alice", alice), ("bob", bob)] {
        let (credited, balance, paid): (i64, i64, i64) = sqlx::query_as(
            "SELECT coalesce((SELECT sum(amount) FROM credits
                              WHERE address = $1 AND credited_at IS NOT NULL), 0)::bigint,
                    coalesce((SELECT amount FROM balances WHERE address = $1), 0),
                    coalesce((SELECT paid FROM balances WHERE address = $1), 0)",
        )
        .bind(address)
        .fetch_one(db)
        .await?;
        println!(
            "  {name:<5} {address}: credited {} BTC, balance {} BTC, paid {} BTC",
            btc(credited),
            btc(balance),
            btc(paid)
        );
    }
    let payment: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT o.txid, p.address, p.amount FROM payments p JOIN payouts o ON o.id = p.payout_id
         WHERE o.status = 'sent' ORDER BY o.id, p.address LIMIT 1",
    )
    .fetch_optional(db)
    .await?;
    if let Some((txid, address, amount)) = payment {
        say(&format!(
            "a payment: {} BTC to {address} in transaction {txid}",
            btc(amount)
        ));
    }
    Ok(())
}

fn btc(sats: i64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

/// One of our CPU miners (one thread, the fastest backend) pointed at the pool.
fn start_miner(port: u16, user: &str, difficulty: &str) -> Result<Embedded, String> {
    let opts = ClientOptions::local(port, user, &format!("x,d={difficulty}"), "demo-miner");
    // The list is fastest first.
    let backend = Backend::supported()
        .first()
        .copied()
        .unwrap_or(Backend::Scalar);
    Embedded::start(opts, backend, 1).map_err(|e| format!("miner: {e}"))
}
