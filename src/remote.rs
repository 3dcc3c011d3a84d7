//! Owns the client side of the admin channel, used by `erlmcp remote` and `erlmcp plugin`:
//! finding a node (by name: its Unix socket; by `HOST:PORT`: its admin TCP listener, in TLS with
//! `--tls-ca` when the node has `[tls]` on), proving the cookie,
//! sending command lines and reading their replies, streams included.

use crate::admin::cookie;
use crate::admin::protocol::{Hello, PROTOCOL, PeerMessage, Proof, Reply, Welcome};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Why talking to a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No node answers there.
    #[error("cannot reach node `{node}` at {at}: {source}")]
    Connect {
        /// The node asked for.
        node: String,
        /// Where it was looked for.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node refused the cookie.
    #[error("node `{node}` refused the connection: {reason}")]
    Refused {
        /// The node.
        node: String,
        /// Its reason.
        reason: String,
    },
    /// The peer does not speak the admin protocol, or the connection broke.
    #[error("admin protocol: {0}")]
    Protocol(String),
}

/// Where a node is and how to prove the cookie to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// A node name (its socket in `socket_dir`) or a `HOST:PORT` of its admin TCP listener.
    pub node: String,
    /// Where node sockets live.
    pub socket_dir: PathBuf,
    /// The cookie.
    pub cookie: String,
    /// TLS to a `HOST:PORT` node whose admin TCP listener speaks it (`[tls]` on).
    pub tls: Option<RemoteTls>,
}

/// How `erlmcp remote` speaks TLS to an admin TCP listener.
#[derive(Debug, Clone)]
pub struct RemoteTls {
    /// CA certificates (PEM) the node's certificate must chain to.
    pub ca: PathBuf,
    /// The name the node's certificate must carry (a DNS name or an IP address).
    pub name: String,
    /// A client certificate chain and its key (PEM), for a node with `tls.client_ca`.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl RemoteTls {
    /// The connector and the server name, from the files.
    fn connector(
        &self,
    ) -> std::io::Result<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let named = |path: &PathBuf, e: &dyn std::fmt::Display| {
            std::io::Error::other(format!("{}: {e}", path.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).map_err(|e| named(&self.ca, &e))? {
            let cert = cert.map_err(|e| named(&self.ca, &e))?;
            roots.add(cert).map_err(|e| named(&self.ca, &e))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| named(cert, &e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| named(cert, &e))?;
                let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, &e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| named(key, &e))?
            }
        };
        let name = ServerName::try_from(self.name.clone())
            .map_err(|e| std::io::Error::other(format!("--tls-name {}: {e}", self.name)))?;
        Ok((
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
            name,
        ))
    }
}

type Read = BufReader<Box<dyn AsyncRead + Send + Unpin>>;
type Write = Box<dyn AsyncWrite + Send + Unpin>;

/// An authenticated admin connection.
pub struct AdminClient {
    read: Read,
    write: Write,
    next_id: u64,
    line: String,
    /// The node's name, from its hello.
    pub node: String,
}

impl AdminClient {
    /// Connects and authenticates.
    pub async fn connect(target: &Target) -> Result<Self, RemoteError> {
        let (read, write): (Box<dyn AsyncRead + Send + Unpin>, Write) =
            if let Ok(addr) = target.node.parse::<SocketAddr>() {
                let unreachable = |source| RemoteError::Connect {
                    node: target.node.clone(),
                    at: addr.to_string(),
                    source,
                };
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(unreachable)?;
                match &target.tls {
                    None => {
                        let (r, w) = stream.into_split();
                        (Box::new(r), Box::new(w))
                    }
                    Some(tls) => {
                        let (connector, name) = tls.connector().map_err(unreachable)?;
                        let stream = connector.connect(name, stream).await.map_err(unreachable)?;
                        let (r, w) = tokio::io::split(stream);
                        (Box::new(r), Box::new(w))
                    }
                }
            } else {
                let path = target.socket_dir.join(format!("{}.sock", target.node));
                let stream = tokio::net::UnixStream::connect(&path)
                    .await
                    .map_err(|source| RemoteError::Connect {
                        node: target.node.clone(),
                        at: path.display().to_string(),
                        source,
                    })?;
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            };
        let mut client = Self {
            read: BufReader::new(read),
            write,
            next_id: 1,
            line: String::new(),
            node: target.node.clone(),
        };
        // A node too busy to take the connection says so instead of a hello.
        let first: serde_json::Value = client.receive().await?;
        if first.get("erlmcp").is_none()
            && let Ok(refusal) = serde_json::from_value::<Welcome>(first.clone())
        {
            return Err(RemoteError::Refused {
                node: target.node.clone(),
                reason: refusal
                    .error
                    .unwrap_or_else(|| "no reason given".to_owned()),
            });
        }
        let hello: Hello = serde_json::from_value(first)
            .map_err(|e| RemoteError::Protocol(format!("unreadable hello from the node: {e}")))?;
        if hello.erlmcp != PROTOCOL {
            return Err(RemoteError::Protocol(format!(
                "the node speaks `{}`, this client `{PROTOCOL}`",
                hello.erlmcp
            )));
        }
        client.node = hello.node;
        let proof = Proof {
            response: cookie::answer(&target.cookie, &hello.challenge),
        };
        client.send(&proof).await?;
        let welcome: Welcome = client.receive().await?;
        if !welcome.ok {
            return Err(RemoteError::Refused {
                node: client.node,
                reason: welcome
                    .error
                    .unwrap_or_else(|| "no reason given".to_owned()),
            });
        }
        Ok(client)
    }

    async fn send<T: serde::Serialize>(&mut self, value: &T) -> Result<(), RemoteError> {
        let mut line =
            serde_json::to_vec(value).map_err(|e| RemoteError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.write
            .write_all(&line)
            .await
            .map_err(|e| RemoteError::Protocol(format!("write failed: {e}")))
    }

    /// Reads one line. Cancel-safe: a read dropped half-way (Ctrl-C during a stream) leaves what
    /// it read in `self.line`, and the next call completes that line.
    async fn receive<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, RemoteError> {
        let n = self
            .read
            .read_line(&mut self.line)
            .await
            .map_err(|e| RemoteError::Protocol(format!("read failed: {e}")))?;
        let line = std::mem::take(&mut self.line);
        if n == 0 && line.is_empty() {
            return Err(RemoteError::Protocol(
                "the node closed the connection".to_owned(),
            ));
        }
        serde_json::from_str(&line)
            .map_err(|e| RemoteError::Protocol(format!("unreadable line from the node: {e}")))
    }

    /// Sends a command line; returns its id. Read its replies with [`AdminClient::next_reply`].
    pub async fn start(&mut self, command: &str) -> Result<u64, RemoteError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&PeerMessage::Command {
            id,
            command: command.to_owned(),
        })
        .await?;
        Ok(id)
    }

    /// The next reply.
    pub async fn next_reply(&mut self) -> Result<Reply, RemoteError> {
        self.receive().await
    }

    /// Asks the node to end the stream of command `id`.
    pub async fn cancel(&mut self, id: u64) -> Result<(), RemoteError> {
        self.send(&PeerMessage::Cancel { cancel: id }).await
    }

    /// Runs a command that answers once.
    pub async fn call(&mut self, command: &str) -> Result<Reply, RemoteError> {
        self.start(command).await?;
        let mut reply = self.next_reply().await?;
        // A streaming command asked for with `call`: keep its last reply.
        while reply.more {
            reply = self.next_reply().await?;
        }
        Ok(reply)
    }
}
