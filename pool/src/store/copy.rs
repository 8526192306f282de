//! New shares in PostgreSQL's binary `COPY` format, and their per-minute totals summed
//! here rather than by the database.
//!
//! Why: at capacity the database spends as much CPU as the pool. A replay needs the
//! `INSERT ... SELECT FROM unnest(...) ON CONFLICT ... RETURNING` (a conflict check per
//! row, the inserted rows grouped again for `share_minutes`), but shares that were never
//! written cannot conflict (their uids are fresh): the writer sends their totals summed
//! here, one row per minute, address and worker, and a large batch copies its shares,
//! which costs the database less per row than an insert. A batch that fails for any
//! reason goes to the spool and comes back through the idempotent path.
//! docs/benchmarks.md has the figures.
//!
//! The format (PostgreSQL's documentation, "COPY", binary format): an 11-byte signature,
//! flags and header-extension length (both zero), then per row the field count and each
//! field as a length and its bytes in network order, then -1 as the trailer.

use std::collections::HashMap;

use crate::store::ShareRow;

/// The columns [`encode`] writes, in its order.
pub const SHARE_COLUMNS: &str = "time, uid, address, worker, difficulty, share_difficulty, network_difficulty, height, instance";

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Microseconds from the unix epoch to PostgreSQL's (2000-01-01), where binary
/// `timestamptz` values count from.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Microseconds in a minute, the span of a `share_minutes` row.
const MINUTE_US: i64 = 60_000_000;

/// The rows as one binary `COPY` payload, header and trailer included.
pub fn encode(shares: &[&ShareRow]) -> Vec<u8> {
    let per_row: usize = 2 + 9 * 4 + 8 * 6 + 2;
    let text: usize = shares
        .iter()
        .map(|s| s.address.len() + s.worker.len())
        .sum();
    let mut out = Vec::with_capacity(SIGNATURE.len() + 8 + shares.len() * per_row + text + 2);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    for s in shares {
        out.extend_from_slice(&9i16.to_be_bytes());
        field(&mut out, &(s.time_us - PG_EPOCH_US).to_be_bytes());
        field(&mut out, &s.uid.to_be_bytes());
        field(&mut out, s.address.as_bytes());
        field(&mut out, s.worker.as_bytes());
        field(&mut out, &s.difficulty.to_be_bytes());
        field(&mut out, &s.share_difficulty.to_be_bytes());
        field(&mut out, &s.network_difficulty.to_be_bytes());
        field(&mut out, &s.height.to_be_bytes());
        field(&mut out, &s.instance.to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A field longer than i32::MAX cannot come from a share row (addresses and worker
    // names are bounded long before this); saturate rather than wrap if one ever did.
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// One `share_minutes` row's worth of new shares.
#[derive(Clone, Debug, PartialEq)]
pub struct MinuteTotal<'a> {
    /// The minute's start, unix microseconds.
    pub minute_us: i64,
    /// Payout address.
    pub address: &'a str,
    /// Worker name.
    pub worker: &'a str,
    /// Summed credited difficulty.
    pub difficulty: f64,
    /// How many shares.
    pub shares: i64,
}

/// The shares summed per minute (UTC, as `date_trunc('minute', ...)` on a UTC session),
/// address and worker, in first-seen order.
pub fn minute_totals<'a>(shares: &[&'a ShareRow]) -> Vec<MinuteTotal<'a>> {
    let mut at: HashMap<(i64, &str, &str), usize> = HashMap::new();
    let mut totals: Vec<MinuteTotal<'a>> = Vec::new();
    for s in shares {
        let minute_us = s.time_us - s.time_us.rem_euclid(MINUTE_US);
        let key = (minute_us, s.address.as_str(), s.worker.as_str());
        let i = *at.entry(key).or_insert_with(|| {
            totals.push(MinuteTotal {
                minute_us,
                address: &s.address,
                worker: &s.worker,
                difficulty: 0.0,
                shares: 0,
            });
            totals.len() - 1
        });
        totals[i].difficulty += s.difficulty;
        totals[i].shares += 1;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time_us: i64, uid: i64, address: &str, worker: &str, difficulty: f64) -> ShareRow {
        ShareRow {
            time_us,
            uid,
            address: address.into(),
            worker: worker.into(),
            difficulty,
            share_difficulty: difficulty * 2.0,
            network_difficulty: 4.5e-10,
            height: 101,
            instance: 3,
        }
    }

    #[test]
    fn one_row_byte_for_byte() {
        // 2000-01-01 00:00:01 UTC is 1,000,000 in PostgreSQL's binary timestamptz.
        let r = row(PG_EPOCH_US + 1_000_000, 7, "ab", "", 1.0);
        let got = encode(&[&r]);
        let mut want: Vec<u8> = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 9]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        want.extend([0, 0, 0, 2, b'a', b'b']);
        want.extend([0, 0, 0, 0]);
        want.extend([0, 0, 0, 8, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 0, 0, 8, 0x40, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 0, 0, 8]);
        want.extend(4.5e-10f64.to_be_bytes());
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 101]);
        want.extend([0, 0, 0, 2, 0, 3]);
        want.extend([0xff, 0xff]);
        assert_eq!(got, want);
    }

    #[test]
    fn totals_per_minute_address_and_worker() {
        let m = 1_763_000_040_000_000; // a whole minute
        let rows = [
            row(m, 1, "a", "w", 1.0),
            row(m + 59_999_999, 2, "a", "w", 2.0),
            row(m + 60_000_000, 3, "a", "w", 4.0),
            row(m + 5, 4, "a", "x", 8.0),
            row(m + 6, 5, "b", "w", 16.0),
            // Before 1970 the minute still starts at or before the share.
            row(-1, 6, "a", "w", 32.0),
        ];
        let refs: Vec<&ShareRow> = rows.iter().collect();
        let got: Vec<(i64, &str, &str, f64, i64)> = minute_totals(&refs)
            .into_iter()
            .map(|t| (t.minute_us, t.address, t.worker, t.difficulty, t.shares))
            .collect();
        assert_eq!(
            got,
            vec![
                (m, "a", "w", 3.0, 2),
                (m + 60_000_000, "a", "w", 4.0, 1),
                (m, "a", "x", 8.0, 1),
                (m, "b", "w", 16.0, 1),
                (-60_000_000, "a", "w", 32.0, 1),
            ]
        );
    }
}
