//! Many idle miners on one `pool` process, as operators run it: started from a shell
//! (a soft open-files limit of 256, far below the hard one), on PostgreSQL with the live
//! view written every second, it holds 2,000 Stratum v1 miners, each subscribed,
//! authorized as a worker of its own and holding a job, then 2,000 Stratum V2 miners, each
//! with an extended channel of its own and its work; and what each kind costs it stays
//! within a bound generous enough for any machine. The pool's figures are 4.0-4.2 KiB per
//! v1 connection and 4.3-4.7 per V2 one (`pool_load`, docs/benchmarks.md; 3.8 and 5.3 in
//! this test's debug build); in issue 21 a
//! change raised the v1 figure unseen twice (to 21 KiB with 8 KiB line buffers, and by 1
//! KiB with the live view's snapshots), and V2's stayed at 16 KiB (a reader task and its
//! queue per connection), each found only by the next full benchmark.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::scripted::{self, Miner, answered};
use common::v2::{AUTHORITY_PUBLIC, AUTHORITY_SECRET, V2Miner, authority};
use common::*;

/// Miners held of each protocol (fewer where the hard open-files limit is low).
const MINERS: usize = 2_000;
/// KiB of the pool's resident memory per idle v1 connection that fails the test.
const BOUND_KIB: f64 = 6.0;
/// The same for a V2 connection (its Noise state and channel are on top of v1's).
const BOUND_V2_KIB: f64 = 7.5;
/// The soft open-files limit the pool is started with.
const SHELL_LIMIT: libc::rlim_t = 256;

struct Pool(Child);

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_started_from_a_shell_holds_thousands_of_idle_miners_in_little_memory() {
    // This process holds the miners' ends, and the pool raises its own limit to the same
    // hard limit: fewer miners where that is low, but well past the shell's 256.
    let fit = pool::net::raise_open_files_limit().unwrap().now;
    let miners = usize::try_from(fit.saturating_sub(300) / 2)
        .unwrap_or(MINERS)
        .min(MINERS);
    assert!(
        2 * miners >= 3 * SHELL_LIMIT as usize,
        "the hard open-files limit here ({fit}) is too low for this test"
    );
    let setup = Setup::start();
    let port = testkit::free_port().unwrap();
    let v2_port = testkit::free_port().unwrap();
    let config = write_pool_toml(
        setup.dir.path(),
        setup.pair.node(0),
        &setup.pool_address,
        &format!(
            r#"[stratum]
bind = "127.0.0.1:{port}"

[stratum.v2]
bind = "127.0.0.1:{v2_port}"
authority_secret_key = "{AUTHORITY_SECRET}"
authority_public_key = "{AUTHORITY_PUBLIC}"

[api]
enabled = false

# One farm behind one address.
[limits]
connections_per_ip = 0

[database]
url = "{db}"
live_interval_secs = 1
"#,
            db = setup.pg.url(),
        ),
    );
    let log = setup.dir.path().join("pool.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pool"));
    command
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls belong; glibc's getrlimit and setrlimit are bare system
    // calls on the struct passed (no locks, no allocation).
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = SHELL_LIMIT;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let pool = Pool(command.spawn().unwrap());
    let pid = pool.0.id();
    until("the pool serves", Duration::from_secs(60), || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && answered(port).await
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("open-files limit raised to the hard limit"),
        "{text}"
    );
    let address = &setup.pool_address;
    let (mut held_miners, per) = held(pid, miners, |i| async move {
        Miner::open(port, &format!("{address}.rig{i}")).await
    })
    .await;
    assert!(
        per <= BOUND_KIB,
        "{per:.1} KiB per idle v1 connection (bound {BOUND_KIB})"
    );
    let v2_addr = std::net::SocketAddr::from(([127, 0, 0, 1], v2_port));
    let (v2_miners, v2_per) = held(pid, miners, |i| async move {
        let mut m = V2Miner::connect(v2_addr, authority()).await.unwrap();
        m.setup().await;
        m.open(&format!("{address}.v2rig{i}"), 1e9).await;
        m
    })
    .await;
    assert!(
        v2_per <= BOUND_V2_KIB,
        "{v2_per:.1} KiB per idle V2 connection (bound {BOUND_V2_KIB})"
    );
    assert_eq!((held_miners.len(), v2_miners.len()), (miners, miners));
    // Still served, all of them: a sample answers, and a new miner gets in.
    for m in held_miners.iter_mut().step_by(97) {
        scripted::send(
            &mut m.conn,
            serde_json::json!({"id": 99, "method": "mining.extranonce.subscribe", "params": []}),
        )
        .await;
        let answer = scripted::reply(&mut m.conn, 99, &mut m.notifies).await;
        assert_eq!(answer["result"], serde_json::json!(true), "{answer}");
    }
    assert!(answered(port).await);
    let mut late = V2Miner::connect(v2_addr, authority()).await.unwrap();
    late.setup().await;
    late.open(&format!("{address}.late"), 1e9).await;
}

/// Opens `miners` with `open` (a hundred at a time, as a farm reconnecting does) and holds
/// them; the pool's resident memory per connection, measured between a quarter of them
/// and all of them so that what the first connections cost once (database connections,
/// allocator arenas, threads) cancels.
async fn held<M, F>(pid: u32, miners: usize, open: impl Fn(usize) -> F) -> (Vec<M>, f64)
where
    F: std::future::Future<Output = M>,
{
    let first = miners / 4;
    let mut held = Vec::with_capacity(miners);
    let mut rss = Vec::new();
    for upto in [first, miners] {
        while held.len() < upto {
            let from = held.len();
            let to = upto.min(from + 100);
            held.extend(futures::future::join_all((from..to).map(&open)).await);
        }
        // Held through a few of the live view's snapshots of every worker.
        tokio::time::sleep(Duration::from_secs(4)).await;
        rss.push(rss_kib(pid));
    }
    let (before, after) = (rss[0], rss[1]);
    let per = after.saturating_sub(before) as f64 / (miners - first) as f64;
    eprintln!(
        "pool memory: {before} KiB with {first} connections, {after} KiB with {miners} = {per:.1} KiB per connection"
    );
    (held, per)
}
