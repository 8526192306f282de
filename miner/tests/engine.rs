//! The engine: what it finds is real and never duplicated, extranonce2 and version rolling
//! produce the headers a pool would rebuild, and new work withdraws the old within ms.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use miner::engine::{Engine, Extranonce, Found, Work};
use miner::hash::Backend;
use protocol::stratum::work::join_coinbase;
use protocol::{BlockHeader, CompactTarget, Hash256, Target, merkle, sha256d};

fn work(job_id: &str, difficulty: f64, version_mask: u32) -> Work {
    Work {
        job_id: job_id.into(),
        header: BlockHeader {
            version: 0x2000_0000,
            prev_hash: sha256d(job_id.as_bytes()),
            merkle_root: Hash256::ZERO,
            time: 1_795_000_000,
            bits: CompactTarget(0x207fffff),
            nonce: 0,
        },
        target: Target::from_difficulty(difficulty).unwrap(),
        version_mask,
        extranonce: Some(Extranonce {
            coinb1: hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020a01").unwrap(),
            extranonce1: vec![0xde, 0xad, 0xbe, 0xef],
            coinb2: hex::decode("ffffffff0100f2052a010000001976a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac00000000").unwrap(),
            merkle_branch: vec![sha256d(b"tx1"), sha256d(b"tx2")],
            size: 8,
            first: 1000,
            count: 1 << 20,
        }),
    }
}

fn collect(rx: &mpsc::Receiver<Found>, n: usize, timeout: Duration) -> Vec<Found> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(f) => out.push(f),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn solutions_are_real_distinct_and_rebuildable() {
    for backend in Backend::supported() {
        let (tx, rx) = miner::engine::solution_channel();
        let engine = Engine::start(backend, 2, tx).unwrap();
        let w = work("sound", 1.0 / 65536.0, 0x1fffe000);
        engine.set_work(w.clone());
        let found = collect(&rx, 200, Duration::from_secs(60));
        drop(engine);
        assert!(
            found.len() >= 50,
            "{backend}: only {} solutions",
            found.len()
        );
        let en = w.extranonce.as_ref().unwrap();
        let mut seen = HashSet::new();
        for f in &found {
            assert_eq!(f.job_id, "sound");
            // The hash is the header's, and it meets the target.
            assert_eq!(f.header.hash(), f.hash, "{backend}");
            assert!(w.target.is_met_by(&f.hash), "{backend}");
            // Only rolled bits differ from the job's version.
            assert_eq!(f.header.version & !0x1fffe000, 0x2000_0000);
            // The merkle root is the one a pool rebuilds from the extranonce2 it is sent.
            assert_eq!(f.extranonce2.len(), 8);
            let value = u64::from_be_bytes(f.extranonce2.clone().try_into().unwrap());
            assert!((1000..1000 + (1 << 20)).contains(&value));
            let coinbase = join_coinbase(&en.coinb1, &en.extranonce1, &f.extranonce2, &en.coinb2);
            let root = merkle::root_from_branch(&sha256d(&coinbase), &en.merkle_branch);
            assert_eq!(f.header.merkle_root, root);
            assert_eq!(
                (f.header.prev_hash, f.header.time, f.header.bits),
                (w.header.prev_hash, w.header.time, w.header.bits)
            );
            // No header is ever found twice (threads never share work).
            assert!(
                seen.insert(f.header.encode()),
                "{backend}: duplicate header"
            );
        }
    }
}

#[test]
fn new_work_withdraws_the_old_within_milliseconds() {
    for backend in Backend::supported() {
        let (tx, rx) = miner::engine::solution_channel();
        let engine = Engine::start(backend, 2, tx).unwrap();
        engine.set_work(work("old", 1.0 / 65536.0, 0));
        assert!(!collect(&rx, 5, Duration::from_secs(30)).is_empty());
        engine.set_work(work("new", 1.0 / 65536.0, 0));
        let switched = Instant::now();
        // A batch in flight may still report; after 50 ms nothing of the old job may come.
        std::thread::sleep(Duration::from_millis(50));
        while rx.try_recv().is_ok() {}
        let later = collect(&rx, 20, Duration::from_secs(30));
        assert!(
            !later.is_empty(),
            "{backend}: the new work produced nothing"
        );
        assert!(
            later.iter().all(|f| f.job_id == "new"),
            "{backend}: old work after {:?}",
            switched.elapsed()
        );
        // Clearing the work stops hashing.
        engine.clear_work();
        std::thread::sleep(Duration::from_millis(50));
        let before = engine.total_hashes();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            engine.total_hashes(),
            before,
            "{backend}: still hashing after clear_work"
        );
    }
}

#[test]
fn header_only_work_hashes_without_errors() {
    // Work without an extranonce is hashed as given (nonce and version only).
    let (tx, _rx) = miner::engine::solution_channel();
    let engine = Engine::start(Backend::supported()[0], 1, tx).unwrap();
    let mut w = work("a", 1.0, 0);
    w.extranonce = None;
    w.target = Target::ZERO;
    engine.set_work(w.clone());
    std::thread::sleep(Duration::from_millis(100));
    assert!(engine.total_hashes() > 0);
    assert_eq!(engine.hardware_errors(), 0);
}

#[test]
fn a_consumer_that_falls_behind_costs_solutions_not_memory() {
    // A target every hash meets (regtest share difficulties come close): the queue fills,
    // the rest are dropped and counted, and hashing goes on at full speed.
    let (tx, rx) = miner::engine::solution_channel();
    let engine = Engine::start(Backend::supported()[0], 1, tx).unwrap();
    let mut w = work("flood", 1.0, 0);
    w.target = Target::MAX;
    engine.set_work(w.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.dropped_solutions() < 10_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(engine.dropped_solutions() >= 10_000);
    // Withdrawn work sends nothing more, even from the batch in flight.
    engine.clear_work();
    std::thread::sleep(Duration::from_millis(100));
    let queued = rx.try_iter().count();
    assert_eq!(
        queued,
        miner::engine::SOLUTION_QUEUE,
        "the queue holds its bound"
    );
    // Once read, new solutions flow again, and every one is real.
    engine.set_work(w);
    let fresh = collect(&rx, 10, Duration::from_secs(10));
    assert_eq!(fresh.len(), 10);
    for f in &fresh {
        assert_eq!(f.hash, f.header.hash());
    }
}

#[test]
fn a_paused_engine_stops_hashing_and_resumes_where_it_stopped() {
    let (tx, _rx) = miner::engine::solution_channel();
    let engine = Engine::start(Backend::supported()[0], 2, tx).unwrap();
    let mut w = work("a", 1.0, 0);
    w.target = Target::ZERO;
    engine.set_work(w.clone());
    std::thread::sleep(Duration::from_millis(100));
    assert!(engine.total_hashes() > 0);
    assert!(engine.pause());
    assert!(!engine.pause(), "once");
    assert!(engine.is_paused());
    // Threads leave within a batch; then nothing more is hashed, new work included.
    std::thread::sleep(Duration::from_millis(50));
    let stopped = engine.total_hashes();
    engine.set_work(work("b", 1.0, 0));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(engine.total_hashes(), stopped, "paused");
    assert!(engine.resume());
    assert!(!engine.resume(), "once");
    std::thread::sleep(Duration::from_millis(100));
    assert!(engine.total_hashes() > stopped, "hashing again");
    assert_eq!(engine.hardware_errors(), 0);
}
