//! Gives memory the pool no longer uses back to the system.
//!
//! glibc's malloc keeps what is freed in its arenas for the next allocation and returns
//! only the top of the main heap; memory freed in the middle of a heap, or in the arenas
//! of the runtime's worker threads, stays resident. After an overload (a thousand miners
//! with shares waiting for the store, each share a few hundred bytes in flight) the pool
//! kept about 214 MiB for good. `malloc_trim(0)` hands the free pages of every arena back
//! (`madvise`), and [`run`] calls it every [`EVERY`] on a blocking thread: with little
//! free memory it takes microseconds, after a burst a few milliseconds.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How often freed memory is given back.
pub const EVERY: Duration = Duration::from_secs(10);

/// Returns the allocator's free pages to the system; whether any were returned (always
/// false where the allocator is not glibc's).
pub fn give_back() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims the allocator's own free lists, under
        // the arenas' locks; it is safe to call from any thread at any time.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Blocks this large or larger get a mapping of their own, unmapped when freed.
pub const MAP_FROM: usize = 128 * 1024;

/// Keeps large blocks out of the heap: every block of [`MAP_FROM`] bytes or more is mapped
/// on its own and goes back to the system when freed.
///
/// glibc starts with that threshold but raises it to the size of each mapped block that is
/// freed (up to 32 MiB). The live view writes every worker as one JSON text of a few MiB
/// every few seconds; after the first, the next ones came from the heap among the
/// connections' small blocks, and with 19,000 idle connections the pool held 5.7-6.0 KiB
/// each instead of 4.8 (docs/benchmarks.md). Setting the threshold turns the raising off.
/// Called once at start; returns whether the allocator took it (always false where it is
/// not glibc's).
pub fn map_large_blocks() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets the allocator's parameters, under its own lock.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MAP_FROM as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives freed memory back every [`EVERY`] until cancelled.
pub async fn run(cancel: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let started = Instant::now();
        let returned = tokio::task::spawn_blocking(give_back)
            .await
            .unwrap_or(false);
        if returned {
            debug!(
                took_us = started.elapsed().as_micros() as u64,
                "freed memory given back"
            );
        }
    }
}
