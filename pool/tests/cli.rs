//! The `pool` binary: a config typo or a bad value is one clear line and exit code 2; a
//! good file passes `--check-config`; flags and environment variables override the file.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

fn pool(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pool"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
mode = "pplns"
network = "regtest"
pool_address = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"

[[nodes]]
url = "http://127.0.0.1:18443/"
user = "rpc"
password = "secret"

[stratum]
bind = "127.0.0.1:3333"

[database]
url = "postgres://pool:secret@127.0.0.1:5432/pool"
"#;

#[test]
fn config_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("pool.toml");
    std::fs::write(&good, GOOD).unwrap();
    let (code, out, _) = pool(&["--config", good.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("valid"));

    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, GOOD.replace("[stratum]\nbind", "[stratum]\nbnd")).unwrap();
    let (code, _, err) = pool(&["--config", typo.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `bnd`"), "{err}");

    // A flag overrides the file, and is checked the same way.
    let (code, _, err) = pool(
        &[
            "--config",
            good.to_str().unwrap(),
            "--pool-address",
            "nonsense",
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("pool_address"), "{err}");
    let (code, _, err) = pool(
        &["--config", good.to_str().unwrap(), "--check-config"],
        &[("POOL_MODE", "sollo")],
    );
    assert_eq!(code, 2);
    assert!(err.contains("sollo"), "{err}");

    let (code, _, err) = pool(&["--check-config"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no node configured"), "{err}");
}

#[test]
fn the_documented_example_is_valid() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/pool.md")).unwrap();
    let start = doc.find("```toml\n# pool.toml").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pool.toml");
    std::fs::write(&file, &doc[start..end]).unwrap();
    let (code, _, err) = pool(&["--config", file.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(code, 0, "{err}");
}
