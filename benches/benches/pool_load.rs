//! The pool under load, as docs/benchmarks.md records it: a real regtest node pair and a
//! real PostgreSQL (both from testkit), the release `pool` binary in PPLNS mode as its own
//! process, and the release `stratum-load` binary driving it. Every `stratum-load` command
//! is printed before its output, so what the document shows is what ran.
//!
//! ```text
//! cargo build --release -p pool -p benches
//! cargo bench -p benches --bench pool_load
//! ```
//!
//! Steps: `BENCH_MINERS` (default 10,000) idle connections with the pool's memory; the time
//! from a new block to each connection's clean notify, for 100 connections and then for
//! `BENCH_MINERS`; submit mode at rising offered rates until the pool falls behind (the
//! best rate of answered, persisted shares is the capacity); half of that capacity for a
//! longer run, whose p99 is the latency figure.
//! `BENCH_RATES` (comma separated) replaces the rates tried. Each step runs once per
//! protocol in `BENCH_PROTOCOLS` (default `v1,v2`: Stratum v1 on the pool's v1 port, then
//! Stratum V2 with extended channels on its V2 port, side by side against the same
//! process; `v2-standard` is V2 with standard channels).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{RegtestPair, TempPostgres};

/// 2^-33: below regtest's network difficulty (2^-31), so shares are cheap and most are not
/// blocks (the generator skips those that would be).
const DIFFICULTY: &str = "1.1641532182693481e-10";

/// SRI's example authority pair (what its translator's examples trust).
const AUTHORITY_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";
const AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

fn main() {
    let root = testkit::workspace_root();
    let release = root.join("target/release");
    let pool_bin = release.join("pool");
    let load_bin = release.join("stratum-load");
    for bin in [&pool_bin, &load_bin] {
        if !bin.exists() {
            eprintln!(
                "{} is missing: run `cargo build --release -p pool -p benches` first",
                bin.display()
            );
            std::process::exit(2);
        }
    }
    let miners: usize = env_or("BENCH_MINERS", 10_000);
    let rates: Vec<u32> = std::env::var("BENCH_RATES")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![2000, 4000, 8000, 16000, 32000, 64000, 128000]);
    let protocols: Vec<String> = std::env::var("BENCH_PROTOCOLS")
        .unwrap_or_else(|_| "v1,v2".into())
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();

    println!("machine: {}", machine());
    let pg = TempPostgres::start().expect("a throwaway PostgreSQL (run scripts/setup)");
    let pair = RegtestPair::start_with_zmq().expect("the regtest pair (run scripts/setup)");
    let node = pair.node(0);
    let address = node.new_address().expect("an address");
    let dir = tempfile::tempdir().expect("a temp dir");
    let stratum = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let v2 = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let config = write_config(dir.path(), &pg.url(), node, &address, [stratum, api, v2]);
    let mut pool = Pool::start(&pool_bin, &config, dir.path(), stratum);
    println!("pool: {} (pid {})", pool_bin.display(), pool.child.id());

    let common = |protocol: &str, mode: &str, miners: usize, seconds: u32| -> Vec<String> {
        let mut args: Vec<String> = if protocol.starts_with("v2") {
            let channel = if protocol == "v2-standard" {
                "standard"
            } else {
                "extended"
            };
            vec![
                "--protocol".into(),
                "v2".into(),
                "--sv2-channel".into(),
                channel.into(),
                "--authority-key".into(),
                AUTHORITY_PUBLIC.into(),
                "--pool".into(),
                v2.to_string(),
            ]
        } else {
            vec!["--pool".into(), stratum.to_string()]
        };
        args.extend::<[String; 12]>([
            "--user".into(),
            address.clone(),
            "--miners".into(),
            miners.to_string(),
            "--mode".into(),
            mode.into(),
            "--seconds".into(),
            seconds.to_string(),
            "--difficulty".into(),
            DIFFICULTY.into(),
            "--sources".into(),
            "64".into(),
        ]);
        args
    };

    // Memory first, while the pool is fresh: after an overload the allocator keeps what
    // the backlog took, and per-connection figures would drown in it.
    let pid = pool.child.id().to_string();
    for protocol in &protocols {
        let mut args = common(protocol, "idle", miners, 20);
        args.extend(["--pool-pid".into(), pid.clone()]);
        run_load(&load_bin, &args);
    }

    let (user, password) = node.rpc_credentials();
    let node_url = node
        .rpc_url()
        .replacen("http://", &format!("http://{user}:{password}@"), 1);
    // A few connections first: how fast the pool learns of the block (ZMQ); then all.
    for n in [100, miners] {
        for protocol in &protocols {
            let mut args = common(protocol, "notify", n, 60);
            args.extend(["--node".into(), node_url.clone()]);
            run_load(&load_bin, &args);
        }
    }

    // Capacity: the best accepted rate over the offered rates.
    for protocol in &protocols {
        let mut capacity = 0.0f64;
        for &rate in &rates {
            let mut args = common(protocol, "submit", 1000, 15);
            args.extend(["--rate".into(), rate.to_string()]);
            let out = run_load(&load_bin, &args);
            let accepted = field(&out, "accepted/s").unwrap_or(0.0);
            capacity = capacity.max(accepted);
            if accepted < f64::from(rate) * 0.9 {
                break; // saturated: higher offers only queue
            }
        }
        println!("capacity ({protocol}): {capacity:.0} accepted and persisted shares/s");
        let half = (capacity / 2.0).round().max(1.0);
        let mut args = common(protocol, "submit", 1000, 30);
        args.extend(["--rate".into(), format!("{half}")]);
        run_load(&load_bin, &args);
    }

    pool.stop();
    let rows = count_shares(&pg);
    println!("shares in PostgreSQL after the runs: {rows}");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU model and count, from /proc/cpuinfo.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    format!("{cores} x {model}")
}

fn write_config(
    dir: &Path,
    database: &str,
    node: &testkit::Node,
    address: &str,
    [stratum, api, v2]: [SocketAddr; 3],
) -> PathBuf {
    let (user, password) = node.rpc_credentials();
    let text = format!(
        r#"mode = "pplns"
network = "regtest"
pool_address = "{address}"
data_dir = "{data}"

[[nodes]]
url = "{url}"
user = "{user}"
password = "{password}"
zmq_hashblock = "{zmq}"

[jobs]
refresh_secs = 600

[stratum]
bind = "{stratum}"

[stratum.v2]
bind = "{v2}"
authority_secret_key = "{AUTHORITY_SECRET}"

# Pinned at the load's difficulty: V2 has no d= password (v1 asks for the same with it).
[vardiff]
min = 1e-12
start = {DIFFICULTY}
max = {DIFFICULTY}

[limits]
connections_per_ip = 0
max_connections = 0

[database]
url = "{database}"

[payouts]
payments = false

[api]
bind = "{api}"
"#,
        data = dir.join("data").display(),
        url = node.rpc_url(),
        zmq = node.zmq_hashblock().expect("the node publishes hashblock"),
    );
    let path = dir.join("pool.toml");
    std::fs::write(&path, text).expect("writing the pool's config");
    path
}

/// The pool process; killed if the bench panics.
struct Pool {
    child: Child,
}

impl Pool {
    fn start(bin: &Path, config: &Path, dir: &Path, stratum: SocketAddr) -> Pool {
        let log = std::fs::File::create(dir.join("pool.log")).expect("the pool's log");
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the pool");
        let mut pool = Pool { child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(stratum).is_err() {
            if Instant::now() > deadline || pool.child.try_wait().ok().flatten().is_some() {
                let log = std::fs::read_to_string(dir.join("pool.log")).unwrap_or_default();
                panic!("the pool did not start listening:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Let the first template arrive.
        std::thread::sleep(Duration::from_secs(1));
        pool
    }

    /// SIGTERM, so that the pool flushes its shares, then wait.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `stratum-load` with `args`, echoing the command and its output; returns the output.
fn run_load(bin: &Path, args: &[String]) -> String {
    println!("\n$ stratum-load {}", args.join(" "));
    let _ = std::io::stdout().flush();
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("running stratum-load");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stratum-load failed");
    text
}

/// The number just before `label` in the output, e.g. "= 1234 accepted/s".
fn field(out: &str, label: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.contains(label))?;
    let before = line.split(label).next()?;
    before.split_whitespace().last()?.parse().ok()
}

fn count_shares(pg: &TempPostgres) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let db = sqlx::PgPool::connect(&pg.url()).await.expect("PostgreSQL");
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM shares")
            .fetch_one(&db)
            .await
            .unwrap_or(-1)
    })
}
