//! Coinbase payouts as a pure function (`payouts.method = "coinbase"`, issue 20): which
//! outputs a job's coinbase pays, from the PPLNS [`Split`] of its reward and what earlier
//! coinbases could not pay.
//!
//! What each address is owed is its credit from this split plus its carried balance.
//! Addresses owed at least `min_output` are paid, largest first (ties by address), while
//! there are output slots (`max_outputs`, one of them the pool's): in full while the reward
//! covers them, the last one in part (what is left, when that is at least `min_output`).
//! Everyone else is carried: their credit goes into the pool's output this time, and their
//! balance grows by it. So the pool's output is
//!
//! ```text
//! pool = fee + residue + credits of the carried - carried balances paid out now
//! ```
//!
//! and the outputs always add up to the reward exactly. The pool holds the carried
//! balances (they went into its own output of earlier blocks) until a later coinbase pays
//! them. An address is carried while it is owed less than `min_output`, while
//! `max_outputs - 1` addresses are owed more, or while the reward left is dust (a carried
//! balance is paid out of the pool's part of a later reward, in part if need be).
//! [`Plan::carried_total`] is what the pool holds for miners.

use std::collections::BTreeMap;

use protocol::Amount;
use protocol::address::{self, AddressError, Network};
use protocol::coinbase::CoinbaseOutput;

use crate::accounting::pplns::Split;

/// One coinbase's payouts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Outputs to miners, largest first (ties by address).
    pub outputs: Vec<(String, Amount)>,
    /// The pool's output: its fee, the rounding residue, and the credits it carries.
    pub pool: Amount,
    /// Every address's carried balance after this coinbase, by address (zeros left out).
    pub carried: Vec<(String, Amount)>,
}

impl Plan {
    /// What the pool owes miners after this coinbase (the carried balances).
    pub fn carried_total(&self) -> Amount {
        self.carried
            .iter()
            .fold(Amount::ZERO, |sum, (_, a)| sum + *a)
    }
}

/// The coinbase payouts for `split` (of a reward of `split`'s total), given the balances
/// carried from earlier coinbases. `max_outputs` counts the pool's output (at least 1).
pub fn plan(
    split: &Split,
    carried: &[(String, Amount)],
    max_outputs: usize,
    min_output: Amount,
) -> Plan {
    let credits_total = split
        .credits
        .iter()
        .fold(Amount::ZERO, |sum, (_, a)| sum + *a);
    let reward = split.fee + split.residue + credits_total;
    // address -> (owed, of which carried from before)
    let mut owed: BTreeMap<&str, (Amount, Amount)> = BTreeMap::new();
    for (address, amount) in carried {
        let e = owed.entry(address).or_insert((Amount::ZERO, Amount::ZERO));
        e.0 += *amount;
        e.1 += *amount;
    }
    for (address, amount) in &split.credits {
        owed.entry(address)
            .or_insert((Amount::ZERO, Amount::ZERO))
            .0 += *amount;
    }
    let mut candidates: Vec<(&str, Amount)> = owed
        .iter()
        .filter(|(_, (o, _))| *o >= min_output && *o > Amount::ZERO)
        .map(|(a, (o, _))| (*a, *o))
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let slots = max_outputs.saturating_sub(1);
    let mut outputs = Vec::new();
    let mut paid_total = Amount::ZERO;
    for (address, amount) in candidates {
        if outputs.len() == slots {
            break;
        }
        // A carried balance is paid out of this reward: in full while the reward covers
        // it, else in part (what is left of the reward, if that is not dust), so that a
        // balance larger than any one reward is still paid down.
        let pay = amount.min(reward - paid_total);
        if pay < min_output || pay == Amount::ZERO {
            continue;
        }
        paid_total += pay;
        outputs.push((address.to_string(), pay));
    }
    let carried = owed
        .iter()
        .map(|(a, (o, _))| {
            let paid = outputs
                .iter()
                .find(|(p, _)| p == a)
                .map_or(Amount::ZERO, |(_, n)| *n);
            (a.to_string(), *o - paid)
        })
        .filter(|(_, left)| *left > Amount::ZERO)
        .collect();
    Plan {
        outputs,
        pool: reward - paid_total,
        carried,
    }
}

/// The coinbase outputs of `plan`: the miners' in the plan's order, then the pool's
/// (`pool_script`) when it gets anything. Every address was checked at authorize, so an
/// error here means the plan holds an address of another network: no coinbase is built.
pub fn outputs(
    plan: &Plan,
    pool_script: &[u8],
    network: Network,
) -> Result<Vec<CoinbaseOutput>, AddressError> {
    let mut out = Vec::with_capacity(plan.outputs.len() + 1);
    for (text, amount) in &plan.outputs {
        out.push(CoinbaseOutput {
            value: amount.to_sat(),
            script_pubkey: address::parse(text, network)?.script_pubkey,
        });
    }
    if plan.pool > Amount::ZERO {
        out.push(CoinbaseOutput {
            value: plan.pool.to_sat(),
            script_pubkey: pool_script.to_vec(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sat(n: u64) -> Amount {
        Amount::from_sat(n)
    }

    fn split(credits: &[(&str, u64)], fee: u64, residue: u64) -> Split {
        Split {
            credits: credits
                .iter()
                .map(|(a, n)| (a.to_string(), sat(*n)))
                .collect(),
            fee: sat(fee),
            residue: sat(residue),
        }
    }

    fn pairs(v: &[(String, Amount)]) -> Vec<(&str, u64)> {
        v.iter().map(|(a, n)| (a.as_str(), n.to_sat())).collect()
    }

    #[test]
    fn everyone_above_dust_is_paid_and_the_rest_is_carried_by_the_pool() {
        // 10,000 sat: fee 100, residue 1, credits 6000 / 3000 / 899 / 0.
        let s = split(&[("a", 6000), ("b", 3000), ("c", 899)], 100, 1);
        let p = plan(&s, &[], 10, sat(1000));
        assert_eq!(pairs(&p.outputs), vec![("a", 6000), ("b", 3000)]);
        assert_eq!(p.pool, sat(100 + 1 + 899));
        assert_eq!(pairs(&p.carried), vec![("c", 899)]);
        assert_eq!(p.carried_total(), sat(899));
        // Next block: c's credit 200 plus its 899 carried passes the dust line; the pool's
        // output pays the 899 it held out of its fee.
        let s = split(&[("a", 6800), ("b", 2900), ("c", 200)], 1000, 0);
        let p = plan(&s, &p.carried, 10, sat(1000));
        assert_eq!(
            pairs(&p.outputs),
            vec![("a", 6800), ("b", 2900), ("c", 1099)]
        );
        assert_eq!(p.pool, sat(1000 - 899));
        assert!(p.carried.is_empty());
    }

    #[test]
    fn past_the_output_cap_the_smallest_wait() {
        let s = split(&[("a", 5000), ("b", 3000), ("c", 1500)], 500, 0);
        let p = plan(&s, &[], 3, sat(1));
        assert_eq!(pairs(&p.outputs), vec![("a", 5000), ("b", 3000)]);
        assert_eq!(p.pool, sat(500 + 1500));
        assert_eq!(pairs(&p.carried), vec![("c", 1500)]);
        // Ties go by address, so every process builds the same outputs.
        let s = split(&[("b", 100), ("a", 100)], 0, 0);
        let p = plan(&s, &[], 2, sat(1));
        assert_eq!(pairs(&p.outputs), vec![("a", 100)]);
    }

    #[test]
    fn a_carried_balance_is_paid_only_when_the_reward_covers_it() {
        // A new pool keeps everything (empty window); x is owed 900 from before.
        let s = split(&[], 50, 0);
        let p = plan(&s, &[("x".into(), sat(900))], 10, sat(100));
        assert!(p.outputs.is_empty(), "50 sat cannot pay 900");
        assert_eq!(p.pool, sat(50));
        assert_eq!(pairs(&p.carried), vec![("x", 900)]);
    }

    #[test]
    fn a_balance_larger_than_the_reward_is_paid_down_in_part() {
        // Output cap 2: one miner a block. b carries 9,000 and is owed 9,000 + 1,000.
        let s = split(&[("a", 4000), ("b", 1000)], 5000, 0);
        let p = plan(&s, &[("b".into(), sat(9000))], 2, sat(100));
        // b (10,000 owed) comes first but the reward is 10,000 in all: paid 10,000.
        assert_eq!(pairs(&p.outputs), vec![("b", 10_000)]);
        assert_eq!(p.pool, sat(0));
        assert_eq!(pairs(&p.carried), vec![("a", 4000)]);
        let s = split(&[("a", 4000), ("b", 1000)], 1000, 0);
        let p = plan(&s, &[("b".into(), sat(20_000))], 3, sat(100));
        // b is owed 21,000 of a 6,000 reward: it takes all of it; a waits.
        assert_eq!(pairs(&p.outputs), vec![("b", 6000)]);
        assert_eq!(pairs(&p.carried), vec![("a", 4000), ("b", 15_000)]);
    }

    /// xorshift64*: deterministic cases.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn outputs_always_add_up_and_nothing_is_lost() {
        let mut rng = Rng(7);
        let names: Vec<String> = (0..40).map(|i| format!("addr{i:02}")).collect();
        let mut carried: Vec<(String, Amount)> = Vec::new();
        for _ in 0..500 {
            let n = (rng.next() % 40) as usize;
            let credits: Vec<(&str, u64)> = (0..n)
                .map(|i| (names[i].as_str(), rng.next() % 50_000))
                .filter(|(_, c)| *c > 0)
                .collect();
            let s = split(&credits, rng.next() % 10_000, rng.next() % 50);
            let max_outputs = 1 + (rng.next() % 12) as usize;
            let min_output = sat(rng.next() % 20_000);
            let p = plan(&s, &carried, max_outputs, min_output);
            let reward = s.pool_amount() + s.credits.iter().fold(Amount::ZERO, |t, c| t + c.1);
            let outs = p.outputs.iter().fold(Amount::ZERO, |t, o| t + o.1);
            assert_eq!(outs + p.pool, reward, "outputs add up to the reward");
            assert!(p.outputs.len() < max_outputs.max(1));
            assert!(p.outputs.iter().all(|(_, a)| *a >= min_output));
            // What the pool holds for miners moves by exactly what its output kept for them.
            let before = carried.iter().fold(Amount::ZERO, |t, c| t + c.1);
            assert_eq!(
                p.carried_total().to_sat() as i64 - before.to_sat() as i64,
                p.pool.to_sat() as i64 - s.pool_amount().to_sat() as i64
            );
            carried = p.carried;
        }
    }

    #[test]
    fn a_real_template_gets_a_coinbase_that_pays_the_plan_exactly() {
        use protocol::coinbase::{Coinbase, CoinbaseSpec, template_witness_commitment};
        // testnet3 block 2442185 as public-pool's node served it (segwit, with fees).
        let json: serde_json::Value = serde_json::from_str(include_str!(
            "../../../protocol/tests/data/gbt-testnet3-2442185-public-pool.json"
        ))
        .unwrap();
        let template = protocol::template::BlockTemplate::from_json(&json)
            .unwrap()
            .validate()
            .unwrap();
        let reward = Amount::from_sat(template.coinbase_value);
        let miners = [
            ("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", 5.0),
            ("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", 3.0),
            ("n3GNqMveyvaPvUbH469vDRadqpJMPc84JA", 1e-6),
        ];
        let weights: Vec<crate::accounting::pplns::Weight> = miners
            .iter()
            .map(|(a, d)| crate::accounting::pplns::Weight {
                address: a.to_string(),
                difficulty: *d,
            })
            .collect();
        let split = crate::accounting::pplns::split(
            reward,
            crate::accounting::pplns::fee_ppm(1.0),
            8.0,
            &weights,
            crate::config::Unfilled::ShareAll,
        );
        let plan = plan(&split, &[], 10, sat(10_000));
        assert_eq!(plan.outputs.len(), 2, "the third miner's credit is dust");
        assert!(
            plan.carried
                .iter()
                .all(|(a, n)| a == miners[2].0 && *n < sat(10_000))
        );
        let pool_script = vec![0x51]; // OP_TRUE, any script will do here
        let outs = outputs(&plan, &pool_script, Network::Test).unwrap();
        assert_eq!(outs.len(), 3);
        assert_eq!(
            outs.iter().map(|o| o.value).sum::<u64>(),
            template.coinbase_value,
            "every satoshi of the template's coinbase value is paid"
        );
        let cb = Coinbase::build(&CoinbaseSpec {
            height: template.height,
            aux: template.coinbase_aux.clone(),
            pool_tag: b"/pool/".to_vec(),
            extranonce1_len: 4,
            extranonce2_len: 8,
            outputs: outs.clone(),
            coinbase_value: template.coinbase_value,
            witness_commitment: template_witness_commitment(&template).unwrap(),
        })
        .unwrap();
        // The serialized coinbase parses as a transaction with those outputs, then the
        // witness commitment.
        let tx: bitcoin::Transaction =
            bitcoin::consensus::deserialize(&cb.tx(&[0; 4], &[0; 8]).unwrap()).unwrap();
        assert_eq!(tx.output.len(), 4);
        for (o, want) in tx.output.iter().zip(&outs) {
            assert_eq!(o.value.to_sat(), want.value);
            assert_eq!(o.script_pubkey.as_bytes(), want.script_pubkey.as_slice());
        }
        assert_eq!(tx.output[3].value.to_sat(), 0);
        // An address of another network cannot slip into a coinbase.
        let wrong = Plan {
            outputs: vec![("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4".into(), sat(1))],
            pool: Amount::ZERO,
            carried: Vec::new(),
        };
        assert!(outputs(&wrong, &pool_script, Network::Test).is_err());
    }
}
