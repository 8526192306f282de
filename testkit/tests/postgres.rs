//! The throwaway PostgreSQL cluster answers queries, keeps data across a crash-stop and a
//! restart, and disappears on drop.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use sqlx::Row;
use testkit::TempPostgres;

#[tokio::test]
async fn query_restart_and_cleanup() {
    let mut pg = TempPostgres::start().unwrap();
    let dir = pg.dir().to_path_buf();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let two: i32 = sqlx::query_scalar("SELECT 1 + 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(two, 2);
    sqlx::query("CREATE TABLE shares (id BIGSERIAL PRIMARY KEY, worker TEXT NOT NULL, difficulty DOUBLE PRECISION NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO shares (worker, difficulty) VALUES ($1, $2), ($3, $4)")
        .bind("alice.rig1")
        .bind(0.5f64)
        .bind("bob.rig1")
        .bind(2.0f64)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // An abrupt stop loses nothing that was committed.
    pg.stop_server().unwrap();
    use sqlx::Connection as _;
    assert!(sqlx::PgConnection::connect(&pg.url()).await.is_err());
    pg.start_server().unwrap();
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let row = sqlx::query("SELECT count(*) AS n, sum(difficulty) AS total FROM shares")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("n"), 2);
    assert_eq!(row.get::<f64, _>("total"), 2.5);
    pool.close().await;

    drop(pg);
    assert!(!dir.exists(), "the cluster directory is removed on drop");
}

#[test]
fn a_panicking_test_still_stops_the_server_and_removes_the_cluster() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let pg = TempPostgres::start().unwrap();
        *seen.lock().unwrap() = Some((pg.dir().to_path_buf(), pg.port()));
        panic!("a failing test");
    });
    assert!(result.is_err());
    let (dir, port) = seen.lock().unwrap().take().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}
