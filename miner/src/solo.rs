//! Solo mining: work straight from a node's getblocktemplate, blocks straight to its
//! submitblock.
//!
//! Two threads, both blocking (no async runtime needed): the template thread fetches
//! getblocktemplate (`rules: ["segwit"]`), long-polling as the node's
//! [`LongPollGate`] allows (one long poll at most; never on a tip where an abandoned one may
//! still hold a node thread) and otherwise polling `getbestblockhash` every 250 ms, and
//! turns each template into engine work with a
//! coinbase built by the protocol crate (BIP 34 height, our payout, the witness commitment
//! when the template has one); the submit thread assembles each solution into a full block
//! and submits it, reading the node's answer ("inconclusive": another block won the race at
//! that height; "duplicate": already known; anything else: rejected with that reason).

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use protocol::address::{self, Network, PayoutAddress};
use protocol::block::{self, Solution};
use protocol::coinbase::{Coinbase, CoinbaseOutput, CoinbaseSpec, template_witness_commitment};
use protocol::longpoll::LongPollGate;
use protocol::template::{BlockTemplate, CheckedTemplate, TemplateRequest};
use protocol::{Hash256, merkle};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::engine::{Engine, Extranonce, Found, Work};
use crate::stats::Stats;
use noderpc::{Client, Endpoint, RpcError};

/// Extranonce2 bytes in solo coinbases (there is no extranonce1).
const EXTRANONCE2_SIZE: usize = 8;
/// Version bits a solo miner may roll: BIP 320's general-purpose bits.
pub const SOLO_VERSION_MASK: u32 = 0x1fff_e000;

/// Solo-mining settings.
#[derive(Clone, Debug)]
pub struct SoloOptions {
    /// The node.
    pub node: Endpoint,
    /// Who the coinbase pays.
    pub payout: PayoutAddress,
    /// Tag in the coinbase scriptSig.
    pub tag: Vec<u8>,
    /// Roll version bits (BIP 320).
    pub version_rolling: bool,
    /// Fresh template (new transactions) when not long-polling.
    pub poll: Duration,
}

/// Parses the payout address, trying each network's rules in turn when none is given.
pub fn parse_payout(
    addr: &str,
    network: Option<Network>,
) -> Result<PayoutAddress, address::AddressError> {
    match network {
        Some(n) => address::parse(addr, n),
        None => {
            // Bitcoin's networks first, then Bitcoin Cash's (CashAddr); when none takes it,
            // the reason of the family it looks like.
            let mut errors = Vec::new();
            for n in Network::ALL {
                match address::parse(addr, n) {
                    Ok(p) => return Ok(p),
                    Err(e) => errors.push((n, e)),
                }
            }
            let cash_like = addr.contains(':');
            errors
                .into_iter()
                .rfind(|(n, _)| n.cashaddr_prefix().is_some() == cash_like)
                .map(|(_, e)| e)
                .map_or(
                    Err(address::AddressError::UnknownNetwork(String::new())),
                    Err,
                )
        }
    }
}

/// A template and the coinbase built for it, kept for assembling blocks.
struct Job {
    template: CheckedTemplate,
    coinbase: Coinbase,
    /// A block was already submitted for it: further solutions are worthless.
    solved: std::sync::atomic::AtomicBool,
}

type Jobs = Arc<Mutex<HashMap<String, Arc<Job>>>>;

/// How often the template thread asks `getbestblockhash` while it is not long-polling.
const BLOCK_POLL: Duration = Duration::from_millis(250);

/// Lets shutdown wait for a block submission in flight, so that a block found just before
/// Ctrl-C still reaches the node and is counted (and logged) before the summary is printed.
#[derive(Default)]
pub struct SoloHandle {
    state: Mutex<SubmitState>,
    idle: Condvar,
}

#[derive(Default)]
struct SubmitState {
    stopping: bool,
    busy: bool,
}

impl SoloHandle {
    /// Takes no new solutions and waits, at most `max`, for the one being submitted.
    pub fn finish(&self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.stopping = true;
        if s.busy {
            info!("waiting for the block submission in flight");
        }
        while s.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!("stopping with a block submission still in flight");
                return;
            }
            s = self
                .idle
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Marks a submission as started; false once shutdown began.
    fn begin(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.busy = !s.stopping;
        s.busy
    }

    fn end(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .busy = false;
        self.idle.notify_all();
    }
}

/// Starts the template and submit threads. They run for the life of the process; the
/// handle lets shutdown wait for a submission in flight.
pub fn start(
    opts: SoloOptions,
    engine: Arc<Engine>,
    found: Receiver<Found>,
    stats: Arc<Stats>,
) -> Arc<SoloHandle> {
    let handle = Arc::new(SoloHandle::default());
    let submitter = handle.clone();
    let jobs: Jobs = Arc::new(Mutex::new(HashMap::new()));
    let (o, e, j, s) = (opts.clone(), engine.clone(), jobs.clone(), stats.clone());
    let engine_for_submit = engine;
    let rpc = Client::for_endpoint(opts.node.clone(), noderpc::DEFAULT_TIMEOUT);
    // The submit thread wakes the template thread when the node took a block.
    let (kick_tx, kick_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("solo-templates".into())
        .spawn(move || template_loop(&o, &e, &j, &s, &kick_rx))
        .map_err(|e| warn!(error = %e, "cannot start the template thread"))
        .ok();
    std::thread::Builder::new()
        .name("solo-submit".into())
        .spawn(move || {
            while let Ok(f) = found.recv() {
                if !submitter.begin() {
                    break;
                }
                submit_one(&rpc, &engine_for_submit, f, &jobs, &stats, &kick_tx);
                submitter.end();
            }
        })
        .map_err(|e| warn!(error = %e, "cannot start the submit thread"))
        .ok();
    handle
}

/// Fetches templates: by long poll when the node's [`LongPollGate`] allows one (at most one
/// of ours waits on the node, and none on a tip where an abandoned one may still wait),
/// otherwise by a `getbestblockhash` poll every [`BLOCK_POLL`] with a fresh template on a
/// new tip, on a kick, and every `opts.poll` for new transactions.
fn template_loop(
    opts: &SoloOptions,
    engine: &Engine,
    jobs: &Jobs,
    stats: &Stats,
    kick: &Receiver<()>,
) {
    let rpc = Client::for_endpoint(opts.node.clone(), noderpc::DEFAULT_TIMEOUT);
    // Long polls can last as long as a block interval.
    let long_rpc = rpc.with_call_timeout(Duration::from_secs(1800));
    let mut gate = LongPollGate::new();
    // The tip and long-poll id of the work being mined, and when it was fetched.
    let mut current: Option<(Hash256, Option<String>)> = None;
    let mut fetched = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let mut serial = 0u64;
    loop {
        let longpoll = current
            .as_ref()
            .and_then(|(_, id)| id.clone())
            .filter(|_| gate.may_start());
        let reply = if let Some(id) = longpoll {
            gate.started();
            let reply = long_rpc.call(
                "getblocktemplate",
                TemplateRequest::longpoll(id).to_params(),
            );
            match &reply {
                Err(RpcError::Transport { .. }) => {
                    gate.abandoned(current.as_ref().map(|(tip, _)| *tip));
                }
                _ => gate.answered(),
            }
            reply
        } else {
            if current.is_some() {
                // Sleep until the next poll, or until the submit thread says a block went in.
                let _ = kick.recv_timeout(BLOCK_POLL);
                let due = fetched.elapsed() >= opts.poll;
                let best = rpc.call("getbestblockhash", json!([]));
                let tip = best
                    .as_ref()
                    .ok()
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<Hash256>().ok());
                if let Some(tip) = tip {
                    gate.tip_seen(tip);
                }
                let same = tip.is_some() && tip == current.as_ref().map(|(t, _)| *t);
                if same && !due {
                    continue;
                }
            }
            rpc.call("getblocktemplate", TemplateRequest::default().to_params())
        };
        let template = reply
            .map_err(|e| e.to_string())
            .and_then(|v| {
                BlockTemplate::from_json(&v).map_err(|e| format!("unreadable template: {e}"))
            })
            .and_then(|t| t.validate().map_err(|e| e.to_string()));
        let template = match template {
            Ok(t) => t,
            Err(e) => {
                warn!(node = %opts.node.url(), error = %e, retry_s = backoff.as_secs(), "getblocktemplate failed; mining the last template meanwhile");
                stats.set_pool(None, Instant::now());
                stats.failure();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        fetched = Instant::now();
        gate.tip_seen(template.prev_hash);
        stats.set_pool(Some(format!("solo {}", opts.node.url())), Instant::now());
        current = Some((template.prev_hash, template.longpollid.clone()));
        match build_job(opts, template) {
            Ok((work, job)) => {
                serial += 1;
                let job_id = format!("{}-{serial}", job.template.height);
                info!(
                    height = job.template.height,
                    transactions = job.template.transactions.len(),
                    value = job.template.coinbase_value,
                    "new template"
                );
                let mut map = jobs.lock().unwrap_or_else(PoisonError::into_inner);
                // Keep the templates of the current height only: others can only be stale.
                map.retain(|_, j| j.template.prev_hash == job.template.prev_hash);
                map.insert(job_id.clone(), Arc::new(job));
                drop(map);
                stats.set_difficulty(work.target.difficulty());
                engine.set_work(Work { job_id, ..work });
            }
            Err(e) => warn!(error = %e, "cannot build a coinbase for this template"),
        }
    }
}

fn build_job(opts: &SoloOptions, template: CheckedTemplate) -> Result<(Work, Job), String> {
    let coinbase = Coinbase::build(&CoinbaseSpec {
        height: template.height,
        aux: template.coinbase_aux.clone(),
        pool_tag: opts.tag.clone(),
        extranonce1_len: 0,
        extranonce2_len: EXTRANONCE2_SIZE,
        outputs: vec![CoinbaseOutput {
            value: template.coinbase_value,
            script_pubkey: opts.payout.script_pubkey.clone(),
        }],
        coinbase_value: template.coinbase_value,
        witness_commitment: template_witness_commitment(&template).map_err(|e| e.to_string())?,
    })
    .map_err(|e| e.to_string())?;
    let work = Work {
        job_id: String::new(),
        header: protocol::BlockHeader {
            version: template.version,
            prev_hash: template.prev_hash,
            merkle_root: protocol::Hash256::ZERO,
            time: template.curtime.max(template.mintime),
            bits: template.bits,
            nonce: 0,
        },
        target: template.target,
        version_mask: if opts.version_rolling {
            SOLO_VERSION_MASK
        } else {
            0
        },
        extranonce: Some(Extranonce {
            coinb1: coinbase.coinb1.clone(),
            extranonce1: Vec::new(),
            coinb2: coinbase.coinb2.clone(),
            merkle_branch: merkle::coinbase_branch(&template.txids()),
            size: EXTRANONCE2_SIZE,
            first: 0,
            count: u64::MAX,
        }),
    };
    Ok((
        work,
        Job {
            template,
            coinbase,
            solved: std::sync::atomic::AtomicBool::new(false),
        },
    ))
}

/// What the node said about a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    /// `null`: a new block.
    Accepted,
    /// Another block at this height was first.
    Inconclusive,
    /// The node already had it.
    Duplicate,
    /// Refused, with the node's reason.
    Rejected(String),
}

/// Reads submitblock's answer.
pub fn classify(reply: &Result<Value, RpcError>) -> BlockOutcome {
    match reply {
        Ok(Value::Null) => BlockOutcome::Accepted,
        Ok(Value::String(s)) if s == "inconclusive" => BlockOutcome::Inconclusive,
        Ok(Value::String(s)) if s.starts_with("duplicate") => BlockOutcome::Duplicate,
        Ok(other) => BlockOutcome::Rejected(match other {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        }),
        Err(e) => BlockOutcome::Rejected(e.to_string()),
    }
}

/// Assembles one solution into a block and submits it (or drops it: only the first
/// solution of a template can become a block).
fn submit_one(
    rpc: &Client,
    engine: &Engine,
    f: Found,
    jobs: &Jobs,
    stats: &Stats,
    kick: &std::sync::mpsc::Sender<()>,
) {
    let job = jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&f.job_id)
        .cloned();
    // Only the first solution of a template can become a block; on regtest, where half
    // of all hashes meet the target, the rest arrive by the thousand before the engine
    // stops, and are dropped here without a word.
    let Some(job) = job.filter(|j| !j.solved.swap(true, std::sync::atomic::Ordering::AcqRel))
    else {
        return;
    };
    engine.withdraw(&f.job_id);
    let solution = Solution {
        extranonce1: &[],
        extranonce2: &f.extranonce2,
        version: f.header.version,
        time: f.header.time,
        nonce: f.header.nonce,
    };
    let assembled = match block::assemble(&job.template, &job.coinbase, &solution) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "cannot assemble the block");
            return;
        }
    };
    if assembled.hash() != f.hash {
        warn!(ours = %assembled.hash(), engine = %f.hash, "assembled block hash differs from the engine's; not submitted");
        return;
    }
    stats.block_candidate();
    let outcome = classify(&rpc.call("submitblock", json!([assembled.to_hex()])));
    let height = job.template.height;
    engine.record_verdict(f.worker, outcome == BlockOutcome::Accepted);
    match &outcome {
        BlockOutcome::Accepted => {
            stats.accepted(job.template.target.difficulty());
            stats.block();
            let _ = kick.send(());
            info!(height, hash = %assembled.hash(), "BLOCK FOUND and accepted by the node");
        }
        BlockOutcome::Inconclusive => {
            stats.rejected("inconclusive (another block won this height)", true);
            info!(height, hash = %assembled.hash(), "block lost the race at this height (inconclusive)");
        }
        BlockOutcome::Duplicate => {
            stats.rejected("duplicate", false);
            info!(height, hash = %assembled.hash(), "the node already has this block (duplicate)");
        }
        BlockOutcome::Rejected(reason) => {
            stats.rejected(reason, false);
            warn!(height, hash = %assembled.hash(), %reason, "block rejected by the node");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitblock_answers() {
        assert_eq!(classify(&Ok(Value::Null)), BlockOutcome::Accepted);
        assert_eq!(
            classify(&Ok(json!("inconclusive"))),
            BlockOutcome::Inconclusive
        );
        assert_eq!(classify(&Ok(json!("duplicate"))), BlockOutcome::Duplicate);
        assert_eq!(
            classify(&Ok(json!("duplicate-inconclusive"))),
            BlockOutcome::Duplicate
        );
        assert_eq!(
            classify(&Ok(json!("high-hash"))),
            BlockOutcome::Rejected("high-hash".into())
        );
    }
}
