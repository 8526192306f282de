//! The pool's nodes: one [`Node`] per configured endpoint, calling the workspace's node
//! client (`noderpc`) on tokio's blocking pool, so a call (a long poll above all) holds a
//! blocking thread and never a runtime worker.

use std::time::Duration;

use noderpc::{Auth, Client, Endpoint};
use serde_json::Value;

use crate::config::NodeConfig;

/// A failed call (the workspace's one RPC error type).
pub use noderpc::RpcError as NodeError;

/// Ordinary calls' timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One node's RPC endpoint. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Node {
    client: Client,
    /// The same node with the long-poll timeout.
    long: Client,
}

impl NodeConfig {
    /// The endpoint: user and password, else the cookie file (`PoolConfig::validate`
    /// refuses a node with neither; an empty login then gets the node's clear 401).
    pub fn endpoint(&self) -> Endpoint {
        let auth = match (&self.user, &self.password, &self.cookie_file) {
            (Some(user), Some(password), _) => Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            },
            (_, _, Some(path)) => Auth::Cookie(path.clone()),
            _ => Auth::UserPassword {
                user: String::new(),
                password: String::new(),
            },
        };
        Endpoint::new(&self.url, auth)
    }
}

impl Node {
    /// A node from its settings; `longpoll_timeout` bounds how long we wait for a long
    /// poll (the node holds it until its tip changes whatever we do), ordinary calls get
    /// 30 seconds.
    pub fn new(config: &NodeConfig, longpoll_timeout: Duration) -> Node {
        let client = Client::for_endpoint(config.endpoint(), CALL_TIMEOUT);
        Node {
            long: client.with_call_timeout(longpoll_timeout),
            client,
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// Calls `method` and returns its result.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, NodeError> {
        spawn(self.client.clone(), method, params).await
    }

    /// A call that may take as long as the long-poll timeout.
    pub async fn call_long(&self, method: &str, params: Value) -> Result<Value, NodeError> {
        spawn(self.long.clone(), method, params).await
    }
}

async fn spawn(client: Client, method: &str, params: Value) -> Result<Value, NodeError> {
    let node = client.url().to_string();
    let name = method.to_string();
    tokio::task::spawn_blocking(move || client.call(&name, params))
        .await
        .unwrap_or_else(|e| {
            Err(NodeError::Transport {
                node,
                method: method.to_string(),
                detail: format!("RPC thread failed: {e}"),
            })
        })
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
