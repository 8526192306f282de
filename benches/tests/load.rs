//! The load generator against our pool on a regtest node (SOLO mode, no database), over
//! Stratum v1 and Stratum V2 (extended and standard channels): every simulated miner connects, every share it submits is
//! valid and accepted, latencies are measured, idle mode holds its connections, and a new
//! block reaches every connection.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::Duration;

use benches::load::{self, LoadOptions, LoadProtocol, Mode};
use pool::config::{Mode as PoolMode, NodeConfig, PoolConfig, V2Config};
use testkit::RegtestPair;
use tokio_util::sync::CancellationToken;

/// SRI's example authority pair.
const AUTHORITY_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";
const AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_miners_submit_valid_shares_and_hold_connections() {
    for protocol in ["v1", "v2", "v2-standard"] {
        simulated_miners(protocol).await;
    }
}

/// Submit, idle and notify modes over `protocol` (v1, v2 with extended channels, or v2
/// with standard channels) against a fresh pool.
async fn simulated_miners(protocol: &str) {
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
    // V2 has no d= password: the load's difficulty is vardiff's, pinned.
    cfg.vardiff.start = 1.1641532182693481e-10;
    cfg.vardiff.max = 1.1641532182693481e-10;
    cfg.jobs.refresh_secs = 600;
    cfg.stratum.v2 = Some(V2Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        authority_secret_key: Some(AUTHORITY_SECRET.into()),
        authority_secret_key_file: None,
        authority_public_key: None,
        cert_validity_secs: 3600,
    });
    let cancel = CancellationToken::new();
    let pool = pool::run::start(cfg, cancel.clone()).await.unwrap();
    let address = node.new_address().unwrap();
    let (protocol, addr) = match protocol {
        "v2" | "v2-standard" => (
            LoadProtocol::V2 {
                authority: protocol::sv2::keys::parse_public(AUTHORITY_PUBLIC).unwrap(),
                standard: protocol == "v2-standard",
            },
            pool.v2_addr.unwrap(),
        ),
        _ => (LoadProtocol::V1, pool.stratum_addr),
    };
    let opts = LoadOptions {
        pool_pid: None,
        protocol,
        pool: addr,
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
        // The pool runs in this process: its CPU over the fan-out is ours.
        pool_pid: Some(std::process::id()),
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
    assert!(notify.fanout_pool_cpu_ms.is_some(), "{notify:?}");
    cancel.cancel();
    pool.wait().await;
}
