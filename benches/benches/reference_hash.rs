//! Throughput of the protocol crate's reference sha256d, the baseline every hashing
//! backend is measured against and re-checked with.
//!
//! `cargo bench -p benches --bench reference_hash` (set `BENCH_SECONDS`, default 3).
//! Prints one line per path: the midstate path that backends start from (two compressions
//! per nonce) and the plain 80-byte header hash (three). Then what a Stratum V2 standard
//! channel costs the pool per job: one merkle root (a 250-byte coinbase and a 12-hash
//! branch, a mainnet block's shape), and so per 10,000 channels.

use std::hint::black_box;
use std::time::{Duration, Instant};

use protocol::BlockHeader;

/// Block 125552's header: a real one, though any 80 bytes hash at the same speed.
fn header() -> BlockHeader {
    let bytes = hex_literal();
    BlockHeader::decode(&bytes).expect("80 bytes")
}

fn hex_literal() -> [u8; 80] {
    let text = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";
    let mut out = [0u8; 80];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex literal");
    }
    out
}

fn measure(name: &str, seconds: f64, mut step: impl FnMut(u32) -> u8) {
    let deadline = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut nonce = 0u32;
    let mut sink = 0u8;
    while start.elapsed() < deadline {
        for _ in 0..4096 {
            sink ^= step(nonce);
            nonce = nonce.wrapping_add(1);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    black_box(sink);
    println!(
        "{name:<28} {:>8.3} MH/s  ({nonce} hashes in {elapsed:.2} s, 1 thread)",
        nonce as f64 / elapsed / 1e6
    );
}

fn main() {
    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let header = header();
    let midstate = header.midstate();
    let tail = header.tail();
    measure("reference midstate+tail", seconds, |n| {
        midstate.sha256d(black_box(&tail.with_nonce(n))).0[31]
    });
    measure("reference full header", seconds, |n| {
        let mut h = header;
        h.nonce = n;
        black_box(&h).hash().0[31]
    });
    standard_channel_roots(seconds);
}

/// Roots per second for standard channels: each gets its own coinbase (its extranonce) and
/// so its own root, computed by the pool on every new job.
fn standard_channel_roots(seconds: f64) {
    let coinb1 = vec![0x11u8; 110];
    let coinb2 = vec![0x22u8; 128];
    let branch: Vec<protocol::Hash256> = (0..12u8).map(|i| protocol::Hash256([i; 32])).collect();
    let start = Instant::now();
    let mut roots = 0u64;
    let mut sink = 0u8;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..1024 {
            let extranonce1 = (roots as u32).to_le_bytes();
            let root = protocol::stratum::merkle_root(
                &coinb1,
                &extranonce1,
                &[0; 8],
                &coinb2,
                black_box(&branch),
            );
            sink ^= root.0[0];
            roots += 1;
        }
    }
    black_box(sink);
    let per_root = start.elapsed().as_secs_f64() / roots as f64;
    println!(
        "standard-channel merkle root {:>8.3} µs  (250-byte coinbase, 12-hash branch: {:.1} ms per 10,000 channels, 1 thread)",
        per_root * 1e6,
        per_root * 1e4 * 1e3
    );
}
