//! Notifications (`[[notify]]`): what happened, told to a webhook (JSON signed with
//! HMAC-SHA256), a Discord channel or a Telegram chat.
//!
//! Whoever notices an event calls [`Notifier::send`], which never waits: each sink has a
//! bounded queue and its own task, and a full queue drops the note (counted). The task
//! posts with retries and backoff (1 s, 2 s, 4 s... at most a minute; Discord's and
//! Telegram's `retry_after` when they rate-limit), off the share path and off every other
//! sink's way. Sent, failed, retried and dropped notes are counted per sink for
//! `/metrics`; failures are logged.
//!
//! Events: a block found (the node accepted it), confirmed or orphaned, a new best share
//! difficulty (the pool's, or an address's: `best_scope`), a worker offline for
//! `offline_minutes`, a payment sent, a node unreachable (three failed template fetches in
//! a row) and back. With several pool processes on one database each tells what it sees:
//! blocks and payments from the process that found or paid them, bests as each process
//! knows them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

use crate::config::{NotifyConfig, NotifyKind};
use crate::observe::live::LiveSnapshot;

/// Notes waiting per sink; more are dropped (and counted), never waited for.
pub const QUEUE: usize = 256;

/// The header carrying a webhook body's signature: `sha256=` and the hex HMAC-SHA256 of
/// the body under the sink's `secret`.
pub const SIGNATURE_HEADER: &str = "X-Pool-Signature";

/// Something worth telling.
#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// A node accepted a block the pool found.
    BlockFound {
        /// Height.
        height: u64,
        /// Hash.
        hash: String,
        /// The username whose share it was.
        finder: String,
        /// Coinbase value, satoshis.
        reward: u64,
    },
    /// A block reached the confirmations that credit it.
    BlockConfirmed {
        /// Height.
        height: i64,
        /// Hash.
        hash: String,
        /// Confirmations.
        confirmations: i64,
    },
    /// A block left the chain.
    BlockOrphaned {
        /// Height.
        height: i64,
        /// Hash.
        hash: String,
    },
    /// A share beat the best of the pool or of its address.
    BestDifficulty {
        /// The address's, or (empty) the pool's.
        address: String,
        /// The worker that did it.
        worker: String,
        /// Its hash's difficulty.
        difficulty: f64,
        /// The best before.
        previous: f64,
    },
    /// A worker has had no connection for `minutes`.
    WorkerOffline {
        /// Address.
        address: String,
        /// Worker name.
        worker: String,
        /// Minutes offline (a sink's `offline_minutes`).
        minutes: f64,
    },
    /// A payout transaction went out.
    PaymentSent {
        /// The transaction.
        txid: String,
        /// Satoshis in all.
        total: u64,
        /// Addresses paid.
        miners: usize,
    },
    /// A node failed three template fetches in a row (`recovered`: it answers again).
    NodeUnreachable {
        /// The node's URL (without credentials).
        node: String,
        /// The last error, or empty when recovered.
        error: String,
        /// Whether this is the all-clear.
        recovered: bool,
    },
    /// An address found far fewer blocks than its work should have (possible block
    /// withholding: `accounting::withholding`).
    Withholding {
        /// The address.
        address: String,
        /// Blocks its shares should have found.
        expected: f64,
        /// Blocks it found.
        found: u64,
        /// The chance of finding so few by luck.
        probability: f64,
    },
}

impl Note {
    /// The event's name in `events = [...]` and in a webhook's `event`.
    pub fn name(&self) -> &'static str {
        match self {
            Note::BlockFound { .. } => "block_found",
            Note::BlockConfirmed { .. } => "block_confirmed",
            Note::BlockOrphaned { .. } => "block_orphaned",
            Note::BestDifficulty { .. } => "best_difficulty",
            Note::WorkerOffline { .. } => "worker_offline",
            Note::PaymentSent { .. } => "payment_sent",
            Note::NodeUnreachable { .. } => "node_unreachable",
            Note::Withholding { .. } => "withholding",
        }
    }

    /// The event's fields for a webhook.
    pub fn data(&self) -> Value {
        match self {
            Note::BlockFound {
                height,
                hash,
                finder,
                reward,
            } => json!({"height": height, "hash": hash, "finder": finder, "reward": reward}),
            Note::BlockConfirmed {
                height,
                hash,
                confirmations,
            } => json!({"height": height, "hash": hash, "confirmations": confirmations}),
            Note::BlockOrphaned { height, hash } => json!({"height": height, "hash": hash}),
            Note::BestDifficulty {
                address,
                worker,
                difficulty,
                previous,
            } => json!({
                "scope": if address.is_empty() { "pool" } else { "address" },
                "address": address,
                "worker": worker,
                "difficulty": difficulty,
                "previous": previous,
            }),
            Note::WorkerOffline {
                address,
                worker,
                minutes,
            } => json!({"address": address, "worker": worker, "minutes": minutes}),
            Note::PaymentSent {
                txid,
                total,
                miners,
            } => json!({"txid": txid, "total": total, "miners": miners}),
            Note::NodeUnreachable {
                node,
                error,
                recovered,
            } => json!({"node": node, "error": error, "recovered": recovered}),
            Note::Withholding {
                address,
                expected,
                found,
                probability,
            } => json!({
                "address": address,
                "expectedBlocks": expected,
                "foundBlocks": found,
                "probability": probability,
            }),
        }
    }

    /// One line for people (Discord, Telegram), amounts in `coin`.
    pub fn text(&self, pool: &str, coin: &str) -> String {
        let coins = |sat: u64| format!("{:.8} {coin}", sat as f64 / 1e8);
        let who = |address: &str, worker: &str| {
            if worker.is_empty() {
                address.to_string()
            } else {
                format!("{address}.{worker}")
            }
        };
        let body = match self {
            Note::BlockFound {
                height,
                hash,
                finder,
                reward,
            } => format!(
                "Block {height} found by {finder}, reward {}: {hash}",
                coins(*reward)
            ),
            Note::BlockConfirmed {
                height,
                confirmations,
                ..
            } => format!("Block {height} confirmed ({confirmations} confirmations)"),
            Note::BlockOrphaned { height, hash } => {
                format!("Block {height} orphaned: {hash} is no longer in the chain")
            }
            Note::BestDifficulty {
                address,
                worker,
                difficulty,
                previous,
            } if address.is_empty() => format!(
                "New pool best share: difficulty {} (was {}) by worker {worker}",
                short(*difficulty),
                short(*previous)
            ),
            Note::BestDifficulty {
                address,
                worker,
                difficulty,
                previous,
            } => format!(
                "New best share for {}: difficulty {} (was {})",
                who(address, worker),
                short(*difficulty),
                short(*previous)
            ),
            Note::WorkerOffline {
                address,
                worker,
                minutes,
            } => format!(
                "Worker {} offline for {} minutes",
                who(address, worker),
                short(*minutes)
            ),
            Note::PaymentSent {
                txid,
                total,
                miners,
            } => format!(
                "Payment sent: {} to {miners} miners, transaction {txid}",
                coins(*total)
            ),
            Note::NodeUnreachable {
                node,
                recovered: true,
                ..
            } => format!("Node {node} answers again"),
            Note::NodeUnreachable { node, error, .. } => {
                format!("Node {node} unreachable: {error}")
            }
            Note::Withholding {
                address,
                expected,
                found,
                probability,
            } => format!(
                "Possible block withholding: {address} found {found} blocks where its work should have found {expected:.1} (chance {probability:.1e})"
            ),
        };
        format!("[{pool}] {body}")
    }
}

/// A difficulty or a number of minutes, briefly: 1234567 -> "1.23M".
fn short(x: f64) -> String {
    const UNITS: [(f64, &str); 5] = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, unit) in UNITS {
        if x >= scale {
            return format!("{:.2}{unit}", x / scale);
        }
    }
    if x >= 1.0 || x == 0.0 {
        format!("{}", (x * 100.0).round() / 100.0)
    } else {
        format!("{x:.3e}")
    }
}

/// The HMAC-SHA256 of `body` under `key`, hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // An HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What one POST carries.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Where.
    pub url: String,
    /// JSON body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

/// Sent, failed (after every attempt), retried and dropped (queue full) notes of a sink.
#[derive(Debug, Default)]
pub struct Counts {
    /// Delivered.
    pub sent: AtomicU64,
    /// Given up on.
    pub failed: AtomicU64,
    /// Attempts after the first.
    pub retries: AtomicU64,
    /// Not queued: the queue was full.
    pub dropped: AtomicU64,
}

/// One sink as configured, ready to format.
#[derive(Clone, Debug)]
pub struct Sink {
    /// `kind` and its index, for logs and metrics (`webhook0`, `discord1`...).
    pub label: String,
    config: NotifyConfig,
    events: BTreeSet<String>,
    pool: String,
    coin: String,
}

impl Sink {
    /// The `index`th `[[notify]]` of pool `pool` (its API id) on a chain of `coin`.
    pub fn new(index: usize, config: &NotifyConfig, pool: &str, coin: &str) -> Sink {
        let kind = match config.kind {
            NotifyKind::Webhook => "webhook",
            NotifyKind::Discord => "discord",
            NotifyKind::Telegram => "telegram",
        };
        let events = match &config.events {
            Some(list) => list.iter().cloned().collect(),
            None => crate::config::NOTIFY_EVENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        Sink {
            label: format!("{kind}{index}"),
            config: config.clone(),
            events,
            pool: pool.to_string(),
            coin: coin.to_string(),
        }
    }

    /// Whether this sink wants `note`.
    pub fn wants(&self, note: &Note) -> bool {
        if !self.events.contains(note.name()) {
            return false;
        }
        match note {
            Note::BestDifficulty { address, .. } => match self.config.best_scope.as_str() {
                "pool" => address.is_empty(),
                "address" => !address.is_empty(),
                _ => true,
            },
            Note::WorkerOffline { minutes, .. } => *minutes == self.config.offline_minutes,
            _ => true,
        }
    }

    /// The POST for `note` at unix second `now`.
    pub fn request(&self, note: &Note, now: u64) -> Request {
        let text = note.text(&self.pool, &self.coin);
        match self.config.kind {
            NotifyKind::Webhook => {
                let body = json!({
                    "event": note.name(),
                    "pool": self.pool,
                    "time": now,
                    "text": text,
                    "data": note.data(),
                })
                .to_string()
                .into_bytes();
                let mut headers = vec![("X-Pool-Event", note.name().to_string())];
                if let Some(secret) = &self.config.secret {
                    let signature = format!("sha256={}", sign(secret.as_bytes(), &body));
                    headers.push((SIGNATURE_HEADER, signature));
                }
                Request {
                    url: self.config.url.clone().unwrap_or_default(),
                    body,
                    headers,
                }
            }
            NotifyKind::Discord => Request {
                url: self.config.url.clone().unwrap_or_default(),
                body: json!({"content": text}).to_string().into_bytes(),
                headers: Vec::new(),
            },
            NotifyKind::Telegram => {
                let base = self
                    .config
                    .url
                    .as_deref()
                    .unwrap_or("https://api.telegram.org")
                    .trim_end_matches('/');
                let token = self.config.bot_token.as_deref().unwrap_or_default();
                Request {
                    url: format!("{base}/bot{token}/sendMessage"),
                    body: json!({
                        "chat_id": self.config.chat_id,
                        "text": text,
                        "disable_web_page_preview": true,
                    })
                    .to_string()
                    .into_bytes(),
                    headers: Vec::new(),
                }
            }
        }
    }
}

/// How a POST ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    /// Worth another try (a network error, 429, 5xx), after at least this long.
    Retry(String, Option<Duration>),
    /// Not worth another try (another 4xx).
    GiveUp(String),
}

fn post(agent: &ureq::Agent, req: &Request) -> Outcome {
    let mut call = agent
        .post(&req.url)
        .header("Content-Type", "application/json");
    for (name, value) in &req.headers {
        call = call.header(*name, value);
    }
    match call.send(&req.body[..]) {
        Ok(mut response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Outcome::Done;
            }
            let header_wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok());
            let body = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            // Discord and Telegram say how long to wait in the body too.
            let body_wait = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
                v["retry_after"]
                    .as_f64()
                    .or_else(|| v["parameters"]["retry_after"].as_f64())
            });
            let wait = header_wait
                .or(body_wait)
                .filter(|w| w.is_finite() && *w >= 0.0)
                .map(|w| Duration::from_secs_f64(w.min(60.0)));
            let why = format!(
                "HTTP {status}: {}",
                body.chars().take(200).collect::<String>()
            );
            if status == 429 || status >= 500 {
                Outcome::Retry(why, wait)
            } else {
                Outcome::GiveUp(why)
            }
        }
        Err(e) => Outcome::Retry(e.to_string(), None),
    }
}

/// Posts every note of one sink's queue, with retries.
async fn deliver(sink: Sink, mut queue: mpsc::Receiver<Note>, counts: Arc<Counts>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let attempts = sink.config.attempts.max(1);
    while let Some(note) = queue.recv().await {
        let request = sink.request(&note, u64::from(crate::clock::unix_now()));
        let mut attempt = 1;
        loop {
            let (a, r) = (agent.clone(), request.clone());
            let outcome = tokio::task::spawn_blocking(move || post(&a, &r))
                .await
                .unwrap_or_else(|e| Outcome::GiveUp(format!("the sender panicked: {e}")));
            match outcome {
                Outcome::Done => {
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Outcome::Retry(why, wait) if attempt < attempts => {
                    counts.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = Duration::from_secs((1u64 << (attempt - 1).min(6)).min(60));
                    tokio::time::sleep(wait.unwrap_or(backoff)).await;
                    tracing::debug!(sink = %sink.label, event = note.name(), attempt, %why, "notification retried");
                    attempt += 1;
                }
                Outcome::Retry(why, _) | Outcome::GiveUp(why) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    warn!(sink = %sink.label, event = note.name(), attempts = attempt, %why, "notification not delivered");
                    break;
                }
            }
        }
    }
}

/// A started sink: its settings, its queue and its counts.
type Running = (Sink, mpsc::Sender<Note>, Arc<Counts>);

/// The handle every task tells events to; cheap to clone. Without sinks it does nothing
/// but pass the notes to the API's push stream (`observe::api::stream`), if any listens.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    sinks: Arc<Vec<Running>>,
    tap: Option<broadcast::Sender<Note>>,
}

/// Notes kept for a push-stream client that reads slowly; past it, it is told it lagged.
const TAP_QUEUE: usize = 256;

impl Notifier {
    /// Starts one delivery task per sink (on the current tokio runtime).
    pub fn start(configs: &[NotifyConfig], pool: &str, coin: &str) -> Notifier {
        let sinks = configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let sink = Sink::new(i, c, pool, coin);
                let (tx, rx) = mpsc::channel(QUEUE);
                let counts = Arc::new(Counts::default());
                tokio::spawn(deliver(sink.clone(), rx, counts.clone()));
                (sink, tx, counts)
            })
            .collect();
        Notifier {
            sinks: Arc::new(sinks),
            tap: Some(broadcast::channel(TAP_QUEUE).0),
        }
    }

    /// Every note sent from now on (`None` for a notifier that was not started).
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Note>> {
        self.tap.as_ref().map(broadcast::Sender::subscribe)
    }

    /// Queues `note` for every sink that wants it and for the push stream; never waits.
    pub fn send(&self, note: Note) {
        if let Some(tap) = self.tap.as_ref().filter(|t| t.receiver_count() > 0) {
            // A receiver gone meanwhile is not an error: nobody watches the stream now.
            let _ = tap.send(note.clone());
        }
        for (sink, tx, counts) in self.sinks.iter() {
            if sink.wants(&note) && tx.try_send(note.clone()).is_err() {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether any sink wants best difficulty news for an address (`true`) or the pool.
    pub fn wants_best(&self, address: bool) -> bool {
        let probe = Note::BestDifficulty {
            address: if address { "a".into() } else { String::new() },
            worker: String::new(),
            difficulty: 0.0,
            previous: 0.0,
        };
        self.sinks.iter().any(|(s, _, _)| s.wants(&probe))
    }

    /// The `offline_minutes` of the sinks that want worker_offline notes.
    pub fn offline_thresholds(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .sinks
            .iter()
            .filter(|(s, _, _)| s.events.contains("worker_offline"))
            .map(|(s, _, _)| s.config.offline_minutes)
            .collect();
        t.sort_by(f64::total_cmp);
        t.dedup();
        t
    }

    /// Each sink's label and counts.
    pub fn counts(&self) -> Vec<(String, &Counts)> {
        self.sinks
            .iter()
            .map(|(s, _, c)| (s.label.clone(), c.as_ref()))
            .collect()
    }
}

/// Watches the live workers for ones that stay away: a worker seen connected and then
/// without a connection for one of the `thresholds` (minutes) is announced once per
/// threshold until it comes back. Pure: the caller passes snapshots and times.
#[derive(Debug, Default)]
pub struct OfflineWatch {
    /// (address, worker) -> (unix second last seen connected, thresholds announced).
    seen: BTreeMap<(String, String), (u64, Vec<f64>)>,
}

impl OfflineWatch {
    /// Looks at the workers now; returns what to announce.
    pub fn observe(&mut self, live: &LiveSnapshot, thresholds: &[f64], now: u64) -> Vec<Note> {
        for w in live.workers.iter().filter(|w| w.connections > 0) {
            self.seen
                .insert((w.address.clone(), w.worker.clone()), (now, Vec::new()));
        }
        let mut out = Vec::new();
        let longest = thresholds.iter().copied().fold(0.0, f64::max);
        self.seen.retain(|(address, worker), (last, announced)| {
            if live
                .workers
                .iter()
                .any(|w| w.connections > 0 && w.address == *address && w.worker == *worker)
            {
                return true;
            }
            let away = now.saturating_sub(*last) as f64 / 60.0;
            for t in thresholds {
                if away >= *t && !announced.contains(t) {
                    announced.push(*t);
                    out.push(Note::WorkerOffline {
                        address: address.clone(),
                        worker: worker.clone(),
                        minutes: *t,
                    });
                }
            }
            // Forget it once every threshold has been told.
            away < longest
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::live::WorkerLive;

    fn config(kind: NotifyKind) -> NotifyConfig {
        NotifyConfig {
            kind,
            url: Some("http://127.0.0.1:9/hook".into()),
            secret: Some("s3cret".into()),
            bot_token: Some("123:ABC".into()),
            chat_id: Some("-100200".into()),
            events: None,
            best_scope: "both".into(),
            offline_minutes: 10.0,
            attempts: 3,
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn each_kind_formats_its_request() {
        let note = Note::BlockFound {
            height: 840_000,
            hash: "0000abcd".into(),
            finder: "bc1qminer.rig1".into(),
            reward: 312_500_000,
        };
        let hook = Sink::new(0, &config(NotifyKind::Webhook), "pool1", "BTC")
            .request(&note, 1_800_000_000);
        assert_eq!(hook.url, "http://127.0.0.1:9/hook");
        let body: Value = serde_json::from_slice(&hook.body).unwrap();
        assert_eq!(body["event"], "block_found");
        assert_eq!(body["pool"], "pool1");
        assert_eq!(body["time"], 1_800_000_000u64);
        assert_eq!(body["data"]["reward"], 312_500_000u64);
        assert_eq!(
            body["text"],
            "[pool1] Block 840000 found by bc1qminer.rig1, reward 3.12500000 BTC: 0000abcd"
        );
        let signature = hook
            .headers
            .iter()
            .find(|(h, _)| *h == SIGNATURE_HEADER)
            .unwrap();
        assert_eq!(
            signature.1,
            format!("sha256={}", sign(b"s3cret", &hook.body))
        );

        let discord = Sink::new(1, &config(NotifyKind::Discord), "pool1", "BTC").request(&note, 0);
        let body: Value = serde_json::from_slice(&discord.body).unwrap();
        assert!(
            body["content"]
                .as_str()
                .unwrap()
                .starts_with("[pool1] Block 840000")
        );

        let mut tg = config(NotifyKind::Telegram);
        tg.url = None;
        let telegram = Sink::new(2, &tg, "pool1", "BTC").request(&note, 0);
        assert_eq!(
            telegram.url,
            "https://api.telegram.org/bot123:ABC/sendMessage"
        );
        let body: Value = serde_json::from_slice(&telegram.body).unwrap();
        assert_eq!(body["chat_id"], "-100200");
        assert!(body["text"].as_str().unwrap().contains("3.12500000 BTC"));
    }

    #[test]
    fn sinks_take_the_events_and_scopes_they_asked_for() {
        let mut c = config(NotifyKind::Discord);
        c.events = Some(vec!["best_difficulty".into(), "worker_offline".into()]);
        c.best_scope = "pool".into();
        let s = Sink::new(0, &c, "p", "BTC");
        let best = |address: &str| Note::BestDifficulty {
            address: address.into(),
            worker: "w".into(),
            difficulty: 2e6,
            previous: 1e6,
        };
        assert!(s.wants(&best("")));
        assert!(!s.wants(&best("addr")));
        assert!(!s.wants(&Note::BlockOrphaned {
            height: 1,
            hash: "h".into()
        }));
        let offline = |minutes| Note::WorkerOffline {
            address: "a".into(),
            worker: "w".into(),
            minutes,
        };
        assert!(s.wants(&offline(10.0)) && !s.wants(&offline(5.0)));
        assert_eq!(
            best("").text("p", "BTC"),
            "[p] New pool best share: difficulty 2.00M (was 1.00M) by worker w"
        );
    }

    fn snapshot(workers: &[(&str, u32)]) -> LiveSnapshot {
        LiveSnapshot {
            workers: workers
                .iter()
                .map(|(w, connections)| WorkerLive {
                    address: "addr".into(),
                    worker: (*w).into(),
                    connections: *connections,
                    hashrate: 0.0,
                    shares_per_sec: 0.0,
                    last_share: None,
                    sessions: Vec::new(),
                })
                .collect(),
            ..LiveSnapshot::default()
        }
    }

    #[test]
    fn a_worker_away_is_announced_once_per_threshold_and_again_after_it_returns() {
        let mut watch = OfflineWatch::default();
        let t = [1.0, 5.0];
        assert!(watch.observe(&snapshot(&[("rig", 1)]), &t, 1000).is_empty());
        assert!(watch.observe(&snapshot(&[]), &t, 1030).is_empty());
        let notes = watch.observe(&snapshot(&[]), &t, 1060);
        assert_eq!(
            notes,
            vec![Note::WorkerOffline {
                address: "addr".into(),
                worker: "rig".into(),
                minutes: 1.0
            }]
        );
        assert!(watch.observe(&snapshot(&[]), &t, 1200).is_empty(), "once");
        assert_eq!(
            watch.observe(&snapshot(&[]), &t, 1300).len(),
            1,
            "5 minutes"
        );
        assert!(
            watch.observe(&snapshot(&[]), &t, 9000).is_empty(),
            "forgotten"
        );
        // Back, and away again: told again.
        watch.observe(&snapshot(&[("rig", 1)]), &t, 10_000);
        assert_eq!(watch.observe(&snapshot(&[]), &t, 10_060).len(), 1);
        // A worker never seen connected is never announced (rig's 5 minutes are).
        let notes = watch.observe(&snapshot(&[("other", 0)]), &t, 20_000);
        assert_eq!(notes.len(), 1);
        assert!(
            matches!(&notes[0], Note::WorkerOffline { worker, minutes, .. } if worker == "rig" && *minutes == 5.0)
        );
    }
}
