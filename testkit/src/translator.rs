//! The Stratum Reference Implementation's translator proxy (`translator_sv2` 0.6.0 from
//! crates.io, installed by `scripts/setup` into `.cache/sv2/bin/`): Stratum v1 miners
//! connect to it, and it mines for them on a Stratum V2 pool, one extended channel per
//! miner (`aggregate_channels = false`).
//!
//! It opens each channel as `USER_IDENTITY.minerN`, N counting its downstream miners, so
//! every miner behind one translator is paid to the one address it is configured with.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::wait_for;
use crate::{Error, cache_dir, free_port};

const TRANSLATOR_ENV: &str = "TESTKIT_TRANSLATOR_SV2";

/// Finds the translator: `$TESTKIT_TRANSLATOR_SV2`, else the setup script's cache.
pub fn locate_translator() -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os(TRANSLATOR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("sv2/bin/translator_sv2"));
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(path),
        _ => Err(Error::MissingBinary {
            what: "translator_sv2 (the Stratum V2 reference translator)",
            looked: path.display().to_string(),
            hint: format!(", or point {TRANSLATOR_ENV} at one"),
        }),
    }
}

/// A running translator; killed and its directory removed on drop.
pub struct Translator {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Translator {
    /// Starts a translator for the V2 pool at `upstream`, trusting `authority_pubkey`
    /// (base58check, as `pool keygen` prints it), opening channels as `user_identity`, and
    /// waits until it accepts v1 miners.
    pub fn start(
        upstream: SocketAddr,
        authority_pubkey: &str,
        user_identity: &str,
    ) -> Result<Translator, Error> {
        let binary = locate_translator()?;
        let dir = tempfile::tempdir().map_err(Error::io("creating the translator's dir"))?;
        let port = free_port()?;
        let config = format!(
            r#"downstream_address = "127.0.0.1"
downstream_port = {port}
max_supported_version = 2
min_supported_version = 2
downstream_extranonce2_size = 4
aggregate_channels = false

[downstream_difficulty_config]
min_individual_miner_hashrate = 1_000_000.0
shares_per_minute = 60.0
enable_vardiff = false
job_keepalive_interval_secs = 60

[[upstreams]]
address = "{}"
port = {}
authority_pubkey = "{authority_pubkey}"
user_identity = "{user_identity}"
"#,
            upstream.ip(),
            upstream.port(),
        );
        let config_path = dir.path().join("translator.toml");
        std::fs::write(&config_path, config).map_err(Error::io("writing translator.toml"))?;
        let log = std::fs::File::create(dir.path().join("translator.log"))
            .map_err(Error::io("creating translator.log"))?;
        let log2 = log
            .try_clone()
            .map_err(Error::io("opening translator.log"))?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(Error::io("starting translator_sv2"))?;
        let mut translator = Translator { child, port, dir };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ready = wait_for("the translator's v1 port", Duration::from_secs(60), || {
            if let Ok(Some(status)) = translator.child.try_wait() {
                return Err(format!("exited with {status}"));
            }
            Ok(
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| ()),
            )
        });
        match ready {
            Ok(()) => Ok(translator),
            // Dropping the translator stops it.
            Err(e) => Err(Error::Command {
                command: format!("{} -c {}", binary.display(), config_path.display()),
                detail: format!("{e}; its log:\n{}", translator.log()),
            }),
        }
    }

    /// The port v1 miners connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the process is still running (it has not crashed or exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("translator.log")).unwrap_or_default()
    }
}

impl Drop for Translator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
