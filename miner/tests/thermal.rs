//! `--max-temp` with a sensor file the test writes: above the limit the CPU threads stop
//! hashing, between the limit and 5 °C below they stay stopped, below that they hash again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use miner::engine::{Engine, Work};
use miner::hash::Backend;
use miner::thermal::ThermalGuard;
use protocol::{BlockHeader, CompactTarget, Hash256, Target, sha256d};

fn set_temperature(hwmon: &Path, celsius: u32) {
    std::fs::write(hwmon.join("temp1_input"), format!("{}\n", celsius * 1000)).unwrap();
}

#[test]
fn a_hot_cpu_stops_hashing_until_it_has_cooled() {
    // A hwmon tree as Linux publishes it: a GPU's first, then the CPU package's (k10temp).
    let root = tempfile::tempdir().unwrap();
    let other = root.path().join("hwmon0");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("name"), "amdgpu\n").unwrap();
    set_temperature(&other, 99);
    let cpu = root.path().join("hwmon1");
    std::fs::create_dir(&cpu).unwrap();
    std::fs::write(cpu.join("name"), "k10temp\n").unwrap();
    set_temperature(&cpu, 60);

    let (tx, _rx) = miner::engine::solution_channel();
    let engine = Engine::start(Backend::supported()[0], 2, tx).unwrap();
    engine.set_work(Work {
        job_id: "hot".into(),
        header: BlockHeader {
            version: 0x2000_0000,
            prev_hash: sha256d(b"hot"),
            merkle_root: Hash256::ZERO,
            time: 1_795_000_000,
            bits: CompactTarget(0x207fffff),
            nonce: 0,
        },
        target: Target::ZERO,
        version_mask: 0,
        extranonce: None,
    });
    let mut guard = ThermalGuard::new(80.0, root.path());
    assert!(guard.reads_cpu());
    assert!(guard.check(&engine).is_empty(), "60 °C is fine");
    assert_eq!(guard.cpu_temperature(), Some(60.0));

    set_temperature(&cpu, 90);
    let changes = guard.check(&engine);
    assert_eq!(changes.len(), 2, "both CPU threads: {changes:?}");
    assert!(changes[0].contains("above --max-temp 80"), "{changes:?}");
    assert!(engine.is_held(0) && engine.is_held(1));
    // Each thread finishes the unit it holds (at most 2^22 nonces), then hashes no more.
    std::thread::sleep(Duration::from_secs(1));
    let stopped = engine.total_hashes();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(engine.total_hashes(), stopped, "held");

    // Below the limit but not 5 °C below: still held.
    set_temperature(&cpu, 78);
    assert!(guard.check(&engine).is_empty());
    assert!(engine.is_held(0));
    set_temperature(&cpu, 74);
    let changes = guard.check(&engine);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].contains("hashing again"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(engine.total_hashes() > stopped, "hashing again");

    // No CPU sensor (most virtual machines): nothing is held, whatever the limit.
    let empty = tempfile::tempdir().unwrap();
    let mut blind = ThermalGuard::new(1.0, empty.path());
    assert!(!blind.reads_cpu());
    assert!(blind.check(&engine).is_empty());
}
