//! `stratum-load`: simulated Stratum v1 miners against any pool (see `benches::load`).
//!
//! ```text
//! stratum-load --pool 127.0.0.1:3333 --user ADDRESS --miners 1000 --rate 2000 --seconds 30
//! stratum-load --pool 127.0.0.1:3333 --user ADDRESS --miners 10000 --mode idle --seconds 20
//! stratum-load --pool 127.0.0.1:3333 --user ADDRESS --miners 10000 --mode notify \
//!              --node http://USER:PASS@127.0.0.1:8332/ --seconds 60
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use benches::load::{self, LoadOptions, LoadProtocol, Mode, rss_kib};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Simulated Stratum v1 or V2 miners: submit valid shares at a rate, hold connections, or time a new block's fan-out"
)]
struct Args {
    /// The pool's Stratum address.
    #[arg(long)]
    pool: SocketAddr,
    /// Payout address; miner i authorizes as ADDRESS.wi.
    #[arg(long)]
    user: String,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    miners: usize,
    /// Shares per second, all miners together (submit mode).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to submit, or to hold the connections.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Share difficulty asked for in the password (d=...); the pool must allow it.
    #[arg(long, default_value_t = 1.0 / 65536.0)]
    difficulty: f64,
    /// Loopback source addresses to spread connections over (127.0.0.2 and up).
    #[arg(long, default_value_t = 64)]
    sources: u32,
    /// submit, idle or notify.
    #[arg(long, default_value = "submit")]
    mode: String,
    /// The pool's node, http://USER:PASS@HOST:PORT/ (notify mode mines one block there).
    #[arg(long)]
    node: Option<String>,
    /// The pool's process id, to report its memory (idle mode) and the CPU time it spent
    /// on a new block's fan-out (notify mode).
    #[arg(long)]
    pool_pid: Option<u32>,
    /// v1 (plain Stratum) or v2 (Stratum V2: Noise, one channel a connection).
    #[arg(long, default_value = "v1")]
    protocol: String,
    /// Stratum V2 channel kind: extended (the miner builds the coinbase) or standard
    /// (header-only: the pool computes one merkle root per channel per job).
    #[arg(long, default_value = "extended")]
    sv2_channel: String,
    /// Stratum V2: the pool's authority public key (as `pool keygen` prints it).
    #[arg(long)]
    authority_key: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mode = match args.mode.as_str() {
        "submit" => Mode::Submit,
        "idle" => Mode::Idle,
        "notify" => Mode::Notify,
        other => {
            eprintln!("--mode must be submit, idle or notify, not {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let node = match args
        .node
        .as_deref()
        .map(|url| noderpc::Endpoint::parse(url, None))
        .transpose()
    {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if mode == Mode::Notify && node.is_none() {
        eprintln!(
            "--mode notify needs --node http://USER:PASS@HOST:PORT/ (it mines a block there)"
        );
        return ExitCode::FAILURE;
    }
    if !(args.seconds > 0.0 && args.rate > 0.0 && args.miners > 0) {
        eprintln!("--seconds, --rate and --miners must be above zero");
        return ExitCode::FAILURE;
    }
    let standard = match args.sv2_channel.as_str() {
        "extended" => false,
        "standard" => true,
        other => {
            eprintln!("--sv2-channel {other:?}: expected extended or standard");
            return ExitCode::FAILURE;
        }
    };
    let protocol = match (args.protocol.as_str(), args.authority_key.as_deref()) {
        ("v1", _) => LoadProtocol::V1,
        ("v2", Some(key)) => match protocol::sv2::keys::parse_public(key) {
            Ok(authority) => LoadProtocol::V2 {
                authority,
                standard,
            },
            Err(e) => {
                eprintln!("--authority-key {key:?}: {e}");
                return ExitCode::FAILURE;
            }
        },
        ("v2", None) => {
            eprintln!("--protocol v2 needs the pool's --authority-key");
            return ExitCode::FAILURE;
        }
        (other, _) => {
            eprintln!("--protocol {other:?}: expected v1 or v2");
            return ExitCode::FAILURE;
        }
    };
    let opts = LoadOptions {
        pool: args.pool,
        user: args.user,
        miners: args.miners,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.seconds),
        difficulty: args.difficulty,
        sources: args.sources.max(1),
        mode,
        node,
        protocol,
        pool_pid: args.pool_pid,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rss_before = args.pool_pid.and_then(rss_kib);
    let pool_pid = args.pool_pid;
    let report = runtime.block_on(async move {
        if mode == Mode::Idle {
            // Measure while the connections are held: halfway through.
            let half = opts.duration / 2;
            let run = tokio::spawn(load::run(opts));
            tokio::time::sleep(half).await;
            let rss = pool_pid.and_then(rss_kib);
            (run.await.unwrap_or_default(), rss)
        } else {
            (load::run(opts).await, None)
        }
    });
    let (report, rss_held) = report;
    println!(
        "connections: {} held, {} failed{}",
        report.connected,
        report.failed,
        report
            .first_failure
            .as_deref()
            .map_or(String::new(), |f| format!(" (first: {f})"))
    );
    if mode == Mode::Submit {
        println!(
            "shares: {} submitted, {} accepted in {:.1} s = {:.0} accepted/s",
            report.submitted,
            report.accepted,
            report.seconds,
            report.accepted_per_sec()
        );
        let [p50, p99, p999, max] = report.latency_us;
        println!(
            "submit to answer: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            p999 as f64 / 1e3,
            max as f64 / 1e3
        );
        // The seconds that hold the tail: those with more than 1% of answers slow.
        let slow: Vec<String> = report
            .by_second
            .iter()
            .enumerate()
            .filter(|(_, s)| s.slow * 100 > s.answers)
            .map(|(i, s)| {
                format!(
                    "{i}s {}/{} max {:.0} ms",
                    s.slow,
                    s.answers,
                    s.max_us as f64 / 1e3
                )
            })
            .collect();
        let total_slow: u64 = report.by_second.iter().map(|s| s.slow).sum();
        println!(
            "answers over {} ms: {total_slow}; seconds with over 1% of them: {}",
            load::SLOW.as_millis(),
            if slow.is_empty() {
                "none".to_string()
            } else {
                slow.join(", ")
            }
        );
        for (reason, n) in &report.rejected {
            println!("rejected: {n} {reason}");
        }
    }
    if mode == Mode::Notify {
        let [p50, p99, _, max] = report.fanout_us;
        println!(
            "new block to notify: {} of {} connections notified; p50 {:.2} ms, p99 {:.2} ms, last {:.2} ms",
            report.notified,
            report.connected + report.failed,
            p50 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3
        );
        if let Some(ms) = report.fanout_pool_cpu_ms {
            println!(
                "pool CPU from the block to the last notify: {ms} ms = {:.1} us per connection",
                ms as f64 * 1e3 / report.notified.max(1) as f64
            );
        }
    }
    if let (Some(before), Some(held)) = (rss_before, rss_held) {
        println!(
            "pool memory: {before} KiB before, {held} KiB with the connections held = {:.1} KiB per connection",
            held.saturating_sub(before) as f64 / report.connected.max(1) as f64
        );
    }
    if report.connected == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
