//! Choosing a backend at run time: a short single-thread micro-benchmark of every backend
//! this CPU supports, on a fixed real header. No build-time choice, no `target-cpu=native`.

use std::time::{Duration, Instant};

use protocol::BlockHeader;

use super::{Backend, Prepared};

/// Block 125552's header: real, and any header hashes at the same speed.
const HEADER_HEX: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

/// Block 125552's header.
pub fn sample_job_header() -> BlockHeader {
    let bytes = hex::decode(HEADER_HEX).unwrap_or_default();
    BlockHeader::decode(&bytes).unwrap_or(BlockHeader {
        version: 1,
        prev_hash: protocol::Hash256::ZERO,
        merkle_root: protocol::Hash256::ZERO,
        time: 0,
        bits: protocol::CompactTarget(0x1d00ffff),
        nonce: 0,
    })
}

/// A one-version job over block 125552's header at difficulty >= 1.
pub fn sample_job() -> Prepared {
    let header = sample_job_header();
    Prepared::new(&[(header.version, header.midstate().0)], header.tail(), 0)
}

/// Hashes per second of `backend` on one thread, measured for about `time`.
pub fn measure(backend: Backend, time: Duration) -> f64 {
    let job = sample_job();
    let start = Instant::now();
    let mut nonce = 0u32;
    let mut hashes = 0u64;
    let mut sink = 0u32;
    while start.elapsed() < time {
        backend.scan(&job, nonce, 4096, &mut |_, n| sink ^= n);
        nonce = nonce.wrapping_add(4096);
        hashes += 4096;
    }
    std::hint::black_box(sink);
    hashes as f64 / start.elapsed().as_secs_f64()
}

/// Measures every supported backend for `time` each and returns the fastest, with all
/// the rates measured.
pub fn fastest(time: Duration) -> (Backend, Vec<(Backend, f64)>) {
    let rates: Vec<(Backend, f64)> = Backend::supported()
        .into_iter()
        .map(|b| (b, measure(b, time)))
        .collect();
    let best = rates
        .iter()
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Backend::Scalar, |(b, _)| b);
    (best, rates)
}
