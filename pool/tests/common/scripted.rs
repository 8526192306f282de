//! A scripted Stratum v1 client for the end-to-end tests: the lines a miner sends, written
//! out, so a test can behave like someone else's firmware.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use protocol::stratum::{Message, Method, Notify, StratumCodec, share_header};
use protocol::{Hash256, Target};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

pub type Conn = Framed<TcpStream, StratumCodec>;

/// Below regtest's network difficulty (about 4.66e-10), so that half of all hashes are
/// shares that are not blocks and some are neither.
pub const SHARE_DIFFICULTY: f64 = 3e-10;

pub async fn connect(port: u16) -> Conn {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    Framed::new(s, StratumCodec::new(1 << 20))
}

pub async fn send(conn: &mut Conn, v: Value) {
    conn.send(&Message::from_value(&v).unwrap()).await.unwrap();
}

/// The next message, or `None` when the pool closed the connection.
pub async fn next(conn: &mut Conn) -> Option<Message> {
    match tokio::time::timeout(Duration::from_secs(20), conn.next()).await {
        Ok(Some(Ok(Ok(m)))) => Some(m),
        Ok(None) | Ok(Some(Err(_))) => None,
        Ok(Some(Ok(Err(e)))) => panic!("bad line from the pool: {e}"),
        Err(_) => panic!("nothing from the pool in 20 s"),
    }
}

/// Whether a new connection to `port` is served (not turned away by a ban): a subscribe
/// gets its answer.
pub async fn answered(port: u16) -> bool {
    let mut conn = connect(port).await;
    send(
        &mut conn,
        json!({"id": 1, "method": "mining.subscribe", "params": []}),
    )
    .await;
    matches!(next(&mut conn).await, Some(Message::Response(_)))
}

/// Reads until the reply to `id`, collecting notifies on the way.
pub async fn reply(conn: &mut Conn, id: u64, notifies: &mut Vec<Notify>) -> Value {
    loop {
        match next(conn).await.expect("connection open") {
            Message::Response(r) if r.id == id.into() => {
                return Message::Response(r).to_value();
            }
            Message::Request {
                method: Method::Notify(n),
                ..
            } => notifies.push(n),
            _ => {}
        }
    }
}

/// A scripted miner: subscribes, authorizes at a fixed share difficulty, finds shares by
/// brute force and submits them one at a time.
pub struct Miner {
    pub conn: Conn,
    pub user: String,
    pub extranonce1: Vec<u8>,
    pub notifies: Vec<Notify>,
    pub next_id: u64,
}

impl Miner {
    pub async fn open(port: u16, user: &str) -> Miner {
        Miner::open_as(port, user, "script/1").await
    }

    /// Opens with `agent` as the user agent.
    pub async fn open_as(port: u16, user: &str, agent: &str) -> Miner {
        let mut conn = connect(port).await;
        let mut notifies = Vec::new();
        send(
            &mut conn,
            json!({"id": 1, "method": "mining.subscribe", "params": [agent]}),
        )
        .await;
        let sub = reply(&mut conn, 1, &mut notifies).await;
        let extranonce1 = hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
        send(
            &mut conn,
            json!({"id": 2, "method": "mining.authorize", "params": [user, format!("d={SHARE_DIFFICULTY}")]}),
        )
        .await;
        assert_eq!(
            reply(&mut conn, 2, &mut notifies).await["result"],
            json!(true)
        );
        let mut m = Miner {
            conn,
            user: user.into(),
            extranonce1,
            notifies,
            next_id: 10,
        };
        m.job().await;
        m
    }

    /// The newest job (waits for one if none came yet).
    pub async fn job(&mut self) -> Notify {
        while self.notifies.is_empty() {
            if let Some(Message::Request {
                method: Method::Notify(n),
                ..
            }) = next(&mut self.conn).await
            {
                self.notifies.push(n);
            }
        }
        self.notifies.last().unwrap().clone()
    }

    pub fn hash(&self, n: &Notify, nonce: u32, ntime: u32) -> Hash256 {
        share_header(n, &self.extranonce1, &[0; 8], n.version, ntime, nonce).hash()
    }

    /// A nonce that is not a block and does (or does not) meet the share difficulty.
    pub fn nonce(&self, n: &Notify, meets: bool) -> u32 {
        let network = Target::from_compact(n.nbits).unwrap();
        let share = Target::from_difficulty(SHARE_DIFFICULTY).unwrap();
        (0..)
            .find(|&x| {
                let h = self.hash(n, x, n.ntime);
                !network.is_met_by(&h) && share.is_met_by(&h) == meets
            })
            .unwrap()
    }

    pub async fn submit(
        &mut self,
        n: &Notify,
        nonce: u32,
        ntime: u32,
        version_bits: Option<&str>,
    ) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut params = json!([
            self.user,
            n.job_id,
            "0000000000000000",
            format!("{ntime:08x}"),
            format!("{nonce:08x}")
        ]);
        if let Some(bits) = version_bits {
            params.as_array_mut().unwrap().push(json!(bits));
        }
        send(
            &mut self.conn,
            json!({"id": id, "method": "mining.submit", "params": params}),
        )
        .await;
        reply(&mut self.conn, id, &mut self.notifies).await
    }
}
