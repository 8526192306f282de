//! A token bucket: the message rate limit of a connection (`limits.messages_per_sec`),
//! charged for junk only by the sessions of both protocols.

use std::time::Instant;

/// A token bucket for the message rate.
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket of `rate` tokens a second (a burst of twice that) at `now`.
    pub fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: rate * 2.0,
            rate,
            last: now,
        }
    }

    /// Takes a token at `now`; false when there is none.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate * 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
