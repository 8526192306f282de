//! The Stratum listener: one accept loop per bound port, admission of each connection
//! ([`crate::stratum::admission`], after a trusted proxy's PROXY header names the miner),
//! extranonce1 space, the TLS handshake, one task per connection, and graceful shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::net::peer_ip;
use crate::observe::stats::Protocol;
use crate::shares::extranonce::Lease;
use crate::stratum::admission::Refusal;
use crate::stratum::connection;
use crate::stratum::proxy_protocol;
use crate::stratum::shared::Shared;
use crate::stratum::tls::Certificates;
use crate::stratum::v2;
use crate::stratum::v2::connection::Endpoint;

/// A bound Stratum port and what it speaks.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub tcp: TcpListener,
    /// The protocol.
    pub door: Door,
}

/// What a port speaks.
#[derive(Clone, Debug)]
pub enum Door {
    /// Stratum v1 in plain text.
    V1,
    /// Stratum v1 inside TLS (`stratum+ssl`), with the certificates to handshake with.
    V1Tls(Arc<Certificates>),
    /// Stratum V2: the Noise handshake and binary frames.
    V2(Arc<Endpoint>),
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
    // Out of descriptors, accept fails every time it is tried: told once per interval.
    let mut out_of_files = Throttled::default();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.tcp.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                if !crate::net::out_of_descriptors(&e) {
                    warn!(error = %e, "accept failed");
                } else if let Some(failures) = out_of_files.due(Instant::now()) {
                    warn!(
                        error = %e,
                        limit = crate::net::open_files_limit(),
                        failures,
                        "accept failed: out of file descriptors (one per miner); new miners wait until some leave: raise the open-files limit (LimitNOFILE, docs/operator.md)"
                    );
                }
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
        let door = listener.door.clone();
        tracker.spawn(async move {
            let mut stream = stream;
            let mut addr = addr;
            if proxied {
                match Box::pin(proxy_header(&mut stream, addr)).await {
                    Some(real) => addr = real,
                    None => return,
                }
                if !admitted(&shared, peer_ip(&addr), addr) {
                    return;
                }
            }
            // From here the address's count is released however the task ends.
            let protocol = match door {
                Door::V1 | Door::V1Tls(_) => Protocol::V1,
                Door::V2(_) => Protocol::V2,
            };
            let mut slot = Slot {
                shared: &shared,
                ip: peer_ip(&addr),
                protocol,
                connected: false,
            };
            let Some(lease) = shared.extranonces.allocate() else {
                shared.stats.refused();
                warn!(peer = %addr, "connection refused: extranonce1 space exhausted");
                return;
            };
            shared.stats.connected(protocol);
            slot.connected = true;
            // Each door's future in a box of its own size: a task's state is as large as
            // its largest variant, and a plain v1 connection must not carry the room a
            // Noise or TLS session needs (it was most of an idle connection's memory).
            match door {
                Door::V1 => Box::pin(connection::serve(stream, addr, lease, &shared, cancel)).await,
                Door::V2(endpoint) => {
                    Box::pin(v2::connection::serve(
                        stream, addr, lease, &shared, endpoint, cancel,
                    ))
                    .await;
                }
                Door::V1Tls(certificates) => {
                    Box::pin(serve_tls(
                        certificates,
                        stream,
                        addr,
                        lease,
                        &shared,
                        cancel,
                    ))
                    .await;
                }
            }
        });
    }
}

/// A TLS connection: the handshake, then Stratum v1 inside it.
async fn serve_tls(
    certificates: Arc<Certificates>,
    stream: TcpStream,
    addr: SocketAddr,
    lease: Lease,
    shared: &Shared,
    cancel: CancellationToken,
) {
    let tls = certificates.acceptor();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => connection::serve(stream, addr, lease, shared, cancel).await,
        Ok(Err(e)) => debug!(peer = %addr, error = %e, "TLS handshake failed"),
        Err(_) => debug!(peer = %addr, "TLS handshake timed out"),
    }
}

/// An admitted connection's place in the per-address and total counts, given back when
/// its task ends, even by a panic.
struct Slot<'a> {
    shared: &'a Shared,
    ip: IpAddr,
    protocol: Protocol,
    connected: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.connected {
            self.shared.stats.disconnected(self.protocol);
        }
        self.shared.admission.release(self.ip);
    }
}

/// How long a proxy has to send its header, and a miner to finish a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Admits `ip` or logs why not.
fn admitted(shared: &Shared, ip: IpAddr, addr: SocketAddr) -> bool {
    match shared.admission.admit(ip, Instant::now()) {
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

/// A warning for something that repeats (accept failing while out of descriptors): told
/// the first time, then at most once per [`Throttled::EVERY`] with how often it happened.
#[derive(Debug, Default)]
struct Throttled {
    last: Option<Instant>,
    since: u64,
}

impl Throttled {
    const EVERY: Duration = Duration::from_secs(10);

    /// Counts one more; the count since the last warning when one is due now.
    fn due(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < Self::EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
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

    #[test]
    fn a_repeated_warning_is_told_once_per_interval_with_its_count() {
        let t0 = Instant::now();
        let mut w = Throttled::default();
        assert_eq!(w.due(t0), Some(1));
        for ms in [100, 200, 9_900] {
            assert_eq!(w.due(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(w.due(t0 + Duration::from_secs(10)), Some(4));
        assert_eq!(w.due(t0 + Duration::from_secs(11)), None);
        assert_eq!(w.due(t0 + Duration::from_secs(25)), Some(2));
    }
}
