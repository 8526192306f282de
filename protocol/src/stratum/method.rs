//! Stratum v1 methods: one variant per method this crate knows, with checked parameters,
//! and their positional-params encoding.

use serde_json::{Map, Value, json};

use crate::hash::Hash256;
use crate::hexfmt::decode_u32_be;
use crate::stratum::message::{MessageError, type_name};
use crate::stratum::work::{prevhash_from_stratum, prevhash_to_stratum};
use crate::target::{CompactTarget, Difficulty};

/// A method call with its parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// `mining.subscribe` (client to server).
    Subscribe(Subscribe),
    /// `mining.authorize`.
    Authorize(Authorize),
    /// `mining.submit`.
    Submit(Submit),
    /// `mining.extranonce.subscribe`.
    ExtranonceSubscribe,
    /// `mining.suggest_difficulty`.
    SuggestDifficulty(Difficulty),
    /// `mining.configure` (BIP 310).
    Configure(Configure),
    /// `mining.get_transactions` for a job id.
    GetTransactions(String),
    /// `mining.notify` (server to client).
    Notify(Notify),
    /// `mining.set_difficulty`.
    SetDifficulty(Difficulty),
    /// `mining.set_extranonce`.
    SetExtranonce(SetExtranonce),
    /// `mining.set_version_mask` (BIP 310).
    SetVersionMask(u32),
    /// `client.reconnect`.
    Reconnect(Reconnect),
    /// `client.show_message`.
    ShowMessage(String),
    /// `client.get_version`.
    GetVersion,
    /// A method this crate does not know, kept so it can be answered.
    Unknown {
        /// The method name.
        method: String,
        /// Its params as sent.
        params: Value,
    },
}

/// `mining.subscribe` params.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Subscribe {
    /// The miner's name and version.
    pub user_agent: Option<String>,
    /// A previous session's id (extranonce1) to resume.
    pub session_id: Option<String>,
}

/// `mining.authorize` params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorize {
    /// Worker name, often `address.worker`.
    pub user: String,
    /// Password (pools often read options from it).
    pub password: Option<String>,
}

/// `mining.submit` params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submit {
    /// Worker name.
    pub worker: String,
    /// Job id from the notify.
    pub job_id: String,
    /// Extranonce2 bytes.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Rolled version bits (BIP 310), when version rolling is on.
    pub version_bits: Option<u32>,
}

/// `mining.configure` params: extension names and their parameters.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Configure {
    /// Requested extensions, e.g. "version-rolling", "minimum-difficulty".
    pub extensions: Vec<String>,
    /// Extension parameters, e.g. "version-rolling.mask": "1fffe000".
    pub params: Map<String, Value>,
}

impl Configure {
    /// The requested version-rolling mask (`version-rolling.mask`), when asked for.
    pub fn version_rolling_mask(&self) -> Option<u32> {
        if !self.extensions.iter().any(|e| e == "version-rolling") {
            return None;
        }
        match self
            .params
            .get("version-rolling.mask")
            .and_then(Value::as_str)
        {
            Some(mask) => u32::from_str_radix(mask, 16).ok(),
            None => Some(u32::MAX),
        }
    }

    /// The requested minimum difficulty (`minimum-difficulty.value`), when asked for.
    pub fn minimum_difficulty(&self) -> Option<Difficulty> {
        if !self.extensions.iter().any(|e| e == "minimum-difficulty") {
            return None;
        }
        self.params
            .get("minimum-difficulty.value")
            .and_then(Value::as_f64)
            .and_then(Difficulty::new)
    }
}

/// `mining.notify` params: one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// Job id.
    pub job_id: String,
    /// Previous block hash, internal order (sent word-swapped).
    pub prev_hash: Hash256,
    /// Coinbase bytes before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase bytes after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch for the coinbase, internal order.
    pub merkle_branch: Vec<Hash256>,
    /// Block version.
    pub version: u32,
    /// Network target, compact.
    pub nbits: CompactTarget,
    /// Time to start from.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

/// `mining.set_extranonce` params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetExtranonce {
    /// New extranonce1.
    pub extranonce1: Vec<u8>,
    /// New extranonce2 size in bytes.
    pub extranonce2_size: usize,
}

/// `client.reconnect` params; every field is optional.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reconnect {
    /// Host to connect to (same host when absent).
    pub host: Option<String>,
    /// Port to connect to.
    pub port: Option<u16>,
    /// Seconds to wait first.
    pub wait: Option<u64>,
}

/// The static name of a known method, for error messages ("unknown" otherwise).
pub(crate) fn known_name(name: &str) -> &'static str {
    METHOD_NAMES
        .iter()
        .find(|n| **n == name)
        .copied()
        .unwrap_or("unknown method")
}

const METHOD_NAMES: &[&str] = &[
    "mining.subscribe",
    "mining.authorize",
    "mining.submit",
    "mining.extranonce.subscribe",
    "mining.suggest_difficulty",
    "mining.configure",
    "mining.get_transactions",
    "mining.notify",
    "mining.set_difficulty",
    "mining.set_extranonce",
    "mining.set_version_mask",
    "client.reconnect",
    "client.show_message",
    "client.get_version",
];

/// Positional params of one known method, with typed accessors that say which field is wrong.
struct Params<'a> {
    method: &'static str,
    items: &'a [Value],
}

impl<'a> Params<'a> {
    fn bad(&self, reason: impl Into<String>) -> MessageError {
        MessageError::BadParams {
            method: self.method,
            reason: reason.into(),
        }
    }

    fn get(&self, i: usize, field: &str) -> Result<&'a Value, MessageError> {
        self.items
            .get(i)
            .ok_or_else(|| self.bad(format!("missing {field} (param {})", i + 1)))
    }

    fn opt(&self, i: usize) -> Option<&'a Value> {
        self.items.get(i).filter(|v| !v.is_null())
    }

    fn str(&self, i: usize, field: &str) -> Result<&'a str, MessageError> {
        let v = self.get(i, field)?;
        v.as_str()
            .ok_or_else(|| self.bad(format!("{field} must be a string, got {}", type_name(v))))
    }

    fn opt_str(&self, i: usize, field: &str) -> Result<Option<String>, MessageError> {
        match self.opt(i) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(format!("{field} must be a string, got {}", type_name(v)))),
        }
    }

    fn hex_bytes(&self, i: usize, field: &str) -> Result<Vec<u8>, MessageError> {
        let s = self.str(i, field)?;
        hex::decode(s).map_err(|e| self.bad(format!("{field} is not hex: {e}")))
    }

    fn hex_u32(&self, i: usize, field: &str) -> Result<u32, MessageError> {
        let s = self.str(i, field)?;
        decode_u32_be(s).map_err(|e| self.bad(format!("{field} must be 8 hex digits: {e}")))
    }

    /// Version-rolling masks and bits: up to 8 hex digits (some firmware drops leading zeros).
    fn hex_u32_lenient(&self, s: &str, field: &str) -> Result<u32, MessageError> {
        if s.is_empty() || s.len() > 8 {
            return Err(self.bad(format!("{field} must be 1 to 8 hex digits")));
        }
        u32::from_str_radix(s, 16).map_err(|e| self.bad(format!("{field} is not hex: {e}")))
    }

    /// A positive, finite difficulty; a numeric string is accepted too.
    fn difficulty(&self, i: usize) -> Result<Difficulty, MessageError> {
        let v = self.get(i, "difficulty")?;
        let d = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        d.and_then(Difficulty::new)
            .ok_or_else(|| self.bad(format!("difficulty must be a number above zero, got {v}")))
    }

    fn bool(&self, i: usize, field: &str) -> Result<bool, MessageError> {
        let v = self.get(i, field)?;
        v.as_bool()
            .ok_or_else(|| self.bad(format!("{field} must be a boolean, got {}", type_name(v))))
    }
}

impl Method {
    /// The wire name.
    pub fn name(&self) -> &str {
        match self {
            Method::Subscribe(_) => "mining.subscribe",
            Method::Authorize(_) => "mining.authorize",
            Method::Submit(_) => "mining.submit",
            Method::ExtranonceSubscribe => "mining.extranonce.subscribe",
            Method::SuggestDifficulty(_) => "mining.suggest_difficulty",
            Method::Configure(_) => "mining.configure",
            Method::GetTransactions(_) => "mining.get_transactions",
            Method::Notify(_) => "mining.notify",
            Method::SetDifficulty(_) => "mining.set_difficulty",
            Method::SetExtranonce(_) => "mining.set_extranonce",
            Method::SetVersionMask(_) => "mining.set_version_mask",
            Method::Reconnect(_) => "client.reconnect",
            Method::ShowMessage(_) => "client.show_message",
            Method::GetVersion => "client.get_version",
            Method::Unknown { method, .. } => method,
        }
    }

    pub(crate) fn decode(name: &str, items: &[Value]) -> Result<Method, MessageError> {
        let p = Params {
            method: known_name(name),
            items,
        };
        Ok(match name {
            "mining.subscribe" => Method::Subscribe(Subscribe {
                user_agent: p.opt_str(0, "user agent")?,
                session_id: p.opt_str(1, "session id")?,
            }),
            "mining.authorize" => Method::Authorize(Authorize {
                user: p.str(0, "user")?.to_string(),
                password: p.opt_str(1, "password")?,
            }),
            "mining.submit" => Method::Submit(Submit {
                worker: p.str(0, "worker")?.to_string(),
                job_id: p.str(1, "job id")?.to_string(),
                extranonce2: p.hex_bytes(2, "extranonce2")?,
                ntime: p.hex_u32(3, "ntime")?,
                nonce: p.hex_u32(4, "nonce")?,
                version_bits: match p.opt_str(5, "version bits")? {
                    Some(s) => Some(p.hex_u32_lenient(&s, "version bits")?),
                    None => None,
                },
            }),
            "mining.extranonce.subscribe" => Method::ExtranonceSubscribe,
            "mining.suggest_difficulty" => Method::SuggestDifficulty(p.difficulty(0)?),
            "mining.configure" => {
                let names = p.get(0, "extension list")?;
                let extensions = names
                    .as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
                    .ok_or_else(|| p.bad("the extension list must be an array of strings"))?;
                let params = match p.opt(1) {
                    None => Map::new(),
                    Some(Value::Object(m)) => m.clone(),
                    Some(v) => {
                        return Err(p.bad(format!(
                            "extension params must be an object, got {}",
                            type_name(v)
                        )));
                    }
                };
                Method::Configure(Configure { extensions, params })
            }
            "mining.get_transactions" => Method::GetTransactions(p.str(0, "job id")?.to_string()),
            "mining.notify" => {
                let branch = p.get(4, "merkle branch")?;
                let merkle_branch = branch
                    .as_array()
                    .ok_or_else(|| p.bad("merkle branch must be an array"))?
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .and_then(|s| Hash256::from_internal_hex(s).ok())
                            .ok_or_else(|| p.bad("merkle branch entries must be 64 hex digits"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Method::Notify(Notify {
                    job_id: p.str(0, "job id")?.to_string(),
                    prev_hash: prevhash_from_stratum(p.str(1, "prevhash")?)
                        .map_err(|e| p.bad(format!("prevhash: {e}")))?,
                    coinb1: p.hex_bytes(2, "coinb1")?,
                    coinb2: p.hex_bytes(3, "coinb2")?,
                    merkle_branch,
                    version: p.hex_u32(5, "version")?,
                    nbits: CompactTarget(p.hex_u32(6, "nbits")?),
                    ntime: p.hex_u32(7, "ntime")?,
                    clean_jobs: p.bool(8, "clean_jobs")?,
                })
            }
            "mining.set_difficulty" => Method::SetDifficulty(p.difficulty(0)?),
            "mining.set_extranonce" => {
                let size = p.get(1, "extranonce2 size")?;
                Method::SetExtranonce(SetExtranonce {
                    extranonce1: p.hex_bytes(0, "extranonce1")?,
                    extranonce2_size: size
                        .as_u64()
                        .filter(|&n| n <= 255)
                        .ok_or_else(|| p.bad("extranonce2 size must be an integer 0..=255"))?
                        as usize,
                })
            }
            "mining.set_version_mask" => {
                Method::SetVersionMask(p.hex_u32_lenient(p.str(0, "mask")?, "mask")?)
            }
            "client.reconnect" => Method::Reconnect(Reconnect {
                host: p.opt_str(0, "host")?,
                port: match p.opt(1) {
                    None => None,
                    Some(v) => Some(
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                            .and_then(|n| u16::try_from(n).ok())
                            .ok_or_else(|| p.bad(format!("port must be 0..=65535, got {v}")))?,
                    ),
                },
                wait: match p.opt(2) {
                    None => None,
                    Some(v) => Some(
                        v.as_u64()
                            .ok_or_else(|| p.bad("wait must be a whole number of seconds"))?,
                    ),
                },
            }),
            "client.show_message" => Method::ShowMessage(p.str(0, "message")?.to_string()),
            "client.get_version" => Method::GetVersion,
            other => Method::Unknown {
                method: other.to_string(),
                params: Value::Array(items.to_vec()),
            },
        })
    }

    pub(crate) fn params(&self) -> Value {
        let hex32 = |n: u32| Value::String(format!("{n:08x}"));
        match self {
            Method::Subscribe(s) => {
                let mut v = Vec::new();
                if let Some(agent) = &s.user_agent {
                    v.push(json!(agent));
                    if let Some(session) = &s.session_id {
                        v.push(json!(session));
                    }
                } else if let Some(session) = &s.session_id {
                    v.extend([Value::Null, json!(session)]);
                }
                Value::Array(v)
            }
            Method::Authorize(a) => match &a.password {
                Some(pass) => json!([a.user, pass]),
                None => json!([a.user]),
            },
            Method::Submit(s) => {
                let mut v = vec![
                    json!(s.worker),
                    json!(s.job_id),
                    json!(hex::encode(&s.extranonce2)),
                    hex32(s.ntime),
                    hex32(s.nonce),
                ];
                if let Some(bits) = s.version_bits {
                    v.push(hex32(bits));
                }
                Value::Array(v)
            }
            Method::ExtranonceSubscribe | Method::GetVersion => json!([]),
            Method::SuggestDifficulty(d) | Method::SetDifficulty(d) => json!([d.get()]),
            Method::Configure(c) => json!([c.extensions, c.params]),
            Method::GetTransactions(job) => json!([job]),
            Method::Notify(n) => json!([
                n.job_id,
                prevhash_to_stratum(&n.prev_hash),
                hex::encode(&n.coinb1),
                hex::encode(&n.coinb2),
                n.merkle_branch
                    .iter()
                    .map(Hash256::to_internal_hex)
                    .collect::<Vec<_>>(),
                hex32(n.version),
                hex32(n.nbits.0),
                hex32(n.ntime),
                n.clean_jobs,
            ]),
            Method::SetExtranonce(s) => json!([hex::encode(&s.extranonce1), s.extranonce2_size]),
            Method::SetVersionMask(mask) => json!([hex32(*mask)]),
            Method::Reconnect(r) => {
                let mut v = Vec::new();
                if r.host.is_some() || r.port.is_some() || r.wait.is_some() {
                    v.push(r.host.as_ref().map_or(Value::Null, |h| json!(h)));
                }
                if r.port.is_some() || r.wait.is_some() {
                    v.push(r.port.map_or(Value::Null, |p| json!(p)));
                }
                if let Some(wait) = r.wait {
                    v.push(json!(wait));
                }
                Value::Array(v)
            }
            Method::ShowMessage(m) => json!([m]),
            Method::Unknown { params, .. } => params.clone(),
        }
    }
}
