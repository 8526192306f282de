//! A small blocking JSON-RPC 1.0 client for bitcoind: solo mining runs it on its own
//! threads (long polls block), and the test kit uses it to drive regtest nodes.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// A failed RPC call.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The HTTP request did not complete (connection refused, timeout).
    #[error("RPC {method} to {url}: {detail}")]
    Transport {
        /// The method called.
        method: String,
        /// The node's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The node answered with an error object.
    #[error("RPC {method} failed: {message} (code {code})")]
    Node {
        /// The method called.
        method: String,
        /// bitcoind's error code (e.g. -10 "downloading blocks", -9 "not connected").
        code: i64,
        /// bitcoind's message.
        message: String,
    },
    /// The reply was not a JSON-RPC reply.
    #[error("RPC {method}: unexpected reply (HTTP {status}): {body}")]
    BadReply {
        /// The method called.
        method: String,
        /// HTTP status.
        status: u16,
        /// The body, or what could be read of it.
        body: String,
    },
}

impl RpcError {
    /// The node's error code, when the node answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Node { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A JSON-RPC client with basic auth.
#[derive(Clone)]
pub struct RpcClient {
    url: String,
    auth: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    /// A client for `url` (e.g. `http://127.0.0.1:18443/`) with a user and password.
    pub fn new(url: impl Into<String>, user: &str, password: &str) -> Self {
        Self::with_timeout(url, user, password, Duration::from_secs(60))
    }

    /// The same with a timeout per call (long polls need minutes).
    pub fn with_timeout(
        url: impl Into<String>,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        RpcClient {
            url: url.into(),
            auth: format!("Basic {token}"),
            agent,
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls `method` with positional `params` and returns its result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let body = json!({"jsonrpc": "1.0", "id": "testkit", "method": method, "params": params});
        let transport = |detail: String| RpcError::Transport {
            method: method.to_string(),
            url: self.url.clone(),
            detail,
        };
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.auth)
            .send_json(&body)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let bad = || RpcError::BadReply {
            method: method.to_string(),
            status,
            body: text.chars().take(300).collect(),
        };
        let reply: Value = serde_json::from_str(&text).map_err(|_| bad())?;
        match reply.get("error") {
            Some(Value::Null) | None => reply.get("result").cloned().ok_or_else(bad),
            Some(err) => Err(RpcError::Node {
                method: method.to_string(),
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
        }
    }
}
