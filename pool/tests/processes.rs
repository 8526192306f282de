//! One view across pool processes: a pool in this test and a `pool` process beside it,
//! on one PostgreSQL, each with its own miners. Each shows every miner and worker of
//! both (API, admin API, `/metrics`); an address banned on one is refused by both, and a
//! lift on one lifts it on both; a worker that moves from one process to the other is not
//! reported offline, one that leaves is reported once; a process that stops leaves the
//! view at once, one that is killed leaves it once its last snapshot is
//! `database.live_timeout_secs` old.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use pool::config::{NotifyConfig, NotifyKind};

use common::scripted::*;
use common::*;
use tokio::io::AsyncWriteExt;

/// 2^-33: below regtest's network difficulty.
const D: &str = "1.1641532182693481e-10";
const TOKEN: &str = "processes-test-token";
/// How old the other process's snapshot may be before it stops counting.
const TIMEOUT_SECS: u64 = 8;
/// A worker away this long is reported offline (3 s).
const OFFLINE_MINUTES: f64 = 0.05;

/// Webhook bodies both processes posted.
type Hooks = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver for both processes' `worker_offline` notes.
async fn hook_server() -> (SocketAddr, Hooks) {
    let hooks = Hooks::default();
    let app = axum::Router::new()
        .route(
            "/{*path}",
            axum::routing::post(
                |State(h): State<Hooks>, Json(v): Json<serde_json::Value>| async move {
                    h.lock().unwrap().push(v);
                },
            ),
        )
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hooks)
}

/// The `worker_offline` notes received for `worker`.
fn offline_notes(hooks: &Hooks, worker: &str) -> usize {
    hooks
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["event"] == "worker_offline" && v["data"]["worker"] == worker)
        .count()
}

/// The other pool, as its own process.
struct Other {
    child: Child,
    stratum: u16,
    api: SocketAddr,
}

impl Other {
    fn start(setup: &Setup, dir: &Path, hooks: SocketAddr) -> Other {
        let stratum = testkit::free_port().unwrap();
        let api_port = testkit::free_port().unwrap();
        let config = write_pool_toml(
            dir,
            setup.pair.node(0),
            &setup.pool_address,
            &format!(
                r#"[stratum]
bind = "127.0.0.1:{stratum}"
instance_id = 7

[limits]
max_bad_lines = 2
ban_after_violations = 1

[api]
bind = "127.0.0.1:{api_port}"

[database]
url = "{db}"
live_interval_secs = 1
live_timeout_secs = {TIMEOUT_SECS}

[payouts]
payments = false

[[notify]]
kind = "webhook"
url = "http://{hooks}/other"
events = ["worker_offline"]
offline_minutes = {OFFLINE_MINUTES}
"#,
                db = setup.pg.url(),
            ),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_pool"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pool.log")).unwrap())
            .spawn()
            .unwrap();
        Other {
            child,
            stratum,
            api: SocketAddr::from(([127, 0, 0, 1], api_port)),
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn pool_stats(api: SocketAddr) -> (u64, u64) {
    let (_, v) = http_json(api, "/api/pools/pool").await;
    let s = &v["pool"]["poolStats"];
    (
        s["connectedMiners"].as_u64().unwrap(),
        s["connectedWorkers"].as_u64().unwrap(),
    )
}

async fn bans(api: SocketAddr) -> serde_json::Value {
    let (status, v) = http_call(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    v["bans"].clone()
}

async fn processes(api: SocketAddr) -> serde_json::Value {
    let (status, v) = http_call(api, "GET", "/api/admin/processes", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pool_processes_show_one_live_view() {
    let setup = Setup::start();
    let mut cfg = setup.config();
    cfg.payouts.payments = false;
    cfg.database.live_interval_secs = 1;
    cfg.database.live_timeout_secs = TIMEOUT_SECS;
    cfg.api.admin_token = Some(TOKEN.into());
    cfg.limits.max_bad_lines = 2;
    cfg.limits.ban_after_violations = 1;
    let (hooks_at, hooks) = hook_server().await;
    cfg.notify = vec![NotifyConfig {
        kind: NotifyKind::Webhook,
        url: Some(format!("http://{hooks_at}/here")),
        secret: None,
        bot_token: None,
        chat_id: None,
        events: Some(vec!["worker_offline".into()]),
        best_scope: "both".into(),
        offline_minutes: OFFLINE_MINUTES,
        attempts: 3,
    }];
    let here = TestPool::start(cfg).await;
    let api = here.running.api_addr.unwrap();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let other = tokio::task::block_in_place(|| Other::start(&setup, dirs[0].path(), hooks_at));
    until(
        "the other process serves",
        Duration::from_secs(60),
        || async {
            std::net::TcpStream::connect(other.api).is_ok()
                && http_get(other.api, "/api/health").await.0 == 200
        },
    )
    .await;

    // alice mines on both processes (a worker on each), bob on the other one only.
    let node = setup.pair.node(1);
    let (alice, bob) = (node.new_address().unwrap(), node.new_address().unwrap());
    let miners = [
        start_miner_with(here.port(), &format!("{alice}.rig1"), &format!("x,d={D}")),
        start_miner_with(other.stratum, &format!("{alice}.rig2"), &format!("x,d={D}")),
        start_miner_with(other.stratum, &format!("{bob}.rig3"), &format!("x,d={D}")),
    ];
    until(
        "both processes show all three workers",
        Duration::from_secs(60),
        || async { pool_stats(api).await == (2, 3) && pool_stats(other.api).await == (2, 3) },
    )
    .await;

    // A miner's page adds its workers up from both processes.
    let (_, page) = http_json(api, &format!("/api/pools/pool/miners/{alice}")).await;
    let workers = page["performance"]["workers"].as_object().unwrap();
    assert!(
        workers.contains_key("rig1") && workers.contains_key("rig2"),
        "{page}"
    );
    let (_, miners_list) = http_json(other.api, "/api/pools/pool/miners").await;
    assert_eq!(miners_list.as_array().unwrap().len(), 2, "{miners_list}");

    // /metrics: this process's own figures, and the combined ones.
    let (_, text) = http_get(other.api, "/metrics").await;
    assert_eq!(metric(&text, "pool_processes"), Some(2.0), "{text}");
    assert_eq!(metric(&text, "pool_workers"), Some(2.0));
    assert_eq!(metric(&text, "pool_combined_workers"), Some(3.0));
    assert_eq!(metric(&text, "pool_combined_miners"), Some(2.0));
    let own = metric(&text, "pool_hashrate_hashes_per_second").unwrap();
    let all = metric(&text, "pool_combined_hashrate_hashes_per_second").unwrap();
    assert!(all > own && own > 0.0, "combined {all} vs own {own}");

    // The admin API lists both, this one first.
    let list = processes(api).await;
    let rows = list["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(rows[0]["thisProcess"], true);
    assert_eq!(
        (
            rows[0]["instanceId"].as_u64(),
            rows[1]["instanceId"].as_u64()
        ),
        (Some(0), Some(7))
    );
    assert_eq!(rows[1]["connectedWorkers"], 2);
    assert_eq!(list["combined"]["connectedWorkers"], 3);

    // A worker moves from this process to the other (as after a reconnect that the
    // kernel spread elsewhere): it was never away, so nobody reports it offline. Then it
    // leaves for good: reported once, by the leader, not by both.
    let dave = node.new_address().unwrap();
    let rig5 = format!("{dave}.rig5");
    let first = start_miner_with(here.port(), &rig5, &format!("x,d={D}"));
    until("dave on this process", Duration::from_secs(30), || async {
        pool_stats(api).await == (3, 4)
    })
    .await;
    // Long enough for both watches to have seen it connected here (they look every
    // second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.cancel.cancel();
    let second = start_miner_with(other.stratum, &rig5, &format!("x,d={D}"));
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(pool_stats(api).await, (3, 4), "dave, on the other process");
    assert_eq!(offline_notes(&hooks, "rig5"), 0, "moved, not offline");
    second.cancel.cancel();
    until("dave reported offline", Duration::from_secs(30), || async {
        offline_notes(&hooks, "rig5") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        offline_notes(&hooks, "rig5"),
        1,
        "once, not once per process"
    );

    // Junk on the other process bans the address there; this one refuses it too. (The
    // miners' connections stay: a ban turns new ones away.)
    let mut junk = connect(other.stratum).await;
    junk.get_mut().write_all(b"junk\njunk\n").await.unwrap();
    while next(&mut junk).await.is_some() {}
    until(
        "the other process's ban applied here",
        Duration::from_secs(20),
        || async { bans(api).await.as_array().is_some_and(|b| !b.is_empty()) },
    )
    .await;
    assert_eq!(bans(api).await[0]["address"], "127.0.0.1");
    assert!(!answered(here.port()).await, "banned here too");
    // Lifted through this process's admin API: lifted on the other one as well.
    let (status, body) = http_call(
        api,
        "DELETE",
        "/api/admin/bans/127.0.0.1",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allProcesses"], true);
    assert!(answered(here.port()).await);
    until(
        "the lift applied there",
        Duration::from_secs(20),
        || async { answered(other.stratum).await },
    )
    .await;

    // Killed (no chance to say goodbye): it counts until its snapshot is too old.
    let killed = Instant::now();
    other.signal("-KILL");
    until(
        "the killed process drops out",
        Duration::from_secs(30),
        || async { pool_stats(api).await == (1, 1) },
    )
    .await;
    let gone_after = killed.elapsed();
    assert!(
        gone_after >= Duration::from_secs(TIMEOUT_SECS - 2),
        "dropped after {gone_after:?}, before its snapshot was {TIMEOUT_SECS} s old"
    );
    assert_eq!(
        processes(api).await["processes"].as_array().unwrap().len(),
        1
    );
    drop(other);

    // Stopped cleanly: it takes its row out and leaves the view at once.
    let other = tokio::task::block_in_place(|| Other::start(&setup, dirs[1].path(), hooks_at));
    let carol = node.new_address().unwrap();
    let late = start_miner_with(other.stratum, &format!("{carol}.rig4"), &format!("x,d={D}"));
    until(
        "the new process's miner in the view",
        Duration::from_secs(60),
        || async { pool_stats(api).await == (2, 2) },
    )
    .await;
    let stopped = Instant::now();
    other.signal("-TERM");
    until(
        "the stopped process leaves",
        Duration::from_secs(TIMEOUT_SECS),
        || async { pool_stats(api).await == (1, 1) },
    )
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(TIMEOUT_SECS - 2),
        "{:?}",
        stopped.elapsed()
    );
    late.cancel.cancel();
    for m in &miners {
        m.cancel.cancel();
    }
    drop(other);
    here.stop().await;
}
