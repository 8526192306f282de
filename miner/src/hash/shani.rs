//! SHA-NI backend: the x86 SHA extensions, two nonces in flight at once.
//!
//! `sha256rnds2` does two rounds per instruction but has a long latency, so two independent
//! streams (nonce n and n + 1) are interleaved to keep the unit busy. The same tricks as the
//! lane kernel apply where the instruction set allows: rounds 0-1 of block 2 are precomputed
//! per version (they do not involve the nonce), message words 4..15 of block 2 and 8..15 of
//! block 3 are constants, the block-2 schedule is shared by all versions, and block 3 stops
//! after round 61, whose `f` is the final `h`.
//!
//! Safety: every function here needs SHA, SSE4.1 and SSSE3; they are entered only through
//! [`scan`], which callers reach after `Backend::ShaNi.is_supported()`.

#![allow(unsafe_code)]
// Round and schedule indexes mirror FIPS 180-4; iterator chains would hide them.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::prepare::Prepared;
use super::sha::{self, IV, K, LEN_DIGEST, LEN_HEADER, PAD};

/// ABEF/CDGH state registers from `[a, b, c, d, e, f, g, h]`.
#[inline(always)]
unsafe fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
    unsafe {
        let abcd = _mm_loadu_si128(s.as_ptr().cast());
        let efgh = _mm_loadu_si128(s.as_ptr().add(4).cast());
        let cdab = _mm_shuffle_epi32::<0xb1>(abcd);
        let efgh = _mm_shuffle_epi32::<0x1b>(efgh);
        (
            _mm_alignr_epi8::<8>(cdab, efgh),
            _mm_blend_epi16::<0xf0>(efgh, cdab),
        )
    }
}

/// `[a, b, c, d]` and `[e, f, g, h]` (dword 0 first) from ABEF/CDGH.
#[inline(always)]
unsafe fn unload_state(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    unsafe {
        let feba = _mm_shuffle_epi32::<0x1b>(abef);
        let dchg = _mm_shuffle_epi32::<0xb1>(cdgh);
        (
            _mm_blend_epi16::<0xf0>(feba, dchg),
            _mm_alignr_epi8::<8>(dchg, feba),
        )
    }
}

#[inline(always)]
unsafe fn k4(t: usize) -> __m128i {
    unsafe { _mm_loadu_si128(K.as_ptr().add(t).cast()) }
}

#[inline(always)]
unsafe fn words(w: [u32; 4]) -> __m128i {
    unsafe { _mm_setr_epi32(w[0] as i32, w[1] as i32, w[2] as i32, w[3] as i32) }
}

/// Next four schedule words from the previous sixteen.
#[inline(always)]
unsafe fn next4(m0: __m128i, m1: __m128i, m2: __m128i, m3: __m128i) -> __m128i {
    unsafe {
        let t = _mm_add_epi32(_mm_sha256msg1_epu32(m0, m1), _mm_alignr_epi8::<4>(m3, m2));
        _mm_sha256msg2_epu32(t, m3)
    }
}

/// Four rounds: two `rnds2`, the second on the high half of `wk`.
#[inline(always)]
unsafe fn rounds4(abef: &mut __m128i, cdgh: &mut __m128i, wk: __m128i) {
    unsafe {
        let n = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
        *cdgh = *abef;
        *abef = n;
        let n = _mm_sha256rnds2_epu32(*cdgh, *abef, _mm_shuffle_epi32::<0x0e>(wk));
        *cdgh = *abef;
        *abef = n;
    }
}

/// Scans `count` (even) nonces from `start`.
///
/// # Safety
/// The CPU must support SHA, SSE4.1 and SSSE3.
#[target_feature(enable = "sha,sse4.1,ssse3")]
pub unsafe fn scan(job: &Prepared, start: u32, count: u32, hit: &mut impl FnMut(usize, u32)) {
    unsafe {
        // Per job: round-2 input states per version, constant message blocks.
        let pre: Vec<((__m128i, __m128i), [u32; 8])> = job
            .versions
            .iter()
            .map(|v| {
                let mut s = v.midstate;
                sha::round(&mut s, K[0].wrapping_add(job.w[0]));
                sha::round(&mut s, K[1].wrapping_add(job.w[1]));
                (load_state(&s), v.midstate)
            })
            .collect();
        let b2_m1 = words([PAD, 0, 0, 0]);
        let b2_m2 = words([0, 0, 0, 0]);
        let b2_m3 = words([0, 0, 0, LEN_HEADER]);
        let b3_m2 = words([PAD, 0, 0, 0]);
        let b3_m3 = words([0, 0, 0, LEN_DIGEST]);
        let kw2_4 = _mm_add_epi32(b2_m1, k4(4));
        let kw2_8 = _mm_add_epi32(b2_m2, k4(8));
        let kw2_12 = _mm_add_epi32(b2_m3, k4(12));
        let kw3_8 = _mm_add_epi32(b3_m2, k4(8));
        let kw3_12 = _mm_add_epi32(b3_m3, k4(12));
        let iv = load_state(&IV);
        let top = job.target_top;

        let mut i = 0;
        while i < count {
            let nonces = [start.wrapping_add(i), start.wrapping_add(i + 1)];
            // Block-2 schedule per stream, shared by the versions: 16 groups of 4 words.
            let mut w2 = [[_mm_setzero_si128(); 16]; 2];
            for s in 0..2 {
                let w = &mut w2[s];
                w[0] = words([job.w[0], job.w[1], job.w[2], nonces[s].swap_bytes()]);
                w[1] = b2_m1;
                w[2] = b2_m2;
                w[3] = b2_m3;
                for g in 4..16 {
                    w[g] = next4(w[g - 4], w[g - 3], w[g - 2], w[g - 1]);
                }
            }
            for (vi, (state2, mid)) in pre.iter().enumerate() {
                let mut abef = [state2.0; 2];
                let mut cdgh = [state2.1; 2];
                // Rounds 2-3 (the nonce is word 3).
                for s in 0..2 {
                    let wk = _mm_shuffle_epi32::<0x0e>(_mm_add_epi32(w2[s][0], k4(0)));
                    let n = _mm_sha256rnds2_epu32(cdgh[s], abef[s], wk);
                    cdgh[s] = abef[s];
                    abef[s] = n;
                }
                for s in 0..2 {
                    rounds4(&mut abef[s], &mut cdgh[s], kw2_4);
                }
                for s in 0..2 {
                    rounds4(&mut abef[s], &mut cdgh[s], kw2_8);
                }
                for s in 0..2 {
                    rounds4(&mut abef[s], &mut cdgh[s], kw2_12);
                }
                for g in 4..16 {
                    for s in 0..2 {
                        rounds4(
                            &mut abef[s],
                            &mut cdgh[s],
                            _mm_add_epi32(w2[s][g], k4(4 * g)),
                        );
                    }
                }
                // Add the midstate; the digest words are block 3's first eight words.
                let mid_abcd = _mm_loadu_si128(mid.as_ptr().cast());
                let mid_efgh = _mm_loadu_si128(mid.as_ptr().add(4).cast());
                let mut w3 = [[_mm_setzero_si128(); 16]; 2];
                for s in 0..2 {
                    let (abcd, efgh) = unload_state(abef[s], cdgh[s]);
                    let w = &mut w3[s];
                    w[0] = _mm_add_epi32(abcd, mid_abcd);
                    w[1] = _mm_add_epi32(efgh, mid_efgh);
                    w[2] = b3_m2;
                    w[3] = b3_m3;
                    for g in 4..16 {
                        w[g] = next4(w[g - 4], w[g - 3], w[g - 2], w[g - 1]);
                    }
                }
                let mut abef = [iv.0; 2];
                let mut cdgh = [iv.1; 2];
                for g in 0..2 {
                    for s in 0..2 {
                        rounds4(
                            &mut abef[s],
                            &mut cdgh[s],
                            _mm_add_epi32(w3[s][g], k4(4 * g)),
                        );
                    }
                }
                for s in 0..2 {
                    rounds4(&mut abef[s], &mut cdgh[s], kw3_8);
                }
                for s in 0..2 {
                    rounds4(&mut abef[s], &mut cdgh[s], kw3_12);
                }
                for g in 4..15 {
                    for s in 0..2 {
                        rounds4(
                            &mut abef[s],
                            &mut cdgh[s],
                            _mm_add_epi32(w3[s][g], k4(4 * g)),
                        );
                    }
                }
                // Rounds 60-61 only: afterwards `f` (dword 0 of ABEF) is the final `h`.
                for s in 0..2 {
                    let wk = _mm_add_epi32(w3[s][15], k4(60));
                    let n = _mm_sha256rnds2_epu32(cdgh[s], abef[s], wk);
                    let last = (_mm_cvtsi128_si32(n) as u32)
                        .wrapping_add(IV[7])
                        .swap_bytes();
                    if last <= top {
                        hit(vi, nonces[s]);
                    }
                }
            }
            i += 2;
        }
    }
}
