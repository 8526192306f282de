//! Pool and node URLs as miners write them: `stratum+tcp://host:port`,
//! `stratum+ssl://host:port`, `stratum2+tcp://host:port/AUTHORITY_PUBKEY` (Stratum V2, the
//! form SRI's tools use), and (solo) `http://user:pass@host:port`.

use std::fmt;
use std::str::FromStr;

/// How to reach a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS (`stratum+ssl://`, `stratum+tls://`).
    pub tls: bool,
    /// Stratum V2 (`stratum2+tcp://`), with the authority public key the pool's
    /// certificate must be signed by; `None` for Stratum v1.
    pub sv2: Option<[u8; 32]>,
}

impl PoolUrl {
    /// A Stratum v1 pool over plain TCP.
    pub fn v1(host: &str, port: u16) -> PoolUrl {
        PoolUrl {
            host: host.into(),
            port,
            tls: false,
            sv2: None,
        }
    }

    /// A Stratum V2 pool whose certificates `authority` signs.
    pub fn v2(host: &str, port: u16, authority: [u8; 32]) -> PoolUrl {
        PoolUrl {
            host: host.into(),
            port,
            tls: false,
            sv2: Some(authority),
        }
    }
}

/// A URL that is not a pool URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad pool URL {url:?}: {reason} (expected stratum+tcp://HOST:PORT, stratum+ssl://HOST:PORT \
     or stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY)"
)]
pub struct UrlError {
    /// The text given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

pub use noderpc::split_host_port;
use protocol::sv2::keys::{encode_public, parse_public};

impl FromStr for PoolUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PoolUrl::parse(s, None)
    }
}

impl PoolUrl {
    /// Parses `s`; a `stratum2+tcp://` URL without a key takes `authority` (the
    /// `--authority-key` flag), and is an error without either.
    pub fn parse(s: &str, authority: Option<[u8; 32]>) -> Result<PoolUrl, UrlError> {
        let err = |reason: &str| UrlError {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = s.split_once("://").unwrap_or(("stratum+tcp", s));
        let (tls, v2) = match scheme.to_ascii_lowercase().as_str() {
            "stratum+tcp" | "stratum" | "tcp" => (false, false),
            "stratum+ssl" | "stratum+tls" | "ssl" | "tls" => (true, false),
            "stratum2+tcp" | "stratum2" => (false, true),
            other => return Err(err(&format!("unknown scheme {other:?}"))),
        };
        // A V2 URL ends with the authority key, or the key comes from --authority-key.
        let (address, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_host_port(address).map_err(|e| err(&e.to_string()))?;
        let sv2 = match (v2, path.trim_end_matches('/')) {
            (false, "") => None,
            (false, _) => return Err(err("a Stratum v1 URL has no path")),
            (true, "") => Some(authority.ok_or_else(|| {
                err("a Stratum V2 pool needs its authority public key: append /KEY or give --authority-key")
            })?),
            (true, key) => Some(parse_public(key).map_err(|e| {
                err(&format!("the authority key {key:?} is not a Stratum V2 public key: {e}"))
            })?),
        };
        Ok(PoolUrl {
            host,
            port,
            tls,
            sv2,
        })
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match (self.sv2.is_some(), self.tls) {
            (true, _) => "stratum2+tcp",
            (false, true) => "stratum+ssl",
            (false, false) => "stratum+tcp",
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        match &self.sv2 {
            Some(key) => write!(f, "/{}", encode_public(key)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_miners_write() {
        let u: PoolUrl = "stratum+tcp://pool.example:3333".parse().unwrap();
        assert_eq!(u, PoolUrl::v1("pool.example", 3333));
        assert!(
            "stratum+ssl://pool.example:443"
                .parse::<PoolUrl>()
                .unwrap()
                .tls
        );
        assert_eq!("127.0.0.1:3333".parse::<PoolUrl>().unwrap().port, 3333);
        assert_eq!(
            "stratum+tcp://[::1]:3333".parse::<PoolUrl>().unwrap().host,
            "::1"
        );
        assert!("stratum+tcp://pool.example".parse::<PoolUrl>().is_err());
        assert!("http://pool.example:3333".parse::<PoolUrl>().is_err());
        assert!(
            "stratum+tcp://pool.example:99999"
                .parse::<PoolUrl>()
                .is_err()
        );
        assert_eq!(u.to_string(), "stratum+tcp://pool.example:3333");
        assert!(
            "stratum+tcp://pool.example:3333/9bb5PLqCxGpBtXRoXx1aTX8YzUp5dGXKS8PSZcUftA7rsJNy8aK"
                .parse::<PoolUrl>()
                .is_err(),
            "a key on a v1 URL is a mistake, not ignored"
        );
    }

    #[test]
    fn stratum_v2_urls_carry_the_authority_key() {
        let key = "9bb5PLqCxGpBtXRoXx1aTX8YzUp5dGXKS8PSZcUftA7rsJNy8aK";
        let text = format!("stratum2+tcp://pool.example:3336/{key}");
        let u: PoolUrl = text.parse().unwrap();
        assert_eq!(
            u,
            PoolUrl::v2("pool.example", 3336, parse_public(key).unwrap())
        );
        assert_eq!(u.to_string(), text);
        // Without a key in the URL: --authority-key's, or an error that says so.
        let bare = PoolUrl::parse("stratum2+tcp://pool.example:3336", Some([7; 32])).unwrap();
        assert_eq!(bare.sv2, Some([7; 32]));
        let e = "stratum2+tcp://pool.example:3336"
            .parse::<PoolUrl>()
            .unwrap_err();
        assert!(e.to_string().contains("--authority-key"), "{e}");
        // The URL's own key wins over the flag.
        let own = PoolUrl::parse(&text, Some([7; 32])).unwrap();
        assert_eq!(own, u);
        // A key that is not one: a clear error naming it.
        let e = "stratum2+tcp://pool.example:3336/notakey"
            .parse::<PoolUrl>()
            .unwrap_err();
        assert!(e.to_string().contains("\"notakey\""), "{e}");
    }
}
