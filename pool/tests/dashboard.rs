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

/// Opens `url` in headless Chromium and waits until the page has drawn (and, for a
/// miner's page, the miner); returns (the page's markup, the browser's log).
///
/// A live browser over DevTools rather than `--dump-dom --virtual-time-budget`: the page
/// keeps the push stream open, and virtual time never runs out while a request is open.
fn render(url: &str, profile: &Path) -> (String, String) {
    let mut browser = Browser::open(url, profile);
    browser.wait_until_drawn();
    let dom = browser.eval("document.documentElement.outerHTML");
    (dom.as_str().unwrap().to_string(), browser.log())
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
    let (dom, stderr) = tokio::task::block_in_place(|| render(&base, profile.path()));
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

    let (dom, stderr) = tokio::task::block_in_place(|| render(&base, profile.path()));
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
    let (dom, stderr) =
        tokio::task::block_in_place(|| render(&format!("{base}#miner={alice}"), profile.path()));
    assert_no_console_errors(&dom, &stderr, "miner page");
    assert!(dom.contains("id=\"miner-workers\""), "{dom}");
    assert!(dom.contains(">rig1<"), "alice's worker is listed");
    assert!(
        dom.contains("Best: round / all time"),
        "the workers' best difficulties are shown"
    );

    // The screenshot, kept with the test build's files.
    let shot: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let png = tokio::task::block_in_place(|| {
        let mut browser = Browser::open(&base, profile.path());
        browser.wait_until_drawn();
        browser.screenshot()
    });
    std::fs::write(&shot, &png).unwrap();
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
        render(&format!("http://{api}/#miner={alice}"), profile.path())
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

/// Headless Chromium driven over the DevTools protocol: the page stays open while the
/// test acts on the pool, and the test reads the page's state with JavaScript.
struct Browser {
    child: std::process::Child,
    socket: tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    log: PathBuf,
}

impl Browser {
    fn open(url: &str, profile: &Path) -> Browser {
        // One log per browser (a profile is opened again later, the log written anew).
        let log = profile.join("browser.log");
        // A profile used before still names the old port until the new browser writes it.
        let _ = std::fs::remove_file(profile.join("DevToolsActivePort"));
        let child = Command::new(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--hide-scrollbars",
                "--window-size=1280,1900",
                "--enable-logging=stderr",
                "--v=0",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("chromium runs (scripts/setup installs it)");
        // Chromium writes the port it chose into the profile.
        let active = profile.join("DevToolsActivePort");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&active)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse::<u16>().ok()))
            {
                break port;
            }
            assert!(std::time::Instant::now() < deadline, "no DevTools port");
            std::thread::sleep(Duration::from_millis(100));
        };
        let targets: serde_json::Value = http_agent()
            .get(&format!("http://127.0.0.1:{port}/json/list"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (socket, _) = tungstenite::connect(page["webSocketDebuggerUrl"].as_str().unwrap())
            .expect("the DevTools socket");
        Browser {
            child,
            socket,
            next_id: 0,
            log,
        }
    }

    /// Calls a DevTools method; its result.
    fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = serde_json::json!({"id": id, "method": method, "params": params});
        self.socket
            .send(tungstenite::Message::text(call.to_string()))
            .unwrap();
        loop {
            let message = self.socket.read().unwrap();
            let Ok(text) = message.to_text() else {
                continue;
            };
            let mut reply: serde_json::Value = serde_json::from_str(text).unwrap();
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {reply}");
                return reply["result"].take();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> serde_json::Value {
        let params = serde_json::json!({"expression": expression, "returnByValue": true});
        self.call("Runtime.evaluate", params)["result"]["value"].take()
    }

    /// Waits until the page has loaded its sections, chosen how it updates (stream or
    /// polling) and, on a miner's page, drawn the miner.
    fn wait_until_drawn(&mut self) {
        self.wait_for(
            "its first load",
            "document.body.dataset.loaded === 'true' && \
             document.body.dataset.updates !== undefined && \
             (!location.hash.startsWith('#miner=') || \
              '#miner=' + encodeURIComponent(document.body.dataset.miner) === location.hash)",
            Duration::from_secs(30),
        );
    }

    /// A PNG of the window.
    fn screenshot(&mut self) -> Vec<u8> {
        use bitcoin::base64::Engine as _;
        let shot = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        );
        bitcoin::base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// What the browser logged so far (console messages among it).
    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Waits until `expression` is true in the page.
    fn wait_for(&mut self, what: &str, expression: &str, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.eval(expression) != serde_json::json!(true) {
            if std::time::Instant::now() >= deadline {
                let state = self.eval("JSON.stringify(document.body.dataset)");
                panic!("the page never showed {what}; its state: {state}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the push stream as a plain HTTP client would; every event name, in order.
async fn read_stream(api: SocketAddr, names: tokio::sync::mpsc::UnboundedSender<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut conn = tokio::net::TcpStream::connect(api).await.unwrap();
    conn.write_all(
        b"GET /api/pools/pool/stream HTTP/1.1\r\nHost: pool\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(conn).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(name) = line.strip_prefix("event: ") {
            let _ = names.send(name.to_string());
        }
    }
    let _ = names.send("(closed)".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_push_stream_without_reloading() {
    let setup = Setup::start();
    // Mature coins in the pool's wallet, so a payment goes out once a block is confirmed.
    setup.pair.node(0).generate(110).unwrap();
    let mut cfg = setup.config();
    cfg.payouts.confirmations = 2;
    cfg.payouts.threshold = 1000;
    cfg.payouts.payment_interval_secs = 1;
    let mut pool = TestPool::start(cfg).await;
    let api: SocketAddr = pool.running.api_addr.unwrap();
    let (events, mut names) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(read_stream(api, events));
    assert_eq!(
        names.recv().await.as_deref(),
        Some("hashrate"),
        "the figures come at once"
    );

    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://{api}/");
    let mut browser = tokio::task::block_in_place(|| {
        let mut b = Browser::open(&base, profile.path());
        b.wait_for(
            "its first load, following the stream",
            "document.body.dataset.loaded === 'true' && document.body.dataset.updates === 'stream'",
            Duration::from_secs(30),
        );
        assert_eq!(
            b.eval("document.querySelector('#blocks .empty') !== null"),
            serde_json::json!(true)
        );
        // Set on the page now: a reload would lose it.
        b.eval("window.sameLoad = 42");
        b
    });

    // Blocks are found while the page stays open; the hashrate follows.
    let alice = setup.pair.node(1).new_address().unwrap();
    let miner = start_miner_with(pool.port(), &format!("{alice}.rig1"), &format!("x,d={D}"));
    pool.accepted_blocks(3, Duration::from_secs(60)).await;
    tokio::task::block_in_place(|| {
        browser.wait_for(
            "the miner's hashrate (hashrate event)",
            "document.getElementById('pool-hashrate').textContent.trim() !== '0 H/s' && \
             document.getElementById('pool-miners').textContent.startsWith('1 /')",
            Duration::from_secs(20),
        )
    });
    // The miner stops (at regtest difficulty it finds blocks faster than a page lists
    // them); the newest block is shown, then the node mines on and it is confirmed.
    miner.cancel.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, blocks) = http_json(api, "/api/pools/pool/blocks?pageSize=1").await;
    let newest = blocks[0]["hash"].as_str().unwrap().to_string();
    let newest_row = format!(
        "[...document.querySelectorAll('#blocks tr')].find((tr) => \
         tr.querySelector('td.block-hash')?.textContent === '{newest}')"
    );
    tokio::task::block_in_place(|| {
        browser.wait_for(
            "the newest block (block event)",
            &format!("{newest_row} !== undefined"),
            Duration::from_secs(20),
        );
    });
    setup.pair.node(0).generate(3).unwrap();
    tokio::task::block_in_place(|| {
        browser.wait_for(
            "the newest block confirmed (block-status event)",
            &format!("{newest_row}?.querySelector('.status-confirmed') != null"),
            Duration::from_secs(30),
        );
    });
    // The confirmed rewards are paid out; the payment shows in the list.
    until("a payment in the API", Duration::from_secs(60), || async {
        let (_, v) = http_json(api, "/api/pools/pool/payments?pageSize=1").await;
        v.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let (_, payments) = http_json(api, "/api/pools/pool/payments?pageSize=1").await;
    let txid = payments[0]["transactionConfirmationData"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::task::block_in_place(|| {
        browser.wait_for(
            "the payment (payment event)",
            &format!(
                "[...document.querySelectorAll('#payments td')]\
                 .some((td) => td.textContent === '{txid}')"
            ),
            Duration::from_secs(20),
        );
        assert_eq!(
            browser.eval("window.sameLoad"),
            serde_json::json!(42),
            "no reload"
        );
        assert_eq!(
            browser.eval("performance.getEntriesByType('navigation').length"),
            serde_json::json!(1)
        );
        assert_eq!(
            browser.eval("document.body.dataset.updates"),
            serde_json::json!("stream"),
            "not polling"
        );
        let seen = browser.eval("Number(document.body.dataset.streamEvents)");
        assert!(seen.as_u64().unwrap() >= 3, "{seen} events");
        assert_eq!(
            browser.eval("document.getElementById('console-errors').textContent.trim()"),
            serde_json::json!("")
        );
    });
    drop(browser);

    // The plain client saw the blocks, a confirmation and the payment; the stream ends
    // with the pool.
    let mut seen = Vec::new();
    while !seen.contains(&"payment".to_string()) {
        let name = tokio::time::timeout(Duration::from_secs(30), names.recv())
            .await
            .expect("events keep coming")
            .unwrap();
        seen.push(name);
    }
    assert!(seen.contains(&"block".to_string()), "{seen:?}");
    assert!(seen.contains(&"block-status".to_string()), "{seen:?}");
    pool.stop().await;
    let last = tokio::time::timeout(Duration::from_secs(5), async {
        let mut last = String::new();
        while let Some(name) = names.recv().await {
            last = name;
        }
        last
    })
    .await
    .expect("the stream ends when the pool stops");
    assert_eq!(last, "(closed)");
}
