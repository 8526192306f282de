//! A scripted Stratum server drives the client: the opening, difficulty timing, version
//! rolling, clean jobs, malformed lines, reconnect, failover and switch-back.

#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use miner::client::{self, ClientOptions, PoolUrl, SessionConfig};
use miner::engine::Engine;
use miner::hash::Backend;
use miner::stats::Stats;
use protocol::stratum::{Message, Method, StratumCodec, Submit, share_header};
use protocol::{Target, sha256d};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

type Conn = Framed<TcpStream, StratumCodec>;

const COINB1: &str =
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1b020a01";
const COINB2: &str =
    "ffffffff0100f2052a010000001976a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac00000000";
const MASK: u32 = 0x1fffe000;

/// A job whose network target (a mainnet-like `nbits`) no test share can meet: a share that
/// is also a block makes the miner withdraw the job, which these tests do not want.
fn notify(job: &str, clean: bool) -> Value {
    let prev = sha256d(job.as_bytes());
    json!({"id": null, "method": "mining.notify", "params": [
        job, protocol::stratum::prevhash_to_stratum(&prev), COINB1, COINB2,
        [sha256d(b"tx").to_internal_hex()], "20000000", "17034219", "6b026662", clean]})
}

async fn send(conn: &mut Conn, v: Value) {
    let msg = Message::from_value(&v).unwrap();
    conn.send(&msg).await.unwrap();
}

async fn recv(conn: &mut Conn) -> Message {
    tokio::time::timeout(Duration::from_secs(20), conn.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap()
}

/// Answers configure/subscribe/authorize; returns the subscribe params.
async fn opening(conn: &mut Conn) -> Value {
    let mut subscribe = Value::Null;
    let mut answered = 0;
    while answered < 3 {
        let Message::Request { id, method } = recv(conn).await else {
            panic!("expected a request")
        };
        let reply = match &method {
            Method::Configure(_) => {
                json!({"version-rolling": true, "version-rolling.mask": format!("{MASK:08x}")})
            }
            Method::Subscribe(_) => {
                subscribe = Message::Request {
                    id: id.clone(),
                    method: method.clone(),
                }
                .to_value()["params"]
                    .clone();
                json!([[["mining.notify", "1"]], "deadbeef", 4])
            }
            Method::Authorize(a) => {
                assert_eq!(a.user, "worker.1");
                json!(true)
            }
            other => panic!("unexpected {other:?}"),
        };
        conn.send(&Message::result(id, reply)).await.unwrap();
        answered += 1;
    }
    subscribe
}

/// The next submit (other requests answered with true).
async fn next_submit(conn: &mut Conn) -> (protocol::stratum::Id, Submit) {
    loop {
        match recv(conn).await {
            Message::Request {
                id,
                method: Method::Submit(s),
            } => return (id, s),
            Message::Request { id, .. } => {
                conn.send(&Message::result(id, json!(true))).await.unwrap()
            }
            Message::Response(_) => {}
        }
    }
}

fn check_share(job: &str, s: &Submit, difficulty: f64) {
    let n = match Message::from_value(&notify(job, true)).unwrap() {
        Message::Request {
            method: Method::Notify(n),
            ..
        } => n,
        _ => unreachable!(),
    };
    let bits = s.version_bits.unwrap();
    assert_eq!(bits & !MASK, 0, "version bits outside the mask");
    let version = (n.version & !MASK) | (bits & MASK);
    let header = share_header(
        &n,
        &hex::decode("deadbeef").unwrap(),
        &s.extranonce2,
        version,
        s.ntime,
        s.nonce,
    );
    assert!(
        Target::from_difficulty(difficulty)
            .unwrap()
            .is_met_by(&header.hash()),
        "share above difficulty {difficulty}"
    );
}

fn options(pools: Vec<PoolUrl>, failback: Duration) -> ClientOptions {
    ClientOptions {
        pools,
        session: SessionConfig {
            user: "worker.1".into(),
            password: "x".into(),
            agent: "test".into(),
            suggest_difficulty: None,
            version_rolling_mask: Some(MASK),
            extranonce2_range: None,
        },
        failback,
        allow_redirect: false,
        timeout: Duration::from_secs(30),
        max_bad_lines: 3,
        tls_fingerprint: None,
        sv2_channel: miner::client::ChannelKind::Extended,
    }
}

fn url(port: u16) -> PoolUrl {
    PoolUrl::v1("127.0.0.1", port)
}

struct Running {
    cancel: CancellationToken,
    stats: Arc<Stats>,
    _engine: Arc<Engine>,
}

fn start(opts: ClientOptions) -> Running {
    let (tx, rx) = miner::engine::solution_channel();
    let engine = Arc::new(Engine::start(Backend::supported()[0], 1, tx).unwrap());
    let arx = client::forward_solutions(rx).unwrap();
    let stats = Arc::new(Stats::new(Instant::now(), "test"));
    let cancel = CancellationToken::new();
    tokio::spawn(client::run(
        opts,
        engine.clone(),
        arx,
        stats.clone(),
        cancel.clone(),
    ));
    Running {
        cancel,
        stats,
        _engine: engine,
    }
}

async fn accept(listener: &TcpListener) -> Conn {
    let (s, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept())
        .await
        .unwrap()
        .unwrap();
    Framed::new(s, StratumCodec::new(1 << 20))
}

/// A miner connected to a scripted pool, past the opening, told a share difficulty.
async fn mining_at(difficulty: f64) -> (Running, Conn) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = start(options(
        vec![url(listener.local_addr().unwrap().port())],
        Duration::from_secs(300),
    ));
    let mut conn = accept(&listener).await;
    opening(&mut conn).await;
    send(
        &mut conn,
        json!({"id": null, "method": "mining.set_difficulty", "params": [difficulty]}),
    )
    .await;
    (run, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_difficulty_timing_and_clean_jobs() {
    let (run, mut conn) = mining_at(1.0 / 65536.0).await;
    send(&mut conn, notify("job1", true)).await;
    for i in 0..5 {
        let (id, s) = next_submit(&mut conn).await;
        assert_eq!(s.job_id, "job1");
        check_share("job1", &s, 1.0 / 65536.0);
        let reply = if i == 0 {
            Message::error(
                id,
                protocol::stratum::StratumError::new(23, "Low difficulty share"),
            )
        } else {
            Message::result(id, json!(true))
        };
        conn.send(&reply).await.unwrap();
    }
    // A new difficulty applies from the next job only: job1 shares keep coming at the old one.
    send(
        &mut conn,
        json!({"id": null, "method": "mining.set_difficulty", "params": [1.0 / 4096.0]}),
    )
    .await;
    send(&mut conn, notify("job2", true)).await;
    let sent = Instant::now();
    let mut job2 = 0;
    while job2 < 3 {
        let (id, s) = next_submit(&mut conn).await;
        if s.job_id == "job1" {
            assert!(
                sent.elapsed() < Duration::from_millis(200),
                "job1 shares {:?} after a clean notify",
                sent.elapsed()
            );
        } else {
            check_share("job2", &s, 1.0 / 4096.0);
            job2 += 1;
        }
        conn.send(&Message::result(id, json!(true))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let snap = run.stats.snapshot(Instant::now());
    assert!(snap.accepted >= 4, "{snap:?}");
    assert_eq!(snap.reject_reasons.get("Low difficulty share"), Some(&1));
    // The verdicts are also counted for the worker (the one CPU thread) that found them.
    let worker = &run._engine.stats()[0];
    assert_eq!(worker.accepted.load(Ordering::Relaxed), snap.accepted);
    assert_eq!(worker.rejected.load(Ordering::Relaxed), snap.rejected);
    run.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_then_an_overlong_line_means_reconnect_and_resume() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = start(options(
        vec![url(listener.local_addr().unwrap().port())],
        Duration::from_secs(300),
    ));
    let mut conn = accept(&listener).await;
    let first = opening(&mut conn).await;
    assert_eq!(
        first.as_array().unwrap().len(),
        1,
        "no session to resume yet: {first}"
    );
    // A few unusable lines are logged and survived...
    use tokio::io::AsyncWriteExt;
    let stream = conn.get_mut();
    stream
        .write_all(b"this is not json\n[1,2,3]\n")
        .await
        .unwrap();
    stream
        .write_all(
            b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[\"not a number\"]}\n",
        )
        .await
        .unwrap();
    send(
        &mut conn,
        json!({"id": null, "method": "mining.set_difficulty", "params": [1.0 / 65536.0]}),
    )
    .await;
    send(&mut conn, notify("job1", true)).await;
    let (_, s) = next_submit(&mut conn).await;
    assert_eq!(s.job_id, "job1");
    // ...an endless line is not: the client drops the connection and comes back, asking to
    // resume its extranonce1.
    let huge = vec![b'x'; 5 * 1024 * 1024];
    let _ = conn.get_mut().write_all(&huge).await;
    let mut again = accept(&listener).await;
    let resumed = opening(&mut again).await;
    assert_eq!(resumed[1], "deadbeef");
    run.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_switch_back_and_reconnect() {
    // The first pool is down at start: reserve a port and close it.
    let first_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let backup = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = start(options(
        vec![url(first_port), url(backup.local_addr().unwrap().port())],
        Duration::from_secs(1),
    ));
    let mut conn = accept(&backup).await;
    opening(&mut conn).await;
    // The first pool comes back: within the failback interval the client returns to it.
    let first = TcpListener::bind(("127.0.0.1", first_port)).await.unwrap();
    let mut probe_or_session = accept(&first).await; // the reachability probe
    drop(probe_or_session);
    probe_or_session = accept(&first).await;
    opening(&mut probe_or_session).await;
    // client.reconnect to another host is followed to the same host, on the given port.
    let third = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = third.local_addr().unwrap().port();
    send(
        &mut probe_or_session,
        json!({"id": null, "method": "client.reconnect", "params": ["elsewhere.example", port, 0]}),
    )
    .await;
    let mut moved = accept(&third).await;
    opening(&mut moved).await;
    assert!(run.stats.snapshot(Instant::now()).failures >= 1);
    run.cancel.cancel();
}

/// A TLS pool with a self-signed certificate: the client connects when the fingerprint is
/// pinned, and refuses when the pin is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_pinned_fingerprint() {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_der = key.cert.der().clone();
    let pin = miner::client::tls::fingerprint(cert_der.as_ref());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert_der],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der())),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls_url = PoolUrl {
        tls: true,
        ..PoolUrl::v1("127.0.0.1", port)
    };

    // A wrong pin: the handshake fails and the client never sends a line.
    let mut wrong = options(vec![tls_url.clone()], Duration::from_secs(300));
    wrong.tls_fingerprint = Some([0u8; 32]);
    let run = start(wrong);
    let (tcp, _) = listener.accept().await.unwrap();
    assert!(acceptor.accept(tcp).await.is_err());
    run.cancel.cancel();

    // The right pin: a normal session over TLS.
    let mut right = options(vec![tls_url], Duration::from_secs(300));
    right.tls_fingerprint = Some(pin);
    let run = start(right);
    let tls = loop {
        let (tcp, _) = listener.accept().await.unwrap();
        if let Ok(s) = acceptor.accept(tcp).await {
            break s;
        }
    };
    let mut conn = Framed::new(tls, StratumCodec::new(1 << 20));
    let mut answered = 0;
    while answered < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(20), conn.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .unwrap();
        let Message::Request { id, method } = msg else {
            panic!()
        };
        let reply = match method {
            Method::Configure(_) => json!({"version-rolling": false}),
            Method::Subscribe(_) => json!([[["mining.notify", "1"]], "deadbeef", 4]),
            _ => json!(true),
        };
        conn.send(&Message::result(id, reply)).await.unwrap();
        answered += 1;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        run.stats.snapshot(Instant::now()).pool.as_deref(),
        Some(format!("stratum+ssl://127.0.0.1:{port}").as_str())
    );
    run.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_stops_hashing_its_job_until_the_next_notify() {
    let (run, mut conn) = mining_at(1.0 / 65536.0).await;
    // Regtest bits: every share is a block.
    let mut block_job = notify("job1", true);
    block_job["params"][6] = json!("207fffff");
    send(&mut conn, block_job).await;
    let (id, s) = next_submit(&mut conn).await;
    assert_eq!(s.job_id, "job1");
    conn.send(&Message::result(id, json!(true))).await.unwrap();
    // The engine may have had a few more solutions in flight; after those, silence.
    let quiet_from = Instant::now() + Duration::from_millis(300);
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(Ok(msg)))) = tokio::time::timeout_at(deadline.into(), conn.next()).await {
        if let Message::Request {
            method: Method::Submit(_),
            ..
        } = msg
        {
            assert!(
                Instant::now() < quiet_from,
                "shares kept coming for a solved job"
            );
        }
    }
    send(&mut conn, notify("job2", true)).await;
    let (_, s) = next_submit(&mut conn).await;
    assert_eq!(s.job_id, "job2");
    run.cancel.cancel();
}
