//! Pool and node URLs as miners write them: `stratum+tcp://host:port`,
//! `stratum+ssl://host:port`, and (solo) `http://user:pass@host:port`.

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
}

/// A URL that is not a pool URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad pool URL {url:?}: {reason} (expected stratum+tcp://HOST:PORT or stratum+ssl://HOST:PORT)"
)]
pub struct UrlError {
    /// The text given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

pub use noderpc::split_host_port;

impl FromStr for PoolUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| UrlError {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = s.split_once("://").unwrap_or(("stratum+tcp", s));
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "stratum+tcp" | "stratum" | "tcp" => false,
            "stratum+ssl" | "stratum+tls" | "ssl" | "tls" => true,
            other => return Err(err(&format!("unknown scheme {other:?}"))),
        };
        let (host, port) = split_host_port(rest).map_err(|e| err(&e.to_string()))?;
        Ok(PoolUrl { host, port, tls })
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_miners_write() {
        let u: PoolUrl = "stratum+tcp://pool.example:3333".parse().unwrap();
        assert_eq!(
            u,
            PoolUrl {
                host: "pool.example".into(),
                port: 3333,
                tls: false
            }
        );
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
    }
}
