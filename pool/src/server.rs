//! The Stratum listener: the accept loop, admission (bans, connections per address and in
//! all, extranonce1 space), one task per connection, and graceful shutdown.
//!
//! Shared state is a [`Shared`] handle: the per-address table sits behind a
//! `std::sync::Mutex` that is held only for a map lookup and never across an `.await`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::peer_ip;
use crate::connection;
use crate::extranonce::Extranonces;
use crate::jobs::{Job, JobIds};
use crate::proxy_protocol::{self, Trusted};
use crate::session::{BlockEvent, SessionSettings, ShareEvent};
use crate::stats::PoolStats;
use crate::store::ShareRow;
use crate::store::writer::Submission;
use crate::tls::Certificates;

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    /// Session settings.
    pub settings: Arc<SessionSettings>,
    /// Job ids for reissued jobs.
    pub ids: JobIds,
    /// Extranonce1 allocation.
    pub extranonces: Extranonces,
    /// Counters.
    pub stats: Arc<PoolStats>,
    /// Where blocks and shares go.
    pub outlets: Outlets,
    /// The newest job.
    pub jobs: watch::Receiver<Option<Arc<Job>>>,
    /// Shown to miners at shutdown.
    pub shutdown_message: String,
    /// Addresses whose connections start with a PROXY protocol header.
    pub proxies: Trusted,
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

/// Where connections send what they produce.
#[derive(Debug)]
pub struct Outlets {
    /// Block candidates, to the submitter.
    pub blocks: mpsc::UnboundedSender<BlockEvent>,
    /// Accepted shares, to the store's writer (None: no database, SOLO mode).
    pub shares: Option<ShareSink>,
}

/// The store's writer, as the connections see it.
#[derive(Debug)]
pub struct ShareSink {
    /// The writer's queue.
    pub writer: mpsc::UnboundedSender<Submission>,
    /// This process (`stratum.instance_id`), written with every share.
    pub instance: i16,
    /// The next share's uid: a random high part per process run, a counter below.
    next_uid: AtomicI64,
}

impl ShareSink {
    /// A sink with a fresh uid space.
    pub fn new(writer: mpsc::UnboundedSender<Submission>, instance: u8) -> ShareSink {
        ShareSink {
            writer,
            instance: i16::from(instance),
            next_uid: AtomicI64::new(uid_base()),
        }
    }

    /// The row for an accepted share.
    pub fn row(&self, share: &ShareEvent, time_us: i64) -> ShareRow {
        ShareRow {
            time_us,
            uid: self.next_uid.fetch_add(1, Ordering::Relaxed),
            address: share.address.clone(),
            worker: share.worker.clone(),
            difficulty: share.accepted.difficulty,
            share_difficulty: share.accepted.share_difficulty,
            network_difficulty: share.network_difficulty,
            height: i64::try_from(share.height).unwrap_or(i64::MAX),
            instance: self.instance,
        }
    }
}

/// 23 random bits (positive i64) above a 40-bit counter: uids of different runs differ,
/// and the shares table keys on (time, uid), so even a collision would need the same
/// microsecond.
fn uid_base() -> i64 {
    let random = crate::store::random_u64();
    ((random & 0x7f_ffff) << 40) as i64
}

#[derive(Debug, Default)]
struct Peer {
    connections: usize,
    banned_until: Option<Instant>,
    /// Protocol-violation closes since `strikes_since` (`limits.ban_after_violations`).
    strikes: u32,
    strikes_since: Option<Instant>,
}

impl Peer {
    /// Whether the entry still matters at `now` (otherwise it can be forgotten).
    fn live(&self, now: Instant, window: Duration) -> bool {
        self.connections > 0
            || self.banned_until.is_some_and(|until| until > now)
            || self
                .strikes_since
                .is_some_and(|since| now.saturating_duration_since(since) < window)
    }
}

/// Beyond this many remembered addresses, forgotten ones are pruned (a scan of many
/// addresses must not grow the table without bound).
const PRUNE_ABOVE: usize = 65_536;

/// Why a connection was turned away.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// The address is banned.
    Banned,
    /// Too many connections from the address.
    PerAddress(usize),
    /// Too many connections in all.
    Total(usize),
}

impl Shared {
    /// The shared state.
    pub fn new(
        settings: Arc<SessionSettings>,
        ids: JobIds,
        extranonces: Extranonces,
        stats: Arc<PoolStats>,
        outlets: Outlets,
        jobs: watch::Receiver<Option<Arc<Job>>>,
        shutdown_message: String,
    ) -> Shared {
        Shared {
            settings,
            ids,
            extranonces,
            stats,
            outlets,
            jobs,
            shutdown_message,
            proxies: Trusted::default(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip` or says why not.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let limits = &self.settings.limits;
        let total = self.stats.snapshot().connections as usize;
        let mut peers = self.peers();
        let peer = peers.entry(ip).or_default();
        if peer.banned_until.is_some_and(|until| until > now) {
            return Err(Refusal::Banned);
        }
        peer.banned_until = None;
        if limits.connections_per_ip > 0 && peer.connections >= limits.connections_per_ip {
            return Err(Refusal::PerAddress(peer.connections));
        }
        if limits.max_connections > 0 && total >= limits.max_connections {
            return Err(Refusal::Total(total));
        }
        peer.connections += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut peers = self.peers();
        if let Some(peer) = peers.get_mut(&ip) {
            peer.connections = peer.connections.saturating_sub(1);
            if peer.connections == 0 && peer.banned_until.is_none() && peer.strikes == 0 {
                peers.remove(&ip);
            }
        }
    }

    /// A connection from `ip` was closed for a protocol violation; true when this one
    /// bans the address (`limits.ban_after_violations` within `limits.ban_secs`).
    pub fn strike(&self, ip: IpAddr, now: Instant) -> bool {
        let limits = &self.settings.limits;
        if limits.ban_after_violations == 0 {
            return false;
        }
        let window = Duration::from_secs(limits.ban_secs);
        let mut peers = self.peers();
        if peers.len() > PRUNE_ABOVE {
            peers.retain(|_, p| p.live(now, window));
        }
        let peer = peers.entry(ip).or_default();
        if peer
            .strikes_since
            .is_none_or(|since| now.saturating_duration_since(since) >= window)
        {
            peer.strikes = 0;
            peer.strikes_since = Some(now);
        }
        peer.strikes += 1;
        if peer.strikes < limits.ban_after_violations {
            return false;
        }
        peer.strikes = 0;
        peer.strikes_since = None;
        peer.banned_until = Some(now + window);
        drop(peers);
        self.stats.banned();
        true
    }

    /// Bans `ip` for the configured time.
    pub fn ban(&self, ip: IpAddr, now: Instant) {
        let window = Duration::from_secs(self.settings.limits.ban_secs);
        let mut peers = self.peers();
        if peers.len() > PRUNE_ABOVE {
            peers.retain(|_, p| p.live(now, window));
        }
        peers.entry(ip).or_default().banned_until = Some(now + window);
        drop(peers);
        self.stats.banned();
    }
}

/// A bound Stratum port: plain, or `stratum+ssl` with the certificates to handshake with.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// TLS, for a `stratum+ssl` port.
    pub tls: Option<Arc<Certificates>>,
}

/// Binds `addr` (with SO_REUSEPORT when `reuse_port`, so that a new pool process can bind
/// the same port during a rolling restart).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(addr)?;
    // Deeper than tokio's default 1024: a whole farm reconnecting after a restart arrives
    // at once (the kernel caps it at net.core.somaxconn).
    socket.listen(4096)
}

/// Accepts connections on every listener until `cancel` fires, then tells every miner to
/// reconnect and waits (at most 10 seconds) for the connection tasks to flush and end.
pub async fn run(listeners: Vec<Listener>, shared: Arc<Shared>, cancel: CancellationToken) {
    let tracker = TaskTracker::new();
    futures::future::join_all(
        listeners
            .into_iter()
            .map(|l| accept_loop(l, &shared, &cancel, &tracker)),
    )
    .await;
    tracker.close();
    info!(
        connections = tracker.len(),
        "stopped accepting; asking miners to reconnect"
    );
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        warn!("some connections did not close within 10 s");
    }
}

async fn accept_loop(
    listener: Listener,
    shared: &Arc<Shared>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.tcp.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ip = peer_ip(&addr);
        // A proxy's connection is admitted once its header names the miner.
        let proxied = shared.proxies.contains(ip);
        if !proxied && !admitted(shared, ip, addr) {
            continue; // dropping the stream closes it
        }
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let cancel = cancel.clone();
        let tls = listener.tls.as_ref().map(|c| c.acceptor());
        tracker.spawn(async move {
            let mut stream = stream;
            let mut addr = addr;
            if proxied {
                match proxy_header(&mut stream, addr).await {
                    Some(real) => addr = real,
                    None => return,
                }
                if !admitted(&shared, peer_ip(&addr), addr) {
                    return;
                }
            }
            let ip = peer_ip(&addr);
            let Some(lease) = shared.extranonces.allocate() else {
                shared.release(ip);
                shared.stats.refused();
                warn!(peer = %addr, "connection refused: extranonce1 space exhausted");
                return;
            };
            shared.stats.connected();
            match tls {
                None => connection::serve(stream, addr, lease, &shared, cancel).await,
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            connection::serve(stream, addr, lease, &shared, cancel).await;
                        }
                        Ok(Err(e)) => debug!(peer = %addr, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(peer = %addr, "TLS handshake timed out"),
                    }
                }
            }
            shared.stats.disconnected();
            shared.release(ip);
        });
    }
}

/// How long a proxy has to send its header, and a miner to finish a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Admits `ip` or logs why not.
fn admitted(shared: &Shared, ip: IpAddr, addr: SocketAddr) -> bool {
    match shared.admit(ip, Instant::now()) {
        Ok(()) => true,
        Err(refusal) => {
            shared.stats.refused();
            log_refusal(addr, &refusal, shared);
            false
        }
    }
}

/// The miner's address from a proxy's PROXY header (the proxy's own for a health check),
/// or `None` (logged) when the header is missing, malformed or late.
async fn proxy_header(stream: &mut TcpStream, proxy: SocketAddr) -> Option<SocketAddr> {
    match tokio::time::timeout(HEADER_TIMEOUT, proxy_protocol::read_header(stream)).await {
        Ok(Ok(real)) => Some(real.unwrap_or(proxy)),
        Ok(Err(e)) => {
            warn!(%proxy, error = %e, "closing a connection from a proxy (stratum.proxy_protocol_from)");
            None
        }
        Err(_) => {
            warn!(%proxy, "closing a connection from a proxy: no PROXY header within 10 s");
            None
        }
    }
}

fn log_refusal(addr: SocketAddr, refusal: &Refusal, shared: &Shared) {
    let limits = &shared.settings.limits;
    match refusal {
        Refusal::Banned => info!(peer = %addr, "connection refused: address is banned"),
        Refusal::PerAddress(n) => warn!(
            peer = %addr,
            open = n,
            limit = limits.connections_per_ip,
            "connection refused: too many connections from this address (limits.connections_per_ip)"
        ),
        Refusal::Total(n) => warn!(
            peer = %addr,
            open = n,
            limit = limits.max_connections,
            "connection refused: connection limit reached (limits.max_connections)"
        ),
    }
}
