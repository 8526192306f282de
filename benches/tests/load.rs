//! The load generator against our pool on a regtest node (SOLO mode, no database): every
//! simulated miner connects, every share it submits is valid and accepted, latencies are
//! measured, and idle mode holds its connections.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use benches::load::{self, LoadOptions, Mode};
use pool::config::{Mode as PoolMode, NodeConfig, PoolConfig};
use testkit::RegtestPair;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_miners_submit_valid_shares_and_hold_connections() {
    let pair = RegtestPair::start().unwrap();
    let node = pair.node(0);
    let dir = tempfile::tempdir().unwrap();
    let (user, password) = node.rpc_credentials();
    let mut cfg = PoolConfig {
        mode: PoolMode::Solo,
        network: "regtest".into(),
        data_dir: dir.path().to_path_buf(),
        nodes: vec![NodeConfig::with_password(node.rpc_url(), user, password)],
        ..PoolConfig::default()
    };
    cfg.stratum.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.api.enabled = false;
    cfg.vardiff.min = 1e-12;
    cfg.jobs.refresh_secs = 600;
    let cancel = CancellationToken::new();
    let pool = pool::run::start(cfg, cancel.clone()).await.unwrap();
    let address = node.new_address().unwrap();
    let opts = LoadOptions {
        pool: pool.stratum_addr,
        user: address,
        miners: 20,
        rate: 100.0,
        duration: Duration::from_secs(2),
        // Below regtest's network difficulty; shares that would be blocks are skipped.
        difficulty: 1.1641532182693481e-10,
        sources: 4,
        mode: Mode::Submit,
        node: None,
    };
    let report = load::run(opts.clone()).await;
    assert_eq!((report.connected, report.failed), (20, 0), "{report:?}");
    assert!(report.submitted >= 150, "{report:?}");
    assert_eq!(report.accepted, report.submitted, "{report:?}");
    assert!(report.rejected.is_empty(), "{report:?}");
    let [p50, p99, p999, max] = report.latency_us;
    assert!(
        0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{report:?}"
    );
    assert_eq!(pool.stats.snapshot().accepted, report.accepted);
    assert_eq!(
        pool.stats.snapshot().blocks_found,
        0,
        "no block was submitted"
    );

    let idle = load::run(LoadOptions {
        miners: 100,
        mode: Mode::Idle,
        duration: Duration::from_secs(1),
        ..opts.clone()
    })
    .await;
    assert_eq!((idle.connected, idle.failed), (100, 0), "{idle:?}");

    // A block mined on the node reaches every connection as a clean notify.
    let notify = load::run(LoadOptions {
        miners: 50,
        mode: Mode::Notify,
        duration: Duration::from_secs(30),
        node: Some(noderpc::Endpoint::new(
            node.rpc_url(),
            noderpc::Auth::UserPassword {
                user: user.into(),
                password: password.into(),
            },
        )),
        ..opts
    })
    .await;
    assert_eq!((notify.connected, notify.notified), (50, 50), "{notify:?}");
    let [p50, _, _, last] = notify.fanout_us;
    assert!(p50 <= last && last < 10_000_000, "{notify:?}");
    cancel.cancel();
    pool.wait().await;
}
