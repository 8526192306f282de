//! A miner's socket as Stratum lines, with buffers sized for the common case: an idle
//! miner that sends a share now and then and gets a notify now and then.
//!
//! tokio-util's `Framed` keeps an 8 KiB read buffer and an 8 KiB write buffer for the
//! life of every connection; at ten thousand idle miners that was most of the pool's
//! memory. Here the read buffer starts at [`READ_START`] bytes, grows while a burst
//! needs it (a long line, a miner flushing many shares), and is let go once it is empty
//! and larger than [`READ_KEEP`]; the write buffer exists only while something is being
//! written. Lines shared by many connections (a job's notify) are copied into it, never
//! encoded again.

use bytes::BytesMut;
use protocol::stratum::{FrameError, Message, StratumCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::stratum::events::Outgoing;

/// The read buffer of a connection that has sent little so far: a subscribe, an authorize
/// or a submit fits (about 150 bytes each); a longer line grows it.
pub const READ_START: usize = 256;

/// A read buffer larger than this is let go once it is empty.
pub const READ_KEEP: usize = 4096;

/// Room left for the next read below which the read buffer grows.
const READ_ROOM: usize = 128;

/// The socket, its line codec and its two buffers.
#[derive(Debug)]
pub struct Lines<S> {
    stream: S,
    codec: StratumCodec,
    read: BytesMut,
    write: BytesMut,
    eof: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Lines<S> {
    /// Lines over `stream`, refusing lines longer than `max_line` bytes.
    pub fn new(stream: S, max_line: usize) -> Lines<S> {
        Lines {
            stream,
            codec: StratumCodec::new(max_line),
            read: BytesMut::new(),
            write: BytesMut::new(),
            eof: false,
        }
    }

    /// The next line from the miner (a bad line is an `Err` inside, and the stream goes
    /// on); `None` once the miner closed its side. Cancel safe: a read that did not
    /// complete took nothing, and what was read stays buffered for the next call.
    pub async fn next(&mut self) -> Option<std::io::Result<Result<Message, FrameError>>> {
        loop {
            if let Some(line) = self.codec.next_line(&mut self.read) {
                self.shrink();
                return Some(Ok(line));
            }
            if self.eof {
                let last = self.codec.last_line(&mut self.read);
                self.shrink();
                return last.map(Ok);
            }
            if self.read.capacity() - self.read.len() < READ_ROOM {
                // Double while a burst fills it; the codec caps a line's length.
                self.read.reserve(self.read.len().max(READ_START));
            }
            match self.stream.read_buf(&mut self.read).await {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Lets a large, empty read buffer go (the next read starts small again).
    fn shrink(&mut self) {
        if self.read.is_empty() && self.read.capacity() > READ_KEEP {
            self.read = BytesMut::new();
        }
    }

    /// Queues a line for [`Lines::flush`].
    pub fn feed(&mut self, out: &Outgoing) {
        out.write_to(&mut self.write);
    }

    /// Whether lines wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.write.is_empty()
    }

    /// Writes the queued lines, then lets the write buffer go. Not cancel safe: the
    /// caller bounds it with a timeout and closes the connection when it runs out.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).await?;
            self.write = BytesMut::new();
        }
        self.stream.flush().await
    }

    /// The bytes held for this connection (read buffer capacity plus queued output).
    pub fn buffered(&self) -> usize {
        self.read.capacity() + self.write.capacity()
    }

    /// The socket, for a last goodbye.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::stratum::Method;
    use tokio::io::AsyncWriteExt;

    fn subscribe(id: u64) -> String {
        format!("{{\"id\":{id},\"method\":\"mining.subscribe\",\"params\":[\"t/1\"]}}\n")
    }

    #[tokio::test]
    async fn lines_come_whole_however_the_bytes_arrive_and_buffers_stay_small() {
        let (pool_side, mut miner) = tokio::io::duplex(64 * 1024);
        let mut lines = Lines::new(pool_side, 16 * 1024);
        assert_eq!(lines.buffered(), 0, "nothing held before the first byte");

        // One line in three pieces.
        let line = subscribe(1);
        for piece in [&line[..5], &line[5..20], &line[20..]] {
            miner.write_all(piece.as_bytes()).await.unwrap();
        }
        let got = lines.next().await.unwrap().unwrap().unwrap();
        assert!(matches!(
            got,
            Message::Request {
                method: Method::Subscribe(_),
                ..
            }
        ));
        assert!(lines.buffered() <= READ_START * 2, "{}", lines.buffered());

        // A burst of 200 lines: the buffer grows for it, and is let go once drained.
        let burst: String = (0..200).map(subscribe).collect();
        miner.write_all(burst.as_bytes()).await.unwrap();
        for _ in 0..200 {
            lines.next().await.unwrap().unwrap().unwrap();
        }
        assert!(lines.buffered() <= READ_KEEP, "{}", lines.buffered());

        // A line over the limit is one error, and the next line still comes.
        let (pool_side, mut miner) = tokio::io::duplex(64 * 1024);
        let mut lines = Lines::new(pool_side, 100);
        let long = format!("{}\n{}", "x".repeat(5000), subscribe(2));
        miner.write_all(long.as_bytes()).await.unwrap();
        assert!(matches!(
            lines.next().await.unwrap().unwrap(),
            Err(FrameError::LineTooLong { limit: 100 })
        ));
        assert!(lines.next().await.unwrap().unwrap().is_ok());

        // A last line without its newline counts; then the end.
        miner
            .write_all(b"{\"id\":3,\"method\":\"mining.subscribe\",\"params\":[]}")
            .await
            .unwrap();
        drop(miner);
        assert!(lines.next().await.unwrap().unwrap().is_ok());
        assert!(lines.next().await.is_none());
    }

    #[tokio::test]
    async fn queued_lines_are_written_in_order_and_the_buffer_let_go() {
        let (pool_side, mut miner) = tokio::io::duplex(64 * 1024);
        let mut lines = Lines::new(pool_side, 16 * 1024);
        let shared = Outgoing::Line(bytes::Bytes::from_static(b"{\"shared\":1}\n"));
        lines.feed(&Outgoing::Message(Message::result(
            protocol::stratum::Id::Num(1.into()),
            serde_json::json!(true),
        )));
        lines.feed(&shared);
        assert!(lines.has_pending());
        lines.flush().await.unwrap();
        assert_eq!(lines.buffered(), 0);
        let mut got = vec![0u8; 256];
        let n = tokio::io::AsyncReadExt::read(&mut miner, &mut got)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&got[..n]).unwrap(),
            "{\"id\":1,\"result\":true,\"error\":null}\n{\"shared\":1}\n"
        );
    }
}
