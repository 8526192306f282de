//! The Stratum listeners beyond plain TCP, against the real pool on a regtest pair: our
//! miner mining through the `stratum+ssl` port with a pinned certificate, the certificate
//! replaced on SIGHUP without a restart, and PROXY protocol v1/v2 headers from a trusted
//! proxy address giving per-address limits the miner's real address.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use miner::client::{ClientOptions, Embedded, PoolUrl};
use miner::hash::Backend;
use pool::config::{Mode, TlsConfig};
use protocol::stratum::{Message, StratumCodec};
use serde_json::{Value, json};
use testkit::RegtestPair;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Framed;

const ADMIN_TOKEN: &str = "listeners-admin-token-0123";

/// A fresh self-signed certificate for "localhost" written to `dir`: (cert, key, pin).
fn write_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, [u8; 32]) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_file = dir.join(format!("{name}.crt"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let pin = miner::client::tls::fingerprint(cert.cert.der().as_ref());
    (cert_file, key_file, pin)
}

/// Whether a TLS handshake with `addr` succeeds when only `pin` is trusted.
async fn handshake_with_pin(addr: SocketAddr, pin: [u8; 32]) -> bool {
    let connector = miner::client::tls::connector(Some(pin)).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_port_mines_with_a_pinned_certificate_and_reloads_on_sighup() {
    let pair = RegtestPair::start().unwrap();
    let node = pair.node(0);
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file, first_pin) = write_certificate(dir.path(), "live");
    let mut cfg = config(Mode::Solo, vec![node_config(node)], None, dir.path());
    cfg.vardiff.min = 1e-12;
    cfg.stratum.tls = Some(TlsConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        cert_file: cert_file.clone(),
        key_file: key_file.clone(),
    });
    cfg.api.admin_token = Some(ADMIN_TOKEN.into());
    let mut pool = TestPool::start(cfg).await;
    let tls_addr = pool.running.tls_addr.expect("a TLS listener");

    // Our miner, as `miner -o stratum+ssl://127.0.0.1:PORT --tls-fingerprint PIN` runs it.
    let address = node.new_address().unwrap();
    let opts = ClientOptions {
        pools: vec![PoolUrl {
            tls: true,
            ..PoolUrl::v1("127.0.0.1", tls_addr.port())
        }],
        tls_fingerprint: Some(first_pin),
        ..ClientOptions::local(0, &address, "x,d=0.0000000001", "tls-test")
    };
    let miner = Embedded::start(opts, Backend::supported()[0], 1).unwrap();
    let blocks = pool.accepted_blocks(2, Duration::from_secs(60)).await;
    assert!(blocks.iter().all(|b| b.accepted));
    assert!(miner.stats.snapshot(std::time::Instant::now()).accepted > 0);
    miner.cancel.cancel();

    // Renewal: new files in place, SIGHUP, and new handshakes present the new certificate.
    let (new_cert, new_key, second_pin) = write_certificate(dir.path(), "renewed");
    std::fs::copy(&new_cert, &cert_file).unwrap();
    std::fs::copy(&new_key, &key_file).unwrap();
    assert!(
        handshake_with_pin(tls_addr, first_pin).await,
        "still the old one before the signal"
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    until("the renewed certificate", Duration::from_secs(10), || {
        handshake_with_pin(tls_addr, second_pin)
    })
    .await;
    assert!(!handshake_with_pin(tls_addr, first_pin).await);

    // A broken renewal keeps the certificate in use.
    std::fs::write(&cert_file, "not a certificate").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(handshake_with_pin(tls_addr, second_pin).await);

    // The admin API's reload does what SIGHUP does: a broken file is refused (500) and
    // the certificate in use stays; a good one is taken.
    let api = pool.running.api_addr.unwrap();
    let reload = || http_call(api, "POST", "/api/admin/reload", Some(ADMIN_TOKEN), None);
    let (status, body) = reload().await;
    assert_eq!(status, 500, "{body}");
    assert!(handshake_with_pin(tls_addr, second_pin).await);
    let (new_cert, new_key, third_pin) = write_certificate(dir.path(), "third");
    std::fs::copy(&new_cert, &cert_file).unwrap();
    std::fs::copy(&new_key, &key_file).unwrap();
    assert_eq!(reload().await, (200, json!({"reloaded": ["tls"]})));
    assert!(handshake_with_pin(tls_addr, third_pin).await);
    assert!(!handshake_with_pin(tls_addr, second_pin).await);

    // Plain Stratum on the TLS port gets no answer, only a closed connection.
    let mut plain = Framed::new(
        TcpStream::connect(tls_addr).await.unwrap(),
        StratumCodec::new(1 << 20),
    );
    plain
        .send(
            &Message::from_value(&json!({"id": 1, "method": "mining.subscribe", "params": []}))
                .unwrap(),
        )
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(15), plain.next())
        .await
        .unwrap();
    assert!(!matches!(answer, Some(Ok(Ok(_)))), "{answer:?}");
    pool.stop().await;
}

type Conn = Framed<TcpStream, StratumCodec>;

/// A connection from loopback address `source` that first writes `preamble`.
async fn connect_from(source: Ipv4Addr, port: u16, preamble: &[u8]) -> Conn {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0)).unwrap();
    let mut stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    stream.write_all(preamble).await.unwrap();
    Framed::new(stream, StratumCodec::new(1 << 20))
}

/// Subscribes; the result, or `None` when the pool closed the connection instead.
async fn subscribe(conn: &mut Conn) -> Option<Value> {
    let msg = Message::from_value(
        &json!({"id": 1, "method": "mining.subscribe", "params": ["proxy-test/1"]}),
    )
    .unwrap();
    if conn.send(&msg).await.is_err() {
        return None;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(15), conn.next()).await {
            Ok(Some(Ok(Ok(m)))) => {
                let v = m.to_value();
                if v["id"] == json!(1) {
                    return Some(v);
                }
            }
            Ok(Some(Ok(Err(_)))) => continue, // an error line about the PROXY line
            Ok(None) | Ok(Some(Err(_))) => return None,
            Err(_) => panic!("neither an answer nor a close in 15 s"),
        }
    }
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 3333\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&client);
    h.extend_from_slice(&[127, 0, 0, 1, 0x9c, 0x40, 0x0d, 0x05]);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_gives_limits_the_miners_address() {
    let pair = RegtestPair::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(
        Mode::Solo,
        vec![node_config(pair.node(0))],
        None,
        dir.path(),
    );
    cfg.limits.connections_per_ip = 2;
    cfg.stratum.proxy_protocol_from = vec!["127.0.0.9/32".into()];
    let pool = TestPool::start(cfg).await;
    let port = pool.port();
    let proxy = Ipv4Addr::new(127, 0, 0, 9);

    // Two miners behind the proxy from one address fill that address's quota ...
    let mut a = connect_from(proxy, port, &v1("203.0.113.7")).await;
    let mut b = connect_from(proxy, port, &v2([203, 0, 113, 7])).await;
    assert!(subscribe(&mut a).await.unwrap()["result"].is_array());
    assert!(subscribe(&mut b).await.unwrap()["result"].is_array());
    // ... so a third from it is refused, though the proxy itself has three connections ...
    let mut c = connect_from(proxy, port, &v1("203.0.113.7")).await;
    assert_eq!(subscribe(&mut c).await, None, "over the per-address limit");
    // ... while other miners behind the same proxy are served.
    for (i, preamble) in [v1("203.0.113.8"), v2([203, 0, 113, 9]), v1("203.0.113.10")]
        .iter()
        .enumerate()
    {
        let mut other = connect_from(proxy, port, preamble).await;
        assert!(subscribe(&mut other).await.is_some(), "miner {i}");
    }
    // The proxy must send a header: a bare Stratum line from it is refused.
    let mut bare = connect_from(proxy, port, b"").await;
    assert_eq!(subscribe(&mut bare).await, None);
    // A malformed header likewise.
    let mut bad = connect_from(proxy, port, b"PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n").await;
    assert_eq!(subscribe(&mut bad).await, None);
    // Anyone else cannot claim an address: the header is just a bad line from them, and
    // their own address counts (203.0.113.7 is full, 127.0.0.10 is not).
    let mut direct = connect_from(Ipv4Addr::new(127, 0, 0, 10), port, &v1("203.0.113.7")).await;
    assert!(subscribe(&mut direct).await.unwrap()["result"].is_array());
    assert!(pool.running.stats.snapshot().refused >= 1);
    pool.stop().await;
}
