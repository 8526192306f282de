//! Per-job precomputation shared by every lane of every backend.
//!
//! For a header whose first 64 bytes are fixed (one version), block 2 of the first hash is
//! `[W0 W1 W2 nonce 0x80000000 0 … 0 640]`: only word 3 changes with the nonce. So:
//! - rounds 0..2 of block 2 are done once, and round 3 up to the `+ W3`;
//! - the message words W16..W33 that do not depend on W3 (or depend on it only through a
//!   sum) are folded into constants;
//! - with version rolling, up to [`MAX_VERSIONS`] versions share the block-2 schedule: they
//!   differ only in block 1, i.e. in the midstate and the first rounds.

use protocol::HeaderTail;

use super::sha::{self, K, LEN_HEADER, PAD, small_sigma0, small_sigma1};

/// Most versions hashed per nonce over one shared block-2 schedule.
pub const MAX_VERSIONS: usize = 4;

/// What one version contributes: its midstate and the state entering round 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionState {
    /// The header version this state is for.
    pub version: u32,
    /// SHA-256 state after the header's first 64 bytes.
    pub midstate: [u32; 8],
    /// Round 4 input `a` is `a4 + W3`.
    pub a4: u32,
    /// Round 4 input `e` is `e4 + W3`.
    pub e4: u32,
    /// Round 4 inputs b, c, d, f, g, h (no W3 in them).
    pub rest: [u32; 6],
}

impl VersionState {
    /// Precomputes rounds 0..=3 of block 2 for `midstate`.
    pub fn new(version: u32, midstate: [u32; 8], w: &[u32; 3]) -> VersionState {
        let mut s = midstate;
        for (t, &word) in w.iter().enumerate() {
            sha::round(&mut s, K[t].wrapping_add(word));
        }
        let [a, b, c, d, e, f, g, h] = s;
        let t1 = h
            .wrapping_add(sha::big_sigma1(e))
            .wrapping_add(sha::ch(e, f, g))
            .wrapping_add(K[3]);
        let t2 = sha::big_sigma0(a).wrapping_add(sha::maj(a, b, c));
        VersionState {
            version,
            midstate,
            a4: t1.wrapping_add(t2),
            e4: d.wrapping_add(t1),
            rest: [a, b, c, e, f, g],
        }
    }
}

/// A job ready for the kernels: one to [`MAX_VERSIONS`] versions over one header tail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The versions hashed per nonce.
    pub versions: Vec<VersionState>,
    /// The header tail (nonce bytes ignored).
    pub tail: HeaderTail,
    /// Block-2 words 0..2 (merkle root tail, time, bits), read big-endian.
    pub w: [u32; 3],
    /// W16 and W17 (constant).
    pub w16: u32,
    /// See `w16`.
    pub w17: u32,
    /// W18 = c18 + σ0(W3).
    pub c18: u32,
    /// W19 = c19 + W3.
    pub c19: u32,
    /// Constant part of W31: σ0(W16) + 640.
    pub c31: u32,
    /// Constant part of W32: σ0(W17) + W16.
    pub c32: u32,
    /// The top 32 bits of the target, as the filter compares them: a hash can only meet the
    /// target if the byte-swapped last state word is at most this.
    pub target_top: u32,
}

impl Prepared {
    /// Prepares `versions` (midstate for each) over `tail`, for a target whose top 32 bits
    /// are `target_top`.
    pub fn new(versions: &[(u32, [u32; 8])], tail: HeaderTail, target_top: u32) -> Prepared {
        assert!(
            (1..=MAX_VERSIONS).contains(&versions.len()),
            "1..=4 versions per job"
        );
        let word =
            |i: usize| u32::from_be_bytes([tail.0[i], tail.0[i + 1], tail.0[i + 2], tail.0[i + 3]]);
        let w = [word(0), word(4), word(8)];
        let w16 = small_sigma0(w[1]).wrapping_add(w[0]);
        let w17 = small_sigma1(LEN_HEADER)
            .wrapping_add(small_sigma0(w[2]))
            .wrapping_add(w[1]);
        Prepared {
            versions: versions
                .iter()
                .map(|&(v, m)| VersionState::new(v, m, &w))
                .collect(),
            tail,
            w,
            w16,
            w17,
            c18: small_sigma1(w16).wrapping_add(w[2]),
            c19: small_sigma1(w17).wrapping_add(small_sigma0(PAD)),
            c31: small_sigma0(w16).wrapping_add(LEN_HEADER),
            c32: small_sigma0(w17).wrapping_add(w16),
            target_top,
        }
    }
}
