//! Block submission: a share that meets the network target is sent to every configured
//! node at once, checked with `getblockheader`, logged, and kept with its raw hex.
//!
//! One block per previous block: on a chain as easy as regtest, half of all shares are
//! blocks, and once one solution for a height is in, the others can only lose the race
//! ("inconclusive"), so they are counted as shares but not submitted.
//!
//! With a database, an accepted block goes to the store's writer after its share (the same
//! queue, so its PPLNS window always holds its own share).

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use protocol::Hash256;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tracing::{debug, error, info, warn};

use crate::chain::jobs::FoundPayouts;
use crate::chain::node::Node;
use crate::observe::notify::Note;
use crate::observe::stats::PoolStats;
use crate::shares::record::BlockEvent;
use crate::store::writer::Submission;
use crate::store::{BlockRow, Record};

/// What became of a block.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockRecord {
    /// Height.
    pub height: u64,
    /// Hash.
    pub hash: Hash256,
    /// Who found it.
    pub user: String,
    /// Coinbase value.
    pub reward: u64,
    /// Whether a node took it and knows its header.
    pub accepted: bool,
    /// Each node's answer: `null` (accepted), a reason string, or the call's error.
    pub results: Vec<(String, Value)>,
}

/// Where an accepted block is told besides the node: the report channel (tests read it),
/// the store's writer (with a database), and the coinbase payouts found here.
pub struct Accepted {
    /// Every submission's report; dropped when nobody reads.
    pub found: mpsc::Sender<BlockRecord>,
    /// The store's writer.
    pub store: Option<mpsc::Sender<Submission>>,
    /// Payouts of blocks found here, for the next jobs' carried balances.
    pub payouts: Arc<FoundPayouts>,
}

/// Runs until the channel closes (every session and the server have ended).
pub async fn run(
    nodes: Vec<Node>,
    data_dir: PathBuf,
    mut candidates: mpsc::Receiver<BlockEvent>,
    accepted: Accepted,
    kick: Arc<Notify>,
    stats: Arc<PoolStats>,
) {
    let Accepted {
        found,
        store,
        payouts: found_payouts,
    } = accepted;
    let mut done: HashSet<Hash256> = HashSet::new();
    let mut unsent = Unsent::default();
    while let Some(block) = candidates.recv().await {
        if done.contains(&block.prev_hash) {
            debug!(height = block.height, hash = %block.hash, "another solution for a height already submitted; not sent");
            unsent.add(std::time::Instant::now());
            continue;
        }
        stats.block_found();
        let record = submit(&nodes, &block, &stats).await;
        if record.accepted {
            done.insert(block.prev_hash);
            stats.block_accepted();
            kick.notify_one();
            info!(height = record.height, hash = %record.hash, user = %record.user, reward = record.reward, "block found and accepted");
            if let Some(payout) = &block.payout {
                found_payouts.add(record.hash.to_string(), payout.clone());
            }
            stats.notify.send(Note::BlockFound {
                height: record.height,
                hash: record.hash.to_string(),
                finder: record.user.clone(),
                reward: record.reward,
            });
            if let Some(writer) = &store {
                let _ = writer
                    .send(Submission {
                        record: Record::Block(BlockRow::of(&block)),
                        durable: None,
                    })
                    .await;
            }
        } else {
            error!(height = record.height, hash = %record.hash, results = ?record.results, "block refused by every node");
        }
        if let Err(e) = keep(&data_dir, &block, &record) {
            error!(error = %e, dir = %data_dir.display(), "cannot record the block (hex is in the log below)");
            error!(hex = %block.hex, "block hex");
        }
        // Only a report (tests read it; the binary does not): dropped when nobody reads.
        let _ = found.try_send(record);
    }
}

/// Solutions for heights already solved: counted, and summed up in one INFO line a
/// minute at most (on regtest nearly every share is one).
#[derive(Debug, Default)]
struct Unsent {
    count: u64,
    since: Option<std::time::Instant>,
}

impl Unsent {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

    fn add(&mut self, now: std::time::Instant) {
        self.count += 1;
        let since = *self.since.get_or_insert(now);
        if now.duration_since(since) >= Self::EVERY {
            info!(
                solutions = self.count,
                secs = now.duration_since(since).as_secs(),
                "solutions for heights already solved were not submitted (regtest-like difficulty)"
            );
            self.count = 0;
            self.since = Some(now);
        }
    }
}

async fn submit(nodes: &[Node], block: &BlockEvent, stats: &PoolStats) -> BlockRecord {
    let calls = nodes
        .iter()
        .map(|node| node.call("submitblock", json!([block.hex])));
    let sent = std::time::Instant::now();
    let answers = futures::future::join_all(calls).await;
    stats.submitblock.record(sent.elapsed());
    let mut results = Vec::new();
    let mut taken_by = Vec::new();
    for (node, answer) in nodes.iter().zip(answers) {
        let value = match answer {
            Ok(Value::Null) => {
                taken_by.push(node);
                Value::Null
            }
            // Another node of ours relayed it first.
            Ok(Value::String(s)) if s == "duplicate" => {
                taken_by.push(node);
                Value::String(s)
            }
            Ok(other) => other,
            Err(e) => {
                warn!(node = %node.url(), error = %e, "submitblock failed");
                Value::String(format!("error: {e}"))
            }
        };
        results.push((node.url().to_string(), value));
    }
    let mut accepted = false;
    for node in taken_by {
        match node
            .call("getblockheader", json!([block.hash.to_string()]))
            .await
        {
            Ok(header)
                if header.get("hash").and_then(Value::as_str) == Some(&block.hash.to_string()) =>
            {
                accepted = true;
                break;
            }
            Ok(other) => {
                warn!(node = %node.url(), reply = %other, "getblockheader does not show the block")
            }
            Err(e) => {
                warn!(node = %node.url(), error = %e, "getblockheader failed after submitblock")
            }
        }
    }
    BlockRecord {
        height: block.height,
        hash: block.hash,
        user: block.user.clone(),
        reward: block.reward,
        accepted,
        results,
    }
}

/// Writes `blocks/<height>-<hash>.hex` and appends a line to `blocks.jsonl`.
fn keep(
    data_dir: &std::path::Path,
    block: &BlockEvent,
    record: &BlockRecord,
) -> std::io::Result<()> {
    let dir = data_dir.join("blocks");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join(format!("{}-{}.hex", block.height, block.hash)),
        &block.hex,
    )?;
    let line = json!({
        "time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "height": record.height,
        "hash": record.hash.to_string(),
        "prev_hash": block.prev_hash.to_string(),
        "user": record.user,
        "reward": record.reward,
        "accepted": record.accepted,
        "results": record.results.iter().map(|(n, v)| json!({"node": n, "result": v})).collect::<Vec<_>>(),
    });
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("blocks.jsonl"))?;
    writeln!(log, "{line}")
}
