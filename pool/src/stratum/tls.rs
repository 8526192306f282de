//! The `stratum+ssl` listener's TLS: rustls with the certificate chain and key from PEM
//! files, swapped for freshly read ones on SIGHUP (certificate renewals need no restart).
//!
//! Connections hold the configuration they were accepted with; a reload only changes what
//! the next handshake uses. A reload that fails (a missing file, a key that does not match)
//! keeps the old configuration and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used; each names the file and the setting.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading stratum.tls.{setting} {file}: {source}")]
    Read {
        /// `cert_file` or `key_file`.
        setting: &'static str,
        /// The file.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The certificate file is not PEM, or holds no certificate.
    #[error("stratum.tls.cert_file {file}: {detail}")]
    Certificate {
        /// The file.
        file: String,
        /// What is wrong.
        detail: String,
    },
    /// The key file holds no usable private key.
    #[error("stratum.tls.key_file {file}: no usable private key ({detail})")]
    Key {
        /// The file.
        file: String,
        /// What rustls said.
        detail: String,
    },
    /// The key does not belong to the certificate (or rustls refused the pair).
    #[error("stratum.tls: the key {key} does not fit the certificate {cert}: {detail}")]
    Mismatch {
        /// The key file.
        key: String,
        /// The certificate file.
        cert: String,
        /// What rustls said.
        detail: String,
    },
}

/// The acceptor in use and the files it came from.
pub struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Certificates, TlsError> {
        let acceptor = read(cert_file, key_file)?;
        Ok(Certificates {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new(acceptor),
        })
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the files; on failure the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

fn read(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    let (cert, key) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let cert_pem = std::fs::read(cert_file).map_err(|source| TlsError::Read {
        setting: "cert_file",
        file: cert.clone(),
        source,
    })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate {
            file: cert.clone(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            file: cert,
            detail: "no PEM CERTIFICATE block in it".into(),
        });
    }
    let key_pem = std::fs::read(key_file).map_err(|source| TlsError::Read {
        setting: "key_file",
        file: key.clone(),
        source,
    })?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        file: key.clone(),
        detail: e.to_string(),
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mismatch = |detail: String| TlsError::Mismatch {
        key: key.clone(),
        cert: cert.clone(),
        detail,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let c = dir.join(format!("{name}.crt"));
        let k = dir.join(format!("{name}.key"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn loads_and_explains_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "a");
        let certs = Certificates::load(&c, &k).unwrap();

        let missing = Certificates::load(&dir.path().join("nope.crt"), &k)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.crt"), "{missing}");
        let (_, other_key) = write_pair(dir.path(), "b");
        let mismatch = Certificates::load(&c, &other_key).unwrap_err().to_string();
        assert!(mismatch.contains("does not fit"), "{mismatch}");
        let not_pem = Certificates::load(&k, &k).unwrap_err().to_string();
        assert!(not_pem.contains("no PEM CERTIFICATE"), "{not_pem}");

        // A failed reload keeps the old certificate; a good one replaces it.
        std::fs::write(&c, "garbage").unwrap();
        assert!(certs.reload().is_err());
        let (c2, k2) = write_pair(dir.path(), "c");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(&k2, &k).unwrap();
        certs.reload().unwrap();
    }
}
