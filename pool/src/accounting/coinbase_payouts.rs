//! Coinbase payouts at work (`payouts.method = "coinbase"`): a task keeps the PPLNS
//! window as it stands now and the carried balances ([`Basis`]) fresh from PostgreSQL, and
//! the job maker turns the basis and each template into the coinbase outputs
//! ([`Payouts::paying`]): the split of [`pplns::split`], planned by [`coinbase_plan`].
//!
//! Every pool process computes its basis from the same database, so processes agree up to
//! what each has read: the window moves with shares written since (a batch interval), and
//! carried balances with blocks written since. A basis is read at every new template and
//! every `jobs.refresh_secs`; jobs are rebuilt when it changes.

use std::sync::Arc;
use std::time::Duration;

use protocol::Amount;
use protocol::address::Network;
use protocol::coinbase::CoinbaseOutput;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::accounting::coinbase_plan::{self, Plan};
use crate::accounting::pplns::{self, Weight};
use crate::chain::jobs::{Payout, PayoutRow};
use crate::chain::template::Template;
use crate::clock::now_us;
use crate::config::{PayoutsConfig, Unfilled};
use crate::store::Store;

/// What coinbases are split from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Basis {
    /// The window's difficulty per address, largest first.
    pub weights: Vec<Weight>,
    /// The window's size (`window_factor` x network difficulty).
    pub size: f64,
    /// Balances carried from earlier coinbases.
    pub carried: Vec<(String, Amount)>,
    /// The newest coinbase-payout blocks those balances count (display hashes).
    pub blocks: Vec<String>,
}

/// The settings a coinbase split needs.
#[derive(Clone, Debug)]
pub struct Payouts {
    /// The pool's output script (fee, residue, carried credits).
    pub pool_script: Vec<u8>,
    /// The chain the addresses belong to.
    pub network: Network,
    /// Fee, parts per million.
    pub fee_ppm: u64,
    /// Policy for a window that is not full.
    pub unfilled: Unfilled,
    /// Most outputs, the pool's included.
    pub max_outputs: usize,
    /// Least output.
    pub min_output: Amount,
}

impl Payouts {
    /// From the settings.
    pub fn new(config: &PayoutsConfig, pool_script: Vec<u8>, network: Network) -> Payouts {
        Payouts {
            pool_script,
            network,
            fee_ppm: pplns::fee_ppm(config.fee_percent),
            unfilled: config.unfilled,
            max_outputs: config.max_outputs,
            min_output: Amount::from_sat(config.min_output),
        }
    }

    /// The outputs and payout record of `template`'s coinbase from `basis` (everything to
    /// the pool without one: a new pool, or a database not read yet).
    /// `found`: payouts of blocks this process found lately, counted here when the basis
    /// does not count them yet.
    pub fn paying(
        &self,
        template: &Template,
        basis: Option<&Basis>,
        found: &[(String, Arc<Payout>)],
    ) -> Result<(Vec<CoinbaseOutput>, Payout), String> {
        let reward = Amount::from_sat(template.checked.coinbase_value);
        let empty = Basis::default();
        let basis = basis.unwrap_or(&empty);
        let carried = with_found(&basis.carried, &basis.blocks, found);
        let split = pplns::split(
            reward,
            self.fee_ppm,
            basis.size,
            &basis.weights,
            self.unfilled,
        );
        let plan = coinbase_plan::plan(&split, &carried, self.max_outputs, self.min_output);
        let outputs = coinbase_plan::outputs(&plan, &self.pool_script, self.network)
            .map_err(|e| e.to_string())?;
        Ok((outputs, payout(&plan, &split.credits, &basis.weights)))
    }
}

/// `carried` (which counts `counted` blocks) with the payouts of `found` blocks it does not
/// count yet: each adds its credit and takes what it paid.
fn with_found(
    carried: &[(String, Amount)],
    counted: &[String],
    found: &[(String, Arc<Payout>)],
) -> Vec<(String, Amount)> {
    let mut owed: std::collections::BTreeMap<String, i128> = carried
        .iter()
        .map(|(a, n)| (a.clone(), i128::from(n.to_sat())))
        .collect();
    for (hash, payout) in found.iter().filter(|(h, _)| !counted.contains(h)) {
        let _ = hash;
        for row in &payout.rows {
            *owed.entry(row.address.clone()).or_default() +=
                i128::from(row.credit) - i128::from(row.paid);
        }
    }
    owed.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(a, n)| (a, Amount::from_sat(u64::try_from(n).unwrap_or(u64::MAX))))
        .collect()
}

/// The record of a plan: every address with a credit, a payment or a carried balance.
fn payout(plan: &Plan, credits: &[(String, Amount)], weights: &[Weight]) -> Payout {
    let mut rows: Vec<PayoutRow> = Vec::new();
    let row = |rows: &mut Vec<PayoutRow>, address: &str| -> usize {
        if let Some(i) = rows.iter().position(|r| r.address == address) {
            return i;
        }
        rows.push(PayoutRow {
            address: address.to_string(),
            difficulty: weights
                .iter()
                .find(|w| w.address == address)
                .map_or(0.0, |w| w.difficulty),
            credit: 0,
            paid: 0,
            output: None,
        });
        rows.len() - 1
    };
    for (address, credit) in credits {
        let i = row(&mut rows, address);
        rows[i].credit = credit.to_sat();
    }
    for (index, (address, paid)) in plan.outputs.iter().enumerate() {
        let i = row(&mut rows, address);
        rows[i].paid = paid.to_sat();
        rows[i].output = u32::try_from(index).ok();
    }
    // Carried balances that neither got a credit nor were paid need no row: the store's
    // sums over earlier blocks already hold them.
    Payout {
        rows,
        pool: plan.pool.to_sat(),
    }
}

/// The basis of a window of `size` ending at `end_us`, from the database.
pub async fn read_basis(
    store: &Store,
    size: f64,
    end_us: i64,
) -> Result<Basis, crate::store::StoreError> {
    let window = store.pplns_window(end_us, size).await?;
    // One statement: the balances and the blocks they count agree.
    let (carried, blocks) = store.carried_with_blocks(64).await?;
    Ok(Basis {
        weights: window.weights,
        size,
        carried,
        blocks,
    })
}

/// Keeps `basis` fresh: at every new template and every `every`, until `cancel`.
pub async fn refresh(
    store: Store,
    window_factor: f64,
    mut templates: watch::Receiver<Option<Arc<Template>>>,
    basis: watch::Sender<Option<Arc<Basis>>>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut logged_empty = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = templates.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let Some(template) = templates.borrow_and_update().clone() else {
            continue;
        };
        let network = protocol::Difficulty::of_target(&template.checked.target).get();
        let size = window_factor * network;
        match read_basis(&store, size, now_us()).await {
            Ok(b) => {
                if b.weights.is_empty() && !logged_empty {
                    info!("the PPLNS window is empty: coinbases pay the pool's address alone");
                }
                logged_empty = b.weights.is_empty();
                basis.send_if_modified(|old| {
                    let changed = old.as_deref() != Some(&b);
                    if changed {
                        *old = Some(Arc::new(b));
                    }
                    changed
                });
            }
            Err(e) => {
                warn!(error = %e, "cannot read the PPLNS window; coinbases keep the last split")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_found_here_counts_before_the_database_has_it() {
        let payout = Arc::new(Payout {
            rows: vec![
                PayoutRow {
                    address: "carol".into(),
                    difficulty: 1.0,
                    credit: 200,
                    paid: 1000,
                    output: Some(1),
                },
                PayoutRow {
                    address: "dave".into(),
                    difficulty: 1.0,
                    credit: 300,
                    paid: 0,
                    output: None,
                },
            ],
            pool: 0,
        });
        let carried = vec![("carol".to_string(), Amount::from_sat(800))];
        let found = vec![("b2".to_string(), payout)];
        // Not in the database yet: carol's 800 was just paid, dave now carries 300.
        assert_eq!(
            with_found(&carried, &["b1".into()], &found),
            vec![("dave".to_string(), Amount::from_sat(300))]
        );
        // Once the basis counts it, memory adds nothing.
        assert_eq!(with_found(&carried, &["b2".into()], &found), carried);
    }

    #[test]
    fn the_record_names_credits_payments_and_output_indexes() {
        let plan = Plan {
            outputs: vec![
                ("a".into(), Amount::from_sat(7000)),
                ("c".into(), Amount::from_sat(1200)),
            ],
            pool: Amount::from_sat(2000),
            carried: vec![("b".into(), Amount::from_sat(800))],
        };
        let credits = vec![
            ("a".to_string(), Amount::from_sat(7000)),
            ("b".to_string(), Amount::from_sat(800)),
            ("c".to_string(), Amount::from_sat(200)),
        ];
        let weights = vec![Weight {
            address: "a".into(),
            difficulty: 7.0,
        }];
        let p = payout(&plan, &credits, &weights);
        assert_eq!(p.pool, 2000);
        let row = |a: &str| p.rows.iter().find(|r| r.address == a).unwrap().clone();
        assert_eq!(
            (row("a").credit, row("a").paid, row("a").output),
            (7000, 7000, Some(0))
        );
        assert_eq!(row("a").difficulty, 7.0);
        assert_eq!(
            (row("b").credit, row("b").paid, row("b").output),
            (800, 0, None)
        );
        assert_eq!(
            (row("c").credit, row("c").paid, row("c").output),
            (200, 1200, Some(1))
        );
    }
}
