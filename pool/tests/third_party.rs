//! Clients that behave like other people's miners, against the real pool on a regtest
//! pair with the default limits.
//!
//! The shapes come from `data/third-party-miners-regtest.json`, real sessions of pooler's
//! cpuminer 2.5.1 and cpuminer-opt 26.1 recorded against this pool: their user agents,
//! their opening lines (cpuminer-opt adds `mining.extranonce.subscribe`), their submit
//! lines byte for byte (every submit with `"id":4`, nonces counted in little-endian), and
//! their bursts of 100-odd submits written at once without waiting for answers. At
//! regtest difficulty every other hash is a share, so they submit as fast as they hash:
//! the pool must take it all without closing or banning anyone, answer a submit sent
//! before authorize after the authorize, and still ban junk.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use pool::config::Mode;
use protocol::Target;
use protocol::stratum::codec::parse_line;
use protocol::stratum::{Message, Method, Notify, SubscribeResult, share_header};
use serde_json::{Value, json};
use testkit::RegtestPair;

/// The flood tests take both cores for up to a minute, and the shutdown test needs its
/// reader thread to get through a backlog of answers within the pool's two-second linger:
/// they take turns, so that no outcome depends on how the scheduler shares two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const POOLER: &str = "pooler cpuminer 2.5.1 (minerd -a sha256d -t 1)";
const OPT: &str = "cpuminer-opt 26.1 (cpuminer -a sha256d -t 1, built with -march=native)";

/// What one recorded miner sends, taken from the fixture.
#[derive(Clone, Debug)]
struct Shape {
    /// Its lines before the first submit (subscribe, authorize, extras), as sent.
    opening: Vec<String>,
    /// The username it authorizes and submits with.
    user: String,
    /// The most submits it wrote within one millisecond.
    burst: usize,
}

fn shape(name: &str) -> Shape {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/third-party-miners-regtest.json"
    ))
    .unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let lines: Vec<(f64, String)> = fixture["sessions"][name]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "miner")
        .map(|e| {
            (
                e["t"].as_f64().unwrap(),
                e["line"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let first_submit = lines
        .iter()
        .position(|(_, l)| l.contains("mining.submit"))
        .unwrap();
    let opening: Vec<String> = lines[..first_submit]
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    let authorize: Value = opening
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["method"] == "mining.authorize")
        .unwrap();
    let user = authorize["params"][0].as_str().unwrap().to_string();
    // Our submit lines must be theirs byte for byte: rebuild the first one.
    let (_, recorded) = &lines[first_submit];
    let v: Value = serde_json::from_str(recorded).unwrap();
    let p = |i: usize| v["params"][i].as_str().unwrap().to_string();
    assert_eq!(*recorded, submit_line(&p(0), &p(1), &p(2), &p(3), &p(4)));
    let submits: Vec<f64> = lines[first_submit..]
        .iter()
        .filter(|(_, l)| l.contains("mining.submit"))
        .map(|(t, _)| *t)
        .collect();
    let burst = submits
        .iter()
        .map(|t0| {
            submits
                .iter()
                .filter(|t| **t >= *t0 && **t < t0 + 0.001)
                .count()
        })
        .max()
        .unwrap();
    Shape {
        opening,
        user,
        burst,
    }
}

/// A submit exactly as both cpuminers write it.
fn submit_line(user: &str, job: &str, en2: &str, ntime: &str, nonce: &str) -> String {
    format!(
        r#"{{"method": "mining.submit", "params": ["{user}", "{job}", "{en2}", "{ntime}", "{nonce}"], "id":4}}"#
    )
}

/// Everything the pool sent to one connection, as the reader thread saw it.
#[derive(Debug)]
enum Seen {
    Reply(Value),
    Notify(Notify),
    Difficulty(f64),
    Reconnect,
    Closed,
}

/// A blocking connection with a reader thread, as the cpuminers have.
struct Conn {
    stream: TcpStream,
    seen: mpsc::Receiver<(Instant, Seen)>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let item = match parse_line(line.as_bytes()) {
                    Ok(Message::Response(r)) => Seen::Reply(Message::Response(r).to_value()),
                    Ok(Message::Request {
                        method: Method::Notify(n),
                        ..
                    }) => Seen::Notify(n),
                    Ok(Message::Request {
                        method: Method::SetDifficulty(d),
                        ..
                    }) => Seen::Difficulty(d.get()),
                    Ok(Message::Request {
                        method: Method::Reconnect(_),
                        ..
                    }) => Seen::Reconnect,
                    Ok(_) => continue,
                    Err(e) => panic!("bad line from the pool: {e}: {line}"),
                };
                if tx.send((Instant::now(), item)).is_err() {
                    return;
                }
            }
            let _ = tx.send((Instant::now(), Seen::Closed));
        });
        Conn { stream, seen }
    }

    fn write(&mut self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    fn next(&self, timeout: Duration) -> Option<Seen> {
        self.seen.recv_timeout(timeout).ok().map(|(_, s)| s)
    }

    /// Reads until the reply with `id`, keeping the last notify and difficulty seen.
    fn reply(&self, id: u64, work: &mut Work) -> Value {
        loop {
            match self
                .next(Duration::from_secs(20))
                .expect("a reply within 20 s")
            {
                Seen::Reply(r) if r["id"] == json!(id) => return r,
                Seen::Closed => panic!("closed while waiting for reply {id}"),
                other => work.take(other),
            }
        }
    }
}

/// The work a client mines on.
#[derive(Clone, Debug, Default)]
struct Work {
    extranonce1: Vec<u8>,
    notify: Option<Notify>,
    difficulty: Option<f64>,
    extranonce2: u64,
    nonce: u32,
    /// The highest block height a notify was for, and clean notifies for a lower one.
    height: u64,
    backwards: usize,
}

impl Work {
    fn take(&mut self, seen: Seen) {
        match seen {
            Seen::Notify(n) => {
                let height = coinbase_height(&n.coinb1);
                if n.clean_jobs && height < self.height {
                    self.backwards += 1;
                }
                self.height = self.height.max(height);
                self.notify = Some(n);
                self.extranonce2 = 0;
                self.nonce = 0;
            }
            Seen::Difficulty(d) => self.difficulty = Some(d),
            _ => {}
        }
    }

    /// The next `count` submits that meet the share target, cpuminer-style.
    fn shares(&mut self, user: &str, count: usize) -> Vec<String> {
        let n = self.notify.clone().expect("work");
        let target = self
            .difficulty
            .and_then(|d| Target::from_difficulty(d).ok())
            .unwrap_or(Target::MAX);
        let mut out = Vec::new();
        while out.len() < count {
            let en2 = self.extranonce2.to_be_bytes();
            // cpuminer counts the nonce in the header's (little-endian) bytes and writes
            // those bytes as hex: 00000000, 01000000, 02000000...
            let nonce = self.nonce.swap_bytes();
            let header = share_header(&n, &self.extranonce1, &en2, n.version, n.ntime, nonce);
            if target.is_met_by(&header.hash()) {
                out.push(submit_line(
                    user,
                    &n.job_id,
                    &hex::encode(en2),
                    &format!("{:08x}", n.ntime),
                    &format!("{nonce:08x}"),
                ));
            }
            self.nonce = self.nonce.wrapping_add(1);
            if self.nonce == 0 {
                self.extranonce2 += 1;
            }
        }
        out
    }
}

/// The BIP 34 height at the start of the coinbase's scriptSig (coinb1 holds it).
fn coinbase_height(coinb1: &[u8]) -> u64 {
    // version (4), one input (1), null prevout (36), scriptSig length (1 below 253).
    let push = coinb1[42];
    match push {
        0x51..=0x60 => u64::from(push - 0x50),
        1..=8 => coinb1[43..43 + usize::from(push)]
            .iter()
            .rev()
            .fold(0, |h, b| (h << 8) | u64::from(*b)),
        other => panic!("no height push in coinb1 (opcode {other:#x})"),
    }
}

/// What a flooding client saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    accepted: usize,
    stale: usize,
    /// Replies that are neither (should stay empty).
    other: Vec<Value>,
    closed: bool,
    /// Clean jobs for an older block than one already sent (the pool's tip went back).
    backwards: usize,
}

/// Opens a connection the way `s` does; returns it with its work.
fn open_like(port: u16, s: &Shape) -> (Conn, Work) {
    let mut conn = Conn::open(port);
    let mut work = Work::default();
    conn.write(&s.opening[..1]);
    let sub = conn.reply(1, &mut work);
    work.extranonce1 = SubscribeResult::from_value(&sub["result"])
        .unwrap()
        .extranonce1;
    conn.write(&s.opening[1..]);
    for line in &s.opening[1..] {
        let id = serde_json::from_str::<Value>(line).unwrap()["id"]
            .as_u64()
            .unwrap();
        let r = conn.reply(id, &mut work);
        assert_eq!(r["result"], json!(true), "{line}: {r}");
    }
    while work.notify.is_none() {
        let seen = conn.next(Duration::from_secs(20)).expect("work");
        work.take(seen);
    }
    (conn, work)
}

/// Submits bursts of valid shares as fast as it finds them for `secs`, reading the
/// pool's answers on the side, then waits for every answer.
fn flood(port: u16, s: &Shape, secs: u64) -> Tally {
    let (mut conn, mut work) = open_like(port, s);
    let mut tally = Tally::default();
    let count = |seen: Seen, work: &mut Work, tally: &mut Tally| match seen {
        Seen::Reply(r) if r["result"] == json!(true) => tally.accepted += 1,
        Seen::Reply(r) if r["error"][1] == json!("Stale share") => tally.stale += 1,
        Seen::Reply(r) => tally.other.push(r),
        Seen::Closed => tally.closed = true,
        other => work.take(other),
    };
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end && !tally.closed {
        while let Ok((_, seen)) = conn.seen.try_recv() {
            count(seen, &mut work, &mut tally);
        }
        let burst = work.shares(&s.user, s.burst);
        tally.sent += burst.len();
        if conn
            .stream
            .write_all((burst.join("\n") + "\n").as_bytes())
            .is_err()
        {
            tally.closed = true;
        }
    }
    let answers = Instant::now() + Duration::from_secs(30);
    while tally.accepted + tally.stale + tally.other.len() < tally.sent && !tally.closed {
        let left = answers.saturating_duration_since(Instant::now());
        match conn.seen.recv_timeout(left) {
            Ok((_, seen)) => count(seen, &mut work, &mut tally),
            Err(_) => break,
        }
    }
    tally.backwards = work.backwards;
    tally
}

fn check(name: &str, t: &Tally, at_least: usize) {
    println!(
        "{name}: sent {}, accepted {}, stale {}, other {}",
        t.sent,
        t.accepted,
        t.stale,
        t.other.len()
    );
    assert!(
        !t.closed,
        "{name}: the pool closed a miner doing valid work"
    );
    assert!(
        t.other.is_empty(),
        "{name}: refused: {:?}",
        &t.other[..t.other.len().min(5)]
    );
    assert_eq!(
        t.accepted + t.stale,
        t.sent,
        "{name}: every submit answered"
    );
    assert_eq!(
        t.backwards, 0,
        "{name}: work for an older block after a newer one"
    );
    assert!(
        t.accepted >= at_least,
        "{name}: only {} accepted",
        t.accepted
    );
}

/// Reconnects like pooler's cpuminer: subscribe with the old session id, the shares it
/// still had, then authorize, all in one write. The authorize reply must be the first
/// reply after subscribe's, and the session must mine on afterwards.
fn reconnect_with_queued_shares(port: u16, s: &Shape, user_agent: &str, rounds: usize) {
    let (mut conn, mut work) = open_like(port, s);
    for round in 0..rounds {
        let queued = work.shares(&s.user, 3);
        let session = hex::encode(&work.extranonce1);
        drop(conn);
        conn = Conn::open(port);
        let mut lines = vec![
            json!({"id": 1, "method": "mining.subscribe", "params": [user_agent, session]})
                .to_string(),
        ];
        lines.extend(queued);
        lines.push(s.opening[1].clone()); // authorize, id 2
        conn.write(&lines);
        let mut replies = Vec::new();
        let mut fresh = Work::default();
        while replies.len() < 5 {
            match conn.next(Duration::from_secs(20)).expect("replies") {
                Seen::Reply(r) => replies.push(r),
                Seen::Closed => panic!("round {round}: closed"),
                other => fresh.take(other),
            }
        }
        assert_eq!(replies[0]["id"], json!(1), "round {round}: {replies:?}");
        assert_eq!(
            (&replies[1]["id"], &replies[1]["result"]),
            (&json!(2), &json!(true)),
            "round {round}: the authorize reply first: {replies:?}"
        );
        fresh.extranonce1 = SubscribeResult::from_value(&replies[0]["result"])
            .unwrap()
            .extranonce1;
        // The queued shares get their own answers (on the old work: accepted when the
        // extranonce1 was resumed, else stale or refused without counting against it).
        assert!(replies[2..].iter().all(|r| r["id"] == json!(4)));
        while fresh.notify.is_none() {
            fresh.take(conn.next(Duration::from_secs(20)).expect("work"));
        }
        // Still the same job: carry on from the nonce the queued shares reached, as a
        // miner does (the resumed extranonce1 makes them the same work).
        if fresh.notify.as_ref().map(|n| &n.job_id) == work.notify.as_ref().map(|n| &n.job_id) {
            fresh.nonce = work.nonce;
            fresh.extranonce2 = work.extranonce2;
        }
        work = fresh;
        // Odd difficulty requests are answered or ignored, never a reason to close.
        for (i, d) in ["0", "-5", "1e308", "\"abc\"", "1e-20", "[]"]
            .iter()
            .enumerate()
        {
            let id = 100 + i as u64;
            conn.write(&[format!(
                r#"{{"id":{id},"method":"mining.suggest_difficulty","params":[{d}]}}"#
            )]);
            conn.reply(id, &mut work);
        }
        // And the session mines on.
        let share = work.shares(&s.user, 1);
        conn.write(&share);
        loop {
            match conn.next(Duration::from_secs(20)).expect("an answer") {
                Seen::Reply(r) if r["id"] == json!(4) => {
                    assert!(
                        r["result"] == json!(true) || r["error"][1] == json!("Stale share"),
                        "round {round}: {r}"
                    );
                    break;
                }
                Seen::Closed => panic!("round {round}: closed"),
                other => work.take(other),
            }
        }
    }
}

/// Junk from one address: closed each time, then banned (limits.ban_after_violations).
fn junk_until_banned(port: u16) -> usize {
    for attempt in 1..=10 {
        let mut conn = Conn::open(port);
        let junk: Vec<String> = (0..300).map(|i| format!("not json {i}")).collect();
        let _ = conn.stream.write_all((junk.join("\n") + "\n").as_bytes());
        // The pool answers some with errors, then closes; a banned address is closed
        // before a word.
        let mut replies = 0;
        loop {
            match conn.next(Duration::from_secs(20)) {
                Some(Seen::Reply(_)) => replies += 1,
                Some(Seen::Closed) | None => break,
                Some(_) => {}
            }
        }
        if replies == 0 {
            return attempt;
        }
    }
    panic!("junk was never banned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_miner_shapes_flood_valid_shares_for_a_minute_and_are_never_closed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    let defaults = pool::config::LimitsConfig::default();
    assert_eq!(cfg.limits.messages_per_sec, defaults.messages_per_sec);
    assert_eq!(
        cfg.limits.ban_after_violations,
        defaults.ban_after_violations
    );
    let pool = TestPool::start(cfg).await;
    let port = pool.port();
    let (pooler, opt) = (shape(POOLER), shape(OPT));
    assert!(
        pooler.burst >= 20 && opt.burst >= 20,
        "the fixture's bursts"
    );
    let started = pair.node(0).height().unwrap();

    let (a, b) = (pooler.clone(), opt.clone());
    let flooders = [
        std::thread::spawn(move || flood(port, &a, 60)),
        std::thread::spawn(move || flood(port, &b, 60)),
    ];
    let tallies: Vec<Tally> = tokio::task::spawn_blocking(move || {
        flooders.map(|t| t.join().unwrap()).into_iter().collect()
    })
    .await
    .unwrap();
    check("pooler", &tallies[0], 1000);
    check("cpuminer-opt", &tallies[1], 1000);
    assert!(
        pair.node(0).height().unwrap() > started + 10,
        "the flood found blocks"
    );
    assert_eq!(pool.running.stats.snapshot().bans, 0, "nobody banned");

    let (a, b) = (pooler.clone(), opt.clone());
    tokio::task::spawn_blocking(move || {
        reconnect_with_queued_shares(port, &a, "cpuminer/2.5.1", 10);
        reconnect_with_queued_shares(port, &b, "", 3);
        reconnect_with_queued_shares(port, &b, &"x".repeat(300), 3);
        reconnect_with_queued_shares(port, &b, "Ünïcødé/😀", 3);
    })
    .await
    .unwrap();
    assert_eq!(pool.running.stats.snapshot().bans, 0, "nobody banned");

    // Junk is still junk: closed, and the address banned after five such closes.
    let attempts = tokio::task::spawn_blocking(move || junk_until_banned(port))
        .await
        .unwrap();
    assert_eq!(
        attempts, 6,
        "banned after limits.ban_after_violations (5) closes"
    );
    assert_eq!(pool.running.stats.snapshot().bans, 1);
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_valid_shares_waits_for_the_database_instead_of_piling_up() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let setup = Setup::start();
    let cfg = setup.config();
    let pool = TestPool::start(cfg).await;
    let port = pool.port();
    let opt = shape(OPT);
    let tally = tokio::task::spawn_blocking(move || flood(port, &opt, 20))
        .await
        .unwrap();
    check("cpuminer-opt, PPLNS", &tally, 1000);
    // Every share answered as accepted is in PostgreSQL.
    let store = pool.running.store.clone().unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM shares")
        .fetch_one(store.db())
        .await
        .unwrap();
    assert!(
        stored >= tally.accepted as i64,
        "{stored} shares stored, {} accepted",
        tally.accepted
    );
    pool.stop().await;
}

#[test]
fn the_fixture_holds_both_miners() {
    let (pooler, opt) = (shape(POOLER), shape(OPT));
    assert!(pooler.opening[0].contains("cpuminer/2.5.1"));
    assert!(
        opt.opening
            .iter()
            .any(|l| l.contains("mining.extranonce.subscribe"))
    );
    assert_eq!(pooler.user, opt.user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_reaches_a_miner_that_is_still_submitting() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = TestPool::start(config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    ))
    .await;
    let port = pool.port();
    let opt = shape(OPT);
    // The miner writes bursts without pause, so the pool closes with unread input: a
    // plain close would be a reset that can destroy the reconnect request in flight.
    let miner = std::thread::spawn(move || {
        let (conn, mut work) = open_like(port, &opt);
        let mut writer = conn.stream.try_clone().unwrap();
        // Fresh shares in every burst: the same ones again would be duplicates, a run of
        // which is rightly banned (once the first block makes the job stale, they are
        // free, but that can come too late).
        let feeder = std::thread::spawn(move || {
            loop {
                let burst = work.shares(&opt.user, opt.burst).join("\n") + "\n";
                if writer.write_all(burst.as_bytes()).is_err() {
                    return;
                }
            }
        });
        let mut reconnect = false;
        loop {
            match conn.next(Duration::from_secs(30)) {
                Some(Seen::Reconnect) => reconnect = true,
                Some(Seen::Closed) | None => break,
                Some(_) => {}
            }
        }
        drop(conn);
        let _ = feeder.join();
        reconnect
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    pool.stop().await;
    let reconnect = tokio::task::spawn_blocking(move || miner.join().unwrap())
        .await
        .unwrap();
    assert!(
        reconnect,
        "the miner read client.reconnect before the socket closed"
    );
}
