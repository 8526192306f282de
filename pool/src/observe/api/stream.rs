//! `GET /api/pools/{id}/stream`: what happens, pushed as it happens, as Server-Sent Events.
//!
//! Events (each `data` is one JSON object):
//!
//! - `hashrate`: the live figures (at once on connecting, then every
//!   [`TICK_SECS`] seconds): `poolHashrate`, `sharesPerSecond`, `connectedMiners`,
//!   `connectedWorkers`, `created`;
//! - `block`: a node accepted a block the pool found;
//! - `block-status`: a block was confirmed (its reward credited) or orphaned;
//! - `payment`: a wallet payout went out;
//! - `resync`: this client read too slowly and missed events; read the API again.
//!
//! Why Server-Sent Events rather than WebSocket: the stream goes one way, browsers'
//! `EventSource` reconnects by itself, it is plain HTTP that every reverse proxy passes
//! (with buffering off), curl can read it, and axum serves it with no other dependency.
//!
//! Events come from this process's notifier: blocks this process found, and block status
//! and payments when this process leads (the leader tracks blocks and pays). With several
//! processes on one database, point the stream's clients at the leader's API, or read
//! `block-status` and `payment` from any process by polling.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::observe::api::coinbase::coins;
use crate::observe::api::miningcore::check_id;
use crate::observe::api::time::{iso8601, now};
use crate::observe::api::{ApiError, ApiState};
use crate::observe::notify::Note;

/// Seconds between two `hashrate` events.
pub const TICK_SECS: u64 = 5;

/// `GET /api/pools/{id}/stream`.
pub async fn stream(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_id(&state, &id)?;
    let notes = state.stats.notify.subscribe();
    let tick = tokio::time::interval(Duration::from_secs(TICK_SECS));
    let events = futures::stream::unfold(
        (state, notes, tick),
        |(state, mut notes, mut tick)| async move {
            let event = loop {
                tokio::select! {
                    // The pool stops: the stream ends (and the client reconnects to
                    // whatever serves next).
                    () = state.shutdown.cancelled() => return None,
                    _ = tick.tick() => break hashrate(&state),
                    note = next(&mut notes) => match note {
                        Ok(note) => match of_note(&state, &note) {
                            Some(event) => break event,
                            None => continue,
                        },
                        Err(RecvError::Lagged(missed)) => {
                            break event("resync", json!({"missed": missed}));
                        }
                        Err(RecvError::Closed) => notes = None,
                    },
                }
            };
            Some((Ok(event), (state, notes, tick)))
        },
    );
    // A comment every 15 s keeps proxies from closing a quiet stream.
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The next note; never, without a notifier.
async fn next(notes: &mut Option<broadcast::Receiver<Note>>) -> Result<Note, RecvError> {
    match notes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn event(name: &str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn hashrate(state: &ApiState) -> Event {
    let now = now();
    let live = state.stats.combined(now);
    event(
        "hashrate",
        json!({
            "poolId": state.facts.id,
            "poolHashrate": live.hashrate,
            "sharesPerSecond": live.shares_per_sec,
            "connectedMiners": live.miners,
            "connectedWorkers": live.connected_workers,
            "created": iso8601(i64::try_from(now).unwrap_or(i64::MAX)),
        }),
    )
}

/// The event for a note, if the stream carries it.
fn of_note(state: &ApiState, note: &Note) -> Option<Event> {
    let id = &state.facts.id;
    let explorer = &state.facts.explorer;
    let created = iso8601(i64::try_from(now()).unwrap_or(i64::MAX));
    Some(match note {
        Note::BlockFound {
            height,
            hash,
            finder,
            reward,
        } => {
            let (miner, worker) = finder.split_once('.').unwrap_or((finder, ""));
            let height = i64::try_from(*height).unwrap_or(i64::MAX);
            event(
                "block",
                json!({
                    "poolId": id,
                    "blockHeight": height,
                    "hash": hash,
                    "miner": miner,
                    "worker": worker,
                    "reward": coins(*reward),
                    "infoLink": explorer.block(hash, height),
                    "created": created,
                }),
            )
        }
        Note::BlockConfirmed {
            height,
            hash,
            confirmations,
        } => event(
            "block-status",
            json!({"poolId": id, "blockHeight": height, "hash": hash, "status": "confirmed",
                   "confirmations": confirmations, "created": created}),
        ),
        Note::BlockOrphaned { height, hash } => event(
            "block-status",
            json!({"poolId": id, "blockHeight": height, "hash": hash, "status": "orphaned",
                   "confirmations": 0, "created": created}),
        ),
        Note::PaymentSent {
            txid,
            total,
            miners,
        } => event(
            "payment",
            json!({"poolId": id, "transactionConfirmationData": txid, "amount": coins(*total),
                   "miners": miners, "transactionInfoLink": explorer.tx(txid),
                   "created": created}),
        ),
        Note::BestDifficulty { .. }
        | Note::WorkerOffline { .. }
        | Note::NodeUnreachable { .. }
        | Note::Withholding { .. } => return None,
    })
}
