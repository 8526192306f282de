//! Shared set-up for the pool's end-to-end tests: a pool on a regtest pair, our CPU miner
//! as its client, and a block decoder to check who a coinbase pays.

#![allow(dead_code)] // each test file uses a part

pub mod scripted;
pub mod v2;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miner::client::{ChannelKind, ClientOptions, Embedded, PoolUrl};
use miner::hash::Backend;
use miner::stats::Stats;
use pool::chain::blocks::BlockRecord;
use pool::config::{Mode, NodeConfig, PoolConfig};
use pool::run::RunningPool;
use serde_json::json;
use testkit::{Node, TempPostgres};
use tokio_util::sync::CancellationToken;

/// The RPC settings of a testkit node.
pub fn node_config(node: &Node) -> NodeConfig {
    let (user, password) = node.rpc_credentials();
    NodeConfig::with_password(node.rpc_url(), user, password)
}

/// A pool on loopback with test-friendly timings.
pub fn config(
    mode: Mode,
    nodes: Vec<NodeConfig>,
    pool_address: Option<String>,
    dir: &Path,
) -> PoolConfig {
    let mut c = PoolConfig {
        mode,
        network: "regtest".into(),
        pool_address,
        nodes,
        data_dir: dir.to_path_buf(),
        ..PoolConfig::default()
    };
    c.stratum.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    c.api.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    // Default limits: at regtest share difficulties nearly every hash is a share and our
    // miner submits them in bursts, which valid work may do.
    c.jobs.refresh_secs = 5;
    c.jobs.max_retry_secs = 1;
    c
}

/// A throwaway PostgreSQL for a pool (PPLNS mode needs one), with test timings for the
/// bookkeeping: checks every second, windows frozen after one second.
pub fn with_database(mut c: PoolConfig, pg: &TempPostgres) -> PoolConfig {
    c.database.url = Some(pg.url());
    c.database.retry_secs = 1;
    c.database.write_timeout_secs = 3;
    c.payouts.check_secs = 1;
    c.payouts.freeze_delay_secs = 1;
    c
}

/// A PPLNS pool on `nodes` with a database, at share difficulties below regtest's.
pub fn pplns_config(
    nodes: Vec<NodeConfig>,
    pool_address: String,
    dir: &Path,
    pg: &TempPostgres,
) -> PoolConfig {
    let mut c = with_database(config(Mode::Pplns, nodes, Some(pool_address), dir), pg);
    c.vardiff.min = 1e-12;
    c
}

/// What most PPLNS tests start from: a regtest pair, a throwaway PostgreSQL, a temp dir,
/// and the pool's address in node 0's wallet.
pub struct Setup {
    pub pair: testkit::RegtestPair,
    pub pg: TempPostgres,
    pub dir: tempfile::TempDir,
    pub pool_address: String,
}

impl Setup {
    pub fn start() -> Setup {
        let pair = testkit::RegtestPair::start().unwrap();
        let pg = TempPostgres::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pool_address = pair.node(0).new_address().unwrap();
        Setup {
            pair,
            pg,
            dir,
            pool_address,
        }
    }

    /// A PPLNS pool on node 0 with the database.
    pub fn config(&self) -> PoolConfig {
        pplns_config(
            vec![node_config(self.pair.node(0))],
            self.pool_address.clone(),
            self.dir.path(),
            &self.pg,
        )
    }
}

/// A running pool and the token that stops it.
pub struct TestPool {
    pub running: RunningPool,
    pub cancel: CancellationToken,
}

impl TestPool {
    pub async fn start(config: PoolConfig) -> TestPool {
        let cancel = CancellationToken::new();
        let running = pool::run::start(config, cancel.clone()).await.unwrap();
        TestPool { running, cancel }
    }

    pub fn port(&self) -> u16 {
        self.running.stratum_addr.port()
    }

    /// Waits for the next `n` accepted blocks (refused ones are returned too, and fail).
    pub async fn accepted_blocks(&mut self, n: usize, timeout: Duration) -> Vec<BlockRecord> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let record = tokio::time::timeout(left, self.running.blocks.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} blocks in {timeout:?}", out.len()))
                .expect("the pool stopped");
            assert!(record.accepted, "block refused: {record:?}");
            out.push(record);
        }
        out
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.running.wait())
            .await
            .expect("the pool stops within 20 s");
    }
}

/// Our CPU miner (one thread) pointed at the pool.
pub struct TestMiner {
    pub cancel: CancellationToken,
    pub stats: Arc<Stats>,
    _engine: Embedded,
}

pub fn start_miner(port: u16, user: &str) -> TestMiner {
    start_miner_with(port, user, "x")
}

/// A miner with a password (`d=N` asks for a fixed difficulty).
pub fn start_miner_with(port: u16, user: &str, password: &str) -> TestMiner {
    let opts = ClientOptions {
        max_bad_lines: 3,
        ..ClientOptions::local(port, user, password, "test-miner")
    };
    let m = Embedded::start(opts, Backend::supported()[0], 1).unwrap();
    TestMiner {
        cancel: m.cancel.clone(),
        stats: m.stats.clone(),
        _engine: m,
    }
}

/// Our CPU miner (one thread) with these pools, in order (any mix of v1 and V2).
pub fn start_miner_on(pools: Vec<PoolUrl>, user: &str, channel: ChannelKind) -> TestMiner {
    let opts = ClientOptions {
        pools,
        max_bad_lines: 3,
        sv2_channel: channel,
        failback: Duration::from_secs(2),
        ..ClientOptions::local(0, user, "x", "test-miner")
    };
    let m = Embedded::start(opts, Backend::supported()[0], 1).unwrap();
    TestMiner {
        cancel: m.cancel.clone(),
        stats: m.stats.clone(),
        _engine: m,
    }
}

fn compact_size(bytes: &[u8], at: &mut usize) -> usize {
    let first = bytes[*at];
    *at += 1;
    let n = match first {
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
        small => return small as usize,
    };
    let mut v = 0usize;
    for i in 0..n {
        v |= (bytes[*at + i] as usize) << (8 * i);
    }
    *at += n;
    v
}

/// The coinbase outputs (value, script) of a block the node stores.
pub fn coinbase_outputs(node: &Node, hash: &str) -> Vec<(u64, Vec<u8>)> {
    let hex_block = node.call("getblock", json!([hash, false])).unwrap();
    let bytes = hex::decode(hex_block.as_str().unwrap()).unwrap();
    let mut at = 80;
    compact_size(&bytes, &mut at); // transaction count
    at += 4; // version
    assert_eq!(compact_size(&bytes, &mut at), 1, "one input");
    at += 36; // null prevout
    let sig = compact_size(&bytes, &mut at);
    at += sig + 4; // scriptSig, sequence
    let outputs = compact_size(&bytes, &mut at);
    (0..outputs)
        .map(|_| {
            let value = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            at += 8;
            let len = compact_size(&bytes, &mut at);
            let script = bytes[at..at + len].to_vec();
            at += len;
            (value, script)
        })
        .collect()
}

/// The scriptPubKey of a regtest address.
pub fn script_of(address: &str) -> Vec<u8> {
    protocol::address::parse(address, protocol::address::Network::Regtest)
        .unwrap()
        .script_pubkey
}

/// Polls `f` every 200 ms until it is true.
pub async fn until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET http://addr/path`: the status and the body (4xx and 5xx included).
/// Subscribes on a fresh connection to the pool at `port`; the extranonce1 (hex) it gets.
pub async fn extranonce1(port: u16) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await
        .unwrap();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.unwrap();
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    reply["result"][1].as_str().unwrap().to_string()
}

/// An HTTP client for the API that returns error statuses as responses.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A SOLO pool's config on `node`, its data in `dir`.
pub fn solo_config(node: &Node, dir: &Path) -> PoolConfig {
    config(Mode::Solo, vec![node_config(node)], None, dir)
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    tokio::task::spawn_blocking(move || {
        let mut response = http_agent().get(&url).call().expect("the API answers");
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().expect("a text body");
        (status, body)
    })
    .await
    .unwrap()
}

/// A request with an optional bearer `token` and JSON `body`: (status, JSON body, or null
/// when the body is not JSON).
pub async fn http_call(
    api: SocketAddr,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("http://{api}{path}");
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let body = body.map_or(String::new(), |b| b.to_string());
        let mut response = http_agent().run(request.body(body).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    })
    .await
    .unwrap()
}

/// The value of the `/metrics` sample named `series` exactly (with its labels, if any:
/// `pool_history_reads_total{database="replica"}`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// [`http_get`] of a JSON body.
pub async fn http_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http_get(addr, path).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

/// Writes `dir/pool.toml` for the `pool` binary: PPLNS on regtest paying `pool_address`,
/// with `node` as its node and its data in `dir/data`, then the test's own `sections`.
pub fn write_pool_toml(dir: &Path, node: &Node, pool_address: &str, sections: &str) -> PathBuf {
    let (user, password) = node.rpc_credentials();
    let text = format!(
        r#"mode = "pplns"
network = "regtest"
pool_address = "{pool_address}"
data_dir = "{data}"

[[nodes]]
url = "{url}"
user = "{user}"
password = "{password}"

{sections}"#,
        data = dir.join("data").display(),
        url = node.rpc_url(),
    );
    let path = dir.join("pool.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Credits `amounts` to `payees` straight in the balances table (as confirmed blocks do).
pub async fn credit(db: &sqlx::PgPool, payees: &[String], amounts: [i64; 2]) {
    for (address, amount) in payees.iter().zip(amounts) {
        sqlx::query(
            "INSERT INTO balances (address, amount) VALUES ($1, $2)
             ON CONFLICT (address) DO UPDATE SET amount = balances.amount + $2",
        )
        .bind(address)
        .bind(amount)
        .execute(db)
        .await
        .unwrap();
    }
}

/// Every balance: (address, amount owed, paid), by address.
pub async fn balances(db: &sqlx::PgPool) -> Vec<(String, i64, i64)> {
    sqlx::query_as("SELECT address, amount, paid FROM balances ORDER BY address")
        .fetch_all(db)
        .await
        .unwrap()
}

/// Resident memory of process `pid`, KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
