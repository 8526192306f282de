//! `miner bench` as a user runs it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::Command;

#[test]
fn bench_json_reports_a_rate_and_no_hardware_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "bench",
            "--seconds",
            "1",
            "--interval",
            "0.5",
            "-t",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(report["hashes"].as_u64().unwrap() > 0);
    assert!(report["mhs"].as_f64().unwrap() > 0.0);
    assert_eq!(report["hardware_errors"], 0);
    assert_eq!(report["threads"], 1);
    let name = report["backend"].as_str().unwrap();
    assert!(["avx512", "avx2", "sha-ni", "scalar"].contains(&name));
}

#[test]
fn every_supported_backend_can_be_forced() {
    for backend in miner::hash::Backend::supported() {
        let out = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args([
                "bench",
                "--seconds",
                "0.3",
                "-t",
                "1",
                "--backend",
                backend.name(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("self-check passed"), "{text}");
        assert!(
            text.contains(&format!("summary: {}", backend.name())),
            "{text}"
        );
    }
}

#[test]
fn a_bad_backend_name_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["bench", "--backend", "avx9000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown backend") && err.contains("avx512"),
        "{err}"
    );
}

#[test]
fn devices_are_listed_and_benched() {
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .arg("--list-devices")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let first = table
        .lines()
        .nth(1)
        .expect("a device (scripts/setup installs PoCL)");
    assert!(first.trim_start().starts_with("0 "), "{table}");

    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "bench",
            "--backend",
            "opencl",
            "--gpu-devices",
            "0",
            "--seconds",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(report["backend"], "opencl");
    assert_eq!(report["threads"], 0);
    assert!(report["hashes"].as_u64().unwrap() > 0);
    assert_eq!(report["hardware_errors"], 0);
    assert!(
        report["workers"][0]
            .as_str()
            .unwrap()
            .starts_with("gpu 0: ")
    );

    // A device that does not exist is one clear line.
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "bench",
            "--backend",
            "opencl",
            "--gpu-devices",
            "99",
            "--seconds",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OpenCL device 99 does not exist"), "{err}");
}
