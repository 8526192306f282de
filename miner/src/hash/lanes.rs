//! The 32-bit-lane operations SHA-256 needs, for one lane (`u32`), 8 lanes (AVX2) and
//! 16 lanes (AVX-512). The kernel in `kernel.rs` is written once against this trait and
//! compiled for each type inside a `#[target_feature]` function, so the intrinsics inline.
//!
//! Safety: the SIMD impls call intrinsics of their instruction set. They are only ever
//! reached through the `#[target_feature]` entry points in `kernel.rs`, which callers
//! enter only after checking the CPU has the feature (`Backend::is_supported`).

#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Lane-wise 32-bit operations.
pub trait Lanes: Copy {
    /// Lanes per value.
    const LANES: usize;
    /// Every lane `x`.
    fn splat(x: u32) -> Self;
    /// Lane `i` is `base + i`.
    fn iota(base: u32) -> Self;
    /// Wrapping add.
    fn add(self, o: Self) -> Self;
    /// `a ^ b ^ c`.
    fn xor3(a: Self, b: Self, c: Self) -> Self;
    /// Rotate right by `N`.
    fn ror<const N: u32>(self) -> Self;
    /// Shift right by `N`.
    fn shr<const N: u32>(self) -> Self;
    /// `e ? f : g`, bitwise.
    fn ch(e: Self, f: Self, g: Self) -> Self;
    /// Bitwise majority.
    fn maj(a: Self, b: Self, c: Self) -> Self;
    /// Byte swap of each lane.
    fn bswap(self) -> Self;
    /// Bit i set when lane i is `<= limit` (unsigned).
    fn le_mask(self, limit: u32) -> u32;

    /// Σ0.
    #[inline(always)]
    fn big_sigma0(self) -> Self {
        Self::xor3(self.ror::<2>(), self.ror::<13>(), self.ror::<22>())
    }
    /// Σ1.
    #[inline(always)]
    fn big_sigma1(self) -> Self {
        Self::xor3(self.ror::<6>(), self.ror::<11>(), self.ror::<25>())
    }
    /// σ0.
    #[inline(always)]
    fn small_sigma0(self) -> Self {
        Self::xor3(self.ror::<7>(), self.ror::<18>(), self.shr::<3>())
    }
    /// σ1.
    #[inline(always)]
    fn small_sigma1(self) -> Self {
        Self::xor3(self.ror::<17>(), self.ror::<19>(), self.shr::<10>())
    }
}

impl Lanes for u32 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        x
    }
    #[inline(always)]
    fn iota(base: u32) -> Self {
        base
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        a ^ b ^ c
    }
    #[inline(always)]
    fn ror<const N: u32>(self) -> Self {
        self.rotate_right(N)
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        self >> N
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        g ^ (e & (f ^ g))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        (a & b) | (c & (a | b))
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        self.swap_bytes()
    }
    #[inline(always)]
    fn le_mask(self, limit: u32) -> u32 {
        u32::from(self <= limit)
    }
}

/// 8 lanes of AVX2.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2(__m256i);

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        Avx2(unsafe { _mm256_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn iota(base: u32) -> Self {
        Avx2(unsafe {
            _mm256_add_epi32(
                _mm256_set1_epi32(base as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Avx2(unsafe { _mm256_add_epi32(self.0, o.0) })
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        Avx2(unsafe { _mm256_xor_si256(_mm256_xor_si256(a.0, b.0), c.0) })
    }
    #[inline(always)]
    fn ror<const N: u32>(self) -> Self {
        // Shift counts in registers: const generics cannot feed the immediate forms.
        Avx2(unsafe {
            _mm256_or_si256(
                _mm256_srl_epi32(self.0, _mm_cvtsi32_si128(N as i32)),
                _mm256_sll_epi32(self.0, _mm_cvtsi32_si128(32 - N as i32)),
            )
        })
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        Avx2(unsafe { _mm256_srl_epi32(self.0, _mm_cvtsi32_si128(N as i32)) })
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Avx2(unsafe { _mm256_xor_si256(g.0, _mm256_and_si256(e.0, _mm256_xor_si256(f.0, g.0))) })
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        Avx2(unsafe {
            _mm256_or_si256(
                _mm256_and_si256(a.0, b.0),
                _mm256_and_si256(c.0, _mm256_or_si256(a.0, b.0)),
            )
        })
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Avx2(unsafe {
            let m = _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11,
                10, 9, 8, 15, 14, 13, 12,
            );
            _mm256_shuffle_epi8(self.0, m)
        })
    }
    #[inline(always)]
    fn le_mask(self, limit: u32) -> u32 {
        unsafe {
            let lim = _mm256_set1_epi32(limit as i32);
            let le = _mm256_cmpeq_epi32(_mm256_max_epu32(self.0, lim), lim);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
}

/// 16 lanes of AVX-512 (F + BW): native rotates and three-input logic.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx512(__m512i);

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx512 {
    const LANES: usize = 16;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        Avx512(unsafe { _mm512_set1_epi32(x as i32) })
    }
    #[inline(always)]
    fn iota(base: u32) -> Self {
        Avx512(unsafe {
            _mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            )
        })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Avx512(unsafe { _mm512_add_epi32(self.0, o.0) })
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        Avx512(unsafe { _mm512_ternarylogic_epi32::<0x96>(a.0, b.0, c.0) })
    }
    #[inline(always)]
    fn ror<const N: u32>(self) -> Self {
        Avx512(unsafe { _mm512_rorv_epi32(self.0, _mm512_set1_epi32(N as i32)) })
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        Avx512(unsafe { _mm512_srlv_epi32(self.0, _mm512_set1_epi32(N as i32)) })
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Avx512(unsafe { _mm512_ternarylogic_epi32::<0xca>(e.0, f.0, g.0) })
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        Avx512(unsafe { _mm512_ternarylogic_epi32::<0xe8>(a.0, b.0, c.0) })
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Avx512(unsafe {
            let m = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
            _mm512_shuffle_epi8(self.0, m)
        })
    }
    #[inline(always)]
    fn le_mask(self, limit: u32) -> u32 {
        unsafe {
            u32::from(_mm512_cmple_epu32_mask(
                self.0,
                _mm512_set1_epi32(limit as i32),
            ))
        }
    }
}

/// Two independent vectors side by side: twice the lanes, and two dependency chains for
/// the out-of-order core to overlap (SHA-256 rounds are one long chain each).
#[derive(Clone, Copy)]
pub struct Pair<L>(L, L);

impl<L: Lanes> Lanes for Pair<L> {
    const LANES: usize = 2 * L::LANES;
    #[inline(always)]
    fn splat(x: u32) -> Self {
        Pair(L::splat(x), L::splat(x))
    }
    #[inline(always)]
    fn iota(base: u32) -> Self {
        Pair(L::iota(base), L::iota(base.wrapping_add(L::LANES as u32)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Pair(self.0.add(o.0), self.1.add(o.1))
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        Pair(L::xor3(a.0, b.0, c.0), L::xor3(a.1, b.1, c.1))
    }
    #[inline(always)]
    fn ror<const N: u32>(self) -> Self {
        Pair(self.0.ror::<N>(), self.1.ror::<N>())
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        Pair(self.0.shr::<N>(), self.1.shr::<N>())
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Pair(L::ch(e.0, f.0, g.0), L::ch(e.1, f.1, g.1))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        Pair(L::maj(a.0, b.0, c.0), L::maj(a.1, b.1, c.1))
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Pair(self.0.bswap(), self.1.bswap())
    }
    #[inline(always)]
    fn le_mask(self, limit: u32) -> u32 {
        self.0.le_mask(limit) | (self.1.le_mask(limit) << L::LANES)
    }
}
