//! Where the miner's log goes: stderr always (plain text when it is not a terminal, so
//! journald and redirects get no colour codes), and on request a file (`--log-file`,
//! appended) and the system log (`--syslog`, RFC 3164 datagrams to `/dev/log`, which
//! journald and rsyslog read). The status line is not a log line: it goes to stdout.

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Where the system log listens on Linux.
pub const SYSLOG_SOCKET: &str = "/dev/log";

/// Installs the log for the process: stderr, plus `log_file` and the system log when asked.
pub fn init(log_file: Option<&Path>, syslog: bool) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let file = match log_file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--log-file {}: {e}", path.display()))?;
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(Mutex::new(f)),
            )
        }
        None => None,
    };
    let syslog = if syslog {
        Some(
            SyslogLayer::connect(Path::new(SYSLOG_SOCKET))
                .map_err(|e| format!("--syslog: cannot reach {SYSLOG_SOCKET}: {e}"))?,
        )
    } else {
        None
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file)
        .with(syslog)
        .try_init()
        .map_err(|e| format!("cannot install the log: {e}"))
}

/// Sends each event to a syslog socket as `<PRI>miner[PID]: LEVEL message key=value...`
/// (facility user).
pub struct SyslogLayer {
    socket: UnixDatagram,
    pid: u32,
}

impl SyslogLayer {
    /// Connects to the syslog socket at `path`.
    pub fn connect(path: &Path) -> std::io::Result<SyslogLayer> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(SyslogLayer {
            socket,
            pid: std::process::id(),
        })
    }
}

/// The message and the other fields of an event, as one line.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        // Facility user (1) x 8 + severity.
        let severity = match level {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        let mut line = Line::default();
        event.record(&mut line);
        let text = format!(
            "<{}>miner[{}]: {level} {}{}",
            8 + severity,
            self.pid,
            line.message,
            line.fields
        );
        // The log must never stop the miner: a full or missing socket loses the line.
        let _ = self.socket.send(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_syslog_socket_with_their_severity() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("log");
        let listener = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("{e}"));
        let layer = SyslogLayer::connect(&path).unwrap_or_else(|e| panic!("{e}"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(device = "gpu 0", "too hot");
            tracing::info!("hashing again");
        });
        let mut buf = [0u8; 512];
        let mut next = || {
            let n = listener.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let pid = std::process::id();
        assert_eq!(
            next(),
            format!("<12>miner[{pid}]: WARN too hot device=gpu 0")
        );
        assert_eq!(next(), format!("<14>miner[{pid}]: INFO hashing again"));
    }
}
