//! Stratum v1 messages, typed.
//!
//! A line is either a request (a `method` with `params` and an `id`; a notification is a
//! request whose id is null) or a response (`result` and `error` for an `id`). Methods this
//! crate knows decode to their own variant with checked fields; any other method decodes to
//! [`Method::Unknown`] so a server can answer it with an error instead of dropping the
//! connection. Responses always carry `"error": null` or the triple `[code, message, null]`.

use serde_json::{Map, Number, Value, json};

use crate::hash::Hash256;
use crate::hexfmt::decode_u32_be;
use crate::stratum::work::{prevhash_from_stratum, prevhash_to_stratum};
use crate::target::CompactTarget;

/// A JSON-RPC id: a number, a string, or null.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    /// A numeric id, kept as sent (integer or not).
    Num(Number),
    /// A string id.
    Str(String),
    /// Null (notifications), or an id the sender left out.
    Null,
}

impl From<u64> for Id {
    fn from(n: u64) -> Self {
        Id::Num(n.into())
    }
}

impl Id {
    fn to_value(&self) -> Value {
        match self {
            Id::Num(n) => Value::Number(n.clone()),
            Id::Str(s) => Value::String(s.clone()),
            Id::Null => Value::Null,
        }
    }

    fn from_value(v: Option<&Value>) -> Result<Id, MessageError> {
        match v {
            None | Some(Value::Null) => Ok(Id::Null),
            Some(Value::Number(n)) => Ok(Id::Num(n.clone())),
            Some(Value::String(s)) => Ok(Id::Str(s.clone())),
            Some(other) => Err(MessageError::BadId(type_name(other))),
        }
    }
}

/// One Stratum line.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request, or a notification when `id` is null.
    Request {
        /// The id the reply must carry.
        id: Id,
        /// The method and its parameters.
        method: Method,
    },
    /// A reply to a request.
    Response(Response),
}

/// A reply: a result, or an error.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The id of the request this answers.
    pub id: Id,
    /// The result (null when there is an error).
    pub result: Value,
    /// The error, if the request failed.
    pub error: Option<StratumError>,
}

/// The error triple `[code, message, data]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StratumError {
    /// Numeric code; see the associated constants.
    pub code: i64,
    /// Human-readable reason.
    pub message: String,
}

impl StratumError {
    /// Anything else (the catch-all of Stratum v1).
    pub const OTHER: i64 = 20;
    /// The job is unknown or stale.
    pub const JOB_NOT_FOUND: i64 = 21;
    /// The share was already submitted.
    pub const DUPLICATE_SHARE: i64 = 22;
    /// The share's hash is above the session's target.
    pub const LOW_DIFFICULTY: i64 = 23;
    /// The worker is not authorized.
    pub const UNAUTHORIZED: i64 = 24;
    /// The connection has not subscribed.
    pub const NOT_SUBSCRIBED: i64 = 25;
    /// Method not found (JSON-RPC's code, which most pools use for it).
    pub const METHOD_NOT_FOUND: i64 = -32601;

    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        StratumError {
            code,
            message: message.into(),
        }
    }

    fn to_value(&self) -> Value {
        json!([self.code, self.message, null])
    }

    /// Reads the triple, and the object and bare-string forms some servers send instead.
    fn from_value(v: &Value) -> Option<StratumError> {
        match v {
            Value::Null => None,
            Value::Array(items) => Some(StratumError {
                code: items.first().and_then(Value::as_i64).unwrap_or(Self::OTHER),
                message: items.get(1).map(value_text).unwrap_or_default(),
            }),
            Value::Object(obj) => Some(StratumError {
                code: obj
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or(Self::OTHER),
                message: obj.get("message").map(value_text).unwrap_or_default(),
            }),
            other => Some(StratumError {
                code: Self::OTHER,
                message: value_text(other),
            }),
        }
    }
}

impl std::fmt::Display for StratumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

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
    SuggestDifficulty(f64),
    /// `mining.configure` (BIP 310).
    Configure(Configure),
    /// `mining.get_transactions` for a job id.
    GetTransactions(String),
    /// `mining.notify` (server to client).
    Notify(Notify),
    /// `mining.set_difficulty`.
    SetDifficulty(f64),
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
    pub fn minimum_difficulty(&self) -> Option<f64> {
        if !self.extensions.iter().any(|e| e == "minimum-difficulty") {
            return None;
        }
        self.params
            .get("minimum-difficulty.value")
            .and_then(Value::as_f64)
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

/// The result of `mining.subscribe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    /// (method, subscription id) pairs, e.g. ("mining.notify", "ae6812eb4cd7735a").
    pub subscriptions: Vec<(String, String)>,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Size of extranonce2 in bytes.
    pub extranonce2_size: usize,
}

/// The result of `mining.configure`, as far as this software uses it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfigureResult {
    /// The mask the server granted for version rolling; `None` if refused or not asked.
    pub version_rolling_mask: Option<u32>,
    /// Whether the server accepted `minimum-difficulty`; `None` if not asked.
    pub minimum_difficulty: Option<bool>,
}

/// A line that is JSON but not a Stratum message we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The line is not a JSON object.
    #[error("a Stratum message must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// The id is neither a number, a string nor null.
    #[error("the id must be a number, a string or null, got {0}")]
    BadId(&'static str),
    /// Neither a `method` nor a `result`/`error`.
    #[error("the message has neither a method nor a result")]
    NeitherRequestNorResponse,
    /// `method` is not a string.
    #[error("the method must be a string, got {0}")]
    BadMethod(&'static str),
    /// The params of a known method are malformed.
    #[error("bad params for {method}: {reason}")]
    BadParams {
        /// The method.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A result that does not have the shape its method's result must have.
    #[error("bad result for {method}: {reason}")]
    BadResult {
        /// The method whose result it is.
        method: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Message {
    /// A request.
    pub fn request(id: impl Into<Id>, method: Method) -> Message {
        Message::Request {
            id: id.into(),
            method,
        }
    }

    /// A notification (a request with a null id).
    pub fn notification(method: Method) -> Message {
        Message::Request {
            id: Id::Null,
            method,
        }
    }

    /// A successful reply.
    pub fn result(id: Id, result: Value) -> Message {
        Message::Response(Response {
            id,
            result,
            error: None,
        })
    }

    /// An error reply.
    pub fn error(id: Id, error: StratumError) -> Message {
        Message::Response(Response {
            id,
            result: Value::Null,
            error: Some(error),
        })
    }

    /// Decodes a parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Message, MessageError> {
        let obj = value
            .as_object()
            .ok_or(MessageError::NotAnObject(type_name(value)))?;
        let id = Id::from_value(obj.get("id"))?;
        match obj.get("method") {
            Some(Value::String(name)) => {
                let empty = Vec::new();
                let params = match obj.get("params") {
                    None | Some(Value::Null) => &empty,
                    Some(Value::Array(items)) => items,
                    Some(other) => {
                        // Unknown methods keep whatever they carry; known ones need an array.
                        let method = Method::decode(name, &[]);
                        return match method {
                            Ok(Method::Unknown { method, .. }) => Ok(Message::Request {
                                id,
                                method: Method::Unknown {
                                    method,
                                    params: other.clone(),
                                },
                            }),
                            _ => Err(MessageError::BadParams {
                                method: known_name(name),
                                reason: format!(
                                    "params must be an array, got {}",
                                    type_name(other)
                                ),
                            }),
                        };
                    }
                };
                Ok(Message::Request {
                    id,
                    method: Method::decode(name, params)?,
                })
            }
            Some(other) => Err(MessageError::BadMethod(type_name(other))),
            None if obj.contains_key("result") || obj.contains_key("error") => {
                Ok(Message::Response(Response {
                    id,
                    result: obj.get("result").cloned().unwrap_or(Value::Null),
                    error: obj.get("error").and_then(StratumError::from_value),
                }))
            }
            None => Err(MessageError::NeitherRequestNorResponse),
        }
    }

    /// Encodes to a JSON value; `"id"` comes first, then method and params, or result
    /// and error.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        match self {
            Message::Request { id, method } => {
                obj.insert("id".into(), id.to_value());
                obj.insert("method".into(), Value::String(method.name().to_string()));
                obj.insert("params".into(), method.params());
            }
            Message::Response(r) => {
                obj.insert("id".into(), r.id.to_value());
                obj.insert("result".into(), r.result.clone());
                obj.insert(
                    "error".into(),
                    r.error.as_ref().map_or(Value::Null, StratumError::to_value),
                );
            }
        }
        Value::Object(obj)
    }
}

/// The static name of a known method, for error messages ("unknown" otherwise).
fn known_name(name: &str) -> &'static str {
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
    fn difficulty(&self, i: usize) -> Result<f64, MessageError> {
        let v = self.get(i, "difficulty")?;
        let d = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match d {
            Some(d) if d.is_finite() && d > 0.0 => Ok(d),
            _ => Err(self.bad(format!("difficulty must be a number above zero, got {v}"))),
        }
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

    fn decode(name: &str, items: &[Value]) -> Result<Method, MessageError> {
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

    fn params(&self) -> Value {
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
            Method::SuggestDifficulty(d) | Method::SetDifficulty(d) => json!([d]),
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

impl SubscribeResult {
    /// Encodes as `[[[method, id], ...], extranonce1, extranonce2_size]`.
    pub fn to_value(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, hex::encode(&self.extranonce1), self.extranonce2_size])
    }

    /// Decodes a subscribe result, including the flat `[method, id]` form some pools send.
    pub fn from_value(v: &Value) -> Result<SubscribeResult, MessageError> {
        let bad = |reason: &str| MessageError::BadResult {
            method: "mining.subscribe",
            reason: reason.to_string(),
        };
        let items = v.as_array().ok_or_else(|| bad("must be an array"))?;
        let pair = |p: &[Value]| {
            let text = |i: usize| p.get(i).map(value_text).unwrap_or_default();
            (text(0), text(1))
        };
        let subscriptions = match items.first() {
            Some(Value::Array(subs)) if subs.iter().all(Value::is_array) => subs
                .iter()
                .filter_map(Value::as_array)
                .map(|p| pair(p))
                .collect(),
            Some(Value::Array(flat)) => vec![pair(flat)],
            _ => return Err(bad("the first element must be the subscription list")),
        };
        let extranonce1 = items
            .get(1)
            .and_then(Value::as_str)
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| bad("extranonce1 must be a hex string"))?;
        let extranonce2_size = items
            .get(2)
            .and_then(Value::as_u64)
            .filter(|&n| n <= 255)
            .ok_or_else(|| bad("extranonce2 size must be an integer 0..=255"))?
            as usize;
        Ok(SubscribeResult {
            subscriptions,
            extranonce1,
            extranonce2_size,
        })
    }
}

impl ConfigureResult {
    /// Encodes as the BIP 310 result object.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        if let Some(mask) = self.version_rolling_mask {
            obj.insert("version-rolling".into(), Value::Bool(true));
            obj.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
        }
        if let Some(accepted) = self.minimum_difficulty {
            obj.insert("minimum-difficulty".into(), Value::Bool(accepted));
        }
        Value::Object(obj)
    }

    /// Decodes the BIP 310 result object.
    pub fn from_value(v: &Value) -> Result<ConfigureResult, MessageError> {
        let bad = |reason: &str| MessageError::BadResult {
            method: "mining.configure",
            reason: reason.to_string(),
        };
        let obj = v.as_object().ok_or_else(|| bad("must be an object"))?;
        let version_rolling_mask = match obj.get("version-rolling") {
            Some(Value::Bool(true)) => Some(
                obj.get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .and_then(|m| u32::from_str_radix(m, 16).ok())
                    .ok_or_else(|| bad("version-rolling.mask must be hex"))?,
            ),
            _ => None,
        };
        let minimum_difficulty = obj.get("minimum-difficulty").and_then(Value::as_bool);
        Ok(ConfigureResult {
            version_rolling_mask,
            minimum_difficulty,
        })
    }
}
