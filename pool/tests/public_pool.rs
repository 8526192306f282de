//! public-pool's API on our pool: a scripted client that calls itself NerdMiner mines on a
//! regtest pair with PostgreSQL, finds a block, and every public-pool endpoint is read
//! back and compared, field by field and type by type, with public-pool's shapes
//! (`tests/data/public-pool-api.json`), then for the values a NerdMiner and public-pool's
//! UI would show.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::scripted::*;
use common::*;
use protocol::Target;
use serde_json::Value;
use testkit::{RegtestPair, TempPostgres};

const AGENT: &str = "NerdMinerV2/1.7.0";

fn shapes() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/public-pool-api.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `want` is in `got` with the same JSON type, recursively (an array's
/// first element against the other's first; `got`'s arrays must not be empty).
fn same_shape(path: &str, want: &Value, got: &Value) {
    assert_eq!(kind(want), kind(got), "{path}: {got}");
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, w) in w {
                let g = g
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}.{key} missing from {got}"));
                same_shape(&format!("{path}.{key}"), w, g);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if let Some(w) = w.first() {
                let g = g
                    .first()
                    .unwrap_or_else(|| panic!("{path}: empty, expected items like {w}"));
                same_shape(&format!("{path}[0]"), w, g);
            }
        }
        _ => {}
    }
}

fn iso(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pool_endpoints_answer_what_nerdminer_and_its_ui_parse() {
    let pair = RegtestPair::start().unwrap();
    let pg = TempPostgres::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool_address = pair.node(0).new_address().unwrap();
    let mut cfg = pplns_config(
        vec![node_config(pair.node(0))],
        pool_address,
        dir.path(),
        &pg,
    );
    cfg.database.stats_interval_secs = 1;
    let pool = TestPool::start(cfg).await;
    let api = pool.running.api_addr.unwrap();
    let address = pair.node(1).new_address().unwrap();
    let shapes = shapes();

    // Before any share: no best, no sessions; a typo is a 400.
    let (status, empty) = http_json(api, &format!("/api/client/{address}")).await;
    assert_eq!(status, 200);
    assert_eq!(empty["workersCount"], 0);
    assert!(
        empty.get("bestDifficulty").is_none(),
        "public-pool omits it: {empty}"
    );
    let (status, bad) = http_json(api, "/api/client/1NotAnAddress").await;
    assert_eq!(status, 400, "{bad}");

    // The NerdMiner-like client: shares, then one that is a block.
    let user = format!("{address}.nerd");
    let mut m = Miner::open_as(pool.port(), &user, AGENT).await;
    let session_id = hex::encode(&m.extranonce1);
    let n = m.job().await;
    let network = Target::from_compact(n.nbits).unwrap();
    let share = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
    let shares = (0..)
        .filter(|&x| {
            let h = m.hash(&n, x, n.ntime);
            share.is_met_by(&h) && !network.is_met_by(&h)
        })
        .take(8)
        .collect::<Vec<u32>>();
    for nonce in shares {
        let r = m.submit(&n, nonce, n.ntime, None).await;
        assert_eq!(r["result"], true, "{r}");
    }
    let block = (0..)
        .find(|&x| network.is_met_by(&m.hash(&n, x, n.ntime)))
        .unwrap();
    assert_eq!(m.submit(&n, block, n.ntime, None).await["result"], true);
    until("the block in the API", Duration::from_secs(30), || async {
        let (_, info) = http_json(api, "/api/info").await;
        info["blockData"].as_array().is_some_and(|b| !b.is_empty())
    })
    .await;
    until("worker samples", Duration::from_secs(30), || async {
        let (_, chart) = http_json(api, &format!("/api/client/{address}/chart")).await;
        chart.as_array().is_some_and(|c| !c.is_empty())
    })
    .await;

    // /api/client/{address}: what NerdMiner reads, and the rest of public-pool's shape.
    let (status, client) = http_json(api, &format!("/api/client/{address}")).await;
    assert_eq!(status, 200);
    same_shape("client", &shapes["client"], &client);
    assert_eq!(client["workersCount"], 1);
    let w = &client["workers"][0];
    assert_eq!(w["sessionId"], session_id.as_str());
    assert_eq!(w["name"], "nerd");
    assert!(w["hashRate"].as_f64().unwrap() > 0.0);
    assert!(client["bestDifficulty"].as_f64().unwrap() > 0.0);
    let best = w["bestDifficulty"].as_str().unwrap();
    assert!(
        best.split_once('.').is_some_and(|(_, d)| d.len() == 2),
        "two decimals as public-pool writes them: {best}"
    );
    assert!(iso(&w["startTime"]) && iso(&w["lastSeen"]), "{w}");

    let (_, chart) = http_json(api, &format!("/api/client/{address}/chart")).await;
    same_shape("client_chart", &shapes["client_chart"], &chart);
    assert!(iso(&chart[0]["label"]));

    let (status, worker) = http_json(api, &format!("/api/client/{address}/nerd")).await;
    assert_eq!(status, 200);
    same_shape("worker", &shapes["worker"], &worker);
    assert_eq!(worker["name"], "nerd");

    let (status, session) =
        http_json(api, &format!("/api/client/{address}/nerd/{session_id}")).await;
    assert_eq!(status, 200, "{session}");
    same_shape("session", &shapes["session"], &session);
    assert_eq!(session["sessionId"], session_id.as_str());
    let (status, _) = http_json(api, &format!("/api/client/{address}/nerd/ffffffff")).await;
    assert_eq!(status, 404);

    // /api/info: the block, the NerdMiner among the user agents, its high score.
    let (_, info) = http_json(api, "/api/info").await;
    same_shape("info", &shapes["info"], &info);
    assert_eq!(info["blockData"][0]["minerAddress"], address.as_str());
    assert_eq!(info["blockData"][0]["worker"], "nerd");
    let agents = info["userAgents"].as_array().unwrap();
    let nerd = agents.iter().find(|a| a["userAgent"] == AGENT).unwrap();
    assert_eq!(nerd["count"], 1);
    assert_eq!(info["highScores"][0]["bestDifficultyUserAgent"], AGENT);
    assert_eq!(
        info["highScores"][0]["bestDifficulty"],
        client["bestDifficulty"]
    );
    assert!(iso(&info["uptime"]));

    let (_, info_chart) = http_json(api, "/api/info/chart").await;
    same_shape("info_chart", &shapes["info_chart"], &info_chart);

    // /api/pool and /api/network (the node's getmininginfo as it is).
    let (_, p) = http_json(api, "/api/pool").await;
    same_shape("pool", &shapes["pool"], &p);
    assert_eq!(p["totalMiners"], 1);
    assert!(p["blockHeight"].as_u64().unwrap() > 0);
    let (status, network) = http_json(api, "/api/network").await;
    assert_eq!(status, 200);
    same_shape("network", &shapes["network"], &network);
    assert_eq!(network["chain"], "regtest");

    // The session leaves: it is listed while its shares are in the hashrate window.
    drop(m);
    until("the session closed", Duration::from_secs(10), || async {
        let (_, p) = http_json(api, "/api/pool").await;
        p["totalMiners"] == 0
    })
    .await;
    let (_, client) = http_json(api, &format!("/api/client/{address}")).await;
    assert_eq!(client["workersCount"], 1);
    pool.stop().await;
}
