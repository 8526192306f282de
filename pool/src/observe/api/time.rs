//! Times as the API writes them: ISO 8601 UTC, from [`crate::clock`].

pub use crate::clock::{iso8601, iso8601_us};

/// Unix seconds now.
pub fn now() -> u64 {
    u64::from(crate::clock::unix_now())
}
