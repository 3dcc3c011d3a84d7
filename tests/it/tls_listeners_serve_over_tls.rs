//! TLS on the network listeners, black-box: a CA, the node's certificate and a client's made
//! here with rcgen (never committed) in a private directory; clients that trust that CA over
//! loopback. HTTP (the fast lane and hyper's path, legacy SSE, WebSocket) and TCP over TLS;
//! mTLS refusing a client without a certificate and naming the one with; a reload (new
//! connections get the new certificate, an open one keeps working); a bad file at reload (the
//! old certificate stays, the `tls_reload` alert fires); a bad file at start (exit ≠ 0 naming
//! it); the handshake deadline; the admin channel's TCP listener, and `erlmcp remote --tls-ca`
//! to it; the admin HTTP listener (`/metrics`) over TLS.

use crate::support::home::PrivateHome;
use crate::support::node::Node;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The test CA, and certificates it signs.
struct Pki {
    dir: tempfile::TempDir,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
    ca_der: CertificateDer<'static>,
}

/// A certificate and its key, PEM and DER.
struct Issued {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "erlmcp test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca_params: params,
            ca_key,
            ca_der: ca.der().clone(),
        };
        std::fs::write(pki.path("ca.pem"), ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `names` (DNS), with `cn` as subject common name, signed by the CA.
    fn issue(&self, cn: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
        }
    }

    /// Writes the node's certificate and key to `cert.pem` / `key.pem`.
    fn install(&self, issued: &Issued) {
        std::fs::write(self.path("cert.pem"), &issued.cert_pem).unwrap();
        std::fs::write(self.path("key.pem"), &issued.key_pem).unwrap();
    }

    /// The `[tls]` section serving `cert.pem` / `key.pem`, and more keys.
    fn config(&self, more: &str) -> String {
        format!(
            "[tls]\nenabled = true\ncert = \"{}\"\nkey = \"{}\"\n{more}",
            self.path("cert.pem").display(),
            self.path("key.pem").display()
        )
    }

    /// A client trusting the CA, presenting `client` when given.
    fn client(&self, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match client {
            None => builder.with_no_client_auth(),
            Some(issued) => {
                let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
                builder
                    .with_client_auth_cert(vec![issued.cert_der.clone()], key)
                    .unwrap()
            }
        })
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` as `localhost`, the handshake done.
fn connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// The certificate the server presented.
fn presented(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// An HTTP answer: its status, its headers (lower-case names), its body.
type Answer = (u16, Vec<(String, String)>, String);

/// One HTTP/1.1 request on a kept-alive connection; the status, the headers (lower-case names)
/// and the body (by its Content-Length).
fn http(
    io: &mut (impl Read + Write),
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes())?;
    io.write_all(body.as_bytes())?;
    io.flush()?;
    let mut reader = BufReader::new(io);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tls-test","version":"0"}}}"#;

/// `initialize` over `tls`: 200 and the session id.
fn initialize(tls: &mut Tls) -> String {
    let (status, headers, body) = http(tls, "POST", "/mcp", &[], INITIALIZE).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"serverInfo\""), "{body}");
    headers
        .into_iter()
        .find(|(n, _)| n == "mcp-session-id")
        .map(|(_, v)| v)
        .expect("a session id")
}

/// `ping` in session `id` over `tls`: 200 and its answer.
fn ping(tls: &mut Tls, id: &str) -> std::io::Result<u16> {
    let (status, _, body) = http(
        tls,
        "POST",
        "/mcp",
        &[
            ("mcp-session-id", id),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
    )?;
    assert!(status != 200 || body.contains("\"result\""), "{body}");
    Ok(status)
}

/// A node serving HTTP and TCP under `config`; its HTTP and TCP addresses.
fn start(config: &str) -> (Node, SocketAddr, SocketAddr) {
    let mut node = Node::with_env_and_config(
        &[
            "--http",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:0",
            "--log-level",
            "debug",
        ],
        &[],
        config,
    );
    let http = node.find_addr("http listening on ");
    let tcp = node.find_addr("tcp listening on ");
    (node, http, tcp)
}

/// Whether the server closes `stream` (EOF or a reset) within `within`, having sent nothing
/// that parses as what a plain-text client waits for.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
        if started.elapsed() > within {
            return false;
        }
    }
}

/// A client's WebSocket text frame (masked, as RFC 6455 §5.3 wants), payload under 64 KiB.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81];
    if payload.len() < 126 {
        frame.push(0x80 | payload.len() as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The server's next WebSocket frame's payload, as text (unmasked, under 64 KiB).
fn read_text_frame(io: &mut impl Read) -> String {
    let mut head = [0u8; 2];
    io.read_exact(&mut head).unwrap();
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            io.read_exact(&mut ext).unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        127 => panic!("a frame over 64 KiB"),
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).unwrap();
    String::from_utf8_lossy(&payload).into_owned()
}

#[test]
fn tls_http_and_tcp_are_served_over_tls() {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    let (_node, http_addr, tcp_addr) = start(&pki.config(""));
    let client = pki.client(None);

    // HTTP: the fast lane's POST, then hyper's path (DELETE) on the same TLS connection.
    let mut tls = connect(http_addr, &client).unwrap();
    let session = initialize(&mut tls);
    assert_eq!(ping(&mut tls, &session).unwrap(), 200);
    let (status, _, _) = http(
        &mut tls,
        "DELETE",
        "/mcp",
        &[("mcp-session-id", &session)],
        "",
    )
    .unwrap();
    assert!((200..300).contains(&status), "DELETE answered {status}");

    // Legacy SSE: its stream opens over TLS.
    let mut tls = connect(http_addr, &client).unwrap();
    let (status, headers, _) = http(&mut tls, "GET", "/sse", &[], "").unwrap();
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/event-stream")),
        "{headers:?}"
    );

    // WebSocket: the upgrade, then initialize in a text frame and its answer.
    let mut tls = connect(http_addr, &client).unwrap();
    let upgrade = [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    let (status, _, _) = http(&mut tls, "GET", "/ws", &upgrade, "").unwrap();
    assert_eq!(status, 101);
    tls.write_all(&masked_text_frame(INITIALIZE.as_bytes()))
        .unwrap();
    tls.flush().unwrap();
    let answer = read_text_frame(&mut tls);
    assert!(answer.contains("\"serverInfo\""), "{answer}");

    // Plain text on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(http_addr).unwrap();
    plain
        .write_all(b"POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}")
        .unwrap();
    let mut answer = Vec::new();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // TCP: newline-delimited JSON-RPC inside TLS.
    let mut tls = connect(tcp_addr, &client).unwrap();
    tls.write_all(INITIALIZE.as_bytes()).unwrap();
    tls.write_all(b"\n").unwrap();
    tls.flush().unwrap();
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line).unwrap();
    assert!(line.contains("\"serverInfo\""), "{line}");
}

#[test]
fn tls_mtls_refuses_a_client_without_a_certificate_and_names_the_one_with() {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    let config = pki.config(&format!(
        "client_ca = \"{}\"\n",
        pki.path("ca.pem").display()
    ));
    let (mut node, http_addr, tcp_addr) = start(&config);

    // Without a certificate: under TLS 1.3 the client's side of the handshake ends before the
    // server has judged it; the refusal comes as the first read.
    for addr in [http_addr, tcp_addr] {
        let refused = connect(addr, &pki.client(None)).and_then(|mut tls| {
            http(&mut tls, "POST", "/mcp", &[], INITIALIZE).map(|(status, _, _)| status)
        });
        assert!(
            refused.is_err(),
            "{addr}: a client without a certificate was served: {refused:?}"
        );
    }
    node.wait_log("tls handshake refused");

    // A certificate from another CA is refused too.
    let stranger = Pki::new().issue("mallory", &["mallory.example"]);
    let refused = connect(http_addr, &pki.client(Some(&stranger)))
        .and_then(|mut tls| http(&mut tls, "POST", "/mcp", &[], INITIALIZE));
    assert!(refused.is_err(), "a certificate of another CA was accepted");

    // With one: served, and named by its subject CN.
    let alice = pki.issue("alice", &["alice.example"]);
    let mut tls = connect(http_addr, &pki.client(Some(&alice))).unwrap();
    initialize(&mut tls);
    node.wait_log("tls client authenticated as alice");
    let mut tls = connect(tcp_addr, &pki.client(Some(&alice))).unwrap();
    tls.write_all(format!("{INITIALIZE}\n").as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(&mut tls).read_line(&mut line).unwrap();
    assert!(line.contains("\"serverInfo\""), "{line}");
}

#[test]
fn tls_a_client_certificate_authenticates_a_request_without_a_token_when_asked_to() {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    let config = pki.config(&format!(
        "client_ca = \"{}\"\n[auth]\nenabled = true\nresource = \"https://mcp.test/mcp\"\nclient_certificates = true\nclient_certificate_scopes = [\"mcp\"]\nrequired_scopes = [\"mcp\"]\n[[auth.api_keys]]\nkey = \"bob-key-0123456789ab\"\nsubject = \"bob\"\nscopes = [\"mcp\"]\n",
        pki.path("ca.pem").display()
    ));
    let (_node, http_addr, _) = start(&config);
    let alice = pki.issue("alice", &["alice.example"]);
    // No token: the certificate is the principal (alice, with the configured scopes).
    let mut tls = connect(http_addr, &pki.client(Some(&alice))).unwrap();
    let session = initialize(&mut tls);
    assert_eq!(ping(&mut tls, &session).unwrap(), 200);
    // A token on the same connection is another principal: alice's session is not bob's.
    let (status, _, body) = http(
        &mut tls,
        "POST",
        "/mcp",
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-06-18"),
            ("authorization", "Bearer bob-key-0123456789ab"),
        ],
        r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
    )
    .unwrap();
    assert_eq!(status, 404, "{body}");
}

#[test]
fn tls_certificates_reload_without_a_restart_and_a_bad_file_keeps_the_old_one() {
    let pki = Pki::new();
    let first = pki.issue("node-1", &["localhost"]);
    pki.install(&first);
    let (mut node, http_addr, _) = start(&pki.config("reload_interval = 200\n"));
    let client = pki.client(None);
    let mut open = connect(http_addr, &client).unwrap();
    assert_eq!(presented(&open), first.cert_der);
    let session = initialize(&mut open);

    // New files: new connections get the new certificate; the open one still works.
    let second = pki.issue("node-2", &["localhost"]);
    pki.install(&second);
    node.wait_log("tls certificate reloaded");
    let fresh = connect(http_addr, &client).unwrap();
    assert_eq!(presented(&fresh), second.cert_der);
    assert_eq!(ping(&mut open, &session).unwrap(), 200);

    // A bad certificate file: the old certificate stays, the error names the file and the
    // tls_reload alert fires.
    std::fs::write(
        pki.path("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    let failed = node.wait_log("tls reload failed");
    assert!(failed.contains("cert.pem"), "{failed}");
    let fresh = connect(http_addr, &client).unwrap();
    assert_eq!(presented(&fresh), second.cert_der);
    let alert = node.wait_log("alert firing");
    assert!(alert.contains("tls_reload"), "{alert}");

    // Fixed: loaded, and the alert clears.
    let third = pki.issue("node-3", &["localhost"]);
    pki.install(&third);
    node.wait_log("tls certificate reloaded");
    assert_eq!(
        presented(&connect(http_addr, &client).unwrap()),
        third.cert_der
    );
    let cleared = node.wait_log("alert cleared");
    assert!(cleared.contains("tls_reload"), "{cleared}");
}

#[test]
fn tls_a_bad_file_at_start_stops_the_node_naming_it() {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    std::fs::write(pki.path("bad-key.pem"), "not a key\n").unwrap();
    for (cert, key, named) in [
        (pki.path("missing.pem"), pki.path("key.pem"), "missing.pem"),
        (pki.path("cert.pem"), pki.path("bad-key.pem"), "bad-key.pem"),
    ] {
        let home = PrivateHome::new();
        let config = home.path().join("tls.toml");
        std::fs::write(
            &config,
            format!(
                "[tls]\nenabled = true\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let out = home
            .command()
            .args(["start", "--http", "127.0.0.1:0", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{stderr}");
        assert!(out.status.code().is_some(), "killed by a signal: {stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(!stderr.contains("http listening"), "{stderr}");
    }
}

#[test]
fn tls_a_client_that_never_finishes_the_handshake_is_closed_at_the_deadline() {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    let (mut node, http_addr, tcp_addr) = start(&pki.config("handshake_timeout = 300\n"));
    for addr in [http_addr, tcp_addr] {
        // Half a ClientHello record header, then silence.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(&[0x16, 0x03, 0x01]).unwrap();
        assert!(
            closed_within(&mut stream, Duration::from_secs(5)),
            "{addr} left open"
        );
    }
    node.wait_log("no handshake within tls.handshake_timeout");
    // Served as before.
    let mut tls = connect(http_addr, &pki.client(None)).unwrap();
    initialize(&mut tls);
}

/// A node under TLS (handshakes bounded at 1 s) with its admin `listener` (`tcp` or `http`) on
/// loopback, cookie `tls-cookie`; the PKI that made its certificate.
fn admin_over_tls(listener: &str) -> (Pki, Node) {
    let pki = Pki::new();
    pki.install(&pki.issue("node", &["localhost"]));
    let node = Node::with_env_and_config(
        &["--http", "127.0.0.1:0"],
        &[("ERLMCP_COOKIE", std::ffi::OsStr::new("tls-cookie"))],
        &format!(
            "{}[admin]\n{listener} = \"127.0.0.1:0\"\n",
            pki.config("handshake_timeout = 1000\n")
        ),
    );
    (pki, node)
}

#[test]
fn tls_the_admin_tcp_listener_speaks_tls() {
    // A plain-text client waits for a hello the node never sends: closed at the deadline.
    let (pki, mut node) = admin_over_tls("tcp");
    let line = node.find_log("admin channel listening on tcp");
    let addr: SocketAddr = line
        .rsplit("addr=")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"));
    let mut tls = connect(addr, &pki.client(None)).unwrap();
    let mut hello = String::new();
    BufReader::new(&mut tls).read_line(&mut hello).unwrap();
    assert!(hello.contains("\"erlmcp\""), "{hello}");
    // Plain text gets no hello.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.write_all(b"{}\n").unwrap();
    let mut answer = Vec::new();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("erlmcp"));

    // `erlmcp remote` over it: with --tls-ca it is served, without it gets no hello.
    let remote = |tls: &[&str]| {
        std::process::Command::new(crate::support::home::BIN)
            .args(["remote", "--node", &addr.to_string(), "--eval", "tree"])
            .args(tls)
            .env("HOME", node.home())
            .env("XDG_RUNTIME_DIR", node.home())
            .env("ERLMCP_COOKIE", "tls-cookie")
            .output()
            .unwrap()
    };
    let ca = pki.path("ca.pem").display().to_string();
    let served = remote(&["--tls-ca", &ca, "--tls-name", "localhost"]);
    let text = String::from_utf8_lossy(&served.stdout);
    assert!(
        served.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&served.stderr)
    );
    assert!(text.contains("erlmcp_sup"), "{text}");
    let plain = remote(&[]);
    assert!(!plain.status.success());
    // The wrong name for the node's certificate is refused by the client.
    let misnamed = remote(&["--tls-ca", &ca]);
    assert!(!misnamed.status.success());
}

#[test]
fn tls_the_admin_http_listener_speaks_tls() {
    // (Off loopback it is accepted under TLS only: src/config/tls.rs's unit test.)
    let (pki, mut node) = admin_over_tls("http");
    let line = node.find_log("admin http listening on");
    assert!(line.contains("(https:"), "{line}");
    let addr = node.find_addr("admin http listening on ");
    let mut tls = connect(addr, &pki.client(None)).unwrap();
    let (status, _, body) = http(
        &mut tls,
        "GET",
        "/metrics",
        &[("authorization", "Bearer tls-cookie")],
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("erlmcp_"), "{body}");
    // The cookie is still asked for inside TLS.
    let mut tls = connect(addr, &pki.client(None)).unwrap();
    let (status, _, _) = http(&mut tls, "GET", "/metrics", &[], "").unwrap();
    assert_eq!(status, 401);
    // Plain text gets no HTTP answer: the handshake fails and the connection is closed.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(
            b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer tls-cookie\r\n\r\n",
        )
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
