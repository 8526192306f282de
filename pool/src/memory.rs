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

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_memory_goes_back_to_the_system() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
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
}
