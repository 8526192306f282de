//! Hash rate of each CPU backend this machine supports, on 1 and 2 threads, with and
//! without multi-midstate version rolling (4 versions per block-2 schedule).
//!
//! `cargo bench -p benches --bench cpu_backends` (`BENCH_SECONDS` per row, default 3;
//! `BENCH_BACKENDS=avx512,sha-ni` to pick).

use std::time::{Duration, Instant};

use miner::hash::{Backend, Prepared};
use protocol::BlockHeader;

fn job(versions: u32) -> Prepared {
    let header: BlockHeader = miner::hash::select::sample_job_header();
    let list: Vec<(u32, [u32; 8])> = (0..versions)
        .map(|i| {
            let mut h = header;
            h.version ^= i << 13;
            (h.version, h.midstate().0)
        })
        .collect();
    Prepared::new(&list, header.tail(), 0)
}

/// The best of five windows of `seconds / 5`: shared machines are noisy, and a window
/// that another tenant slowed down says nothing about the code.
fn run(backend: Backend, job: &Prepared, threads: u32, seconds: f64) -> f64 {
    (0..5)
        .map(|_| window(backend, job, threads, seconds / 5.0))
        .fold(0.0, f64::max)
}

/// Total MH/s of `threads` threads scanning disjoint nonce ranges for `seconds`.
fn window(backend: Backend, job: &Prepared, threads: u32, seconds: f64) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let per_nonce = job.versions.len() as f64;
    let totals: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let start = Instant::now();
                    let mut nonce = t << 28;
                    let mut done = 0u64;
                    let mut sink = 0u32;
                    while start.elapsed() < deadline {
                        backend.scan(job, nonce, 8192, &mut |_, n| sink ^= n);
                        nonce = nonce.wrapping_add(8192);
                        done += 8192;
                    }
                    std::hint::black_box(sink);
                    done
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    totals.iter().sum::<u64>() as f64 * per_nonce / seconds / 1e6
}

fn main() {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let chosen: Option<Vec<Backend>> = std::env::var("BENCH_BACKENDS")
        .ok()
        .map(|s| s.split(',').filter_map(|b| b.trim().parse().ok()).collect());
    println!(
        "{:<8} {:>9} {:>12} {:>12}",
        "backend", "versions", "1 thread", "2 threads"
    );
    for backend in Backend::supported() {
        if chosen.as_ref().is_some_and(|c| !c.contains(&backend)) {
            continue;
        }
        for versions in bench_versions() {
            let job = job(versions);
            let one = run(backend, &job, 1, seconds);
            let two = run(backend, &job, 2, seconds);
            println!(
                "{:<8} {versions:>9} {one:>8.2} MH/s {two:>8.2} MH/s",
                backend.name()
            );
        }
    }
}

fn bench_versions() -> Vec<u32> {
    let max = miner::hash::MAX_VERSIONS as u32;
    if max > 1 { vec![1, max] } else { vec![1] }
}
