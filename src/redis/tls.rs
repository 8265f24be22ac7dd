//! Certificates the caller gives for `rediss://` (the `redis-tls` feature):
//! the roots that verify the server, in place of the system's, and a client
//! certificate for a server that requires one.

use super::{client, Endpoint, RedisState, StorageError, StorageErrorKind};
use std::fmt;

/// PEM certificates for a TLS connection to Redis. Without roots the
/// server is verified against the system's trust store; with them, against
/// those alone. The server's name (or IP address) is always checked against
/// its certificate. Hand it to [`RedisState::connect_tls`] (or, with
/// `redis-cluster`, `RedisState::connect_cluster_tls`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsCertificates {
    roots: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsCertificates {
    // The private key never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificates")
            .field("roots", &self.roots.as_ref().map(|pem| pem.len()))
            .field("client_certificate", &self.client.is_some())
            .finish()
    }
}

const PEM_CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----";

impl TlsCertificates {
    /// No roots of its own (the system's are used), no client certificate.
    pub fn new() -> TlsCertificates {
        TlsCertificates::default()
    }

    /// Verifies the server against the certificates in `pem` (one or more
    /// PEM `CERTIFICATE` blocks) instead of the system's trust store.
    pub fn root_certificates(mut self, pem: impl Into<Vec<u8>>) -> TlsCertificates {
        self.roots = Some(pem.into());
        self
    }

    /// Presents `certificate` (a PEM chain, the client's own first) with its
    /// PEM private `key` when the server asks for a client certificate.
    pub fn client_certificate(
        mut self,
        certificate: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> TlsCertificates {
        self.client = Some((certificate.into(), key.into()));
        self
    }

    /// The `redis` crate's form, every PEM checked to hold what it should.
    pub(crate) fn to_redis(&self) -> Result<::redis::TlsCertificates, StorageError> {
        let invalid = |what: &str| StorageError::new(StorageErrorKind::InvalidUrl, &what);
        if let Some(roots) = &self.roots {
            if !contains(roots, PEM_CERTIFICATE) {
                return Err(invalid("root_certificates: no PEM CERTIFICATE block"));
            }
        }
        if let Some((certificate, key)) = &self.client {
            if !contains(certificate, PEM_CERTIFICATE) {
                return Err(invalid("client_certificate: no PEM CERTIFICATE block"));
            }
            if !contains(key, b"PRIVATE KEY-----") {
                return Err(invalid(
                    "client_certificate: the key holds no PEM PRIVATE KEY block",
                ));
            }
        }
        Ok(::redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ::redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.roots.clone(),
        })
    }

    /// A client for `url` (`rediss://` only) with these certificates.
    pub(crate) fn client(&self, url: &str, masked: &str) -> Result<::redis::Client, StorageError> {
        if !url.starts_with("rediss://") {
            return Err(StorageError::new(
                StorageErrorKind::InvalidUrl,
                &format_args!("{masked:?}: certificates are for TLS, give a rediss:// URL"),
            ));
        }
        let certificates = self.to_redis()?;
        ::redis::Client::build_with_tls(url, certificates).map_err(|e| {
            StorageError::new(
                StorageErrorKind::InvalidUrl,
                &format_args!("{masked:?} with these certificates: {e}"),
            )
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl RedisState {
    /// As [`RedisState::connect`] for a `rediss://` URL, verifying the
    /// server with `certificates`' roots and presenting its client
    /// certificate, if any. Certificates that do not parse are an error
    /// now; a server they do not verify is a fault when the breaker
    /// connects, never a connection without TLS.
    pub fn connect_tls(url: &str, certificates: &TlsCertificates) -> Result<RedisState, StorageError> {
        let masked = client::mask_password(url);
        let redis_client = certificates.client(url, &masked)?;
        // Breakers of a process share connections by this key: the same URL
        // with other certificates is another endpoint.
        let key = format!("{url}\n{:?}\n{:?}", certificates.roots, certificates.client);
        Ok(RedisState::from_endpoint(Endpoint::Url {
            client: redis_client,
            url: key,
            masked,
        }))
    }
}
