//! The admin API against a running pool on a regtest pair: the token refused and
//! accepted, a message reaching a connected miner, a ban listed, felt and lifted; and no
//! admin API at all without a token.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;

use common::scripted::*;
use common::*;
use protocol::stratum::{Message, Method};
use serde_json::{Value, json};
use testkit::RegtestPair;
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "test-admin-token-0123456789";

/// An admin request: (status, JSON body); `token` None sends no Authorization header.
async fn admin(
    api: SocketAddr,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("http://{api}{path}");
    let token = token.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        if let Some(t) = token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let body = body.map_or(String::new(), |b| b.to_string());
        let mut response = http_agent().run(request.body(body).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

/// Whether the pool answers a subscribe on a new connection (a banned address is closed
/// without an answer).
async fn answered(port: u16) -> bool {
    let mut conn = connect(port).await;
    send(
        &mut conn,
        json!({"id": 1, "method": "mining.subscribe", "params": []}),
    )
    .await;
    matches!(next(&mut conn).await, Some(Message::Response(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lifts_bans_and_speaks_to_miners_with_its_token_only() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = solo_config(pair.node(0), dir.path());
    cfg.api.admin_token = Some(TOKEN.into());
    // One junk connection is enough for a ban.
    cfg.limits.max_bad_lines = 2;
    cfg.limits.ban_after_violations = 1;
    let pool = TestPool::start(cfg).await;
    let (port, api) = (pool.port(), pool.running.api_addr.unwrap());
    let user = format!("{}.rig", pair.node(1).new_address().unwrap());
    let mut miner = Miner::open(port, &user).await;

    // The token: missing, wrong, right.
    let message = Some(json!({"text": "Maintenance at 14:00 UTC"}));
    let (status, body) = admin(api, "POST", "/api/admin/message", None, message.clone()).await;
    assert_eq!(status, 401, "{body}");
    let wrong = Some("test-admin-token-0123456780");
    let (status, _) = admin(api, "POST", "/api/admin/message", wrong, message.clone()).await;
    assert_eq!(status, 401);
    let (status, body) = admin(api, "POST", "/api/admin/message", Some(TOKEN), message).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connections"], json!(1), "{body}");
    // The miner is shown the line.
    loop {
        match next(&mut miner.conn).await.expect("still connected") {
            Message::Request {
                method: Method::ShowMessage(text),
                ..
            } => {
                assert_eq!(text, "Maintenance at 14:00 UTC");
                break;
            }
            _ => continue,
        }
    }
    let (status, _) = admin(
        api,
        "POST",
        "/api/admin/message",
        Some(TOKEN),
        Some(json!({"text": ""})),
    )
    .await;
    assert_eq!(status, 400, "an empty message");

    // Junk gets the address banned: it is listed and new connections are turned away.
    let (status, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!((status, body), (200, json!({"bans": []})));
    let mut junk = connect(port).await;
    junk.get_mut().write_all(b"junk\njunk\n").await.unwrap();
    // Answered with errors, then closed.
    while next(&mut junk).await.is_some() {}
    let (status, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["bans"][0]["address"], json!("127.0.0.1"), "{body}");
    assert!(
        body["bans"][0]["secondsLeft"].as_u64().unwrap() > 0,
        "{body}"
    );
    assert!(!answered(port).await, "a banned address is turned away");

    // Lifted: listed no more, and the address connects again.
    let (status, _) = admin(api, "DELETE", "/api/admin/bans/127.0.0.1", None, None).await;
    assert_eq!(status, 401);
    // The first lifts it; the second finds nothing to lift.
    let lift = || {
        admin(
            api,
            "DELETE",
            "/api/admin/bans/127.0.0.1",
            Some(TOKEN),
            None,
        )
    };
    assert_eq!(lift().await, (200, json!({"lifted": "127.0.0.1"})));
    assert_eq!(lift().await.0, 404, "not banned any more");
    let (status, _) = admin(
        api,
        "DELETE",
        "/api/admin/bans/not-an-ip",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (_, body) = admin(api, "GET", "/api/admin/bans", Some(TOKEN), None).await;
    assert_eq!(body, json!({"bans": []}));
    assert!(answered(port).await, "the address connects again");
    pool.cancel.cancel();

    // Without a token there is no admin API: 404, whatever the request carries.
    let dir = tempfile::tempdir().unwrap();
    let cfg = solo_config(pair.node(0), dir.path());
    let plain = TestPool::start(cfg).await;
    let api = plain.running.api_addr.unwrap();
    for token in [None, Some(TOKEN)] {
        let (status, _) = admin(api, "GET", "/api/admin/bans", token, None).await;
        assert_eq!(status, 404);
    }
    plain.cancel.cancel();
}
