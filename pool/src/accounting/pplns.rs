//! The PPLNS split as a pure function: a block's reward, the fee, and the difficulty each
//! address contributed to the window become integer credits that add up to the reward
//! exactly. `docs/payouts.md` states the formula with a worked example.
//!
//! Share difficulties are fractions (a regtest share is worth about 1e-10), so the weights
//! are turned into 62-bit fixed point first; from there on every step is integer
//! arithmetic: the same inputs give the same satoshis on every machine, and rounding only
//! ever goes down, with the residue kept by the pool.

use protocol::Amount;

use crate::config::Unfilled;

/// One address's part of a window.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// The payout address.
    pub address: String,
    /// Sum of the difficulty of its shares inside the window.
    pub difficulty: f64,
}

/// How a block's reward is divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Credits per address, in the order of the weights given, zero credits left out.
    pub credits: Vec<(String, Amount)>,
    /// The pool's fee.
    pub fee: Amount,
    /// What rounding (and, with [`Unfilled::PoolKeepsRest`], the empty part of the window)
    /// left over; the pool keeps it.
    pub residue: Amount,
}

impl Split {
    /// Everything the pool keeps: the fee and the residue.
    pub fn pool_amount(&self) -> Amount {
        self.fee + self.residue
    }
}

/// Puts weights in the order windows list them: largest first, ties by address.
pub fn sort_weights(weights: &mut [Weight]) {
    weights.sort_by(|a, b| {
        b.difficulty
            .total_cmp(&a.difficulty)
            .then_with(|| a.address.cmp(&b.address))
    });
}

/// The fee in parts per million of the reward, from a percentage (1.5 -> 15000).
pub fn fee_ppm(percent: f64) -> u64 {
    (percent.clamp(0.0, 100.0) * 10_000.0).round() as u64
}

/// Divides `reward`. `window` is the difficulty the window asks for (k x network
/// difficulty); the weights may add up to less when the pool has not seen that much work
/// yet, and then `unfilled` decides.
///
/// fee = floor(reward x fee_ppm / 10^6); rest = reward - fee;
/// credit(a) = floor(rest x w(a) / D), where D = sum of the weights (a full window, or
/// [`Unfilled::ShareAll`]) or the window itself ([`Unfilled::PoolKeepsRest`]);
/// residue = rest - sum of credits.
pub fn split(
    reward: Amount,
    fee_ppm: u64,
    window: f64,
    weights: &[Weight],
    unfilled: Unfilled,
) -> Split {
    let reward = reward.to_sat();
    let fee = (u128::from(reward) * u128::from(fee_ppm.min(1_000_000)) / 1_000_000) as u64;
    let rest = reward - fee;
    let total: f64 = weights
        .iter()
        .map(|w| w.difficulty.max(0.0))
        .filter(|d| d.is_finite())
        .sum();
    if total <= 0.0 || !total.is_finite() {
        return Split {
            credits: Vec::new(),
            fee: Amount::from_sat(fee),
            residue: Amount::from_sat(rest),
        };
    }
    let denominator = match unfilled {
        Unfilled::PoolKeepsRest if window.is_finite() && window > total => window,
        _ => total,
    };
    // Scale so that the denominator is just under 2^62: rest (< 2^64) times a weight
    // (< 2^62) fits in u128.
    let scale = 2f64.powi(61 - denominator.log2().ceil() as i32);
    let fixed = |d: f64| (d.max(0.0) * scale).floor() as u128;
    let fixed_weights: Vec<u128> = weights
        .iter()
        .map(|w| {
            if w.difficulty.is_finite() {
                fixed(w.difficulty)
            } else {
                0
            }
        })
        .collect();
    let fixed_denominator = match unfilled {
        Unfilled::PoolKeepsRest if denominator > total => fixed(denominator),
        _ => fixed_weights.iter().sum(),
    }
    .max(1);
    let mut credits = Vec::new();
    let mut paid = 0u64;
    for (w, fw) in weights.iter().zip(&fixed_weights) {
        let credit = (u128::from(rest) * fw / fixed_denominator) as u64;
        if credit > 0 {
            credits.push((w.address.clone(), Amount::from_sat(credit)));
            paid += credit;
        }
    }
    Split {
        credits,
        fee: Amount::from_sat(fee),
        residue: Amount::from_sat(rest - paid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A split in satoshis, as the cases below are written.
    #[derive(Debug, PartialEq)]
    struct Sats {
        credits: Vec<(String, u64)>,
        fee: u64,
        residue: u64,
    }

    fn split(
        reward: u64,
        fee_ppm: u64,
        window: f64,
        weights: &[Weight],
        unfilled: Unfilled,
    ) -> Sats {
        let s = super::split(Amount::from_sat(reward), fee_ppm, window, weights, unfilled);
        Sats {
            credits: s
                .credits
                .into_iter()
                .map(|(a, c)| (a, c.to_sat()))
                .collect(),
            fee: s.fee.to_sat(),
            residue: s.residue.to_sat(),
        }
    }

    fn w(address: &str, difficulty: f64) -> Weight {
        Weight {
            address: address.into(),
            difficulty,
        }
    }

    fn total(s: &Sats) -> u64 {
        s.credits.iter().map(|(_, c)| c).sum::<u64>() + s.fee + s.residue
    }

    #[test]
    fn the_worked_example_of_the_docs() {
        // docs/payouts.md: 50 BTC, 1 % fee, a full window of 2 x 1000 shared 3:1.
        let s = split(
            5_000_000_000,
            fee_ppm(1.0),
            2000.0,
            &[w("alice", 1500.0), w("bob", 500.0)],
            Unfilled::ShareAll,
        );
        assert_eq!(s.fee, 50_000_000);
        assert_eq!(
            s.credits,
            vec![
                ("alice".into(), 3_712_500_000),
                ("bob".into(), 1_237_500_000)
            ]
        );
        assert_eq!(s.residue, 0);
        assert_eq!(total(&s), 5_000_000_000);
    }

    #[test]
    fn thirds_leave_a_residue_for_the_pool() {
        let s = split(
            100,
            0,
            3.0,
            &[w("a", 1.0), w("b", 1.0), w("c", 1.0)],
            Unfilled::ShareAll,
        );
        assert_eq!(
            s.credits,
            vec![("a".into(), 33), ("b".into(), 33), ("c".into(), 33)]
        );
        assert_eq!((s.fee, s.residue, total(&s)), (0, 1, 100));
    }

    #[test]
    fn an_unfilled_window_follows_the_policy() {
        // Only a quarter of the window exists.
        let weights = [w("a", 300.0), w("b", 200.0)];
        let all = split(1_000_000, 0, 2000.0, &weights, Unfilled::ShareAll);
        assert_eq!(
            all.credits,
            vec![("a".into(), 600_000), ("b".into(), 400_000)]
        );
        let keep = split(1_000_000, 0, 2000.0, &weights, Unfilled::PoolKeepsRest);
        assert_eq!(
            keep.credits,
            vec![("a".into(), 150_000), ("b".into(), 100_000)]
        );
        assert_eq!(keep.residue, 750_000);
        // A full window is the same under both.
        let full = [w("a", 1200.0), w("b", 800.0)];
        assert_eq!(
            split(1_000_000, 0, 2000.0, &full, Unfilled::ShareAll),
            split(1_000_000, 0, 2000.0, &full, Unfilled::PoolKeepsRest)
        );
    }

    #[test]
    fn tiny_and_huge_difficulties_keep_their_ratio() {
        // Powers of two are exact in binary: the split is exactly 3:1. Other scales are
        // within a satoshi (the weights are binary fractions of the decimal ones).
        for (scale, exact) in [
            (2f64.powi(-32), true),
            (1.0, true),
            (2f64.powi(40), true),
            (1e-10, false),
            (4.656_542_373_906_925e-10, false),
            (1e20, false),
        ] {
            let s = split(
                312_500_000,
                fee_ppm(2.5),
                4.0 * scale,
                &[w("a", 3.0 * scale), w("b", scale)],
                Unfilled::ShareAll,
            );
            assert_eq!(s.fee, 7_812_500);
            let rest = 312_500_000 - 7_812_500;
            let slack = if exact { 0 } else { 1 };
            assert!(
                s.credits[0].1.abs_diff(rest / 4 * 3) <= slack,
                "scale {scale}: {s:?}"
            );
            assert!(
                s.credits[1].1.abs_diff(rest / 4) <= slack,
                "scale {scale}: {s:?}"
            );
            assert_eq!(total(&s), 312_500_000);
        }
    }

    #[test]
    fn nothing_to_share_goes_to_the_pool() {
        let s = split(1000, fee_ppm(1.0), 10.0, &[], Unfilled::ShareAll);
        assert_eq!((s.fee, s.residue, s.credits.len()), (10, 990, 0));
        let s = split(
            1000,
            0,
            10.0,
            &[w("a", f64::NAN), w("b", 0.0)],
            Unfilled::ShareAll,
        );
        assert_eq!((s.residue, s.credits.len()), (1000, 0));
        let s = split(
            1000,
            fee_ppm(100.0),
            10.0,
            &[w("a", 1.0)],
            Unfilled::ShareAll,
        );
        assert_eq!((s.fee, s.credits.len()), (1000, 0));
    }

    #[test]
    fn credits_never_exceed_the_reward() {
        // Awkward ratios over many sizes: the sum is always exact.
        let mut seed = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 7 + 1) as usize;
            let weights: Vec<Weight> = (0..n)
                .map(|i| {
                    w(
                        &format!("m{i}"),
                        ((seed >> (i * 5)) % 997 + 1) as f64 * 1.7e-9,
                    )
                })
                .collect();
            let reward = seed % 2_100_000_000_000_000;
            let window = weights.iter().map(|w| w.difficulty).sum::<f64>() * 1.5;
            for policy in [Unfilled::ShareAll, Unfilled::PoolKeepsRest] {
                let s = split(reward, fee_ppm(1.3), window, &weights, policy);
                assert_eq!(total(&s), reward);
            }
        }
    }
}
