//! `miner bench`: the self-check, then per-thread and total hash rates every few seconds,
//! then a summary (or one JSON object with `--json`), like `cpuminer --benchmark`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use protocol::{BlockHeader, Target};
use serde::Serialize;

use crate::engine::{Engine, Work};
use crate::hash::{Backend, select};
use crate::selfcheck;

/// The longest a bench waits for every worker's first batch before it starts the clock.
const WARM_UP_LIMIT: Duration = Duration::from_secs(60);

/// What to benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// A forced backend; `None` picks the fastest by micro-benchmark.
    pub backend: Option<Backend>,
    /// CPU hashing threads (0: devices only).
    pub threads: usize,
    /// OpenCL devices to hash on too (indexes from `--list-devices`).
    pub devices: Vec<usize>,
    /// How long to hash.
    pub seconds: f64,
    /// Seconds between progress lines.
    pub interval: f64,
    /// Roll version bits (BIP 310 mask 0x1fffe000), as with every pool that allows it.
    pub version_rolling: bool,
    /// Print one JSON object instead of text.
    pub json: bool,
    /// Where the CPU threads run and at what priority (default: as started).
    pub placement: crate::engine::Placement,
}

/// The summary `--json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Backend used.
    pub backend: String,
    /// Threads.
    pub threads: usize,
    /// Whether versions were rolled.
    pub version_rolling: bool,
    /// Hashes done.
    pub hashes: u64,
    /// Seconds hashed.
    pub seconds: f64,
    /// Total rate.
    pub mhs: f64,
    /// Rate per worker (CPU threads, then devices), in the order of `workers`.
    pub per_thread_mhs: Vec<f64>,
    /// The workers' names: `cpu N`, `gpu N: device`.
    pub workers: Vec<String>,
    /// Hardware errors (should be zero).
    pub hardware_errors: u64,
    /// Start-up micro-benchmark, MH/s per supported backend on one thread.
    pub backend_rates: Vec<(String, f64)>,
}

/// Why the bench stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The forced backend cannot run here.
    #[error("backend {0} is not supported by this CPU (supported: {1})")]
    Unsupported(Backend, String),
    /// The self-check failed: the backend computes wrong hashes.
    #[error(transparent)]
    SelfCheck(#[from] selfcheck::SelfCheckError),
    /// An OpenCL device could not be used.
    #[error(transparent)]
    Gpu(#[from] crate::opencl::GpuError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

/// A job no one will find a block on: block 125552's header with a zero previous hash,
/// at an unreachable target, so the run measures hashing only.
fn bench_work(version_rolling: bool) -> Work {
    let mut header = select::sample_job_header();
    header.prev_hash = protocol::Hash256::ZERO;
    Work {
        job_id: "bench".into(),
        header: BlockHeader { nonce: 0, ..header },
        target: Target::ZERO,
        version_mask: if version_rolling { 0x1fff_e000 } else { 0 },
        extranonce: None,
    }
}

/// Runs the bench, printing progress to stdout unless `json`; returns the summary.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let supported = Backend::supported();
    let (backend, rates) = match opts.backend {
        Some(b) if !b.is_supported() => {
            let names: Vec<&str> = supported.iter().map(|b| b.name()).collect();
            return Err(BenchError::Unsupported(b, names.join(", ")));
        }
        Some(b) => (b, Vec::new()),
        None => {
            let choice = select::choose(Duration::from_millis(50), 3);
            if !opts.json {
                println!("backend {}", choice.reason);
            }
            (choice.backend, choice.rates)
        }
    };
    let say = |line: String| {
        if !opts.json {
            println!("{line}");
        }
    };
    for (b, rate) in &rates {
        say(format!(
            "start-up check: {:<7} {:>7.2} MH/s on one thread",
            b.name(),
            rate / 1e6
        ));
    }
    say(format!(
        "backend {backend}, {} thread(s); self-check…",
        opts.threads
    ));
    selfcheck::run(backend)?;
    say("self-check passed: known winning nonces found, hits equal the reference".into());

    let gpus = crate::opencl::open_selected(false, &opts.devices)?;
    for g in &gpus {
        say(format!(
            "OpenCL device {}: {} / {} ({} compute units); kernel built",
            g.summary.index, g.summary.platform, g.summary.name, g.summary.compute_units
        ));
    }
    let (tx, _rx) = crate::engine::solution_channel();
    let engine = Engine::start_placed(backend, opts.threads, gpus, tx, opts.placement.clone())?;
    let workers = engine.worker_names().to_vec();
    engine.set_work(bench_work(opts.version_rolling));
    // The clock starts once every worker has finished a batch: an OpenCL device's first
    // launch can take seconds (PoCL compiles per work-group size), which is start-up, not
    // hash rate, and a short bench would otherwise end before the first batch.
    let counts = |engine: &Engine| -> Vec<u64> {
        engine
            .stats()
            .iter()
            .map(|s| s.hashes.load(Ordering::Relaxed))
            .collect()
    };
    let warm_up = Instant::now();
    while counts(&engine).contains(&0) && warm_up.elapsed() < WARM_UP_LIMIT {
        std::thread::sleep(Duration::from_millis(10));
    }
    let start = Instant::now();
    let baseline = counts(&engine);
    let mut last = baseline.clone();
    let mut last_time = start;
    let total = Duration::from_secs_f64(opts.seconds);
    while start.elapsed() < total {
        let left = total.saturating_sub(start.elapsed());
        std::thread::sleep(left.min(Duration::from_secs_f64(opts.interval)));
        let now = Instant::now();
        let dt = now.duration_since(last_time).as_secs_f64();
        let counts = counts(&engine);
        let rates: Vec<String> = counts
            .iter()
            .zip(&last)
            .enumerate()
            .map(|(i, (c, l))| format!("{} {:.2}", workers[i], (c - l) as f64 / dt / 1e6))
            .collect();
        let sum: u64 = counts.iter().zip(&last).map(|(c, l)| c - l).sum();
        say(format!(
            "{:>6.1}s  {}  total {:.2} MH/s",
            start.elapsed().as_secs_f64(),
            rates.join("  "),
            sum as f64 / dt / 1e6
        ));
        last = counts;
        last_time = now;
    }
    // A device whose next batch takes longer than the run (PoCL may compile again for a
    // larger batch, and a loaded machine is slow) would report nothing: the run goes on
    // until every worker has finished a batch inside it, and the rate covers all of it.
    let stretch = Instant::now();
    while counts(&engine).iter().zip(&baseline).any(|(c, b)| c == b)
        && stretch.elapsed() < WARM_UP_LIMIT
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let seconds = start.elapsed().as_secs_f64();
    engine.clear_work();
    let done: Vec<u64> = counts(&engine)
        .iter()
        .zip(&baseline)
        .map(|(c, b)| c - b)
        .collect();
    let per_thread: Vec<f64> = done.iter().map(|h| *h as f64 / seconds / 1e6).collect();
    let hashes: u64 = done.iter().sum();
    let report = BenchReport {
        backend: if opts.threads == 0 {
            "opencl".into()
        } else if opts.devices.is_empty() {
            backend.name().into()
        } else {
            format!("{} + opencl", backend.name())
        },
        workers,
        threads: opts.threads,
        version_rolling: opts.version_rolling,
        hashes,
        seconds,
        mhs: hashes as f64 / seconds / 1e6,
        per_thread_mhs: per_thread,
        hardware_errors: engine.hardware_errors(),
        backend_rates: rates
            .iter()
            .map(|(b, r)| (b.name().to_string(), r / 1e6))
            .collect(),
    };
    say(format!(
        "summary: {} on {} thread(s){}: {:.2} MH/s ({} hashes in {:.1} s), hardware errors {}",
        report.backend,
        report.threads,
        if report.version_rolling {
            " with version rolling"
        } else {
            ""
        },
        report.mhs,
        report.hashes,
        report.seconds,
        report.hardware_errors
    ));
    Ok(report)
}
