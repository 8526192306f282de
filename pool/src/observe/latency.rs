//! Latency recorders: an HDR histogram per measured step (template fetch, submitblock,
//! share acknowledgement), giving in-process percentiles for the API and cumulative
//! buckets for Prometheus from the same data.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// The bucket bounds exported to Prometheus, seconds.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Microseconds from 1 µs to 10 minutes at three significant digits; longer values are
/// clamped to the top.
const HIGHEST_US: u64 = 600_000_000;

/// One step's latencies.
#[derive(Debug)]
pub struct Latency {
    /// The histogram and the exact sum of what was recorded (µs), under one lock.
    inner: Mutex<(Histogram<u64>, u128)>,
}

/// What a [`Latency`] holds at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum, seconds.
    pub sum_secs: f64,
    /// Cumulative counts at each of [`BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    /// 50th, 90th and 99th percentiles, seconds (0 when empty).
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// Empty.
    pub fn new() -> Latency {
        // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
        // sigfig <= 5); a failure here is a programming error caught by the tests.
        #[allow(clippy::expect_used)]
        let histogram = Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid bounds");
        Latency {
            inner: Mutex::new((histogram, 0)),
        }
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.0.saturating_record(us.clamp(1, HIGHEST_US));
        inner.1 += u128::from(us);
    }

    /// The counts now.
    pub fn snapshot(&self) -> LatencySnapshot {
        let (h, sum_us) = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let secs = |us: u64| us as f64 / 1e6;
        let buckets = BUCKETS
            .iter()
            .map(|&b| {
                let bound_us = (b * 1e6) as u64;
                (b, h.count_between(0, bound_us))
            })
            .collect();
        let empty = h.is_empty();
        let q = |q: f64| {
            if empty {
                0.0
            } else {
                secs(h.value_at_quantile(q))
            }
        };
        LatencySnapshot {
            count: h.len(),
            sum_secs: sum_us as f64 / 1e6,
            buckets,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_percentiles_follow_the_data() {
        let l = Latency::new();
        assert_eq!(l.snapshot().count, 0);
        assert_eq!(l.snapshot().p99, 0.0);
        for _ in 0..90 {
            l.record(Duration::from_millis(2));
        }
        for _ in 0..10 {
            l.record(Duration::from_millis(300));
        }
        let s = l.snapshot();
        assert_eq!(s.count, 100);
        assert!((s.sum_secs - (0.18 + 3.0)).abs() < 1e-9, "{}", s.sum_secs);
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.001), 0);
        assert_eq!(at(0.0025), 90);
        assert_eq!(at(0.25), 90);
        assert_eq!(at(0.5), 100);
        assert_eq!(at(10.0), 100);
        assert!((s.p50 - 0.002).abs() < 0.00001, "{}", s.p50);
        assert!((s.p99 - 0.3).abs() < 0.001, "{}", s.p99);
        // An hour is clamped to the top, not lost.
        l.record(Duration::from_secs(3600));
        assert_eq!(l.snapshot().count, 101);
    }
}
