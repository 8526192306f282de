//! PROXY protocol v1 (text) and v2 (binary), as HAProxy, nginx and most TCP balancers send
//! it: the first bytes of a connection from a proxy name the miner's real address, so that
//! per-address limits and bans apply to the miner rather than to the proxy.
//!
//! A header is expected only on connections from `stratum.proxy_protocol_from`
//! ([`Trusted`]); from anywhere else it would let a miner choose its own address. The
//! reader takes exactly the header's bytes off the socket, never more, so the Stratum
//! codec (or the TLS handshake) that follows sees the stream from its first byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use crate::net::Trusted;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// The most of a v2 header's body (addresses and TLVs) we accept; HAProxy's TLVs are far
/// smaller.
const V2_MAX_BODY: usize = 2048;

/// Why a header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The connection did not start with a PROXY header.
    #[error("expected a PROXY protocol header (v1 or v2) from a proxy address")]
    Missing,
    /// The header is malformed.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    /// The socket failed or closed mid-header.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one header: `Some(address)` of the client it carries, or `None` when the proxy
/// speaks for itself (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified family: health checks).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyError> {
    // Five bytes tell the versions apart: "PROXY" or the start of the v2 signature.
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..5]).await?;
    if &head[..5] == b"PROXY" {
        let mut line = Vec::with_capacity(V1_MAX);
        line.extend_from_slice(&head[..5]);
        // Byte by byte: reading ahead would swallow the miner's first line.
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyError::Malformed("v1 header longer than 107 bytes"));
            }
            line.push(stream.read_u8().await?);
        }
        return parse_v1(&line);
    }
    if head[..5] != V2_SIGNATURE[..5] {
        return Err(ProxyError::Missing);
    }
    stream.read_exact(&mut head[5..]).await?;
    let len = v2_body_len(&head)?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    parse_v2(&head, &body)
}

/// Parses a whole v1 line, `PROXY TCP4 SRC DST SPORT DPORT\r\n`.
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or(ProxyError::Malformed("v1 header does not end in CRLF"))?;
    if line.len() > V1_MAX {
        return Err(ProxyError::Malformed("v1 header longer than 107 bytes"));
    }
    let text =
        std::str::from_utf8(text).map_err(|_| ProxyError::Malformed("v1 header is not ASCII"))?;
    let mut fields = text.split(' ');
    if fields.next() != Some("PROXY") {
        return Err(ProxyError::Missing);
    }
    let family = fields.next().ok_or(ProxyError::Malformed("v1 family"))?;
    if family == "UNKNOWN" {
        return Ok(None); // the rest of the line is to be ignored
    }
    let rest: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = rest[..] else {
        return Err(ProxyError::Malformed(
            "v1 needs four fields after the family",
        ));
    };
    let port = |p: &str| -> Result<u16, ProxyError> {
        // Decimal without sign or leading zeros, as the spec writes them.
        if p.is_empty()
            || (p.len() > 1 && p.starts_with('0'))
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ProxyError::Malformed("v1 port"));
        }
        p.parse().map_err(|_| ProxyError::Malformed("v1 port"))
    };
    let v4 = match family {
        "TCP4" => true,
        "TCP6" => false,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 family is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    // Both addresses must be of the announced family.
    let address = |a: &str| {
        a.parse::<IpAddr>()
            .ok()
            .filter(|ip| ip.is_ipv4() == v4)
            .ok_or(ProxyError::Malformed(
                "v1 address not of the header's family",
            ))
    };
    let src_ip = address(src)?;
    address(dst)?;
    port(dport)?;
    Ok(Some(SocketAddr::new(src_ip, port(sport)?)))
}

/// The body length a v2 header's first 16 bytes announce, checked.
pub fn v2_body_len(head: &[u8; 16]) -> Result<usize, ProxyError> {
    if head[..12] != V2_SIGNATURE {
        return Err(ProxyError::Missing);
    }
    if head[12] >> 4 != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_BODY {
        return Err(ProxyError::Malformed("v2 header longer than 2048 bytes"));
    }
    Ok(len)
}

/// Parses a v2 header: its fixed 16 bytes and the body they announce.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    if v2_body_len(head)? != body.len() {
        return Err(ProxyError::Malformed("v2 body length"));
    }
    match head[12] & 0x0f {
        0 => return Ok(None), // LOCAL: the proxy's own connection
        1 => {}
        _ => return Err(ProxyError::Malformed("v2 command is not LOCAL or PROXY")),
    }
    // Transport: unspecified or a stream; a datagram "connection" cannot be a miner's.
    if head[13] & 0x0f > 1 {
        return Err(ProxyError::Malformed("v2 transport is not a stream"));
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match head[13] >> 4 {
        0 => Ok(None), // AF_UNSPEC: no address to use
        1 => {
            let a = body
                .get(..12)
                .ok_or(ProxyError::Malformed("v2 IPv4 addresses are 12 bytes"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(Some(SocketAddr::new(ip.into(), port(&a[8..10]))))
        }
        2 => {
            let a = body
                .get(..36)
                .ok_or(ProxyError::Malformed("v2 IPv6 addresses are 36 bytes"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            Ok(Some(SocketAddr::new(
                Ipv6Addr::from(octets).into(),
                port(&a[32..34]),
            )))
        }
        // AF_UNIX: a local socket has no address that limits could use.
        3 => Ok(None),
        _ => Err(ProxyError::Malformed("v2 address family")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let got = read_header(&mut cursor).await;
        let pos = usize::try_from(cursor.position()).unwrap();
        (got, bytes[pos..].to_vec())
    }

    #[tokio::test]
    async fn v1_addresses_and_nothing_read_past_the_header() {
        let (got, rest) = read(
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n{\"id\":1,\"method\":\"mining.subscribe\"}\n",
        )
        .await;
        assert_eq!(got.unwrap(), Some("192.168.0.1:56324".parse().unwrap()));
        assert!(rest.starts_with(b"{\"id\":1"));
        let (got, _) = read(b"PROXY TCP6 2001:db8::1 ::1 4000 3333\r\n").await;
        assert_eq!(got.unwrap(), Some("[2001:db8::1]:4000".parse().unwrap()));
        let (got, rest) = read(b"PROXY UNKNOWN ffff:f...f:ffff 3333\r\nX").await;
        assert_eq!(got.unwrap(), None);
        assert_eq!(rest, b"X");
    }

    #[tokio::test]
    async fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..], // no CR: runs on to the size cap or EOF
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",      // a field short
            b"PROXY TCP4 ::1 ::1 1 2\r\n",            // family mismatch
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", // port range
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",   // leading zero
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",   // double space
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",    // family
        ] {
            assert!(
                read(bad).await.0.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200], b"\r\n"].concat();
        assert!(matches!(read(&long).await.0, Err(ProxyError::Malformed(_))));
        assert!(matches!(
            read(b"{\"id\":1,\"method\":\"mining.subscribe\"}\n")
                .await
                .0,
            Err(ProxyError::Missing)
        ));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[tokio::test]
    async fn v2_addresses_tlvs_and_local() {
        let mut body = vec![10, 1, 2, 3, 127, 0, 0, 1];
        body.extend_from_slice(&40000u16.to_be_bytes());
        body.extend_from_slice(&3333u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0x00, 0x02, 0xab, 0xcd]); // a TLV, ignored
        let mut bytes = v2(1, 0x11, &body);
        bytes.extend_from_slice(b"next");
        let (got, rest) = read(&bytes).await;
        assert_eq!(got.unwrap(), Some("10.1.2.3:40000".parse().unwrap()));
        assert_eq!(rest, b"next");

        let mut body6 = [0u8; 36].to_vec();
        body6[15] = 1;
        body6[31] = 2;
        body6[32..34].copy_from_slice(&5000u16.to_be_bytes());
        let (got, _) = read(&v2(1, 0x21, &body6)).await;
        assert_eq!(got.unwrap(), Some("[::1]:5000".parse().unwrap()));

        let (got, rest) = read(&[v2(0, 0x00, &[]), b"x".to_vec()].concat()).await;
        assert_eq!(got.unwrap(), None, "LOCAL");
        assert_eq!(rest, b"x");
    }

    #[tokio::test]
    async fn v2_refusals() {
        assert!(
            read(&v2(1, 0x11, &[1, 2, 3])).await.0.is_err(),
            "short IPv4 body"
        );
        assert!(read(&v2(2, 0x11, &[0; 12])).await.0.is_err(), "command");
        assert!(read(&v2(1, 0x41, &[0; 12])).await.0.is_err(), "family");
        assert!(read(&v2(1, 0x12, &[0; 12])).await.0.is_err(), "datagram");
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(read(&wrong_version).await.0.is_err(), "version");
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(read(&huge).await.0.is_err(), "length cap");
        let truncated = &v2(1, 0x11, &[0; 12])[..20];
        assert!(matches!(read(truncated).await.0, Err(ProxyError::Io(_))));
    }
}
