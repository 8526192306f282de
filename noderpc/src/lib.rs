//! JSON-RPC 1.0 over HTTP to a bitcoind-style node (Bitcoin Core, BCHN, Bitcoin SV): the one
//! client the miner (solo mining), the pool (templates, blocks, payments) and the test kit
//! share.
//!
//! - [`Endpoint`]: where the node is and how to log in: `http://[USER:PASS@]HOST:PORT[/]`,
//!   or a cookie file (`.cookie`, read again after a 401, since a restarted node writes a
//!   new one).
//! - [`Client`]: a blocking client (ureq) with one timeout per call. Callers that run on an
//!   async runtime call it from their blocking pool; a long poll needs a client of its own
//!   with a long timeout ([`Client::with_call_timeout`]).
//! - [`RpcError`]: one error type, naming the node and the method: no answer, the node's
//!   error object (with its code), or a reply that is not JSON-RPC.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The largest reply read: templates of big blocks run to tens of megabytes.
const MAX_REPLY: u64 = 64 * 1024 * 1024;

/// The timeout of [`Client::new`] and [`Client::for_endpoint`] calls.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `rpcuser`/`rpcpassword` or an `rpcauth` user.
    UserPassword {
        /// User.
        user: String,
        /// Password.
        password: String,
    },
    /// The node's cookie file (`__cookie__:PASSWORD`), read again after a 401.
    Cookie(PathBuf),
}

/// A node's RPC address and login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    auth: Auth,
}

/// An endpoint that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The URL is malformed.
    #[error("bad node URL {url:?}: {reason} (expected http://USER:PASS@HOST:PORT)")]
    Url {
        /// The text given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither credentials in the URL nor a cookie file.
    #[error("node URL {0:?} has no USER:PASS@ and no cookie file was given")]
    NoCredentials(String),
    /// The cookie file cannot be read or holds no `user:password`.
    #[error("cannot use the cookie file {path}: {reason}")]
    Cookie {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Endpoint {
    /// An endpoint at `url` (a `/` is added when missing).
    pub fn new(url: &str, auth: Auth) -> Endpoint {
        let mut url = url.to_string();
        if !url.ends_with('/') {
            url.push('/');
        }
        Endpoint { url, auth }
    }

    /// Parses `http://[USER:PASS@]HOST:PORT[/]` (an IPv6 host in brackets). With `cookie`,
    /// the login is the cookie file's (read at the first call and again whenever the node
    /// restarts; [`Endpoint::check`] reads it now); otherwise the URL must carry
    /// `USER:PASS@`.
    pub fn parse(text: &str, cookie: Option<&Path>) -> Result<Endpoint, EndpointError> {
        let bad = |reason: &str| EndpointError::Url {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport).map_err(|e| bad(&e.to_string()))?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let url = format!("http://{host}:{port}/");
        let auth = match (cookie, userinfo) {
            (Some(path), _) => Auth::Cookie(path.to_path_buf()),
            (None, Some(userinfo)) => {
                let (user, password) = userinfo
                    .split_once(':')
                    .ok_or_else(|| bad("credentials must be USER:PASS"))?;
                Auth::UserPassword {
                    user: user.to_string(),
                    password: password.to_string(),
                }
            }
            (None, None) => return Err(EndpointError::NoCredentials(text.to_string())),
        };
        Ok(Endpoint { url, auth })
    }

    /// Reads the cookie file, if the login is one: a clear error at start for a client that
    /// cannot wait for its node to write one.
    pub fn check(&self) -> Result<(), EndpointError> {
        match &self.auth {
            Auth::Cookie(path) => read_cookie(path).map(|_| ()),
            Auth::UserPassword { .. } => Ok(()),
        }
    }

    /// The URL, `http://host:port/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The login.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}

/// A `HOST:PORT` that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostPortError {
    /// An IPv6 address without its brackets and port.
    #[error("an IPv6 host needs [addr]:port")]
    Ipv6,
    /// No `:PORT`.
    #[error("missing :PORT")]
    NoPort,
    /// Nothing before the port.
    #[error("missing host")]
    NoHost,
    /// Not a port number.
    #[error("bad port {0:?}")]
    BadPort(String),
}

/// `HOST:PORT` or `[V6]:PORT`, with an optional trailing `/`.
pub fn split_host_port(text: &str) -> Result<(String, u16), HostPortError> {
    let text = text.trim_end_matches('/');
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        v6.split_once("]:").ok_or(HostPortError::Ipv6)?
    } else {
        text.rsplit_once(':').ok_or(HostPortError::NoPort)?
    };
    if host.is_empty() {
        return Err(HostPortError::NoHost);
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| HostPortError::BadPort(port.to_string()))?;
    Ok((host.to_string(), port))
}

/// The `user:password` in a cookie file.
fn read_cookie(path: &Path) -> Result<String, EndpointError> {
    let err = |reason: String| EndpointError::Cookie {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let text = text.trim();
    if !text.contains(':') {
        return Err(err("no user:password in it".into()));
    }
    Ok(text.to_string())
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// A failed call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No answer: refused, reset, timed out, or the cookie file could not be read.
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

impl RpcError {
    /// The node's error code, when it answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the node answered at all (an error object or an unexpected reply): a call
    /// that got no answer may still be running on the node.
    pub fn answered(&self) -> bool {
        !matches!(self, RpcError::Transport { .. })
    }
}

/// A blocking JSON-RPC client. Cheap to clone; clones share the cookie cache.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    agent: ureq::Agent,
}

struct Shared {
    endpoint: Endpoint,
    /// The `Authorization` header, cached (a cookie is read again after a 401).
    header: Mutex<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared.endpoint.url)
            .finish_non_exhaustive()
    }
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

impl Client {
    /// A client for `url` (e.g. `http://127.0.0.1:18443/`) with a user and password.
    pub fn new(url: &str, user: &str, password: &str) -> Client {
        Client::with_timeout(url, user, password, DEFAULT_TIMEOUT)
    }

    /// The same with a timeout per call.
    pub fn with_timeout(url: &str, user: &str, password: &str, timeout: Duration) -> Client {
        let auth = Auth::UserPassword {
            user: user.to_string(),
            password: password.to_string(),
        };
        Client::for_endpoint(Endpoint::new(url, auth), timeout)
    }

    /// A client for `endpoint` with a timeout per call.
    pub fn for_endpoint(endpoint: Endpoint, timeout: Duration) -> Client {
        Client {
            shared: Arc::new(Shared {
                endpoint,
                header: Mutex::new(None),
            }),
            agent: agent(timeout),
        }
    }

    /// The same node and login with another timeout (a long poll's).
    pub fn with_call_timeout(&self, timeout: Duration) -> Client {
        Client {
            shared: self.shared.clone(),
            agent: agent(timeout),
        }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.shared.endpoint.url
    }

    /// Calls `method` with positional `params` and returns its result.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let cookie = matches!(self.shared.endpoint.auth, Auth::Cookie(_));
        let (status, text) = match self.post(method, &params, false)? {
            (401, _) if cookie => self.post(method, &params, true)?,
            reply => reply,
        };
        let node = || self.url().to_string();
        let bad = || RpcError::BadReply {
            node: node(),
            method: method.to_string(),
            status,
            body: text.chars().take(200).collect(),
        };
        let reply: Value = serde_json::from_str(&text).map_err(|_| bad())?;
        match reply.get("error") {
            None | Some(Value::Null) => reply.get("result").cloned().ok_or_else(bad),
            Some(error) => Err(RpcError::Rpc {
                node: node(),
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

    fn header(&self, fresh: bool) -> Result<String, EndpointError> {
        let mut cached = self
            .shared
            .header
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if fresh || cached.is_none() {
            *cached = Some(match &self.shared.endpoint.auth {
                Auth::UserPassword { user, password } => basic(&format!("{user}:{password}")),
                Auth::Cookie(path) => basic(&read_cookie(path)?),
            });
        }
        Ok(cached.clone().unwrap_or_default())
    }

    fn post(&self, method: &str, params: &Value, fresh: bool) -> Result<(u16, String), RpcError> {
        let transport = |detail: String| RpcError::Transport {
            node: self.url().to_string(),
            method: method.to_string(),
            detail,
        };
        let header = self.header(fresh).map_err(|e| transport(e.to_string()))?;
        let body = json!({"jsonrpc": "1.0", "id": "sha256d", "method": method, "params": params});
        let mut response = self
            .agent
            .post(self.url())
            .header("Authorization", &header)
            .send_json(&body)
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        Ok((status, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_a_cookie_or_neither() {
        let e = Endpoint::parse("http://alice:secret@127.0.0.1:18443", None).unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:18443/");
        assert_eq!(
            e.auth(),
            &Auth::UserPassword {
                user: "alice".into(),
                password: "secret".into()
            }
        );
        let e = Endpoint::parse("http://u:p@[::1]:8332/", None).unwrap();
        assert_eq!(e.url(), "http://[::1]:8332/");
        for bad in [
            "127.0.0.1:18443",
            "https://u:p@x:1",
            "http://u:p@127.0.0.1",
            "http://up@h:1",
        ] {
            assert!(
                matches!(Endpoint::parse(bad, None), Err(EndpointError::Url { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Endpoint::parse("http://127.0.0.1:8332", None),
            Err(EndpointError::NoCredentials(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let cookie = dir.path().join(".cookie");
        std::fs::write(&cookie, "__cookie__:abc123\n").unwrap();
        let e = Endpoint::parse("http://127.0.0.1:8332", Some(&cookie)).unwrap();
        assert_eq!(e.auth(), &Auth::Cookie(cookie.clone()));
        let client = Client::for_endpoint(e, DEFAULT_TIMEOUT);
        assert_eq!(client.header(false).unwrap(), basic("__cookie__:abc123"));
        // A restarted node writes a new cookie: read again when asked for a fresh header.
        std::fs::write(&cookie, "__cookie__:def456\n").unwrap();
        assert_eq!(client.header(false).unwrap(), basic("__cookie__:abc123"));
        assert_eq!(client.header(true).unwrap(), basic("__cookie__:def456"));
        std::fs::remove_file(&cookie).unwrap();
        let gone = Endpoint::parse("http://127.0.0.1:8332", Some(&cookie)).unwrap();
        assert!(matches!(gone.check(), Err(EndpointError::Cookie { .. })));
        let err = Client::for_endpoint(gone, DEFAULT_TIMEOUT)
            .call("getblockcount", json!([]))
            .unwrap_err();
        assert!(err.to_string().contains("cookie"), "{err}");
    }

    #[test]
    fn no_node_is_a_transport_error_naming_node_and_method() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::with_timeout(
            &format!("http://127.0.0.1:{port}"),
            "u",
            "p",
            Duration::from_secs(2),
        );
        let err = client.call("getblockcount", json!([])).unwrap_err();
        assert!(!err.answered());
        assert!(err.to_string().contains("getblockcount"), "{err}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }
}
