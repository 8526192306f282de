//! A scripted Stratum client against the real pool on a regtest pair: each kind of bad
//! submit gets its error, an over-long line closes only that connection, a flood of
//! invalid shares gets the address banned, the per-address connection cap holds, and a
//! shutdown tells miners to reconnect; and, asked to, the pool tells a worker that beat its
//! best share difficulty.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::scripted::*;
use common::*;
use futures::StreamExt;
use protocol::Target;
use protocol::stratum::{Message, Method};
use serde_json::{Value, json};
use testkit::{RegtestPair, TempPostgres};
use tokio::io::AsyncWriteExt;

fn code(reply: &Value) -> i64 {
    reply["error"][0]
        .as_i64()
        .unwrap_or_else(|| panic!("no error in {reply}"))
}

/// Whether the pool closes `conn` within a few seconds.
async fn closed(conn: &mut Conn) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), conn.next()).await {
            Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submits_long_lines_floods_and_shutdown() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool_address = pair.node(0).new_address().unwrap();
    let user = format!("{}.script", pair.node(1).new_address().unwrap());
    // With a database, so that every answer to a good share waits for the store.
    let pg = TempPostgres::start().unwrap();
    let mut cfg = pplns_config(
        vec![node_config(pair.node(0))],
        pool_address,
        dir.path(),
        &pg,
    );
    cfg.limits.ban_after_invalid = 20;
    cfg.limits.max_line = 1024;
    cfg.limits.connections_per_ip = 4;
    cfg.limits.messages_per_sec = 1000;
    cfg.jobs.refresh_secs = 600; // jobs change only with blocks, as the test expects
    let pool = TestPool::start(cfg).await;
    let port = pool.port();

    let mut a = Miner::open(port, &user).await;
    let n = a.job().await;
    let good = a.nonce(&n, true);
    assert_eq!(
        a.submit(&n, good, n.ntime, None).await,
        json!({"id": 10, "result": true, "error": null})
    );
    assert_eq!(
        code(&a.submit(&n, good, n.ntime, None).await),
        22,
        "duplicate"
    );
    let low = a.nonce(&n, false);
    assert_eq!(
        code(&a.submit(&n, low, n.ntime, None).await),
        23,
        "low difficulty"
    );
    let bad_version = a.submit(&n, good, n.ntime, Some("00002000")).await;
    assert_eq!(
        code(&bad_version),
        20,
        "version rolling was not negotiated: {bad_version}"
    );
    let future = n.ntime + 8000;
    let bad_time = a.submit(&n, a.nonce(&n, true), future, None).await;
    assert_eq!(code(&bad_time), 20, "ntime too far ahead: {bad_time}");
    // Malformed: the error carries the request's id.
    let line = json!({"id": 77, "method": "mining.submit", "params": [user, n.job_id]});
    a.conn
        .get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let malformed = reply(&mut a.conn, 77, &mut a.notifies).await;
    assert_eq!(code(&malformed), 20, "{malformed}");
    send(
        &mut a.conn,
        json!({"id": 78, "method": "mining.frobnicate", "params": []}),
    )
    .await;
    assert_eq!(code(&reply(&mut a.conn, 78, &mut a.notifies).await), -32601);

    // A new block makes the job stale.
    pair.node(0).generate(1).unwrap();
    let fresh = loop {
        let m = next(&mut a.conn).await.unwrap();
        if let Message::Request {
            method: Method::Notify(f),
            ..
        } = m
            && f.clean_jobs
        {
            break f;
        }
    };
    assert_ne!(fresh.prev_hash, n.prev_hash);
    a.notifies.push(fresh.clone());
    let stale = a.submit(&n, good, n.ntime, None).await;
    assert_eq!(stale["error"], json!([21, "Stale share", null]));
    // And the new job takes shares.
    let ok = a.nonce(&fresh, true);
    assert_eq!(
        a.submit(&fresh, ok, fresh.ntime, None).await["result"],
        json!(true)
    );

    // An over-long line closes that connection only.
    let mut b = connect(port).await;
    // The pool may close as soon as the line is too long, before its end arrives: then
    // the rest is refused (reset), which is what is tested, not a failure.
    let _ = b.get_mut().write_all(&vec![b'x'; 4096]).await;
    let _ = b.get_mut().write_all(b"\n").await;
    assert!(closed(&mut b).await, "the long-line connection is closed");
    let ok = a.nonce(&fresh, true).wrapping_add(0);
    let again = a.submit(&fresh, ok, fresh.ntime + 1, None).await;
    assert!(
        again["result"] == json!(true) || code(&again) == 23,
        "a still served: {again}"
    );

    // Connections per address: four at once (a is one).
    let mut extra = Vec::new();
    for _ in 0..3 {
        extra.push(Miner::open(port, &user).await);
    }
    let mut fifth = connect(port).await;
    assert!(closed(&mut fifth).await, "the fifth connection is refused");
    drop(extra);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A flood of invalid shares: banned, and the next connection is refused.
    let mut c = Miner::open(port, &user).await;
    let mut unknown = fresh.clone();
    unknown.job_id = "ffffff".into();
    for i in 0..20 {
        let r = c.submit(&unknown, i, fresh.ntime, None).await;
        assert_eq!(code(&r), 21);
    }
    assert!(closed(&mut c.conn).await, "banned after 20 invalid shares");
    let mut refused = connect(port).await;
    assert!(
        closed(&mut refused).await,
        "a banned address cannot reconnect"
    );
    let stats = pool.running.stats.snapshot();
    assert_eq!(stats.bans, 1);
    assert_eq!(stats.rejected.get("job-not-found"), Some(&20));
    assert_eq!(stats.rejected.get("duplicate"), Some(&1));
    assert_eq!(stats.rejected.get("stale"), Some(&1));
    assert!(stats.refused >= 2, "{stats:?}");

    // The established connection is still served; at shutdown it is told to reconnect.
    pool.cancel.cancel();
    let mut saw = Vec::new();
    while let Some(m) = next(&mut a.conn).await {
        if let Message::Request { method, .. } = m {
            saw.push(method.name().to_string());
        }
    }
    assert!(
        saw.ends_with(&[
            "client.show_message".to_string(),
            "client.reconnect".to_string()
        ]),
        "{saw:?}"
    );
    tokio::time::timeout(Duration::from_secs(20), pool.running.wait())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_beats_its_best_is_told_when_the_pool_is_asked_to() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        pool::config::Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.stratum.best_difficulty_message = true;
    cfg.vardiff.min = 1e-12; // the script's d= below regtest's network difficulty
    cfg.jobs.refresh_secs = 600;
    let pool = TestPool::start(cfg).await;
    let user = format!("{}.rig7", pair.node(1).new_address().unwrap());
    let mut m = Miner::open(pool.port(), &user).await;
    let n = m.job().await;
    let network = Target::from_compact(n.nbits).unwrap();
    let share = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
    // Shares (not blocks) in nonce order; the first sets the best, then a better one (the
    // search goes on until there is one: a first share better than the next 20, one run
    // in 20, made this test fail by chance).
    let mut shares = (0u32..).filter_map(|x| {
        let h = m.hash(&n, x, n.ntime);
        (share.is_met_by(&h) && !network.is_met_by(&h))
            .then(|| (x, protocol::target::hash_difficulty(&h)))
    });
    let (first, first_d) = shares.next().unwrap();
    let (better, better_d) = shares.find(|(_, d)| *d > first_d).unwrap();
    for nonce in [first, better] {
        let r = m.submit(&n, nonce, n.ntime, None).await;
        assert_eq!(r["result"], json!(true), "{r}");
    }
    let shown = loop {
        match next(&mut m.conn).await.expect("connection open") {
            Message::Request {
                method: Method::ShowMessage(text),
                ..
            } => break text,
            _ => continue,
        }
    };
    assert!(
        shown.starts_with("New best share for worker rig7: difficulty "),
        "{shown}"
    );
    assert!(
        shown.contains(&protocol::target::format_difficulty(better_d))
            && shown.contains(&format!(
                "(was {})",
                protocol::target::format_difficulty(first_d)
            )),
        "{shown} ({first_d} then {better_d})"
    );
    pool.stop().await;
}
