//! Choosing a backend at run time: a short single-thread micro-benchmark of every backend
//! this CPU supports, on a fixed real header. No build-time choice, no `target-cpu=native`.
//!
//! A busy machine makes such a measurement noisy (a start-up once picked sha-ni over
//! avx512 and mined at half the rate), so [`choose`] measures in several interleaved
//! rounds and keeps each backend's best round (other work only ever slows a round down),
//! and it starts from the usual ranking ([`Backend::ALL`]): a backend ranked lower is
//! chosen only when it measures clearly faster ([`CLEAR_MARGIN`]).

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

/// How much faster than the pick so far a backend ranked below it must measure to be
/// chosen instead.
pub const CLEAR_MARGIN: f64 = 1.10;

/// The backend chosen, every backend's best rate (H/s on one thread), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The backend to hash with.
    pub backend: Backend,
    /// Each supported backend's best round, in ranking order.
    pub rates: Vec<(Backend, f64)>,
    /// One line for the log, the status and the API.
    pub reason: String,
}

/// Measures every supported backend `rounds` times for `round` each, interleaved, and
/// chooses (see the module's text).
pub fn choose(round: Duration, rounds: usize) -> Choice {
    let supported = Backend::supported();
    let mut best = vec![0.0f64; supported.len()];
    for _ in 0..rounds.max(1) {
        for (i, b) in supported.iter().enumerate() {
            best[i] = best[i].max(measure(*b, round));
        }
    }
    let rates: Vec<(Backend, f64)> = supported.iter().copied().zip(best).collect();
    choose_from(&rates)
}

/// The choice among measured `rates` (in ranking order).
pub fn choose_from(rates: &[(Backend, f64)]) -> Choice {
    let Some(&(first, _)) = rates.first() else {
        return Choice {
            backend: Backend::Scalar,
            rates: Vec::new(),
            reason: "scalar: nothing else is supported".into(),
        };
    };
    let mut pick = 0;
    for i in 1..rates.len() {
        if rates[i].1 > rates[pick].1 * CLEAR_MARGIN {
            pick = i;
        }
    }
    let (backend, rate) = rates[pick];
    let list = rates
        .iter()
        .map(|(b, r)| format!("{b} {:.1}", r / 1e6))
        .collect::<Vec<_>>()
        .join(", ");
    let reason = if pick == 0 {
        format!(
            "{backend}: first of the usual ranking, not clearly beaten here (MH/s on one thread: {list})"
        )
    } else {
        let over = rates[0].1;
        format!(
            "{backend}: {:.0}% faster than {first} here (MH/s on one thread: {list})",
            (rate / over.max(1.0) - 1.0) * 100.0
        )
    };
    Choice {
        backend,
        rates: rates.to_vec(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranking_wins_unless_clearly_beaten() {
        let mhs = |b, r: f64| (b, r * 1e6);
        // Noise: sha-ni 5% ahead of avx512 is not enough.
        let c = choose_from(&[
            mhs(Backend::Avx512, 27.0),
            mhs(Backend::ShaNi, 28.3),
            mhs(Backend::Avx2, 12.0),
            mhs(Backend::Scalar, 3.0),
        ]);
        assert_eq!(c.backend, Backend::Avx512);
        assert!(
            c.reason.starts_with("avx512: first of the usual ranking"),
            "{}",
            c.reason
        );
        assert!(c.reason.contains("sha-ni 28.3"), "{}", c.reason);
        // A clear margin is: sha-ni twice as fast (a CPU whose AVX-512 is slow).
        let c = choose_from(&[mhs(Backend::Avx512, 10.0), mhs(Backend::ShaNi, 20.0)]);
        assert_eq!(c.backend, Backend::ShaNi);
        assert!(
            c.reason.starts_with("sha-ni: 100% faster than avx512"),
            "{}",
            c.reason
        );
        // Each step down must beat the pick so far, not only the first.
        let c = choose_from(&[
            mhs(Backend::Avx512, 10.0),
            mhs(Backend::ShaNi, 12.0),
            mhs(Backend::Avx2, 12.5),
        ]);
        assert_eq!(c.backend, Backend::ShaNi);
        assert_eq!(choose_from(&[]).backend, Backend::Scalar);
    }

    #[test]
    fn a_measured_choice_names_every_supported_backend() {
        let c = choose(Duration::from_millis(5), 2);
        assert_eq!(c.rates.len(), Backend::supported().len());
        assert!(c.rates.iter().all(|(_, r)| *r > 0.0));
        assert!(c.reason.starts_with(c.backend.name()));
    }
}
