//! The OpenCL kernel on a real OpenCL device (PoCL's CPU device in CI): its candidates
//! equal the CPU reference's over thousands of random headers and targets, difficulty
//! below 1, version-rolled jobs, and nonces at the ends of a launch and of the nonce space.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use miner::engine::{Engine, Work};
use miner::hash::{Backend, MAX_VERSIONS, Prepared};
use miner::opencl::{self, GpuSearcher};
use protocol::{BlockHeader, CompactTarget, Hash256, Target};

/// xorshift64: reproducible random headers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 16) as u32
    }
    fn bytes(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for chunk in b.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        b
    }
}

fn job(header: &BlockHeader, versions: usize, target_top: u32) -> Prepared {
    let list: Vec<(u32, [u32; 8])> = (0..versions as u32)
        .map(|i| {
            let mut h = *header;
            h.version ^= i << 13; // rolled inside the BIP 320 mask
            (h.version, h.midstate().0)
        })
        .collect();
    Prepared::new(&list, header.tail(), target_top)
}

fn cpu_hits(job: &Prepared, start: u32, count: u32) -> Vec<(usize, u32)> {
    let mut hits = Vec::new();
    Backend::Scalar.scan(job, start, count, &mut |vi, n| hits.push((vi, n)));
    hits.sort_unstable();
    hits
}

fn gpu_hits(gpu: &mut GpuSearcher, job: &Prepared, start: u32, count: u32) -> Vec<(usize, u32)> {
    let mut hits = Vec::new();
    for vi in 0..job.versions.len() {
        let nonces = gpu
            .search(job, vi, start, count)
            .unwrap()
            .expect("the candidate buffer holds this launch");
        hits.extend(nonces.into_iter().map(|n| (vi, n)));
    }
    hits.sort_unstable();
    hits
}

#[test]
fn the_device_list_names_a_device() {
    let list = opencl::devices().expect("an OpenCL platform (scripts/setup installs PoCL)");
    assert!(!list.is_empty());
    let (first, _, _) = &list[0];
    assert_eq!(first.index, 0);
    assert!(!first.name.is_empty() && !first.platform.is_empty());
    assert!(first.compute_units > 0);
    assert!(matches!(
        GpuSearcher::open(list.len()),
        Err(opencl::GpuError::NoSuchDevice(_))
    ));
}

#[test]
fn kernel_candidates_equal_the_cpu_reference() {
    let mut gpu = GpuSearcher::open(0).expect("an OpenCL device (scripts/setup installs PoCL)");
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut total_hits = 0;
    for case in 0..2000 {
        let header = BlockHeader {
            version: rng.u32(),
            prev_hash: Hash256(rng.bytes()),
            merkle_root: Hash256(rng.bytes()),
            time: rng.u32(),
            bits: CompactTarget(rng.u32()),
            nonce: 0,
        };
        let versions = 1 + case % MAX_VERSIONS;
        // Difficulty >= 1 (top word 0), a little below 1, and far below 1.
        let target_top = match case % 4 {
            0 => 0,
            1 => rng.u32() >> 16,
            2 => rng.u32() >> 8,
            _ => rng.u32() >> 4,
        };
        // Launch sizes that are not multiples of anything, ranges ending at 2^32 - 1 and
        // wrapping over it.
        let count = 1 + rng.u32() % 3000;
        let start = match case % 5 {
            0 => 0,
            1 => u32::MAX - count + 1,
            2 => u32::MAX - count / 2,
            _ => rng.u32(),
        };
        let job = job(&header, versions, target_top);
        let want = cpu_hits(&job, start, count);
        let got = gpu_hits(&mut gpu, &job, start, count);
        assert_eq!(
            got, want,
            "case {case}: start {start:#x} count {count} top {target_top:#x}"
        );
        total_hits += want.len();
    }
    assert!(
        total_hits > 1000,
        "the cases exercise the filter: {total_hits} hits"
    );
}

#[test]
fn an_overfull_launch_is_reported_not_truncated() {
    let mut gpu = GpuSearcher::open(0).unwrap();
    let header = BlockHeader {
        version: 0x2000_0000,
        prev_hash: Hash256::ZERO,
        merkle_root: Hash256::ZERO,
        time: 1,
        bits: CompactTarget(0x207f_ffff),
        nonce: 0,
    };
    // Every hash passes: more candidates than the buffer holds.
    let job = job(&header, 1, u32::MAX);
    assert_eq!(gpu.search(&job, 0, 0, opencl::CAPACITY + 5).unwrap(), None);
    // The launch limit keeps the expected candidates within half the buffer.
    assert_eq!(
        GpuSearcher::max_launch(u32::MAX),
        1024.max(opencl::CAPACITY / 2)
    );
    assert_eq!(GpuSearcher::max_launch(0), 1 << 30);
}

fn engine_work(job_id: &str, difficulty: f64) -> Work {
    Work {
        job_id: job_id.into(),
        header: BlockHeader {
            version: 0x2000_0000,
            prev_hash: protocol::sha256d(job_id.as_bytes()),
            merkle_root: protocol::sha256d(b"root"),
            time: 1_795_000_000,
            bits: CompactTarget(0x1d00_ffff),
            nonce: 0,
        },
        target: Target::from_difficulty(difficulty).unwrap(),
        version_mask: 0x1fffe000,
        extranonce: None,
    }
}

#[test]
fn the_engine_hashes_on_the_device_alongside_cpu_threads() {
    let (tx, rx) = miner::engine::solution_channel();
    let gpu = GpuSearcher::open(0).unwrap();
    let engine = Engine::start_with(Backend::supported()[0], 1, vec![gpu], tx).unwrap();
    assert_eq!(engine.worker_names().len(), 2);
    assert!(engine.worker_names()[1].starts_with("gpu 0: "));
    let w = engine_work("gpu", 1.0 / 4096.0);
    engine.set_work(w.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut found = Vec::new();
    // PoCL shares the CPU with the hashing thread: wait until the device found some too.
    let device_busy = || engine.stats()[1].found.load(Ordering::Relaxed) > 0;
    while (found.len() < 40 || !device_busy()) && Instant::now() < deadline {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(200)) {
            found.push(f);
        }
    }
    let device = &engine.stats()[1];
    let device_hashes = device.hashes.load(Ordering::Relaxed);
    let device_found = device.found.load(Ordering::Relaxed);
    let device_errors = device.hardware_errors.load(Ordering::Relaxed);
    // The JSON API has a row for the device.
    let engine = std::sync::Arc::new(engine);
    let api = api_state(&engine);
    // The pool's verdicts are counted for the worker that found the share.
    let from_device = found.iter().filter(|f| f.worker == 1).count();
    assert!(from_device > 0, "solutions carry the device's worker index");
    engine.record_verdict(1, true);
    engine.record_verdict(1, true);
    engine.record_verdict(1, false);
    let summary = miner::api::summary_json(&api, Instant::now());
    let rows = summary["gpus"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0]["name"].as_str().unwrap().starts_with("gpu 0: "));
    assert!(rows[0]["found"].as_u64().unwrap() >= device_found);
    assert_eq!(rows[0]["accepted"], 2);
    assert_eq!(rows[0]["rejected"], 1);
    assert_eq!(rows[0]["hardware_errors"], 0);
    let lines = miner::run::device_lines(&engine, &api.stats.snapshot(Instant::now()));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("accepted 2 rejected 1 | HW errors 0"),
        "{}",
        lines[0]
    );
    // PoCL's CPU device has no PCI address, so no sensors: null, not made up.
    for key in ["temperature_c", "fan_rpm", "fan_percent", "power_w"] {
        assert!(rows[0][key].is_null(), "{key}: {}", rows[0][key]);
    }
    drop(api);
    drop(engine);
    assert!(found.len() >= 40, "only {} solutions", found.len());
    let mut seen = HashSet::new();
    for f in &found {
        assert_eq!(f.header.hash(), f.hash);
        assert!(w.target.is_met_by(&f.hash));
        assert_eq!(f.header.version & !0x1fffe000, 0x2000_0000);
        assert!(seen.insert(f.header.encode()), "a header found twice");
    }
    assert!(
        device_hashes > 0 && device_found > 0,
        "the device did part of the work"
    );
    assert_eq!(device_errors, 0);
}

#[test]
fn device_only_engines_need_a_device() {
    let (tx, _rx) = miner::engine::solution_channel();
    assert!(matches!(
        Engine::start_with(Backend::Scalar, 0, Vec::new(), tx),
        Err(miner::engine::EngineError::NoWorkers)
    ));
}

#[test]
fn overlapping_launches_give_the_same_candidates() {
    let mut gpu = GpuSearcher::open(0).unwrap();
    let header = BlockHeader {
        version: 0x2000_0000,
        prev_hash: protocol::sha256d(b"overlap"),
        merkle_root: protocol::sha256d(b"root"),
        time: 1_795_000_000,
        bits: CompactTarget(0x1d00_ffff),
        nonce: 0,
    };
    let job = job(&header, 2, 0x00ff_ffff);
    let a = gpu.submit(&job, 0, 7, 5000).unwrap();
    let b = gpu.submit(&job, 1, 5007, 5000).unwrap();
    assert!(!gpu.has_free_slot());
    assert!(
        gpu.submit(&job, 0, 0, 1).is_err(),
        "a third launch waits for a free slot"
    );
    let got_a = gpu.finish(a).unwrap().unwrap();
    let got_b = gpu.finish(b).unwrap().unwrap();
    assert!(gpu.has_free_slot());
    let want = |vi: usize, start: u32| -> Vec<u32> {
        cpu_hits(&job, start, 5000)
            .into_iter()
            .filter(|(v, _)| *v == vi)
            .map(|(_, n)| n)
            .collect()
    };
    assert_eq!(got_a, want(0, 7));
    assert_eq!(got_b, want(1, 5007));
    assert!(!got_a.is_empty() && !got_b.is_empty());
}

#[test]
fn a_lost_device_is_reported_and_the_cpu_threads_go_on() {
    let (tx, _rx) = miner::engine::solution_channel();
    let mut gpu = GpuSearcher::open(0).unwrap();
    gpu.fail_after(3);
    let engine =
        std::sync::Arc::new(Engine::start_with(Backend::supported()[0], 1, vec![gpu], tx).unwrap());
    engine.set_work(engine_work("lost", 1.0));
    let deadline = Instant::now() + Duration::from_secs(60);
    while engine.stats()[1].lost().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let why = engine.stats()[1]
        .lost()
        .expect("the device is reported lost");
    assert!(why.contains("stopped answering"), "{why}");
    let hashes = |w: usize| engine.stats()[w].hashes.load(Ordering::Relaxed);
    let (cpu, device) = (hashes(0), hashes(1));
    std::thread::sleep(Duration::from_millis(300));
    assert!(hashes(0) > cpu, "the CPU thread goes on hashing");
    assert_eq!(hashes(1), device, "the lost device hashes no more");
    // The API and the console say so.
    let api = api_state(&engine);
    let summary = miner::api::summary_json(&api, Instant::now());
    assert_eq!(summary["gpus"][0]["lost"].as_str(), Some(why.as_str()));
    let lines = miner::run::device_lines(&engine, &api.stats.snapshot(Instant::now()));
    assert!(lines[0].contains("LOST: "), "{}", lines[0]);
}

/// The miner's JSON API over `engine`, with fresh statistics.
fn api_state(engine: &std::sync::Arc<Engine>) -> miner::api::ApiState {
    miner::api::ApiState {
        stats: std::sync::Arc::new(miner::stats::Stats::new(Instant::now(), "test")),
        token: None,
        worker: "w".into(),
        threads: 1,
        engine: Some(engine.clone()),
        backend_reason: None,
    }
}
