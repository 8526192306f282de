//! A rolling restart with a miner mining through it, with real processes: a second `pool`
//! process binds the same port with SO_REUSEPORT, the first gets SIGTERM, stops accepting,
//! tells its miner to reconnect, flushes and exits; the miner is back on the new process
//! within seconds, and every share the miner was told was accepted is in PostgreSQL. The
//! same for a Stratum V2 miner on the V2 port, which is sent `Reconnect`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::v2::{AUTHORITY_SECRET, Answer, V2Miner, authority};
use common::*;
use testkit::{Node, RegtestPair, TempPostgres};
use tokio_util::sync::CancellationToken;

/// Both processes get the same Stratum and API ports, as in production.
fn write_config(
    dir: &Path,
    node: &Node,
    pool_address: &str,
    db: &str,
    (port, api_port, v2_port): (u16, u16, u16),
) -> PathBuf {
    write_pool_toml(
        dir,
        node,
        pool_address,
        &format!(
            r#"[stratum]
bind = "127.0.0.1:{port}"
reuse_port = true
shutdown_message = "restarting"

[stratum.v2]
bind = "127.0.0.1:{v2_port}"
authority_secret_key = "{AUTHORITY_SECRET}"

[vardiff]
min = 1e-12

[api]
bind = "127.0.0.1:{api_port}"

[database]
url = "{db}"

[payouts]
payments = false
"#
        ),
    )
}

/// A `pool` process; killed if the test fails while it runs.
struct Process(Child);

impl Process {
    fn start(config: &Path, log: &Path, port: u16) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_pool"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Process(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        // Listening once a connection is answered (the old process may hold the port too,
        // so "someone accepts" proves nothing: wait for the log line).
        while !std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("pool started")
        {
            assert!(
                p.0.try_wait().unwrap().is_none() && Instant::now() < deadline,
                "the pool did not start on port {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit on its own; its status.
    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn acknowledged(miner: &TestMiner) -> u64 {
    miner.stats.snapshot(Instant::now()).accepted
}

/// A V2 miner on one channel that connects again whenever the pool closes its connection
/// (after a `Reconnect`, or when a connection attempt fails), counting what the pool
/// acknowledged and how often it was asked to reconnect.
struct V2Mining {
    acked: Arc<AtomicU64>,
    asked_to_reconnect: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl V2Mining {
    fn start(addr: SocketAddr, user: String) -> V2Mining {
        let acked = Arc::new(AtomicU64::new(0));
        let asked_to_reconnect = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (a, r, s) = (acked.clone(), asked_to_reconnect.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.is_cancelled() {
                let Ok(mut miner) = V2Miner::connect(addr, authority()).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                // One connection in a task of its own: a pool that goes away in the middle
                // of the opening ends that task, not the miner.
                let (a, s, user) = (a.clone(), s.clone(), user.clone());
                let connection = tokio::spawn(async move {
                    miner.setup().await;
                    let channel = miner.open(&user, 0.0).await;
                    while !s.is_cancelled() {
                        match miner.try_mine_one(channel).await {
                            Some((Answer::Accepted, _)) => {
                                a.fetch_add(1, Ordering::SeqCst);
                            }
                            Some((Answer::Refused(_), _)) => {}
                            None => break,
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    miner.asked_to_reconnect()
                });
                if let Ok(true) = connection.await {
                    r.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        V2Mining {
            acked,
            asked_to_reconnect,
            stop,
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_loses_no_acknowledged_share() {
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let node = pair.node(0);
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let port = testkit::free_port().unwrap();
    let api_port = testkit::free_port().unwrap();
    let v2_port = testkit::free_port().unwrap();
    let pool_address = node.new_address().unwrap();
    let configs: Vec<PathBuf> = dirs
        .iter()
        .map(|d| {
            write_config(
                d.path(),
                node,
                &pool_address,
                &pg.url(),
                (port, api_port, v2_port),
            )
        })
        .collect();
    let logs: Vec<PathBuf> = dirs.iter().map(|d| d.path().join("pool.log")).collect();

    let mut old = tokio::task::block_in_place(|| Process::start(&configs[0], &logs[0], port));
    let miner = start_miner_with(port, &node.new_address().unwrap(), "x,d=0.0000000001");
    let v2 = V2Mining::start(
        SocketAddr::from(([127, 0, 0, 1], v2_port)),
        format!("{}.v2", node.new_address().unwrap()),
    );
    until(
        "shares on the old process",
        Duration::from_secs(60),
        || async { acknowledged(&miner) >= 200 && v2.acked() >= 20 },
    )
    .await;

    // The new process starts on the same port while the old one still serves.
    let mut new = tokio::task::block_in_place(|| Process::start(&configs[1], &logs[1], port));
    let signalled = Instant::now();
    old.terminate();
    let status = tokio::task::block_in_place(|| old.wait(Duration::from_secs(20)));
    let exited_after = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    let old_log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(old_log.contains("asking miners to reconnect"), "{old_log}");
    let before = acknowledged(&miner);
    let v2_before = v2.acked();
    until(
        "the miners back, on the new process",
        Duration::from_secs(15),
        || async { acknowledged(&miner) > before + 50 && v2.acked() > v2_before + 10 },
    )
    .await;
    assert_eq!(
        v2.asked_to_reconnect.load(Ordering::SeqCst),
        1,
        "the V2 miner was sent Reconnect"
    );
    let back_after = signalled.elapsed();

    // Stop the new process as well; it answers every share before it closes, so the
    // miner's count is final once the process has exited.
    new.terminate();
    assert!(tokio::task::block_in_place(|| new.wait(Duration::from_secs(20))).success());
    let acked = acknowledged(&miner) + v2.acked();
    miner.cancel.cancel();
    v2.stop.cancel();

    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM shares")
        .fetch_one(&db)
        .await
        .unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT (time, uid)) FROM shares")
        .fetch_one(&db)
        .await
        .unwrap();
    println!(
        "old process exited {exited_after:?} after SIGTERM; miner mining on the new one \
         {back_after:?} after it; {acked} shares acknowledged, {rows} stored"
    );
    assert_eq!(rows, distinct, "no share stored twice");
    assert!(
        acked > before && acked <= rows as u64,
        "every acknowledged share is stored ({acked} acknowledged, {rows} stored)"
    );
    assert!(exited_after < Duration::from_secs(15), "{exited_after:?}");
}
