//! The session driven with literal messages and virtual time.

use super::*;
use crate::chain::jobs::JobMaker;
use crate::chain::jobs::tests::{PREV_A, PREV_B, regtest_template};
use protocol::stratum::Notify;
use protocol::stratum::codec::parse_line;
use protocol::{CompactTarget, Hash256, Target};

const ADDR: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";
const ADDR2: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const EN1: [u8; 4] = [0, 0, 0, 9];
const NOW_UNIX: u32 = 1_700_000_100;

fn settings(mode: Mode) -> Arc<SessionSettings> {
    Arc::new(SessionSettings {
        mode,
        network: Network::Regtest,
        version_mask: 0x1fffe000,
        coinbase: CoinbaseSettings {
            pool_tag: b"/t/".to_vec(),
            extranonce2_size: 8,
        },
        vardiff: VardiffConfig {
            start: 3e-10,
            min: 1e-12,
            ..VardiffConfig::default()
        },
        keep_jobs: 4,
        max_ntime_ahead: 7000,
        limits: LimitsConfig {
            ban_after_invalid: 10,
            ..LimitsConfig::default()
        },
        ack_when_stored: false,
    })
}

struct Harness {
    session: Session,
    maker: JobMaker,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(mode: Mode) -> Harness {
        Harness::with(settings(mode))
    }

    fn with(s: Arc<SessionSettings>) -> Harness {
        let pool_script = (s.mode == Mode::Pplns).then(|| vec![0x51]);
        let maker = JobMaker::new(s.coinbase.clone(), pool_script);
        let t0 = Instant::now();
        let session = Session::new(s, maker.ids(), EN1, t0, i64::from(NOW_UNIX) * 1_000_000);
        Harness {
            session,
            maker,
            t0,
            now: t0,
        }
    }

    fn line(&mut self, text: &str) -> Vec<Message> {
        self.now += Duration::from_millis(50);
        self.session.handle(self.now, parse_line(text.as_bytes()));
        self.drain()
    }

    fn job(&mut self, prev: &str, height: u64) -> Vec<Message> {
        let job = self
            .maker
            .make(regtest_template(prev, height), NOW_UNIX)
            .unwrap();
        self.session.on_job(self.now, Arc::new(job));
        self.drain()
    }

    fn drain(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.session.poll_transmit())
            .map(|out| out.into_message().expect("a line we can parse"))
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Configure, subscribe, authorize; returns the last notify.
    fn open(&mut self, user: &str) -> Notify {
        self.job(PREV_A, 2);
        self.line(r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#);
        self.line(r#"{"id":2,"method":"mining.subscribe","params":["test/1"]}"#);
        let out = self.line(&format!(
            r#"{{"id":3,"method":"mining.authorize","params":["{user}","x"]}}"#
        ));
        last_notify(&out).expect("work after authorize")
    }
}

fn last_notify(out: &[Message]) -> Option<Notify> {
    out.iter().rev().find_map(|m| match m {
        Message::Request {
            method: Method::Notify(n),
            ..
        } => Some(n.clone()),
        _ => None,
    })
}

fn set_difficulty(out: &[Message]) -> Option<f64> {
    out.iter().find_map(|m| match m {
        Message::Request {
            method: Method::SetDifficulty(d),
            ..
        } => Some(d.get()),
        _ => None,
    })
}

fn error_code(out: &[Message]) -> Option<i64> {
    out.iter().find_map(|m| match m {
        Message::Response(r) => r.error.as_ref().map(|e| e.code),
        _ => None,
    })
}

fn accepted(out: &[Message]) -> bool {
    out.iter()
        .any(|m| matches!(m, Message::Response(r) if r.error.is_none() && r.result == json!(true)))
}

/// The hash a miner would get for `nonce` on `n`.
fn hash(n: &Notify, nonce: u32, version_bits: Option<u32>) -> Hash256 {
    let version = version_bits.map_or(n.version, |b| (n.version & !0x1fffe000) | b);
    protocol::stratum::share_header(n, &EN1, &[0; 8], version, n.ntime, nonce).hash()
}

/// A nonce whose hash is not a regtest block but meets `difficulty` (or does not).
fn nonce(n: &Notify, difficulty: f64, meets: bool) -> u32 {
    let network = Target::from_compact(n.nbits).unwrap();
    let share = Target::from_difficulty(difficulty).unwrap();
    (0..)
        .find(|&x| {
            let h = hash(n, x, None);
            !network.is_met_by(&h) && share.is_met_by(&h) == meets
        })
        .unwrap()
}

fn submit(user: &str, n: &Notify, nonce: u32, ntime: u32, extra: &str) -> String {
    format!(
        r#"{{"id":9,"method":"mining.submit","params":["{user}","{}","0000000000000000","{ntime:08x}","{nonce:08x}"{extra}]}}"#,
        n.job_id
    )
}

#[test]
fn opening_grants_the_mask_and_sends_difficulty_then_work() {
    let mut h = Harness::new(Mode::Pplns);
    h.job(PREV_A, 2);
    let out = h.line(r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#);
    assert_eq!(
        out[0].to_value(),
        json!({"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null})
    );
    let out = h.line(r#"{"id":2,"method":"mining.subscribe","params":["testminer/1.0"]}"#);
    assert_eq!(out[0].to_value()["result"][1], json!("00000009"));
    assert_eq!(out[0].to_value()["result"][2], json!(8));
    assert_eq!(out[0].to_value()["error"], Value::Null);
    assert_eq!(out.len(), 1, "no work before authorize");
    let out = h.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{ADDR}.rig1","x"]}}"#
    ));
    assert!(accepted(&out));
    assert!(
        matches!(&out[1], Message::Request { method: Method::SetDifficulty(d), .. } if d.get() == 3e-10)
    );
    let n = last_notify(&out).unwrap();
    assert!(n.clean_jobs);
}

#[test]
fn bad_usernames_unknown_methods_and_malformed_lines() {
    let mut h = Harness::new(Mode::Pplns);
    h.line(r#"{"id":2,"method":"mining.subscribe","params":[]}"#);
    let out = h.line(r#"{"id":3,"method":"mining.authorize","params":["not-an-address.w","x"]}"#);
    assert_eq!(error_code(&out), Some(StratumError::UNAUTHORIZED));
    let out = h.line(r#"{"id":4,"method":"mining.frobnicate","params":[]}"#);
    assert_eq!(error_code(&out), Some(StratumError::METHOD_NOT_FOUND));
    assert_eq!(out[0].to_value()["id"], json!(4));
    // A malformed submit is answered with its own id.
    let out = h.line(r#"{"id":5,"method":"mining.submit","params":["w","1"]}"#);
    assert_eq!(error_code(&out), Some(StratumError::OTHER));
    assert_eq!(out[0].to_value()["id"], json!(5));
    let out = h.line("this is not json");
    assert_eq!(out[0].to_value()["id"], Value::Null);
    assert!(h.events().iter().all(|e| !matches!(e, Event::Close(_))));
}

#[test]
fn every_kind_of_bad_share_gets_its_error() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let good = nonce(&n, 3e-10, true);
    let ok = h.line(&submit(&user, &n, good, n.ntime, ""));
    assert!(accepted(&ok), "{ok:?}");
    let dup = h.line(&submit(&user, &n, good, n.ntime, ""));
    assert_eq!(error_code(&dup), Some(StratumError::DUPLICATE_SHARE));
    let low = nonce(&n, 3e-10, false);
    let out = h.line(&submit(&user, &n, low, n.ntime, ""));
    assert_eq!(error_code(&out), Some(StratumError::LOW_DIFFICULTY));
    let out = h.line(&submit(&user, &n, good, n.ntime, r#","20000000""#));
    assert_eq!(
        error_code(&out),
        Some(StratumError::OTHER),
        "bits outside the mask"
    );
    let out = h.line(&submit(&user, &n, good, NOW_UNIX + 8000, ""));
    assert_eq!(
        error_code(&out),
        Some(StratumError::OTHER),
        "ntime too far ahead"
    );
    let out = h.line(&submit("someone.else", &n, good, n.ntime, ""));
    assert_eq!(error_code(&out), Some(StratumError::UNAUTHORIZED));
    let mut unknown = n.clone();
    unknown.job_id = "ffff".into();
    let out = h.line(&submit(&user, &unknown, good, n.ntime, ""));
    assert_eq!(error_code(&out), Some(StratumError::JOB_NOT_FOUND));
    // A new block: the old job is stale.
    let fresh = last_notify(&h.job(PREV_B, 3)).unwrap();
    assert!(fresh.clean_jobs);
    let out = h.line(&submit(&user, &n, good, n.ntime, ""));
    assert_eq!(out[0].to_value()["error"][1], json!("Stale share"));
    let reasons: Vec<&str> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Rejected { reason, .. } => Some(reason.label()),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "duplicate",
            "low-difficulty",
            "bad-version-bits",
            "ntime-out-of-range",
            "unauthorized-worker",
            "job-not-found",
            "stale"
        ]
    );
}

#[test]
fn a_block_share_becomes_a_block_event() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let network = Target::from_compact(n.nbits).unwrap();
    let x = (0..)
        .find(|&x| network.is_met_by(&hash(&n, x, None)))
        .unwrap();
    assert!(accepted(&h.line(&submit(&user, &n, x, n.ntime, ""))));
    let block = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Block(b) => Some(b),
            _ => None,
        })
        .expect("a block event");
    assert_eq!(block.hash, hash(&n, x, None));
    assert_eq!(block.height, 2);
}

#[test]
fn a_run_of_invalid_shares_bans_but_stale_ones_do_not() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    h.job(PREV_B, 3);
    for _ in 0..20 {
        h.line(&submit(&user, &n, 1, n.ntime, ""));
    }
    assert!(
        h.events().iter().all(|e| !matches!(e, Event::Close(_))),
        "stale only"
    );
    let mut bad = n.clone();
    bad.job_id = "ffff".into();
    for _ in 0..10 {
        h.line(&submit(&user, &bad, 1, n.ntime, ""));
    }
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::Close(CloseReason::Banned(10))))
    );
}

#[test]
fn a_new_difficulty_comes_with_a_new_job_and_old_jobs_still_count() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    // Five quick shares: the first retarget raises the difficulty.
    let mut found = 0;
    let mut x = 0;
    let mut out = Vec::new();
    while found < 5 {
        x = nonce(&n, 3e-10, true).max(x + 1);
        let h_ = hash(&n, x, None);
        if Target::from_compact(n.nbits).unwrap().is_met_by(&h_)
            || !Target::from_difficulty(3e-10).unwrap().is_met_by(&h_)
        {
            continue;
        }
        out = h.line(&submit(&user, &n, x, n.ntime, ""));
        assert!(accepted(&out));
        found += 1;
    }
    let new_d = set_difficulty(&out).expect("set_difficulty after the fifth share");
    assert!(new_d > 3e-10);
    let reissued = last_notify(&out).expect("the work again under a new id");
    assert_ne!(reissued.job_id, n.job_id);
    assert!(!reissued.clean_jobs);
    // A share on the old job is still checked at the old (lower) difficulty.
    let late = (x + 1..)
        .find(|&y| {
            let hh = hash(&n, y, None);
            !Target::from_compact(n.nbits).unwrap().is_met_by(&hh)
                && Target::from_difficulty(3e-10).unwrap().is_met_by(&hh)
        })
        .unwrap();
    assert!(accepted(&h.line(&submit(&user, &n, late, n.ntime, ""))));
}

#[test]
fn solo_pays_the_miner_and_keeps_one_address_per_connection() {
    let mut h = Harness::new(Mode::Solo);
    let n = h.open(&format!("{ADDR}.a"));
    let script = address::parse(ADDR, Network::Regtest)
        .unwrap()
        .script_pubkey;
    let coinb2 = &n.coinb2;
    assert!(
        coinb2.windows(script.len()).any(|w| w == script.as_slice()),
        "the coinbase pays the username's address"
    );
    let out = h.line(&format!(
        r#"{{"id":7,"method":"mining.authorize","params":["{ADDR2}.b","x"]}}"#
    ));
    assert_eq!(error_code(&out), Some(StratumError::UNAUTHORIZED));
    let out = h.line(&format!(
        r#"{{"id":8,"method":"mining.authorize","params":["{ADDR}.b","x"]}}"#
    ));
    assert!(
        accepted(&out),
        "a second worker for the same address is fine"
    );
}

#[test]
fn suggest_difficulty_before_or_after_authorize_and_password_override() {
    let mut h = Harness::new(Mode::Pplns);
    h.job(PREV_A, 2);
    h.line(r#"{"id":1,"method":"mining.suggest_difficulty","params":[2e-10]}"#);
    h.line(r#"{"id":2,"method":"mining.subscribe","params":[]}"#);
    let out = h.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{ADDR}","x"]}}"#
    ));
    assert!(out.iter().any(
        |m| matches!(m, Message::Request { method: Method::SetDifficulty(d), .. } if d.get() == 2e-10)
    ));
    let out = h.line(r#"{"id":4,"method":"mining.suggest_difficulty","params":[3e-10]}"#);
    assert!(out.iter().any(
        |m| matches!(m, Message::Request { method: Method::SetDifficulty(d), .. } if d.get() == 3e-10)
    ));
    assert!(last_notify(&out).is_some(), "applies from a new job");
    // d=N fixes it, capped at the network difficulty (regtest: about 4.66e-10).
    let mut p = Harness::new(Mode::Pplns);
    p.job(PREV_A, 2);
    p.line(r#"{"id":2,"method":"mining.subscribe","params":[]}"#);
    let out = p.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{ADDR}","x,d=1000"]}}"#
    ));
    let d = set_difficulty(&out).unwrap();
    assert!(
        (d - Target::from_compact(CompactTarget(0x207fffff))
            .unwrap()
            .difficulty())
        .abs()
            < 1e-20
    );
}

#[test]
fn limits_close_the_connection() {
    let mut h = Harness::new(Mode::Pplns);
    h.session
        .handle(h.now, Err(FrameError::LineTooLong { limit: 16 }));
    assert!(matches!(
        h.events()[..],
        [Event::Close(CloseReason::LineTooLong)]
    ));

    let mut h = Harness::new(Mode::Pplns);
    for _ in 0..200 {
        h.session.handle(
            h.now,
            parse_line(br#"{"id":1,"method":"mining.extranonce.subscribe","params":[]}"#),
        );
    }
    assert!(matches!(h.events()[..], [Event::Close(CloseReason::Flood)]));

    let mut h = Harness::new(Mode::Pplns);
    h.session.on_tick(h.t0 + Duration::from_secs(29));
    assert!(h.events().is_empty());
    h.session.on_tick(h.t0 + Duration::from_secs(31));
    assert!(matches!(
        h.events()[..],
        [Event::Close(CloseReason::AuthorizeTimeout)]
    ));

    let mut h = Harness::new(Mode::Pplns);
    for i in 0..10 {
        h.line(&format!("garbage {i}"));
    }
    assert!(matches!(
        h.events()[..],
        [Event::Close(CloseReason::BadLines(10))]
    ));
}

#[test]
fn extranonce_changes_and_shutdown() {
    let mut h = Harness::new(Mode::Pplns);
    h.line(r#"{"id":1,"method":"mining.extranonce.subscribe","params":[]}"#);
    h.open(&format!("{ADDR}.a"));
    assert!(h.session.change_extranonce1([0, 0, 0, 10]));
    let out = h.drain();
    assert_eq!(
        out[0].to_value(),
        json!({"id":null,"method":"mining.set_extranonce","params":["0000000a",8]})
    );
    assert!(last_notify(&out).unwrap().clean_jobs);
    h.session.shutdown("bye");
    let out = h.drain();
    assert_eq!(out[0].to_value()["method"], json!("client.show_message"));
    assert_eq!(out[1].to_value()["method"], json!("client.reconnect"));
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::Close(CloseReason::Shutdown)))
    );

    // Without extranonce.subscribe the miner is asked to reconnect instead.
    let mut h = Harness::new(Mode::Pplns);
    h.open(&format!("{ADDR}.a"));
    assert!(!h.session.change_extranonce1([0, 0, 0, 10]));
    assert_eq!(h.drain()[0].to_value()["method"], json!("client.reconnect"));
}

#[test]
fn with_a_store_the_answer_waits_until_the_share_is_durable() {
    let mut s = (*settings(Mode::Pplns)).clone();
    s.ack_when_stored = true;
    let mut h = Harness::with(Arc::new(s));
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    h.events();
    let out = h.line(&submit(&user, &n, nonce(&n, 3e-10, true), n.ntime, ""));
    assert!(
        out.is_empty(),
        "answered before the store confirmed: {out:?}"
    );
    let token = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Share(s) => s.awaiting_ack,
            _ => None,
        })
        .expect("the share event carries a token");
    h.session.share_stored(token, true);
    let out = h.drain();
    assert!(accepted(&out));
    assert_eq!(
        out[0].to_value()["id"],
        json!(9),
        "answered with the submit's id"
    );
    h.session.share_stored(token, false);
    assert!(h.drain().is_empty(), "answered once");
    // A share the store could not take is refused.
    let out = h.line(&submit(&user, &n, shares(&n, 3e-10, 2)[1], n.ntime, ""));
    assert!(out.is_empty());
    let token = h
        .events()
        .into_iter()
        .find_map(|e| match e {
            Event::Share(s) => s.awaiting_ack,
            _ => None,
        })
        .unwrap();
    h.session.share_stored(token, false);
    assert_eq!(error_code(&h.drain()), Some(StratumError::OTHER));
}

/// The first `count` nonces whose hashes meet `difficulty` on `n` (blocks included).
fn shares(n: &Notify, difficulty: f64, count: usize) -> Vec<u32> {
    let share = Target::from_difficulty(difficulty).unwrap();
    (0..)
        .filter(|&x| share.is_met_by(&hash(n, x, None)))
        .take(count)
        .collect()
}

/// Feeds `lines` all at the same instant, as a miner's burst arrives.
fn burst(h: &mut Harness, lines: &[String]) -> Vec<Message> {
    for line in lines {
        h.session.handle(h.now, parse_line(line.as_bytes()));
    }
    h.drain()
}

fn closes(events: &[Event]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Close(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_flood_of_valid_shares_is_never_closed_and_stale_ones_are_free_too() {
    // Default limits: 50 messages/s with a burst of 100.
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let nonces = shares(&n, 3e-10, 1000);
    let lines: Vec<String> = nonces
        .iter()
        .map(|&x| submit(&user, &n, x, n.ntime, ""))
        .collect();
    let out = burst(&mut h, &lines);
    let ok = out
        .iter()
        .filter(|m| matches!(m, Message::Response(r) if r.error.is_none()))
        .count();
    assert_eq!(ok, 1000, "every valid share accepted at once");
    assert!(closes(&h.events()).is_empty());
    // A new block: the same burst is now stale, and still costs nothing.
    h.job(PREV_B, 3);
    let out = burst(&mut h, &lines);
    assert!(
        out.iter()
            .filter(|m| matches!(m, Message::Response(_)))
            .all(|m| m.to_value()["error"][1] == json!("Stale share"))
    );
    assert!(closes(&h.events()).is_empty());
}

#[test]
fn junk_floods_are_still_closed_and_invalid_runs_banned() {
    let no_ban = Arc::new(SessionSettings {
        limits: LimitsConfig {
            ban_after_invalid: 0,
            ..LimitsConfig::default()
        },
        ..(*settings(Mode::Pplns)).clone()
    });
    let mut h = Harness::with(no_ban);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let x = shares(&n, 3e-10, 1)[0];
    let line = submit(&user, &n, x, n.ntime, "");
    // One accepted, then duplicates: junk, over the burst of 100 the connection closes.
    let lines = vec![line; 150];
    burst(&mut h, &lines);
    assert_eq!(closes(&h.events()), [CloseReason::Flood]);

    // Garbage lines at once close it too (before max_bad_lines when that is higher).
    let mut h = Harness::with(Arc::new(SessionSettings {
        limits: LimitsConfig {
            max_bad_lines: 1000,
            ..LimitsConfig::default()
        },
        ..(*settings(Mode::Pplns)).clone()
    }));
    let lines: Vec<String> = (0..150).map(|i| format!("junk {i}")).collect();
    burst(&mut h, &lines);
    assert_eq!(closes(&h.events()), [CloseReason::Flood]);

    // With the default settings of the harness (ban after 10), low-difficulty shares ban.
    let mut h = Harness::new(Mode::Pplns);
    let n = h.open(&user);
    let low = nonce(&n, 3e-10, false);
    let lines = vec![submit(&user, &n, low, n.ntime, ""); 10];
    burst(&mut h, &lines);
    assert_eq!(closes(&h.events()), [CloseReason::Banned(10)]);
}

/// The notify a fresh PPLNS harness sends for its first job on PREV_A: what a miner got on
/// its last connection when the pool sends the same job again.
fn first_notify() -> Notify {
    let mut h = Harness::new(Mode::Pplns);
    h.open(&format!("{ADDR}.rig1"))
}

#[test]
fn submits_before_authorize_are_answered_after_it() {
    let user = format!("{ADDR}.rig1");
    let n = first_notify();
    let good = shares(&n, 3e-10, 3);
    let low = nonce(&n, 3e-10, false);
    let mut h = Harness::new(Mode::Pplns);
    h.job(PREV_A, 2);
    // As pooler's cpuminer does after a reconnect: subscribe, the shares it still had,
    // then authorize, all in one write.
    // The session id the miner had: this connection resumes it (the same extranonce1).
    let mut lines = vec![
        r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1","00000009"]}"#
            .to_string(),
    ];
    for &x in &good {
        lines.push(submit(&user, &n, x, n.ntime, "").replace(r#""id":9"#, r#""id":4"#));
    }
    // Bad ones too: they were made for another connection, so they do not count.
    for _ in 0..12 {
        lines.push(submit(&user, &n, low, n.ntime, "").replace(r#""id":9"#, r#""id":4"#));
    }
    lines.push(format!(
        r#"{{"id":2,"method":"mining.authorize","params":["{user}","x"]}}"#
    ));
    let out = burst(&mut h, &lines);
    let replies: Vec<Value> = out
        .iter()
        .filter(|m| matches!(m, Message::Response(_)))
        .map(Message::to_value)
        .collect();
    assert_eq!(replies[0]["id"], json!(1), "subscribe first");
    assert_eq!(
        (replies[1]["id"].clone(), replies[1]["result"].clone()),
        (json!(2), json!(true)),
        "the authorize reply comes before any submit's: {replies:?}"
    );
    assert!(replies[2..5].iter().all(|r| r["result"] == json!(true)));
    assert!(
        replies[5..]
            .iter()
            .all(|r| r["error"][0] == json!(StratumError::LOW_DIFFICULTY))
    );
    assert_eq!(replies.len(), 2 + 3 + 12);
    assert!(
        closes(&h.events()).is_empty(),
        "held refusals do not ban (the limit is 10)"
    );

    // Without the session (another extranonce1), the held shares cannot be checked:
    // answered stale, after the authorize reply all the same.
    let mut h = Harness::new(Mode::Pplns);
    h.job(PREV_A, 2);
    let mut lines = vec![
        r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1","0000000a"]}"#
            .to_string(),
    ];
    lines.extend(good.iter().map(|&x| submit(&user, &n, x, n.ntime, "")));
    lines.push(format!(
        r#"{{"id":2,"method":"mining.authorize","params":["{user}","x"]}}"#
    ));
    let replies: Vec<Value> = burst(&mut h, &lines)
        .iter()
        .filter(|m| matches!(m, Message::Response(_)))
        .map(Message::to_value)
        .collect();
    assert_eq!(replies[1]["result"], json!(true), "{replies:?}");
    assert!(
        replies[2..]
            .iter()
            .all(|r| r["error"][1] == json!("Stale share")),
        "{replies:?}"
    );

    // More than the session holds: the rest are refused at once, and never authorized,
    // the held ones are refused at the authorize timeout.
    let mut h = Harness::new(Mode::Pplns);
    h.job(PREV_A, 2);
    let lines: Vec<String> = (0..40).map(|i| submit(&user, &n, i, n.ntime, "")).collect();
    let out = burst(&mut h, &lines);
    assert_eq!(out.len(), 40 - HELD_SUBMITS);
    assert!(
        out.iter()
            .all(|m| m.to_value()["error"][0] == json!(StratumError::NOT_SUBSCRIBED))
    );
    h.session.on_tick(h.t0 + Duration::from_secs(31));
    assert_eq!(h.drain().len(), HELD_SUBMITS);
    assert_eq!(closes(&h.events()), [CloseReason::AuthorizeTimeout]);
}

#[test]
fn jobs_of_older_blocks_are_stale_even_when_forgotten() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let x = shares(&n, 3e-10, 1)[0];
    // A new block, then more jobs than the session keeps (4): the first job is gone.
    for _ in 0..6 {
        h.job(PREV_B, 3);
    }
    let out = h.line(&submit(&user, &n, x, n.ntime, ""));
    assert_eq!(out[0].to_value()["error"][1], json!("Stale share"));
    let mut unknown = n.clone();
    for id in ["ffff", "zz", "+1", ""] {
        unknown.job_id = id.into();
        let out = h.line(&submit(&user, &unknown, x, n.ntime, ""));
        assert_eq!(
            out[0].to_value()["error"][1],
            json!("Job not found"),
            "{id}"
        );
    }
}

#[test]
fn the_same_work_again_comes_with_a_new_ntime_and_a_share_counts_once() {
    let mut h = Harness::new(Mode::Pplns);
    let user = format!("{ADDR}.rig1");
    let n = h.open(&user);
    let x = shares(&n, 3e-10, 1)[0];
    assert!(accepted(&h.line(&submit(&user, &n, x, n.ntime, ""))));
    // A lower difficulty comes with the same work under a new id and a later ntime.
    let out = h.line(r#"{"id":7,"method":"mining.suggest_difficulty","params":[1e-10]}"#);
    let again = last_notify(&out).expect("the work reissued");
    assert_ne!(again.job_id, n.job_id);
    assert_eq!(again.coinb1, n.coinb1);
    assert_eq!(again.ntime, n.ntime + 1);
    // The same header under the new id is a duplicate...
    let out = h.line(&submit(&user, &again, x, n.ntime, ""));
    assert_eq!(error_code(&out), Some(StratumError::DUPLICATE_SHARE));
    // ...while a miner that starts its nonces over on it finds new headers only.
    for y in shares_at(&again, again.ntime, 1e-10, 20) {
        let out = h.line(&submit(&user, &again, y, again.ntime, ""));
        assert!(accepted(&out), "{out:?}");
    }
    // And a refresh of the feed with nothing new (run::make_jobs gives it the work's
    // number) goes out later again.
    let first = JobId::parse(&n.job_id).unwrap();
    let mut refresh = h.maker.make(regtest_template(PREV_A, 2), NOW_UNIX).unwrap();
    assert_eq!(refresh.ntime, n.ntime);
    refresh.work = first;
    h.session.on_job(h.now, Arc::new(refresh));
    let third = last_notify(&h.drain()).expect("the refresh is sent");
    assert!(!third.clean_jobs);
    assert!(
        third.ntime > again.ntime,
        "later than every ntime the work had"
    );
    let out = h.line(&submit(&user, &third, x, n.ntime, ""));
    assert_eq!(error_code(&out), Some(StratumError::DUPLICATE_SHARE));
}

/// The first `count` nonces meeting `difficulty` on `n` with `ntime`.
fn shares_at(n: &Notify, ntime: u32, difficulty: f64, count: usize) -> Vec<u32> {
    let mut at = n.clone();
    at.ntime = ntime;
    shares(&at, difficulty, count)
}

/// A template like regtest's but at a mainnet difficulty (bits 0x17034219, about 1.1e14),
/// so that the network cap does not hide the difficulty a profile chose.
fn mainnet_bits_template(prev: &str, height: u64) -> Arc<crate::chain::template::Template> {
    let mut json: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/gbt-regtest-sv.json")).unwrap();
    json["previousblockhash"] = prev.into();
    json["height"] = height.into();
    json["transactions"] = json!([]);
    json["bits"] = "17034219".into();
    json["target"] = serde_json::Value::Null;
    let raw = protocol::template::BlockTemplate::from_json(&json).unwrap();
    Arc::new(crate::chain::template::Template {
        checked: raw.validate().unwrap(),
        node: "test".into(),
        fetch_time: Duration::ZERO,
    })
}

/// A device's opening as its firmware sends it: `before` between subscribe and authorize,
/// `after` once authorized. Returns every difficulty the pool set, in order.
fn device_session(
    settings: Arc<SessionSettings>,
    agent: &str,
    password: &str,
    before: &[&str],
    after: &[&str],
) -> (Vec<f64>, Session) {
    let mut h = Harness::with(settings);
    let job = h
        .maker
        .make(mainnet_bits_template(PREV_A, 2), NOW_UNIX)
        .unwrap();
    h.session.on_job(h.now, Arc::new(job));
    let mut out = h.line(&format!(
        r#"{{"id":1,"method":"mining.subscribe","params":["{agent}"]}}"#
    ));
    for line in before {
        out.extend(h.line(line));
    }
    out.extend(h.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{ADDR}.rig","{password}"]}}"#
    )));
    for line in after {
        out.extend(h.line(line));
    }
    let set: Vec<f64> = out
        .iter()
        .filter_map(|m| match m {
            Message::Request {
                method: Method::SetDifficulty(d),
                ..
            } => Some(d.get()),
            _ => None,
        })
        .collect();
    (set, h.session)
}

fn pool_wide() -> Arc<SessionSettings> {
    let mut s = (*settings(Mode::Pplns)).clone();
    s.vardiff = VardiffConfig::default();
    Arc::new(s)
}

#[test]
fn each_device_gets_the_difficulty_its_profile_promises() {
    let suggest =
        |d: &str| format!(r#"{{"id":2,"method":"mining.suggest_difficulty","params":[{d}]}}"#);
    // ESP-Miner (Bitaxe): configure, subscribe, suggest 1000, authorize.
    let s1000 = suggest("1000");
    let (set, session) = device_session(pool_wide(), "bitaxe/BM1370/v2.9.0", "x", &[&s1000], &[]);
    assert_eq!(set, vec![1000.0]);
    assert_eq!(session.profile(), Some("bitaxe"));
    assert_eq!(session.user_agent(), Some("bitaxe/BM1370/v2.9.0"));
    // Without a suggestion: the profile's start; below its minimum: the minimum.
    let (set, _) = device_session(pool_wide(), "bitaxe/BM1366/v2.4.0", "x", &[], &[]);
    assert_eq!(set, vec![1024.0]);
    let s100 = suggest("100");
    let (set, _) = device_session(pool_wide(), "bitaxe/BM1366/v2.4.0", "x", &[&s100], &[]);
    assert_eq!(set, vec![256.0]);
    // A fractional suggestion to firmware that reads integers is rounded.
    let s1500 = suggest("1500.7");
    let (set, _) = device_session(pool_wide(), "bitaxe/BM1366/v2.4.0", "x", &[&s1500], &[]);
    assert_eq!(set, vec![1501.0]);

    // NerdMiner: subscribe, authorize, then suggest its default 0.00015.
    let s_nerd = suggest("0.00015");
    let (set, session) = device_session(pool_wide(), "NerdMinerV2/1.7.0", "x", &[], &[&s_nerd]);
    assert_eq!(set, vec![0.0005, 0.00015]);
    assert_eq!(session.profile(), Some("nerdminer"));
    // Its own d= below the profile's minimum is kept (the pool-wide min is 1 here, the
    // profile's 0.0001: the lower holds).
    let (set, _) = device_session(pool_wide(), "NerdMinerV2/1.7.0", "x,d=0.00002", &[], &[]);
    assert_eq!(set, vec![0.0001]);
    let (set, _) = device_session(pool_wide(), "bitaxe/BM1366/v2.4.0", "x,d=100", &[], &[]);
    assert_eq!(
        set,
        vec![100.0],
        "below the Bitaxe profile's 256, above the pool's 1"
    );
    // Where the operator does not allow difficulties below 1, it gets 1.
    let mut strict = (*pool_wide()).clone();
    strict.vardiff.allow_below_one = Some(false);
    let (set, _) = device_session(Arc::new(strict), "NerdMinerV2/1.7.0", "x", &[], &[&s_nerd]);
    assert_eq!(set, vec![1.0]);

    // cgminer/bmminer (Antminer): whole numbers from 16384.
    let (set, session) = device_session(pool_wide(), "bmminer/2.0.0", "x", &[], &[]);
    assert_eq!((set, session.profile()), (vec![16384.0], Some("asic")));

    // NiceHash: extranonce.subscribe answered, a high start, or its d= kept as asked.
    let xn = r#"{"id":4,"method":"mining.extranonce.subscribe","params":[]}"#;
    let (set, _) = device_session(pool_wide(), "NiceHash/1.0.0", "x", &[xn], &[]);
    assert_eq!(set, vec![500_000.0]);
    let (set, session) = device_session(pool_wide(), "NiceHash/1.0.0", "d=2000000", &[xn], &[]);
    assert_eq!(set, vec![2_000_000.0]);
    assert!(session.vardiff.is_fixed());

    // cpuminer and cpuminer-opt (the fixtures' user agents).
    for agent in ["cpuminer/2.5.1", "cpuminer-opt-26.1-x64L"] {
        let (set, _) = device_session(pool_wide(), agent, "x", &[], &[]);
        assert_eq!(set, vec![0.01], "{agent}");
    }

    // Anything else: the pool-wide start.
    let (set, session) = device_session(pool_wide(), "ourminer/0.1", "x", &[], &[]);
    assert_eq!((set, session.profile()), (vec![1024.0], None));
}

#[test]
fn an_operator_profile_matches_worker_names_and_a_suggestion_moves_within_it() {
    let mut s = (*pool_wide()).clone();
    s.vardiff.profile = vec![crate::config::ProfileConfig {
        name: "s9".into(),
        user_agents: Vec::new(),
        workers: vec!["rig".into()],
        start: Some(8192.0),
        min: Some(4096.0),
        max: Some(65536.0),
        powers_of_two: Some(true),
        integer_only: None,
    }];
    let s = Arc::new(s);
    // The worker is `rig` (ADDR.rig): the profile wins over the user agent's.
    let (set, session) = device_session(s.clone(), "cgminer/4.12.1", "x", &[], &[]);
    assert_eq!((set, session.profile()), (vec![8192.0], Some("s9")));
    // A suggestion above the profile's max is held to it; one inside is a power of two.
    let high = r#"{"id":5,"method":"mining.suggest_difficulty","params":[1e9]}"#;
    let (set, _) = device_session(s.clone(), "cgminer/4.12.1", "x", &[], &[high]);
    assert_eq!(set, vec![8192.0, 65536.0]);
    let mid = r#"{"id":5,"method":"mining.suggest_difficulty","params":[20000]}"#;
    let (set, _) = device_session(s, "cgminer/4.12.1", "x", &[mid], &[]);
    assert_eq!(set, vec![20000.0_f64.log2().round().exp2()]);
}

#[test]
fn a_nicehash_session_replayed() {
    // Its opening: subscribe, extranonce.subscribe, authorize; answers literal.
    let mut h = Harness::with(pool_wide());
    let job = h
        .maker
        .make(mainnet_bits_template(PREV_A, 2), NOW_UNIX)
        .unwrap();
    h.session.on_job(h.now, Arc::new(job));
    let out = h.line(r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0"]}"#);
    assert_eq!(
        out[0].to_value(),
        json!({"id":1,"result":[[["mining.set_difficulty","00000009"],["mining.notify","00000009"]],"00000009",8],"error":null})
    );
    let out = h.line(r#"{"id":2,"method":"mining.extranonce.subscribe","params":[]}"#);
    assert_eq!(
        out[0].to_value(),
        json!({"id":2,"result":true,"error":null})
    );
    let out = h.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{ADDR}.nh","x"]}}"#
    ));
    assert_eq!(
        out[0].to_value(),
        json!({"id":3,"result":true,"error":null})
    );
    assert_eq!(
        set_difficulty(&out),
        Some(500_000.0),
        "the profile's high start"
    );
    // Its suggestion is honoured with the work reissued; an unknown method is an error
    // triple, not a close.
    let out = h.line(r#"{"id":4,"method":"mining.suggest_difficulty","params":[2000000]}"#);
    assert_eq!(set_difficulty(&out), Some(2_000_000.0));
    assert!(last_notify(&out).is_some());
    let out = h.line(r#"{"id":5,"method":"mining.get_hashrate","params":[]}"#);
    assert_eq!(
        out[0].to_value()["error"],
        json!([-32601, "Method not found: mining.get_hashrate", null])
    );
    // The pool moves it to another extranonce1: set_extranonce and clean work, no reconnect.
    assert!(h.session.change_extranonce1([0, 0, 0, 0x2a]));
    let out = h.drain();
    assert_eq!(
        out[0].to_value(),
        json!({"id":null,"method":"mining.set_extranonce","params":["0000002a",8]})
    );
    assert!(last_notify(&out).unwrap().clean_jobs);
    assert!(
        !h.events().iter().any(|e| matches!(e, Event::Close(_))),
        "still connected"
    );

    // Its shares after the move count with the new extranonce1 (regtest work, where
    // shares can be found: the pool-wide settings without profiles).
    let mut s = (*settings(Mode::Pplns)).clone();
    s.vardiff.builtin_profiles = false;
    let mut h = Harness::with(Arc::new(s));
    h.job(PREV_A, 2);
    h.line(r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0"]}"#);
    h.line(r#"{"id":2,"method":"mining.extranonce.subscribe","params":[]}"#);
    let user = format!("{ADDR}.nh");
    h.line(&format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{user}","x"]}}"#
    ));
    let en1 = [0, 0, 0, 0x2a];
    h.session.change_extranonce1(en1);
    let n = last_notify(&h.drain()).unwrap();
    let network = Target::from_compact(n.nbits).unwrap();
    let share = Target::from_difficulty(3e-10).unwrap();
    let header = |e: &[u8; 4], x: u32| {
        protocol::stratum::share_header(&n, e, &[0; 8], n.version, n.ntime, x).hash()
    };
    let good = (0..)
        .find(|&x| {
            let hh = header(&en1, x);
            share.is_met_by(&hh) && !network.is_met_by(&hh) && !share.is_met_by(&header(&EN1, x))
        })
        .unwrap();
    let out = h.line(&submit(&user, &n, good, n.ntime, ""));
    assert_eq!(
        out[0].to_value(),
        json!({"id":9,"result":true,"error":null})
    );
}
