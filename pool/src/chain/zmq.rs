//! Optional ZMQ `hashblock` subscription (a node's `-zmqpubhashblock`): the fastest word of
//! a new block. Each message kicks the template feed to fetch at once. A node with ZMQ is
//! not long-polled (a long poll holds one of its RPC threads); the `getbestblockhash` poll
//! stays, so a lost ZMQ connection costs at most `block_poll_ms`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use zeromq::{Socket, SocketRecv, SubSocket};

const TOPIC: &str = "hashblock";

/// Subscribes to `endpoint` (e.g. `tcp://127.0.0.1:28332`) until `cancel` fires,
/// reconnecting with backoff.
pub async fn run(endpoint: String, kick: Arc<Notify>, cancel: CancellationToken) {
    let mut failures = 0u32;
    loop {
        let mut socket = SubSocket::new();
        let opened = async {
            socket.connect(&endpoint).await?;
            socket.subscribe(TOPIC).await
        };
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(Duration::from_secs(10), opened) => r,
        };
        match opened {
            Ok(Ok(())) => {
                info!(%endpoint, "ZMQ hashblock subscribed");
                failures = 0;
            }
            Ok(Err(e)) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    warn!(%endpoint, error = %e, "ZMQ subscription failed; polling carries new blocks meanwhile");
                }
            }
            Err(_) => {
                failures += 1;
                warn!(%endpoint, "ZMQ connect timed out");
            }
        }
        if failures == 0 {
            loop {
                let message = tokio::select! {
                    _ = cancel.cancelled() => return,
                    m = socket.recv() => m,
                };
                match message {
                    Ok(m) => {
                        // Frames: topic, 32-byte hash (RPC byte order), sequence number.
                        if m.get(0).is_some_and(|t| t.as_ref() == TOPIC.as_bytes()) {
                            let hash = m
                                .get(1)
                                .map(|h| hex::encode(h.as_ref()))
                                .unwrap_or_default();
                            debug!(%hash, "ZMQ hashblock");
                            kick.notify_one();
                        }
                    }
                    Err(e) => {
                        warn!(%endpoint, error = %e, "ZMQ connection lost; reconnecting");
                        failures = 1;
                        break;
                    }
                }
            }
        }
        let wait = crate::chain::feed::backoff(failures, Duration::from_secs(10));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
