//! Block tracking (the leader runs it): a found block's PPLNS window is frozen into
//! `credits` a few seconds after it is found; the block then stays pending until the chain
//! decides. The hash at its height on the node's best chain settles it: a different hash
//! means orphaned (nobody is credited), ours with enough confirmations means confirmed,
//! and its credits move into `balances` in the same transaction that marks it so.

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::accounting::pplns;
use crate::chain::node::{Node, NodeError, call_any};
use crate::config::{Mode, PayoutsConfig};
use crate::observe::notify::{Note, Notifier};
use crate::store::books::{DueBlock, Frozen};
use crate::store::{Store, StoreError};

/// Why a tracking round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No node could answer.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// The node answered something unexpected.
    #[error("node: unexpected {method} reply: {reply}")]
    Reply {
        /// The call.
        method: &'static str,
        /// What it said.
        reply: String,
    },
}

/// Freezes windows and decides pending blocks.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// The database.
    pub store: Store,
    /// Nodes, in order of preference.
    pub nodes: Vec<Node>,
    /// SOLO blocks are tracked too, but credit no one.
    pub mode: Mode,
    /// Window, fee, policy, confirmations.
    pub payouts: PayoutsConfig,
    /// Where confirmations and orphans are told.
    pub notify: Notifier,
}

impl Tracker {
    /// One round: freeze what is due, then check every pending block.
    pub async fn step(&self) -> Result<(), TrackError> {
        self.freeze_due().await?;
        self.decide_pending().await
    }

    /// Freezes the windows of blocks found more than `freeze_delay_secs` ago.
    pub async fn freeze_due(&self) -> Result<(), TrackError> {
        for block in self
            .store
            .due_for_freezing(self.payouts.freeze_delay_secs)
            .await?
        {
            self.freeze(&block).await?;
        }
        Ok(())
    }

    async fn freeze(&self, block: &DueBlock) -> Result<(), TrackError> {
        let network = block.network_difficulty;
        let previous = self.store.found_before(block.found_us).await?;
        let effort = self
            .store
            .difficulty_between(previous, block.found_us)
            .await?
            / network;
        let size = self.payouts.window_factor * network;
        let paid_by_coinbase = self.store.coinbase_payout_of(&block.hash).await?;
        let frozen = match self.mode {
            // Its coinbase paid the miners: the round's credits are what it paid.
            _ if paid_by_coinbase.is_some() => {
                let (pool, rows) = paid_by_coinbase.unwrap_or_default();
                Frozen {
                    effort,
                    window_difficulty: size,
                    window_filled: rows.iter().map(|(_, d, _)| d).sum(),
                    pool_amount: Some(pool),
                    credits: rows
                        .into_iter()
                        .filter(|(_, _, p)| p.to_sat() > 0)
                        .collect(),
                }
            }
            Mode::Pplns => {
                let window = self.store.pplns_window(block.found_us, size).await?;
                let split = pplns::split(
                    block.reward,
                    pplns::fee_ppm(self.payouts.fee_percent),
                    size,
                    &window.weights,
                    self.payouts.unfilled,
                );
                let difficulty = |address: &str| {
                    window
                        .weights
                        .iter()
                        .find(|w| w.address == address)
                        .map_or(0.0, |w| w.difficulty)
                };
                Frozen {
                    effort,
                    window_difficulty: size,
                    window_filled: window.filled,
                    pool_amount: Some(split.pool_amount()),
                    credits: split
                        .credits
                        .iter()
                        .map(|(a, amount)| (a.clone(), difficulty(a), *amount))
                        .collect(),
                }
            }
            // SOLO blocks pay their finder in the coinbase: tracked, credited to no one.
            Mode::Solo => Frozen {
                effort,
                window_difficulty: size,
                window_filled: 0.0,
                pool_amount: None,
                credits: Vec::new(),
            },
        };
        if !self.store.freeze(&block.hash, &frozen).await? {
            return Ok(()); // another round got there first
        }
        info!(
            block = %block.hash,
            effort = format!("{:.1}%", effort * 100.0),
            window_filled = format!("{:.1}%", frozen.window_filled / size * 100.0),
            miners = frozen.credits.len(),
            pool_keeps = frozen.pool_amount.map_or(0, |a| a.to_sat()),
            "PPLNS window frozen"
        );
        Ok(())
    }

    /// Checks every pending block whose window is frozen against the best chain.
    pub async fn decide_pending(&self) -> Result<(), TrackError> {
        let pending = self.store.pending_blocks().await?;
        if pending.is_empty() {
            return Ok(());
        }
        let tip = call_any(&self.nodes, "getblockcount", json!([])).await?;
        let tip = tip.as_i64().ok_or_else(|| TrackError::Reply {
            method: "getblockcount",
            reply: tip.to_string(),
        })?;
        for (hash, height) in pending {
            if height > tip {
                continue; // the node is behind, or a reorg made the chain shorter for now
            }
            let at = call_any(&self.nodes, "getblockhash", json!([height])).await?;
            let Value::String(at) = at else {
                return Err(TrackError::Reply {
                    method: "getblockhash",
                    reply: at.to_string(),
                });
            };
            if at != hash {
                if self.store.orphan(&hash).await? {
                    warn!(
                        block = %hash,
                        height,
                        chain_has = %at,
                        "block orphaned: nobody is credited"
                    );
                    self.notify.send(Note::BlockOrphaned {
                        height,
                        hash: hash.clone(),
                    });
                }
                continue;
            }
            let confirmations = tip - height + 1;
            if confirmations >= i64::try_from(self.payouts.confirmations).unwrap_or(i64::MAX) {
                if let Some(miners) = self.store.confirm(&hash, confirmations).await? {
                    info!(
                        block = %hash,
                        height,
                        confirmations,
                        miners,
                        "block confirmed: credits moved to balances"
                    );
                    self.notify.send(Note::BlockConfirmed {
                        height,
                        hash: hash.clone(),
                        confirmations,
                    });
                }
            } else {
                self.store.set_confirmations(&hash, confirmations).await?;
            }
        }
        Ok(())
    }
}
