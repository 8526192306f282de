//! The miner's hash rate over Stratum v1, Stratum V2 with an extended channel and Stratum
//! V2 with a standard channel, side by side in one run: the engine is the same, so any
//! difference is what the protocol client costs the hashing threads.
//!
//! ```text
//! cargo build --release -p miner && cargo bench -p benches --bench miner_protocols
//! ```
//!
//! `BENCH_SECONDS` per measurement (default 10), `BENCH_ROUNDS` (default 3; the protocols
//! take turns in each round, so that a noisy neighbour hits all of them alike),
//! `BENCH_THREADS` (default 2), `BENCH_DIFFICULTY` (share difficulty, default 0.002: a few
//! shares a second at tens of MH/s, so that submits and their answers are part of it).
//!
//! Why not against our pool: on regtest the share difficulty is capped at the network's,
//! where every other hash is a block, and the hash rate would measure block churn, not the
//! client. So each protocol is served here by a work server that does what a pool does for
//! a miner at a fixed difficulty on one block: one job (real coinbase layout, a mainnet
//! difficulty so no hash is a block), the share target, and an acknowledgement for every
//! share (which it does not validate: the pool's tests do that). The miner is the release
//! binary, run as a user runs it; its rate is read from its own API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Mainnet bits of block 800,000: no hash here is a block.
const BITS: u32 = 0x1705_3894;
const EXTRANONCE1: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
const EXTRANONCE2_SIZE: usize = 8;

/// A coinbase split around its 12 extranonce bytes (4 of the pool, 8 of the miner): a
/// real transaction layout (BIP 34 height, one P2WPKH output).
fn coinbase_parts() -> (Vec<u8>, Vec<u8>) {
    let mut coinb1 =
        hex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff");
    coinb1.push(16); // scriptSig: the 4-byte height push and the 12 extranonce bytes
    coinb1.extend(hex("0300350c"));
    let mut coinb2 =
        hex("ffffffff0100f2052a010000001600140000000000000000000000000000000000000000");
    coinb2.extend([0, 0, 0, 0]);
    (coinb1, coinb2)
}

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The kinds of connection measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    V1,
    V2Extended,
    V2Standard,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::V1 => "Stratum v1",
            Kind::V2Extended => "Stratum V2, extended channel",
            Kind::V2Standard => "Stratum V2, standard channel",
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let miner_bin = root.join("target/release/miner");
    if !miner_bin.exists() {
        eprintln!(
            "{} is missing: run `cargo build --release -p miner` first",
            miner_bin.display()
        );
        std::process::exit(1);
    }
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let threads: usize = env_or("BENCH_THREADS", 2);
    let difficulty: f64 = env_or("BENCH_DIFFICULTY", 0.002);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let kinds = [Kind::V1, Kind::V2Extended, Kind::V2Standard];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut shares: Vec<u64> = vec![0; kinds.len()];
    println!(
        "miner over each protocol: {threads} threads, {seconds} s a measurement, {rounds} rounds, share difficulty {difficulty}"
    );
    for round in 0..rounds {
        for (k, &kind) in kinds.iter().enumerate() {
            let (url, extra) = match kind {
                Kind::V1 => {
                    let addr = serve_v1(difficulty);
                    (format!("stratum+tcp://{addr}"), vec![])
                }
                Kind::V2Extended | Kind::V2Standard => {
                    let (addr, key) = runtime.block_on(serve_v2::start(difficulty));
                    let channel = if kind == Kind::V2Standard {
                        "standard"
                    } else {
                        "extended"
                    };
                    (
                        format!("stratum2+tcp://{addr}/{key}"),
                        vec!["--sv2-channel".to_string(), channel.to_string()],
                    )
                }
            };
            let (rate, accepted) = measure(&miner_bin, &url, &extra, threads, seconds);
            println!(
                "round {round}: {:<30} {:>8.2} MH/s ({accepted} shares accepted)",
                kind.name(),
                rate / 1e6
            );
            rates[k].push(rate);
            shares[k] += accepted;
        }
    }
    println!();
    println!("| connection | MH/s per round | best | best / v1's best | shares accepted |");
    println!("|---|---|---|---|---|");
    let best = |r: &[f64]| r.iter().copied().fold(0.0, f64::max);
    let v1_best = best(&rates[0]);
    for (k, kind) in kinds.iter().enumerate() {
        let each: Vec<String> = rates[k].iter().map(|r| format!("{:.2}", r / 1e6)).collect();
        println!(
            "| {} | {} | {:.2} | {:.3} | {} |",
            kind.name(),
            each.join(" / "),
            best(&rates[k]) / 1e6,
            best(&rates[k]) / v1_best,
            shares[k]
        );
    }
}

/// The miner's hash rate on `url` over `seconds`, after a warm-up in which it got its job
/// and had a share accepted (hashes counted by the miner itself, read from its API).
fn measure(
    bin: &std::path::Path,
    url: &str,
    extra: &[String],
    threads: usize,
    seconds: f64,
) -> (f64, u64) {
    let api = free_port();
    let child = Command::new(bin)
        .args(["-o", url, "-u", "bench.rig", "-p", "x", "-t"])
        .arg(threads.to_string())
        .args(["--api-bind", &format!("127.0.0.1:{api}")])
        .args(["--print-interval", "3600"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut miner = Running(child);
    let warm_until = Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(s) = summary(api)
            && s["results"]["shares_good"].as_u64().unwrap_or(0) >= 1
        {
            break s;
        }
        if Instant::now() > warm_until {
            let mut err = String::new();
            miner.stop();
            if let Some(mut e) = miner.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the miner on {url} had no share accepted in 60 s:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let t0 = Instant::now();
    let h0 = first["results"]["hashes_total"].as_u64().unwrap_or(0);
    let a0 = first["results"]["shares_good"].as_u64().unwrap_or(0);
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let last = summary(api).unwrap_or_else(|| panic!("the miner's API stopped answering"));
    let t1 = Instant::now();
    let h1 = last["results"]["hashes_total"].as_u64().unwrap_or(0);
    let a1 = last["results"]["shares_good"].as_u64().unwrap_or(0);
    let rejected = last["results"]["shares_total"].as_u64().unwrap_or(0) - a1;
    assert_eq!(rejected, 0, "{last}");
    miner.stop();
    ((h1 - h0) as f64 / (t1 - t0).as_secs_f64(), a1 - a0)
}

/// The miner process, stopped (Ctrl-C, then killed) when dropped.
struct Running(Child);

impl Running {
    fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("a free port: {e}"))
}

/// `GET /2/summary` from the miner's API, or None while it is not up.
fn summary(port: u16) -> Option<Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /2/summary HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (_, json) = body.split_once("\r\n\r\n")?;
    serde_json::from_str(json).ok()
}

/// A Stratum v1 work server on a free port: answers subscribe, configure and authorize,
/// sends the difficulty and one job, and accepts every share. One thread per connection.
fn serve_v1(difficulty: f64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = v1_connection(stream, difficulty);
            });
        }
    });
    addr
}

fn v1_connection(stream: TcpStream, difficulty: f64) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let (coinb1, coinb2) = coinbase_parts();
    let mut send = |v: Value| writeln!(out, "{v}");
    for line in BufReader::new(stream).lines() {
        let Ok(request) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        let id = request["id"].clone();
        match request["method"].as_str().unwrap_or("") {
            "mining.subscribe" => send(json!({
                "id": id,
                "result": [[["mining.notify", "1"]], ::hex::encode(EXTRANONCE1), EXTRANONCE2_SIZE],
                "error": null
            }))?,
            "mining.configure" => send(json!({
                "id": id,
                "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"},
                "error": null
            }))?,
            "mining.authorize" => {
                send(json!({"id": id, "result": true, "error": null}))?;
                send(
                    json!({"id": null, "method": "mining.set_difficulty", "params": [difficulty]}),
                )?;
                send(json!({
                    "id": null,
                    "method": "mining.notify",
                    "params": [
                        "1",
                        "4f1e8a2b00000000c0ffee00000000000000000000000000000000000000dead",
                        ::hex::encode(&coinb1),
                        ::hex::encode(&coinb2),
                        [],
                        "20000000",
                        format!("{BITS:08x}"),
                        format!("{:08x}", unix_now()),
                        true
                    ]
                }))?;
            }
            _ => send(json!({"id": id, "result": true, "error": null}))?,
        }
    }
    Ok(())
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A Stratum V2 work server (Noise, one channel per connection, extended or standard as
/// the miner asks), on a free port with a fresh authority key.
mod serve_v2 {
    use std::net::SocketAddr;
    use std::time::Duration;

    use binary_sv2::{B032Owned, B064KOwned, Seq0255Owned, Sv2OptionOwned, U256Owned};
    use common_messages_sv2::SetupConnectionSuccess;
    use mining_sv2::{
        NewExtendedMiningJobOwned, NewMiningJobOwned, OpenExtendedMiningChannelSuccessOwned,
        OpenStandardMiningChannelSuccessOwned, SetNewPrevHashOwned, SubmitSharesSuccess,
    };
    use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
    use protocol::Target;
    use protocol::sv2::keys::AuthorityKeys;
    use protocol::sv2::transport;
    use tokio::net::TcpListener;

    use super::{BITS, EXTRANONCE1, EXTRANONCE2_SIZE, coinbase_parts, unix_now};

    const CHANNEL: u32 = 1;
    const JOB: u32 = 1;

    /// Starts the server; its address and authority public key (as the miner's URL takes it).
    pub async fn start(difficulty: f64) -> (SocketAddr, String) {
        let keys = AuthorityKeys::generate(rand_bytes);
        let public = keys.public_text();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("address: {e}"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keys = keys.clone();
                tokio::spawn(async move {
                    let _ = connection(stream, &keys, difficulty).await;
                });
            }
        });
        (addr, public)
    }

    /// Key material from the system's random source.
    fn rand_bytes() -> [u8; 32] {
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
            .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
        b
    }

    async fn connection(
        mut stream: tokio::net::TcpStream,
        keys: &AuthorityKeys,
        difficulty: f64,
    ) -> Result<(), String> {
        let (mut reader, mut writer) = transport::accept(
            &mut stream,
            keys,
            Duration::from_secs(3600),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| e.to_string())?;
        let target = Target::from_difficulty(difficulty).map_err(|e| e.to_string())?;
        let (coinb1, coinb2) = coinbase_parts();
        loop {
            let message = reader.next(&mut stream).await.map_err(|e| e.to_string())?;
            let mut replies = Vec::new();
            match message {
                AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(_)) => {
                    replies.push(AnyMessageOwned::Common(
                        CommonMessagesOwned::SetupConnectionSuccess(SetupConnectionSuccess {
                            used_version: 2,
                            flags: 0,
                        }),
                    ));
                }
                AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannel(o)) => {
                    replies.push(mining(MiningOwned::OpenExtendedMiningChannelSuccess(
                        OpenExtendedMiningChannelSuccessOwned {
                            request_id: o.request_id,
                            channel_id: CHANNEL,
                            target: U256Owned::from(target.to_le_bytes()),
                            extranonce_size: EXTRANONCE2_SIZE as u16,
                            extranonce_prefix: b032(EXTRANONCE1.to_vec()),
                            group_channel_id: 0,
                        },
                    )));
                    replies.push(mining(MiningOwned::NewExtendedMiningJob(
                        NewExtendedMiningJobOwned {
                            channel_id: CHANNEL,
                            job_id: JOB,
                            min_ntime: Sv2OptionOwned::new(None),
                            version: 0x2000_0000,
                            version_rolling_allowed: true,
                            merkle_path: Seq0255Owned::try_from(Vec::<U256Owned>::new())
                                .map_err(|e| format!("{e:?}"))?,
                            coinbase_tx_prefix: B064KOwned::try_from(coinb1.clone())
                                .map_err(|e| format!("{e:?}"))?,
                            coinbase_tx_suffix: B064KOwned::try_from(coinb2.clone())
                                .map_err(|e| format!("{e:?}"))?,
                        },
                    )));
                    replies.push(prev_hash());
                }
                AnyMessageOwned::Mining(MiningOwned::OpenStandardMiningChannel(o)) => {
                    replies.push(mining(MiningOwned::OpenStandardMiningChannelSuccess(
                        OpenStandardMiningChannelSuccessOwned {
                            request_id: o.request_id,
                            channel_id: CHANNEL,
                            target: U256Owned::from(target.to_le_bytes()),
                            extranonce_prefix: b032(EXTRANONCE1.to_vec()),
                            group_channel_id: 0,
                        },
                    )));
                    replies.push(mining(MiningOwned::NewMiningJob(NewMiningJobOwned {
                        channel_id: CHANNEL,
                        job_id: JOB,
                        min_ntime: Sv2OptionOwned::new(None),
                        version: 0x2000_0000,
                        merkle_root: U256Owned::from([0x5a; 32]),
                    })));
                    replies.push(prev_hash());
                }
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(s)) => {
                    replies.push(accepted(s.sequence_number));
                }
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesStandard(s)) => {
                    replies.push(accepted(s.sequence_number));
                }
                _ => {}
            }
            for reply in replies {
                writer
                    .send(&mut stream, reply)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }

    fn mining(m: MiningOwned) -> AnyMessageOwned {
        AnyMessageOwned::Mining(m)
    }

    fn b032(bytes: Vec<u8>) -> B032Owned {
        B032Owned::try_from(bytes).unwrap_or_else(|_| unreachable!("4 bytes"))
    }

    fn prev_hash() -> AnyMessageOwned {
        mining(MiningOwned::SetNewPrevHash(SetNewPrevHashOwned {
            channel_id: CHANNEL,
            job_id: JOB,
            prev_hash: U256Owned::from([0x4f; 32]),
            min_ntime: unix_now(),
            nbits: BITS,
        }))
    }

    fn accepted(sequence: u32) -> AnyMessageOwned {
        mining(MiningOwned::SubmitSharesSuccess(SubmitSharesSuccess {
            channel_id: CHANNEL,
            last_sequence_number: sequence,
            new_submits_accepted_count: 1,
            new_shares_sum: 1,
        }))
    }
}
