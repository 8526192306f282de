//! The rows of the store, and the one place they are made from what the sessions record:
//! an accepted share ([`ShareRow::of`]) and a block a node accepted ([`BlockRow::of`]).

use serde::{Deserialize, Serialize};

use crate::chain::jobs::Payout;
use crate::shares::record::{BlockEvent, ShareEvent};

/// An accepted share as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareRow {
    /// When the pool accepted it, unix microseconds.
    pub time_us: i64,
    /// Unique within the pool process run that accepted it.
    pub uid: i64,
    /// Payout address.
    pub address: String,
    /// Worker name (may be empty).
    pub worker: String,
    /// The difficulty credited.
    pub difficulty: f64,
    /// The difficulty the hash reached.
    pub share_difficulty: f64,
    /// The network difficulty of its job.
    pub network_difficulty: f64,
    /// Height of the block it was mined on.
    pub height: i64,
    /// The pool process (`stratum.instance_id`).
    pub instance: i16,
}

/// A block the node accepted, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct BlockRow {
    /// Block hash (display hex).
    pub hash: String,
    /// Height.
    pub height: i64,
    /// When its share was accepted, unix microseconds: the end of its PPLNS window.
    pub found_us: i64,
    /// The username that found it.
    pub finder: String,
    /// The coinbase value.
    pub reward: i64,
    /// The network difficulty it was mined at.
    pub network_difficulty: f64,
    /// What its coinbase paid whom, when it paid miners directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub payout: Option<Payout>,
}

/// What the writer stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    /// An accepted share.
    Share(ShareRow),
    /// An accepted block.
    Block(BlockRow),
}

impl ShareRow {
    /// The row of an accepted share, with its uid and the pool process's instance id.
    pub fn of(share: &ShareEvent, uid: i64, instance: i16) -> ShareRow {
        ShareRow {
            time_us: share.time_us,
            uid,
            address: share.address.clone(),
            worker: share.worker.clone(),
            difficulty: share.accepted.difficulty.get(),
            share_difficulty: share.accepted.share_difficulty.get(),
            network_difficulty: share.network_difficulty.get(),
            height: i64::try_from(share.height).unwrap_or(i64::MAX),
            instance,
        }
    }
}

impl BlockRow {
    /// The row of a block a node accepted.
    pub fn of(block: &BlockEvent) -> BlockRow {
        BlockRow {
            hash: block.hash.to_string(),
            height: i64::try_from(block.height).unwrap_or(i64::MAX),
            found_us: block.found_us,
            finder: block.user.clone(),
            reward: i64::try_from(block.reward).unwrap_or(i64::MAX),
            network_difficulty: block.network_difficulty.get(),
            payout: block.payout.as_deref().cloned(),
        }
    }
}
