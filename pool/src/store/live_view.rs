//! The live view shared between pool processes (`live_snapshots`): each process writes
//! its workers every `database.live_interval_secs`, and reads the other processes' rows
//! that are younger than `database.live_timeout_secs`, by the database's clock so that
//! hosts whose clocks differ still agree on who is live.

use sqlx::{Connection, Row};

use crate::observe::live::{LiveSnapshot, Peer, WorkerLive};
use crate::store::{Store, StoreError};

/// Rows of processes gone for longer than this are deleted (seconds).
const FORGET_SECS: f64 = 86_400.0;

impl Store {
    /// Writes this process's live workers (`workers`: a JSON array of [`WorkerLive`])
    /// under `process`.
    pub async fn write_live(
        &self,
        process: &str,
        instance_id: u8,
        started: u64,
        workers: String,
    ) -> Result<(), StoreError> {
        let mut conn = self.db().acquire().await?;
        sqlx::query(
            "INSERT INTO live_snapshots (process, instance_id, started, workers)
             VALUES ($1, $2, to_timestamp($3), $4::jsonb)
             ON CONFLICT (process) DO UPDATE
             SET written_at = now(), workers = excluded.workers",
        )
        .bind(process)
        .bind(i16::from(instance_id))
        .bind(started as f64)
        .bind(workers)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "DELETE FROM live_snapshots WHERE written_at < now() - make_interval(secs => $1)",
        )
        .bind(FORGET_SECS)
        .execute(&mut *conn)
        .await?;
        // The snapshot went through the connection's write buffer, which keeps its size
        // (MiBs with thousands of workers) for the pool's next user of that connection.
        conn.shrink_buffers();
        Ok(())
    }

    /// The other processes that wrote within `timeout_secs`, oldest start first, their
    /// workers still as JSON ([`LiveRow::into_peer`] reads them).
    pub async fn read_live(
        &self,
        process: &str,
        timeout_secs: u64,
    ) -> Result<Vec<LiveRow>, StoreError> {
        let mut conn = self.db().acquire().await?;
        let rows = sqlx::query(
            "SELECT process, instance_id, extract(epoch FROM started)::float8 AS started,
                    extract(epoch FROM now() - written_at)::float8 AS age, workers::text AS workers
             FROM live_snapshots
             WHERE process <> $1 AND written_at >= now() - make_interval(secs => $2)
             ORDER BY started, process",
        )
        .bind(process)
        .bind(timeout_secs as f64)
        .fetch_all(&mut *conn)
        .await?;
        // As in `write_live`: the peers' snapshots grew the read buffer.
        conn.shrink_buffers();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let instance: i16 = r.try_get("instance_id")?;
            let started: f64 = r.try_get("started")?;
            out.push(LiveRow {
                process: r.try_get("process")?,
                instance_id: u8::try_from(instance).unwrap_or(0),
                started: started.max(0.0) as u64,
                age_secs: r.try_get("age")?,
                workers: r.try_get("workers")?,
            });
        }
        Ok(out)
    }

    /// This process stops: its row goes at once.
    pub async fn remove_live(&self, process: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM live_snapshots WHERE process = $1")
            .bind(process)
            .execute(self.db())
            .await?;
        Ok(())
    }
}

/// Another process's row of `live_snapshots`, its workers not yet read.
#[derive(Clone, Debug)]
pub struct LiveRow {
    /// Its name in `live_snapshots`.
    pub process: String,
    /// Its `stratum.instance_id`.
    pub instance_id: u8,
    /// Unix second it started.
    pub started: u64,
    /// Seconds since it wrote, by the database's clock.
    pub age_secs: f64,
    /// Its workers: a JSON array of [`WorkerLive`].
    pub workers: String,
}

impl LiveRow {
    /// The process with its workers read and its totals recounted from them; `None` for
    /// a snapshot this version cannot read (a newer pool's), which is left out, not fatal.
    pub fn into_peer(self) -> Option<Peer> {
        let Ok(workers) = serde_json::from_str::<Vec<WorkerLive>>(&self.workers) else {
            tracing::warn!(process = %self.process, "live_snapshots: a snapshot this pool cannot read");
            return None;
        };
        Some(Peer {
            process: self.process,
            instance_id: self.instance_id,
            started: self.started,
            age_secs: self.age_secs,
            snapshot: LiveSnapshot::of_workers(workers),
        })
    }
}
