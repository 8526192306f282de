//! The load generator's Stratum V2 miner: the same modes as the v1 one (submit, idle,
//! notify), over the Noise transport with one channel per connection, so that both
//! protocols are measured against the same pool in one run. Channels are extended (the
//! miner gets the coinbase and rolls its own extranonce) or standard (header-only: the
//! pool computes a merkle root for each channel and job, which is what a run of them
//! measures).
//!
//! V2 has no `d=` password: the channel asks for the difficulty as its `max_target` (the
//! least difficulty it takes, which our pool honours as vardiff's floor), follows
//! `SetTarget`, and finds shares on the spot at the target in force. For a run at a fixed
//! difficulty, pin the pool's vardiff there (`start = max = DIFFICULTY`): on regtest a
//! target at the network's would make every share a block, which the generator never
//! sends (it gives up on a job after 2^24 nonces and counts nothing).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use binary_sv2::{Str0255Owned, U256Owned};
use common_messages_sv2::{Protocol, SetupConnectionOwned};
use mining_sv2::{
    OpenExtendedMiningChannelOwned, OpenStandardMiningChannelOwned, SubmitSharesExtendedOwned,
    SubmitSharesStandard,
};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
use protocol::stratum::merkle_root;
use protocol::sv2::transport::{self, Reader, Writer};
use protocol::{BlockHeader, CompactTarget, Hash256, Target};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{oneshot, watch};

use super::{LoadOptions, Mode, Shared, record_answer};

/// The kind of channel each connection opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Extended,
    Standard,
}

impl Kind {
    pub(super) fn from_standard(standard: bool) -> Kind {
        if standard {
            Kind::Standard
        } else {
            Kind::Extended
        }
    }
}

/// A job the channel can mine on now.
#[derive(Clone, Debug)]
struct Job {
    id: u32,
    version: u32,
    coinbase: JobCoinbase,
    prev_hash: Hash256,
    bits: u32,
    ntime: u32,
}

/// What the miner makes the merkle root from.
#[derive(Clone, Debug)]
enum JobCoinbase {
    /// Extended channels: the coinbase around the extranonce, and the merkle branch.
    Parts {
        prefix: Vec<u8>,
        suffix: Vec<u8>,
        branch: Vec<Hash256>,
    },
    /// Standard channels: the root the pool computed for this channel.
    Root(Hash256),
}

/// What the channel was given when it opened.
#[derive(Debug)]
struct Channel {
    id: u32,
    extranonce_prefix: Vec<u8>,
    extranonce_size: usize,
}

/// Shares in flight: sequence number to (sent at, answer).
type Waiting = Arc<Mutex<BTreeMap<u32, (Instant, oneshot::Sender<Result<(), String>>)>>>;

fn text(s: &str) -> Str0255Owned {
    Str0255Owned::try_from(s.to_string()).unwrap_or_else(|_| unreachable!("a short string"))
}

async fn send(
    write: &mut OwnedWriteHalf,
    writer: &mut Writer,
    message: AnyMessageOwned,
) -> Result<(), String> {
    let bytes = writer.encode(message).map_err(|e| e.to_string())?;
    write
        .write_all(&bytes)
        .await
        .map_err(|e| format!("writing: {e}"))
}

/// One simulated V2 miner: (submitted, accepted, seconds from its first submit to its last
/// answer), as the v1 one reports.
pub(super) async fn miner(
    i: usize,
    stream: TcpStream,
    (authority, kind): ([u8; 32], Kind),
    opts: &LoadOptions,
    rate: f64,
    start_at: Instant,
    shared: &Arc<Shared>,
) -> Result<(u64, u64, f64), String> {
    let mut stream = stream;
    let (reader, mut writer) = transport::connect(&mut stream, authority, Duration::from_secs(30))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (read, mut write) = stream.into_split();
    let waiting: Waiting = Arc::new(Mutex::new(BTreeMap::new()));
    let (jobs_tx, mut jobs) = watch::channel::<Option<Job>>(None);
    let (target_tx, target) = watch::channel(Target::MAX);
    let (opened_tx, opened) = oneshot::channel();
    let dispatch = tokio::spawn(dispatch(
        (reader, read),
        waiting.clone(),
        shared.clone(),
        jobs_tx,
        target_tx,
        opened_tx,
    ));
    let _stop_dispatch = tokio_util::task::AbortOnDropHandle::new(dispatch);

    send(
        &mut write,
        &mut writer,
        AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(SetupConnectionOwned {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags: 0,
            endpoint_host: text(&opts.pool.ip().to_string()),
            endpoint_port: opts.pool.port(),
            vendor: text("stratum-load"),
            hardware_version: text(""),
            firmware: text("1"),
            device_id: text(&format!("w{i}")),
        })),
    )
    .await?;
    let floor = Target::from_difficulty(opts.difficulty).map_err(|e| e.to_string())?;
    let user_identity = text(&format!("{}.w{i}", opts.user));
    let max_target = U256Owned::from(floor.to_le_bytes());
    let open = match kind {
        Kind::Extended => MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
            request_id: 1,
            user_identity,
            nominal_hash_rate: 0.0,
            max_target,
            min_extranonce_size: 4,
        }),
        Kind::Standard => MiningOwned::OpenStandardMiningChannel(OpenStandardMiningChannelOwned {
            request_id: 1,
            user_identity,
            nominal_hash_rate: 0.0,
            max_target,
        }),
    };
    send(&mut write, &mut writer, AnyMessageOwned::Mining(open)).await?;
    let channel = opened
        .await
        .map_err(|_| "the pool closed the connection")??;
    if opts.mode == Mode::Idle {
        tokio::time::sleep(opts.duration).await;
        return Ok((0, 0, 0.0));
    }
    if opts.mode == Mode::Notify {
        let outcome = tokio::time::timeout(opts.duration, wait_for_block(&mut jobs, shared)).await;
        return match outcome {
            Ok(Ok(())) => Ok((0, 0, 0.0)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("no job for the new block in time".into()),
        };
    }
    while jobs.borrow().is_none() {
        jobs.changed().await.map_err(|_| "no job from the pool")?;
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let offset = interval.mul_f64((i as f64 * 0.618_034).fract());
    let began = start_at.max(Instant::now());
    let mut next = began + offset;
    let end = next + opts.duration;
    let (mut submitted, mut extranonce, mut sequence) = (0u64, 0u64, 0u32);
    let mut answers = Vec::new();
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let Some(job) = jobs.borrow().clone() else {
            continue;
        };
        extranonce += 1;
        let mut en = vec![0u8; channel.extranonce_size];
        let n = channel.extranonce_size.min(8);
        en[..n].copy_from_slice(&extranonce.to_le_bytes()[..n]);
        let target = *target.borrow();
        // A standard channel has no extranonce to roll (the pool fixed it): its shares
        // differ by where the nonce search starts.
        let start = match job.coinbase {
            JobCoinbase::Parts { .. } => 0,
            JobCoinbase::Root(_) => (extranonce as u32).wrapping_mul(64),
        };
        let Some(nonce) = find_share(&job, start, &channel.extranonce_prefix, &en, &target) else {
            continue;
        };
        sequence += 1;
        let (tx, rx) = oneshot::channel();
        waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sequence, (Instant::now(), tx));
        let submit = match kind {
            Kind::Extended => {
                let Ok(extranonce) = en.try_into() else {
                    return Err("an extranonce over 32 bytes".into());
                };
                MiningOwned::SubmitSharesExtended(SubmitSharesExtendedOwned {
                    channel_id: channel.id,
                    sequence_number: sequence,
                    job_id: job.id,
                    nonce,
                    ntime: job.ntime,
                    version: job.version,
                    extranonce,
                })
            }
            Kind::Standard => MiningOwned::SubmitSharesStandard(SubmitSharesStandard {
                channel_id: channel.id,
                sequence_number: sequence,
                job_id: job.id,
                nonce,
                ntime: job.ntime,
                version: job.version,
            }),
        };
        send(&mut write, &mut writer, AnyMessageOwned::Mining(submit)).await?;
        submitted += 1;
        answers.push(rx);
    }
    let accepted = super::collect_answers(answers, shared).await;
    let seconds = began.elapsed().as_secs_f64();
    super::hold_until_all_answered(shared).await;
    Ok((submitted, accepted, seconds))
}

/// Notify mode: ready once there is a job, then the time until a job on the new block.
async fn wait_for_block(
    jobs: &mut watch::Receiver<Option<Job>>,
    shared: &Shared,
) -> Result<(), String> {
    while jobs.borrow().is_none() {
        jobs.changed().await.map_err(|_| "no job from the pool")?;
    }
    super::wait_for_block_with(jobs, shared, |j| j.as_ref().map(|j| j.prev_hash)).await
}

/// A nonce from `start` on whose header meets `target` and is not a block.
fn find_share(
    job: &Job,
    start: u32,
    prefix: &[u8],
    extranonce: &[u8],
    target: &Target,
) -> Option<u32> {
    let network = Target::from_compact(CompactTarget(job.bits)).ok()?;
    let root = match &job.coinbase {
        JobCoinbase::Parts {
            prefix: coinb1,
            suffix: coinb2,
            branch,
        } => merkle_root(coinb1, prefix, extranonce, coinb2, branch),
        JobCoinbase::Root(root) => *root,
    };
    let header = BlockHeader {
        version: job.version,
        prev_hash: job.prev_hash,
        merkle_root: root,
        time: job.ntime,
        bits: CompactTarget(job.bits),
        nonce: 0,
    };
    let mut bytes = header.encode();
    (0..1u32 << 24)
        .map(|n| start.wrapping_add(n))
        .find(|&nonce| {
            bytes[76..80].copy_from_slice(&nonce.to_le_bytes());
            let hash = protocol::sha256d(&bytes);
            target.is_met_by(&hash) && !network.is_met_by(&hash)
        })
}

/// The pool's messages: the channel's opening, jobs (a future job becomes current with
/// its `SetNewPrevHash`), targets, and share answers with their latency. Read and acted
/// on in one task, with no reader task and queue between (one task wake-up per message
/// fewer, on the cores the pool is measured on).
async fn dispatch(
    (mut reader, mut read): (Reader, OwnedReadHalf),
    waiting: Waiting,
    shared: Arc<Shared>,
    jobs: watch::Sender<Option<Job>>,
    target: watch::Sender<Target>,
    opened: oneshot::Sender<Result<Channel, String>>,
) {
    let mut opened = Some(opened);
    let mut book = JobBook {
        future: BTreeMap::new(),
        current: None,
        out: jobs,
    };
    let answer = |sequence: u32, outcome: Result<(), String>| {
        let entry = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&sequence);
        if let Some((sent, tx)) = entry {
            record_answer(&shared, sent);
            let _ = tx.send(outcome);
        }
    };
    // Any error ends it, a message that does not decode included, as the pool's answers
    // are all known messages.
    while let Ok(message) = reader.next(&mut read).await {
        let AnyMessageOwned::Mining(m) = message else {
            if let AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionError(e)) = message
                && let Some(tx) = opened.take()
            {
                let _ = tx.send(Err(format!(
                    "setup refused: {}",
                    e.error_code.as_utf8_or_hex()
                )));
            }
            continue;
        };
        match m {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => channel_opened(
                &mut opened,
                &target,
                s.target.to_array(),
                Channel {
                    id: s.channel_id,
                    extranonce_prefix: s.extranonce_prefix.to_owned_bytes(),
                    extranonce_size: usize::from(s.extranonce_size),
                },
            ),
            MiningOwned::OpenStandardMiningChannelSuccess(s) => channel_opened(
                &mut opened,
                &target,
                s.target.to_array(),
                Channel {
                    id: s.channel_id,
                    extranonce_prefix: s.extranonce_prefix.to_owned_bytes(),
                    extranonce_size: 0,
                },
            ),
            MiningOwned::OpenMiningChannelError(e) => {
                if let Some(tx) = opened.take() {
                    let _ = tx.send(Err(format!(
                        "channel refused: {}",
                        e.error_code.as_utf8_or_hex()
                    )));
                }
            }
            MiningOwned::NewExtendedMiningJob(j) => book.add(
                j.job_id,
                j.version,
                JobCoinbase::Parts {
                    prefix: j.coinbase_tx_prefix.to_owned_bytes(),
                    suffix: j.coinbase_tx_suffix.to_owned_bytes(),
                    branch: j
                        .merkle_path
                        .iter()
                        .map(|h| Hash256(h.to_array()))
                        .collect(),
                },
                j.min_ntime.clone().into_inner(),
            ),
            MiningOwned::NewMiningJob(j) => book.add(
                j.job_id,
                j.version,
                JobCoinbase::Root(Hash256(j.merkle_root.to_array())),
                j.min_ntime.clone().into_inner(),
            ),
            MiningOwned::SetNewPrevHash(p) => book.activate(
                p.job_id,
                Hash256(p.prev_hash.to_array()),
                p.nbits,
                p.min_ntime,
            ),
            MiningOwned::SetTarget(t) => {
                target.send_replace(Target::from_le_bytes(t.maximum_target.to_array()));
            }
            MiningOwned::SubmitSharesSuccess(s) => {
                let done: Vec<u32> = waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .range(..=s.last_sequence_number)
                    .map(|(k, _)| *k)
                    .collect();
                for sequence in done {
                    answer(sequence, Ok(()));
                }
            }
            MiningOwned::SubmitSharesError(e) => {
                answer(e.sequence_number, Err(e.error_code.as_utf8_or_hex()));
            }
            _ => {}
        }
    }
    if let Some(tx) = opened.take() {
        let _ = tx.send(Err("the pool closed the connection".into()));
    }
}

/// The channel's jobs: the current one (published to the miner loop) and future ones
/// waiting for their `SetNewPrevHash`.
struct JobBook {
    future: BTreeMap<u32, Job>,
    current: Option<Job>,
    out: watch::Sender<Option<Job>>,
}

impl JobBook {
    /// A job for now (it has a time and there is a block to build on) or for the next
    /// `SetNewPrevHash`.
    fn add(&mut self, id: u32, version: u32, coinbase: JobCoinbase, min_ntime: Option<u32>) {
        let job = Job {
            id,
            version,
            coinbase,
            prev_hash: self.current.as_ref().map_or(Hash256::ZERO, |c| c.prev_hash),
            bits: self.current.as_ref().map_or(0, |c| c.bits),
            ntime: min_ntime.unwrap_or(0),
        };
        if min_ntime.is_some() && self.current.is_some() {
            self.publish(job);
        } else {
            self.future.insert(job.id, job);
        }
    }

    /// A new block: the future job it names becomes current, the others are dropped.
    fn activate(&mut self, id: u32, prev_hash: Hash256, bits: u32, ntime: u32) {
        if let Some(mut job) = self.future.remove(&id) {
            job.prev_hash = prev_hash;
            job.bits = bits;
            job.ntime = ntime;
            self.future.clear();
            self.publish(job);
        }
    }

    fn publish(&mut self, job: Job) {
        self.current = Some(job.clone());
        self.out.send_replace(Some(job));
    }
}

/// The channel opened: its first target, and the channel for the miner loop.
fn channel_opened(
    opened: &mut Option<oneshot::Sender<Result<Channel, String>>>,
    target: &watch::Sender<Target>,
    first_target: [u8; 32],
    channel: Channel,
) {
    target.send_replace(Target::from_le_bytes(first_target));
    if let Some(tx) = opened.take() {
        let _ = tx.send(Ok(channel));
    }
}
