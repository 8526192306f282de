//! Throughput of the protocol crate's reference sha256d, the baseline every hashing
//! backend is measured against and re-checked with.
//!
//! `cargo bench -p benches --bench reference_hash` (set `BENCH_SECONDS`, default 3).
//! Prints one line per path: the midstate path that backends start from (two compressions
//! per nonce) and the plain 80-byte header hash (three).

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
}
