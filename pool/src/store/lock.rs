//! The leader lock: a PostgreSQL advisory lock held on a connection of its own, so that
//! if its process dies or loses the database, the lock goes with the connection and
//! another pool process can take over the back office.

use sqlx::{Connection, PgConnection};

/// The advisory lock key: any constant every pool process uses ("SHA256d" in ASCII).
const LEADER_LOCK: i64 = 0x0053_4841_3235_3664;

/// The lock, held while this lives on its connection.
#[derive(Debug)]
pub struct LeaderLock {
    conn: PgConnection,
}

impl LeaderLock {
    /// Takes the lock on a new connection to `url`; `None` when another process holds it.
    pub async fn try_acquire(url: &str) -> Result<Option<LeaderLock>, sqlx::Error> {
        let mut conn = PgConnection::connect(url).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(LeaderLock { conn }))
    }

    /// Whether the lock's connection still answers (if not, another process may lead).
    pub async fn alive(&mut self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&mut self.conn)
            .await
            .map(|_| ())
    }

    /// Gives the lock back.
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LEADER_LOCK)
            .execute(&mut self.conn)
            .await;
    }
}
