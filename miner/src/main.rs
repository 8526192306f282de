//! The `miner` binary: parses the command line and runs the chosen command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use miner::bench::{self, BenchOptions};
use miner::config::MineArgs;
use miner::hash::Backend;

/// SHA-256d miner for CPUs (AVX-512, AVX2, SHA-NI, scalar).
///
/// Mine on a pool:  miner -o stratum+tcp://HOST:PORT -u ADDRESS.worker -p x [-t N]
/// Mine solo:       miner --solo -o http://USER:PASS@NODE:PORT --coinbase-addr ADDRESS
/// Measure:         miner bench
///
/// Every flag can also be set in a TOML file (-c FILE, keys named like the long flags with
/// underscores, e.g. coinbase_addr) or in a MINER_* environment variable (e.g. MINER_URL).
/// Environment variables override the file; flags override both.
#[derive(Parser, Debug)]
#[command(name = "miner", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A TOML file with settings (any long flag, with underscores).
    #[arg(short = 'c', long = "config", env = "MINER_CONFIG", global = true)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    mine: MineArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the hash rate: a self-check on known blocks, then MH/s per thread and in total
    /// every few seconds, then a summary (like `cpuminer --benchmark`).
    Bench {
        /// Backend: avx512, avx2, sha-ni or scalar (default: the fastest this CPU runs,
        /// chosen by a start-up micro-benchmark).
        #[arg(long)]
        backend: Option<Backend>,
        /// Hashing threads (default: every core).
        #[arg(short = 't', long = "threads")]
        threads: Option<usize>,
        /// How long to hash, in seconds.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Seconds between progress lines.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Hash one version per nonce, as with a pool that does not allow version rolling.
        #[arg(long)]
        no_version_rolling: bool,
        /// Print one JSON object at the end instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench {
            backend,
            threads,
            seconds,
            interval,
            no_version_rolling,
            json,
        }) => {
            let opts = BenchOptions {
                backend,
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                seconds: seconds.max(0.1),
                interval: interval.max(0.1),
                version_rolling: !no_version_rolling,
                json,
            };
            match bench::run(&opts) {
                Ok(report) => {
                    if json {
                        match serde_json::to_string(&report) {
                            Ok(line) => println!("{line}"),
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                    if report.hardware_errors > 0 {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_target(false)
                .with_writer(std::io::stderr)
                .init();
            let args = match &cli.config {
                Some(path) => match MineArgs::from_file(path) {
                    Ok(file) => cli.mine.or(file),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                },
                None => cli.mine,
            };
            match miner::run::mine(args) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
