//! Socket helpers the Stratum listeners and the HTTP API share: binding with SO_REUSEPORT
//! for rolling restarts, listening with a deep backlog, a peer's bare IP address, and the
//! open-files limit that bounds how many miners one process holds.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// Binds `addr` (with SO_REUSEPORT when `reuse_port`, so that a new pool process can bind
/// the same port during a rolling restart) without listening yet: with SO_REUSEPORT the
/// kernel sends connections to every listening socket, so a process listens only once it
/// can serve ([`listen`]). A port in use is still found at once.
pub fn reserve(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(reuse_port)?;
    #[cfg(not(unix))]
    let _ = reuse_port;
    socket.bind(addr)?;
    Ok(socket)
}

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFiles {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now: the most connections (and other files) the process can hold.
    pub now: u64,
}

/// Raises the soft limit on open files to the hard limit. Every miner connection is a file
/// descriptor, and a pool started from a shell gets a soft limit of 1,024 however high the
/// hard limit is: past about a thousand miners every new one would be refused. (systemd's
/// `LimitNOFILE` sets both limits; this changes nothing then.)
#[cfg(unix)]
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    let mut limit = open_files()?;
    let was = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        // On Linux the hard limit is never above fs.nr_open, so it can be taken whole.
        // (Where it may be unlimited, as on macOS, this fails and the pool says so.)
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct passed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(OpenFiles {
        was,
        now: limit.rlim_cur,
    })
}

/// Elsewhere the limit is the system's business.
#[cfg(not(unix))]
pub fn raise_open_files_limit() -> std::io::Result<OpenFiles> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// The process's soft limit on open files, if it has one it can tell.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        open_files().ok().map(|l| l.rlim_cur)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The process's soft and hard limits on open files.
#[cfg(unix)]
fn open_files() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Whether an accept failed because this process or the system is out of file descriptors.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Starts listening on a [`reserve`]d socket.
pub fn listen(socket: TcpSocket) -> std::io::Result<TcpListener> {
    // Deeper than tokio's default 1024: a whole farm reconnecting after a restart arrives
    // at once (the kernel caps it at net.core.somaxconn).
    socket.listen(4096)
}

/// [`reserve`] and [`listen`] in one step.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    listen(reserve(addr, reuse_port)?)
}

/// The bare IP of a peer (IPv4-mapped IPv6 folded to IPv4), used for per-address limits.
pub fn peer_ip(addr: &SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// An entry of an address list that is neither an address nor a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadNetwork {
    /// Not an IP address.
    #[error("{0:?} is not an IP address or CIDR block")]
    NotAnAddress(String),
    /// The prefix length is not a number up to the address's width.
    #[error("{entry:?} has a bad prefix length (0..={max})")]
    PrefixLength {
        /// The entry.
        entry: String,
        /// 32 or 128.
        max: u8,
    },
}

/// The addresses PROXY headers are accepted from (`stratum.proxy_protocol_from`): single
/// addresses or CIDR blocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trusted {
    nets: Vec<(IpAddr, u8)>,
}

impl Trusted {
    /// Parses `["127.0.0.1", "10.0.0.0/8", "::1"]`.
    pub fn parse(entries: &[String]) -> Result<Trusted, BadNetwork> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let (ip, bits) = match entry.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (entry.as_str(), None),
            };
            let ip: IpAddr = ip
                .trim()
                .parse()
                .map_err(|_| BadNetwork::NotAnAddress(entry.clone()))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| BadNetwork::PrefixLength {
                        entry: entry.clone(),
                        max,
                    })?,
            };
            // Peers are compared unmapped (::ffff:10.0.0.5 arrives as 10.0.0.5).
            let (ip, bits) = match ip {
                IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), bits - 96),
                    None => (ip, bits),
                },
                _ => (ip, bits),
            };
            nets.push((ip, bits));
        }
        Ok(Trusted { nets })
    }

    /// Whether `ip` (IPv4-mapped IPv6 already unmapped) is a configured proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), bits),
            _ => false,
        })
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn out_of_descriptors_is_told_apart() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[test]
    fn trusted_addresses_and_blocks() {
        let t = Trusted::parse(&[
            "127.0.0.1".into(),
            "10.0.0.0/8".into(),
            "192.168.4.0/22".into(),
            "fd00::/8".into(),
        ])
        .unwrap();
        let yes = ["127.0.0.1", "10.200.3.4", "192.168.7.255", "fd12::5"];
        let no = ["127.0.0.2", "11.0.0.1", "192.168.8.0", "fe80::1", "::1"];
        let mapped = Trusted::parse(&["::ffff:10.0.0.5".into()]).unwrap();
        assert!(mapped.contains("10.0.0.5".parse().unwrap()));
        for ip in yes {
            assert!(t.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in no {
            assert!(!t.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(
            Trusted::parse(&["0.0.0.0/0".into()])
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::/129"] {
            assert!(Trusted::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
