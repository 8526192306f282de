//! What a session (Stratum v1 or V2) asks of its connection: the lines it sends, the
//! events it hands on (shares, blocks, closes) and why it wants the connection closed.

use bytes::{Bytes, BytesMut};
use protocol::Difficulty;
use protocol::stratum::codec::parse_line;
use protocol::stratum::{FrameError, Message, StratumCodec};

use crate::shares::record::{BlockEvent, ShareEvent};
use crate::shares::validate::Reject;

/// One line for a Stratum v1 miner: a message to encode, or one encoded already. A job's
/// `mining.notify` is encoded once for every connection that gets it
/// ([`crate::chain::jobs::Job::notify_line`]), so a new block costs each connection a
/// write, not a JSON encoding.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// A message for this connection alone (a reply, a difficulty).
    Message(Message),
    /// A whole line, newline included, shared with other connections.
    Line(Bytes),
}

impl Outgoing {
    /// Appends the line to `dst`.
    pub fn write_to(&self, dst: &mut BytesMut) {
        match self {
            Outgoing::Message(m) => StratumCodec::write(m, dst),
            Outgoing::Line(line) => dst.extend_from_slice(line),
        }
    }

    /// The message this line says (a pre-encoded line parsed back: for tests and tools).
    pub fn into_message(self) -> Result<Message, FrameError> {
        match self {
            Outgoing::Message(m) => Ok(m),
            Outgoing::Line(line) => parse_line(line.strip_suffix(b"\n").unwrap_or(&line)),
        }
    }
}

impl From<Message> for Outgoing {
    fn from(m: Message) -> Outgoing {
        Outgoing::Message(m)
    }
}

/// Why the session wants the connection closed.
#[derive(Clone, Debug, PartialEq)]
pub enum CloseReason {
    /// The peer sent a line over the limit.
    LineTooLong,
    /// Too many malformed lines in a row.
    BadLines(u32),
    /// More messages per second than allowed.
    Flood,
    /// Not authorized in time.
    AuthorizeTimeout,
    /// Nothing received for too long.
    Idle,
    /// Banned for a run of invalid shares.
    Banned(u32),
    /// The pool is shutting down.
    Shutdown,
}

impl CloseReason {
    /// Whether the close counts against the peer's address as a protocol violation
    /// (`limits.ban_after_violations`): junk, never valid work or a timeout.
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            CloseReason::LineTooLong | CloseReason::BadLines(_) | CloseReason::Flood
        )
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::LineTooLong => write!(f, "line over the length limit"),
            CloseReason::BadLines(n) => write!(f, "{n} malformed lines in a row"),
            CloseReason::Flood => write!(f, "too many messages per second"),
            CloseReason::AuthorizeTimeout => write!(f, "did not authorize in time"),
            CloseReason::Idle => write!(f, "idle too long"),
            CloseReason::Banned(n) => write!(f, "banned after {n} invalid shares in a row"),
            CloseReason::Shutdown => write!(f, "pool shutting down"),
        }
    }
}

/// Something the driver or the rest of the pool must act on.
#[derive(Clone, Debug)]
pub enum Event {
    /// A worker authorized.
    Authorized {
        /// The username.
        user: String,
        /// The connection's extranonce1 then (the session id of the API's sessions).
        session_id: [u8; 4],
        /// What the miner called itself, if it said.
        user_agent: Option<String>,
    },
    /// A share was accepted.
    Share(Box<ShareEvent>),
    /// A share was refused.
    Rejected {
        /// The username (as sent).
        user: String,
        /// Why.
        reason: Reject,
    },
    /// A block candidate.
    Block(Box<BlockEvent>),
    /// The difficulty changed.
    Difficulty(Difficulty),
    /// Close the connection (after sending what is queued); a ban is also recorded.
    Close(CloseReason),
}
