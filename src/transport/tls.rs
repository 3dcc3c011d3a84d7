//! Owns TLS on the network listeners (the HTTP listener, the TCP listener, the admin channel's
//! TCP listener): the certificate and key read from PEM files, the optional client CA (mTLS),
//! the server configuration every new handshake takes from an [`ArcSwap`], its reload when the
//! files change (connections already open keep the configuration they were made with), the
//! handshake under a deadline, and the [`Principal`] a client certificate names.
//!
//! A file that does not load at start is an error naming it (the node refuses to start); at a
//! reload the configuration in use stays, the failure is logged with the file's name and the
//! `tls_reload` alert fires until a later change loads.

use crate::log_limit::LogLimiter;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// Handshakes that failed or ran past the deadline, logged at most once a second.
static HANDSHAKE_REFUSALS: LogLimiter = LogLimiter::per_second();

/// Why the TLS files could not be made into a server configuration. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("tls: cannot read {key} file {path}: {error}")]
    Read {
        /// The configuration key naming it (`tls.cert`, `tls.key`, `tls.client_ca`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error (in the message: the error is whole without a chain of sources).
        error: std::io::Error,
    },
    /// A file was read but holds nothing usable.
    #[error("tls: {key} file {path}: {reason}")]
    Invalid {
        /// The configuration key naming it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The files a [`TlsServer`] serves from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// CA certificates a client certificate must chain to (mTLS), PEM.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files of `[tls]`.
    pub fn of(config: &crate::config::TlsConfig) -> Self {
        Self {
            cert: PathBuf::from(&config.cert),
            key: PathBuf::from(&config.key),
            client_ca: (!config.client_ca.is_empty()).then(|| PathBuf::from(&config.client_ca)),
        }
    }

    /// The SHA-256 of every file's bytes, in order (`None`: unreadable): what a reload compares
    /// (a rewrite with the same size and time stamp is still seen), without keeping another
    /// copy of the private key.
    fn contents(&self) -> Vec<Option<[u8; 32]>> {
        use sha2::Digest as _;
        let mut paths = vec![&self.cert, &self.key];
        paths.extend(self.client_ca.as_ref());
        paths
            .into_iter()
            .map(|p| {
                std::fs::read(p)
                    .ok()
                    .map(|b| sha2::Sha256::digest(&b).into())
            })
            .collect()
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        key,
        path: path.to_owned(),
        error,
    })
}

fn invalid(key: &'static str, path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        key,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The certificates of a PEM file (none is an error).
fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(key, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

/// The one process-wide crypto provider (aws-lc-rs, which ractor_cluster links anyway).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads the files into a server configuration (TLS 1.3).
pub fn load(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let chain = certificates("tls.cert", &files.cert)?;
    let key_pem = read("tls.key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            "tls.key",
            &files.key,
            format!("no usable PEM private key: {e}"),
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| invalid("tls.cert", &files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("tls.client_ca", path)? {
                roots
                    .add(cert)
                    .map_err(|e| invalid("tls.client_ca", path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| invalid("tls.client_ca", path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            "tls.key",
            &files.key,
            format!("does not go with {}: {e}", files.cert.display()),
        )
    })
}

/// Who a client is, as its certificate says (mTLS): the subject's common name and the DNS,
/// e-mail and URI names of its subject alternative names. Kept small on purpose: the caller's
/// identity as the transport knows it, for whatever authorises requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The subject's first common name (CN), if it has one.
    pub common_name: Option<String>,
    /// The subject alternative names: DNS names, e-mail addresses, URIs, in the certificate's
    /// order.
    pub alt_names: Vec<String>,
}

impl Principal {
    /// The principal of a client's end-entity certificate (DER); `None` if it cannot be read
    /// or names no one.
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let alt_names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        GeneralName::DNSName(n) | GeneralName::RFC822Name(n) => {
                            Some((*n).to_owned())
                        }
                        GeneralName::URI(n) => Some((*n).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        (common_name.is_some() || !alt_names.is_empty()).then_some(Self {
            common_name,
            alt_names,
        })
    }

    /// One name for logs and checks: the CN, else the first alternative name.
    pub fn name(&self) -> &str {
        self.common_name
            .as_deref()
            .or_else(|| self.alt_names.first().map(String::as_str))
            .unwrap_or("")
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A stream after its handshake: TLS over `IO`.
pub(crate) type TlsStream<IO> = tokio_rustls::server::TlsStream<IO>;

/// The node's TLS: the configuration new handshakes take, the files it came from, the deadline.
pub struct TlsServer {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
    handshake_timeout: Duration,
    /// The files' digests when last loaded (or tried): a change is what differs.
    seen: std::sync::Mutex<Vec<Option<[u8; 32]>>>,
    /// Where a failed reload is flagged for the `tls_reload` alert.
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What a reload check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were.
    Unchanged,
    /// They changed and were loaded: new handshakes present the new certificate.
    Loaded,
    /// They changed and did not load: the old configuration stays (why, naming the file).
    Failed(String),
}

impl TlsServer {
    /// Loads `files`; an error names the file that did not load.
    pub fn start(
        files: TlsFiles,
        handshake_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TlsError> {
        let seen = files.contents();
        let config = load(&files)?;
        Ok(Arc::new(Self {
            files,
            current: ArcSwap::from_pointee(config),
            handshake_timeout,
            seen: std::sync::Mutex::new(seen),
            metrics,
        }))
    }

    /// Loads the files again if they changed since the last look. On failure the configuration
    /// in use stays and the `tls_reload` alert is flagged until a later change loads.
    pub fn check(&self) -> Reload {
        let now = self.files.contents();
        {
            let mut seen = crate::locks::lock(&self.seen);
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match load(&self.files) {
            Ok(config) => {
                self.current.store(Arc::new(config));
                self.metrics
                    .tls_reload_failed
                    .store(false, Ordering::Relaxed);
                tracing::info!(cert = %self.files.cert.display(), "tls certificate reloaded: new connections use it");
                Reload::Loaded
            }
            Err(e) => {
                self.metrics
                    .tls_reload_failed
                    .store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "tls reload failed: the certificate loaded before stays in use");
                Reload::Failed(e.to_string())
            }
        }
    }

    /// Checks the files every `interval` until the task is aborted.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let server = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let server = Arc::clone(&server);
                // File reads: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || server.check()).await;
            }
        })
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Runs the server side of the handshake on `io` within the deadline, with the
    /// configuration in force now; the stream and the client certificate's principal (mTLS).
    /// A failure or a handshake past the deadline is logged at a bounded rate (`what` and
    /// `peer` name the connection) and the stream is dropped (closed).
    pub(crate) async fn accept<IO>(
        &self,
        io: IO,
        what: &str,
        peer: std::net::SocketAddr,
    ) -> Option<(TlsStream<IO>, Option<Principal>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current.load_full());
        let why = match tokio::time::timeout(self.handshake_timeout, acceptor.accept(io)).await {
            Ok(Ok(stream)) => {
                let principal = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|cert| Principal::of_certificate(cert));
                match &principal {
                    Some(p) => {
                        tracing::debug!(%peer, principal = %p, "{what} tls client authenticated as {p}");
                    }
                    None => tracing::debug!(%peer, "{what} tls handshake done"),
                }
                return Some((stream, principal));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no handshake within tls.handshake_timeout ({} ms)",
                self.handshake_timeout.as_millis()
            ),
        };
        if let Some(held) = HANDSHAKE_REFUSALS.allow() {
            tracing::info!(%peer, refused_since_last_line = held, "{what} tls handshake refused: {why}");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed(names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["localhost"]);
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
        let missing = dir.path().join("missing.pem");
        let files = |c: &PathBuf, k: &PathBuf| TlsFiles {
            cert: c.clone(),
            key: k.clone(),
            client_ca: None,
        };
        assert!(load(&files(&cert, &key)).is_ok());
        for (files, named) in [
            (files(&garbage, &key), &garbage),
            (files(&missing, &key), &missing),
            (files(&cert, &garbage), &garbage),
            // A key that is not the certificate's: the key file is named.
            (files(&cert, &cert), &cert),
        ] {
            let e = load(&files).unwrap_err().to_string();
            assert!(e.contains(&named.display().to_string()), "{e}");
        }
        let (_, other_key) = self_signed(&["other"]);
        let other_key = write(dir.path(), "other-key.pem", &other_key);
        let e = load(&files(&cert, &other_key)).unwrap_err().to_string();
        assert!(e.contains("other-key.pem"), "{e}");
        let ca = TlsFiles {
            client_ca: Some(garbage.clone()),
            ..files(&cert, &key)
        };
        let e = load(&ca).unwrap_err().to_string();
        assert!(
            e.contains("tls.client_ca") && e.contains("garbage.pem"),
            "{e}"
        );
    }

    #[test]
    fn a_reload_that_fails_keeps_the_old_configuration_and_flags_the_alert() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["localhost"]);
        let files = TlsFiles {
            cert: write(dir.path(), "cert.pem", &cert),
            key: write(dir.path(), "key.pem", &key),
            client_ca: None,
        };
        let metrics = Arc::new(Metrics::default());
        let server =
            TlsServer::start(files.clone(), Duration::from_secs(1), Arc::clone(&metrics)).unwrap();
        let first = server.current.load_full();
        assert_eq!(server.check(), Reload::Unchanged);
        std::fs::write(&files.cert, "broken").unwrap();
        assert!(matches!(server.check(), Reload::Failed(e) if e.contains("cert.pem")));
        assert!(Arc::ptr_eq(&first, &server.current.load_full()));
        assert!(metrics.tls_reload_failed.load(Ordering::Relaxed));
        // Nothing changed since the failure: not tried again.
        assert_eq!(server.check(), Reload::Unchanged);
        let (cert, key) = self_signed(&["localhost"]);
        std::fs::write(&files.key, key).unwrap();
        std::fs::write(&files.cert, cert).unwrap();
        assert_eq!(server.check(), Reload::Loaded);
        assert!(!Arc::ptr_eq(&first, &server.current.load_full()));
        assert!(!metrics.tls_reload_failed.load(Ordering::Relaxed));
    }

    #[test]
    fn the_principal_is_the_subject_cn_and_its_alt_names() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let principal = Principal::of_certificate(cert.der()).unwrap();
        assert_eq!(principal.common_name.as_deref(), Some("alice"));
        assert_eq!(principal.alt_names, ["client.example"]);
        assert_eq!(principal.name(), "alice");
        // No CN: the first alternative name.
        let mut params = rcgen::CertificateParams::new(vec!["svc.example".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        let principal = Principal::of_certificate(cert.der()).unwrap();
        assert_eq!(principal.common_name, None);
        assert_eq!(principal.name(), "svc.example");
        assert_eq!(Principal::of_certificate(b"junk"), None);
    }
}
