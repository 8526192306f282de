//! `pool`: reads the settings (file, then `POOL_*` variables and flags on top), starts the
//! pool, and stops it gracefully on Ctrl-C or SIGTERM (a second signal exits at once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pool::config::{Mode, NodeConfig, PoolConfig};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Stratum v1 pool server for SHA-256d chains (SOLO or PPLNS).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML configuration file (see docs/pool.md).
    #[arg(short, long, env = "POOL_CONFIG")]
    config: Option<PathBuf>,
    /// solo (each miner's username is its payout address) or pplns.
    #[arg(long, env = "POOL_MODE")]
    mode: Option<Mode>,
    /// Address network: main, test, signet or regtest.
    #[arg(long, env = "POOL_NETWORK")]
    network: Option<String>,
    /// The pool's payout address (PPLNS mode).
    #[arg(long, env = "POOL_ADDRESS")]
    pool_address: Option<String>,
    /// Stratum listen address, e.g. 0.0.0.0:3333.
    #[arg(long, env = "POOL_STRATUM_BIND")]
    stratum_bind: Option<SocketAddr>,
    /// Node RPC URL, http://USER:PASS@HOST:PORT/ (repeat for failover; replaces the file's
    /// nodes).
    #[arg(long = "node", env = "POOL_NODES", value_delimiter = ',')]
    nodes: Vec<String>,
    /// The node's cookie file, for --node URLs without a user and password.
    #[arg(long, env = "POOL_RPC_COOKIE")]
    rpc_cookie: Option<PathBuf>,
    /// First extranonce1 byte: different for every pool process sharing a database.
    #[arg(long, env = "POOL_INSTANCE_ID")]
    instance_id: Option<u8>,
    /// Where found blocks and the share spool are kept.
    #[arg(long, env = "POOL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL, postgres://USER:PASS@HOST:PORT/DB (needed in PPLNS mode).
    #[arg(long, env = "POOL_DATABASE_URL")]
    database_url: Option<String>,
    /// Where the HTTP API, /metrics and the dashboard listen (apart from Stratum).
    #[arg(long, env = "POOL_API_BIND")]
    api_bind: Option<SocketAddr>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a new Stratum V2 authority key pair, as `[stratum.v2]` settings: miners are
    /// given the public key, the secret key certifies the pool's V2 endpoint.
    Keygen,
}

/// The `[stratum.v2]` lines of a fresh authority key pair.
fn keygen() -> String {
    let random = || {
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&pool::clock::random_u64().to_le_bytes());
        }
        bytes
    };
    let keys = protocol::sv2::keys::AuthorityKeys::generate(random);
    format!(
        "# A new Stratum V2 authority key pair: give miners the public key, keep the\n\
         # secret key to this pool (or put it in a file: authority_secret_key_file).\n\
         [stratum.v2]\n\
         authority_public_key = \"{}\"\n\
         authority_secret_key = \"{}\"\n",
        keys.public_text(),
        keys.secret_text()
    )
}

/// `http://user:pass@host:port/` (or without credentials, with `--rpc-cookie`) into a
/// node setting.
fn node_from_url(url: &str, cookie: Option<&PathBuf>) -> Result<NodeConfig, String> {
    let endpoint = noderpc::Endpoint::parse(url, cookie.map(PathBuf::as_path))
        .map_err(|e| format!("--node: {e} (or give --rpc-cookie)"))?;
    let (user, password, cookie_file) = match endpoint.auth() {
        noderpc::Auth::UserPassword { user, password } => {
            (Some(user.clone()), Some(password.clone()), None)
        }
        noderpc::Auth::Cookie(path) => (None, None, Some(path.clone())),
    };
    Ok(NodeConfig {
        url: endpoint.url().to_string(),
        user,
        password,
        cookie_file,
        zmq_hashblock: None,
    })
}

fn settings(args: &Args) -> Result<PoolConfig, String> {
    let mut config = match &args.config {
        Some(path) => PoolConfig::from_file(path).map_err(|e| e.to_string())?,
        None => PoolConfig::default(),
    };
    if let Some(mode) = args.mode {
        config.mode = mode;
    }
    if let Some(n) = &args.network {
        config.network = n.clone();
    }
    if let Some(a) = &args.pool_address {
        config.pool_address = Some(a.clone());
    }
    if let Some(b) = args.stratum_bind {
        config.stratum.bind = b;
    }
    if !args.nodes.is_empty() {
        config.nodes = args
            .nodes
            .iter()
            .map(|u| node_from_url(u, args.rpc_cookie.as_ref()))
            .collect::<Result<_, _>>()?;
    }
    if let Some(i) = args.instance_id {
        config.stratum.instance_id = i;
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(url) = &args.database_url {
        config.database.url = Some(url.clone());
    }
    if let Some(bind) = args.api_bind {
        config.api.enabled = true;
        config.api.bind = bind;
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn main() -> ExitCode {
    // First, before the runtime's threads and their arenas: `memory::map_large_blocks`.
    pool::memory::map_large_blocks();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if let Some(Command::Keygen) = args.command {
        print!("{}", keygen());
        return ExitCode::SUCCESS;
    }
    let config = match settings(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pool: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    match pool::net::raise_open_files_limit() {
        Ok(l) if l.now > l.was => info!(
            was = l.was,
            now = l.now,
            "open-files limit raised to the hard limit: one file per miner connection"
        ),
        Ok(l) => info!(
            limit = l.now,
            "open-files limit: one file per miner connection"
        ),
        Err(e) => warn!(error = %e, "cannot read or raise the open-files limit"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pool: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let running = match pool::run::start(config, cancel.clone()).await {
            Ok(r) => r,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        signalled().await;
        info!("shutting down: no new connections, miners asked to reconnect (signal again to exit now)");
        cancel.cancel();
        tokio::select! {
            _ = running.wait() => {}
            _ = signalled() => {}
        }
        info!("stopped");
        ExitCode::SUCCESS
    });
    // A long poll to a node (up to jobs.longpoll_timeout_secs) may still be waiting on a
    // blocking thread that nothing can interrupt. Everything that matters has been flushed
    // by now; do not let it hold the exit (a rolling restart waits for this process).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_prints_a_usable_pair() {
        let text = keygen();
        let section: toml::Table = toml::from_str(&text).unwrap();
        let v2 = &section["stratum"]["v2"];
        let secret = v2["authority_secret_key"].as_str().unwrap();
        let keys = protocol::sv2::keys::AuthorityKeys::from_secret_text(secret).unwrap();
        keys.check_public(v2["authority_public_key"].as_str().unwrap())
            .unwrap();
        assert_ne!(keygen(), text, "a new pair each time");
    }

    #[test]
    fn node_urls() {
        let n = node_from_url("http://u:p@127.0.0.1:8332/", None).unwrap();
        assert_eq!(n.url, "http://127.0.0.1:8332/");
        assert_eq!(n.user.as_deref(), Some("u"));
        assert_eq!(n.password.as_deref(), Some("p"));
        assert!(node_from_url("http://127.0.0.1:8332/", None).is_err());
        let cookie = PathBuf::from("/tmp/.cookie");
        let n = node_from_url("http://127.0.0.1:8332/", Some(&cookie)).unwrap();
        assert_eq!(n.cookie_file, Some(cookie));
        assert!(node_from_url("https://x/", None).is_err());
    }
}
