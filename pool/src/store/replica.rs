//! A PostgreSQL read replica for the API's history (`database.read_url`): the queries of
//! [`super::reads`] and [`super::earnings`] go to it while it answers, so a busy public
//! dashboard does not load the primary that takes the shares. When it does not answer
//! (down, restarting, unreachable) they go to the primary: a read that fails on the
//! replica is run again there at once, and [`Store::watch_replica`] tries the replica
//! every [`CHECK_SECS`] until it answers again.
//!
//! A streaming replica is a little behind the primary (usually milliseconds); history
//! read from it may miss the last moment's rows, never holds rows the primary lacks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::store::{Store, StoreError};

/// Seconds between two checks of the replica.
pub const CHECK_SECS: u64 = 2;
/// Longest wait for a replica connection before the primary is asked instead.
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// The replica's pool and what it served.
#[derive(Debug)]
pub struct Replica {
    db: PgPool,
    up: AtomicBool,
    from_replica: AtomicU64,
    from_primary: AtomicU64,
    fallbacks: AtomicU64,
}

/// Where the API's history reads went (for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaFigures {
    /// Whether the replica answers now.
    pub up: bool,
    /// Reads the replica answered.
    pub from_replica: u64,
    /// Reads the primary answered (the replica down, or failing the read).
    pub from_primary: u64,
    /// Reads that failed on the replica and were run again on the primary.
    pub fallbacks: u64,
}

impl Replica {
    /// Connects lazily: a replica that is down when the pool starts does not stop it.
    pub fn new(url: &str, max_connections: u32) -> Result<Replica, StoreError> {
        let db = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(CONNECT_WAIT)
            .connect_lazy(url)?;
        Ok(Replica {
            db,
            up: AtomicBool::new(false),
            from_replica: AtomicU64::new(0),
            from_primary: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        })
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                info!("read replica answers: the API's history reads go to it");
            } else {
                warn!("read replica does not answer: the API's history reads go to the primary");
            }
        }
    }
}

/// Whether an error says the server is not there (rather than that the query is wrong).
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // Class 08: connection exception; 57: the server shuts down or restarts.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
        _ => false,
    }
}

impl Store {
    /// Sends the API's history reads to the replica at `url` while it answers.
    pub fn with_replica(mut self, url: &str, max_connections: u32) -> Result<Store, StoreError> {
        self.replica = Some(Arc::new(Replica::new(url, max_connections)?));
        Ok(self)
    }

    /// Runs a read on the replica while it answers, else (or if it fails there) on the
    /// primary. `query` builds the same query for either pool.
    pub(crate) async fn read<T, F, Fut>(&self, query: F) -> Result<T, StoreError>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let Some(replica) = &self.replica else {
            return Ok(query(self.db.clone()).await?);
        };
        if replica.up.load(Ordering::Relaxed) {
            match query(replica.db.clone()).await {
                Ok(rows) => {
                    replica.from_replica.fetch_add(1, Ordering::Relaxed);
                    return Ok(rows);
                }
                Err(e) => {
                    // A wrong query fails on the primary too, and says so there.
                    replica.fallbacks.fetch_add(1, Ordering::Relaxed);
                    if unreachable(&e) {
                        replica.set_up(false);
                    } else {
                        warn!(error = %e, "a read failed on the replica; asking the primary");
                    }
                }
            }
        }
        let rows = query(self.db.clone()).await?;
        replica.from_primary.fetch_add(1, Ordering::Relaxed);
        Ok(rows)
    }

    /// Where the history reads went, with a replica configured.
    pub fn replica_figures(&self) -> Option<ReplicaFigures> {
        self.replica.as_ref().map(|r| ReplicaFigures {
            up: r.up.load(Ordering::Relaxed),
            from_replica: r.from_replica.load(Ordering::Relaxed),
            from_primary: r.from_primary.load(Ordering::Relaxed),
            fallbacks: r.fallbacks.load(Ordering::Relaxed),
        })
    }

    /// Checks the replica every [`CHECK_SECS`] until `cancel`: it counts as up once it
    /// answers, as a server in recovery (a standby; a promoted one is a primary now, and
    /// reading from it would split the history).
    pub async fn watch_replica(self, cancel: CancellationToken) {
        let Some(replica) = self.replica.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(CHECK_SECS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut said_not_standby = false;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let check =
                sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(&replica.db);
            match tokio::time::timeout(CONNECT_WAIT * 2, check).await {
                Ok(Ok(true)) => replica.set_up(true),
                Ok(Ok(false)) => {
                    if !said_not_standby {
                        warn!(
                            "database.read_url is not a standby (promoted, or the primary): not reading from it"
                        );
                        said_not_standby = true;
                    }
                    replica.set_up(false);
                }
                Ok(Err(_)) | Err(_) => replica.set_up(false),
            }
        }
    }
}
