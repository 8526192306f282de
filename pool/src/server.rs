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
    peers: Mutex<PeerTable>,
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

/// From this many remembered addresses on, forgotten ones are pruned (a scan from many
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
            peers: Mutex::new(PeerTable::new()),
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, PeerTable> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.settings.limits.ban_secs)
    }

    /// Admits a connection from `ip` or says why not. A refused address gets no entry it
    /// did not already have.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let limits = &self.settings.limits;
        let mut table = self.peers();
        // Counted here rather than by the connected counter, which moves only once a
        // connection is served: a burst of accepts (or proxies still sending their
        // headers) must not slip past the cap.
        let total = table.admitted;
        let open = match table.map.get_mut(&ip) {
            Some(peer) => {
                if peer.banned_until.is_some_and(|until| until > now) {
                    return Err(Refusal::Banned);
                }
                peer.banned_until = None;
                peer.connections
            }
            None => 0,
        };
        if limits.connections_per_ip > 0 && open >= limits.connections_per_ip {
            return Err(Refusal::PerAddress(open));
        }
        if limits.max_connections > 0 && total >= limits.max_connections {
            return Err(Refusal::Total(total));
        }
        table.prune(now, self.window());
        table.map.entry(ip).or_default().connections += 1;
        table.admitted += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut table = self.peers();
        let Some(peer) = table.map.get_mut(&ip) else {
            return;
        };
        if peer.connections == 0 {
            return;
        }
        peer.connections -= 1;
        if peer.connections == 0 && peer.banned_until.is_none() && peer.strikes == 0 {
            table.map.remove(&ip);
        }
        table.admitted = table.admitted.saturating_sub(1);
    }

    /// A connection from `ip` was closed for a protocol violation; true when this one
    /// bans the address (`limits.ban_after_violations` within `limits.ban_secs`).
    pub fn strike(&self, ip: IpAddr, now: Instant) -> bool {
        let limits = &self.settings.limits;
        if limits.ban_after_violations == 0 {
            return false;
        }
        let window = self.window();
        let mut table = self.peers();
        table.prune(now, window);
        let peer = table.map.entry(ip).or_default();
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
        drop(table);
        self.stats.banned();
        true
    }

    /// Bans `ip` for the configured time.
    pub fn ban(&self, ip: IpAddr, now: Instant) {
        let window = self.window();
        let mut table = self.peers();
        table.prune(now, window);
        table.map.entry(ip).or_default().banned_until = Some(now + window);
        drop(table);
        self.stats.banned();
    }
}

/// Addresses with connections, bans or strikes.
#[derive(Debug)]
struct PeerTable {
    map: HashMap<IpAddr, Peer>,
    /// Size at which forgotten entries are next pruned: doubles with the live entries, so
    /// a big pool pays for a scan only as often as its table doubles.
    prune_at: usize,
    /// Admitted connections not yet released, all addresses together.
    admitted: usize,
}

impl PeerTable {
    fn new() -> PeerTable {
        PeerTable {
            map: HashMap::new(),
            prune_at: PRUNE_ABOVE,
            admitted: 0,
        }
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        if self.map.len() < self.prune_at {
            return;
        }
        self.map.retain(|_, p| p.live(now, window));
        self.prune_at = PRUNE_ABOVE.max(self.map.len() * 2);
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
/// the same port during a rolling restart) without listening yet: with SO_REUSEPORT the
/// kernel sends connections to every listening socket, so a process listens only once it
/// can serve ([`listen`]). A port in use is still found at once.
pub fn reserve(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpSocket> {
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
    Ok(socket)
}

/// Starts listening on a [`reserve`]d socket.
pub fn listen(socket: TcpSocket) -> std::io::Result<TcpListener> {
    // Deeper than tokio's default 1024: a whole farm reconnecting after a restart arrives
    // at once (the kernel caps it at net.core.somaxconn).
    socket.listen(4096)
}

/// [`reserve`] and [`listen`] in one step.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    listen(reserve(addr, reuse_port)?)
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
            // From here the address's count is released however the task ends.
            let mut slot = Slot {
                shared: &shared,
                ip: peer_ip(&addr),
                connected: false,
            };
            let Some(lease) = shared.extranonces.allocate() else {
                shared.stats.refused();
                warn!(peer = %addr, "connection refused: extranonce1 space exhausted");
                return;
            };
            shared.stats.connected();
            slot.connected = true;
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
        });
    }
}

/// An admitted connection's place in the per-address and total counts, given back when
/// its task ends, even by a panic.
struct Slot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
    connected: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.connected {
            self.shared.stats.disconnected();
        }
        self.shared.release(self.ip);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LimitsConfig, Mode, VardiffConfig};
    use crate::jobs::{CoinbaseSettings, JobMaker};
    use protocol::address::Network;

    fn shared(limits: LimitsConfig) -> Shared {
        let coinbase = CoinbaseSettings {
            pool_tag: b"/t/".to_vec(),
            extranonce2_size: 8,
        };
        let settings = Arc::new(SessionSettings {
            mode: Mode::Solo,
            network: Network::Regtest,
            version_mask: 0x1fffe000,
            coinbase: coinbase.clone(),
            vardiff: VardiffConfig::default(),
            keep_jobs: 4,
            max_ntime_ahead: 7000,
            limits,
            ack_when_stored: false,
        });
        Shared::new(
            settings,
            JobMaker::new(coinbase, None).ids(),
            Extranonces::new(0),
            Arc::new(PoolStats::default()),
            Outlets {
                blocks: mpsc::unbounded_channel().0,
                shares: None,
            },
            watch::channel(None).1,
            String::new(),
        )
    }

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn per_address_cap_and_release() {
        let s = shared(LimitsConfig {
            connections_per_ip: 2,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        assert_eq!(s.admit(ip(1), now), Ok(()));
        assert_eq!(s.admit(ip(1), now), Ok(()));
        assert_eq!(s.admit(ip(1), now), Err(Refusal::PerAddress(2)));
        assert_eq!(s.admit(ip(2), now), Ok(()));
        s.release(ip(1));
        assert_eq!(s.admit(ip(1), now), Ok(()));
        for _ in 0..2 {
            s.release(ip(1));
        }
        s.release(ip(2));
        assert_eq!(s.peers().map.len(), 0, "nothing kept for idle addresses");
    }

    #[test]
    fn refusals_for_the_total_leave_no_entry_behind() {
        let s = shared(LimitsConfig {
            max_connections: 1,
            ..LimitsConfig::default()
        });
        let now = Instant::now();
        // Counted at admission, before the connection is served.
        assert_eq!(s.admit(ip(1), now), Ok(()));
        for i in 2..1000 {
            assert_eq!(s.admit(ip(i), now), Err(Refusal::Total(1)));
        }
        assert_eq!(s.peers().map.len(), 1);
        s.release(ip(1));
        assert_eq!(s.admit(ip(2), now), Ok(()));
    }

    #[test]
    fn repeated_violations_ban_within_the_window_only() {
        let s = shared(LimitsConfig {
            ban_after_violations: 3,
            ban_secs: 60,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        assert!(!s.strike(ip(1), t0));
        assert!(!s.strike(ip(1), t0));
        // The window passes: counting starts again.
        let later = t0 + Duration::from_secs(61);
        assert!(!s.strike(ip(1), later));
        assert!(!s.strike(ip(1), later));
        assert_eq!(s.admit(ip(1), later), Ok(()));
        assert!(s.strike(ip(1), later), "the third within the window bans");
        assert_eq!(s.admit(ip(1), later), Err(Refusal::Banned));
        assert_eq!(s.stats.snapshot().bans, 1);
        let after_ban = later + Duration::from_secs(61);
        assert_eq!(s.admit(ip(1), after_ban), Ok(()));
        let off = shared(LimitsConfig {
            ban_after_violations: 0,
            ..LimitsConfig::default()
        });
        assert!((0..100).all(|_| !off.strike(ip(1), t0)));
    }

    #[test]
    fn forgotten_addresses_are_pruned() {
        let s = shared(LimitsConfig {
            ban_secs: 1,
            ..LimitsConfig::default()
        });
        let t0 = Instant::now();
        let n = u32::try_from(PRUNE_ABOVE).unwrap() - 1;
        for i in 0..n {
            s.ban(ip(i), t0);
        }
        // Bans of two seconds ago are forgotten when the table reaches the threshold.
        let later = t0 + Duration::from_secs(2);
        s.ban(ip(n), later);
        assert_eq!(s.peers().map.len(), PRUNE_ABOVE);
        s.ban(ip(n + 1), later);
        assert_eq!(s.peers().map.len(), 2);
    }
}
