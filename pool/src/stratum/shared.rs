//! What every Stratum connection task shares: settings, job ids, extranonce1 leases,
//! counters, where shares and blocks go, the job feed, and admission.

use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use protocol::target::format_difficulty;
use tokio::sync::{mpsc, watch};

use crate::chain::jobs::{Job, JobIds};
use crate::observe::best::NewBest;
use crate::observe::notify::Note;
use crate::observe::stats::{PoolStats, Protocol};
use crate::shares::extranonce::Extranonces;
use crate::shares::record::{AckToken, BlockEvent, ShareEvent};
use crate::store::Record;
use crate::store::writer::{ShareSink, Submission};
use crate::stratum::admission::Admission;
use crate::stratum::proxy_protocol::Trusted;
use crate::stratum::session::SessionSettings;

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
    /// Tell v1 miners when a worker beats its best share difficulty.
    pub best_message: bool,
    /// Addresses whose connections start with a PROXY protocol header.
    pub proxies: Trusted,
    /// Who may connect.
    pub admission: Admission,
    /// A line for every v1 miner (`client.show_message`), from the admin API: each
    /// connection shows the latest one sent while it is connected.
    pub announcements: watch::Sender<Option<Arc<str>>>,
}

/// Where connections send what they produce.
#[derive(Debug)]
pub struct Outlets {
    /// Block candidates, to the submitter.
    pub blocks: mpsc::Sender<BlockEvent>,
    /// Accepted shares, to the store's writer (None: no database, SOLO mode).
    pub shares: Option<ShareSink>,
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
            admission: Admission::new(settings.limits.clone(), stats.clone()),
            settings,
            ids,
            extranonces,
            stats,
            outlets,
            jobs,
            shutdown_message,
            best_message: false,
            proxies: Trusted::default(),
            announcements: watch::channel(None).0,
        }
    }
}

/// The store's word on a share whose answer waits for it, once it comes.
pub type Ack = BoxFuture<'static, (AckToken, bool)>;

impl Shared {
    /// Shows `text` to every connected v1 miner; how many connections will.
    pub fn announce(&self, text: &str) -> usize {
        self.announcements.send_replace(Some(Arc::from(text)));
        self.announcements.receiver_count()
    }

    /// Counts an accepted share and hands it to the store's writer (waiting while the
    /// writer's queue is full); the answer to wait for, when the session waits for one.
    /// A share that beat its worker's best adds a line for the miner to `notices` (when
    /// `best_message` is on).
    pub async fn record_share(
        &self,
        share: &ShareEvent,
        session: Option<[u8; 4]>,
        protocol: Protocol,
        notices: &mut Vec<String>,
    ) -> Option<Ack> {
        self.stats.accepted(
            protocol,
            share.accepted.difficulty,
            share.accepted.share_difficulty,
        );
        self.stats.live.share(
            &share.address,
            &share.worker,
            session,
            share.accepted.difficulty,
            share.accepted.share_difficulty,
            u64::try_from(share.time_us / 1_000_000).unwrap_or(0),
        );
        let beaten = self.stats.best.share_all(
            &share.address,
            &share.worker,
            share.accepted.share_difficulty.get(),
            share.time_us,
        );
        if let Some(b) = beaten.worker.filter(|_| self.best_message) {
            notices.push(best_notice(&share.worker, b));
        }
        for (news, address) in [(beaten.pool, ""), (beaten.address, share.address.as_str())] {
            if let Some(b) = news {
                self.stats.notify.send(Note::BestDifficulty {
                    address: address.to_string(),
                    worker: share.worker.clone(),
                    difficulty: b.now,
                    previous: b.previous,
                });
            }
        }
        let sink = self.outlets.shares.as_ref()?;
        let (durable, stored) = tokio::sync::oneshot::channel();
        // A place in the queue first, then the row: `send` would hold the row across the
        // wait, and every connection's task keeps room for its largest wait (408 bytes
        // of each idle connection's memory).
        if let Ok(place) = sink.writer.reserve().await {
            place.send(Submission {
                record: Record::Share(sink.row(share)),
                durable: share.awaiting_ack.is_some().then_some(durable),
            });
        }
        let token = share.awaiting_ack?;
        let since = Instant::now();
        let stats = self.stats.clone();
        Some(
            stored
                .map(move |r| {
                    stats.share_ack.record(since.elapsed());
                    (token, r.is_ok())
                })
                .boxed(),
        )
    }

    /// Hands a block candidate to the submitter (waiting while its queue is full).
    pub async fn submit_block(&self, block: Box<BlockEvent>) {
        // Boxed until there is room, as the event brought it: held inline across the wait
        // it would take room in every connection's task.
        if let Ok(place) = self.outlets.blocks.reserve().await {
            place.send(*block);
        }
    }
}

/// The line a miner is shown when a worker beats its own best.
fn best_notice(worker: &str, b: NewBest) -> String {
    let who = if worker.is_empty() {
        "this worker".to_string()
    } else {
        format!("worker {worker}")
    };
    format!(
        "New best share for {who}: difficulty {} (was {})",
        format_difficulty(b.now),
        format_difficulty(b.previous)
    )
}
