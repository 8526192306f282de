//! A Stratum V2 miner for the end-to-end tests: the pool's own transport as initiator, the
//! Stratum Reference Implementation's messages, one or more extended channels, and shares
//! hashed on the CPU from what the pool sent (`protocol`'s merkle and header code).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use binary_sv2::{Str0255Owned, U256Owned};
use common_messages_sv2::{Protocol, SetupConnectionOwned};
use mining_sv2::{OpenExtendedMiningChannelOwned, SubmitSharesExtendedOwned};
use parsers_sv2::{AnyMessageOwned, CommonMessagesOwned, MiningOwned};
use protocol::header::BlockHeader;
use protocol::stratum::merkle_root;
use protocol::sv2::transport::{self, TransportError, Writer};
use protocol::{CompactTarget, Hash256, Target};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

/// SRI's example authority pair: what the reference translator's examples trust.
pub const AUTHORITY_SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";
pub const AUTHORITY_PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";

/// The authority public key, decoded.
pub fn authority() -> [u8; 32] {
    protocol::sv2::keys::parse_public(AUTHORITY_PUBLIC).unwrap()
}

/// A `[stratum.v2]` on a free loopback port with the example authority pair.
pub fn v2_config() -> pool::config::V2Config {
    pool::config::V2Config {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        authority_secret_key: Some(AUTHORITY_SECRET.into()),
        authority_secret_key_file: None,
        authority_public_key: Some(AUTHORITY_PUBLIC.into()),
        cert_validity_secs: 3600,
    }
}

/// One job of a channel, as the miner keeps it.
#[derive(Clone, Debug)]
pub struct V2Job {
    pub id: u32,
    pub version: u32,
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    pub branch: Vec<Hash256>,
    pub future: bool,
}

/// One extended channel.
#[derive(Clone, Debug)]
pub struct V2Channel {
    pub id: u32,
    pub extranonce_prefix: Vec<u8>,
    pub extranonce_size: usize,
    pub target: Target,
    pub jobs: Vec<V2Job>,
    pub active: Option<u32>,
    pub prev_hash: Hash256,
    pub bits: u32,
    pub ntime: u32,
    /// The next nonce to try on the active job.
    pub nonce: u32,
}

/// What came back for a share.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Accepted,
    Refused(String),
}

/// A connected V2 miner.
pub struct V2Miner {
    write: OwnedWriteHalf,
    writer: Writer,
    incoming: mpsc::Receiver<Result<AnyMessageOwned, TransportError>>,
    pub channels: BTreeMap<u32, V2Channel>,
    sequence: u32,
    /// Every message received, in order.
    pub received: Vec<AnyMessageOwned>,
}

fn text(s: &str) -> Str0255Owned {
    s.to_string().try_into().unwrap()
}

impl V2Miner {
    /// Connects and completes the handshake against `authority`.
    pub async fn connect(addr: SocketAddr, authority: [u8; 32]) -> Result<V2Miner, TransportError> {
        let mut stream = TcpStream::connect(addr).await?;
        let (mut reader, writer) =
            transport::connect(&mut stream, authority, Duration::from_secs(10)).await?;
        let (mut read, write) = stream.into_split();
        let (tx, incoming) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let next = reader.next(&mut read).await;
                let end = next.is_err();
                if tx.send(next).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(V2Miner {
            write,
            writer,
            incoming,
            channels: BTreeMap::new(),
            sequence: 0,
            received: Vec::new(),
        })
    }

    pub async fn send(&mut self, message: AnyMessageOwned) {
        let bytes = self.writer.encode(message).unwrap();
        // A pool that closed the connection shows in the next `recv`, as `None`.
        let _ = self.write.write_all(&bytes).await;
    }

    /// The next message (applied to the channels), or `None` when the pool closed.
    pub async fn recv(&mut self) -> Option<AnyMessageOwned> {
        let next = tokio::time::timeout(Duration::from_secs(30), self.incoming.recv())
            .await
            .expect("a message from the pool within 30 s");
        let message = next?.ok()?;
        self.apply(&message);
        self.received.push(message.clone());
        Some(message)
    }

    /// SetupConnection for the Mining Protocol with version rolling; panics unless it
    /// succeeds.
    pub async fn setup(&mut self) {
        self.send(AnyMessageOwned::Common(
            CommonMessagesOwned::SetupConnection(SetupConnectionOwned {
                protocol: Protocol::MiningProtocol,
                min_version: 2,
                max_version: 2,
                flags: 0b100,
                endpoint_host: text("127.0.0.1"),
                endpoint_port: 0,
                vendor: text("pool-tests"),
                hardware_version: text("cpu"),
                firmware: text("0"),
                device_id: text("v2-test"),
            }),
        ))
        .await;
        let answer = self.recv().await.expect("an answer to SetupConnection");
        assert!(
            matches!(
                answer,
                AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(_))
            ),
            "{answer:?}"
        );
    }

    /// Opens an extended channel for `user`; returns its id once it has work.
    pub async fn open(&mut self, user: &str, hash_rate: f32) -> u32 {
        self.send(AnyMessageOwned::Mining(
            MiningOwned::OpenExtendedMiningChannel(OpenExtendedMiningChannelOwned {
                request_id: 1,
                user_identity: text(user),
                nominal_hash_rate: hash_rate,
                max_target: U256Owned::from([0xff; 32]),
                min_extranonce_size: 4,
            }),
        ))
        .await;
        let mut id = None;
        loop {
            let message = self.recv().await.expect("the pool answers the channel");
            match &message {
                AnyMessageOwned::Mining(MiningOwned::OpenExtendedMiningChannelSuccess(s)) => {
                    id = Some(s.channel_id)
                }
                AnyMessageOwned::Mining(MiningOwned::OpenMiningChannelError(e)) => {
                    panic!("channel refused: {}", e.error_code.as_utf8_or_hex())
                }
                _ => {}
            }
            if let Some(id) = id
                && self.channels[&id].active.is_some()
            {
                return id;
            }
        }
    }

    fn apply(&mut self, message: &AnyMessageOwned) {
        let AnyMessageOwned::Mining(m) = message else {
            return;
        };
        match m {
            MiningOwned::OpenExtendedMiningChannelSuccess(s) => {
                let channel = V2Channel {
                    id: s.channel_id,
                    extranonce_prefix: s.extranonce_prefix.to_owned_bytes(),
                    extranonce_size: usize::from(s.extranonce_size),
                    target: Target::from_le_bytes(s.target.to_array()),
                    jobs: Vec::new(),
                    active: None,
                    prev_hash: Hash256([0; 32]),
                    bits: 0,
                    ntime: 0,
                    nonce: 0,
                };
                self.channels.insert(s.channel_id, channel);
            }
            MiningOwned::NewExtendedMiningJob(j) => {
                let Some(c) = self.channels.get_mut(&j.channel_id) else {
                    return;
                };
                let min_ntime = j.min_ntime.clone().into_inner();
                c.jobs.push(V2Job {
                    id: j.job_id,
                    version: j.version,
                    prefix: j.coinbase_tx_prefix.to_owned_bytes(),
                    suffix: j.coinbase_tx_suffix.to_owned_bytes(),
                    branch: j
                        .merkle_path
                        .iter()
                        .map(|h| Hash256(h.to_array()))
                        .collect(),
                    future: min_ntime.is_none(),
                });
                if let Some(ntime) = min_ntime {
                    c.active = Some(j.job_id);
                    c.ntime = ntime;
                    c.nonce = 0;
                }
            }
            MiningOwned::SetNewPrevHash(p) => {
                let Some(c) = self.channels.get_mut(&p.channel_id) else {
                    return;
                };
                c.jobs.retain(|j| j.id == p.job_id);
                c.active = Some(p.job_id);
                c.prev_hash = Hash256(p.prev_hash.to_array());
                c.bits = p.nbits;
                c.ntime = p.min_ntime;
                c.nonce = 0;
            }
            MiningOwned::SetTarget(t) => {
                if let Some(c) = self.channels.get_mut(&t.channel_id) {
                    c.target = Target::from_le_bytes(t.maximum_target.to_array());
                }
            }
            _ => {}
        }
    }

    /// Finds the next share on `channel`'s active job and submits it; returns what the
    /// pool answered and whether the share was a block candidate.
    pub async fn mine_one(&mut self, channel: u32) -> (Answer, bool) {
        self.try_mine_one(channel)
            .await
            .expect("an answer to the share")
    }

    /// Mines on `channel` until a share is not stale (on regtest a share is often a
    /// block, and the next one may race the new block's job); returns that answer.
    pub async fn mine_fresh(&mut self, channel: u32) -> Answer {
        for _ in 0..10 {
            match self.mine_one(channel).await.0 {
                Answer::Refused(code) if code == "stale-share" => continue,
                answer => return answer,
            }
        }
        panic!("ten stale shares in a row on channel {channel}")
    }

    /// Whether the pool asked this miner to reconnect.
    pub fn asked_to_reconnect(&self) -> bool {
        self.received.iter().any(|m| {
            matches!(
                m,
                AnyMessageOwned::Common(CommonMessagesOwned::Reconnect(_))
            )
        })
    }

    /// As [`V2Miner::mine_one`], or `None` once the pool closed the connection.
    pub async fn try_mine_one(&mut self, channel: u32) -> Option<(Answer, bool)> {
        let c = self.channels.get_mut(&channel).expect("an open channel");
        let job = c
            .jobs
            .iter()
            .find(|j| Some(j.id) == c.active)
            .expect("an active job")
            .clone();
        // The channel id in the extranonce keeps channels of one miner apart.
        let mut extranonce = vec![0u8; c.extranonce_size];
        extranonce[..4].copy_from_slice(&channel.to_le_bytes());
        let root = merkle_root(
            &job.prefix,
            &c.extranonce_prefix,
            &extranonce,
            &job.suffix,
            &job.branch,
        );
        let network = Target::from_compact(CompactTarget(c.bits)).unwrap();
        let (nonce, block) = loop {
            let nonce = c.nonce;
            c.nonce = c.nonce.wrapping_add(1);
            let hash = BlockHeader {
                version: job.version,
                prev_hash: c.prev_hash,
                merkle_root: root,
                time: c.ntime,
                bits: CompactTarget(c.bits),
                nonce,
            }
            .hash();
            if c.target.is_met_by(&hash) {
                break (nonce, network.is_met_by(&hash));
            }
        };
        self.sequence += 1;
        let sequence = self.sequence;
        let ntime = c.ntime;
        self.send(AnyMessageOwned::Mining(MiningOwned::SubmitSharesExtended(
            SubmitSharesExtendedOwned {
                channel_id: channel,
                sequence_number: sequence,
                job_id: job.id,
                nonce,
                ntime,
                version: job.version,
                extranonce: extranonce.try_into().unwrap(),
            },
        )))
        .await;
        loop {
            match self.recv().await? {
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesSuccess(s))
                    if s.last_sequence_number == sequence =>
                {
                    return Some((Answer::Accepted, block));
                }
                AnyMessageOwned::Mining(MiningOwned::SubmitSharesError(e))
                    if e.sequence_number == sequence =>
                {
                    return Some((Answer::Refused(e.error_code.as_utf8_or_hex()), block));
                }
                _ => {}
            }
        }
    }
}
