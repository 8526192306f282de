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
    /// List the OpenCL platforms and devices (index, compute units, memory) and exit.
    #[arg(long)]
    list_devices: bool,
    #[command(flatten)]
    mine: MineArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the hash rate: a self-check on known blocks, then MH/s per thread and in total
    /// every few seconds, then a summary (like `cpuminer --benchmark`).
    Bench {
        /// Backend: avx512, avx2, sha-ni, scalar (default: the fastest this CPU runs, chosen
        /// by a start-up micro-benchmark), or opencl (the OpenCL devices only).
        #[arg(long)]
        backend: Option<String>,
        /// CPU hashing threads (default: every core; 0 with opencl).
        #[arg(short = 't', long = "threads", visible_alias = "cpu-threads")]
        threads: Option<usize>,
        /// OpenCL devices to bench (indexes from --list-devices; with --backend opencl the
        /// default is every device).
        #[arg(long = "gpu-devices", value_delimiter = ',')]
        gpu_devices: Vec<usize>,
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
        /// Pin the hashing threads to these CPUs (a hex mask like 0x5, or 0,2-3).
        #[arg(long = "cpu-affinity")]
        cpu_affinity: Option<String>,
        /// Priority of the hashing threads, 0 (idle) to 5; default: as started, so that
        /// the measure is of the CPU, not of what else runs.
        #[arg(long = "cpu-priority")]
        cpu_priority: Option<u8>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_devices {
        return match miner::opencl::device_table() {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match cli.command {
        Some(Command::Bench {
            backend,
            threads,
            gpu_devices,
            seconds,
            interval,
            no_version_rolling,
            json,
            cpu_affinity,
            cpu_priority,
        }) => {
            let placement = match placement(cpu_affinity.as_deref(), cpu_priority) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let opencl = backend.as_deref() == Some("opencl");
            let backend = match backend.as_deref() {
                None | Some("opencl") => None,
                Some(name) => match name.parse::<Backend>() {
                    Ok(b) => Some(b),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            let devices = if opencl && gpu_devices.is_empty() {
                match miner::opencl::devices() {
                    Ok(list) => list.iter().map(|(d, _, _)| d.index).collect(),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                gpu_devices
            };
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let opts = BenchOptions {
                backend,
                devices,
                threads: threads.unwrap_or(if opencl { 0 } else { cores }),
                seconds: seconds.max(0.1),
                interval: interval.max(0.1),
                version_rolling: !no_version_rolling,
                json,
                placement,
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
            #[cfg(unix)]
            let logged = miner::logging::init(args.log_file.as_deref(), args.syslog);
            #[cfg(not(unix))]
            let logged = if args.log_file.is_some() || args.syslog {
                Err("--log-file and --syslog need a Unix system".to_string())
            } else {
                tracing_subscriber::fmt().with_target(false).init();
                Ok(())
            };
            if let Err(e) = logged {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
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

/// The bench's `--cpu-affinity` and `--cpu-priority`, checked.
fn placement(
    affinity: Option<&str>,
    priority: Option<u8>,
) -> Result<miner::engine::Placement, String> {
    use miner::engine::placement::{check_priority, parse_cpus};
    Ok(miner::engine::Placement {
        cpus: affinity.map(parse_cpus).transpose()?,
        priority: priority.map(check_priority).transpose()?,
    })
}
