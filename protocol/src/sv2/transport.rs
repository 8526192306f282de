//! Stratum V2's transport on the pool's side: the Noise NX handshake as responder, with a
//! certificate over this connection's static key signed by the authority key, then
//! encrypted frames both ways, each carrying one message.
//!
//! The cryptography and the binary encoding are the Stratum Reference Implementation's
//! (`noise_sv2`, `codec_sv2`, `parsers_sv2`); this module moves their bytes over a tokio
//! stream and caps what a peer can make us hold. A frame from a miner is small (the
//! largest, `SetupConnection`, is under 2 KiB), so anything over [`MAX_FRAME_FROM_MINER`]
//! ends the connection: a peer must not make us buffer a 16 MiB frame.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use codec_sv2::{
    Decrypted, Handshake, MessageFrame, NoiseDecoder, NoiseEncoder, Transport,
    TransportDecryptState, TransportEncryptState,
};
use framing_sv2::header::Header;
use noise_sv2::{
    ELLSWIFT_ENCODING_SIZE, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE, Initiator, Responder,
};
use parsers_sv2::{AnyMessage, AnyMessageOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::keys::AuthorityKeys;

/// The most encrypted bytes one frame from a miner may take (header, payload and MACs).
pub const MAX_FRAME_FROM_MINER: usize = 64 * 1024;

/// Why a V2 connection ended at the transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise handshake failed (a peer that is not a Stratum V2 client, or a bad key).
    #[error("noise handshake: {0}")]
    Handshake(String),
    /// The peer opened with a JSON line: a Stratum v1 miner on the V2 port.
    #[error("the peer speaks Stratum v1 (a v1 miner pointed at the V2 port?)")]
    StratumV1,
    /// The handshake did not finish in time.
    #[error("noise handshake: no answer within {0:?}")]
    Timeout(Duration),
    /// A frame could not be decrypted or parsed as a frame.
    #[error("bad frame: {0}")]
    Frame(String),
    /// A frame larger than the cap.
    #[error("frame over {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// A frame that is not a message of the protocols this pool speaks.
    #[error(
        "unknown or malformed message (extension {extension:#06x}, type {kind:#04x}): {detail}"
    )]
    Message {
        /// The frame's extension type.
        extension: u16,
        /// The frame's message type.
        kind: u8,
        /// What the parser said.
        detail: String,
    },
}

/// Reads frames and turns them into messages.
///
/// The decoder asks for the next piece of a frame by its exact length and takes it whole,
/// so bytes are read into a buffer of the reader's own first and handed over once a piece
/// is complete: a read that is abandoned (in a `select!`) loses nothing. The buffer is
/// sized like a v1 connection's, small for an idle miner; it grows to hold the piece being
/// read (at most a 64 KiB chunk, checked against `limit` before any of it is read) and is
/// let go once little is left in it.
pub struct Reader {
    decoder: NoiseDecoder,
    state: Option<TransportDecryptState>,
    /// Read from the socket, not yet handed to the decoder.
    read: BytesMut,
    /// Encrypted bytes handed to the decoder for the frame being assembled.
    in_frame: usize,
    /// The most it may take.
    limit: usize,
}

/// The read buffer of a connection that has sent little so far: a share's frame (about
/// 100 bytes) fits.
const READ_START: usize = 256;

/// A read buffer larger than this is let go once it holds no more than [`READ_START`].
const READ_KEEP: usize = 4096;

/// Room left for the next read below which the read buffer grows.
const READ_ROOM: usize = 128;

/// What the buffered bytes gave.
enum Decoded {
    /// A whole frame's message.
    Message(AnyMessageOwned),
    /// The next piece of a frame is this many bytes, and not all of them are here.
    Need(usize),
}

/// Turns messages into encrypted frames.
pub struct Writer {
    encoder: NoiseEncoder,
    state: TransportEncryptState,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// Runs the responder's side of the handshake on `stream` within `timeout`: reads the
/// miner's ephemeral key, answers with ours, our static key and its certificate (valid
/// from now for `validity`, signed by `keys`). Each connection gets a fresh static key.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    keys: &AuthorityKeys,
    validity: Duration,
    timeout: Duration,
) -> Result<(Reader, Writer), TransportError> {
    let handshake = async {
        let responder = Responder::from_authority_kp(&keys.public, &keys.secret, validity)
            .map_err(|e| TransportError::Handshake(format!("{e:?}")))?;
        let mut first = [0u8; ELLSWIFT_ENCODING_SIZE];
        stream.read_exact(&mut first).await?;
        if looks_like_stratum_v1(&first) {
            return Err(TransportError::StratumV1);
        }
        let (reply, transport) = Handshake::responder(responder)
            .step_1(first)
            .map_err(|e| TransportError::Handshake(format!("{e:?}")))?;
        stream.write_all(reply.payload()).await?;
        stream.flush().await?;
        Ok::<_, TransportError>(transport)
    };
    let transport = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| TransportError::Timeout(timeout))??;
    Ok(halves(transport, MAX_FRAME_FROM_MINER))
}

/// The reader (frames up to `limit` bytes) and writer of a finished handshake.
fn halves(transport: Transport, limit: usize) -> (Reader, Writer) {
    let (encrypt, decrypt) = transport.split();
    let reader = Reader::new(decrypt, limit);
    let writer = Writer {
        encoder: NoiseEncoder::new(),
        state: encrypt,
    };
    (reader, writer)
}

/// Whether a would-be Noise hello is a JSON-RPC line. A real hello is uniformly random
/// bytes: one that opens with `{"` and names `"method"` in 64 bytes does not happen.
fn looks_like_stratum_v1(hello: &[u8]) -> bool {
    hello.starts_with(b"{\"") && hello.windows(8).any(|w| w == b"\"method\"")
}

/// The most encrypted bytes one frame from a pool may take: a job's coinbase parts are up
/// to 64 KiB each.
pub const MAX_FRAME_FROM_POOL: usize = 256 * 1024;

/// The miner's side of the handshake on `stream` within `timeout`: the pool's certificate
/// must be signed by `authority` (its public key, as `pool keygen` prints it decoded) and
/// valid now.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    authority: [u8; 32],
    timeout: Duration,
) -> Result<(Reader, Writer), TransportError> {
    let handshake = async {
        let initiator = Initiator::from_raw_k(authority)
            .map_err(|e| TransportError::Handshake(format!("{e:?}")))?;
        let (first, sent) = Handshake::initiator(initiator)
            .step_0()
            .map_err(|e| TransportError::Handshake(format!("{e:?}")))?;
        stream.write_all(first.payload()).await?;
        stream.flush().await?;
        let mut answer = [0u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE];
        stream.read_exact(&mut answer).await?;
        sent.step_2(answer)
            .map_err(|e| TransportError::Handshake(format!("{e:?}")))
    };
    let transport = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| TransportError::Timeout(timeout))??;
    Ok(halves(transport, MAX_FRAME_FROM_POOL))
}

impl Reader {
    /// A reader decrypting with `state`, refusing frames over `limit` bytes.
    fn new(state: TransportDecryptState, limit: usize) -> Reader {
        Reader {
            decoder: NoiseDecoder::new(),
            state: Some(state),
            read: BytesMut::new(),
            in_frame: 0,
            limit,
        }
    }

    /// The next message from `stream`. Cancel safe: what a read that did not complete
    /// took stays buffered for the next call.
    pub async fn next<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
    ) -> Result<AnyMessageOwned, TransportError> {
        loop {
            let need = match self.decode_buffered()? {
                Decoded::Message(message) => {
                    self.shrink();
                    return Ok(message);
                }
                Decoded::Need(need) => need,
            };
            if self.read.capacity() < need || self.read.capacity() - self.read.len() < READ_ROOM {
                // Room for the whole piece and the start of the next frame, and no more:
                // a doubling buffer kept after a large frame would cost every connection
                // that ever sent one up to four times the piece.
                let size = need.max(READ_START - READ_ROOM) + READ_ROOM;
                self.regrow(size);
            }
            if stream.read_buf(&mut self.read).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// The read buffer in a new allocation of `size` bytes, what it holds kept.
    fn regrow(&mut self, size: usize) {
        let mut read = BytesMut::with_capacity(size);
        read.extend_from_slice(&self.read);
        self.read = read;
    }

    /// Lets a large read buffer go once little is left in it (the next read starts small).
    fn shrink(&mut self) {
        if self.read.capacity() > READ_KEEP && self.read.len() <= READ_START {
            if self.read.is_empty() {
                self.read = BytesMut::new();
            } else {
                self.regrow(READ_START);
            }
        }
    }

    /// Hands the decoder what is buffered, piece by piece, until a frame is complete (its
    /// message) or the next piece is not all here. Never waits.
    fn decode_buffered(&mut self) -> Result<Decoded, TransportError> {
        let mut asked_again = false;
        loop {
            let state = self
                .state
                .take()
                .ok_or_else(|| TransportError::Frame("the stream failed before".into()))?;
            match self
                .decoder
                .next_transport_frame(state)
                .map_err(|e| TransportError::Frame(format!("{e:?}")))?
            {
                Decrypted::Frame(mut frame, state) => {
                    self.state = Some(state);
                    self.in_frame = 0;
                    return message_of(frame.header(), frame.payload()).map(Decoded::Message);
                }
                Decrypted::Incomplete(_, state) => {
                    self.state = Some(state);
                    let need = self.decoder.writable_len();
                    if need == 0 {
                        // The decoder has the bytes already and is to be asked again (its
                        // contract; with whole pieces handed over it does not happen). A
                        // second time in a row would be a codec bug: end the stream rather
                        // than spin.
                        if asked_again {
                            self.state = None;
                            return Err(TransportError::Frame(
                                "the decoder asked for no bytes twice".into(),
                            ));
                        }
                        asked_again = true;
                        continue;
                    }
                    asked_again = false;
                    if self.in_frame + need > self.limit {
                        return Err(TransportError::TooLarge { limit: self.limit });
                    }
                    let Some(piece) = self.read.get(..need) else {
                        return Ok(Decoded::Need(need));
                    };
                    self.decoder.writable().copy_from_slice(piece);
                    self.read.advance(need);
                    self.in_frame += need;
                }
            }
        }
    }
}

/// Reads messages from `stream` and hands them to `to` until the stream ends or fails (the
/// last item is then the error) or nobody listens: for a client that would rather read in a
/// task of its own. An unknown message leaves the stream in step, so reading goes on after
/// it.
pub async fn forward_messages<R: AsyncRead + Unpin>(
    mut reader: Reader,
    mut stream: R,
    to: tokio::sync::mpsc::Sender<Result<AnyMessageOwned, TransportError>>,
) {
    loop {
        let next = reader.next(&mut stream).await;
        let go_on = matches!(next, Ok(_) | Err(TransportError::Message { .. }));
        if to.send(next).await.is_err() || !go_on {
            return;
        }
    }
}

/// One decrypted frame's message, if it is one of the protocols this pool speaks.
fn message_of(header: Header, payload: &mut [u8]) -> Result<AnyMessageOwned, TransportError> {
    let (extension, kind) = (header.ext_type(), header.msg_type());
    let message: AnyMessage<'_> =
        (header, payload)
            .try_into()
            .map_err(|e| TransportError::Message {
                extension,
                kind,
                detail: format!("{e:?}"),
            })?;
    Ok(message.into_owned())
}

/// A decrypted frame (its 6-byte header, then the payload the header declares) as a
/// message: what [`Reader::next`] does after decryption, for the fuzzer and tests.
pub fn decode_frame(frame: &mut [u8]) -> Result<AnyMessageOwned, TransportError> {
    let header = Header::from_bytes(frame).map_err(|e| TransportError::Frame(format!("{e:?}")))?;
    let payload = frame
        .get_mut(Header::SIZE..Header::SIZE + header.payload_length())
        .ok_or_else(|| TransportError::Frame("a payload shorter than its header says".into()))?;
    message_of(header, payload)
}

/// `message` as a plain (unencrypted) frame: header and payload, what [`decode_frame`]
/// reads. For tests that pass messages between two sessions, and the fuzzer.
pub fn encode_frame(message: AnyMessageOwned) -> Result<Vec<u8>, TransportError> {
    let frame: MessageFrame<AnyMessageOwned> = message
        .try_into()
        .map_err(|e| TransportError::Frame(format!("cannot frame a message: {e:?}")))?;
    let mut encoder = codec_sv2::Encoder::new();
    let bytes = encoder
        .encode(frame)
        .map_err(|e| TransportError::Frame(format!("cannot encode a frame: {e:?}")))?;
    Ok(AsRef::<[u8]>::as_ref(&bytes).to_vec())
}

impl Writer {
    /// `message` as the bytes of one encrypted frame.
    pub fn encode(&mut self, message: AnyMessageOwned) -> Result<Vec<u8>, TransportError> {
        let frame: MessageFrame<AnyMessageOwned> = message
            .try_into()
            .map_err(|e| TransportError::Frame(format!("cannot frame a message: {e:?}")))?;
        let bytes = self
            .encoder
            .encode_transport(frame, &mut self.state)
            .map_err(|e| TransportError::Frame(format!("cannot encrypt a frame: {e:?}")))?;
        Ok(AsRef::<[u8]>::as_ref(&bytes).to_vec())
    }

    /// Sends `message` on `stream`.
    pub async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
        message: AnyMessageOwned,
    ) -> Result<(), TransportError> {
        let bytes = self.encode(message)?;
        stream.write_all(&bytes).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common_messages_sv2::{Protocol, SetupConnectionOwned, SetupConnectionSuccess};
    use parsers_sv2::CommonMessagesOwned;

    const SECRET: &str = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n";

    fn keys() -> AuthorityKeys {
        AuthorityKeys::from_secret_text(SECRET).unwrap()
    }

    /// A miner's side of the handshake, checking the certificate against `authority` at
    /// unix second `now`.
    async fn initiate<S: AsyncRead + AsyncWrite + Unpin>(
        stream: &mut S,
        authority: [u8; 32],
        now: u32,
    ) -> Result<Transport, String> {
        let initiator = Initiator::from_raw_k(authority).map_err(|e| format!("{e:?}"))?;
        let (first, sent) = Handshake::initiator(initiator)
            .step_0()
            .map_err(|e| format!("{e:?}"))?;
        stream.write_all(first.payload()).await.unwrap();
        let mut answer = [0u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE];
        stream.read_exact(&mut answer).await.unwrap();
        sent.step_2_with_now(answer, now)
            .map_err(|e| format!("{e:?}"))
    }

    fn unix_now() -> u32 {
        let since = std::time::UNIX_EPOCH.elapsed().unwrap();
        u32::try_from(since.as_secs()).unwrap()
    }

    fn setup_connection() -> AnyMessageOwned {
        AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(SetupConnectionOwned {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags: 0b100,
            endpoint_host: "127.0.0.1".to_string().try_into().unwrap(),
            endpoint_port: 3336,
            vendor: "test".to_string().try_into().unwrap(),
            hardware_version: String::new().try_into().unwrap(),
            firmware: String::new().try_into().unwrap(),
            device_id: String::new().try_into().unwrap(),
        }))
    }

    /// The pool's reader after a handshake on `pool_end` with the test keys.
    async fn pool_reader<S: AsyncRead + AsyncWrite + Unpin>(pool_end: &mut S) -> Reader {
        let (reader, _) = accept(
            pool_end,
            &keys(),
            Duration::from_secs(600),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        reader
    }

    /// A miner's writer after a handshake on `miner_end` against the test keys.
    async fn miner_writer<S: AsyncRead + AsyncWrite + Unpin>(miner_end: &mut S) -> Writer {
        let transport = initiate(miner_end, keys().public, unix_now())
            .await
            .unwrap();
        let (encrypt, _) = transport.split();
        Writer {
            encoder: NoiseEncoder::new(),
            state: encrypt,
        }
    }

    /// A `NewExtendedMiningJob` with the given coinbase parts.
    fn extended_job(job_id: u32, prefix: Vec<u8>, suffix: Vec<u8>) -> AnyMessageOwned {
        AnyMessageOwned::Mining(parsers_sv2::MiningOwned::NewExtendedMiningJob(
            mining_sv2::NewExtendedMiningJobOwned {
                channel_id: 2,
                job_id,
                min_ntime: binary_sv2::Sv2OptionOwned::new(None),
                version: 0x2000_0000,
                version_rolling_allowed: true,
                merkle_path: Vec::new().try_into().unwrap(),
                coinbase_tx_prefix: prefix.try_into().unwrap(),
                coinbase_tx_suffix: suffix.try_into().unwrap(),
            },
        ))
    }

    #[tokio::test]
    async fn a_miner_with_the_authority_key_talks_to_the_pool_both_ways() {
        let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 16);
        let pool = tokio::spawn(async move {
            let (mut reader, mut writer) = accept(
                &mut pool_end,
                &keys(),
                Duration::from_secs(3600),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            let message = reader.next(&mut pool_end).await.unwrap();
            assert!(matches!(
                message,
                AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(_))
            ));
            let success = AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(
                SetupConnectionSuccess {
                    used_version: 2,
                    flags: 0,
                },
            ));
            writer.send(&mut pool_end, success).await.unwrap();
            pool_end
        });
        let transport = initiate(&mut miner_end, keys().public, unix_now())
            .await
            .unwrap();
        let (encrypt, decrypt) = transport.split();
        let mut miner_writer = Writer {
            encoder: NoiseEncoder::new(),
            state: encrypt,
        };
        miner_writer
            .send(&mut miner_end, setup_connection())
            .await
            .unwrap();
        let mut miner_reader = Reader::new(decrypt, MAX_FRAME_FROM_POOL);
        let answer = miner_reader.next(&mut miner_end).await.unwrap();
        assert!(matches!(
            answer,
            AnyMessageOwned::Common(CommonMessagesOwned::SetupConnectionSuccess(
                SetupConnectionSuccess {
                    used_version: 2,
                    ..
                }
            ))
        ));
        let _ = pool.await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_authority_key_or_an_expired_certificate_fails_on_the_miner_side() {
        for (authority, now, what) in [
            (
                AuthorityKeys::generate(|| [3; 32]).public,
                unix_now(),
                "another authority",
            ),
            // The certificate is valid for 600 s from the handshake.
            (keys().public, unix_now() + 700, "an expired certificate"),
        ] {
            let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 16);
            let pool = tokio::spawn(async move {
                accept(
                    &mut pool_end,
                    &keys(),
                    Duration::from_secs(600),
                    Duration::from_secs(5),
                )
                .await
                .map(|_| ())
            });
            assert!(
                initiate(&mut miner_end, authority, now).await.is_err(),
                "{what} was accepted"
            );
            // The pool's side finished its part; the miner drops the connection.
            drop(miner_end);
            let _ = pool.await.unwrap();
        }
    }

    #[tokio::test]
    async fn junk_instead_of_a_handshake_or_an_oversized_frame_ends_the_connection() {
        // Not a Noise client: 64 bytes of text, then nothing.
        let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 16);
        miner_end.write_all(&[b'{'; 64]).await.unwrap();
        drop(miner_end);
        let result = accept(
            &mut pool_end,
            &keys(),
            Duration::from_secs(600),
            Duration::from_secs(5),
        )
        .await;
        assert!(
            result.is_err() || {
                // The handshake bytes are random-looking either way; the first frame fails.
                let (mut reader, _) = result.unwrap();
                reader.next(&mut pool_end).await.is_err()
            }
        );
        // A Stratum v1 miner on the V2 port is told apart from a failed handshake.
        let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 16);
        miner_end
            .write_all(b"{\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"cpuminer/2.5.1\"]}\n")
            .await
            .unwrap();
        let err = accept(
            &mut pool_end,
            &keys(),
            Duration::from_secs(600),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TransportError::StratumV1), "{err}");
        // Silence: the handshake times out.
        let (mut pool_end, _miner_end) = tokio::io::duplex(1 << 16);
        let err = accept(
            &mut pool_end,
            &keys(),
            Duration::from_secs(600),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TransportError::Timeout(_)), "{err}");
        // A frame of 120 KiB: refused once the cap is passed, before all of it is read.
        let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 20);
        let pool = tokio::spawn(async move {
            let mut reader = pool_reader(&mut pool_end).await;
            let first = reader.next(&mut pool_end).await;
            let second = reader.next(&mut pool_end).await;
            (first, second)
        });
        let mut writer = miner_writer(&mut miner_end).await;
        miner_end
            .write_all(&writer.encode(setup_connection()).unwrap())
            .await
            .unwrap();
        let half = vec![0u8; 60_000];
        let big = extended_job(1, half.clone(), half);
        let bytes = writer.encode(big).unwrap();
        assert!(bytes.len() > MAX_FRAME_FROM_MINER);
        let _ = miner_end.write_all(&bytes).await;
        let (first, second) = pool.await.unwrap();
        assert!(first.is_ok(), "the small message comes first: {first:?}");
        assert!(
            matches!(second, Err(TransportError::TooLarge { .. })),
            "{second:?}"
        );
    }

    #[tokio::test]
    async fn a_read_abandoned_mid_frame_loses_nothing() {
        // Frames trickle in a few bytes at a time while each read is abandoned after a
        // moment, as a `select!` does when another branch is ready first.
        let (mut pool_end, mut miner_end) = tokio::io::duplex(1 << 16);
        let pool = tokio::spawn(async move {
            let mut reader = pool_reader(&mut pool_end).await;
            let (mut messages, mut abandoned) = (Vec::new(), 0);
            while messages.len() < 3 {
                match tokio::time::timeout(Duration::from_millis(2), reader.next(&mut pool_end))
                    .await
                {
                    Ok(message) => messages.push(message.unwrap()),
                    Err(_) => abandoned += 1,
                }
            }
            (messages, abandoned, reader.read.capacity())
        });
        let mut writer = miner_writer(&mut miner_end).await;
        // The last frame is larger than the buffer starts, so the buffer grows for it.
        let mut bytes = writer.encode(setup_connection()).unwrap();
        bytes.extend(writer.encode(setup_connection()).unwrap());
        let job = extended_job(7, vec![1u8; 3000], vec![2u8; 3000]);
        bytes.extend(writer.encode(job).unwrap());
        // And the start of a fourth frame, read with the end of the third.
        bytes.extend(&writer.encode(setup_connection()).unwrap()[..5]);
        for piece in bytes.chunks(37) {
            miner_end.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let (messages, abandoned, capacity) = pool.await.unwrap();
        assert!(abandoned > 10, "reads were abandoned {abandoned} times");
        for message in &messages[..2] {
            assert!(
                matches!(
                    message,
                    AnyMessageOwned::Common(CommonMessagesOwned::SetupConnection(_))
                ),
                "{message:?}"
            );
        }
        let AnyMessageOwned::Mining(parsers_sv2::MiningOwned::NewExtendedMiningJob(job)) =
            &messages[2]
        else {
            panic!("{:?}", messages[2]);
        };
        assert_eq!(job.job_id, 7);
        assert_eq!(job.coinbase_tx_prefix.to_owned_bytes(), vec![1u8; 3000]);
        assert_eq!(job.coinbase_tx_suffix.to_owned_bytes(), vec![2u8; 3000]);
        // The buffer grew for the 6 KiB frame and went back to its small size with the
        // fourth frame's first bytes in it.
        assert!(
            capacity <= READ_START,
            "the grown buffer was kept: {capacity}"
        );
    }
}
