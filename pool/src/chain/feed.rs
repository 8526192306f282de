//! The template feed: keeps the newest `getblocktemplate` of the first working node and
//! publishes it on a `watch` channel.
//!
//! Three triggers fetch a template: the node's long poll (answers on a new block or new
//! transactions), a `getbestblockhash` poll every `block_poll_ms` (fast even where long
//! polling is slow or missing), and a refresh every `refresh_secs` that picks up new
//! transactions. A block the pool submits, and a ZMQ `hashblock`, kick an immediate fetch.
//!
//! A long poll holds one of the node's few RPC threads until the node answers, even after
//! we stop waiting, so the feed never has more than one per node
//! ([`protocol::longpoll::LongPollGate`]): after a timeout or a failover it waits for the
//! tip to change before it opens another, and it starts parked, in case a pool process
//! before it left one waiting. A node with ZMQ configured is not long-polled at all.
//!
//! When a node fails, the feed logs it once, moves to the next configured node and retries
//! with backoff; nothing is published meanwhile, so miners keep hashing on the last job.

use std::sync::Arc;
use std::time::Duration;

use protocol::Hash256;
use protocol::longpoll::LongPollGate;
use protocol::template::{BlockTemplate, CheckedTemplate, TemplateRequest};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::chain::node::{Node, NodeError};
use crate::chain::template::Template;
use crate::observe::notify::Note;
use crate::observe::stats::PoolStats;

/// Template fetches failed in a row before a node counts as unreachable (`[[notify]]`).
const UNREACHABLE_AFTER: u32 = 3;

/// Timing of the feed.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// `getbestblockhash` poll interval.
    pub block_poll: Duration,
    /// Fresh template interval.
    pub refresh: Duration,
    /// Use long polling when the node offers it, per node in the order given to [`run`]
    /// (off for a node whose blocks come by ZMQ).
    pub longpoll: Vec<bool>,
    /// Long-poll timeout.
    pub longpoll_timeout: Duration,
    /// Longest backoff between retries.
    pub max_retry: Duration,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The call failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The node sent something that is not a usable template.
    #[error("{node}: unusable template: {detail}")]
    Template {
        /// The node.
        node: String,
        /// What is wrong.
        detail: String,
    },
}

fn request_params(longpollid: Option<&str>) -> Value {
    match longpollid {
        Some(id) => TemplateRequest::longpoll(id).to_params(),
        None => TemplateRequest::default().to_params(),
    }
}

fn decode(node: &Node, value: &Value, fetch_time: Duration) -> Result<Template, FetchError> {
    let bad = |detail: String| FetchError::Template {
        node: node.url().to_string(),
        detail,
    };
    let raw = BlockTemplate::from_json(value).map_err(|e| bad(e.to_string()))?;
    let checked = raw.validate().map_err(|e| bad(e.to_string()))?;
    Ok(Template {
        checked,
        node: node.url().to_string(),
        fetch_time,
    })
}

/// One plain `getblocktemplate`.
pub async fn fetch(node: &Node) -> Result<Template, FetchError> {
    let start = std::time::Instant::now();
    let value = node.call("getblocktemplate", request_params(None)).await?;
    decode(node, &value, start.elapsed())
}

/// Runs the feed until `cancel` fires. `kick` asks for an immediate fetch.
pub async fn run(
    nodes: Vec<Node>,
    options: FeedOptions,
    tx: watch::Sender<Option<Arc<Template>>>,
    kick: Arc<Notify>,
    stats: Arc<PoolStats>,
    cancel: CancellationToken,
) {
    let mut feed = Feed {
        stats,
        gates: vec![LongPollGate::new(); nodes.len()],
        nodes,
        index: 0,
        options,
        tx,
        failures: 0,
        longpoll: None,
    };
    feed.run(kick, cancel).await;
}

struct Feed {
    stats: Arc<PoolStats>,
    nodes: Vec<Node>,
    /// Per node: whether a long poll of ours may be waiting there.
    gates: Vec<LongPollGate>,
    index: usize,
    options: FeedOptions,
    tx: watch::Sender<Option<Arc<Template>>>,
    failures: u32,
    longpoll: Option<(usize, JoinHandle<Result<Value, NodeError>>)>,
}

impl Feed {
    fn node(&self) -> &Node {
        &self.nodes[self.index % self.nodes.len()]
    }

    fn current(&self) -> Option<Arc<Template>> {
        self.tx.borrow().clone()
    }

    async fn run(&mut self, kick: Arc<Notify>, cancel: CancellationToken) {
        // The first ticks come one period from now (a plain interval ticks at once).
        let start = tokio::time::Instant::now();
        let mut poll =
            tokio::time::interval_at(start + self.options.block_poll, self.options.block_poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh =
            tokio::time::interval_at(start + self.options.refresh, self.options.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.failures > 0 {
                let wait = backoff(self.failures, self.options.max_retry);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                self.refresh_now().await;
                continue;
            }
            if self.current().is_none() {
                self.refresh_now().await;
                continue;
            }
            self.start_longpoll();
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = kick.notified() => self.refresh_now().await,
                _ = refresh.tick() => self.refresh_now().await,
                _ = poll.tick() => self.check_best_block().await,
                result = wait_longpoll(&mut self.longpoll) => self.longpoll_done(result).await,
            }
        }
    }

    /// Starts a long poll on the current node when the template has a long-poll id, the
    /// node is long-polled at all, and its gate allows one.
    fn start_longpoll(&mut self) {
        let index = self.index % self.nodes.len();
        if self.longpoll.is_some()
            || !self.options.longpoll.get(index).copied().unwrap_or(false)
            || !self.gates[index].may_start()
        {
            return;
        }
        let Some(id) = self.current().and_then(|t| t.checked.longpollid.clone()) else {
            return;
        };
        let node = self.node().clone();
        let handle = tokio::spawn(async move {
            node.call_long("getblocktemplate", request_params(Some(&id)))
                .await
        });
        self.gates[index].started();
        self.stats.longpoll_sent();
        debug!(node = %self.node().url(), "long poll sent");
        self.longpoll = Some((index, handle));
    }

    fn current_tip(&self) -> Option<Hash256> {
        self.current().map(|t| t.checked.prev_hash)
    }

    /// The current node's tip as just seen.
    fn tip_seen(&mut self, tip: Hash256) {
        let index = self.index % self.nodes.len();
        self.gates[index].tip_seen(tip);
    }

    async fn longpoll_done(&mut self, result: (usize, Result<Value, NodeError>)) {
        let (index, result) = result;
        match &result {
            // The node answered (a template or an error of its own): its thread is free.
            Ok(_) | Err(NodeError::Rpc { .. }) | Err(NodeError::BadReply { .. }) => {
                self.gates[index].answered();
                self.stats.longpoll_ended(true);
            }
            // Our side gave up (timeout) or lost the connection: the node may still hold
            // the request until its tip changes.
            Err(NodeError::Transport { .. }) => {
                let tip = self.current_tip();
                self.gates[index].abandoned(tip);
                self.stats.longpoll_ended(false);
                debug!(node = %self.nodes[index].url(), "long poll abandoned; the next waits for a new tip");
            }
        }
        if index != self.index % self.nodes.len() {
            return; // from a node we have left
        }
        let node = self.node().clone();
        match result
            .map_err(FetchError::from)
            .and_then(|v| decode(&node, &v, Duration::ZERO))
        {
            Ok(template) => {
                let current = self.current();
                match longpoll_verdict(current.as_ref().map(|c| &c.checked), &template.checked) {
                    Verdict::Publish => self.publish(template, "long poll"),
                    Verdict::Same => {}
                    Verdict::Older => debug!(
                        height = template.checked.height,
                        "long poll answer for an older tip; ignored"
                    ),
                    Verdict::AskAgain => self.refresh_now().await,
                }
            }
            // A long poll that times out is normal; other errors show on the next poll.
            Err(e) => debug!(error = %e, "long poll ended"),
        }
    }

    async fn check_best_block(&mut self) {
        let Some(current) = self.current() else {
            return;
        };
        match self.node().call("getbestblockhash", json!([])).await {
            Ok(Value::String(best)) if best == current.checked.prev_hash.to_string() => {}
            Ok(Value::String(best)) => {
                if let Ok(tip) = best.parse::<Hash256>() {
                    self.tip_seen(tip);
                }
                self.refresh_now().await;
            }
            Ok(_) => self.refresh_now().await,
            Err(e) => self.failed(e.into()),
        }
    }

    async fn refresh_now(&mut self) {
        let node = self.node().clone();
        match fetch(&node).await {
            Ok(template) => {
                if self.failures > 0 {
                    info!(node = %node.url(), "node answers again; templates resume");
                }
                if self.failures >= UNREACHABLE_AFTER {
                    self.stats.notify.send(Note::NodeUnreachable {
                        node: node.url().to_string(),
                        error: String::new(),
                        recovered: true,
                    });
                }
                self.failures = 0;
                self.publish(template, "fetch");
            }
            Err(e) => self.failed(e),
        }
    }

    fn publish(&mut self, template: Template, why: &str) {
        self.tip_seen(template.checked.prev_hash);
        let new_block = self
            .current()
            .is_none_or(|c| c.checked.prev_hash != template.checked.prev_hash);
        if new_block {
            info!(
                height = template.checked.height,
                prev = %template.checked.prev_hash,
                txs = template.checked.transactions.len(),
                node = %template.node,
                via = why,
                "new block template"
            );
        } else {
            debug!(
                txs = template.checked.transactions.len(),
                via = why,
                "template refreshed"
            );
        }
        self.tx.send_replace(Some(Arc::new(template)));
    }

    fn failed(&mut self, error: FetchError) {
        self.failures += 1;
        // Stop waiting for the long poll; the node may hold it until its tip changes.
        if let Some((index, _)) = self.longpoll.take() {
            let tip = self.current_tip();
            self.gates[index].abandoned(tip);
            self.stats.longpoll_ended(false);
        }
        let from = self.node().url().to_string();
        if self.failures == UNREACHABLE_AFTER {
            self.stats.notify.send(Note::NodeUnreachable {
                node: from.clone(),
                error: error.to_string(),
                recovered: false,
            });
        }
        if self.nodes.len() > 1 {
            self.index = (self.index + 1) % self.nodes.len();
        }
        let wait = backoff(self.failures, self.options.max_retry);
        if self.failures == 1 || self.failures.is_power_of_two() {
            warn!(
                %error,
                failures = self.failures,
                next = %self.node().url(),
                retry_in_ms = wait.as_millis() as u64,
                "node failed; miners keep the last job"
            );
        }
        if self.nodes.len() > 1 {
            debug!(from = %from, to = %self.node().url(), "switching node");
        }
    }
}

/// What to do with a long poll's answer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Newer than what miners have: publish it.
    Publish,
    /// Nothing new.
    Same,
    /// Made for an older tip than a poll has brought since: drop it.
    Older,
    /// Another block at the same height: fetch again to learn the node's tip now.
    AskAgain,
}

/// A long poll answer was made when the node's tip changed, and a `getbestblockhash` poll
/// or a kick may have brought a newer template since: the feed never goes back to an older
/// tip (miners would get clean work for a block already built on).
fn longpoll_verdict(current: Option<&CheckedTemplate>, answer: &CheckedTemplate) -> Verdict {
    let Some(current) = current else {
        return Verdict::Publish;
    };
    if answer.prev_hash == current.prev_hash {
        return if answer.longpollid == current.longpollid {
            Verdict::Same
        } else {
            Verdict::Publish // new transactions
        };
    }
    match answer.height.cmp(&current.height) {
        std::cmp::Ordering::Less => Verdict::Older,
        std::cmp::Ordering::Greater => Verdict::Publish,
        std::cmp::Ordering::Equal => Verdict::AskAgain,
    }
}

async fn wait_longpoll(
    slot: &mut Option<(usize, JoinHandle<Result<Value, NodeError>>)>,
) -> (usize, Result<Value, NodeError>) {
    let Some((index, handle)) = slot else {
        return std::future::pending().await;
    };
    let result = handle.await.unwrap_or_else(|e| {
        Err(NodeError::Transport {
            node: String::new(),
            method: "getblocktemplate".into(),
            detail: e.to_string(),
        })
    });
    let index = *index;
    *slot = None;
    (index, result)
}

/// 250 ms doubling per failure, at most `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_millis(ms).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(prev: &str, height: u64, longpollid: &str) -> CheckedTemplate {
        let mut t = crate::chain::jobs::tests::regtest_template(prev, height)
            .checked
            .clone();
        t.longpollid = Some(longpollid.into());
        t
    }

    #[test]
    fn a_long_poll_answer_never_takes_the_feed_back_to_an_older_tip() {
        use crate::chain::jobs::tests::{PREV_A, PREV_B};
        let now = template(PREV_B, 11, "b1");
        let verdict = |answer: &CheckedTemplate| longpoll_verdict(Some(&now), answer);
        assert_eq!(verdict(&template(PREV_A, 10, "a")), Verdict::Older);
        assert_eq!(verdict(&template(PREV_A, 12, "a")), Verdict::Publish);
        assert_eq!(verdict(&template(PREV_B, 11, "b1")), Verdict::Same);
        assert_eq!(verdict(&template(PREV_B, 11, "b2")), Verdict::Publish);
        assert_eq!(verdict(&template(PREV_A, 11, "a")), Verdict::AskAgain);
        assert_eq!(longpoll_verdict(None, &now), Verdict::Publish);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(10);
        assert_eq!(backoff(1, max), Duration::from_millis(250));
        assert_eq!(backoff(2, max), Duration::from_millis(500));
        assert_eq!(backoff(5, max), Duration::from_secs(4));
        assert_eq!(backoff(50, max), max);
    }
}
