//! Stratum v1 messages, typed.
//!
//! A line is either a request (a `method` with `params` and an `id`; a notification is a
//! request whose id is null) or a response (`result` and `error` for an `id`). Methods this
//! crate knows decode to their own variant with checked fields; any other method decodes to
//! [`Method::Unknown`] so a server can answer it with an error instead of dropping the
//! connection. Responses always carry `"error": null` or the triple `[code, message, null]`.

use serde_json::{Map, Number, Value, json};

use crate::stratum::method::{Method, known_name};

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

    /// The id of a line that looks like a request (an object with a `method` key and a
    /// non-null id), even when the rest of it cannot be decoded.
    pub fn of_request(value: &Value) -> Option<Id> {
        let obj = value.as_object()?;
        if !obj.contains_key("method") {
            return None;
        }
        match Id::from_value(obj.get("id")) {
            Ok(Id::Null) | Err(_) => None,
            Ok(id) => Some(id),
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

    /// The error triple `[code, message, null]`.
    pub(crate) fn to_value(&self) -> Value {
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

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn value_text(v: &Value) -> String {
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
