//! The dashboard in a real headless Chromium (Debian's `chromium`, installed by
//! scripts/setup), served by a pool that our CPU miners found blocks with on the regtest
//! pair: the page shows the pool's hashrate and the newest block, a miner's page shows its
//! worker, nothing reaches the console as an error, and a screenshot is saved.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// 2^-33: below regtest's network difficulty.
const D: &str = "1.1641532182693481e-10";

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` with `extra` arguments; returns (stdout, stderr).
fn headless(url: &str, profile: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,1900",
            "--virtual-time-budget=20000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (scripts/setup installs Debian's chromium): {e}",
                chromium()
            )
        });
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text inside the element with `id` in a dumped DOM.
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    &dom[open..close]
}

/// "12.3 kH/s" back into H/s.
fn parse_rate(text: &str) -> f64 {
    let (number, unit) = text.trim().split_once(' ').unwrap();
    let scale = match unit {
        "H/s" => 1.0,
        "kH/s" => 1e3,
        "MH/s" => 1e6,
        "GH/s" => 1e9,
        other => panic!("unit {other}"),
    };
    number.parse::<f64>().unwrap() * scale
}

fn assert_no_console_errors(dom: &str, stderr: &str, page: &str) {
    assert_eq!(
        text_of(dom, "console-errors").trim(),
        "",
        "{page}: errors on the page"
    );
    for bad in [
        "Uncaught",
        "Failed to load resource",
        "SyntaxError",
        "TypeError",
    ] {
        assert!(
            !stderr.contains(bad),
            "{page}: {bad} in the browser log:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_pools_hashrate_and_a_found_block() {
    let setup = Setup::start();
    let pair = &setup.pair;
    let mut cfg = setup.config();
    cfg.database.stats_interval_secs = 1;
    cfg.payouts.payments = false;
    let mut pool = TestPool::start(cfg).await;
    let api: SocketAddr = pool.running.api_addr.unwrap();
    let profile = tempfile::tempdir().unwrap();

    // A fresh pool first: every section says what to do, and nothing fails (also once the
    // leader has written its first, empty, sample).
    until("a first sample", Duration::from_secs(30), || async {
        let (_, v) = http_json(api, "/api/pools/pool/performance?r=day&i=minute").await;
        v["stats"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
    let base = format!("http://{api}/");
    let (dom, stderr) =
        tokio::task::block_in_place(|| headless(&base, profile.path(), &["--dump-dom"]));
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not finish:\n{dom}"
    );
    // (Rendered markup, not the same words in the page's script.)
    for empty_state in [
        "No miner is connected",
        "No block found yet",
        "No payment sent yet",
        "No samples yet",
    ] {
        assert!(
            dom.contains(&format!("<div class=\"empty\">{empty_state}")),
            "{empty_state}:\n{dom}"
        );
    }
    assert_no_console_errors(&dom, &stderr, "fresh pool");

    let alice = pair.node(1).new_address().unwrap();
    let bob = pair.node(1).new_address().unwrap();
    let miners = [
        start_miner_with(pool.port(), &format!("{alice}.rig1"), &format!("x,d={D}")),
        start_miner_with(pool.port(), &format!("{bob}.rig2"), &format!("x,d={D}")),
    ];
    pool.accepted_blocks(3, Duration::from_secs(60)).await;
    until("hashrate samples", Duration::from_secs(30), || async {
        let (_, v) = http_json(api, "/api/pools/pool/performance?r=day&i=minute").await;
        v["stats"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["poolHashrate"].as_f64().is_some_and(|h| h > 0.0))
        })
    })
    .await;
    for m in &miners {
        m.cancel.cancel();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, pools) = http_json(api, "/api/pools").await;
    let hashrate = pools["pools"][0]["poolStats"]["poolHashrate"]
        .as_f64()
        .unwrap();
    let (_, blocks) = http_json(api, "/api/pools/pool/blocks?pageSize=1").await;
    let newest = blocks[0]["hash"].as_str().unwrap().to_string();

    let (dom, stderr) =
        tokio::task::block_in_place(|| headless(&base, profile.path(), &["--dump-dom"]));
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not finish:\n{dom}"
    );
    assert_no_console_errors(&dom, &stderr, "dashboard");
    let shown = parse_rate(text_of(&dom, "pool-hashrate"));
    // The live figure decays slowly as the miners are gone; the page shows it to 3 digits.
    assert!(
        shown > hashrate * 0.7 && shown < hashrate * 1.3,
        "page {shown} vs API {hashrate}"
    );
    assert!(
        dom.contains(&format!("<td class=\"mono block-hash\">{newest}</td>")),
        "the newest block {newest} is listed"
    );
    assert!(
        dom.contains("<svg class=\"chart\""),
        "the hashrate chart is drawn"
    );
    assert!(!dom.contains("<div class=\"empty\">No block found yet"));
    // Best difficulties: "round / all time", the all-time one as the API has it.
    let best = text_of(&dom, "pool-best");
    let all_time = pools["pools"][0]["poolStats"]["bestDifficulty"]["allTime"]
        .as_f64()
        .unwrap();
    assert!(all_time > 0.0);
    assert!(
        best.contains(" / ") && !best.ends_with('–'),
        "pool best shown as {best:?}"
    );

    // A miner's page: its worker, balance and history.
    let (dom, stderr) = tokio::task::block_in_place(|| {
        headless(
            &format!("{base}#miner={alice}"),
            profile.path(),
            &["--dump-dom"],
        )
    });
    assert_no_console_errors(&dom, &stderr, "miner page");
    assert!(dom.contains("id=\"miner-workers\""), "{dom}");
    assert!(dom.contains(">rig1<"), "alice's worker is listed");
    assert!(
        dom.contains("Best: round / all time"),
        "the workers' best difficulties are shown"
    );

    // The screenshot, kept with the test build's files.
    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    tokio::task::block_in_place(|| {
        headless(
            &base,
            profile.path(),
            &[&format!("--screenshot={}", shot.display())],
        )
    });
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a real page, not a blank one");
    pool.stop().await;
}

/// A coinbase-payout pool: the miner page shows the address's output in the current
/// coinbase and what the pool carries for it, and lists coinbase outputs as payments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_miner_page_shows_coinbase_payouts() {
    let setup = Setup::start();
    let mut cfg = setup.config();
    cfg.payouts.method = pool::config::PayoutMethod::Coinbase;
    cfg.payouts.min_output = 1000;
    cfg.payouts.confirmations = 1;
    cfg.payouts.check_secs = 1;
    cfg.payouts.freeze_delay_secs = 1;
    cfg.jobs.refresh_secs = 1;
    let mut pool = TestPool::start(cfg).await;
    let api: SocketAddr = pool.running.api_addr.unwrap();
    let alice = setup.pair.node(1).new_address().unwrap();
    let miner = start_miner_with(pool.port(), &format!("{alice}.rig1"), &format!("x,d={D}"));
    pool.accepted_blocks(3, Duration::from_secs(60)).await;
    until(
        "a confirmed coinbase payout to alice",
        Duration::from_secs(60),
        || async {
            let (_, p) = http_json(api, &format!("/api/pools/pool/miners/{alice}/payments")).await;
            p.as_array().is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    until(
        "alice in the current coinbase",
        Duration::from_secs(30),
        || async {
            let (_, c) = http_json(api, &format!("/api/coinbase/{alice}")).await;
            c["output"].is_object()
        },
    )
    .await;
    miner.cancel.cancel();
    let profile = tempfile::tempdir().unwrap();
    let (dom, stderr) = tokio::task::block_in_place(|| {
        headless(
            &format!("http://{api}/#miner={alice}"),
            profile.path(),
            &["--dump-dom"],
        )
    });
    assert_no_console_errors(&dom, &stderr, "coinbase miner page");
    assert!(dom.contains("Output in the current coinbase"), "{dom}");
    assert!(dom.contains("Carried by the pool"), "{dom}");
    assert!(
        dom.contains("coinbase of "),
        "coinbase outputs listed as payments: {dom}"
    );
    pool.stop().await;
}
