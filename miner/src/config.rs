//! The miner's settings: command-line flags (cpuminer/cgminer names), environment
//! variables (`MINER_*`), and a TOML file (`-c FILE`) that can hold every flag.
//! Precedence: flags, then environment, then the file, then defaults.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

/// Every mining setting. The same struct is parsed from flags/environment (clap) and
/// from the TOML file (serde, unknown keys refused), then merged.
#[derive(Args, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MineArgs {
    /// Pool URL, stratum+tcp://HOST:PORT, stratum+ssl://HOST:PORT or (Stratum V2)
    /// stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY (repeat -o for failover pools, in order,
    /// of either kind); with --solo, the node: http://USER:PASS@HOST:PORT.
    #[arg(short = 'o', long = "url", env = "MINER_URL", value_delimiter = ',')]
    #[serde(deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    /// Worker name (for most pools: your payout address, optionally .worker).
    #[arg(short = 'u', long, env = "MINER_USER")]
    pub user: Option<String>,
    /// Worker password (some pools read options from it, e.g. d=1024).
    #[arg(short = 'p', long, env = "MINER_PASS")]
    pub pass: Option<String>,
    /// CPU hashing threads (default: every core, less one per OpenCL device); 0 with
    /// --gpu or --gpu-devices hashes on the devices only.
    #[arg(
        short = 't',
        long,
        visible_alias = "cpu-threads",
        env = "MINER_THREADS"
    )]
    pub threads: Option<usize>,
    /// Stop after this many seconds of mining (print the summary and exit 0), as
    /// cpuminer-opt's --time-limit. Default: until Ctrl-C or SIGTERM.
    #[arg(long = "time-limit", env = "MINER_TIME_LIMIT")]
    pub time_limit: Option<u64>,
    /// Also write the log to this file (appended, plain text).
    #[arg(long = "log-file", env = "MINER_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    /// Also send the log to the system log (/dev/log: journald, rsyslog).
    #[arg(long, env = "MINER_SYSLOG")]
    pub syslog: bool,
    /// Pause a device (an OpenCL device by its own sensor, the CPU threads by the CPU
    /// package's) while it is above this temperature, °C; it resumes 5 °C below.
    #[arg(long = "max-temp", env = "MINER_MAX_TEMP")]
    pub max_temp: Option<f64>,
    /// Pin the hashing threads to these CPUs, one CPU per thread in turn: a hex mask
    /// (0x5: CPUs 0 and 2) or a list (0,2-3). Default: wherever the system runs them.
    #[arg(long = "cpu-affinity", env = "MINER_CPU_AFFINITY")]
    pub cpu_affinity: Option<String>,
    /// Priority of the hashing threads: 0 idle (default: a desktop or node on the same
    /// machine comes first), 1 low, 2 normal, 3 to 5 above normal (root only).
    #[arg(long = "cpu-priority", env = "MINER_CPU_PRIORITY")]
    pub cpu_priority: Option<u8>,
    /// Hash on every OpenCL GPU too.
    #[arg(long, env = "MINER_GPU")]
    pub gpu: bool,
    /// Hash on these OpenCL devices (indexes from --list-devices, e.g. 0,2).
    #[arg(long = "gpu-devices", env = "MINER_GPU_DEVICES", value_delimiter = ',')]
    pub gpu_devices: Vec<usize>,
    /// CPU backend: avx512, avx2, sha-ni or scalar (default: the fastest on this CPU).
    #[arg(long, env = "MINER_BACKEND")]
    pub backend: Option<String>,
    /// Ask the pool for this share difficulty (mining.suggest_difficulty).
    #[arg(long = "suggest-diff", env = "MINER_SUGGEST_DIFF")]
    pub suggest_diff: Option<f64>,
    /// Do not ask for version rolling (BIP 310).
    #[arg(long, env = "MINER_NO_VERSION_ROLLING")]
    pub no_version_rolling: bool,
    /// Follow client.reconnect to another host (default: same host only).
    #[arg(long, env = "MINER_ALLOW_REDIRECT")]
    pub allow_redirect: bool,
    /// Seconds on a backup pool before trying the first pool again.
    #[arg(long, env = "MINER_FAILBACK")]
    pub failback: Option<u64>,
    /// Seconds without a message from the pool before reconnecting.
    #[arg(long, env = "MINER_TIMEOUT")]
    pub timeout: Option<u64>,
    /// For stratum+ssl pools: trust only the certificate with this SHA-256 fingerprint
    /// (hex, colons allowed) instead of the usual certificate authorities.
    #[arg(long = "tls-fingerprint", env = "MINER_TLS_FINGERPRINT")]
    pub tls_fingerprint: Option<String>,
    /// For stratum2+tcp pools given without a key: the authority public key their
    /// certificates must be signed by (as the pool operator publishes it).
    #[arg(long = "authority-key", env = "MINER_AUTHORITY_KEY")]
    pub authority_key: Option<String>,
    /// For stratum2+tcp pools: the channel to open, extended (the miner rolls its own
    /// extranonce; the default) or standard (header-only mining).
    #[arg(long = "sv2-channel", env = "MINER_SV2_CHANNEL")]
    pub sv2_channel: Option<String>,
    /// Mine solo against a node's getblocktemplate instead of a pool.
    #[arg(long, env = "MINER_SOLO")]
    pub solo: bool,
    /// Solo: the address the coinbase pays.
    #[arg(long = "coinbase-addr", env = "MINER_COINBASE_ADDR")]
    pub coinbase_addr: Option<String>,
    /// Solo: a tag for the coinbase scriptSig.
    #[arg(long = "coinbase-tag", env = "MINER_COINBASE_TAG")]
    pub coinbase_tag: Option<String>,
    /// Solo: the node's cookie file instead of a user and password in the URL.
    #[arg(long = "rpc-cookie", env = "MINER_RPC_COOKIE")]
    pub rpc_cookie: Option<PathBuf>,
    /// Solo: the network the payout address must belong to (main, test, signet, regtest).
    #[arg(long, env = "MINER_NETWORK")]
    pub network: Option<String>,
    /// Seconds between console status lines.
    #[arg(long = "print-interval", env = "MINER_PRINT_INTERVAL")]
    pub print_interval: Option<u64>,
    /// Serve the JSON API on this address (e.g. 127.0.0.1:4048); off by default.
    #[arg(long = "api-bind", env = "MINER_API_BIND")]
    pub api_bind: Option<String>,
    /// Bearer token the API requires.
    #[arg(long = "api-token", env = "MINER_API_TOKEN")]
    pub api_token: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML, or an unknown key, or a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (it names the line and the key).
        message: String,
    },
}

impl MineArgs {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<MineArgs, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Fills what `self` (flags and environment) left unset from `file`.
    pub fn or(self, file: MineArgs) -> MineArgs {
        MineArgs {
            url: if self.url.is_empty() {
                file.url
            } else {
                self.url
            },
            user: self.user.or(file.user),
            pass: self.pass.or(file.pass),
            threads: self.threads.or(file.threads),
            time_limit: self.time_limit.or(file.time_limit),
            max_temp: self.max_temp.or(file.max_temp),
            log_file: self.log_file.or(file.log_file),
            syslog: self.syslog || file.syslog,
            cpu_affinity: self.cpu_affinity.or(file.cpu_affinity),
            cpu_priority: self.cpu_priority.or(file.cpu_priority),
            gpu: self.gpu || file.gpu,
            gpu_devices: if self.gpu_devices.is_empty() {
                file.gpu_devices
            } else {
                self.gpu_devices
            },
            backend: self.backend.or(file.backend),
            suggest_diff: self.suggest_diff.or(file.suggest_diff),
            no_version_rolling: self.no_version_rolling || file.no_version_rolling,
            allow_redirect: self.allow_redirect || file.allow_redirect,
            failback: self.failback.or(file.failback),
            timeout: self.timeout.or(file.timeout),
            tls_fingerprint: self.tls_fingerprint.or(file.tls_fingerprint),
            authority_key: self.authority_key.or(file.authority_key),
            sv2_channel: self.sv2_channel.or(file.sv2_channel),
            solo: self.solo || file.solo,
            coinbase_addr: self.coinbase_addr.or(file.coinbase_addr),
            coinbase_tag: self.coinbase_tag.or(file.coinbase_tag),
            rpc_cookie: self.rpc_cookie.or(file.rpc_cookie),
            network: self.network.or(file.network),
            print_interval: self.print_interval.or(file.print_interval),
            api_bind: self.api_bind.or(file.api_bind),
            api_token: self.api_token.or(file.api_token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_flags_and_typos() {
        let file: MineArgs = toml::from_str(
            "url = [\"stratum+tcp://a:3333\", \"stratum+tcp://b:3333\"]\nuser = \"file-user\"\nthreads = 2\nsolo = false\n",
        )
        .unwrap();
        assert_eq!(file.url.len(), 2);
        let single: MineArgs = toml::from_str("url = \"stratum+tcp://a:3333\"").unwrap();
        assert_eq!(single.url, vec!["stratum+tcp://a:3333".to_string()]);
        let flags = MineArgs {
            user: Some("flag-user".into()),
            ..MineArgs::default()
        };
        let merged = flags.or(file);
        assert_eq!(merged.user.as_deref(), Some("flag-user"));
        assert_eq!(merged.threads, Some(2));
        assert_eq!(merged.url.len(), 2);
        let typo = toml::from_str::<MineArgs>("uesr = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(typo.contains("uesr"), "{typo}");
    }
}
