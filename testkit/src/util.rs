//! Small shared helpers: free ports, paths, waiting.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::Error;

/// A loopback TCP port that was free a moment ago. The kernel hands out ports from its
/// ephemeral range in order, so two calls in a row return different ports.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("binding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(Error::io("reading a bound port"))?
        .port();
    Ok(port)
}

/// The repository root (this crate lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Calls `probe` until it returns `Ok(Some(_))`, or fails after `timeout` with the last
/// error it gave.
pub fn wait_for<T, E: std::fmt::Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, E>,
) -> Result<T, Error> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        match probe() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!(" (last error: {e})"),
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
