//! What every Stratum connection task shares: settings, job ids, extranonce1 leases,
//! counters, where shares and blocks go, the job feed, and admission.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::chain::jobs::{Job, JobIds};
use crate::observe::stats::PoolStats;
use crate::shares::extranonce::Extranonces;
use crate::shares::record::BlockEvent;
use crate::store::writer::ShareSink;
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
    /// Addresses whose connections start with a PROXY protocol header.
    pub proxies: Trusted,
    /// Who may connect.
    pub admission: Admission,
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
            proxies: Trusted::default(),
        }
    }
}
