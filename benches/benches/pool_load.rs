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
//! `BENCH_RATES` (comma separated) replaces the rates tried; `BENCH_STEPS` picks steps of
//! `idle,notify,submit,overload,reuseport`; `BENCH_IDLE` the idle connection counts
//! (default 1000, `BENCH_MINERS` and 19000, each on a fresh process); `BENCH_OVERLOAD` the
//! overload's offered rate; `BENCH_REUSEPORT` the connections per process of the last
//! step; `BENCH_POOL_WRAPPER` a profiler to run the pool under. Each step runs once per
//! protocol in `BENCH_PROTOCOLS` (default `v1,v2`: Stratum v1 on the pool's v1 port, then
//! Stratum V2 with extended channels on its V2 port, side by side against the same
//! process; `v2-standard` is V2 with standard channels).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use benches::load::rss_kib;
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

    let steps: Vec<String> = std::env::var("BENCH_STEPS")
        .unwrap_or_else(|_| "idle,notify,submit,overload,reuseport".into())
        .split(',')
        .map(|p| p.trim().to_string())
        .collect();
    let step = |name: &str| steps.iter().any(|s| s == name);
    let idle_counts: Vec<usize> = std::env::var("BENCH_IDLE")
        .ok()
        .map(|s| s.split(',').filter_map(|r| r.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, miners, 19_000]);

    println!("machine: {}", machine());
    let pg = TempPostgres::start().expect("a throwaway PostgreSQL (run scripts/setup)");
    let pair = RegtestPair::start_with_zmq().expect("the regtest pair (run scripts/setup)");
    let node = pair.node(0);
    let address = node.new_address().expect("an address");
    let dir = tempfile::tempdir().expect("a temp dir");
    let stratum = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let v2 = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
    let config = write_config(
        dir.path(),
        "pool.toml",
        &pg.url(),
        node,
        &address,
        Instance::alone([stratum, api, v2]),
    );
    let start_pool = || {
        let pool = Pool::start(&pool_bin, &config, dir.path(), stratum);
        println!("pool: {} (pid {})", pool_bin.display(), pool.child.id());
        pool
    };

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
        args.extend(user_args(&address, mode, miners, seconds));
        args
    };

    // Memory first, each count on a fresh process: after an overload, or after more
    // connections came and went, the allocator keeps what they took, and per-connection
    // figures would drown in it.
    if step("idle") {
        for protocol in &protocols {
            for &n in &idle_counts {
                let mut pool = start_pool();
                let mut args = common(protocol, "idle", n, 20);
                args.extend(["--pool-pid".into(), pool.child.id().to_string()]);
                run_load(&load_bin, &args);
                pool.stop();
            }
        }
    }

    let mut pool = start_pool();
    if step("notify") {
        let (user, password) = node.rpc_credentials();
        let node_url = node
            .rpc_url()
            .replacen("http://", &format!("http://{user}:{password}@"), 1);
        // A few connections first: how fast the pool learns of the block (ZMQ); then all.
        for n in [100, miners] {
            for protocol in &protocols {
                let mut args = common(protocol, "notify", n, 60);
                args.extend(["--node".into(), node_url.clone()]);
                args.extend(["--pool-pid".into(), pool.child.id().to_string()]);
                run_load(&load_bin, &args);
            }
        }
    }

    // Capacity: the best accepted rate over the offered rates.
    if step("submit") {
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
    }

    // Overload: far more than the pool can take, then a minute of quiet. The pool's memory
    // during it must stay bounded, and after it go back to what an idle pool holds.
    if step("overload") {
        let rate: u32 = env_or("BENCH_OVERLOAD", 128_000);
        for protocol in &protocols {
            pool.stop();
            pool = start_pool();
            let pid = pool.child.id();
            let before = rss_kib(pid).unwrap_or(0);
            let mut args = common(protocol, "submit", 1000, 15);
            args.extend(["--rate".into(), rate.to_string()]);
            let peak = Peak::watch(pid);
            run_load(&load_bin, &args);
            let peak = peak.stop();
            let ended = Instant::now();
            let mut after = Vec::new();
            for _ in 0..12 {
                std::thread::sleep(Duration::from_secs(5));
                after.push(rss_kib(pid).unwrap_or(0));
            }
            let under = after
                .iter()
                .position(|&kib| kib < 100 * 1024)
                .map_or("never".to_string(), |i| format!("{} s", (i + 1) * 5));
            println!(
                "overload ({protocol}, {rate}/s offered): pool memory {} MiB before, peak {} MiB during, {} MiB at the end, {} MiB {} s after; under 100 MiB after {under}",
                before / 1024,
                peak / 1024,
                after.first().copied().unwrap_or(0) / 1024,
                after.last().copied().unwrap_or(0) / 1024,
                ended.elapsed().as_secs()
            );
        }
    }
    pool.stop();

    // Past one process's open-files limit: two pool processes on one port (SO_REUSEPORT),
    // each with its own extranonce1 prefix, one PostgreSQL; the kernel spreads connections.
    if step("reuseport") {
        let per: usize = env_or("BENCH_REUSEPORT", 15_000);
        let mut pools = Vec::new();
        for instance in [1u8, 2] {
            let api = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().expect("a port")));
            let file = format!("pool-{instance}.toml");
            let config = write_config(
                dir.path(),
                &file,
                &pg.url(),
                node,
                &address,
                Instance::shared(stratum, api, instance),
            );
            let pool = Pool::start(&pool_bin, &config, dir.path(), stratum);
            println!(
                "pool {instance}: {} (pid {}, instance_id {instance}, reuse_port)",
                pool_bin.display(),
                pool.child.id()
            );
            pools.push((pool, api));
        }
        let before: Vec<u64> = pools
            .iter()
            .map(|(p, _)| rss_kib(p.child.id()).unwrap_or(0))
            .collect();
        // Two generators (each under its own open-files limit), 15,000 connections each.
        let loads: Vec<_> = (0..2)
            .map(|_| {
                let mut args = vec!["--pool".to_string(), stratum.to_string()];
                args.extend(user_args(&address, "idle", per, 40));
                spawn_load(&load_bin, &args)
            })
            .collect();
        std::thread::sleep(Duration::from_secs(25));
        let mut total = 0;
        for (i, (pool, api)) in pools.iter().enumerate() {
            let held = rss_kib(pool.child.id()).unwrap_or(0);
            let connections =
                metric(*api, "pool_connections{protocol=\"v1\"}").unwrap_or(0.0) as u64;
            total += connections;
            println!(
                "reuseport: pool {} holds {connections} connections, memory {} KiB before, {held} KiB held = {:.1} KiB per connection",
                i + 1,
                before[i],
                held.saturating_sub(before[i]) as f64 / connections.max(1) as f64
            );
        }
        println!("reuseport: {total} connections on one port across two processes");
        for load in loads {
            finish_load(load);
        }
        // Shares through both processes into the one database (counted below).
        let mut args = vec!["--pool".to_string(), stratum.to_string()];
        args.extend(user_args(&address, "submit", 1000, 15));
        args.extend(["--rate".into(), "16000".into()]);
        run_load(&load_bin, &args);
        for (mut pool, _) in pools {
            pool.stop();
        }
    }

    let rows = count_shares(&pg);
    println!("shares in PostgreSQL after the runs: {rows}");
}

/// The arguments every run shares after the pool's address.
fn user_args(address: &str, mode: &str, miners: usize, seconds: u32) -> [String; 12] {
    [
        "--user".into(),
        address.to_string(),
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
    ]
}

/// The highest resident memory of a process while it is watched (sampled every 100 ms).
struct Peak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Peak {
    fn watch(pid: u32) -> Peak {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        Peak { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// One sample from the pool's `/metrics`: the value on the line starting with `name`.
fn metric(api: SocketAddr, name: &str) -> Option<f64> {
    use std::io::Read;
    let mut stream = TcpStream::connect(api).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: pool\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
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

/// Where one pool process listens.
struct Instance {
    stratum: SocketAddr,
    api: SocketAddr,
    /// Stratum V2's port (none for the processes sharing a port).
    v2: Option<SocketAddr>,
    /// `stratum.instance_id` and `stratum.reuse_port` when it shares the port.
    shared: Option<u8>,
}

impl Instance {
    fn alone([stratum, api, v2]: [SocketAddr; 3]) -> Instance {
        Instance {
            stratum,
            api,
            v2: Some(v2),
            shared: None,
        }
    }

    fn shared(stratum: SocketAddr, api: SocketAddr, id: u8) -> Instance {
        Instance {
            stratum,
            api,
            v2: None,
            shared: Some(id),
        }
    }
}

fn write_config(
    dir: &Path,
    file: &str,
    database: &str,
    node: &testkit::Node,
    address: &str,
    at: Instance,
) -> PathBuf {
    let (user, password) = node.rpc_credentials();
    let stratum = at.stratum;
    let api = at.api;
    let sharing = at.shared.map_or(String::new(), |id| {
        format!("instance_id = {id}\nreuse_port = true\n")
    });
    let v2 = at.v2.map_or(String::new(), |v2| {
        format!("[stratum.v2]\nbind = \"{v2}\"\nauthority_secret_key = \"{AUTHORITY_SECRET}\"\n")
    });
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
{sharing}
{v2}
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
        data = dir
            .join(format!("data-{}", file.trim_end_matches(".toml")))
            .display(),
        url = node.rpc_url(),
        zmq = node.zmq_hashblock().expect("the node publishes hashblock"),
    );
    let path = dir.join(file);
    std::fs::write(&path, text).expect("writing the pool's config");
    path
}

/// The pool process; killed if the bench panics.
struct Pool {
    child: Child,
}

impl Pool {
    fn start(bin: &Path, config: &Path, dir: &Path, stratum: SocketAddr) -> Pool {
        let log_path = dir.join(
            config
                .with_extension("log")
                .file_name()
                .expect("a file name"),
        );
        let log = std::fs::File::create(&log_path).expect("the pool's log");
        // BENCH_POOL_WRAPPER runs the pool under a profiler, e.g. "heaptrack -o /tmp/ht"
        // (the memory figures are then the wrapper's, not the pool's).
        let wrapper = std::env::var("BENCH_POOL_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
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
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
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

/// Starts `stratum-load` with `args` in the background (echoing the command).
fn spawn_load(bin: &Path, args: &[String]) -> Child {
    println!("\n$ stratum-load {} &", args.join(" "));
    let _ = std::io::stdout().flush();
    Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running stratum-load")
}

/// Waits for a background `stratum-load` and echoes its output.
fn finish_load(child: Child) {
    let out = child.wait_with_output().expect("waiting for stratum-load");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "stratum-load failed");
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
