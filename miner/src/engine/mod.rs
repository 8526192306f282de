//! The CPU engine: a rayon thread pool hashing the current [`Work`] with one backend.
//!
//! Threads take units (an extranonce2 value, a version group, a 2^22-nonce chunk) from an
//! atomic counter, so no two threads ever hash the same header and a fast thread simply
//! takes more units. Between batches of 4096 nonces a thread compares the work generation
//! with the current one, so [`Engine::set_work`] withdraws old work within a fraction of a
//! millisecond per thread. Every backend hit is re-checked with the protocol crate's
//! reference sha256d ([`work::recheck`]); what meets the target goes out on the solutions
//! channel, and a hit the reference contradicts is counted as a hardware error and logged.
//! The solutions channel is bounded ([`solution_channel`]) and never blocks a hashing
//! thread: when the consumer falls behind, solutions are dropped and counted. That only
//! happens at share targets so low that nearly every hash meets them (regtest); an
//! unbounded queue there grows by millions of entries and starves everything else.
//!
//! OpenCL devices join as workers of their own ([`gpu`]), one thread each, taking units from
//! the same counter.
//!
//! Hashing runs only on the pool's threads, never on an async runtime.

mod gpu;
pub mod placement;
pub mod work;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

pub use placement::Placement;
pub use work::{Extranonce, Found, Plan, Verdict, Work};

use protocol::BlockHeader;

use crate::hash::{Backend, Prepared};
use crate::opencl::GpuSearcher;
use crate::sensors::{Reading, Sensors};

/// Nonces per backend call between checks for new work.
const BATCH: u32 = 4096;

/// Solutions that may wait for the consumer before more are dropped.
pub const SOLUTION_QUEUE: usize = 256;

/// The channel an engine sends its solutions on: bounded by [`SOLUTION_QUEUE`].
pub fn solution_channel() -> (SyncSender<Found>, Receiver<Found>) {
    sync_channel(SOLUTION_QUEUE)
}

/// Per-thread counters, readable while the engine runs.
#[derive(Debug, Default)]
pub struct ThreadStats {
    /// Hashes done (nonces × versions).
    pub hashes: AtomicU64,
    /// Hits the reference sha256d contradicted.
    pub hardware_errors: AtomicU64,
    /// Solutions found (meeting the target).
    pub found: AtomicU64,
    /// Solutions dropped because the consumer was [`SOLUTION_QUEUE`] behind.
    pub dropped: AtomicU64,
    /// Of its solutions, those the pool accepted (blocks the node accepted, solo).
    pub accepted: AtomicU64,
    /// Of its solutions, those the pool rejected (blocks the node rejected, solo).
    pub rejected: AtomicU64,
    /// Why the worker stopped for good (a lost device), if it did.
    lost: Mutex<Option<String>>,
    /// Held back (too hot, `--max-temp`): the worker takes no new unit until released.
    held: AtomicBool,
}

impl ThreadStats {
    /// Marks the worker as stopped for good.
    fn lose(&self, why: String) {
        *self.lost.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    /// Why the worker stopped for good (a lost device); `None` while it works.
    pub fn lost(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The current work, its generation, and the shutdown flag. The mutex only guards the
/// hand-over of new work (rare); the hot loop reads `generation` alone.
struct Shared {
    current: Mutex<Current>,
    changed: Condvar,
    generation: AtomicU64,
    shutdown: AtomicBool,
    /// Paused (`Engine::pause`): threads wait, the work stays for `Engine::resume`.
    paused: AtomicBool,
    stats: Vec<ThreadStats>,
    backend: Backend,
    solutions: SyncSender<Found>,
}

struct Current {
    plan: Option<Arc<Active>>,
}

struct Active {
    plan: Arc<Plan>,
    generation: u64,
    next_unit: AtomicU64,
}

/// A running engine. Dropping it stops every thread.
pub struct Engine {
    shared: Arc<Shared>,
    names: Vec<String>,
    /// Per worker, the device's sensors (`None` for CPU threads).
    sensors: Vec<Option<Sensors>>,
    _pool: Option<rayon::ThreadPool>,
}

/// Why an engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The backend needs instructions this CPU lacks.
    #[error("backend {0} is not supported by this CPU")]
    Unsupported(Backend),
    /// Neither CPU threads nor devices were asked for.
    #[error("nothing to hash with: give CPU threads or OpenCL devices")]
    NoWorkers,
    /// A device's thread could not be started.
    #[error("cannot start a GPU thread: {0}")]
    Thread(String),
    /// The thread pool could not be built.
    #[error("cannot start {threads} hashing threads: {source}")]
    Pool {
        /// Threads asked for.
        threads: usize,
        /// Why.
        source: rayon::ThreadPoolBuildError,
    },
}

impl Engine {
    /// Starts `threads` hashing threads (idle until [`Engine::set_work`]) that send what
    /// they find to `solutions`.
    pub fn start(
        backend: Backend,
        threads: usize,
        solutions: SyncSender<Found>,
    ) -> Result<Engine, EngineError> {
        Engine::start_with(backend, threads.max(1), Vec::new(), solutions)
    }

    /// Starts `threads` CPU threads (0 for none) and one worker per OpenCL device.
    pub fn start_with(
        backend: Backend,
        threads: usize,
        gpus: Vec<GpuSearcher>,
        solutions: SyncSender<Found>,
    ) -> Result<Engine, EngineError> {
        Engine::start_placed(backend, threads, gpus, solutions, Placement::default())
    }

    /// [`Engine::start_with`], each CPU thread placed by `placement` (affinity, priority)
    /// as it starts.
    pub fn start_placed(
        backend: Backend,
        threads: usize,
        gpus: Vec<GpuSearcher>,
        solutions: SyncSender<Found>,
        placement: Placement,
    ) -> Result<Engine, EngineError> {
        if !backend.is_supported() {
            return Err(EngineError::Unsupported(backend));
        }
        if threads == 0 && gpus.is_empty() {
            return Err(EngineError::NoWorkers);
        }
        let mut names: Vec<String> = (0..threads).map(|i| format!("cpu {i}")).collect();
        names.extend(
            gpus.iter()
                .map(|g| format!("gpu {}: {}", g.summary.index, g.summary.name)),
        );
        let mut sensors: Vec<Option<Sensors>> = (0..threads).map(|_| None).collect();
        sensors.extend(
            gpus.iter()
                .map(|g| Some(Sensors::for_device(g.summary.pci.as_deref()))),
        );
        let shared = Arc::new(Shared {
            current: Mutex::new(Current { plan: None }),
            changed: Condvar::new(),
            generation: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            stats: names.iter().map(|_| ThreadStats::default()).collect(),
            backend,
            solutions,
        });
        let pool = if threads > 0 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("hash-{i}"))
                .start_handler(move |i| {
                    for failure in placement.apply(i) {
                        tracing::warn!("{failure}");
                    }
                })
                .build()
                .map_err(|source| EngineError::Pool { threads, source })?;
            let for_workers = shared.clone();
            pool.spawn_broadcast(move |ctx| worker(&for_workers, ctx.index()));
            Some(pool)
        } else {
            None
        };
        for (i, searcher) in gpus.into_iter().enumerate() {
            let for_gpu = shared.clone();
            std::thread::Builder::new()
                .name(format!("gpu-{}", searcher.summary.index))
                .spawn(move || gpu::worker(&for_gpu, threads + i, searcher))
                .map_err(|e| EngineError::Thread(e.to_string()))?;
        }
        Ok(Engine {
            shared,
            names,
            sensors,
            _pool: pool,
        })
    }

    /// A name per worker, in the order of [`Engine::stats`]: `cpu N`, then
    /// `gpu N: device name`.
    pub fn worker_names(&self) -> &[String] {
        &self.names
    }

    /// The OpenCL device workers: (worker index, name, counters).
    pub fn gpu_workers(&self) -> impl Iterator<Item = (usize, &str, &ThreadStats)> {
        self.names
            .iter()
            .zip(self.stats())
            .enumerate()
            .filter(|(i, _)| self.sensors.get(*i).is_some_and(Option::is_some))
            .map(|(i, (name, stats))| (i, name.as_str(), stats))
    }

    /// Temperature, fan and power of `worker`'s device, where the platform exposes them;
    /// `None` for a CPU thread.
    pub fn sensors(&self, worker: usize) -> Option<Reading> {
        self.sensors.get(worker)?.as_ref().map(Sensors::read)
    }

    /// Replaces the current work; threads drop the old work within a batch.
    pub fn set_work(&self, work: Work) {
        self.replace(Some(Plan::new(work)));
    }

    /// Stops hashing until the next [`Engine::set_work`].
    pub fn clear_work(&self) {
        self.replace(None);
    }

    /// Stops hashing `job_id` if it is still the current work (solo mining: once a block is
    /// found for a template, more solutions for it are worthless). Returns whether it was.
    pub fn withdraw(&self, job_id: &str) -> bool {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current
            .plan
            .as_ref()
            .is_some_and(|a| a.plan.work.job_id == job_id)
        {
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            current.plan = None;
            self.shared.changed.notify_all();
            true
        } else {
            false
        }
    }

    fn replace(&self, plan: Option<Plan>) {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        current.plan = plan.map(|plan| {
            Arc::new(Active {
                plan: Arc::new(plan),
                generation,
                next_unit: AtomicU64::new(0),
            })
        });
        self.shared.changed.notify_all();
    }

    /// Stops hashing until [`Engine::resume`] (new work still arrives and waits); whether
    /// it was running.
    pub fn pause(&self) -> bool {
        let _current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.shared.paused.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Threads leave their work within a batch and wait.
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.changed.notify_all();
        true
    }

    /// Hashing goes on where it stopped (the units not yet hashed of the current work);
    /// whether it was paused.
    pub fn resume(&self) -> bool {
        let mut current = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !self.shared.paused.swap(false, Ordering::AcqRel) {
            return false;
        }
        let generation = self.shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
        // The same work under a new generation, from the first unit no thread took.
        current.plan = current.plan.take().map(|old| {
            Arc::new(Active {
                plan: old.plan.clone(),
                generation,
                next_unit: AtomicU64::new(old.next_unit.load(Ordering::Acquire)),
            })
        });
        self.shared.changed.notify_all();
        true
    }

    /// Whether hashing is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.paused.load(Ordering::Acquire)
    }

    /// Holds worker `worker` back (it finishes its unit, then takes no other) or releases
    /// it; whether that changed anything.
    pub fn hold(&self, worker: usize, held: bool) -> bool {
        self.stats()
            .get(worker)
            .is_some_and(|s| s.held.swap(held, Ordering::AcqRel) != held)
    }

    /// Whether worker `worker` is held back.
    pub fn is_held(&self, worker: usize) -> bool {
        self.stats()
            .get(worker)
            .is_some_and(|s| s.held.load(Ordering::Acquire))
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.shared.backend
    }

    /// Per-thread counters.
    pub fn stats(&self) -> &[ThreadStats] {
        &self.shared.stats
    }

    /// Total hashes so far.
    pub fn total_hashes(&self) -> u64 {
        self.stats()
            .iter()
            .map(|s| s.hashes.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts the pool's (or node's) verdict on a solution of `worker`.
    pub fn record_verdict(&self, worker: usize, accepted: bool) {
        if let Some(s) = self.stats().get(worker) {
            let counter = if accepted { &s.accepted } else { &s.rejected };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Solutions dropped so far because the consumer fell behind.
    pub fn dropped_solutions(&self) -> u64 {
        self.stats()
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Total hardware errors so far.
    pub fn hardware_errors(&self) -> u64 {
        self.stats()
            .iter()
            .map(|s| s.hardware_errors.load(Ordering::Relaxed))
            .sum()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        let _guard = self
            .shared
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.changed.notify_all();
    }
}

/// Waits until there is work of a generation newer than `seen` (or shutdown).
fn wait_for_work(shared: &Shared, seen: u64) -> Option<Arc<Active>> {
    let mut current = shared
        .current
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return None;
        }
        if let Some(active) = &current.plan
            && active.generation != seen
            && !shared.paused.load(Ordering::Acquire)
        {
            return Some(active.clone());
        }
        current = shared
            .changed
            .wait(current)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// A unit's prepared job, kept while a thread's units stay in one (extranonce2, version
/// group) of one generation.
struct UnitJob {
    key: (u64, u64, u64),
    job: Prepared,
    header: BlockHeader,
    extranonce2: Vec<u8>,
}

impl UnitJob {
    /// `cached` if it is this unit's (extranonce2, version group) of this generation, else
    /// freshly prepared.
    fn reuse_or_prepare(
        cached: Option<UnitJob>,
        plan: &Plan,
        seen: u64,
        unit: &work::Unit,
    ) -> UnitJob {
        let key = (seen, unit.extranonce, unit.group);
        match cached {
            Some(c) if c.key == key => c,
            _ => {
                let (job, header, extranonce2) = plan.prepare(unit.extranonce, unit.group);
                UnitJob {
                    key,
                    job,
                    header,
                    extranonce2,
                }
            }
        }
    }
}

/// While worker `index` is held back (too hot), sleeps in short steps; returns when it is
/// released, the work changes or the engine stops.
fn wait_while_held(shared: &Shared, index: usize, seen: u64) {
    while shared.stats[index].held.load(Ordering::Acquire)
        && shared.generation.load(Ordering::Acquire) == seen
        && !shared.shutdown.load(Ordering::Acquire)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0;
    let mut cached: Option<UnitJob> = None;
    while let Some(active) = wait_for_work(shared, seen) {
        seen = active.generation;
        let plan = &active.plan;
        loop {
            wait_while_held(shared, index, seen);
            let u = active.next_unit.fetch_add(1, Ordering::Relaxed);
            if u >= plan.units || shared.generation.load(Ordering::Acquire) != seen {
                break; // exhausted or withdrawn: wait for newer work
            }
            let unit = plan.unit(u);
            let current = UnitJob::reuse_or_prepare(cached.take(), plan, seen, &unit);
            scan_unit(shared, index, plan, &current, unit.nonce, seen);
            cached = Some(current);
        }
    }
}

/// Hashes one chunk of nonces in batches, re-checking every hit.
fn scan_unit(shared: &Shared, worker: usize, plan: &Plan, unit: &UnitJob, first: u32, seen: u64) {
    let stats = &shared.stats[worker];
    let job = &unit.job;
    let end = first as u64 + (1u64 << work::CHUNK_BITS);
    let mut nonce = first as u64;
    while nonce < end && shared.generation.load(Ordering::Relaxed) == seen {
        shared.backend.scan(job, nonce as u32, BATCH, &mut |vi, n| {
            let verdict = work::recheck(job, vi, n, &plan.work.target);
            deliver(
                shared,
                worker,
                plan,
                unit,
                vi,
                n,
                verdict,
                shared.backend.name(),
            );
        });
        stats
            .hashes
            .fetch_add(BATCH as u64 * job.versions.len() as u64, Ordering::Relaxed);
        nonce += BATCH as u64;
    }
}

/// Acts on a re-checked hit of `worker`: a solution goes out on the channel, a hit the
/// reference contradicts is counted and logged as a hardware error of `device`.
#[allow(clippy::too_many_arguments)]
fn deliver(
    shared: &Shared,
    worker: usize,
    plan: &Plan,
    unit: &UnitJob,
    vi: usize,
    n: u32,
    verdict: Verdict,
    device: &str,
) {
    let stats = &shared.stats[worker];
    let job = &unit.job;
    match verdict {
        Verdict::Meets(hash) => {
            // Work replaced or withdrawn while this batch ran: its solutions are dropped
            // here, not sent. At share targets so low that every hash meets them (regtest)
            // a batch would otherwise queue thousands of solutions for a job the client
            // already voided; at real difficulties this loses at most one batch of work.
            if shared.generation.load(Ordering::Acquire) != unit.key.0 {
                return;
            }
            stats.found.fetch_add(1, Ordering::Relaxed);
            let mut header = unit.header;
            header.version = job.versions[vi].version;
            header.nonce = n;
            let found = Found {
                worker,
                job_id: plan.work.job_id.clone(),
                extranonce2: unit.extranonce2.clone(),
                header,
                hash,
            };
            match shared.solutions.try_send(found) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // A closed receiver means the owner is shutting down; nothing to do.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        Verdict::Above => {}
        Verdict::HardwareError(hash) => {
            stats.hardware_errors.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "hardware error: {device} reported nonce {n:#010x} (version {:#010x}) \
                 but the reference hash is {hash}",
                job.versions.get(vi).map_or(0, |v| v.version)
            );
        }
    }
}
