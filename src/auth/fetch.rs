//! Owns the outgoing HTTP requests the node makes for authorization — a GET of the authorization
//! server's JWKS, a POST to its introspection endpoint — over hyper's HTTP/1.1 client, TLS by
//! rustls with the Mozilla roots for `https`, each under one timeout and a body bound.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The largest document taken (a JWKS of a few keys is a few KiB).
const MAX_BODY: usize = 1 << 20;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URI is not an absolute http(s) URI.
    #[error("not an absolute http(s) URI: {0}")]
    BadUri(String),
    /// Connecting, TLS, or the HTTP exchange failed.
    #[error("{0}")]
    Io(String),
    /// The answer was not 200.
    #[error("answered {0}")]
    Status(u16),
    /// The body was over the bound.
    #[error("body over {MAX_BODY} bytes")]
    TooLarge,
    /// Past the timeout.
    #[error("no answer within {0} ms")]
    TimedOut(u128),
}

/// GETs `uri` within `timeout`: the body of a 200 answer.
pub(crate) async fn get(uri: &str, timeout: Duration) -> Result<Bytes, FetchError> {
    send(uri, None, timeout).await
}

/// POSTs a form (`application/x-www-form-urlencoded`) to `uri` with `authorization`, within
/// `timeout`: the body of a 200 answer.
pub(crate) async fn post_form(
    uri: &str,
    form: String,
    authorization: &str,
    timeout: Duration,
) -> Result<Bytes, FetchError> {
    send(uri, Some((form, authorization)), timeout).await
}

async fn send(
    uri: &str,
    form: Option<(String, &str)>,
    timeout: Duration,
) -> Result<Bytes, FetchError> {
    match tokio::time::timeout(timeout, send_unbounded(uri, form)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(FetchError::TimedOut(timeout.as_millis())),
    }
}

async fn send_unbounded(uri: &str, form: Option<(String, &str)>) -> Result<Bytes, FetchError> {
    let bad = || FetchError::BadUri(uri.to_owned());
    let parsed: axum::http::Uri = uri.parse().map_err(|_| bad())?;
    let tls = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad()),
    };
    let authority = parsed.authority().ok_or_else(bad)?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| FetchError::Io(format!("connect {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    use axum::http::header;
    let builder = axum::http::Request::builder()
        .uri(path)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "application/json");
    let request = match form {
        None => builder.method("GET").body(Full::new(Bytes::new())),
        Some((form, authorization)) => builder
            .method("POST")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::from(form))),
    }
    .map_err(|e| FetchError::Io(e.to_string()))?;
    if tls {
        let name = rustls_name(host)?;
        let stream = tls_connector()
            .connect(name, tcp)
            .await
            .map_err(|e| FetchError::Io(format!("tls with {host}: {e}")))?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<IO>(
    io: IO,
    request: axum::http::Request<Full<Bytes>>,
) -> Result<Bytes, FetchError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let io_error = |e: hyper::Error| FetchError::Io(e.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(io_error)?;
    // The connection is driven beside the request; it ends with this fetch (no keep-alive kept).
    let driver = tokio::spawn(connection);
    let outcome = async {
        let response = sender.send_request(request).await.map_err(io_error)?;
        if response.status() != axum::http::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Io(e.to_string())
                }
            })?;
        Ok(body.to_bytes())
    }
    .await;
    driver.abort();
    outcome
}

fn rustls_name(
    host: &str,
) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, FetchError> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| FetchError::BadUri(format!("{host}: {e}")))
}

/// One TLS client configuration for the process: the Mozilla roots, rustls's defaults.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<tokio_rustls::rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = tokio_rustls::rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        match config {
            Ok(config) => Arc::new(config),
            // The provider's defaults always include TLS 1.2 and 1.3; kept as a fallback.
            Err(e) => {
                tracing::error!(error = %e, "rustls configuration failed; using its defaults");
                Arc::new(
                    tokio_rustls::rustls::ClientConfig::builder()
                        .with_root_certificates(tokio_rustls::rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )
            }
        }
    });
    tokio_rustls::TlsConnector::from(Arc::clone(config))
}
