//! One Stratum V2 connection: the Noise handshake, then messages between the encrypted
//! socket and the V2 [`Session`], jobs and a one-second tick in, and the session's events
//! routed exactly as v1's are ([`route_events`]): the same store, submitter, counters and
//! admission.
//!
//! Frames are read in the connection's own task (the transport's reader is cancel safe):
//! while [`MAX_ACKS_IN_FLIGHT`] shares wait for the store it stops reading, so TCP slows a
//! miner that submits faster than the database commits, as on v1. No reader task, queue
//! or split socket: an idle V2 miner costs about what a v1 one does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::clock::now_us;
use crate::observe::stats::Protocol;
use crate::shares::extranonce::Lease;
use crate::stratum::connection::{
    Acks, LINGER, MAX_ACKS_IN_FLIGHT, Presence, SETTLE_TIMEOUT, WRITE_TIMEOUT, route_events, strike,
};
use crate::stratum::events::CloseReason;
use crate::stratum::shared::Shared;
use crate::stratum::v2::session::Session;
use protocol::sv2::keys::AuthorityKeys;
use protocol::sv2::transport::{self, TransportError};

/// What a V2 listener needs besides what every connection shares.
#[derive(Debug)]
pub struct Endpoint {
    /// The authority key pair that certifies each connection's static key.
    pub keys: AuthorityKeys,
    /// How long a certificate is valid from the handshake on.
    pub cert_validity: Duration,
}

/// How long a miner has to finish the Noise handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one V2 miner until it leaves, misbehaves, or the pool shuts down.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut stream: S,
    peer: SocketAddr,
    lease: Lease,
    shared: &Shared,
    endpoint: Arc<Endpoint>,
    cancel: CancellationToken,
) {
    // The handshake's state in a box of its own, let go once done, and its result
    // matched without a name: either would otherwise keep room in the task for the
    // connection's life (528 and 376 bytes of every connection).
    let (mut reader, mut writer) = match Box::pin(transport::accept(
        &mut stream,
        &endpoint.keys,
        endpoint.cert_validity,
        HANDSHAKE_TIMEOUT,
    ))
    .await
    {
        Ok(pair) => pair,
        Err(TransportError::StratumV1) => {
            // A misconfigured miner, not an attack: no strike against its address, which
            // other miners behind the same NAT may share.
            info!(%peer, "closing: a Stratum v1 miner on the Stratum V2 port (stratum.v2.bind); point it at stratum.bind");
            return;
        }
        Err(e) => {
            info!(%peer, error = %e, "closing: Stratum V2 handshake failed");
            return;
        }
    };
    let mut jobs = shared.jobs.clone();
    let mut session = Session::new(
        shared.settings.clone(),
        lease.bytes(),
        Instant::now(),
        now_us(),
    );
    if let Some(job) = jobs.borrow_and_update().clone() {
        session.on_job(Instant::now(), job);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutting_down = false;
    let mut acks = Acks::new();
    let mut presence = Presence::new(&shared.stats.live);
    // One registration with the token for the connection's life, not one per loop turn
    // (each turn's registration takes the token's lock, which every connection shares).
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    debug!(%peer, extranonce1 = %hex::encode(lease.bytes()), "V2 connected");
    let end = 'connection: loop {
        // Send what the session queued, then act on what happened. The bytes are let go
        // once written: an idle connection keeps no write buffer (the setup's messages and
        // a job's are over a kilobyte).
        {
            let mut out = Vec::new();
            while let Some(message) = session.poll_transmit() {
                match writer.encode(message) {
                    Ok(bytes) => out.extend_from_slice(&bytes),
                    // A message of ours the codec refused: a bug, never the miner's doing.
                    Err(e) => break 'connection format!("cannot send: {e}"),
                }
            }
            if !out.is_empty() {
                match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break format!("write failed: {e}"),
                    Err(_) => break "not reading (write timed out)".to_string(),
                }
            }
        }
        let events = std::iter::from_fn(|| session.poll_event());
        // V2 has no message to show a miner: notices are dropped.
        let mut notices = Vec::new();
        if let Some(reason) = route_events(
            Protocol::V2,
            events,
            peer,
            shared,
            &mut acks,
            &mut presence,
            &mut notices,
        )
        .await
        {
            if reason == CloseReason::Shutdown {
                // Let the miner read the last answers before the socket goes.
                let _ = tokio::time::timeout(LINGER, async {
                    let _ = stream.shutdown().await;
                    // On the heap: an array here would make every connection's task larger.
                    let mut rest = vec![0u8; 512];
                    while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
                })
                .await;
            }
            break reason.to_string();
        }
        tokio::select! {
            _ = &mut cancelled, if !shutting_down => {
                shutting_down = true;
                // Answer the shares already accepted before closing.
                let settle = async {
                    while let Some((token, stored)) = acks.next().await {
                        session.share_stored(token, stored);
                    }
                };
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, settle).await;
                session.shutdown();
            }
            Some((token, stored)) = acks.next(), if !acks.is_empty() => {
                session.share_stored(token, stored);
            }
            frame = reader.next(&mut stream), if acks.len() < MAX_ACKS_IN_FLIGHT => match frame {
                Ok(message) => session.handle(Instant::now(), message),
                Err(TransportError::Message { extension, kind, detail }) => {
                    debug!(%peer, extension, kind, %detail, "unknown or malformed V2 message");
                    session.on_malformed(Instant::now());
                }
                Err(e @ (TransportError::TooLarge { .. } | TransportError::Frame(_))) => {
                    bad_frame(shared, peer, &e, session.is_set_up());
                    break e.to_string();
                }
                Err(TransportError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    break "closed by the miner".to_string();
                }
                Err(e) => break format!("read failed: {e}"),
            },
            changed = jobs.changed() => {
                if changed.is_err() {
                    // The job feed ended: the pool is stopping.
                    shutting_down = true;
                    session.shutdown();
                } else if let Some(job) = jobs.borrow_and_update().clone() {
                    session.on_job(Instant::now(), job);
                }
            }
            _ = tick.tick() => session.on_tick(Instant::now()),
        }
    };
    debug!(%peer, channels = session.channels(), reason = %end, "V2 disconnected");
    drop(lease);
}

/// A frame that cannot be a V2 client's: logged, and once the connection was set up
/// (before, it may be a client of another protocol) counted against the address like v1
/// junk (`limits.ban_after_violations`).
fn bad_frame(shared: &Shared, peer: SocketAddr, e: &TransportError, set_up: bool) {
    info!(%peer, error = %e, "closing: bad Stratum V2 frame");
    if set_up {
        strike(shared, peer);
    }
}
