//! The sha256d scan, written once over [`Lanes`] and compiled per instruction set.
//!
//! One call hashes `L::LANES` consecutive nonces for every version of the job:
//!
//! 1. Block 2 of the first hash: the schedule W18..W63 is computed once per nonce (it does
//!    not depend on the version) with the constant words folded in; rounds start at 4 from
//!    the per-version precomputation.
//! 2. Block 3 (the second hash) starts from the constant IV: round 0 is folded into two
//!    constants, rounds 8..15 use constant message words, and the schedule skips the zero
//!    words.
//! 3. Early exit: the last state word of the final hash is `IV7 + e` where `e` is the value
//!    round 60 produces, so rounds 61..63 are never run. A hash can meet the target only if
//!    that word, byte-swapped, is at most the target's top 32 bits (for difficulty >= 1 the
//!    word must be zero); lanes passing this test are reported and checked in full by the
//!    caller. The filter is exact for every target, including difficulty below 1.

#![allow(unsafe_code)]
// Round and schedule indexes mirror FIPS 180-4; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use super::lanes::Lanes;
use super::prepare::Prepared;
use super::sha::{IV, K, LEN_DIGEST, LEN_HEADER, PAD};

/// One round on named variables; `$d` receives the new `e`, `$h` the new `a`.
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        // Ordered for latency: only the last add of t1 waits for Σ1(e).
        let s1 = $e.big_sigma1();
        let hkc = $h.add($kw).add(L::ch($e, $f, $g));
        $d = $d.add(hkc).add(s1);
        $h = hkc.add(s1).add($a.big_sigma0().add(L::maj($a, $b, $c)));
    };
}

/// A round that only needs its new `e` (into `$d`).
macro_rules! round_e {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        $d = $d
            .add($h.add($kw).add(L::ch($e, $f, $g)))
            .add($e.big_sigma1());
    };
}

/// Eight rounds, `kw(i)` giving K + W for round `base + i`.
macro_rules! rounds8 {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        round!($a, $b, $c, $d, $e, $f, $g, $h, $kw(0));
        round!($h, $a, $b, $c, $d, $e, $f, $g, $kw(1));
        round!($g, $h, $a, $b, $c, $d, $e, $f, $kw(2));
        round!($f, $g, $h, $a, $b, $c, $d, $e, $kw(3));
        round!($e, $f, $g, $h, $a, $b, $c, $d, $kw(4));
        round!($d, $e, $f, $g, $h, $a, $b, $c, $kw(5));
        round!($c, $d, $e, $f, $g, $h, $a, $b, $kw(6));
        round!($b, $c, $d, $e, $f, $g, $h, $a, $kw(7));
    };
}

#[inline(always)]
fn kc<L: Lanes>(t: usize, w: u32) -> L {
    L::splat(K[t].wrapping_add(w))
}

/// Standard schedule step: σ1(w[t-2]) + w[t-7] + σ0(w[t-15]) + w[t-16].
#[inline(always)]
fn expand<L: Lanes>(w: &[L; 64], t: usize) -> L {
    w[t - 2]
        .small_sigma1()
        .add(w[t - 7])
        .add(w[t - 15].small_sigma0())
        .add(w[t - 16])
}

/// Block-3 schedule words 16..31, where the zero and constant words of the padding fold
/// away (W8 = 0x80000000, W9..W14 = 0, W15 = 256). `t` is a constant after inlining.
#[inline(always)]
#[rustfmt::skip] // one formula per line reads as the table it is
fn early3<L: Lanes>(u: &[L; 64], t: usize) -> L {
    use super::sha::{small_sigma0, small_sigma1};
    match t {
        16 => u[1].small_sigma0().add(u[0]),
        17 => L::splat(small_sigma1(LEN_DIGEST)).add(u[2].small_sigma0()).add(u[1]),
        18..=21 => u[t - 2].small_sigma1().add(u[t - 15].small_sigma0()).add(u[t - 16]),
        22 => u[20].small_sigma1().add(L::splat(LEN_DIGEST)).add(u[7].small_sigma0()).add(u[6]),
        23 => u[21].small_sigma1().add(u[16]).add(L::splat(small_sigma0(PAD))).add(u[7]),
        24 => u[22].small_sigma1().add(u[17]).add(L::splat(PAD)),
        25..=29 => u[t - 2].small_sigma1().add(u[t - 7]),
        30 => u[28].small_sigma1().add(u[23]).add(L::splat(small_sigma0(LEN_DIGEST))),
        31 => u[29].small_sigma1().add(u[24]).add(u[16].small_sigma0()).add(L::splat(LEN_DIGEST)),
        _ => expand(u, t),
    }
}

/// The message schedules of one scan, kept from one scan to the next by its caller.
///
/// Why: as locals of [`scan`], three 64-word arrays of vectors (8 KiB each with AVX-512
/// pairs) were zero-filled on every call, since the compiler cannot see that every word
/// read is written first; a profile of `miner bench --no-version-rolling` put 14% of the
/// cycles in that `memset`. Every word a scan reads it writes first, so what an earlier
/// scan left in them never matters.
pub struct Scratch<L> {
    w: [L; 64],
    kw: [L; 64],
    u: [L; 64],
}

impl<L: Lanes> Scratch<L> {
    /// Zeroed once.
    pub fn new() -> Scratch<L> {
        let z = L::splat(0);
        Scratch {
            w: [z; 64],
            kw: [z; 64],
            u: [z; 64],
        }
    }
}

impl<L: Lanes> Default for Scratch<L> {
    fn default() -> Self {
        Scratch::new()
    }
}

/// Scans nonces `nonce0 .. nonce0 + L::LANES` for every version of `job`; calls
/// `hit(version_index, nonce)` for each lane that passes the last-word filter. `scratch`
/// is working space (see [`Scratch`]).
#[inline(always)]
pub fn scan<L: Lanes>(
    scratch: &mut Scratch<L>,
    job: &Prepared,
    nonce0: u32,
    hit: &mut impl FnMut(usize, u32),
) {
    // ---- block 2 schedule, shared by all versions ----
    let nonce = L::iota(nonce0);
    let w3 = nonce.bswap();
    let Scratch { w, kw, u } = scratch;
    let (w16, w17) = (L::splat(job.w16), L::splat(job.w17));
    w[16] = w16;
    w[17] = w17;
    w[18] = L::splat(job.c18).add(w3.small_sigma0());
    w[19] = L::splat(job.c19).add(w3);
    w[20] = w[18].small_sigma1().add(L::splat(PAD));
    w[21] = w[19].small_sigma1();
    w[22] = w[20].small_sigma1().add(L::splat(LEN_HEADER));
    w[23] = w[21].small_sigma1().add(w16);
    w[24] = w[22].small_sigma1().add(w17);
    for t in 25..30 {
        w[t] = w[t - 2].small_sigma1().add(w[t - 7]);
    }
    w[30] = w[28]
        .small_sigma1()
        .add(w[23])
        .add(L::splat(super::sha::small_sigma0(LEN_HEADER)));
    w[31] = w[29].small_sigma1().add(w[24]).add(L::splat(job.c31));
    w[32] = w[30].small_sigma1().add(w[25]).add(L::splat(job.c32));
    w[33] = w[31]
        .small_sigma1()
        .add(w[26])
        .add(w[18].small_sigma0())
        .add(w17);
    for t in 34..64 {
        w[t] = expand(w, t);
    }
    for t in 16..64 {
        kw[t] = w[t].add(L::splat(K[t]));
    }

    for (vi, v) in job.versions.iter().enumerate() {
        // ---- block 2 rounds 4..63; round 4's roles sit at rotation 4 ----
        let [b4, c4, d4, f4, g4, h4] = v.rest;
        let mut e = L::splat(v.a4).add(w3);
        let mut f = L::splat(b4);
        let mut g = L::splat(c4);
        let mut h = L::splat(d4);
        let mut a = L::splat(v.e4).add(w3);
        let mut b = L::splat(f4);
        let mut c = L::splat(g4);
        let mut d = L::splat(h4);
        round!(e, f, g, h, a, b, c, d, kc::<L>(4, PAD));
        round!(d, e, f, g, h, a, b, c, kc::<L>(5, 0));
        round!(c, d, e, f, g, h, a, b, kc::<L>(6, 0));
        round!(b, c, d, e, f, g, h, a, kc::<L>(7, 0));
        rounds8!(a, b, c, d, e, f, g, h, |i: usize| kc::<L>(
            8 + i,
            if 8 + i == 15 { LEN_HEADER } else { 0 }
        ));
        for blk in 2..8 {
            rounds8!(a, b, c, d, e, f, g, h, |i: usize| kw[8 * blk + i]);
        }
        let m = v.midstate;
        let x: [L; 8] = [
            a.add(L::splat(m[0])),
            b.add(L::splat(m[1])),
            c.add(L::splat(m[2])),
            d.add(L::splat(m[3])),
            e.add(L::splat(m[4])),
            f.add(L::splat(m[5])),
            g.add(L::splat(m[6])),
            h.add(L::splat(m[7])),
        ];

        // ---- block 3: sha256 of the 32-byte digest ----
        // Its schedule is computed as the rounds consume it, so the out-of-order core can
        // overlap schedule work with the round chain.
        u[..8].copy_from_slice(&x);
        // Round 0 from the constant IV: t1 = C0 + W0.
        let c0 = IV[7]
            .wrapping_add(super::sha::big_sigma1(IV[4]))
            .wrapping_add(super::sha::ch(IV[4], IV[5], IV[6]))
            .wrapping_add(K[0]);
        let t2 = super::sha::big_sigma0(IV[0]).wrapping_add(super::sha::maj(IV[0], IV[1], IV[2]));
        let mut a = L::splat(IV[0]);
        let mut b = L::splat(IV[1]);
        let mut c = L::splat(IV[2]);
        let mut d = L::splat(IV[3].wrapping_add(c0)).add(x[0]);
        let mut e = L::splat(IV[4]);
        let mut f = L::splat(IV[5]);
        let mut g = L::splat(IV[6]);
        let mut h = L::splat(c0.wrapping_add(t2)).add(x[0]);
        round!(h, a, b, c, d, e, f, g, u[1].add(L::splat(K[1])));
        round!(g, h, a, b, c, d, e, f, u[2].add(L::splat(K[2])));
        round!(f, g, h, a, b, c, d, e, u[3].add(L::splat(K[3])));
        round!(e, f, g, h, a, b, c, d, u[4].add(L::splat(K[4])));
        round!(d, e, f, g, h, a, b, c, u[5].add(L::splat(K[5])));
        round!(c, d, e, f, g, h, a, b, u[6].add(L::splat(K[6])));
        round!(b, c, d, e, f, g, h, a, u[7].add(L::splat(K[7])));
        rounds8!(a, b, c, d, e, f, g, h, |i: usize| kc::<L>(
            8 + i,
            match 8 + i {
                8 => PAD,
                15 => LEN_DIGEST,
                _ => 0,
            }
        ));
        rounds8!(a, b, c, d, e, f, g, h, |i: usize| {
            u[16 + i] = early3(u, 16 + i);
            u[16 + i].add(L::splat(K[16 + i]))
        });
        rounds8!(a, b, c, d, e, f, g, h, |i: usize| {
            u[24 + i] = early3(u, 24 + i);
            u[24 + i].add(L::splat(K[24 + i]))
        });
        for blk in 4..7 {
            rounds8!(a, b, c, d, e, f, g, h, |i: usize| {
                u[8 * blk + i] = expand(u, 8 * blk + i);
                u[8 * blk + i].add(L::splat(K[8 * blk + i]))
            });
        }
        for t in 56..61 {
            u[t] = expand(u, t);
        }
        round!(a, b, c, d, e, f, g, h, u[56].add(L::splat(K[56])));
        // Rounds 57..59: their new `a` would only feed rounds 61+, so only `e` is computed.
        round_e!(h, a, b, c, d, e, f, g, u[57].add(L::splat(K[57])));
        round_e!(g, h, a, b, c, d, e, f, u[58].add(L::splat(K[58])));
        round_e!(f, g, h, a, b, c, d, e, u[59].add(L::splat(K[59])));
        // Round 60, roles (e f g h a b c d): only the new `e` (into `h`) is needed.
        round_e!(e, f, g, h, a, b, c, d, u[60].add(L::splat(K[60])));
        let e61 = h;

        let last = e61.add(L::splat(IV[7])).bswap();
        let mut mask = last.le_mask(job.target_top);
        while mask != 0 {
            let lane = mask.trailing_zeros();
            hit(vi, nonce0.wrapping_add(lane));
            mask &= mask - 1;
        }
    }
}

/// Scans `count` nonces from `start` (a multiple of the lane count apart), one lane at a time.
pub fn scan_scalar(job: &Prepared, start: u32, count: u32, hit: &mut impl FnMut(usize, u32)) {
    let mut scratch = Scratch::<u32>::new();
    for i in 0..count {
        scan(&mut scratch, job, start.wrapping_add(i), hit);
    }
}

/// AVX2, 8 lanes.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn scan_avx2(job: &Prepared, start: u32, count: u32, hit: &mut impl FnMut(usize, u32)) {
    let mut scratch = Scratch::<super::lanes::Avx2>::new();
    let mut i = 0;
    while i < count {
        scan(&mut scratch, job, start.wrapping_add(i), hit);
        i += 8;
    }
}

/// AVX-512 (F + BW), 16 lanes.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn scan_avx512(
    job: &Prepared,
    start: u32,
    count: u32,
    hit: &mut impl FnMut(usize, u32),
) {
    let mut scratch = Scratch::<super::lanes::Pair<super::lanes::Avx512>>::new();
    let mut i = 0;
    while i < count {
        scan(&mut scratch, job, start.wrapping_add(i), hit);
        i += 32;
    }
}
