//! The wall clock and randomness, in one place: the pure parts of the pool (sessions,
//! vardiff, validation, jobs) never read either; the tasks around them pass `now` in.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in unix seconds.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// The wall clock in unix microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// 64 random bits from the OS (time and pid mixed, should /dev/urandom be unreadable).
pub fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
    {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => (now_us() as u64) ^ (u64::from(std::process::id()) << 40),
    }
}
