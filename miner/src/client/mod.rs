//! The Stratum client: connects to the configured pools in order, drives a [`Session`]
//! over the line codec (Stratum v1) or a [`V2Session`] over the Noise transport (Stratum
//! V2, `stratum2+tcp://`), feeds the engine, submits what it finds, and fails over across
//! pools of both kinds in one list.
//!
//! - Failover: a pool that cannot be reached, refuses the worker, or drops the connection
//!   makes the client move to the next one; a full round of failures backs off (1 s
//!   doubling to 60 s).
//! - Switch-back: while on a backup pool, the first pool is probed every `failback`; once it
//!   answers, the client returns to it.
//! - `client.reconnect` is followed to the same host (another port and a wait are allowed);
//!   another host only with `allow_redirect`.
//! - A pool that sends nothing for `timeout`, an over-long line, or a run of unusable lines
//!   ends the connection with a log line; never a panic or a hang.
//! - A V2 pool whose certificate is not signed by the authority key given fails the
//!   handshake: an error that says so, and the next pool; never a fallback to plain text.

pub mod session;
pub mod tls;
pub mod url;
pub mod v2session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use protocol::stratum::codec::MAX_LINE_FROM_POOL;
use protocol::stratum::{FrameError, StratumCodec};
use protocol::sv2::keys::encode_public;
use protocol::sv2::transport::{self, TransportError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

pub use session::{Event, Session, SessionConfig, Submitted};
pub use url::PoolUrl;
pub use v2session::{ChannelKind, V2Config, V2Session};

use crate::engine::{Engine, Found};
use crate::stats::Stats;

/// How the client behaves.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Pools in order of preference (`-o`, repeatable).
    pub pools: Vec<PoolUrl>,
    /// Worker, password, agent, suggested difficulty, version rolling.
    pub session: SessionConfig,
    /// How long to stay on a backup pool before probing the first one again.
    pub failback: Duration,
    /// Follow `client.reconnect` to another host.
    pub allow_redirect: bool,
    /// Reconnect when the pool sends nothing for this long.
    pub timeout: Duration,
    /// Consecutive unusable lines tolerated before reconnecting.
    pub max_bad_lines: u32,
    /// For `stratum+ssl://` pools: trust only a certificate with this SHA-256 fingerprint
    /// (instead of the web PKI roots).
    pub tls_fingerprint: Option<[u8; 32]>,
    /// For `stratum2+tcp://` pools: the channel kind to open (`--sv2-channel`).
    pub sv2_channel: ChannelKind,
}

impl ClientOptions {
    /// One plain-TCP pool on loopback `port`, version rolling asked for, the command line's
    /// usual timeouts.
    pub fn local(port: u16, user: &str, password: &str, agent: &str) -> ClientOptions {
        ClientOptions {
            pools: vec![PoolUrl::v1("127.0.0.1", port)],
            session: SessionConfig {
                user: user.into(),
                password: password.into(),
                agent: agent.into(),
                suggest_difficulty: None,
                version_rolling_mask: Some(0x1fffe000),
                extranonce2_range: None,
            },
            failback: Duration::from_secs(60),
            allow_redirect: false,
            timeout: Duration::from_secs(120),
            max_bad_lines: 10,
            tls_fingerprint: None,
            sv2_channel: ChannelKind::Extended,
        }
    }

    /// The V2 session's settings, from the same worker, agent and version rolling as v1's.
    fn v2_config(&self) -> V2Config {
        V2Config {
            user: self.session.user.clone(),
            agent: self.session.agent.clone(),
            channel: self.sv2_channel,
            nominal_hash_rate: 0.0,
            version_rolling: self.session.version_rolling_mask.is_some(),
            extranonce_range: self.session.extranonce2_range,
        }
    }
}

/// A miner inside another program: an engine of CPU threads and a Stratum client on the
/// current tokio runtime, as `miner -o` runs them (the pool's tests and demo use it).
/// It stops when `cancel` fires or when this is dropped.
pub struct Embedded {
    /// Stops the client.
    pub cancel: CancellationToken,
    /// Its statistics.
    pub stats: Arc<Stats>,
    /// Its engine.
    pub engine: Arc<Engine>,
}

impl Embedded {
    /// Starts `threads` threads of `backend` mining for the pools of `opts`.
    pub fn start(
        opts: ClientOptions,
        backend: crate::hash::Backend,
        threads: usize,
    ) -> Result<Embedded, String> {
        let (tx, rx) = crate::engine::solution_channel();
        let engine = Arc::new(Engine::start(backend, threads, tx).map_err(|e| e.to_string())?);
        let found = forward_solutions(rx).map_err(|e| format!("cannot start a thread: {e}"))?;
        let stats = Arc::new(Stats::new(Instant::now(), backend.name()));
        let cancel = CancellationToken::new();
        tokio::spawn(run(
            opts,
            engine.clone(),
            found,
            stats.clone(),
            cancel.clone(),
        ));
        Ok(Embedded {
            cancel,
            stats,
            engine,
        })
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A connected byte stream, plain or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Opens a TCP connection, with TLS for `stratum+ssl://`.
async fn open(pool: &PoolUrl, pin: Option<[u8; 32]>) -> Result<Box<dyn Io>, String> {
    let connect = TcpStream::connect((pool.host.as_str(), pool.port));
    let stream = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
        Err(_) => return Err("connect timed out after 10 s".into()),
    };
    let _ = stream.set_nodelay(true);
    if !pool.tls {
        return Ok(Box::new(stream));
    }
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(pool.host.clone())
        .map_err(|e| format!("bad TLS server name {:?}: {e}", pool.host))?;
    let handshake = tls::connector(pin)
        .map_err(|e| e.to_string())?
        .connect(name, stream);
    match tokio::time::timeout(Duration::from_secs(10), handshake).await {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out after 10 s".into()),
    }
}

/// Why a connection ended.
#[derive(Debug, PartialEq)]
enum End {
    Cancelled,
    /// Lost, with the reason, and whether the session had become ready first.
    Lost(String, bool),
    Redirect(PoolUrl, Duration),
    Failback,
}

/// Hands the engine's blocking solutions channel to the async client through a thread.
/// The async side is bounded too, so a slow client makes the engine drop solutions
/// (counted) instead of queueing them without limit.
pub fn forward_solutions(
    from: std::sync::mpsc::Receiver<Found>,
) -> std::io::Result<Receiver<Found>> {
    let (tx, rx) = tokio::sync::mpsc::channel(crate::engine::SOLUTION_QUEUE);
    std::thread::Builder::new()
        .name("solutions".into())
        .spawn(move || {
            while let Ok(f) = from.recv() {
                if tx.blocking_send(f).is_err() {
                    break;
                }
            }
        })?;
    Ok(rx)
}

/// Runs until `cancel` fires.
pub async fn run(
    opts: ClientOptions,
    engine: Arc<Engine>,
    mut found: Receiver<Found>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) {
    if opts.pools.is_empty() {
        warn!("no pool configured");
        return;
    }
    let mut index = 0usize;
    let mut redirect: Option<PoolUrl> = None;
    let mut session_ids: Vec<Option<String>> = vec![None; opts.pools.len()];
    let mut failed_in_a_row = 0u32;
    loop {
        let pool = redirect.take().unwrap_or_else(|| opts.pools[index].clone());
        let mut resume = session_ids[index].clone();
        let end = tokio::select! {
            _ = cancel.cancelled() => End::Cancelled,
            end = connection(&opts, &pool, index, &mut resume, &engine, &mut found, &stats) => end,
        };
        session_ids[index] = resume;
        engine.clear_work();
        stats.set_pool(None, Instant::now());
        match end {
            End::Cancelled => return,
            End::Failback => {
                info!(pool = %opts.pools[0], "first pool is back; switching to it");
                index = 0;
                failed_in_a_row = 0;
            }
            End::Redirect(to, wait) => {
                info!(to = %to, wait_s = wait.as_secs(), "pool asked us to reconnect");
                if sleep_or_cancel(wait, &cancel).await {
                    return;
                }
                redirect = Some(to);
            }
            End::Lost(reason, was_ready) => {
                stats.failure();
                warn!(pool = %pool, %reason, "connection lost");
                failed_in_a_row = if was_ready { 0 } else { failed_in_a_row + 1 };
                if opts.pools.len() > 1 {
                    index = (index + 1) % opts.pools.len();
                    info!(pool = %opts.pools[index], "failing over");
                }
                // Back off once every pool has failed in a row.
                let rounds = failed_in_a_row / opts.pools.len() as u32;
                let pause = Duration::from_secs(1u64 << rounds.min(6)).min(Duration::from_secs(60));
                if sleep_or_cancel(
                    if was_ready {
                        Duration::from_millis(200)
                    } else {
                        pause
                    },
                    &cancel,
                )
                .await
                {
                    return;
                }
            }
        }
    }
}

/// Sleeps, or returns true at once if cancelled.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// One connection: connect, run the session until it ends.
async fn connection(
    opts: &ClientOptions,
    pool: &PoolUrl,
    index: usize,
    resume: &mut Option<String>,
    engine: &Engine,
    found: &mut Receiver<Found>,
    stats: &Stats,
) -> End {
    if let Some(authority) = pool.sv2 {
        return connection_v2(opts, pool, index, authority, engine, found, stats).await;
    }
    let stream = match open(pool, opts.tls_fingerprint).await {
        Ok(s) => s,
        Err(e) => return End::Lost(e, false),
    };
    info!(pool = %pool, "connected");
    // Solutions from a previous connection belong to another session: drop them.
    while found.try_recv().is_ok() {}
    let mut framed = Framed::new(stream, StratumCodec::new(MAX_LINE_FROM_POOL));
    let mut session = Session::new(opts.session.clone(), resume.clone());
    let mut bad_lines = 0u32;
    // One warning per voided job, not per solution: the engine may have a batch in flight.
    let mut last_dropped: Option<String> = None;
    let mut failback =
        tokio::time::interval_at(tokio::time::Instant::now() + opts.failback, opts.failback);
    loop {
        while let Some(msg) = session.poll_transmit() {
            if let Err(e) = framed.send(&msg).await {
                return End::Lost(format!("send failed: {e}"), session.is_ready());
            }
        }
        tokio::select! {
            line = tokio::time::timeout(opts.timeout, framed.next()) => match line {
                Err(_) => return End::Lost(format!("no message for {} s", opts.timeout.as_secs()), session.is_ready()),
                Ok(None) => return End::Lost("the pool closed the connection".into(), session.is_ready()),
                Ok(Some(Err(e))) => return End::Lost(e.to_string(), session.is_ready()),
                Ok(Some(Ok(Err(e)))) => {
                    warn!(pool = %pool, error = %e, "unusable line from the pool");
                    bad_lines += 1;
                    if matches!(e, FrameError::LineTooLong { .. }) || bad_lines > opts.max_bad_lines {
                        return End::Lost(format!("giving up on the pool after: {e}"), session.is_ready());
                    }
                }
                Ok(Some(Ok(Ok(msg)))) => {
                    bad_lines = 0;
                    session.handle(msg);
                }
            },
            Some(f) = found.recv() => {
                let submitted = session.submit(&f);
                on_submitted(submitted, &f, engine, stats, &mut last_dropped);
            }
            _ = failback.tick(), if index > 0 => {
                if answers(&opts.pools[0]).await {
                    return End::Failback;
                }
            }
        }
        while let Some(event) = session.poll_event() {
            if let Some(end) = on_event(opts, pool, event, engine, stats, session.is_ready()) {
                *resume = session.session_id().map(str::to_string);
                return end;
            }
        }
        *resume = session.session_id().map(str::to_string);
    }
}

/// Acts on what a session did with a solution.
fn on_submitted(
    submitted: Submitted,
    f: &Found,
    engine: &Engine,
    stats: &Stats,
    last_dropped: &mut Option<String>,
) {
    match submitted {
        Submitted::Share | Submitted::AfterBlock => {}
        Submitted::Block => {
            stats.block_candidate();
            info!(job = %f.job_id, hash = %f.hash, "block candidate found; submitted to the pool");
            engine.withdraw(&f.job_id);
        }
        Submitted::UnknownJob => {
            // One warning per voided job, not per solution: the engine may have a batch
            // in flight.
            if last_dropped.as_deref() != Some(f.job_id.as_str()) {
                warn!(job = %f.job_id, "solution for a job this connection no longer has; dropped");
                *last_dropped = Some(f.job_id.clone());
            }
        }
    }
}

/// Acts on one session event; returns how the connection ends, if it does.
fn on_event(
    opts: &ClientOptions,
    pool: &PoolUrl,
    event: Event,
    engine: &Engine,
    stats: &Stats,
    ready: bool,
) -> Option<End> {
    match event {
        Event::Work(work) => {
            stats.set_difficulty(work.target.difficulty());
            engine.set_work(*work);
        }
        Event::Subscribed {
            extranonce1,
            extranonce2_size,
        } => {
            info!(extranonce1 = %hex::encode(extranonce1), extranonce2_size, "subscribed");
        }
        Event::Authorized => {
            info!(worker = %opts.session.user, "authorized");
            stats.set_pool(Some(pool.to_string()), Instant::now());
        }
        Event::AuthorizationFailed(reason) => {
            return Some(End::Lost(
                format!("worker {:?} refused: {reason}", opts.session.user),
                false,
            ));
        }
        Event::Difficulty(d) => info!(difficulty = %d, "new difficulty (from the next job)"),
        Event::VersionRolling(mask) => {
            info!(mask = %format!("{mask:08x}"), "version rolling granted")
        }
        Event::Accepted {
            job_id,
            difficulty,
            worker,
        } => {
            stats.accepted(difficulty.get());
            engine.record_verdict(worker, true);
            info!(job = %job_id, %difficulty, "share accepted");
        }
        Event::Rejected {
            job_id,
            worker,
            reason,
            stale,
        } => {
            stats.rejected(&reason, stale);
            engine.record_verdict(worker, false);
            warn!(job = %job_id, %reason, stale, "share rejected");
        }
        Event::ShowMessage(m) => info!(message = %m, "message from the pool"),
        Event::Reconnect(r) => {
            let host = match r.host.filter(|h| !h.is_empty()) {
                Some(h) if h != pool.host && !opts.allow_redirect => {
                    warn!(asked = %h, "client.reconnect to another host ignored (use --allow-redirect); reconnecting to the same host");
                    pool.host.clone()
                }
                Some(h) => h,
                None => pool.host.clone(),
            };
            let to = PoolUrl {
                host,
                port: r.port.filter(|p| *p != 0).unwrap_or(pool.port),
                tls: pool.tls,
                sv2: pool.sv2,
            };
            let wait = Duration::from_secs(r.wait.unwrap_or(0).min(600));
            return Some(End::Redirect(to, wait));
        }
        Event::Protocol(m) => {
            warn!(pool = %pool, problem = %m, ready, "pool protocol problem")
        }
    }
    None
}

/// One Stratum V2 connection: the Noise handshake against the pool's authority key, then
/// the V2 session until the connection ends.
async fn connection_v2(
    opts: &ClientOptions,
    pool: &PoolUrl,
    index: usize,
    authority: [u8; 32],
    engine: &Engine,
    found: &mut Receiver<Found>,
    stats: &Stats,
) -> End {
    let connect = TcpStream::connect((pool.host.as_str(), pool.port));
    let mut stream = match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return End::Lost(format!("cannot connect: {e}"), false),
        Err(_) => return End::Lost("connect timed out after 10 s".into(), false),
    };
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) =
        match transport::connect(&mut stream, authority, Duration::from_secs(10)).await {
            Ok(pair) => pair,
            Err(TransportError::Handshake(detail)) => {
                return End::Lost(
                    format!(
                        "Stratum V2 handshake failed: the pool's certificate is not signed by \
                         the authority key {} (or has expired): check the key in the URL or \
                         --authority-key ({detail})",
                        encode_public(&authority)
                    ),
                    false,
                );
            }
            Err(e) => return End::Lost(format!("Stratum V2 handshake failed: {e}"), false),
        };
    info!(pool = %pool, "connected (Stratum V2, pool certificate checked)");
    while found.try_recv().is_ok() {}
    let (read_half, mut write_half) = stream.into_split();
    let (tx, mut frames) = tokio::sync::mpsc::channel(16);
    let reader_task = tokio::spawn(transport::forward_messages(reader, read_half, tx));
    let _stop_reader = AbortOnDropHandle::new(reader_task);
    let mut session = V2Session::new(opts.v2_config(), &pool.host, pool.port);
    let mut last_dropped: Option<String> = None;
    let mut failback =
        tokio::time::interval_at(tokio::time::Instant::now() + opts.failback, opts.failback);
    loop {
        let mut bytes = Vec::new();
        while let Some(message) = session.poll_transmit() {
            match writer.encode(message) {
                Ok(frame) => bytes.extend_from_slice(&frame),
                Err(e) => return End::Lost(format!("cannot encode: {e}"), session.is_ready()),
            }
        }
        if !bytes.is_empty()
            && let Err(e) = write_half.write_all(&bytes).await
        {
            return End::Lost(format!("send failed: {e}"), session.is_ready());
        }
        while let Some(event) = session.poll_event() {
            if let Some(end) = on_event(opts, pool, event, engine, stats, session.is_ready()) {
                return end;
            }
        }
        tokio::select! {
            frame = tokio::time::timeout(opts.timeout, frames.recv()) => match frame {
                Err(_) => return End::Lost(format!("no message for {} s", opts.timeout.as_secs()), session.is_ready()),
                Ok(None) => return End::Lost("the pool closed the connection".into(), session.is_ready()),
                Ok(Some(Err(TransportError::Message { extension, kind, detail }))) => {
                    warn!(pool = %pool, extension, kind, %detail, "unusable message from the pool; ignored");
                }
                Ok(Some(Err(TransportError::Io(e)))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return End::Lost("the pool closed the connection".into(), session.is_ready());
                }
                Ok(Some(Err(e))) => return End::Lost(e.to_string(), session.is_ready()),
                Ok(Some(Ok(message))) => session.handle(message),
            },
            Some(f) = found.recv() => {
                let submitted = session.submit(&f);
                on_submitted(submitted, &f, engine, stats, &mut last_dropped);
            }
            _ = failback.tick(), if index > 0 => {
                if answers(&opts.pools[0]).await {
                    return End::Failback;
                }
            }
        }
    }
}

/// Whether `pool` answers, for switching back to it: a TCP connection, and for a V2 pool
/// a handshake that checks its certificate too (a pool with the wrong key must not win
/// the miner back every failback period only to fail again).
async fn answers(pool: &PoolUrl) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect((pool.host.as_str(), pool.port))
            .await
            .ok()?;
        if let Some(authority) = pool.sv2 {
            transport::connect(&mut stream, authority, Duration::from_secs(5))
                .await
                .ok()?;
        }
        Some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), probe).await,
        Ok(Some(()))
    )
}
