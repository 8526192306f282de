//! The Stratum load generator behind the `stratum-load` binary: simulated miners that
//! speak plain Stratum v1 to any pool, or Stratum V2 ([`v2`]: the Noise transport, one
//! extended channel per connection) with the same modes and the same report.
//!
//! - **submit**: `miners` connections subscribe and authorize, then submit real, valid
//!   shares at `rate` shares per second in all. Shares are found on the spot at the pool's
//!   difficulty (so the pool must allow a low one: the password asks `d=DIFFICULTY`, our
//!   pool honours it down to `vardiff.min`), never blocks. Each submit's time to its
//!   answer goes into an HDR histogram; rejects are counted by the pool's message.
//! - **idle**: `miners` connections subscribe and authorize, then only listen; the report
//!   says how many are held (and the pool's memory, when its pid is given).
//! - **notify**: `miners` connections subscribe, authorize and get a job; then one block is
//!   mined on the pool's node (`generatetoaddress` through its RPC) and each connection
//!   times how long until it holds a clean `mining.notify` on top of that block.
//!
//! Connections are spread over loopback source addresses 127.0.0.2.. (`sources` of them),
//! so tens of thousands of connections do not run out of ephemeral ports.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use protocol::stratum::work::share_header;
use protocol::stratum::{Authorize, Id, Message, Method, Notify, Submit, Subscribe};
use protocol::{Target, sha256d};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

mod v2;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Submit valid shares at a rate.
    Submit,
    /// Hold authorized connections.
    Idle,
    /// Time the fan-out of a new block's notify.
    Notify,
}

/// Which protocol the simulated miners speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadProtocol {
    /// Stratum v1, plain text.
    V1,
    /// Stratum V2, checking the pool's certificate against this authority public key.
    V2 {
        /// The authority public key.
        authority: [u8; 32],
        /// Standard channels (header-only: the pool computes a merkle root per channel
        /// per job) instead of extended ones.
        standard: bool,
    },
}

/// The run's settings.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The pool's Stratum address.
    pub pool: SocketAddr,
    /// Username prefix: miner `i` authorizes as `{user}.w{i}`.
    pub user: String,
    /// Connections.
    pub miners: usize,
    /// Shares per second, all miners together (submit mode).
    pub rate: f64,
    /// How long to submit, or to hold the connections.
    pub duration: Duration,
    /// Share difficulty asked for in the password (`d=...`).
    pub difficulty: f64,
    /// Loopback source addresses to spread connections over (1: let the OS choose).
    pub sources: u32,
    /// What to do.
    pub mode: Mode,
    /// The pool's node (notify mode).
    pub node: Option<noderpc::Endpoint>,
    /// The protocol.
    pub protocol: LoadProtocol,
    /// The pool's process id (notify mode: the CPU time the pool spent on the fan-out).
    pub pool_pid: Option<u32>,
}

/// What happened.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Connections that subscribed and authorized.
    pub connected: usize,
    /// Connections that failed, with the first reason.
    pub failed: usize,
    /// The first failure.
    pub first_failure: Option<String>,
    /// Shares submitted.
    pub submitted: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Rejects by the pool's message.
    pub rejected: BTreeMap<String, u64>,
    /// Seconds from the first scheduled submit to the last answer (the slowest miner).
    pub seconds: f64,
    /// Submit-to-answer latency percentiles (p50, p99, p99.9, max), microseconds.
    pub latency_us: [u64; 4],
    /// Submit mode: per second of the run (by when the answer came), the answers, how many
    /// took over [`SLOW`], and the slowest, microseconds. Where the tail comes from: a
    /// steady spread, or a few seconds in which everything waited.
    pub by_second: Vec<Second>,
    /// Notify mode: connections that got the new block's notify.
    pub notified: usize,
    /// Notify mode: time from the block to a connection's notify (p50, p99, p99.9, and
    /// the last connection's), microseconds.
    pub fanout_us: [u64; 4],
    /// Notify mode with the pool's pid: the pool's CPU time (user + system) from the
    /// block to the last connection's notify, milliseconds (10 ms resolution).
    pub fanout_pool_cpu_ms: Option<u64>,
}

impl Report {
    /// Accepted shares per second.
    pub fn accepted_per_sec(&self) -> f64 {
        self.accepted as f64 / self.seconds.max(1e-9)
    }
}

/// An answer slower than this counts as slow in [`Report::by_second`] (the pool's p99
/// goal at half of capacity).
pub const SLOW: Duration = Duration::from_millis(10);

/// One second of answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Second {
    /// Answers that came in this second.
    pub answers: u64,
    /// Of those, slower than [`SLOW`].
    pub slow: u64,
    /// The slowest, microseconds.
    pub max_us: u64,
}

/// Request ids from here on are submits (1 and 2: subscribe and authorize).
const FIRST_SUBMIT_ID: u64 = 10;

/// Submits in flight: id to (sent at, answer).
type Waiting = Arc<Mutex<BTreeMap<u64, (Instant, oneshot::Sender<Result<(), String>>)>>>;

struct Shared {
    latency: Mutex<Histogram<u64>>,
    /// When the run started, and its answers by second since then.
    started: Instant,
    by_second: Mutex<Vec<Second>>,
    rejected: Mutex<BTreeMap<String, u64>>,
    /// Notify mode: connections ready (authorized, with a job).
    ready: std::sync::atomic::AtomicUsize,
    /// Notify mode: the new block's hash and when it was mined.
    block: tokio::sync::watch::Sender<Option<(protocol::Hash256, Instant)>>,
    fanout: Mutex<Histogram<u64>>,
    /// Notify mode: the pool's CPU time over the fan-out, milliseconds.
    fanout_cpu_ms: Mutex<Option<u64>>,
    /// Notify mode: every connection holds the new block's notify (or time is up); until
    /// then none closes, so the pool's fan-out is not mixed with closing connections.
    fanned_out: tokio::sync::watch::Sender<bool>,
    /// Submit mode: connections done (all their answers in, or failed). Each waits for all
    /// before it closes: closing connections while others still wait for answers put the
    /// pool's connection teardown into the last second's latency.
    finished: tokio::sync::watch::Sender<usize>,
    /// Connections in the run.
    miners: usize,
}

/// p50, p99, p99.9 and max of a histogram (zeros when empty).
fn percentiles(h: &Mutex<Histogram<u64>>) -> [u64; 4] {
    let h = h.lock().unwrap_or_else(PoisonError::into_inner);
    if h.is_empty() {
        return [0; 4];
    }
    [
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    ]
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Resident memory of a process (the pool's, or this one's), KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Records a latency in microseconds.
fn record(histogram: &Mutex<Histogram<u64>>, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .saturating_record(us.max(1));
}

/// Records a share's submit-to-answer time, in the histogram and in its second.
fn record_answer(shared: &Shared, sent: Instant) {
    let elapsed = sent.elapsed();
    record(&shared.latency, elapsed);
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let second = usize::try_from(shared.started.elapsed().as_secs()).unwrap_or(usize::MAX);
    let mut by = shared
        .by_second
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if by.len() <= second {
        by.resize(second.saturating_add(1), Second::default());
    }
    if let Some(s) = by.get_mut(second) {
        s.answers += 1;
        s.slow += u64::from(elapsed > SLOW);
        s.max_us = s.max_us.max(us);
    }
}

/// Submit mode: counts this connection as done and waits (at most a minute) until every
/// connection is, so that none closes while others still wait for answers.
async fn hold_until_all_answered(shared: &Shared) {
    shared.finished.send_modify(|n| *n += 1);
    let mut finished = shared.finished.subscribe();
    let all = shared.miners;
    let _ = tokio::time::timeout(Duration::from_secs(60), finished.wait_for(|n| *n >= all)).await;
}

/// Waits for every answer; counts the accepted and records the rest by reason.
async fn collect_answers(
    answers: Vec<oneshot::Receiver<Result<(), String>>>,
    shared: &Shared,
) -> u64 {
    // One deadline for the lot, and no timer for an answer that is in already: a timer per
    // answer made every connection register hundreds of them at the end of a run, and the
    // generator's own stall showed as the pool's latency in the last second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut accepted = 0;
    for mut rx in answers {
        let answer = match rx.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Closed) => None,
            Err(oneshot::error::TryRecvError::Empty) => tokio::time::timeout_at(deadline, rx)
                .await
                .ok()
                .and_then(Result::ok),
        };
        let reason = match answer {
            Some(Ok(())) => {
                accepted += 1;
                continue;
            }
            Some(Err(reason)) => reason,
            None => "no answer".into(),
        };
        *shared
            .rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }
    accepted
}

/// A TCP connection to the pool from loopback source address number `i` (of
/// `opts.sources`).
async fn connect(i: usize, opts: &LoadOptions) -> Result<tokio::net::TcpStream, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if opts.sources > 1 {
        let host = 2 + (i as u32 % opts.sources);
        let ip = Ipv4Addr::new(127, 0, (host >> 8) as u8, (host & 0xff) as u8);
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .map_err(|e| format!("binding {ip}: {e}"))?;
    }
    socket
        .connect(opts.pool)
        .await
        .map_err(|e| format!("connecting: {e}"))
}

/// Runs the load and reports.
pub async fn run(opts: LoadOptions) -> Report {
    let shared = Arc::new(Shared {
        latency: Mutex::new(histogram()),
        started: Instant::now(),
        by_second: Mutex::new(Vec::new()),
        rejected: Mutex::new(BTreeMap::new()),
        ready: std::sync::atomic::AtomicUsize::new(0),
        block: tokio::sync::watch::channel(None).0,
        fanout: Mutex::new(histogram()),
        fanout_cpu_ms: Mutex::new(None),
        fanned_out: tokio::sync::watch::channel(false).0,
        finished: tokio::sync::watch::channel(0).0,
        miners: opts.miners,
    });
    let per_miner = opts.rate / opts.miners.max(1) as f64;
    let start_at = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for i in 0..opts.miners {
        let opts = opts.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let outcome = match opts.protocol {
                LoadProtocol::V1 => miner(i, &opts, per_miner, start_at, &shared).await,
                LoadProtocol::V2 {
                    authority,
                    standard,
                } => {
                    let stream = connect(i, &opts).await?;
                    let channel = v2::Kind::from_standard(standard);
                    let peer = (authority, channel);
                    v2::miner(i, stream, peer, &opts, per_miner, start_at, &shared).await
                }
            };
            if outcome.is_err() {
                shared.finished.send_modify(|n| *n += 1);
            }
            outcome
        }));
    }
    let mut report = Report::default();
    if opts.mode == Mode::Notify
        && let Err(e) = mine_a_block(&opts, &shared).await
    {
        report.first_failure = Some(e);
        shared.fanned_out.send_replace(true);
    }
    for t in tasks {
        match t.await {
            Ok(Ok((submitted, accepted, seconds))) => {
                report.connected += 1;
                report.submitted += submitted;
                report.accepted += accepted;
                report.seconds = report.seconds.max(seconds);
            }
            Ok(Err(e)) => {
                report.failed += 1;
                report.first_failure.get_or_insert(e);
            }
            Err(e) => {
                report.failed += 1;
                report.first_failure.get_or_insert(e.to_string());
            }
        }
    }
    report.latency_us = percentiles(&shared.latency);
    report.by_second = shared
        .by_second
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    report.fanout_us = percentiles(&shared.fanout);
    report.fanout_pool_cpu_ms = *shared
        .fanout_cpu_ms
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    report.notified = shared
        .fanout
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len() as usize;
    report.rejected = shared
        .rejected
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    report
}

/// One simulated miner: (submitted, accepted, seconds from its first submit to its last
/// answer).
async fn miner(
    i: usize,
    opts: &LoadOptions,
    rate: f64,
    start_at: Instant,
    shared: &Arc<Shared>,
) -> Result<(u64, u64, f64), String> {
    let stream = connect(i, opts).await?;
    let (read, mut write) = stream.into_split();
    let waiting: Waiting = Arc::new(Mutex::new(BTreeMap::new()));
    let (jobs_tx, mut jobs) = tokio::sync::watch::channel::<Option<Notify>>(None);
    let (en1_tx, en1_rx) = oneshot::channel::<Result<(Vec<u8>, usize), String>>();
    let reader = tokio::spawn(read_loop(
        read,
        waiting.clone(),
        shared.clone(),
        jobs_tx,
        en1_tx,
    ));
    let user = format!("{}.w{i}", opts.user);
    let subscribe = Message::request(
        1,
        Method::Subscribe(Subscribe {
            user_agent: Some("stratum-load/1".into()),
            ..Subscribe::default()
        }),
    );
    let (en1, en2_size) = {
        let (tx, rx) = oneshot::channel();
        waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(1, (Instant::now(), tx));
        send(&mut write, &subscribe).await?;
        rx.await.map_err(|_| "the pool closed the connection")??;
        en1_rx.await.map_err(|_| "no subscribe result")??
    };
    let (tx, rx) = oneshot::channel();
    waiting
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(2, (Instant::now(), tx));
    let authorize = Message::request(
        2,
        Method::Authorize(Authorize {
            user: user.clone(),
            password: Some(format!("x,d={}", opts.difficulty)),
        }),
    );
    send(&mut write, &authorize).await?;
    rx.await
        .map_err(|_| "the pool closed the connection")?
        .map_err(|e| format!("authorize refused: {e}"))?;
    if opts.mode == Mode::Idle {
        tokio::time::sleep(opts.duration).await;
        reader.abort();
        return Ok((0, 0, 0.0));
    }
    if opts.mode == Mode::Notify {
        let outcome = tokio::time::timeout(opts.duration, wait_for_block(&mut jobs, shared)).await;
        reader.abort();
        return match outcome {
            Ok(Ok(())) => Ok((0, 0, 0.0)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("no notify for the new block in time".into()),
        };
    }
    // Wait for a job, then submit on a fixed schedule (open loop: a slow pool does not
    // slow the submits down, it shows in the latency).
    while jobs.borrow().is_none() {
        jobs.changed().await.map_err(|_| "no job from the pool")?;
    }
    let target = Target::from_difficulty(opts.difficulty).map_err(|e| e.to_string())?;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    // Miners start spread over one interval, not all at once.
    let offset = interval.mul_f64((i as f64 * 0.618_034).fract());
    let began = start_at.max(Instant::now());
    let mut next = began + offset;
    let end = next + opts.duration;
    let (mut submitted, mut extranonce2, mut id) = (0u64, 0u64, FIRST_SUBMIT_ID);
    let mut answers = Vec::new();
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let Some(notify) = jobs.borrow().clone() else {
            continue;
        };
        extranonce2 += 1;
        let en2 = extranonce2.to_le_bytes()[..en2_size.min(8)].to_vec();
        let Some(nonce) = find_share(&notify, &en1, &en2, &target) else {
            continue;
        };
        let (tx, rx) = oneshot::channel();
        id += 1;
        waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (Instant::now(), tx));
        let submit = Message::request(
            id,
            Method::Submit(Submit {
                worker: user.clone(),
                job_id: notify.job_id.clone(),
                extranonce2: en2,
                ntime: notify.ntime,
                nonce,
                version_bits: None,
            }),
        );
        send(&mut write, &submit).await?;
        submitted += 1;
        answers.push(rx);
    }
    let accepted = collect_answers(answers, shared).await;
    // To the last answer: a pool that falls behind shows in the rate, not only the latency.
    let seconds = began.elapsed().as_secs_f64();
    hold_until_all_answered(shared).await;
    reader.abort();
    Ok((submitted, accepted, seconds))
}

/// Notify mode, one connection: report ready once it has a job, then time the notify
/// built on the block `mine_a_block` mines.
async fn wait_for_block(
    jobs: &mut tokio::sync::watch::Receiver<Option<Notify>>,
    shared: &Shared,
) -> Result<(), String> {
    while jobs.borrow().is_none() {
        jobs.changed().await.map_err(|_| "no job from the pool")?;
    }
    wait_for_block_with(jobs, shared, |n| n.as_ref().map(|n| n.prev_hash)).await
}

/// Notify mode, either protocol: ready (the connection has a job), then the time until
/// the job it holds is on the block `mine_a_block` mined (`prev` reads a job's previous
/// block hash).
async fn wait_for_block_with<T>(
    jobs: &mut tokio::sync::watch::Receiver<T>,
    shared: &Shared,
    prev: impl Fn(&T) -> Option<protocol::Hash256>,
) -> Result<(), String> {
    shared
        .ready
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut block = shared.block.subscribe();
    loop {
        tokio::select! {
            changed = jobs.changed() => changed.map_err(|_| "the pool closed the connection")?,
            changed = block.changed() => changed.map_err(|_| "the run ended")?,
        }
        let Some((hash, mined)) = *block.borrow() else {
            continue;
        };
        let on_top = prev(&jobs.borrow()) == Some(hash);
        if on_top {
            record(&shared.fanout, mined.elapsed());
            // Hold the connection until every other one has its notify too.
            let _ = shared.fanned_out.subscribe().wait_for(|done| *done).await;
            return Ok(());
        }
    }
}

/// Notify mode: once every connection is ready (or after `duration`), mines one block on
/// the node and publishes its hash and time.
async fn mine_a_block(opts: &LoadOptions, shared: &Shared) -> Result<(), String> {
    let node = opts
        .node
        .clone()
        .ok_or("notify mode needs the pool's node (--node)")?;
    let deadline = Instant::now() + opts.duration;
    while shared.ready.load(std::sync::atomic::Ordering::SeqCst) < opts.miners
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let address = opts.user.clone();
    let cpu_before = opts.pool_pid.and_then(cpu_ms);
    let (hash, mined) = tokio::task::spawn_blocking(move || {
        let rpc = noderpc::Client::for_endpoint(node, noderpc::DEFAULT_TIMEOUT);
        let answer = rpc
            .call("generatetoaddress", serde_json::json!([1, address]))
            .map_err(|e| format!("generatetoaddress: {e}"))?;
        let mined = Instant::now();
        let hash = answer[0]
            .as_str()
            .and_then(|h| h.parse::<protocol::Hash256>().ok())
            .ok_or_else(|| format!("generatetoaddress answered {answer}"))?;
        Ok::<_, String>((hash, mined))
    })
    .await
    .map_err(|e| e.to_string())??;
    shared.block.send_replace(Some((hash, mined)));
    // Every connection holds the new notify (or time is up): the pool's CPU then.
    let deadline = Instant::now() + opts.duration;
    while notified(shared) < shared.ready.load(std::sync::atomic::Ordering::SeqCst)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if let (Some(pid), Some(before)) = (opts.pool_pid, cpu_before)
        && let Some(after) = cpu_ms(pid)
    {
        *shared
            .fanout_cpu_ms
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(after.saturating_sub(before));
    }
    shared.fanned_out.send_replace(true);
    Ok(())
}

fn notified(shared: &Shared) -> usize {
    shared
        .fanout
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len() as usize
}

/// A process's CPU time so far (user + system), milliseconds, from `/proc/PID/stat`
/// (counted in clock ticks of 10 ms).
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields that follow come after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// A nonce whose header meets `target` and is not a block (blocks would change the job
/// under every other simulated miner).
fn find_share(notify: &Notify, en1: &[u8], en2: &[u8], target: &Target) -> Option<u32> {
    let network = Target::from_compact(notify.nbits).ok()?;
    let header = share_header(notify, en1, en2, notify.version, notify.ntime, 0);
    let mut bytes = header.encode();
    (0..u32::MAX).find(|&nonce| {
        bytes[76..80].copy_from_slice(&nonce.to_le_bytes());
        let hash = sha256d(&bytes);
        target.is_met_by(&hash) && !network.is_met_by(&hash)
    })
}

async fn send(write: &mut OwnedWriteHalf, msg: &Message) -> Result<(), String> {
    let mut line = msg.to_value().to_string();
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("writing: {e}"))
}

/// Reads the pool's lines: answers go to whoever waits for them (with their latency), jobs
/// to the watch channel, the subscribe result's extranonce to `en1`.
async fn read_loop(
    read: OwnedReadHalf,
    waiting: Waiting,
    shared: Arc<Shared>,
    jobs: tokio::sync::watch::Sender<Option<Notify>>,
    en1: oneshot::Sender<Result<(Vec<u8>, usize), String>>,
) {
    let mut en1 = Some(en1);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match Message::from_value(&value) {
            Ok(Message::Request {
                method: Method::Notify(n),
                ..
            }) => {
                jobs.send_replace(Some(n));
            }
            Ok(Message::Response(r)) => {
                let Id::Num(n) = &r.id else { continue };
                let Some(id) = n.as_u64() else { continue };
                if id == 1
                    && let Some(tx) = en1.take()
                {
                    let parsed = r.result[1]
                        .as_str()
                        .and_then(|h| hex::decode(h).ok())
                        .zip(r.result[2].as_u64())
                        .map(|(e, s)| (e, s as usize))
                        .ok_or_else(|| format!("bad subscribe result {}", r.result));
                    let _ = tx.send(parsed);
                }
                let entry = waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some((sent, tx)) = entry {
                    if id >= FIRST_SUBMIT_ID {
                        record_answer(&shared, sent);
                    }
                    let outcome = match (&r.error, &r.result) {
                        (Some(e), _) => Err(e.message.clone()),
                        (None, serde_json::Value::Bool(false) | serde_json::Value::Null) => {
                            Err("refused".to_string())
                        }
                        (None, _) => Ok(()),
                    };
                    let _ = tx.send(outcome);
                }
            }
            _ => {}
        }
    }
}
