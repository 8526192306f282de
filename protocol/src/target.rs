//! Targets: 256-bit thresholds, their compact nBits form, pool difficulty, hash difficulty.
//!
//! A hash meets a target when, read as a little-endian 256-bit integer, it is at or below
//! it. Difficulty 1 is the target `0x00000000ffff0000…0000` (Bitcoin's and every Stratum
//! pool's "pool difficulty 1"); difficulty `d` is the target `floor(diff1 / d)`, computed
//! exactly from the binary value of `d`, so fractional pool difficulties such as 0.01 work.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::hash::Hash256;
use crate::hexfmt::{HexError, decode_array};

/// A 256-bit unsigned target, as four u64 limbs, least significant first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target(pub [u64; 4]);

/// The compact "nBits" encoding of a target: one byte of size, a sign bit, 23 bits of
/// mantissa (Bitcoin Core's `arith_uint256::SetCompact`/`GetCompact`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CompactTarget(pub u32);

/// Why a compact target is not a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The sign bit is set on a non-zero mantissa.
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    /// The value does not fit in 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
}

/// A difficulty that cannot be turned into a target.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum DifficultyError {
    /// Zero, negative, NaN or infinite.
    #[error("difficulty must be a finite number above zero, got {0}")]
    NotPositive(f64),
}

impl Target {
    /// Target zero: met by no hash but zero.
    pub const ZERO: Target = Target([0; 4]);
    /// The largest 256-bit value: met by every hash.
    pub const MAX: Target = Target([u64::MAX; 4]);
    /// Difficulty 1: `0x00000000ffff0000…`.
    pub const DIFF1: Target = Target([0, 0, 0, 0x0000_0000_ffff_0000]);

    /// From 32 big-endian bytes (the way getblocktemplate's `target` and explorers write it).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Target {
        let mut limbs = [0u64; 4];
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            limbs[3 - i] = u64::from_be_bytes(w);
        }
        Target(limbs)
    }

    /// To 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&self.0[3 - i].to_be_bytes());
        }
        out
    }

    /// To 32 little-endian bytes (the byte order of a hash compared against it).
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut out = self.to_be_bytes();
        out.reverse();
        out
    }

    /// The inverse of [`Target::to_le_bytes`]: the byte order of Stratum V2's U256 fields.
    pub fn from_le_bytes(mut bytes: [u8; 32]) -> Target {
        bytes.reverse();
        Target::from_be_bytes(bytes)
    }

    /// Parses 64 hex digits, big-endian.
    pub fn from_be_hex(s: &str) -> Result<Target, HexError> {
        Ok(Target::from_be_bytes(decode_array::<32>(s)?))
    }

    /// 64 hex digits, big-endian.
    pub fn to_be_hex(&self) -> String {
        hex::encode(self.to_be_bytes())
    }

    /// The value of a hash as a target-sized integer.
    pub fn from_hash(hash: &Hash256) -> Target {
        Target(hash.to_le_limbs())
    }

    /// Whether `hash` meets this target: an exact integer compare, no floating point.
    #[inline]
    pub fn is_met_by(&self, hash: &Hash256) -> bool {
        cmp_limbs(&hash.to_le_limbs(), &self.0) != Ordering::Greater
    }

    /// Number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// Decodes compact nBits, rejecting negative and overflowing values as consensus does.
    pub fn from_compact(compact: CompactTarget) -> Result<Target, CompactError> {
        let (target, negative, overflow) = compact.decode();
        if negative {
            Err(CompactError::Negative(compact.0))
        } else if overflow {
            Err(CompactError::Overflow(compact.0))
        } else {
            Ok(target)
        }
    }

    /// Encodes to compact nBits (non-negative), rounding down as Bitcoin Core does.
    pub fn to_compact(&self) -> CompactTarget {
        CompactTarget::encode(self, false)
    }

    /// The target of pool difficulty `difficulty`: `floor(diff1 / difficulty)`, exact for
    /// every finite positive f64. Difficulties so small that the target would pass 2^256
    /// give [`Target::MAX`].
    pub fn from_difficulty(difficulty: f64) -> Result<Target, DifficultyError> {
        if !(difficulty.is_finite() && difficulty > 0.0) {
            return Err(DifficultyError::NotPositive(difficulty));
        }
        // difficulty = m * 2^e exactly, with m an integer below 2^53.
        let raw = difficulty.to_bits();
        let exp_bits = ((raw >> 52) & 0x7ff) as i32;
        let frac = raw & ((1u64 << 52) - 1);
        let (m, e) = if exp_bits == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp_bits - 1075)
        };
        // floor(X / (m * 2^e)) = floor(floor(X / 2^e) / m) for e >= 0, and
        // floor((X * 2^-e) / m) for e < 0, with X = diff1 held in 512 bits.
        let mut wide = [0u64; 8];
        wide[..4].copy_from_slice(&Target::DIFF1.0);
        if e >= 0 {
            shr_limbs(&mut wide, e as u32);
        } else {
            // diff1 has 224 significant bits; 224 + shift must stay within 512.
            let shift = (-e) as u32;
            if shift > 512 - 224 {
                return Ok(Target::MAX);
            }
            shl_limbs(&mut wide, shift);
        }
        div_limbs_u64(&mut wide, m);
        if wide[4..].iter().any(|&l| l != 0) {
            return Ok(Target::MAX);
        }
        let mut limbs = [0u64; 4];
        limbs.copy_from_slice(&wide[..4]);
        Ok(Target(limbs))
    }

    /// The pool difficulty of this target: `diff1 / target` (infinite for target zero).
    pub fn difficulty(&self) -> f64 {
        Target::DIFF1.to_f64() / self.to_f64()
    }

    /// The value as a float (rounded).
    pub fn to_f64(&self) -> f64 {
        self.0
            .iter()
            .enumerate()
            .map(|(i, &l)| l as f64 * 2f64.powi(64 * i as i32))
            .sum()
    }
}

/// Hashes a difficulty-1 share takes on average, as pools count it: 2^32.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// The hash rate (H/s) that finds shares of summed difficulty `difficulty` in `seconds`:
/// `difficulty x 2^32 / seconds` (0 for no time).
pub fn hashrate(difficulty: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        difficulty * HASHES_PER_DIFFICULTY / seconds
    } else {
        0.0
    }
}

/// The difficulty of a hash: `diff1 / hash`, the figure pools report as "share difficulty".
pub fn hash_difficulty(hash: &Hash256) -> f64 {
    Target::from_hash(hash).difficulty()
}

/// A pool difficulty: `diff1 / target`, the work a share (or a block) stands for, in
/// difficulty-1 shares. Always finite and above zero, so a target can be made from it, it
/// can be divided by, and it prints the same everywhere ([`format_difficulty`]).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Difficulty(f64);

impl Difficulty {
    /// Difficulty 1 (the target `0x00000000ffff0000...`).
    pub const ONE: Difficulty = Difficulty(1.0);
    /// The largest difficulty (a hash of zero).
    pub const MAX: Difficulty = Difficulty(f64::MAX);

    /// `None` unless `value` is finite and above zero.
    pub fn new(value: f64) -> Option<Difficulty> {
        (value.is_finite() && value > 0.0).then_some(Difficulty(value))
    }

    /// The difficulty of `target` (its bits as a pool difficulty).
    pub fn of_target(target: &Target) -> Difficulty {
        Difficulty::clamp(target.difficulty())
    }

    /// The difficulty a hash reached: `diff1 / hash`.
    pub fn of_hash(hash: &Hash256) -> Difficulty {
        Difficulty::clamp(hash_difficulty(hash))
    }

    fn clamp(value: f64) -> Difficulty {
        if value.is_nan() || value <= 0.0 {
            Difficulty(f64::MIN_POSITIVE)
        } else {
            Difficulty(value.min(f64::MAX))
        }
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Its target, `floor(diff1 / difficulty)` exactly.
    pub fn target(self) -> Target {
        Target::from_difficulty(self.0).unwrap_or(Target::MAX)
    }

    /// The lower of two.
    pub fn min(self, other: Difficulty) -> Difficulty {
        Difficulty(self.0.min(other.0))
    }

    /// The higher of two.
    pub fn max(self, other: Difficulty) -> Difficulty {
        Difficulty(self.0.max(other.0))
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_difficulty(self.0))
    }
}

impl<'de> Deserialize<'de> for Difficulty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Difficulty, D::Error> {
        let value = f64::deserialize(d)?;
        Difficulty::new(value).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "a difficulty must be a finite number above zero, not {value}"
            ))
        })
    }
}

/// A difficulty for people: six significant digits at every magnitude, plain below 10^15
/// and above 10^-4, in exponent form outside (`4.65654e-10`, never `0.000000`). Logs, errors
/// and the console all print difficulties through this, so they read the same everywhere.
pub fn format_difficulty(difficulty: f64) -> String {
    format_significant(difficulty, 6)
}

/// Two difficulties printed with as many significant digits as it takes to tell them
/// apart (six at least, seventeen at most), for messages such as "`got` < `want`".
pub fn format_difficulty_pair(a: f64, b: f64) -> (String, String) {
    let mut digits = 6;
    loop {
        let (x, y) = (format_significant(a, digits), format_significant(b, digits));
        if x != y || digits >= 17 || a == b {
            return (x, y);
        }
        digits += 1;
    }
}

fn format_significant(d: f64, digits: usize) -> String {
    if !d.is_finite() || d == 0.0 {
        return d.to_string();
    }
    let exponent = d.abs().log10().floor() as i32;
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if (-4..15).contains(&exponent) {
        let decimals = usize::try_from(digits as i32 - 1 - exponent).unwrap_or(0);
        trim(format!("{d:.decimals$}"))
    } else {
        let text = format!("{:.*e}", digits.saturating_sub(1), d);
        match text.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim(mantissa.to_string())),
            None => text,
        }
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_limbs(&self.0, &other.0)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.to_be_hex())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_be_hex())
    }
}

impl CompactTarget {
    /// Decodes as Bitcoin Core's `SetCompact`: the (truncated) value, whether it is
    /// negative, whether it overflows 256 bits.
    pub fn decode(self) -> (Target, bool, bool) {
        let size = self.0 >> 24;
        let mut word = self.0 & 0x007f_ffff;
        let mut limbs = [0u64; 8];
        if size <= 3 {
            word >>= 8 * (3 - size);
            limbs[0] = word as u64;
        } else {
            limbs[0] = word as u64;
            shl_limbs(&mut limbs, 8 * (size - 3));
        }
        let negative = word != 0 && (self.0 & 0x0080_0000) != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        let mut out = [0u64; 4];
        out.copy_from_slice(&limbs[..4]);
        (Target(out), negative, overflow)
    }

    /// Encodes as Bitcoin Core's `GetCompact(negative)`.
    pub fn encode(target: &Target, negative: bool) -> CompactTarget {
        let mut size = target.bits().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (target.0[0] << (8 * (3 - size))) as u32
        } else {
            let mut limbs = [0u64; 8];
            limbs[..4].copy_from_slice(&target.0);
            shr_limbs(&mut limbs, 8 * (size - 3));
            limbs[0] as u32
        };
        // The mantissa is signed: keep its top bit clear by moving one byte into the size.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact |= size << 24;
        if negative && compact & 0x007f_ffff != 0 {
            compact |= 0x0080_0000;
        }
        CompactTarget(compact)
    }

    /// The target, rejecting negative and overflowing encodings.
    pub fn to_target(self) -> Result<Target, CompactError> {
        Target::from_compact(self)
    }

    /// Parses the 8 hex digits getblocktemplate's `bits` and Stratum's `nbits` carry.
    pub fn from_hex(s: &str) -> Result<CompactTarget, HexError> {
        Ok(CompactTarget(crate::hexfmt::decode_u32_be(s)?))
    }

    /// 8 hex digits, big-endian.
    pub fn to_hex(self) -> String {
        format!("{:08x}", self.0)
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

fn cmp_limbs(a: &[u64; 4], b: &[u64; 4]) -> Ordering {
    for i in (0..4).rev() {
        match a[i].cmp(&b[i]) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    Ordering::Equal
}

/// Shifts a little-endian limb array left, dropping bits that fall off the top.
fn shl_limbs(limbs: &mut [u64], shift: u32) {
    let n = limbs.len();
    let words = (shift / 64) as usize;
    let bits = shift % 64;
    for i in (0..n).rev() {
        let src = i.checked_sub(words);
        let lo = src.map_or(0, |s| limbs[s]);
        let below = src.and_then(|s| s.checked_sub(1)).map_or(0, |s| limbs[s]);
        limbs[i] = if bits == 0 {
            lo
        } else {
            (lo << bits) | (below >> (64 - bits))
        };
    }
}

/// Shifts a little-endian limb array right.
fn shr_limbs(limbs: &mut [u64], shift: u32) {
    let n = limbs.len();
    let words = (shift / 64) as usize;
    let bits = shift % 64;
    for i in 0..n {
        let hi = limbs.get(i + words).copied().unwrap_or(0);
        let above = limbs.get(i + words + 1).copied().unwrap_or(0);
        limbs[i] = if bits == 0 {
            hi
        } else {
            (hi >> bits) | (above << (64 - bits))
        };
    }
}

/// Divides a little-endian limb array by a non-zero u64 in place (quotient, floor).
fn div_limbs_u64(limbs: &mut [u64], divisor: u64) {
    let mut rem: u128 = 0;
    for limb in limbs.iter_mut().rev() {
        let cur = (rem << 64) | *limb as u128;
        *limb = (cur / divisor as u128) as u64;
        rem = cur % divisor as u128;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_bytes_are_the_reverse_of_big_endian() {
        // Difficulty 1: 0x00000000ffff0000...; Stratum V2 carries it least significant first.
        let one = Target::from_difficulty(1.0).unwrap();
        let le = one.to_le_bytes();
        assert_eq!(&le[26..], &[0xff, 0xff, 0, 0, 0, 0]);
        assert!(le[..26].iter().all(|b| *b == 0));
        assert_eq!(Target::from_le_bytes(le), one);
    }

    #[test]
    fn a_difficulty_is_finite_and_positive_and_prints_like_format_difficulty() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(Difficulty::new(bad), None, "{bad}");
        }
        let d = Difficulty::new(1024.0).unwrap();
        assert_eq!(d.to_string(), "1024");
        assert_eq!(d.target(), Target::from_difficulty(1024.0).unwrap());
        assert_eq!(Difficulty::of_target(&Target::DIFF1), Difficulty::ONE);
        assert_eq!(Difficulty::of_hash(&Hash256([0; 32])), Difficulty::MAX);
        assert!(serde_json::from_str::<Difficulty>("0").is_err());
        assert_eq!(
            serde_json::from_str::<Difficulty>("2.5").unwrap().get(),
            2.5
        );
        assert_eq!(serde_json::to_string(&d).unwrap(), "1024.0");
    }

    #[test]
    fn difficulties_print_with_significant_digits_at_every_magnitude() {
        let regtest = Target::from_compact(CompactTarget(0x207fffff))
            .unwrap()
            .difficulty();
        assert_eq!(format_difficulty(regtest), "4.65654e-10");
        assert_eq!(format_difficulty(1.0), "1");
        assert_eq!(format_difficulty(1024.5), "1024.5");
        assert_eq!(format_difficulty(0.001234567), "0.00123457");
        assert_eq!(format_difficulty(123_456_789.0), "123456789");
        assert_eq!(format_difficulty(1.2345678e15), "1.23457e15");
        assert_eq!(format_difficulty(0.0), "0");
        // A reject message must show two different numbers, however close they are.
        let (got, want) = format_difficulty_pair(regtest * 0.9999999, regtest);
        assert_ne!(got, want);
        assert_eq!(want, "4.6565424e-10");
        assert_eq!(format_difficulty_pair(2.0, 2.0), ("2".into(), "2".into()));
    }

    fn t(hex_be: &str) -> Target {
        let padded = format!("{hex_be:0>64}");
        Target::from_be_hex(&padded).unwrap()
    }

    #[test]
    fn real_network_bits() {
        // Bitcoin mainnet genesis / difficulty 1.
        let d1 = CompactTarget(0x1d00ffff).to_target().unwrap();
        assert_eq!(d1, Target::DIFF1);
        assert_eq!(d1.to_be_hex(), format!("00000000ffff{}", "0".repeat(52)));
        assert_eq!(d1.to_compact(), CompactTarget(0x1d00ffff));
        assert_eq!(d1.difficulty(), 1.0);
        // Block 125552's bits; and 0x1b0404cb, the example of the Bitcoin wiki's Target page.
        assert_eq!(
            CompactTarget(0x1b0404cb).to_target().unwrap(),
            t("00000000000404cb000000000000000000000000000000000000000000000000")
        );
        assert!(
            (CompactTarget(0x1b0404cb).to_target().unwrap().difficulty() - 16307.420938523983)
                .abs()
                < 1e-6
        );
        // Regtest's proof-of-work limit.
        let regtest = CompactTarget(0x207fffff).to_target().unwrap();
        assert_eq!(regtest.to_be_hex(), format!("7fffff{}", "0".repeat(58)));
        assert_eq!(regtest.to_compact(), CompactTarget(0x207fffff));
    }

    /// Bitcoin Core's `arith_uint256_tests.cpp` (bignum_SetCompact): input, expected value,
    /// expected GetCompact(negative), negative, overflow.
    #[test]
    fn bitcoin_core_set_compact_cases() {
        let cases: &[(u32, &str, u32, bool, bool)] = &[
            (0, "0", 0, false, false),
            (0x00123456, "0", 0, false, false),
            (0x01003456, "0", 0, false, false),
            (0x02000056, "0", 0, false, false),
            (0x03000000, "0", 0, false, false),
            (0x04000000, "0", 0, false, false),
            (0x00923456, "0", 0, false, false),
            (0x01803456, "0", 0, false, false),
            (0x02800056, "0", 0, false, false),
            (0x03800000, "0", 0, false, false),
            (0x04800000, "0", 0, false, false),
            (0x01123456, "12", 0x01120000, false, false),
            (0x01fedcba, "7e", 0x01fe0000, true, false),
            (0x02123456, "1234", 0x02123400, false, false),
            (0x03123456, "123456", 0x03123456, false, false),
            (0x04123456, "12345600", 0x04123456, false, false),
            (0x04923456, "12345600", 0x04923456, true, false),
            (0x05009234, "92340000", 0x05009234, false, false),
            (
                0x20123456,
                "1234560000000000000000000000000000000000000000000000000000000000",
                0x20123456,
                false,
                false,
            ),
        ];
        for &(bits, value, compact, negative, overflow) in cases {
            let (target, neg, ovf) = CompactTarget(bits).decode();
            assert_eq!(target, t(value), "value of {bits:#010x}");
            assert_eq!((neg, ovf), (negative, overflow), "flags of {bits:#010x}");
            assert_eq!(
                CompactTarget::encode(&target, neg),
                CompactTarget(compact),
                "compact of {bits:#010x}"
            );
        }
        // 0x80 must not produce a compact with the sign bit set.
        assert_eq!(t("80").to_compact(), CompactTarget(0x02008000));
        // Overflow and the errors it gives.
        let (_, _, overflow) = CompactTarget(0xff123456).decode();
        assert!(overflow);
        assert_eq!(
            CompactTarget(0xff123456).to_target(),
            Err(CompactError::Overflow(0xff123456))
        );
        assert_eq!(
            CompactTarget(0x04923456).to_target(),
            Err(CompactError::Negative(0x04923456))
        );
        // The boundaries of the overflow rule: size 34 with one mantissa byte fits, 35 does not.
        assert!(!CompactTarget(0x22000001).decode().2);
        assert!(CompactTarget(0x23000001).decode().2);
        assert!(!CompactTarget(0x21000100).decode().2);
        assert!(CompactTarget(0x22000100).decode().2);
        assert!(!CompactTarget(0x20010000).decode().2);
        assert!(CompactTarget(0x21010000).decode().2);
    }

    #[test]
    fn difficulty_and_target() {
        assert_eq!(Target::from_difficulty(1.0).unwrap(), Target::DIFF1);
        assert_eq!(
            Target::from_difficulty(2.0).unwrap().to_be_hex(),
            format!("000000007fff8{}", "0".repeat(51))
        );
        // 1/65536 of difficulty 1 is exactly 0xffff << 224.
        assert_eq!(
            Target::from_difficulty(1.0 / 65536.0).unwrap().to_be_hex(),
            format!("0000ffff{}", "0".repeat(56))
        );
        // Integral difficulties are exact integer divisions.
        let d = Target::from_difficulty(16384.0).unwrap();
        assert_eq!(
            d,
            t("000000000003fffc000000000000000000000000000000000000000000000000")
        );
        // Fractional: 0.01 as ckpool sends it.
        let hundredth = Target::from_difficulty(0.01).unwrap();
        assert!((hundredth.difficulty() - 0.01).abs() < 1e-12);
        assert!(hundredth > Target::DIFF1);
        // Tiny difficulties saturate; zero, negative and NaN are errors.
        assert_eq!(Target::from_difficulty(1e-30).unwrap(), Target::MAX);
        assert!(Target::from_difficulty(0.0).is_err());
        assert!(Target::from_difficulty(-1.0).is_err());
        assert!(Target::from_difficulty(f64::NAN).is_err());
        assert!(Target::from_difficulty(f64::INFINITY).is_err());
        // Huge difficulties give tiny (possibly zero) targets, never a panic.
        assert_eq!(Target::from_difficulty(f64::MAX).unwrap(), Target::ZERO);
    }

    #[test]
    fn hash_difficulty_and_compare() {
        // Genesis block hash: difficulty a little above 2536 (it was lucky).
        let genesis: Hash256 = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
            .parse()
            .unwrap();
        let d = hash_difficulty(&genesis);
        assert!((2536.0..2537.0).contains(&d), "{d}");
        assert!(Target::DIFF1.is_met_by(&genesis));
        assert!(Target::from_difficulty(2536.0).unwrap().is_met_by(&genesis));
        assert!(!Target::from_difficulty(2537.0).unwrap().is_met_by(&genesis));
        // Equality meets the target.
        let at = Target::from_hash(&genesis);
        assert!(at.is_met_by(&genesis));
        assert_eq!(hash_difficulty(&Hash256::ZERO), f64::INFINITY);
    }
}
