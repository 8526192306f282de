//! A rolling restart with a miner mining through it, with real processes: a second `pool`
//! process binds the same port with SO_REUSEPORT, the first gets SIGTERM, stops accepting,
//! tells its miner to reconnect, flushes and exits; the miner is back on the new process
//! within seconds, and every share the miner was told was accepted is in PostgreSQL. The
//! same for a Stratum V2 miner on the V2 port, which is sent `Reconnect`.
//!
//! The same mechanism takes one host past one process's open-files limit: several pool
//! processes on one port, each with its own `stratum.instance_id` (extranonce1 prefix),
//! one PostgreSQL.

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

/// Both processes get the same Stratum and API ports, as in production; `instance` is
/// their `stratum.instance_id`.
fn write_config(
    dir: &Path,
    node: &Node,
    pool_address: &str,
    db: &str,
    (port, api_port, v2_port): (u16, u16, u16),
    instance: u8,
) -> PathBuf {
    write_pool_toml(
        dir,
        node,
        pool_address,
        &format!(
            r#"[stratum]
bind = "127.0.0.1:{port}"
reuse_port = true
instance_id = {instance}
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

/// A regtest pair, a PostgreSQL and what two pool processes on the same ports need.
struct TwoProcesses {
    pair: RegtestPair,
    pg: TempPostgres,
    dirs: [tempfile::TempDir; 2],
    port: u16,
    api_port: u16,
    v2_port: u16,
    pool_address: String,
}

impl TwoProcesses {
    fn new() -> TwoProcesses {
        let pair = RegtestPair::start().unwrap();
        let pool_address = pair.node(0).new_address().unwrap();
        TwoProcesses {
            pg: TempPostgres::start().unwrap(),
            dirs: [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()],
            port: testkit::free_port().unwrap(),
            api_port: testkit::free_port().unwrap(),
            v2_port: testkit::free_port().unwrap(),
            pool_address,
            pair,
        }
    }

    /// Process `i`'s config file, with `stratum.instance_id = instance`.
    fn config(&self, i: usize, instance: u8) -> PathBuf {
        write_config(
            self.dirs[i].path(),
            self.pair.node(0),
            &self.pool_address,
            &self.pg.url(),
            (self.port, self.api_port, self.v2_port),
            instance,
        )
    }

    /// Process `i`'s log file.
    fn log(&self, i: usize) -> PathBuf {
        self.dirs[i].path().join("pool.log")
    }
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
    let two = TwoProcesses::new();
    let (node, pg, port, v2_port) = (two.pair.node(0), &two.pg, two.port, two.v2_port);
    // The same instance id for both, as a restart without changing the config does.
    let configs: Vec<PathBuf> = (0..2).map(|i| two.config(i, 0)).collect();
    let logs: Vec<PathBuf> = (0..2).map(|i| two.log(i)).collect();

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

/// Two processes serve one port at once (SO_REUSEPORT), as an operator runs them to hold
/// more connections than one process's open-files limit allows: the kernel spreads the
/// connections over both, each process hands out extranonce1s under its own prefix (so no
/// two miners share coinbase space), and the shares of both land in the one PostgreSQL,
/// each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_port_with_their_own_extranonce1_spaces() {
    let two = TwoProcesses::new();
    let (node, pg, port) = (two.pair.node(0), &two.pg, two.port);
    let mut processes = Vec::new();
    for i in 0..2 {
        let (config, log) = (two.config(i, 1 + i as u8), two.log(i));
        processes.push(tokio::task::block_in_place(|| {
            Process::start(&config, &log, port)
        }));
    }

    // The kernel hashes each connection to one of the two listeners.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let en1 = extranonce1(port).await;
        assert!(en1.starts_with("01") || en1.starts_with("02"), "{en1}");
        assert!(seen.insert(en1.clone()), "{en1} handed out twice");
    }
    for prefix in ["01", "02"] {
        assert!(
            seen.iter().any(|e| e.starts_with(prefix)),
            "no connection reached instance {prefix}: {seen:?}"
        );
    }

    let miners: Vec<TestMiner> = (0..4)
        .map(|_| start_miner_with(port, &node.new_address().unwrap(), "x,d=0.0000000001"))
        .collect();
    until(
        "shares from every miner",
        Duration::from_secs(60),
        || async { miners.iter().all(|m| acknowledged(m) >= 50) },
    )
    .await;
    for p in &processes {
        p.terminate();
    }
    for p in &mut processes {
        assert!(tokio::task::block_in_place(|| p.wait(Duration::from_secs(20))).success());
    }
    let acked: u64 = miners.iter().map(acknowledged).sum();
    for m in &miners {
        m.cancel.cancel();
    }
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (time, uid)) FROM shares")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(rows, distinct, "no share stored twice");
    assert!(
        acked <= rows as u64,
        "every acknowledged share is stored ({acked} acknowledged, {rows} stored)"
    );
}
