//! How long a share waits on the live figures while a snapshot of every worker is made
//! (the live view across processes every `database.live_interval_secs`, `/metrics`, the
//! API): one thread records shares as fast as it can while the main thread takes
//! snapshots of `BENCH_WORKERS` workers (default 19,000, one session each, each with a
//! share in the window); prints the snapshot's time and the longest a share waited, then
//! what combining that snapshot costs for a pool alone and in general.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pool::observe::live::{Live, combine, combine_with};
use protocol::Difficulty;

const T0: u64 = 1_800_000_000;
const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

fn main() {
    let workers: u32 = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(19_000);
    let live = Arc::new(Live::new(T0));
    let d = Difficulty::new(1.0).expect("a difficulty");
    for i in 0..workers {
        let name = format!("rig{i}");
        live.connected(ADDRESS, &name, i.to_be_bytes(), "cpuminer/2.5.1", T0);
        live.share(ADDRESS, &name, Some(i.to_be_bytes()), d, d, T0 + 10);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let (live, stop) = (live.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut longest, mut shares) = (Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                live.share(ADDRESS, "rig5", Some(5u32.to_be_bytes()), d, d, T0 + 15);
                longest = longest.max(started.elapsed());
                shares += 1;
            }
            (longest, shares)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let snapshot = live.snapshot(T0 + 20);
        times.push(started.elapsed());
        assert_eq!(snapshot.workers.len(), workers as usize);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (longest, shares) = recorder.join().expect("the recording thread");
    // What an API page or `/metrics` scrape does with it on a pool that runs alone, and
    // the general combine that another process's snapshot takes.
    let snapshot = live.snapshot(T0 + 20);
    let (mut alone, mut general) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let copy = snapshot.clone();
        let started = Instant::now();
        let combined = combine_with(copy, &[]);
        alone.push(started.elapsed());
        assert_eq!(combined.workers.len(), workers as usize);
        let copy = snapshot.clone();
        let started = Instant::now();
        let combined = combine([copy]);
        general.push(started.elapsed());
        assert_eq!(combined.workers.len(), workers as usize);
    }
    alone.sort();
    general.sort();
    times.sort();
    println!(
        "live snapshot of {workers} workers: median {:.2} ms, slowest {:.2} ms; longest wait of a share meanwhile {:.2} ms ({shares} shares recorded)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        longest.as_secs_f64() * 1e3,
    );
    println!(
        "combined with no other process: median {:.3} ms (the general combine of one snapshot: {:.2} ms)",
        alone[alone.len() / 2].as_secs_f64() * 1e3,
        general[general.len() / 2].as_secs_f64() * 1e3,
    );
}
