//! Solo mining end to end: the `miner` binary against a real regtest node pair finds
//! blocks the node accepts, paying `--coinbase-addr`, and stops cleanly on Ctrl-C.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::consensus::deserialize;
use serde_json::json;
use testkit::RegtestPair;

#[test]
fn solo_mining_finds_blocks_paying_the_coinbase_address() {
    let pair = RegtestPair::start().unwrap();
    let node = pair.node(0);
    let start_height = node.height().unwrap();
    let payout = pair.node(1).new_address().unwrap();
    let (user, pass) = node.rpc_credentials();
    let url = format!("http://{user}:{pass}@127.0.0.1:{}", node.rpc_port());
    let mut miner = Command::new(env!("CARGO_BIN_EXE_miner"))
        .args([
            "--solo",
            "-o",
            &url,
            "--coinbase-addr",
            &payout,
            "-t",
            "1",
            "--print-interval",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Blocks come in milliseconds on regtest; wait for five.
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.height().unwrap() < start_height + 5 {
        if Instant::now() > deadline {
            let _ = miner.kill();
            let out = miner.wait_with_output().unwrap();
            panic!(
                "no blocks\nminer stdout:\n{}\nminer stderr:\n{}\nnode:{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                node.log_tail()
            );
        }
        assert!(
            miner.try_wait().unwrap().is_none(),
            "the miner exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Ctrl-C: a clean stop with a summary.
    // SAFETY-free: kill(1) with SIGINT through the shell utility.
    let status = Command::new("kill")
        .args(["-INT", &miner.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = miner.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("summary:"), "{stdout}");
    // The summary counts the blocks the node took and the candidates sent, as the log did.
    let (accepted, candidates) = summary_blocks(&stdout);
    let logged = stderr.matches("BLOCK FOUND").count() as u64;
    assert_eq!(accepted, logged, "{stdout}");
    assert!(accepted >= 1 && candidates >= accepted, "{stdout}");
    assert!(stderr.contains("BLOCK FOUND"), "{stderr}");

    // Every block the miner made pays the address (node 1 says it is its own).
    pair.wait_synced().unwrap();
    let script = protocol::address::parse(&payout, protocol::address::Network::Regtest)
        .unwrap()
        .script_pubkey;
    let tip = node.height().unwrap();
    let mut ours = 0;
    for height in start_height + 1..=tip {
        let hash = node.call("getblockhash", json!([height])).unwrap();
        let raw = node.call("getblock", json!([hash, 0])).unwrap();
        let block: bitcoin::Block =
            deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
        let coinbase = &block.txdata[0];
        if coinbase.output[0].script_pubkey.as_bytes() == script.as_slice() {
            ours += 1;
            assert!(block.check_merkle_root());
            // The height as Core writes it (OP_N below 17, which rust-bitcoin's
            // bip34_block_height does not read).
            let sig = coinbase.input[0].script_sig.as_bytes();
            assert!(
                sig.starts_with(&protocol::coinbase::bip34_height(height)),
                "height {height}"
            );
        }
    }
    assert!(ours >= 5, "{ours} of the blocks pay the miner's address");
}

#[test]
fn solo_settings_errors_are_one_clear_line() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_miner"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["--solo", "-o", "http://u:p@127.0.0.1:1"]).contains("--coinbase-addr"));
    assert!(
        run(&[
            "--solo",
            "-o",
            "http://u:p@127.0.0.1:1",
            "--coinbase-addr",
            "notanaddress"
        ])
        .contains("not a valid address")
    );
    assert!(run(&["--solo", "-o", "127.0.0.1:1", "--coinbase-addr", "x"]).contains("bad node URL"));
    assert!(run(&[]).contains("no pool"));
    assert!(run(&["-o", "stratum+tcp://127.0.0.1:1"]).contains("-u USER"));
    assert!(run(&["-o", "stratum+tcp://nope", "-u", "x"]).contains("bad pool URL"));
}

/// `blocks N (candidates M)` from the summary line.
fn summary_blocks(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary line");
    let rest = line.split("blocks ").nth(1).expect("blocks in the summary");
    let number = |s: &str| -> u64 {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let candidates = rest.split("candidates ").nth(1).expect("candidates");
    (number(rest), number(candidates))
}
