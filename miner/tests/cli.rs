//! `miner bench` as a user runs it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::{Command, Output};

/// Asserts that the run exited 0, showing its stderr if not.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Stratum URL where nothing listens (the miner keeps trying to reconnect).
fn closed_pool_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("stratum+tcp://{}", closed.local_addr().unwrap())
}

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

/// `--cpu-affinity` and `--cpu-priority` as the kernel sees them: every hashing thread of
/// a running `miner bench` is pinned to the CPU asked for and runs at nice 19 (idle).
#[cfg(target_os = "linux")]
#[test]
fn hashing_threads_run_where_and_as_eagerly_as_asked() {
    // The last CPU this test may use (a container may allow only some).
    let cpu = *miner::engine::placement::allowed_cpus()
        .unwrap()
        .last()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["bench", "--seconds", "4", "--interval", "1", "-t", "2"])
        .args(["--cpu-affinity", &cpu.to_string(), "--cpu-priority", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The threads' (name, nice, CPUs allowed), once both hashing threads run.
    let hashing = loop {
        let mut found = Vec::new();
        for task in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            let path = task.path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !name.starts_with("hash-") {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // After the name in parentheses: state is field 3, nice field 19.
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            let nice: i32 = after
                .split(' ')
                .nth(16)
                .and_then(|n| n.parse().ok())
                .unwrap_or(i32::MIN);
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap_or("")
                .trim()
                .to_string();
            found.push((name.trim().to_string(), nice, allowed));
        }
        if found.len() == 2 && found.iter().all(|(_, nice, _)| *nice == 19) {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hashing threads not placed: {found:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    for (name, nice, allowed) in &hashing {
        assert_eq!(*nice, 19, "{name}");
        assert_eq!(*allowed, cpu.to_string(), "{name}");
    }
    assert!(child.wait().unwrap().success());

    // A bad value is refused before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["bench", "--seconds", "1", "--cpu-priority", "9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cpu-priority 9"));
}

/// `--time-limit`: the miner stops by itself, prints its summary and exits 0 (here with
/// no pool to reach, so it spends the time reconnecting); SIGTERM stops it the same way.
#[test]
fn the_miner_stops_at_its_time_limit_and_on_sigterm() {
    let url = closed_pool_url();
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["-o", &url, "-u", "addr.rig", "-t", "1", "--time-limit", "2"])
        .output()
        .unwrap();
    let took = started.elapsed();
    succeeded(&out);
    assert!(
        took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(15),
        "{took:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("summary: "));
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit reached"));

    #[cfg(unix)]
    {
        let child = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(["-o", &url, "-u", "addr.rig", "-t", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Time to start (the start-up micro-benchmark, then the signal handlers).
        std::thread::sleep(std::time::Duration::from_secs(3));
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("summary: "));
    }
}

/// `--log-file`: the log goes to the file too (plain text, appended), stderr keeps it.
#[test]
fn the_log_goes_to_a_file_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("miner.log");
    std::fs::write(&log, "an earlier line\n").unwrap();
    let url = closed_pool_url();
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args(["-o", &url, "-u", "addr.rig", "-t", "1", "--time-limit", "1"])
        .arg("--log-file")
        .arg(&log)
        .output()
        .unwrap();
    succeeded(&out);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("an earlier line\n"), "appended: {text}");
    assert!(text.contains("backend "), "{text}");
    assert!(text.contains("time limit reached"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes in a file");
    assert!(String::from_utf8_lossy(&out.stderr).contains("time limit reached"));

    // A file that cannot be opened is a clear error before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "-o",
            &url,
            "-u",
            "addr.rig",
            "--log-file",
            "/nonexistent/dir/miner.log",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-file /nonexistent/dir/miner.log"));
}
