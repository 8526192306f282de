//! What an accepted share and a found block become: the records every protocol's sessions
//! hand to the rest of the pool (statistics, the store, the block submitter).

use protocol::block::{self, Solution};
use protocol::coinbase::Coinbase;
use protocol::{Difficulty, Hash256};

use crate::chain::jobs::Job;
use crate::shares::validate::Accepted;

/// Names an accepted share whose answer waits for the store: the session that made it knows
/// what to answer (a Stratum v1 request id, a V2 channel and sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckToken(pub u64);

/// A share the pool accepted, for statistics and the share log.
#[derive(Clone, Debug)]
pub struct ShareEvent {
    /// The username it was submitted under.
    pub user: String,
    /// The payout address (the username's part before the first dot).
    pub address: String,
    /// The worker name (after the dot; empty when none).
    pub worker: String,
    /// The share.
    pub accepted: Accepted,
    /// Height of the block it was mined on.
    pub height: u64,
    /// The network difficulty then.
    pub network_difficulty: Difficulty,
    /// When the pool accepted it (unix microseconds).
    pub time_us: i64,
    /// When the miner's answer waits for the store: the token the session is given back
    /// with the store's word (`share_stored`).
    pub awaiting_ack: Option<AckToken>,
}

/// A share that is a block: everything needed to submit it.
#[derive(Clone, Debug)]
pub struct BlockEvent {
    /// Height.
    pub height: u64,
    /// The block hash.
    pub hash: Hash256,
    /// The previous block.
    pub prev_hash: Hash256,
    /// The serialized block, hex.
    pub hex: String,
    /// Who found it.
    pub user: String,
    /// The coinbase value.
    pub reward: u64,
    /// The network difficulty.
    pub network_difficulty: Difficulty,
    /// When the pool accepted its share (unix microseconds).
    pub found_us: i64,
    /// What its coinbase pays whom, when it pays miners directly.
    pub payout: Option<std::sync::Arc<crate::chain::jobs::Payout>>,
}

impl BlockEvent {
    /// The block a share that met the network target completes, ready to submit; `None`
    /// only if the template cannot be assembled (then the share still counts as a share).
    pub fn assemble(
        job: &Job,
        coinbase: &Coinbase,
        solution: &Solution,
        user: String,
        found_us: i64,
    ) -> Option<BlockEvent> {
        let t = job.checked();
        let block = block::assemble(t, coinbase, solution).ok()?;
        Some(BlockEvent {
            height: t.height,
            hash: block.hash(),
            prev_hash: t.prev_hash,
            hex: block.to_hex(),
            user,
            reward: t.coinbase_value,
            network_difficulty: job.network_difficulty(),
            found_us,
            payout: job.payout.clone(),
        })
    }
}
