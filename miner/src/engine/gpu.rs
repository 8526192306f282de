//! One OpenCL device as an engine worker, on a thread of its own.
//!
//! It takes units from the same counter as the CPU threads, but many at a time: as many
//! consecutive nonce chunks as its last launches say it hashes in about 75 ms (the launch
//! size is re-tuned after every launch, so a device that slows down or speeds up follows).
//! Each run of chunks inside one (extranonce2, version group) is one launch per version,
//! and up to `opencl::DEPTH` launches are queued at once: while the host re-checks one
//! launch's candidates, the device already runs the next.
//! Every candidate is re-checked on the CPU; a launch with more candidates than the buffer
//! holds (only at absurdly low difficulty) is scanned again on the CPU backend instead.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::engine::work::{self, CHUNK_BITS, CHUNKS};
use crate::engine::{Shared, UnitJob, wait_for_work};
use std::collections::VecDeque;

use crate::opencl::{GpuSearcher, Pending};

/// How long one take of chunks should keep the device busy.
const TARGET_TAKE: Duration = Duration::from_millis(75);

/// Runs until shutdown; returns early (with a log line) if the device fails.
pub(super) fn worker(shared: &Shared, index: usize, mut gpu: GpuSearcher) {
    let mut seen = 0;
    let mut take: u64 = 1;
    while let Some(active) = wait_for_work(shared, seen) {
        seen = active.generation;
        let plan = &active.plan;
        let mut cached: Option<UnitJob> = None;
        loop {
            super::wait_while_held(shared, index, seen);
            let first = active.next_unit.fetch_add(take, Ordering::Relaxed);
            if first >= plan.units || shared.generation.load(Ordering::Acquire) != seen {
                break;
            }
            let last = first.saturating_add(take).min(plan.units);
            let started = Instant::now();
            let mut hashed = 0u64;
            let mut u = first;
            while u < last && shared.generation.load(Ordering::Relaxed) == seen {
                let unit = plan.unit(u);
                let span_end = ((u / CHUNKS + 1) * CHUNKS).min(last);
                let current = UnitJob::reuse_or_prepare(cached.take(), plan, seen, &unit);
                let nonces = (span_end - u) << CHUNK_BITS;
                match scan_span(
                    shared, index, &mut gpu, plan, &current, unit.nonce, nonces, seen,
                ) {
                    Ok(n) => hashed += n,
                    Err(e) => {
                        tracing::error!(
                            device = %gpu.summary.name,
                            error = %e,
                            "device lost: it stops hashing; the other workers go on"
                        );
                        shared.stats[index].lose(e.to_string());
                        return;
                    }
                }
                cached = Some(current);
                u = span_end;
            }
            // Re-tune: chunks per take so that one take lasts about TARGET_TAKE.
            let secs = started.elapsed().as_secs_f64().max(1e-6);
            let versions = plan.per_group.max(1) as f64;
            let chunk_hashes = (1u64 << CHUNK_BITS) as f64 * versions;
            let per_take = hashed as f64 / secs * TARGET_TAKE.as_secs_f64() / chunk_hashes;
            take = (per_take.round() as u64).clamp(1, CHUNKS);
        }
    }
}

/// Hashes `count` nonces from `first` for every version of the unit's job, keeping up to
/// [`crate::opencl::DEPTH`] launches queued so the device never waits for the host;
/// returns the hashes done.
#[allow(clippy::too_many_arguments)]
fn scan_span(
    shared: &Shared,
    worker: usize,
    gpu: &mut GpuSearcher,
    plan: &work::Plan,
    unit: &UnitJob,
    first: u32,
    count: u64,
    seen: u64,
) -> Result<u64, crate::opencl::GpuError> {
    let stats = &shared.stats[worker];
    let job = &unit.job;
    let limit = u64::from(GpuSearcher::max_launch(job.target_top));
    // Every launch of the span: (version, start, nonces).
    let mut launches = Vec::new();
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(limit);
        for vi in 0..job.versions.len() {
            launches.push((vi, first.wrapping_add(done as u32), n as u32));
        }
        done += n;
    }
    let mut queued: VecDeque<(Pending, usize, u32, u32)> = VecDeque::new();
    let mut next = launches.into_iter();
    let mut hashed = 0u64;
    loop {
        // Keep the device fed, unless the work was replaced.
        while gpu.has_free_slot() && shared.generation.load(Ordering::Relaxed) == seen {
            let Some((vi, start, n)) = next.next() else {
                break;
            };
            queued.push_back((gpu.submit(job, vi, start, n)?, vi, start, n));
        }
        let Some((pending, vi, start, n)) = queued.pop_front() else {
            break;
        };
        let result = gpu.finish(pending)?;
        // Counted before the candidates go out, so `found` never runs ahead of `hashes`.
        stats.hashes.fetch_add(u64::from(n), Ordering::Relaxed);
        hashed += u64::from(n);
        match result {
            Some(nonces) => {
                for nonce in nonces {
                    let verdict = work::recheck(job, vi, nonce, &plan.work.target);
                    super::deliver(
                        shared,
                        worker,
                        plan,
                        unit,
                        vi,
                        nonce,
                        verdict,
                        &gpu.summary.name,
                    );
                }
            }
            None => {
                // Too many candidates for the buffer: let the CPU backend do this range.
                shared.backend.scan(job, start, n, &mut |v, nonce| {
                    if v == vi {
                        let verdict = work::recheck(job, v, nonce, &plan.work.target);
                        super::deliver(shared, worker, plan, unit, v, nonce, verdict, "cpu");
                    }
                });
            }
        }
    }
    Ok(hashed)
}
