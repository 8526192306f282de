//! JSON-RPC to the nodes: one [`Node`] per configured endpoint, with basic auth or the
//! node's cookie file.
//!
//! Calls run on tokio's blocking pool (ureq is a blocking client): a long poll holds one
//! blocking thread for up to its timeout and never a runtime worker. The cookie is read
//! again after a 401, because a restarted node writes a new one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::config::NodeConfig;

/// A failed call.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NodeError {
    /// No answer: refused, reset, timed out.
    #[error("{node}: {method}: {detail}")]
    Transport {
        /// The node's URL.
        node: String,
        /// The method.
        method: String,
        /// What went wrong.
        detail: String,
    },
    /// The node answered with an error object.
    #[error("{node}: {method} failed: {message} (code {code})")]
    Rpc {
        /// The node's URL.
        node: String,
        /// The method.
        method: String,
        /// The node's code (-9 not connected, -10 downloading blocks, -8 bad parameter...).
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The answer was not JSON-RPC (a proxy page, a wrong port, bad credentials).
    #[error("{node}: {method}: unexpected reply (HTTP {status}): {body}")]
    BadReply {
        /// The node's URL.
        node: String,
        /// The method.
        method: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl NodeError {
    /// The node's error code, when it answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            NodeError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

enum Auth {
    Basic(String),
    Cookie {
        path: PathBuf,
        header: Mutex<Option<String>>,
    },
}

/// One node's RPC endpoint. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    auth: Auth,
    agent: ureq::Agent,
    long_agent: ureq::Agent,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("url", &self.inner.url)
            .finish()
    }
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

impl Node {
    /// A node from its settings; `longpoll_timeout` bounds how long we wait for a long
    /// poll (the node holds it until its tip changes whatever we do), ordinary calls get
    /// 30 seconds.
    pub fn new(config: &NodeConfig, longpoll_timeout: Duration) -> Node {
        let auth = match (&config.user, &config.password, &config.cookie_file) {
            (Some(user), Some(password), _) => Auth::Basic(basic(&format!("{user}:{password}"))),
            (_, _, Some(path)) => Auth::Cookie {
                path: path.clone(),
                header: Mutex::new(None),
            },
            // `PoolConfig::validate` refuses this; an empty header gets a clear 401.
            _ => Auth::Basic(String::new()),
        };
        let mut url = config.url.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        Node {
            inner: Arc::new(Inner {
                url,
                auth,
                agent: agent(Duration::from_secs(30)),
                long_agent: agent(longpoll_timeout),
            }),
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Calls `method` and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, NodeError> {
        self.spawn(method, params, false).await
    }

    /// A call that may take as long as the long-poll timeout.
    pub async fn call_long(&self, method: &str, params: Value) -> Result<Value, NodeError> {
        self.spawn(method, params, true).await
    }

    async fn spawn(&self, method: &str, params: Value, long: bool) -> Result<Value, NodeError> {
        let node = self.clone();
        let name = method.to_string();
        tokio::task::spawn_blocking(move || node.call_blocking(&name, &params, long))
            .await
            .unwrap_or_else(|e| {
                Err(NodeError::Transport {
                    node: self.inner.url.clone(),
                    method: method.to_string(),
                    detail: format!("RPC thread failed: {e}"),
                })
            })
    }

    fn auth_header(&self, fresh: bool) -> Result<String, String> {
        match &self.inner.auth {
            Auth::Basic(h) => Ok(h.clone()),
            Auth::Cookie { path, header } => {
                let mut cached = header.lock().unwrap_or_else(|p| p.into_inner());
                if fresh || cached.is_none() {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read cookie file {}: {e}", path.display()))?;
                    *cached = Some(basic(text.trim()));
                }
                Ok(cached.clone().unwrap_or_default())
            }
        }
    }

    fn call_blocking(&self, method: &str, params: &Value, long: bool) -> Result<Value, NodeError> {
        let (status, text) = match self.post(method, params, long, false)? {
            (401, _) if matches!(self.inner.auth, Auth::Cookie { .. }) => {
                self.post(method, params, long, true)?
            }
            reply => reply,
        };
        let bad = || NodeError::BadReply {
            node: self.inner.url.clone(),
            method: method.to_string(),
            status,
            body: text.chars().take(200).collect(),
        };
        let reply: Value = serde_json::from_str(&text).map_err(|_| bad())?;
        match reply.get("error") {
            None | Some(Value::Null) => reply.get("result").cloned().ok_or_else(bad),
            Some(error) => Err(NodeError::Rpc {
                node: self.inner.url.clone(),
                method: method.to_string(),
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            }),
        }
    }

    fn post(
        &self,
        method: &str,
        params: &Value,
        long: bool,
        fresh_auth: bool,
    ) -> Result<(u16, String), NodeError> {
        let transport = |detail: String| NodeError::Transport {
            node: self.inner.url.clone(),
            method: method.to_string(),
            detail,
        };
        let auth = self.auth_header(fresh_auth).map_err(transport)?;
        let body = json!({"jsonrpc": "1.0", "id": "pool", "method": method, "params": params});
        let agent = if long {
            &self.inner.long_agent
        } else {
            &self.inner.agent
        };
        let mut response = agent
            .post(&self.inner.url)
            .header("Authorization", &auth)
            .send_json(&body)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        Ok((status, text))
    }
}

/// Calls the first node that answers: a node that cannot be reached is skipped, an error
/// reply is returned as it is (every node would say the same).
pub async fn call_any(nodes: &[Node], method: &str, params: Value) -> Result<Value, NodeError> {
    let mut last = None;
    for node in nodes {
        match node.call(method, params.clone()).await {
            Err(e @ NodeError::Rpc { .. }) => return Err(e),
            Err(e) => last = Some(e),
            ok => return ok,
        }
    }
    Err(last.unwrap_or_else(|| NodeError::Transport {
        node: "-".into(),
        method: method.into(),
        detail: "no node configured".into(),
    }))
}
