//! Newline-delimited JSON framing for Stratum: a line splitter over a byte buffer with a
//! length cap ([`StratumCodec::next_line`], [`StratumCodec::write`]), plain functions with
//! no runtime behind them, and the tokio-util `Decoder`/`Encoder` adapter for the crates
//! that run on tokio (feature `tokio-codec`, on by default).
//!
//! One bad line must not end a session: the decoder yields `Ok(Some(Err(FrameError)))` for
//! a line that is too long, not UTF-8, not JSON, or not a Stratum message, and carries on
//! with the next line; the caller decides whether to answer, count or disconnect. Only I/O
//! errors end the stream. An over-long line is reported once, as soon as the limit is
//! passed, and the rest of it is skipped without being buffered, so a peer cannot make us
//! hold more than `max_line` bytes.

use bytes::{Buf, BufMut, BytesMut};

use crate::stratum::message::{Id, Message, MessageError, Response};

/// A line cap that fits every message a miner sends, with room to spare.
pub const MAX_LINE_FROM_MINER: usize = 16 * 1024;
/// A line cap for what pools send (long coinbases, many branches, get_transactions replies).
pub const MAX_LINE_FROM_POOL: usize = 4 * 1024 * 1024;

/// Why one line was not a usable message. The stream goes on after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The line passed the length cap; the rest of it is skipped.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The cap.
        limit: usize,
    },
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The line is not JSON.
    #[error("line is not valid JSON: {0}")]
    InvalidJson(String),
    /// The line is JSON but not a Stratum message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A request with a usable id whose method or params are malformed: the id is kept so
    /// the error reply can carry it, as the sender expects.
    #[error("{error}")]
    BadRequest {
        /// The request's id.
        id: Id,
        /// What is wrong with it.
        error: MessageError,
    },
}

impl FrameError {
    /// The id to answer with, when the line was a request whose id could be read.
    pub fn request_id(&self) -> Option<&Id> {
        match self {
            FrameError::BadRequest { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// An error that ends the stream: only I/O.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The Stratum line codec.
#[derive(Debug, Clone)]
pub struct StratumCodec {
    max_line: usize,
    /// How far the buffer has been searched for a newline already.
    scanned: usize,
    /// Skipping the rest of an over-long line.
    discarding: bool,
}

impl StratumCodec {
    /// A codec that refuses lines longer than `max_line` bytes (newline excluded).
    pub fn new(max_line: usize) -> Self {
        StratumCodec {
            max_line,
            scanned: 0,
            discarding: false,
        }
    }

    /// The line cap.
    pub fn max_line(&self) -> usize {
        self.max_line
    }
}

/// Parses one line (without its newline) into a message.
pub fn parse_line(line: &[u8]) -> Result<Message, FrameError> {
    let text = std::str::from_utf8(line).map_err(|e| FrameError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
    Message::from_value(&value).map_err(|error| match Id::of_request(&value) {
        Some(id) => FrameError::BadRequest { id, error },
        None => FrameError::Message(error),
    })
}

fn trim_line(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}

impl StratumCodec {
    /// Takes the next complete line out of `buf` and parses it; `None` until a newline
    /// arrives. An over-long line is reported once and skipped as it arrives.
    pub fn next_line(&mut self, buf: &mut BytesMut) -> Option<Result<Message, FrameError>> {
        loop {
            let newline = buf[self.scanned..].iter().position(|&b| b == b'\n');
            match (self.discarding, newline) {
                (true, Some(i)) => {
                    buf.advance(self.scanned + i + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (true, None) => {
                    buf.advance(buf.len());
                    self.scanned = 0;
                    return None;
                }
                (false, Some(i)) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    if end > self.max_line {
                        buf.advance(end + 1);
                        return Some(Err(FrameError::LineTooLong {
                            limit: self.max_line,
                        }));
                    }
                    let line = buf.split_to(end + 1);
                    let line = trim_line(&line[..end]);
                    if line.is_empty() {
                        continue; // blank lines and bare "\r\n" keep-alives
                    }
                    return Some(parse_line(line));
                }
                (false, None) => {
                    if buf.len() > self.max_line {
                        buf.advance(buf.len());
                        self.scanned = 0;
                        self.discarding = true;
                        return Some(Err(FrameError::LineTooLong {
                            limit: self.max_line,
                        }));
                    }
                    self.scanned = buf.len();
                    return None;
                }
            }
        }
    }

    /// At the end of the stream: the next line, then a last one without its newline.
    pub fn last_line(&mut self, buf: &mut BytesMut) -> Option<Result<Message, FrameError>> {
        if let Some(item) = self.next_line(buf) {
            return Some(item);
        }
        // A last line without its newline still counts.
        self.scanned = 0;
        if self.discarding || buf.is_empty() {
            buf.clear();
            self.discarding = false;
            return None;
        }
        let line = buf.split_to(buf.len());
        let line = trim_line(&line);
        if line.is_empty() {
            return None;
        }
        Some(parse_line(line))
    }

    /// Appends `msg` as one line to `dst`.
    pub fn write(msg: &Message, dst: &mut BytesMut) {
        let mut writer = dst.writer();
        // Writing JSON into a growable buffer cannot fail.
        let _ = match msg {
            Message::Response(r) => write_response(r, &mut writer),
            _ => serde_json::to_writer(&mut writer, &msg.to_value()),
        };
        writer.into_inner().put_u8(b'\n');
    }
}

/// A reply, field by field: the bytes `to_value` would give (`id`, `result`, `error`, in
/// that order), without building the value first. A pool answers every share with one.
fn write_response(r: &Response, out: &mut impl std::io::Write) -> serde_json::Result<()> {
    out.write_all(b"{\"id\":").map_err(serde_json::Error::io)?;
    match &r.id {
        Id::Num(n) => serde_json::to_writer(&mut *out, n)?,
        Id::Str(s) => serde_json::to_writer(&mut *out, s)?,
        Id::Null => out.write_all(b"null").map_err(serde_json::Error::io)?,
    }
    out.write_all(b",\"result\":")
        .map_err(serde_json::Error::io)?;
    serde_json::to_writer(&mut *out, &r.result)?;
    out.write_all(b",\"error\":")
        .map_err(serde_json::Error::io)?;
    match &r.error {
        None => out.write_all(b"null").map_err(serde_json::Error::io)?,
        Some(e) => serde_json::to_writer(&mut *out, &e.to_value())?,
    }
    out.write_all(b"}").map_err(serde_json::Error::io)
}

/// The tokio-util adapter: `Framed<socket, StratumCodec>` yields one item per line.
#[cfg(feature = "tokio-codec")]
mod adapter {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::{CodecError, FrameError, StratumCodec};
    use crate::stratum::message::Message;

    impl Decoder for StratumCodec {
        type Item = Result<Message, FrameError>;
        type Error = CodecError;

        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
            Ok(self.next_line(buf))
        }

        fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
            Ok(self.last_line(buf))
        }
    }

    impl Encoder<&Message> for StratumCodec {
        type Error = CodecError;

        fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
            StratumCodec::write(msg, dst);
            Ok(())
        }
    }

    impl Encoder<Message> for StratumCodec {
        type Error = CodecError;

        fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
            StratumCodec::write(&msg, dst);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stratum::method::Method;
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn replies_are_written_as_their_json_value_would_be() {
        use crate::stratum::message::StratumError;
        use serde_json::json;
        let ids = [
            Id::Num(7.into()),
            Id::Num(serde_json::Number::from_f64(2.5).unwrap()),
            Id::Str("a \"quoted\" id\n\u{e9}".into()),
            Id::Null,
        ];
        let results = [
            json!(true),
            json!(false),
            json!(null),
            json!([["mining.notify", "ab"], "00", 8]),
        ];
        for id in ids {
            for result in &results {
                for error in [None, Some(StratumError::new(23, "Low difficulty share"))] {
                    let msg = Message::Response(Response {
                        id: id.clone(),
                        result: result.clone(),
                        error,
                    });
                    let mut fast = BytesMut::new();
                    StratumCodec::write(&msg, &mut fast);
                    let mut slow = serde_json::to_vec(&msg.to_value()).unwrap();
                    slow.push(b'\n');
                    assert_eq!(fast.as_ref(), slow.as_slice(), "{msg:?}");
                }
            }
        }
    }

    fn decode_all(codec: &mut StratumCodec, input: &[u8]) -> Vec<Result<Message, FrameError>> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        if let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn bad_lines_are_errors_and_the_stream_goes_on() {
        let mut codec = StratumCodec::new(200);
        let long = format!(
            "{{\"id\":1,\"method\":\"x\",\"params\":[\"{}\"]}}\n",
            "a".repeat(500)
        );
        let mut input = Vec::new();
        input.extend_from_slice(b"\r\n\n");
        input.extend_from_slice(b"not json\n");
        input.extend_from_slice(b"\xff\xfe{}\n");
        input.extend_from_slice(long.as_bytes());
        input.extend_from_slice(b"[1,2]\n");
        input.extend_from_slice(b"{\"id\":1,\"method\":\"mining.submit\",\"params\":[\"w\"]}\n");
        input.extend_from_slice(
            b"{\"id\":2,\"method\":\"mining.extranonce.subscribe\",\"params\":[]}\r\n",
        );
        input.extend_from_slice(b"{\"id\":3,\"method\":\"mining.frobnicate\",\"params\":[1]}");
        let items = decode_all(&mut codec, &input);
        assert_eq!(items.len(), 7, "{items:?}");
        assert!(matches!(items[0], Err(FrameError::InvalidJson(_))));
        assert_eq!(items[1], Err(FrameError::InvalidUtf8 { offset: 0 }));
        assert_eq!(items[2], Err(FrameError::LineTooLong { limit: 200 }));
        assert!(matches!(
            items[3],
            Err(FrameError::Message(MessageError::NotAnObject(_)))
        ));
        // A malformed request keeps its id, so the reply can carry it.
        assert!(matches!(
            &items[4],
            Err(FrameError::BadRequest { id, error: MessageError::BadParams { .. } })
                if *id == Id::from(1u64)
        ));
        assert_eq!(
            items[4].as_ref().err().and_then(FrameError::request_id),
            Some(&Id::from(1u64))
        );
        assert!(matches!(
            items[5],
            Ok(Message::Request {
                method: Method::ExtranonceSubscribe,
                ..
            })
        ));
        assert!(matches!(
            &items[6],
            Ok(Message::Request { method: Method::Unknown { method, .. }, .. }) if method == "mining.frobnicate"
        ));
    }

    #[test]
    fn an_endless_line_is_reported_once_and_never_buffered() {
        let mut codec = StratumCodec::new(100);
        let mut buf = BytesMut::new();
        let mut errors = 0;
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 64]);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                assert_eq!(item, Err(FrameError::LineTooLong { limit: 100 }));
                errors += 1;
            }
            assert!(buf.len() <= 100 + 64);
        }
        assert_eq!(errors, 1);
        buf.extend_from_slice(
            b"tail of the long line\n{\"id\":1,\"result\":true,\"error\":null}\n",
        );
        let next = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert!(matches!(next, Message::Response(_)));
    }

    #[test]
    fn encoder_writes_one_line() {
        let mut codec = StratumCodec::new(MAX_LINE_FROM_MINER);
        let mut buf = BytesMut::new();
        codec
            .encode(
                Message::result(1u64.into(), serde_json::Value::Bool(true)),
                &mut buf,
            )
            .unwrap();
        assert_eq!(&buf[..], b"{\"id\":1,\"result\":true,\"error\":null}\n");
    }
}
