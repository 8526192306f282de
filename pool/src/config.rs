//! The pool's settings: a TOML file with defaults for everything but the node, then
//! environment variables and flags on top (`main.rs`). `validate` turns typos and
//! impossible values into one clear error before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::address::{self, Network, PayoutAddress};
use protocol::target::format_difficulty;

use crate::net::Trusted;
use protocol::sv2::keys::AuthorityKeys;
use serde::Deserialize;

/// Who the coinbase pays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every miner mines for itself: the coinbase pays the address in its username.
    Solo,
    /// The coinbase pays the pool's address; shares are credited by PPLNS.
    #[default]
    Pplns,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s.to_ascii_lowercase().as_str() {
            "solo" => Ok(Mode::Solo),
            "pplns" => Ok(Mode::Pplns),
            other => Err(format!("unknown mode {other:?}: use solo or pplns")),
        }
    }
}

/// Everything the pool reads at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// SOLO or PPLNS.
    pub mode: Mode,
    /// The chain the addresses belong to: main, test, signet or regtest.
    pub network: String,
    /// The pool's payout address (PPLNS mode).
    pub pool_address: Option<String>,
    /// Text written into every coinbase scriptSig (after the extranonces).
    pub pool_tag: String,
    /// Where found blocks are kept as raw hex, with a JSON log of each submission.
    pub data_dir: PathBuf,
    /// Nodes in order of preference.
    pub nodes: Vec<NodeConfig>,
    /// Templates and jobs.
    pub jobs: JobsConfig,
    /// Stratum listener and sessions.
    pub stratum: StratumConfig,
    /// Difficulty per connection.
    pub vardiff: VardiffConfig,
    /// Limits against bad and hostile clients.
    pub limits: LimitsConfig,
    /// The PostgreSQL store (needed in PPLNS mode, optional in SOLO mode).
    pub database: DatabaseConfig,
    /// PPLNS accounting, block confirmations and payments.
    pub payouts: PayoutsConfig,
    /// The HTTP API, metrics and dashboard.
    pub api: ApiConfig,
    /// Where events are announced (`[[notify]]`): webhooks, Discord, Telegram.
    pub notify: Vec<NotifyConfig>,
    /// What the pool watches for and reports (`[alerts]`).
    pub alerts: AlertsConfig,
}

/// `[alerts]`: the block-withholding watch (`accounting::withholding`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// An address is flagged when finding as few blocks as it did has a smaller chance
    /// than this.
    pub withholding_p: f64,
    /// The window the report covers, hours.
    pub withholding_hours: u32,
    /// Time between reports, seconds (0: no watch; the admin API still reports).
    pub withholding_check_secs: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            withholding_p: 0.001,
            withholding_hours: 24,
            withholding_check_secs: 600,
        }
    }
}

/// The format a notification sink speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyKind {
    /// JSON POST of the event, signed with HMAC-SHA256 when a secret is set.
    Webhook,
    /// A Discord channel webhook (`{"content": ...}`).
    Discord,
    /// A Telegram bot's `sendMessage` to one chat.
    Telegram,
}

/// One `[[notify]]` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// webhook, discord or telegram.
    pub kind: NotifyKind,
    /// Where to POST (webhook, discord); for telegram the Bot API base, by default
    /// `https://api.telegram.org`.
    pub url: Option<String>,
    /// Webhook: the HMAC-SHA256 key of the `X-Pool-Signature` header.
    pub secret: Option<String>,
    /// Telegram: the bot's token.
    pub bot_token: Option<String>,
    /// Telegram: the chat to write to.
    pub chat_id: Option<String>,
    /// Which events (all when unset): block_found, block_confirmed, block_orphaned,
    /// best_difficulty, worker_offline, payment_sent, node_unreachable.
    pub events: Option<Vec<String>>,
    /// Best difficulty news for `pool`, `address` or `both` (default `pool`).
    #[serde(default = "default_best_scope")]
    pub best_scope: String,
    /// Minutes without a connection before a worker counts as offline.
    #[serde(default = "default_offline_minutes")]
    pub offline_minutes: f64,
    /// Attempts per message (with backoff: 1 s, 2 s, 4 s...).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_best_scope() -> String {
    "pool".into()
}

fn default_offline_minutes() -> f64 {
    10.0
}

fn default_attempts() -> u32 {
    5
}

/// Every event name a `[[notify]]` sink can ask for.
pub const NOTIFY_EVENTS: &[&str] = &[
    "block_found",
    "block_confirmed",
    "block_orphaned",
    "best_difficulty",
    "worker_offline",
    "payment_sent",
    "node_unreachable",
    "withholding",
];

/// The HTTP side: JSON API, Prometheus metrics, dashboard.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve it at all.
    pub enabled: bool,
    /// Its own address, apart from Stratum (loopback by default: put a reverse proxy in
    /// front to publish it).
    pub bind: SocketAddr,
    /// The pool's id in `/api/pools/{id}`.
    pub pool_id: String,
    /// The bearer token of `/api/admin/` (at least 16 characters); unset: no admin API.
    pub admin_token: Option<String>,
    /// Web origins whose pages may read the API (CORS), e.g. `https://stats.example`;
    /// `"*"` for any. Empty: no CORS headers (same-origin pages only).
    pub cors_origins: Vec<String>,
    /// Requests per minute one client address may make to the public API (the dashboard
    /// and JSON endpoints; not `/metrics` or `/api/admin/`); 0: no limit.
    pub rate_limit: u32,
    /// Reverse proxies in front of the API (addresses or CIDR blocks): for their requests
    /// the client is the last address of `X-Forwarded-For`.
    pub trusted_proxies: Vec<String>,
    /// Block explorer links in the API (`infoLink`, `transactionInfoLink`, ...).
    pub explorer: ExplorerConfig,
}

/// Block explorer URL templates: `{hash}` and `{height}` in `block`, `{txid}` in `tx`,
/// `{address}` in `address`. Unset: the network's usual explorer (mempool.space on main
/// and signet, Blockchair on Bitcoin Cash; none on test networks and regtest). An empty
/// string: no link.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ExplorerConfig {
    /// A block's page.
    pub block: Option<String>,
    /// A transaction's page.
    pub tx: Option<String>,
    /// An address's page.
    pub address: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            pool_id: "pool".into(),
            admin_token: None,
            cors_origins: Vec::new(),
            rate_limit: 0,
            trusted_proxies: Vec::new(),
            explorer: ExplorerConfig::default(),
        }
    }
}

/// One node's RPC endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// `http://host:port/`.
    pub url: String,
    /// RPC user (with `password`), unless a cookie file is given.
    #[serde(default)]
    pub user: Option<String>,
    /// RPC password.
    #[serde(default)]
    pub password: Option<String>,
    /// The node's `.cookie` file, read again whenever the node restarts.
    #[serde(default)]
    pub cookie_file: Option<PathBuf>,
    /// The node's `-zmqpubhashblock` endpoint (`tcp://host:port`), for the fastest word of
    /// a new block.
    #[serde(default)]
    pub zmq_hashblock: Option<String>,
}

impl NodeConfig {
    /// A node reached with a user and password (no cookie, no ZMQ).
    pub fn with_password(url: &str, user: &str, password: &str) -> NodeConfig {
        NodeConfig {
            url: url.into(),
            user: Some(user.into()),
            password: Some(password.into()),
            cookie_file: None,
            zmq_hashblock: None,
        }
    }
}

/// How templates are fetched and turned into jobs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Poll `getbestblockhash` this often, besides the long poll (milliseconds).
    pub block_poll_ms: u64,
    /// Fetch a fresh template with new transactions this often (seconds).
    pub refresh_secs: u64,
    /// Use `getblocktemplate` long polling when the node offers it: at most one long poll
    /// per node at a time, none on a node with `zmq_hashblock` (see `templates.rs`).
    pub longpoll: bool,
    /// How long the pool waits for a long poll's answer (seconds); the node answers
    /// earlier on a new block. After a timeout the next long poll waits for a new tip.
    pub longpoll_timeout_secs: u64,
    /// Jobs of the current block kept for late shares.
    pub keep_jobs: usize,
    /// The latest ntime accepted, relative to the pool's clock (seconds).
    pub max_ntime_ahead_secs: u32,
    /// Longest wait between retries when every node fails (seconds).
    pub max_retry_secs: u64,
}

/// The Stratum side.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StratumConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// This process's first extranonce1 byte: give each pool process sharing a database a
    /// different one so their extranonce1 spaces never overlap.
    pub instance_id: u8,
    /// Extranonce2 size given to miners (bytes).
    pub extranonce2_size: usize,
    /// Version-rolling bits miners may use (BIP 310).
    pub version_mask: String,
    /// Message shown to miners when the pool shuts down.
    pub shutdown_message: String,
    /// Tell a Stratum v1 miner (`client.show_message`) when one of its workers beats its
    /// own best share difficulty.
    pub best_difficulty_message: bool,
    /// Bind with SO_REUSEPORT, so that a new pool process can start on the same ports
    /// while the old one drains (a rolling restart; see docs/operator.md).
    pub reuse_port: bool,
    /// Proxies (addresses or CIDR blocks) whose connections start with a PROXY protocol
    /// v1 or v2 header naming the miner's real address. Empty: no proxy is trusted.
    pub proxy_protocol_from: Vec<String>,
    /// A second, `stratum+ssl` listener (absent: none).
    pub tls: Option<TlsConfig>,
    /// The Stratum V2 listener (absent: none).
    pub v2: Option<V2Config>,
}

/// The Stratum V2 listener: Noise-encrypted binary frames, certified by an authority key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V2Config {
    /// Listen address, e.g. 0.0.0.0:3336.
    pub bind: SocketAddr,
    /// The authority secret key, base58check as `pool keygen` prints it.
    #[serde(default)]
    pub authority_secret_key: Option<String>,
    /// A file holding the authority secret key instead (first line).
    #[serde(default)]
    pub authority_secret_key_file: Option<PathBuf>,
    /// The authority public key miners are given; checked against the secret at start.
    #[serde(default)]
    pub authority_public_key: Option<String>,
    /// How long each connection's certificate is valid (seconds).
    #[serde(default = "default_cert_validity_secs")]
    pub cert_validity_secs: u64,
}

fn default_cert_validity_secs() -> u64 {
    3600
}

/// The Stratum V2 listener's checked settings.
#[derive(Clone, Debug)]
pub struct V2Checked {
    /// Listen address.
    pub bind: SocketAddr,
    /// The authority key pair.
    pub keys: AuthorityKeys,
    /// Certificate validity.
    pub cert_validity: Duration,
}

/// The TLS listener: the same Stratum service, inside TLS 1.2/1.3 (rustls).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Listen address, e.g. 0.0.0.0:3334.
    pub bind: SocketAddr,
    /// PEM certificate chain, leaf first. Re-read with the key on SIGHUP.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Difficulty per connection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VardiffConfig {
    /// Difficulty of a new connection.
    pub start: f64,
    /// Lowest difficulty.
    pub min: f64,
    /// Highest difficulty (the network difficulty caps it too).
    pub max: f64,
    /// Seconds between shares that vardiff aims at.
    pub target_secs: f64,
    /// Least time between two retargets (seconds) after the first one.
    pub retarget_secs: f64,
    /// Shares after which the first retarget happens.
    pub first_retarget_shares: u32,
    /// Round difficulties to powers of two.
    pub powers_of_two: bool,
    /// Whether `min` and `start` may be below 1 (ESP32-class miners need it; on a real
    /// chain it mostly means a typo that floods the pool). Unset: allowed on test
    /// networks, not on main.
    pub allow_below_one: Option<bool>,
    /// Difficulty profiles (`[[vardiff.profile]]`), tried in order before the shipped ones.
    pub profile: Vec<ProfileConfig>,
    /// Whether the shipped profiles (Bitaxe, NerdMiner, Antminer, NiceHash, cpuminer) are
    /// tried after the operator's.
    pub builtin_profiles: bool,
}

/// Vardiff bounds for one kind of miner, matched on the user agent it sends with
/// `mining.subscribe` (V2: SetupConnection's `vendor/hardware/firmware`) or on its worker
/// name: each a case-insensitive prefix. Unset values are the pool-wide `[vardiff]` ones.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Shown in logs and the API.
    pub name: String,
    /// User agent prefixes (`bitaxe` matches `bitaxe/BM1370/v2.9.0`).
    #[serde(default)]
    pub user_agents: Vec<String>,
    /// Worker name prefixes (the part after `ADDRESS.`).
    #[serde(default)]
    pub workers: Vec<String>,
    /// Difficulty of a new connection.
    pub start: Option<f64>,
    /// Lowest difficulty (`mining.suggest_difficulty` may raise it for a connection).
    pub min: Option<f64>,
    /// Highest difficulty (the network difficulty caps it too).
    pub max: Option<f64>,
    /// Round difficulties to powers of two.
    pub powers_of_two: Option<bool>,
    /// Whole difficulties only (firmware that reads `set_difficulty` as an integer).
    pub integer_only: Option<bool>,
}

/// Limits against bad and hostile clients.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Longest line accepted from a miner (bytes); a longer one closes the connection.
    pub max_line: usize,
    /// Connections at once from one IP address (0: no limit).
    pub connections_per_ip: usize,
    /// Connections at once in all (0: no limit).
    pub max_connections: usize,
    /// Junk messages per second a connection may send (burst of twice that): malformed
    /// lines, requests other than `mining.submit`, and submits refused for a reason other
    /// than a block change. Valid and stale shares never count (see docs/pool.md).
    pub messages_per_sec: u32,
    /// Seconds a socket may stay connected without authorizing.
    pub authorize_timeout_secs: u64,
    /// Seconds without any message before a connection is closed.
    pub idle_timeout_secs: u64,
    /// Invalid shares in a row that get the address banned (0: never).
    pub ban_after_invalid: u32,
    /// How long a ban lasts (seconds).
    pub ban_secs: u64,
    /// Tell the other pool processes on the database about bans, and apply theirs (every
    /// `database.live_interval_secs`).
    pub share_bans: bool,
    /// Connections closed for protocol violations (over-long lines, malformed lines,
    /// message floods) that ban the address within `ban_secs` (0: never).
    pub ban_after_violations: u32,
    /// Malformed lines in a row that close the connection.
    pub max_bad_lines: u32,
}

/// The PostgreSQL store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db`; unset: no store (SOLO mode only).
    pub url: Option<String>,
    /// A read replica (a streaming standby of `url`) for the API's history queries; the
    /// primary answers them while it does not. Unset: the primary answers everything.
    pub read_url: Option<String>,
    /// Connections the pool keeps open.
    pub max_connections: u32,
    /// Most shares written in one commit.
    pub batch_max: usize,
    /// A write that takes longer than this (seconds) counts as a failure: the batch goes to
    /// the spool file instead.
    pub write_timeout_secs: u64,
    /// How often to try the database again while shares are spooled (seconds).
    pub retry_secs: u64,
    /// Days of raw shares kept (whole days; older daily partitions are dropped).
    pub share_retention_days: u32,
    /// How often miner and pool statistics are sampled (seconds).
    pub stats_interval_secs: u64,
    /// Days of sampled statistics and per-minute share totals kept.
    pub stats_retention_days: u32,
    /// How often this process writes its live figures (connected workers, hashrates) for
    /// the other pool processes on the database, and reads theirs (seconds; 0: never, each
    /// process shows only its own).
    pub live_interval_secs: u64,
    /// A process whose live figures are older than this stops counting (seconds): it
    /// stopped, or lost the database.
    pub live_timeout_secs: u64,
}

/// What happens when fewer shares exist than the PPLNS window asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unfilled {
    /// The miners present share the whole reward (less the fee).
    #[default]
    ShareAll,
    /// The miners get what a full window would have given them; the pool keeps the rest.
    PoolKeepsRest,
}

/// PPLNS, confirmations and payments.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutsConfig {
    /// The window is the last `window_factor` x network difficulty of share difficulty.
    pub window_factor: f64,
    /// Policy for a window that is not full.
    pub unfilled: Unfilled,
    /// The pool's fee, percent of the block reward.
    pub fee_percent: f64,
    /// Confirmations before a block's reward is credited (coinbase maturity: 100 on Bitcoin).
    pub confirmations: u64,
    /// How often pending blocks are checked (seconds).
    pub check_secs: u64,
    /// How long after a block is found its window is frozen, so that shares still in other
    /// pool processes' batches count (seconds).
    pub freeze_delay_secs: u64,
    /// Pay balances through the node wallet's `sendmany`.
    pub payments: bool,
    /// Least balance paid out (base units, satoshis).
    pub threshold: u64,
    /// Time between payment rounds (seconds).
    pub payment_interval_secs: u64,
    /// How miners are paid: `wallet` (the pool's address, then `sendmany`) or `coinbase`
    /// (every job's coinbase pays the PPLNS window directly).
    pub method: PayoutMethod,
    /// Coinbase method: most outputs in a coinbase, the pool's included.
    pub max_outputs: usize,
    /// Coinbase method: least output (satoshis); smaller amounts are carried.
    pub min_output: u64,
    /// Least payment threshold a miner may set for itself with a signed message
    /// (satoshis); unset: `threshold` (at least 546, dust), so a miner can only raise it.
    pub miner_threshold_min: Option<u64>,
    /// Most payment threshold a miner may set for itself (satoshis).
    pub miner_threshold_max: u64,
}

/// Outputs below this many satoshis are dust nodes do not relay.
const DUST: u64 = 546;

impl PayoutsConfig {
    /// The thresholds a miner may choose: (least, most), satoshis.
    pub fn miner_threshold_bounds(&self) -> (u64, u64) {
        (
            self.miner_threshold_min.unwrap_or(self.threshold.max(DUST)),
            self.miner_threshold_max,
        )
    }
}

/// How PPLNS miners are paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayoutMethod {
    /// Blocks pay the pool's address; balances are paid from its wallet.
    #[default]
    Wallet,
    /// Every job's coinbase pays the miners of its PPLNS window directly.
    Coinbase,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            read_url: None,
            max_connections: 8,
            batch_max: 5000,
            write_timeout_secs: 5,
            retry_secs: 2,
            share_retention_days: 60,
            stats_interval_secs: 60,
            stats_retention_days: 30,
            live_interval_secs: 5,
            live_timeout_secs: 20,
        }
    }
}

impl Default for PayoutsConfig {
    fn default() -> Self {
        PayoutsConfig {
            window_factor: 2.0,
            unfilled: Unfilled::ShareAll,
            fee_percent: 1.0,
            confirmations: 100,
            check_secs: 30,
            freeze_delay_secs: 3,
            payments: true,
            threshold: 1_000_000,
            payment_interval_secs: 3600,
            method: PayoutMethod::Wallet,
            max_outputs: 100,
            min_output: 10_000,
            miner_threshold_min: None,
            miner_threshold_max: 1_000_000_000,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mode: Mode::Pplns,
            network: "main".into(),
            pool_address: None,
            pool_tag: "/sha256d-pool/".into(),
            data_dir: PathBuf::from("pool-data"),
            nodes: Vec::new(),
            jobs: JobsConfig::default(),
            stratum: StratumConfig::default(),
            vardiff: VardiffConfig::default(),
            limits: LimitsConfig::default(),
            database: DatabaseConfig::default(),
            payouts: PayoutsConfig::default(),
            api: ApiConfig::default(),
            notify: Vec::new(),
            alerts: AlertsConfig::default(),
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            block_poll_ms: 250,
            refresh_secs: 30,
            longpoll: true,
            longpoll_timeout_secs: 120,
            keep_jobs: 16,
            max_ntime_ahead_secs: 7000,
            max_retry_secs: 10,
        }
    }
}

impl Default for StratumConfig {
    fn default() -> Self {
        StratumConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 3333)),
            instance_id: 0,
            extranonce2_size: 8,
            version_mask: "1fffe000".into(),
            shutdown_message: "pool restarting, reconnect in a few seconds".into(),
            best_difficulty_message: false,
            reuse_port: false,
            proxy_protocol_from: Vec::new(),
            tls: None,
            v2: None,
        }
    }
}

impl VardiffConfig {
    /// Whether difficulties below 1 are allowed on `network` (`allow_below_one`, by
    /// default on test networks only).
    pub fn below_one_allowed(&self, network: Network) -> bool {
        self.allow_below_one.unwrap_or(network.is_test())
    }
}

impl Default for VardiffConfig {
    fn default() -> Self {
        VardiffConfig {
            start: 1024.0,
            min: 1.0,
            max: 1e15,
            target_secs: 10.0,
            retarget_secs: 60.0,
            first_retarget_shares: 5,
            powers_of_two: false,
            allow_below_one: None,
            profile: Vec::new(),
            builtin_profiles: true,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_line: protocol::stratum::codec::MAX_LINE_FROM_MINER,
            connections_per_ip: 256,
            max_connections: 0,
            messages_per_sec: 50,
            authorize_timeout_secs: 30,
            idle_timeout_secs: 600,
            ban_after_invalid: 100,
            ban_secs: 600,
            share_bans: true,
            ban_after_violations: 5,
            max_bad_lines: 10,
        }
    }
}

/// A setting that cannot work, named so the operator can find it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// What toml said (with line and column).
        detail: String,
    },
    /// A value that cannot work.
    #[error("{key}: {detail}")]
    Invalid {
        /// The setting, as written in the file.
        key: &'static str,
        /// Why.
        detail: String,
    },
}

/// A `[[notify]]` sink: what its kind needs, known events, sane numbers.
fn check_notify(n: &NotifyConfig) -> Result<(), ConfigError> {
    let key = "notify";
    let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    match n.kind {
        NotifyKind::Webhook | NotifyKind::Discord => match &n.url {
            Some(u) if url_ok(u) => {}
            _ => {
                return Err(invalid(
                    key,
                    format!("{:?} needs url = \"https://...\"", n.kind),
                ));
            }
        },
        NotifyKind::Telegram => {
            if n.bot_token.as_deref().is_none_or(str::is_empty)
                || n.chat_id.as_deref().is_none_or(str::is_empty)
            {
                return Err(invalid(key, "telegram needs bot_token and chat_id"));
            }
            if n.url.as_deref().is_some_and(|u| !url_ok(u)) {
                return Err(invalid(key, "telegram url must be http(s)://"));
            }
        }
    }
    if let Some(unknown) = n
        .events
        .iter()
        .flatten()
        .find(|e| !NOTIFY_EVENTS.contains(&e.as_str()))
    {
        return Err(invalid(
            key,
            format!(
                "unknown event {unknown:?}: use {}",
                NOTIFY_EVENTS.join(", ")
            ),
        ));
    }
    if !["pool", "address", "both"].contains(&n.best_scope.as_str()) {
        return Err(invalid(key, "best_scope must be pool, address or both"));
    }
    if !(n.offline_minutes.is_finite() && n.offline_minutes > 0.0) {
        return Err(invalid(key, "offline_minutes must be above zero"));
    }
    if !(1..=20).contains(&n.attempts) {
        return Err(invalid(key, "attempts must be 1 to 20"));
    }
    Ok(())
}

/// An operator's `[[vardiff.profile]]`: matchable, with sane bounds.
fn check_profile(p: &ProfileConfig, below_one: bool, network: Network) -> Result<(), ConfigError> {
    let key = "vardiff.profile";
    let name = &p.name;
    if name.trim().is_empty() {
        return Err(invalid(key, "every profile needs a name"));
    }
    let patterns = p.user_agents.iter().chain(&p.workers);
    if p.user_agents.is_empty() && p.workers.is_empty()
        || patterns.clone().any(|s| s.trim().is_empty())
    {
        return Err(invalid(
            key,
            format!("{name:?}: user_agents or workers must list at least one non-empty prefix"),
        ));
    }
    let values = [p.start, p.min, p.max];
    if values
        .iter()
        .flatten()
        .any(|x| !(x.is_finite() && *x > 0.0))
    {
        return Err(invalid(
            key,
            format!("{name:?}: start, min and max must be above zero"),
        ));
    }
    if let (Some(min), Some(max)) = (p.min, p.max)
        && min > max
    {
        return Err(invalid(key, format!("{name:?}: min above max")));
    }
    if !below_one && values[..2].iter().flatten().any(|x| *x < 1.0) {
        return Err(invalid(
            key,
            format!(
                "{name:?}: min or start below 1 on {network}: set vardiff.allow_below_one = true if you mean it"
            ),
        ));
    }
    Ok(())
}

fn invalid(key: &'static str, detail: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        detail: detail.into(),
    }
}

/// What `validate` derives from the settings.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The address network.
    pub network: Network,
    /// The pool's payout, in PPLNS mode.
    pub pool_payout: Option<PayoutAddress>,
    /// The version-rolling mask.
    pub version_mask: u32,
    /// Where PROXY protocol headers are accepted from.
    pub proxies: Trusted,
    /// The Stratum V2 listener, when configured.
    pub v2: Option<V2Checked>,
}

impl PoolConfig {
    /// Reads a TOML file; unknown keys are errors (a typo must not be ignored).
    pub fn from_file(path: &Path) -> Result<PoolConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<PoolConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every value that could fail later, and derives the parsed forms.
    pub fn validate(&self) -> Result<Checked, ConfigError> {
        let network: Network = self
            .network
            .parse()
            .map_err(|e: address::AddressError| invalid("network", e.to_string()))?;
        if self.nodes.is_empty() {
            return Err(invalid(
                "nodes",
                "no node configured: add [[nodes]] url = \"http://127.0.0.1:8332/\" with user/password or cookie_file",
            ));
        }
        for node in &self.nodes {
            if !node.url.starts_with("http://") {
                return Err(invalid(
                    "nodes.url",
                    format!("{:?} must start with http://", node.url),
                ));
            }
            if let Some(z) = &node.zmq_hashblock
                && !z.starts_with("tcp://")
            {
                return Err(invalid(
                    "nodes.zmq_hashblock",
                    format!("{z:?} must be tcp://host:port"),
                ));
            }
            let password = node.user.is_some() && node.password.is_some();
            if !password && node.cookie_file.is_none() {
                return Err(invalid(
                    "nodes",
                    format!("{} needs user and password, or cookie_file", node.url),
                ));
            }
        }
        let pool_payout = match (&self.pool_address, self.mode) {
            (Some(a), _) => Some(
                address::parse(a, network).map_err(|e| invalid("pool_address", e.to_string()))?,
            ),
            (None, Mode::Pplns) => {
                return Err(invalid(
                    "pool_address",
                    "PPLNS mode needs the pool's payout address",
                ));
            }
            (None, Mode::Solo) => None,
        };
        if self.pool_tag.len() > 40 {
            return Err(invalid("pool_tag", "at most 40 bytes"));
        }
        let s = &self.stratum;
        if !(4..=8).contains(&s.extranonce2_size) {
            return Err(invalid("stratum.extranonce2_size", "must be 4 to 8 bytes"));
        }
        let version_mask = u32::from_str_radix(s.version_mask.trim_start_matches("0x"), 16)
            .map_err(|e| invalid("stratum.version_mask", format!("not hex: {e}")))?;
        let proxies = Trusted::parse(&s.proxy_protocol_from)
            .map_err(|e| invalid("stratum.proxy_protocol_from", e.to_string()))?;
        if let Some(tls) = &s.tls
            && tls.bind == s.bind
            && s.bind.port() != 0
        {
            return Err(invalid(
                "stratum.tls.bind",
                "must differ from stratum.bind (TLS needs its own port)",
            ));
        }
        let v = &self.vardiff;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(v.min) && positive(v.max) && positive(v.start) && v.min <= v.max) {
            return Err(invalid(
                "vardiff",
                "min, start and max must be above zero, with min <= max",
            ));
        }
        let below_one = v.below_one_allowed(network);
        if (v.min < 1.0 || v.start < 1.0) && !below_one {
            return Err(invalid(
                "vardiff",
                format!(
                    "min {} / start {} below 1 on {network}: set vardiff.allow_below_one = true if you mean it",
                    format_difficulty(v.min),
                    format_difficulty(v.start)
                ),
            ));
        }
        for p in &v.profile {
            check_profile(p, below_one, network)?;
        }
        for n in &self.notify {
            check_notify(n)?;
        }
        if !(positive(v.target_secs) && positive(v.retarget_secs)) {
            return Err(invalid(
                "vardiff",
                "target_secs and retarget_secs must be above zero",
            ));
        }
        let j = &self.jobs;
        if j.block_poll_ms == 0 || j.refresh_secs == 0 || j.keep_jobs < 2 {
            return Err(invalid(
                "jobs",
                "block_poll_ms and refresh_secs above zero, keep_jobs at least 2",
            ));
        }
        let l = &self.limits;
        if l.max_line < 512 {
            return Err(invalid("limits.max_line", "at least 512 bytes"));
        }
        if l.messages_per_sec == 0 {
            return Err(invalid("limits.messages_per_sec", "must be above zero"));
        }
        let d = &self.database;
        match &d.url {
            None if self.mode == Mode::Pplns => {
                return Err(invalid(
                    "database.url",
                    "PPLNS mode needs PostgreSQL: set [database] url = \"postgres://user:password@host/db\"",
                ));
            }
            Some(url) if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
                return Err(invalid(
                    "database.url",
                    format!("{url:?} must start with postgres://"),
                ));
            }
            _ => {}
        }
        match (&d.url, &d.read_url) {
            (None, Some(_)) => {
                return Err(invalid(
                    "database.read_url",
                    "a read replica needs the primary too: set database.url",
                ));
            }
            (_, Some(url))
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
            {
                return Err(invalid(
                    "database.read_url",
                    format!("{url:?} must start with postgres://"),
                ));
            }
            _ => {}
        }
        if d.max_connections < 2 || d.batch_max == 0 || d.write_timeout_secs == 0 {
            return Err(invalid(
                "database",
                "max_connections at least 2, batch_max and write_timeout_secs above zero",
            ));
        }
        if d.share_retention_days == 0 || d.stats_retention_days == 0 || d.stats_interval_secs == 0
        {
            return Err(invalid(
                "database",
                "share_retention_days, stats_retention_days and stats_interval_secs above zero",
            ));
        }
        if d.live_interval_secs > 0 && d.live_timeout_secs <= d.live_interval_secs {
            return Err(invalid(
                "database.live_timeout_secs",
                "must be longer than live_interval_secs (a live process would drop out)",
            ));
        }
        let p = &self.payouts;
        if !(p.window_factor.is_finite() && p.window_factor > 0.0) {
            return Err(invalid("payouts.window_factor", "must be above zero"));
        }
        let id = &self.api.pool_id;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "api.pool_id",
                format!("{id:?}: letters, digits, '-' and '_' only (it goes into URLs)"),
            ));
        }
        if let Some(bad) = self.api.cors_origins.iter().find(|o| {
            (*o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
                || o.ends_with('/')
        }) {
            return Err(invalid(
                "api.cors_origins",
                format!("{bad:?}: an origin is scheme://host[:port] without a path (or \"*\")"),
            ));
        }
        Trusted::parse(&self.api.trusted_proxies)
            .map_err(|e| invalid("api.trusted_proxies", e.to_string()))?;
        let a = &self.alerts;
        if !(a.withholding_p > 0.0 && a.withholding_p < 1.0) {
            return Err(invalid("alerts.withholding_p", "must be between 0 and 1"));
        }
        if !(1..=2160).contains(&a.withholding_hours) {
            return Err(invalid("alerts.withholding_hours", "must be 1 to 2160"));
        }
        if let Some(token) = &self.api.admin_token
            && (token.chars().count() < 16 || token.chars().any(char::is_whitespace))
        {
            return Err(invalid(
                "api.admin_token",
                "at least 16 characters and no spaces (it is a password: a long random one)",
            ));
        }
        if !(0.0..=100.0).contains(&p.fee_percent) {
            return Err(invalid("payouts.fee_percent", "must be 0 to 100"));
        }
        let (least, most) = p.miner_threshold_bounds();
        if least < DUST {
            return Err(invalid(
                "payouts.miner_threshold_min",
                "at least 546 satoshis (smaller payments are dust nodes do not relay)",
            ));
        }
        if most < least {
            return Err(invalid(
                "payouts.miner_threshold_max",
                format!("at least payouts.miner_threshold_min (or threshold): {least} satoshis"),
            ));
        }
        if p.method == PayoutMethod::Coinbase {
            if self.mode != Mode::Pplns {
                return Err(invalid(
                    "payouts.method",
                    "coinbase payouts split a PPLNS window: use mode = \"pplns\"",
                ));
            }
            if !(2..=1000).contains(&p.max_outputs) {
                return Err(invalid(
                    "payouts.max_outputs",
                    "2 to 1000 (the pool's output is one)",
                ));
            }
            if p.min_output < 546 {
                return Err(invalid(
                    "payouts.min_output",
                    "at least 546 satoshis (smaller outputs are dust nodes do not relay)",
                ));
            }
        }
        if p.check_secs == 0 || p.payment_interval_secs == 0 || p.confirmations == 0 {
            return Err(invalid(
                "payouts",
                "check_secs, payment_interval_secs and confirmations above zero",
            ));
        }
        let v2 = match &self.stratum.v2 {
            Some(v2) => Some(v2.check()?),
            None => None,
        };
        Ok(Checked {
            network,
            pool_payout,
            version_mask,
            proxies,
            v2,
        })
    }
}

impl V2Config {
    /// The key pair (from the value or the file) and validity.
    fn check(&self) -> Result<V2Checked, ConfigError> {
        let key = "stratum.v2.authority_secret_key";
        let text = match (&self.authority_secret_key, &self.authority_secret_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key,
                    "give authority_secret_key or authority_secret_key_file, not both",
                ));
            }
            (Some(text), None) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    invalid(
                        "stratum.v2.authority_secret_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            (None, None) => {
                return Err(invalid(
                    key,
                    "the V2 listener needs the authority key: run `pool keygen` and set \
                     authority_secret_key (or authority_secret_key_file)",
                ));
            }
        };
        let keys =
            AuthorityKeys::from_secret_text(&text).map_err(|e| invalid(key, e.to_string()))?;
        if let Some(public) = &self.authority_public_key {
            keys.check_public(public)
                .map_err(|e| invalid("stratum.v2.authority_public_key", e.to_string()))?;
        }
        if self.cert_validity_secs < 60 || self.cert_validity_secs > u64::from(u32::MAX) {
            return Err(invalid(
                "stratum.v2.cert_validity_secs",
                "from 60 seconds to about 136 years",
            ));
        }
        Ok(V2Checked {
            bind: self.bind,
            keys,
            cert_validity: Duration::from_secs(self.cert_validity_secs),
        })
    }
}

impl LimitsConfig {
    /// The authorize timeout.
    pub fn authorize_timeout(&self) -> Duration {
        Duration::from_secs(self.authorize_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGTEST_ADDR: &str = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn";

    fn minimal() -> PoolConfig {
        PoolConfig::from_toml(&format!(
            r#"
            network = "regtest"
            pool_address = "{REGTEST_ADDR}"
            [[nodes]]
            url = "http://127.0.0.1:18443/"
            user = "u"
            password = "p"
            [database]
            url = "postgres://pool@127.0.0.1/pool"
            "#
        ))
        .unwrap()
    }

    #[test]
    fn defaults_fill_everything_but_the_node() {
        let c = minimal();
        let checked = c.validate().unwrap();
        assert_eq!(checked.version_mask, 0x1fffe000);
        assert_eq!(c.stratum.extranonce2_size, 8);
        assert_eq!(c.jobs.block_poll_ms, 250);
        assert!(checked.pool_payout.is_some());
    }

    #[test]
    fn difficulties_below_one_only_where_the_operator_allows() {
        // Regtest (and the other test networks): allowed by default.
        let mut c = minimal();
        c.vardiff.min = 0.001;
        c.vardiff.start = 0.5;
        assert!(c.validate().is_ok());
        c.vardiff.allow_below_one = Some(false);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("vardiff.allow_below_one = true"), "{err}");
        // Main: refused by default, allowed when asked for.
        let mut c = minimal();
        c.network = "main".into();
        c.mode = Mode::Solo;
        c.pool_address = None;
        c.vardiff.min = 0.001;
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("min 0.001 / start 1024 below 1 on main"),
            "{err}"
        );
        c.vardiff.allow_below_one = Some(true);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn difficulty_profiles_from_toml_and_their_mistakes() {
        let base = |profiles: &str| {
            PoolConfig::from_toml(&format!(
                r#"
                network = "regtest"
                pool_address = "{REGTEST_ADDR}"
                [[nodes]]
                url = "http://127.0.0.1:18443"
                user = "u"
                password = "p"
                [database]
                url = "postgres://pool@127.0.0.1/pool"
                {profiles}
                "#
            ))
        };
        let c = base(
            r#"
            [[vardiff.profile]]
            name = "garage S9"
            workers = ["s9"]
            start = 4096
            integer_only = true
            [[vardiff.profile]]
            name = "esp32"
            user_agents = ["MyESP/"]
            min = 0.0001
            start = 0.001
            "#,
        )
        .unwrap();
        assert_eq!(c.vardiff.profile.len(), 2);
        assert_eq!(c.vardiff.profile[0].integer_only, Some(true));
        assert!(c.vardiff.builtin_profiles);
        if let Err(e) = c.validate() {
            panic!("below 1 is fine on regtest: {e}");
        }
        let mut main = c.clone();
        main.network = "main".into();
        main.mode = Mode::Solo;
        main.pool_address = None;
        let err = main.validate().unwrap_err().to_string();
        assert!(
            err.contains("\"esp32\": min or start below 1 on main"),
            "{err}"
        );
        let err = base("[[vardiff.profile]]\nname = \"x\"\nuser_agent = [\"a\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `user_agent`"), "{err}");
        for (toml, want) in [
            ("name = \"x\"", "at least one non-empty prefix"),
            (
                "name = \"x\"\nworkers = [\"\"]",
                "at least one non-empty prefix",
            ),
            ("name = \"x\"\nworkers = [\"a\"]\nmin = 0", "above zero"),
            (
                "name = \"x\"\nworkers = [\"a\"]\nmin = 9\nmax = 8",
                "min above max",
            ),
            ("name = \" \"\nworkers = [\"a\"]", "needs a name"),
        ] {
            let c = base(&format!("[[vardiff.profile]]\n{toml}")).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(
                err.starts_with("vardiff.profile") && err.contains(want),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn notify_sinks_from_toml_and_their_mistakes() {
        let with = |sinks: &str| {
            let mut c = minimal();
            c.notify = PoolConfig::from_toml(sinks).unwrap().notify;
            c.validate().map(|_| c)
        };
        let c = with(
            r#"
            [[notify]]
            kind = "webhook"
            url = "https://example.org/hook"
            secret = "k"
            [[notify]]
            kind = "telegram"
            bot_token = "1:A"
            chat_id = "-100"
            events = ["block_found", "payment_sent"]
            "#,
        )
        .unwrap();
        assert_eq!(c.notify[0].attempts, 5);
        assert_eq!(c.notify[0].offline_minutes, 10.0);
        assert_eq!(c.notify[1].kind, NotifyKind::Telegram);
        for (toml, want) in [
            ("kind = \"discord\"", "needs url"),
            ("kind = \"webhook\"\nurl = \"ftp://x\"", "needs url"),
            (
                "kind = \"telegram\"\nbot_token = \"1:A\"",
                "bot_token and chat_id",
            ),
            (
                "kind = \"discord\"\nurl = \"https://d\"\nevents = [\"block_fund\"]",
                "unknown event \"block_fund\"",
            ),
            (
                "kind = \"discord\"\nurl = \"https://d\"\nbest_scope = \"worker\"",
                "best_scope",
            ),
            (
                "kind = \"discord\"\nurl = \"https://d\"\nattempts = 0",
                "attempts",
            ),
        ] {
            let err = with(&format!("[[notify]]\n{toml}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("notify") && err.contains(want),
                "{toml}: {err}"
            );
        }
        let err = PoolConfig::from_toml("[[notify]]\nkind = \"slack\"\nurl = \"https://s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `slack`"), "{err}");
    }

    #[test]
    fn a_read_replica_needs_a_primary_and_a_postgres_url() {
        let mut c = minimal();
        c.database.read_url = Some("postgres://reader@replica/pool".into());
        c.validate().unwrap();
        c.database.read_url = Some("mysql://replica/pool".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("database.read_url") && err.contains("postgres://"),
            "{err}"
        );
        c.database.read_url = Some("postgres://reader@replica/pool".into());
        c.database.url = None;
        c.mode = Mode::Solo;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("needs the primary"), "{err}");
    }

    #[test]
    fn the_live_view_timeout_must_outlast_its_interval() {
        let mut c = minimal();
        assert_eq!(
            (c.database.live_interval_secs, c.database.live_timeout_secs),
            (5, 20)
        );
        c.database.live_timeout_secs = 5;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("database.live_timeout_secs"), "{err}");
        // Off: no timeout to check.
        c.database.live_interval_secs = 0;
        c.validate().unwrap();
    }

    #[test]
    fn miners_choose_thresholds_within_the_operators_bounds() {
        let mut c = minimal();
        assert_eq!(
            c.payouts.miner_threshold_bounds(),
            (1_000_000, 1_000_000_000)
        );
        c.payouts.threshold = 100;
        assert_eq!(c.payouts.miner_threshold_bounds().0, 546, "never dust");
        assert!(c.validate().is_ok());
        c.payouts.miner_threshold_min = Some(500);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("payouts.miner_threshold_min"), "{err}");
        c.payouts.miner_threshold_min = Some(50_000);
        c.payouts.miner_threshold_max = 10_000;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("payouts.miner_threshold_max"), "{err}");
        let parsed: PoolConfig = toml::from_str(
            "[[nodes]]\nurl = \"http://127.0.0.1:8332/\"\n[payouts]\nminer_threshold_min = 50000\n",
        )
        .unwrap();
        assert_eq!(
            parsed.payouts.miner_threshold_bounds(),
            (50_000, 1_000_000_000)
        );
    }

    #[test]
    fn coinbase_payouts_need_pplns_and_sane_outputs() {
        let mut c = minimal();
        c.payouts.method = PayoutMethod::Coinbase;
        assert!(c.validate().is_ok());
        c.payouts.min_output = 100;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("payouts.min_output"), "{err}");
        c.payouts.min_output = 546;
        c.payouts.max_outputs = 1;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("payouts.max_outputs"), "{err}");
        let mut c = minimal();
        c.mode = Mode::Solo;
        c.payouts.method = PayoutMethod::Coinbase;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("mode = \"pplns\""), "{err}");
        let parsed =
            PoolConfig::from_toml("[payouts]\nmethod = \"coinbase\"\nmax_outputs = 50").unwrap();
        assert_eq!(
            (
                parsed.payouts.method,
                parsed.payouts.max_outputs,
                parsed.payouts.min_output
            ),
            (PayoutMethod::Coinbase, 50, 10_000)
        );
    }

    #[test]
    fn typos_and_bad_values_are_named() {
        let err = PoolConfig::from_toml("modee = \"solo\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `modee`"), "{err}");
        let mut c = minimal();
        c.pool_address = Some("not-an-address".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("pool_address")
        );
        let mut c = minimal();
        c.pool_address = None;
        assert!(c.validate().unwrap_err().to_string().contains("PPLNS"));
        c.mode = Mode::Solo;
        assert!(c.validate().is_ok());
        let mut c = minimal();
        c.database.url = None;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("database.url")
        );
        c.mode = Mode::Solo;
        assert!(c.validate().is_ok(), "SOLO mode needs no database");
        let mut c = minimal();
        c.api.pool_id = "my pool/1".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("api.pool_id")
        );
        let mut c = minimal();
        c.api.admin_token = Some("short".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("api.admin_token")
        );
        c.api.admin_token = Some("a-long-random-admin-token".into());
        assert!(c.validate().is_ok());
        for (origin, ok) in [
            ("https://stats.example", true),
            ("*", true),
            ("http://127.0.0.1:8000", true),
            ("stats.example", false),
            ("https://stats.example/", false),
        ] {
            c.api.cors_origins = vec![origin.into()];
            assert_eq!(c.validate().is_ok(), ok, "{origin}");
        }
        c.api.cors_origins.clear();
        c.api.trusted_proxies = vec!["10.0.0.0/40".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .starts_with("api.trusted_proxies")
        );
        let err = PoolConfig::from_toml("[api]\nbnd = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `bnd`"), "{err}");
        let mut c = minimal();
        c.payouts.fee_percent = 101.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("fee_percent")
        );
        let mut c = minimal();
        c.stratum.extranonce2_size = 2;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("extranonce2_size")
        );
        let mut c = minimal();
        c.nodes[0].password = None;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("cookie_file")
        );
    }

    #[test]
    fn the_v2_listener_needs_a_usable_authority_key() {
        const SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";
        const PUBLIC: &str = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
        let with = |section: &str| {
            let mut c = minimal();
            let v2: V2Config = toml::from_str(section).unwrap();
            c.stratum.v2 = Some(v2);
            c.validate()
        };
        let ok = with(&format!(
            "bind = \"127.0.0.1:3336\"\nauthority_secret_key = \"{SECRET}\"\nauthority_public_key = \"{PUBLIC}\""
        ))
        .unwrap();
        let v2 = ok.v2.unwrap();
        assert_eq!(v2.keys.public_text(), PUBLIC);
        assert_eq!(v2.cert_validity, Duration::from_secs(3600));
        let err = |section: &str| with(section).unwrap_err().to_string();
        assert!(err("bind = \"127.0.0.1:3336\"").contains("pool keygen"));
        assert!(
            err(&format!(
                "bind = \"127.0.0.1:3336\"\nauthority_secret_key = \"{PUBLIC}\""
            ))
            .contains("stratum.v2.authority_secret_key")
        );
        let other = AuthorityKeys::generate(|| [9; 32]).public_text();
        assert!(
            err(&format!(
                "bind = \"127.0.0.1:3336\"\nauthority_secret_key = \"{SECRET}\"\nauthority_public_key = \"{other}\""
            ))
            .contains("does not belong")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("authority.key");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let from_file = with(&format!(
            "bind = \"127.0.0.1:3336\"\nauthority_secret_key_file = \"{}\"\ncert_validity_secs = 600",
            file.display()
        ))
        .unwrap()
        .v2
        .unwrap();
        assert_eq!(from_file.keys.public_text(), PUBLIC);
        assert!(
            err("bind = \"127.0.0.1:3336\"\nauthority_secret_key_file = \"/nonexistent/key\"")
                .contains("cannot read")
        );
    }
}
