//! The Stratum v1 client session as a state machine with no IO and no clock.
//!
//! Feed it the pool's messages ([`Session::handle`]) and the engine's solutions
//! ([`Session::submit`]); take what to send ([`Session::poll_transmit`]) and what happened
//! ([`Session::poll_event`]). The async driver in `client/mod.rs` is a thin loop around it,
//! and the tests drive it with literal lines.
//!
//! Behaviour pools expect (cgminer, cpuminer and ASIC firmware do the same):
//! - configure, subscribe and authorize are pipelined at connect;
//! - `mining.set_difficulty` applies from the next `mining.notify`, not to the current job;
//! - a notify replaces the work at once (`clean_jobs` or not), so stale work stops within a
//!   batch of the engine;
//! - submits carry the rolled version bits when the pool granted version rolling.

use std::collections::{HashMap, VecDeque};

use protocol::stratum::{
    Authorize, Configure, ConfigureResult, Id, Message, Method, Notify, Reconnect, Response,
    StratumError, Submit, Subscribe, SubscribeResult,
};
use protocol::{BlockHeader, Difficulty, Target};
use serde_json::{Value, json};

use crate::engine::{Extranonce, Found, Work};

/// What the session needs from the command line.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Worker name (`-u`).
    pub user: String,
    /// Password (`-p`).
    pub password: String,
    /// Our name and version, sent in subscribe.
    pub agent: String,
    /// `--suggest-diff`.
    pub suggest_difficulty: Option<f64>,
    /// Ask for version rolling (BIP 310) with this mask; `None` to not ask.
    pub version_rolling_mask: Option<u32>,
    /// Extranonce2 values this engine may use: `(first, count)`; `None` for all of them.
    pub extranonce2_range: Option<(u64, u64)>,
}

/// What [`Session::submit`] did with a solution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Sent as a share.
    Share,
    /// Sent, and it is a block: stop hashing this job (the pool moves to the next block).
    Block,
    /// Dropped quietly: a block was already found on this job.
    AfterBlock,
    /// Dropped: this connection no longer has the job.
    UnknownJob,
}

/// Something the driver or the user should know about.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// New work for the engine (replaces the current work).
    Work(Box<Work>),
    /// Subscribed: the pool gave its extranonce.
    Subscribed {
        /// The extranonce1 the pool gave.
        extranonce1: Vec<u8>,
        /// The extranonce2 size.
        extranonce2_size: usize,
    },
    /// The worker is authorized.
    Authorized,
    /// The pool refused the worker.
    AuthorizationFailed(String),
    /// The pool set a new difficulty (used from the next job).
    Difficulty(Difficulty),
    /// The pool granted version rolling with this mask.
    VersionRolling(u32),
    /// A share was accepted.
    Accepted {
        /// Its job.
        job_id: String,
        /// The difficulty it was submitted at.
        difficulty: Difficulty,
        /// The engine worker that found it.
        worker: usize,
    },
    /// A share was rejected.
    Rejected {
        /// Its job.
        job_id: String,
        /// The engine worker that found it.
        worker: usize,
        /// The pool's reason.
        reason: String,
        /// Whether the reason is staleness (job unknown or outdated).
        stale: bool,
    },
    /// `client.show_message`.
    ShowMessage(String),
    /// `client.reconnect`: the driver decides whether to follow it.
    Reconnect(Reconnect),
    /// The pool sent something unusable; the driver logs it (and may reconnect).
    Protocol(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    ExtranonceSubscribe,
    SuggestDifficulty,
    Submit {
        job_id: String,
        difficulty: Difficulty,
        worker: usize,
    },
}

struct CurrentJob {
    notify: Notify,
    difficulty: Difficulty,
}

/// One connection's client state.
pub struct Session {
    cfg: SessionConfig,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    extranonce1: Option<Vec<u8>>,
    extranonce2_size: usize,
    session_id: Option<String>,
    difficulty: Difficulty,
    version_mask: u32,
    job: Option<CurrentJob>,
    /// Job ids this session was sent, newest last (solutions for other jobs are dropped).
    recent_jobs: VecDeque<String>,
    /// Jobs on which a block was found: the pool moves to the next block, so further
    /// solutions of these jobs are dropped quietly (on regtest they come by the thousand).
    solved_jobs: VecDeque<String>,
    authorized: bool,
    out: VecDeque<Message>,
    events: VecDeque<Event>,
}

impl Session {
    /// A session that will resume `session_id` (the previous extranonce1) if the pool
    /// allows it. The opening requests are queued at once.
    pub fn new(cfg: SessionConfig, session_id: Option<String>) -> Session {
        let mut s = Session {
            cfg,
            next_id: 1,
            pending: HashMap::new(),
            extranonce1: None,
            extranonce2_size: 0,
            session_id,
            difficulty: Difficulty::ONE,
            version_mask: 0,
            job: None,
            recent_jobs: VecDeque::new(),
            solved_jobs: VecDeque::new(),
            authorized: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        if let Some(mask) = s.cfg.version_rolling_mask {
            let mut params = serde_json::Map::new();
            params.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
            params.insert("version-rolling.min-bit-count".into(), json!(2));
            s.request(
                Method::Configure(Configure {
                    extensions: vec!["version-rolling".into()],
                    params,
                }),
                Pending::Configure,
            );
        }
        let subscribe = Subscribe {
            user_agent: Some(s.cfg.agent.clone()),
            session_id: s.session_id.clone(),
        };
        s.request(Method::Subscribe(subscribe), Pending::Subscribe);
        let auth = Authorize {
            user: s.cfg.user.clone(),
            password: Some(s.cfg.password.clone()),
        };
        s.request(Method::Authorize(auth), Pending::Authorize);
        s
    }

    fn request(&mut self, method: Method, pending: Pending) {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        self.out.push_back(Message::request(id, method));
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The extranonce1 to resume with on the next connection.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Whether subscribe and authorize both succeeded.
    pub fn is_ready(&self) -> bool {
        self.authorized && self.extranonce1.is_some()
    }

    /// The difficulty the next job will use.
    pub fn difficulty(&self) -> Difficulty {
        self.difficulty
    }

    /// Handles one message from the pool.
    pub fn handle(&mut self, msg: Message) {
        match msg {
            Message::Response(r) => self.handle_response(r),
            Message::Request { id, method } => self.handle_request(id, method),
        }
    }

    fn handle_response(&mut self, r: Response) {
        let Id::Num(n) = &r.id else {
            self.events.push_back(Event::Protocol(format!(
                "reply with a non-numeric id {:?}",
                r.id
            )));
            return;
        };
        let Some(pending) = n.as_u64().and_then(|id| self.pending.remove(&id)) else {
            self.events
                .push_back(Event::Protocol(format!("reply to unknown request {n}")));
            return;
        };
        let refused = match (&r.error, &r.result) {
            (Some(e), _) => Some(e.to_string()),
            (None, Value::Bool(false)) => Some("refused".to_string()),
            _ => None,
        };
        match pending {
            Pending::Configure => match ConfigureResult::from_value(&r.result) {
                Ok(res) if refused.is_none() => {
                    if let (Some(granted), Some(asked)) =
                        (res.version_rolling_mask, self.cfg.version_rolling_mask)
                    {
                        self.version_mask = granted & asked;
                        self.events
                            .push_back(Event::VersionRolling(self.version_mask));
                    }
                }
                // A pool without BIP 310 answers with an error: mine without rolling.
                _ => self.version_mask = 0,
            },
            Pending::Subscribe => match (refused, SubscribeResult::from_value(&r.result)) {
                (None, Ok(sub)) => {
                    self.session_id = Some(hex::encode(&sub.extranonce1));
                    self.extranonce1 = Some(sub.extranonce1.clone());
                    self.extranonce2_size = sub.extranonce2_size;
                    self.events.push_back(Event::Subscribed {
                        extranonce1: sub.extranonce1,
                        extranonce2_size: sub.extranonce2_size,
                    });
                    // Ask for extranonce changes; pools that do not know it answer an error,
                    // which is harmless.
                    self.request(Method::ExtranonceSubscribe, Pending::ExtranonceSubscribe);
                    if let Some(d) = self.cfg.suggest_difficulty.and_then(Difficulty::new) {
                        self.request(Method::SuggestDifficulty(d), Pending::SuggestDifficulty);
                    }
                }
                (Some(reason), _) => self
                    .events
                    .push_back(Event::Protocol(format!("subscribe refused: {reason}"))),
                (None, Err(e)) => self.events.push_back(Event::Protocol(e.to_string())),
            },
            Pending::Authorize => match refused {
                None => {
                    self.authorized = true;
                    self.events.push_back(Event::Authorized);
                }
                Some(reason) => self.events.push_back(Event::AuthorizationFailed(reason)),
            },
            Pending::Submit {
                job_id,
                difficulty,
                worker,
            } => match &r.error {
                None if r.result == Value::Bool(true) => {
                    self.events.push_back(Event::Accepted {
                        job_id,
                        difficulty,
                        worker,
                    });
                }
                error => {
                    let (reason, code) = match error {
                        Some(e) => (e.message.clone(), Some(e.code)),
                        None => ("rejected".to_string(), None),
                    };
                    let lower = reason.to_ascii_lowercase();
                    let stale = code == Some(StratumError::JOB_NOT_FOUND)
                        || lower.contains("stale")
                        || lower.contains("job not found");
                    self.events.push_back(Event::Rejected {
                        job_id,
                        worker,
                        reason,
                        stale,
                    });
                }
            },
            Pending::ExtranonceSubscribe | Pending::SuggestDifficulty => {}
        }
    }

    fn handle_request(&mut self, id: Id, method: Method) {
        match method {
            Method::Notify(notify) => {
                if notify.clean_jobs {
                    self.recent_jobs.clear();
                }
                self.recent_jobs.push_back(notify.job_id.clone());
                if self.recent_jobs.len() > 16 {
                    self.recent_jobs.pop_front();
                }
                self.job = Some(CurrentJob {
                    notify,
                    difficulty: self.difficulty,
                });
                self.emit_work();
            }
            Method::SetDifficulty(d) => {
                self.difficulty = d;
                self.events.push_back(Event::Difficulty(d));
            }
            Method::SetExtranonce(se) => {
                self.extranonce1 = Some(se.extranonce1);
                self.extranonce2_size = se.extranonce2_size;
                // The current job's coinbase changes with the extranonce: rebuild the work.
                self.emit_work();
            }
            Method::SetVersionMask(mask) => {
                self.version_mask = mask & self.cfg.version_rolling_mask.unwrap_or(0);
                self.events
                    .push_back(Event::VersionRolling(self.version_mask));
                self.emit_work();
            }
            Method::Reconnect(r) => self.events.push_back(Event::Reconnect(r)),
            Method::ShowMessage(m) => self.events.push_back(Event::ShowMessage(m)),
            Method::GetVersion => {
                if id != Id::Null {
                    self.out
                        .push_back(Message::result(id, json!(self.cfg.agent)));
                }
            }
            other => {
                // Requests we cannot serve get an error so the pool is not left waiting.
                let name = other.name().to_string();
                if id != Id::Null {
                    self.out.push_back(Message::error(
                        id,
                        StratumError::new(
                            StratumError::METHOD_NOT_FOUND,
                            format!("unsupported method {name}"),
                        ),
                    ));
                }
                self.events
                    .push_back(Event::Protocol(format!("ignored server method {name}")));
            }
        }
    }

    /// The engine work for the current job, if the session is subscribed.
    fn emit_work(&mut self) {
        let (Some(job), Some(extranonce1)) = (&self.job, &self.extranonce1) else {
            return;
        };
        let n = &job.notify;
        let all = if self.extranonce2_size >= 8 {
            u64::MAX
        } else {
            1u64 << (8 * self.extranonce2_size)
        };
        let (first, count) = self.cfg.extranonce2_range.unwrap_or((0, all));
        let target = job.difficulty.target();
        self.events.push_back(Event::Work(Box::new(Work {
            job_id: n.job_id.clone(),
            header: BlockHeader {
                version: n.version,
                prev_hash: n.prev_hash,
                merkle_root: protocol::Hash256::ZERO,
                time: n.ntime,
                bits: n.nbits,
                nonce: 0,
            },
            target,
            version_mask: self.version_mask,
            extranonce: Some(Extranonce {
                coinb1: n.coinb1.clone(),
                extranonce1: extranonce1.clone(),
                coinb2: n.coinb2.clone(),
                merkle_branch: n.merkle_branch.clone(),
                size: self.extranonce2_size,
                first,
                count: count.min(all.saturating_sub(first)),
            }),
        })));
    }

    /// Queues a solution for submission and says what it did. Solutions for recent
    /// jobs of this session are submitted even if a newer job exists (the pool decides if
    /// they are stale); solutions for jobs this session never saw, or that a clean notify
    /// voided, are dropped.
    pub fn submit(&mut self, found: &Found) -> Submitted {
        if self.solved_jobs.contains(&found.job_id) {
            return Submitted::AfterBlock;
        }
        let Some(job) = &self.job else {
            return Submitted::UnknownJob;
        };
        if !self.recent_jobs.contains(&found.job_id) {
            return Submitted::UnknownJob;
        }
        let block = Target::from_compact(found.header.bits).is_ok_and(|t| t.is_met_by(&found.hash));
        let difficulty = if job.notify.job_id == found.job_id {
            job.difficulty
        } else {
            self.difficulty
        };
        let version_bits =
            (self.version_mask != 0).then_some(found.header.version & self.version_mask);
        let submit = Submit {
            worker: self.cfg.user.clone(),
            job_id: found.job_id.clone(),
            extranonce2: found.extranonce2.clone(),
            ntime: found.header.time,
            nonce: found.header.nonce,
            version_bits,
        };
        self.request(
            Method::Submit(submit),
            Pending::Submit {
                job_id: found.job_id.clone(),
                difficulty,
                worker: found.worker,
            },
        );
        if block {
            self.solved_jobs.push_back(found.job_id.clone());
            if self.solved_jobs.len() > 16 {
                self.solved_jobs.pop_front();
            }
            return Submitted::Block;
        }
        Submitted::Share
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::stratum::codec::parse_line;

    fn cfg() -> SessionConfig {
        SessionConfig {
            user: "mtCp8FwtHbxPDnW5LL7wUepNyzZeLnDC6P.rig".into(),
            password: "x".into(),
            agent: "sha256d-miner/0.1".into(),
            suggest_difficulty: Some(0.5),
            version_rolling_mask: Some(0x1fffe000),
            extranonce2_range: None,
        }
    }

    fn feed(s: &mut Session, line: &str) {
        s.handle(parse_line(line.as_bytes()).unwrap());
    }

    fn sent(s: &mut Session) -> Vec<serde_json::Value> {
        std::iter::from_fn(|| s.poll_transmit())
            .map(|m| m.to_value())
            .collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    // The notify of the captured ckpool session (job 6b02666200000001).
    const NOTIFY: &str = r#"{"params":["6b02666200000001","3c78e7c0f707c5050bfd08e97355265abff542ba14824b17711512ae00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3a02db0000046266026b043c514b130c","0a636b706f6f6c2d6c6872132f636b706f6f6c2d6c68722d616e63686f722fffffffff0100f90295000000001976a9148b2b542e5e3649ec074d78f5df36ca37b9733f9088ac00000000",[],"20000000","207fffff","6b026662",true],"id":null,"method":"mining.notify"}"#;

    fn ready() -> Session {
        let mut s = Session::new(cfg(), None);
        let opening = sent(&mut s);
        assert_eq!(opening.len(), 3);
        assert_eq!(opening[0]["method"], "mining.configure");
        assert_eq!(opening[0]["params"][1]["version-rolling.mask"], "1fffe000");
        assert_eq!(opening[1]["method"], "mining.subscribe");
        assert_eq!(opening[2]["method"], "mining.authorize");
        feed(
            &mut s,
            r#"{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}"#,
        );
        feed(
            &mut s,
            r#"{"result":[[["mining.notify","6b026663"]],"6366026b",8],"id":2,"error":null}"#,
        );
        feed(&mut s, r#"{"result":true,"error":null,"id":3}"#);
        let ev = events(&mut s);
        assert_eq!(ev[0], Event::VersionRolling(0x1fffe000));
        assert!(matches!(
            ev[1],
            Event::Subscribed {
                extranonce2_size: 8,
                ..
            }
        ));
        assert_eq!(ev[2], Event::Authorized);
        let after = sent(&mut s);
        assert_eq!(after[0]["method"], "mining.extranonce.subscribe");
        assert_eq!(after[1]["method"], "mining.suggest_difficulty");
        assert_eq!(after[1]["params"][0], 0.5);
        assert!(s.is_ready());
        assert_eq!(s.session_id(), Some("6366026b"));
        s
    }

    #[test]
    fn difficulty_applies_from_the_next_job() {
        let mut s = ready();
        feed(
            &mut s,
            r#"{"params":[0.01],"id":null,"method":"mining.set_difficulty"}"#,
        );
        feed(&mut s, NOTIFY);
        let ev = events(&mut s);
        let Event::Work(w) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert!((w.target.difficulty() - 0.01).abs() < 1e-12);
        assert_eq!(w.version_mask, 0x1fffe000);
        assert_eq!(
            w.extranonce.as_ref().unwrap().extranonce1,
            hex::decode("6366026b").unwrap()
        );
        // A new difficulty does not touch the current job...
        feed(
            &mut s,
            r#"{"params":[4],"id":null,"method":"mining.set_difficulty"}"#,
        );
        assert_eq!(
            events(&mut s),
            vec![Event::Difficulty(Difficulty::new(4.0).unwrap())]
        );
        // ...the next job uses it.
        feed(
            &mut s,
            &NOTIFY.replace("6b02666200000001", "6b02666200000002"),
        );
        let Event::Work(w) = &events(&mut s)[0] else {
            panic!()
        };
        assert_eq!(w.target.difficulty(), 4.0);
    }

    #[test]
    fn submits_and_their_replies() {
        let mut s = ready();
        feed(
            &mut s,
            r#"{"params":[0.01],"id":null,"method":"mining.set_difficulty"}"#,
        );
        feed(&mut s, NOTIFY);
        let Event::Work(w) = events(&mut s).pop().unwrap() else {
            panic!()
        };
        let mut header = w.header;
        header.version = 0x2000_6000;
        header.nonce = 0x32396801;
        let found = Found {
            worker: 3,
            job_id: w.job_id.clone(),
            extranonce2: vec![0; 8],
            header,
            // Above the network target of the job: a share, not a block.
            hash: protocol::Hash256([0xff; 32]),
        };
        assert_eq!(s.submit(&found), Submitted::Share);
        let line = sent(&mut s).pop().unwrap();
        assert_eq!(line["method"], "mining.submit");
        assert_eq!(
            line["params"],
            json!([
                "mtCp8FwtHbxPDnW5LL7wUepNyzZeLnDC6P.rig",
                "6b02666200000001",
                "0000000000000000",
                "6b026662",
                "32396801",
                "00006000"
            ])
        );
        let id = line["id"].as_u64().unwrap();
        feed(
            &mut s,
            &format!(r#"{{"result":true,"error":null,"id":{id}}}"#),
        );
        assert_eq!(
            events(&mut s),
            vec![Event::Accepted {
                job_id: "6b02666200000001".into(),
                difficulty: Difficulty::new(0.01).unwrap(),
                worker: 3,
            }]
        );
        assert_eq!(s.submit(&found), Submitted::Share);
        let id = sent(&mut s).pop().unwrap()["id"].as_u64().unwrap();
        feed(
            &mut s,
            &format!(r#"{{"result":null,"error":[21,"Stale",null],"id":{id}}}"#),
        );
        assert_eq!(
            events(&mut s),
            vec![Event::Rejected {
                job_id: "6b02666200000001".into(),
                worker: 3,
                reason: "Stale".into(),
                stale: true
            }]
        );
        // A clean notify voids the old job: its solutions are dropped, not submitted.
        feed(&mut s, &NOTIFY.replace("6b02666200000001", "77"));
        events(&mut s);
        assert_eq!(s.submit(&found), Submitted::UnknownJob);
        assert!(sent(&mut s).is_empty());
        // A solution that is a block is sent once; the job's later solutions are dropped
        // quietly (the pool moves on to the next block).
        let on_77 = Found {
            job_id: "77".into(),
            ..found.clone()
        };
        let block = Found {
            hash: protocol::Hash256::ZERO,
            ..on_77.clone()
        };
        assert_eq!(s.submit(&block), Submitted::Block);
        assert_eq!(sent(&mut s).len(), 1);
        assert_eq!(s.submit(&on_77), Submitted::AfterBlock);
        assert!(sent(&mut s).is_empty());
    }

    #[test]
    fn server_requests_and_bad_replies() {
        let mut s = ready();
        feed(&mut s, NOTIFY);
        events(&mut s);
        feed(
            &mut s,
            r#"{"id":null,"method":"mining.set_extranonce","params":["aabbccdd",4]}"#,
        );
        let Event::Work(w) = &events(&mut s)[0] else {
            panic!()
        };
        let en = w.extranonce.as_ref().unwrap();
        assert_eq!(
            (en.extranonce1.clone(), en.size, en.count),
            (vec![0xaa, 0xbb, 0xcc, 0xdd], 4, 1 << 32)
        );
        feed(
            &mut s,
            r#"{"id":null,"method":"client.reconnect","params":["other.example",3334,5]}"#,
        );
        feed(
            &mut s,
            r#"{"id":null,"method":"client.show_message","params":["hello"]}"#,
        );
        feed(
            &mut s,
            r#"{"id":9,"method":"client.get_version","params":[]}"#,
        );
        feed(
            &mut s,
            r#"{"id":10,"method":"mining.frobnicate","params":[]}"#,
        );
        feed(&mut s, r#"{"id":99,"result":true,"error":null}"#);
        let ev = events(&mut s);
        assert!(matches!(&ev[0], Event::Reconnect(r) if r.port == Some(3334) && r.wait == Some(5)));
        assert_eq!(ev[1], Event::ShowMessage("hello".into()));
        assert!(matches!(&ev[2], Event::Protocol(m) if m.contains("mining.frobnicate")));
        assert!(matches!(&ev[3], Event::Protocol(m) if m.contains("unknown request")));
        let out = sent(&mut s);
        assert_eq!(out[0]["result"], "sha256d-miner/0.1");
        assert_eq!(out[1]["error"][0], StratumError::METHOD_NOT_FOUND);
    }

    #[test]
    fn refusals() {
        let mut s = Session::new(
            SessionConfig {
                version_rolling_mask: None,
                ..cfg()
            },
            Some("6366026b".into()),
        );
        let opening = sent(&mut s);
        assert_eq!(
            opening[0]["params"],
            json!(["sha256d-miner/0.1", "6366026b"])
        );
        feed(&mut s, r#"{"id":1,"result":null,"error":[20,"Busy",null]}"#);
        feed(&mut s, r#"{"id":2,"result":false,"error":null}"#);
        let ev = events(&mut s);
        assert!(matches!(&ev[0], Event::Protocol(m) if m.contains("Busy")));
        assert!(matches!(&ev[1], Event::AuthorizationFailed(_)));
        assert!(!s.is_ready());
    }
}
