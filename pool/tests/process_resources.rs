//! What the pool changes for its whole process, each tested in a process of its own (this
//! test binary) so that no other test's memory or files disturb the figures: freed memory
//! given back (`memory::give_back`), large blocks unmapped as soon as they are freed
//! (`memory::map_large_blocks`), and the open-files limit raised to the hard one
//! (`net::raise_open_files_limit`). One test at a time: they read and change the process.

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::sync::Mutex;

use pool::memory::{give_back, map_large_blocks};
use pool::net::{OpenFiles, open_files_limit, raise_open_files_limit};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's resident memory, KiB.
fn rss() -> u64 {
    common::rss_kib(std::process::id())
}

#[test]
fn freed_memory_goes_back_to_the_system() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Many small blocks (below the mmap threshold, so from the heap), touched, then all
    // freed but one at the end that keeps the heap's top from shrinking.
    let mut blocks: Vec<Vec<u8>> = (0..100_000).map(|i| vec![i as u8; 1000]).collect();
    let pin = vec![1u8; 1000];
    let full = rss();
    blocks.clear();
    blocks.shrink_to_fit();
    let freed = rss();
    give_back();
    let trimmed = rss();
    assert!(
        full.saturating_sub(trimmed) > 50 * 1024,
        "full {full} KiB, freed {freed} KiB, trimmed {trimmed} KiB"
    );
    drop(pin);
}

#[test]
fn large_blocks_go_back_as_soon_as_they_are_freed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(map_large_blocks());
    // Left to itself, glibc maps the first 16 MiB block, raises its thresholds when it is
    // freed, and takes the next ones from the heap and keeps them (about +16 MiB).
    for round in 0..3 {
        let before = rss();
        let big = vec![1u8; 16 << 20];
        let pin = vec![1u8; 1000];
        drop(big);
        let after = rss();
        assert!(
            after < before + 4 * 1024,
            "round {round}: {before} KiB before, {after} KiB after the block was freed"
        );
        drop(pin);
    }
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max;
    // Started as from a shell: a soft limit below the hard one.
    limit.rlim_cur = limit.rlim_cur.min(hard.saturating_sub(1)).min(1024);
    // SAFETY: setrlimit only reads the struct passed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let was = limit.rlim_cur;
    assert_eq!(open_files_limit(), Some(was));
    let raised = raise_open_files_limit().unwrap();
    assert_eq!(raised, OpenFiles { was, now: hard });
    assert_eq!(open_files_limit(), Some(hard));
    // Raised already: nothing changes.
    assert_eq!(
        raise_open_files_limit().unwrap(),
        OpenFiles {
            was: hard,
            now: hard
        }
    );
}
