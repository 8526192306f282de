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
/// Call once at start, before other threads allocate; returns whether the allocator took
/// it (always false where it is not glibc's).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests measure the process's memory: one at a time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        // Many small blocks (below the mmap threshold, so from the heap), touched, then
        // all freed but one at the end that keeps the heap's top from shrinking.
        let mut blocks: Vec<Vec<u8>> = (0..100_000).map(|i| vec![i as u8; 1000]).collect();
        let pin = vec![1u8; 1000];
        let full = rss_kib();
        blocks.clear();
        blocks.shrink_to_fit();
        let freed = rss_kib();
        give_back();
        let trimmed = rss_kib();
        assert!(
            full.saturating_sub(trimmed) > 50 * 1024,
            "full {full} KiB, freed {freed} KiB, trimmed {trimmed} KiB"
        );
        drop(pin);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn large_blocks_go_back_as_soon_as_they_are_freed() {
        let _one = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        assert!(map_large_blocks());
        // Left to itself, glibc maps the first 16 MiB block, raises its thresholds when it is
        // freed, and takes the next ones from the heap and keeps them (about +16 MiB).
        for round in 0..3 {
            let before = rss_kib();
            let big = vec![1u8; 16 << 20];
            let pin = vec![1u8; 1000];
            drop(big);
            let after = rss_kib();
            assert!(
                after < before + 4 * 1024,
                "round {round}: {before} KiB before, {after} KiB after the block was freed"
            );
            drop(pin);
        }
    }
}
