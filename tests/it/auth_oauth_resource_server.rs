//! erlmcp as an OAuth 2.1 resource server, from outside, on the fast lane and on hyper's path:
//! an authorization server stand-in made here (a P-256 key generated with aws-lc-rs, its JWKS
//! served on loopback by a tiny axum server that counts fetches) signs the tokens. The metadata
//! document (RFC 9728); 401 with `WWW-Authenticate: Bearer resource_metadata=…` for no token and
//! for a token of the wrong audience or issuer, expired, or badly signed, decided from the head;
//! 403 `insufficient_scope`; an unknown `kid` makes the node fetch the JWKS again, at a bounded
//! rate; opaque tokens through introspection (RFC 7662), each answer kept; the rules filter
//! `tools/list` and refuse `tools/call` (403 with the step-up challenge for a missing scope); a
//! session is its maker's; `erlmcp remote auth` shows the
//! rules and the denials, `/metrics` their counters.

use crate::support::http::{ACCEPT, JSON, Reply, post, request};
use crate::support::node::Node;
use crate::support::remote::{Remote, get_metrics, text};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RESOURCE: &str = "https://mcp.test/mcp";
const METADATA: &str = "/.well-known/oauth-protected-resource/mcp";

/// A signing key of the stand-in.
struct SigningKey {
    kid: String,
    encoding: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        // Uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            kid: kid.to_owned(),
            encoding: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }
}

/// The one opaque token the stand-in's introspection endpoint says is active, and the
/// credentials it wants of the node.
const OPAQUE: &str = "opaque-good-token-0001";
const CLIENT: (&str, &str) = ("rs", "rs-secret");

/// The authorization server stand-in: its JWKS at `/jwks`, and how often it was fetched; its
/// introspection endpoint at `/introspect`, and how often it was called; a JWKS that never
/// comes at `/slow-jwks`, and how often it was asked for.
struct AuthServer {
    addr: SocketAddr,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    slow_fetches: Arc<AtomicUsize>,
    introspections: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl AuthServer {
    fn start(keys: Vec<Value>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
        let introspections = Arc::new(AtomicUsize::new(0));
        let asked = Arc::clone(&introspections);
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", CLIENT.0, CLIENT.1))
        );
        let introspect =
            axum::routing::post(move |headers: axum::http::HeaderMap, form: String| {
                let asked = Arc::clone(&asked);
                let basic = basic.clone();
                async move {
                    asked.fetch_add(1, Ordering::SeqCst);
                    let authorized = headers
                        .get("authorization")
                        .is_some_and(|v| v.as_bytes() == basic.as_bytes());
                    let active = authorized && form.starts_with(&format!("token={OPAQUE}&"));
                    let answer = if active {
                        json!({"active": true, "sub": "carol", "scope": "mcp", "aud": RESOURCE,
                            "client_id": "app-2", "exp": now() + 3600})
                    } else {
                        json!({"active": false})
                    };
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        answer.to_string(),
                    )
                }
            });
        // A JWKS that never comes: the node's fetch must give up at auth.jwks_timeout.
        let slow_fetches = Arc::new(AtomicUsize::new(0));
        let slow_counted = Arc::clone(&slow_fetches);
        let slow = axum::routing::get(move || async move {
            slow_counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(30)).await;
            "{}"
        });
        let app = axum::Router::new()
            .route("/slow-jwks", slow)
            .route("/introspect", introspect)
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let (served, counted) = (Arc::clone(&served), Arc::clone(&counted));
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let keys = served.lock().unwrap().clone();
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            json!({ "keys": keys }).to_string(),
                        )
                    }
                }),
            );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            keys,
            fetches,
            slow_fetches,
            introspections,
            runtime: Some(runtime),
        }
    }

    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn introspections(&self) -> usize {
        self.introspections.load(Ordering::SeqCst)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed by `key` with `claims` over the defaults (issuer, audience, an hour to live).
fn token(key: &SigningKey, issuer: &str, claims: Value) -> String {
    let mut all = json!({
        "iss": issuer, "aud": RESOURCE, "sub": "alice", "client_id": "app-1",
        "exp": now() + 3600, "iat": now(), "scope": "mcp",
    });
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &all, &key.encoding).unwrap()
}

fn config(server: &AuthServer) -> String {
    format!(
        r#"[auth]
enabled = true
resource = "{RESOURCE}"
authorization_servers = ["{issuer}"]
scopes_supported = ["mcp", "tools:admin"]
required_scopes = ["mcp"]
jwks_uri = "{issuer}/jwks"
jwks_refetch_interval = 1000
jwks_timeout = 1000

[[auth.rules]]
scopes = ["tools:admin"]
tools = ["sleep"]

[[auth.rules]]
principals = ["bob"]
resources = ["test://static-*"]
prompts = ["test_simple_prompt"]
"#,
        issuer = server.issuer()
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn initialize_with(addr: SocketAddr, token: &str) -> Reply {
    let init = crate::support::http::initialize_request();
    post(addr, None, &init, &[("authorization", &bearer(token))])
}

/// A GET of `path` with no token: status, headers, body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    get_with(addr, path, "")
}

/// A GET of `path` with `headers` (each ending in CRLF): status and body.
fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\n{headers}\r\n",
        addr.port()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = stream.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn assert_unauthorized(reply: &Reply, error: Option<&str>, what: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"https://mcp.test{METADATA}\""
        )),
        "{what}: {challenge}"
    );
    match error {
        Some(error) => assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{what}: {challenge}"
        ),
        None => assert!(challenge.contains("scope=\"mcp\""), "{what}: {challenge}"),
    }
}

fn tool_names(reply: &Reply) -> Vec<String> {
    let answer = if reply.header("content-type") == Some("text/event-stream") {
        reply.sse_messages().pop().unwrap()
    } else {
        reply.json()
    };
    answer["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The whole scenario on one lane.
fn scenario(fast_lane: bool) {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let issuer = server.issuer();
    let node = Node::http_lane(Some(&config(&server)), fast_lane);
    let addr = node.http.unwrap();

    // The metadata document, without a token.
    let (status, body) = get(addr, METADATA);
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["resource"], RESOURCE);
    assert_eq!(document["authorization_servers"], json!([issuer]));
    assert_eq!(get(addr, "/.well-known/oauth-protected-resource").0, 200);

    // No token: 401 pointing at the metadata, with the scope needed.
    let init = crate::support::http::initialize_request();
    assert_unauthorized(&post(addr, None, &init, &[]), None, "no token");

    // A valid token: served.
    let alice = token(&key, &issuer, json!({}));
    let reply = initialize_with(addr, &alice);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let session = reply.header("mcp-session-id").unwrap().to_owned();
    let auth = bearer(&alice);
    let extra = [("authorization", auth.as_str())];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(addr, Some(&session), &initialized, &extra).status, 202);

    // Refused tokens: wrong audience, wrong issuer, expired, signed by another key.
    let refused = [
        (
            "wrong audience",
            token(&key, &issuer, json!({"aud": "https://other.test/mcp"})),
        ),
        (
            "wrong issuer",
            token(&key, &issuer, json!({"iss": "http://evil.test"})),
        ),
        (
            "expired",
            token(&key, &issuer, json!({"exp": now() - 3600})),
        ),
        (
            "bad signature",
            token(&SigningKey::generate("k1"), &issuer, json!({})),
        ),
        ("not a JWT", "abc".to_owned()),
    ];
    for (what, bad) in &refused {
        assert_unauthorized(&initialize_with(addr, bad), Some("invalid_token"), what);
    }

    // A token without the required scope: 403 insufficient_scope.
    let weak = token(&key, &issuer, json!({"scope": "other"}));
    let reply = initialize_with(addr, &weak);
    assert_eq!(reply.status, 403, "{}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\", scope=\"mcp\""),
        "{challenge}"
    );

    // Decided from the head: a large body announced and never sent is refused at once.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: 100000\r\n\r\n",
        addr.port()
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .expect("an answer before the body");
    assert_eq!(&head, b"HTTP/1.1 401");

    // The rules: `sleep` needs tools:admin; alice's list lacks it and her call is refused.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let names = tool_names(&post(addr, Some(&session), &list, &extra));
    assert!(names.contains(&"echo".to_owned()), "{names:?}");
    assert!(!names.contains(&"sleep".to_owned()), "{names:?}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1}}});
    let reply = post(addr, Some(&session), &call, &extra);
    // A missing scope is the step-up challenge: 403 naming the scopes to ask for.
    assert_eq!(reply.status, 403, "{}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\", scope=\"mcp tools:admin\""),
        "{challenge}"
    );
    let answer = reply.json();
    assert_eq!(answer["error"]["code"], -32003, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`sleep`") && message.contains("tools:admin"),
        "{message}"
    );
    // Resources and prompts only bob is granted: left out of alice's list, refused to her.
    let resources = json!({"jsonrpc": "2.0", "id": 4, "method": "resources/list"});
    let listed = post(addr, Some(&session), &resources, &extra).text();
    assert!(listed.contains("test://watched-resource"), "{listed}");
    assert!(!listed.contains("test://static-text"), "{listed}");
    for (method, params) in [
        ("resources/read", json!({"uri": "test://static-text"})),
        ("resources/subscribe", json!({"uri": "test://static-text"})),
        ("prompts/get", json!({"name": "test_simple_prompt"})),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "test_simple_prompt"},
                "argument": {"name": "x", "value": ""}}),
        ),
    ] {
        let request = json!({"jsonrpc": "2.0", "id": 5, "method": method, "params": params});
        let reply = post(addr, Some(&session), &request, &extra);
        assert_eq!(reply.status, 200, "no scope would help: {method}");
        let text = reply.text();
        assert!(
            text.contains("-32003") && text.contains("not allowed for `alice`"),
            "{method}: {text}"
        );
    }
    // An admin token sees and calls it.
    let admin = token(
        &key,
        &issuer,
        json!({"scope": "mcp tools:admin", "sub": "bob"}),
    );
    let reply = initialize_with(addr, &admin);
    let admin_session = reply.header("mcp-session-id").unwrap().to_owned();
    let admin_auth = bearer(&admin);
    let admin_extra = [("authorization", admin_auth.as_str())];
    post(addr, Some(&admin_session), &initialized, &admin_extra);
    let names = tool_names(&post(addr, Some(&admin_session), &list, &admin_extra));
    assert!(names.contains(&"sleep".to_owned()), "{names:?}");
    let listed = post(addr, Some(&admin_session), &resources, &admin_extra).text();
    assert!(listed.contains("test://static-text"), "{listed}");
    let reply = post(addr, Some(&admin_session), &call, &admin_extra);
    assert!(reply.text().contains("\"result\""), "{}", reply.text());
    // A session is its maker's: another subject's token does not reach it.
    assert_eq!(post(addr, Some(&session), &list, &admin_extra).status, 404);

    // Key rotation: a token of an unknown kid makes the node fetch the JWKS again (once the
    // refetch interval has passed since the last fetch) and is accepted; another unknown kid
    // right after is refused without a fetch.
    let before = server.fetches();
    assert!(before >= 1, "the JWKS is fetched at start");
    let rotated = SigningKey::generate("k2");
    server.keys.lock().unwrap().push(rotated.jwk.clone());
    std::thread::sleep(Duration::from_millis(1100));
    let reply = initialize_with(addr, &token(&rotated, &issuer, json!({})));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(server.fetches(), before + 1);
    let unknown = SigningKey::generate("k3");
    assert_unauthorized(
        &initialize_with(addr, &token(&unknown, &issuer, json!({}))),
        Some("invalid_token"),
        "unknown kid within the refetch interval",
    );
    assert_eq!(server.fetches(), before + 1, "no fetch within the interval");
    drop(node);
}

#[test]
fn tokens_and_rules_on_the_fast_lane() {
    scenario(true);
}

#[test]
fn tokens_and_rules_on_hyper() {
    scenario(false);
}

#[test]
fn opaque_tokens_are_introspected_and_each_answer_kept() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let introspection = format!(
        "jwks_timeout = 1000\nintrospection_endpoint = \"{}/introspect\"\nintrospection_client_id = \"{}\"\nintrospection_client_secret = \"{}\"\n",
        server.issuer(),
        CLIENT.0,
        CLIENT.1
    );
    let config = config(&server).replace("jwks_timeout = 1000\n", &introspection);
    let node = Node::http(Some(&config));
    let addr = node.http.unwrap();

    let reply = initialize_with(addr, OPAQUE);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(server.introspections(), 1);
    assert_eq!(initialize_with(addr, OPAQUE).status, 200);
    assert_eq!(server.introspections(), 1, "the answer is kept");

    for _ in 0..2 {
        assert_unauthorized(
            &initialize_with(addr, "opaque-unknown-token"),
            Some("invalid_token"),
            "inactive",
        );
    }
    assert_eq!(server.introspections(), 2, "an inactive answer is kept too");

    // A JWT still goes to the keys, not to introspection.
    let jwt = token(&key, &server.issuer(), json!({}));
    assert_eq!(initialize_with(addr, &jwt).status, 200);
    assert_eq!(server.introspections(), 2);
}

#[test]
fn every_http_entry_asks_for_the_token() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let node = Node::http(Some(&config(&server)));
    let addr = node.http.unwrap();
    let upgrade = "upgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for (path, headers) in [
        ("/mcp", "accept: text/event-stream\r\n"),
        ("/sse", "accept: text/event-stream\r\n"),
        ("/ws", upgrade),
    ] {
        assert_eq!(get_with(addr, path, headers).0, 401, "GET {path}");
    }
    let alice = format!(
        "authorization: Bearer {}\r\n",
        token(&key, &server.issuer(), json!({}))
    );
    // With a token the upgrade is made (its socket then stays open: only the status is read).
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nhost: 127.0.0.1:{}\r\n{upgrade}{alice}\r\n",
        addr.port()
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101", "the upgrade with a token");
}

/// `POST path` with `authorization` and a JSON `body`: the status.
fn post_to(addr: SocketAddr, path: &str, authorization: &str, body: &Value) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nconnection: close\r\ncontent-type: application/json\r\nauthorization: {authorization}\r\ncontent-length: {}\r\n\r\n{body}",
        addr.port(),
        body.len()
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn a_websocket_closes_when_its_token_expires() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let node = Node::http(Some(&config(&server)));
    let addr = node.http.unwrap();
    let short = token(&key, &server.issuer(), json!({"exp": now() + 2}));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nhost: 127.0.0.1:{}\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nauthorization: Bearer {short}\r\n\r\n",
        addr.port()
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // Read the 101 and then until the node closes the socket.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_secs(6),
        "closed after {lived:?}"
    );
}

#[test]
fn a_legacy_sse_session_is_its_makers() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let node = Node::http(Some(&config(&server)));
    let addr = node.http.unwrap();
    let alice = bearer(&token(&key, &server.issuer(), json!({})));
    let bob = bearer(&token(&key, &server.issuer(), json!({"sub": "bob"})));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /sse HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: text/event-stream\r\nauthorization: {alice}\r\n\r\n",
        addr.port()
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    let path = loop {
        let n = stream.read(&mut buf).expect("the endpoint event");
        assert!(n > 0, "closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(at) = seen.find("data: /messages?sessionId=")
            && let Some(end) = seen[at..].find('\n')
        {
            break seen[at + 6..at + end].to_owned();
        }
    };
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    assert_eq!(post_to(addr, &path, &bob, &ping), 404, "another subject");
    assert_eq!(post_to(addr, &path, &alice, &ping), 202, "its maker");
}

#[test]
fn a_jwks_that_never_comes_holds_a_request_no_longer_than_the_fetch_timeout() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let config = config(&server)
        .replace("/jwks\"", "/slow-jwks\"")
        .replace("jwks_timeout = 1000", "jwks_timeout = 300")
        .replace(
            "jwks_refetch_interval = 1000",
            "jwks_refetch_interval = 100",
        );
    let node = Node::http(Some(&config));
    let addr = node.http.unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let reply = initialize_with(addr, &token(&key, &server.issuer(), json!({})));
    let waited = started.elapsed();
    assert_unauthorized(&reply, Some("invalid_token"), "no keys");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    // It did ask for the keys: refused for their absence, not before asking.
    assert!(
        server.slow_fetches.load(Ordering::SeqCst) >= 1,
        "the node never asked for the slow JWKS"
    );
    // The node still serves: a request without a token is answered at once.
    let init = crate::support::http::initialize_request();
    assert_eq!(post(addr, None, &init, &[]).status, 401);
}

#[test]
fn a_bad_auth_section_exits_2_naming_the_key() {
    for (config, key) in [
        ("[auth]\nenabled = true\n", "auth.resource"),
        (
            "[auth]\nenabled = true\nresource = \"https://mcp.test/mcp\"\njwks_uri = \"https://as.test/jwks\"\nissuer = \"https://as.test\"\nalgorithms = [\"HS256\"]\n",
            "auth.algorithms",
        ),
        (
            "[auth]\nenabled = true\nresource = \"https://mcp.test/mcp\"\n[[auth.api_keys]]\nkey = \"short\"\nsubject = \"ops\"\n",
            "auth.api_keys[0].key",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, config).unwrap();
        let out = crate::support::home::PrivateHome::new()
            .command()
            .args(["start", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{config}: {err}");
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn without_auth_the_metadata_is_not_served_and_requests_need_no_token() {
    let node = Node::http(None);
    let addr = node.http.unwrap();
    assert_eq!(get(addr, METADATA).0, 404);
    let init = crate::support::http::initialize_request();
    let reply = request(
        addr,
        "POST",
        &[JSON, ACCEPT],
        init.to_string().as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn remote_auth_shows_the_rules_and_the_denials_and_metrics_count_them() {
    let key = SigningKey::generate("k1");
    let server = AuthServer::start(vec![key.jwk.clone()]);
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("auth-test-{}", std::process::id());
    let cookie = "auth-cookie";
    let dir = runtime.path().as_os_str();
    let env = [
        ("XDG_RUNTIME_DIR", dir),
        ("HOME", dir),
        ("ERLMCP_COOKIE", OsStr::new(cookie)),
    ];
    let args = [
        "--http",
        "127.0.0.1:0",
        "--name",
        &name,
        "--admin-http",
        "127.0.0.1:0",
    ];
    let mut node = Node::with_env_and_config(&args, &env, &config(&server));
    node.wait_log("admin channel listening");
    let admin_http = node.wait_addr("admin http listening on ");
    let addr = node.find_addr("http listening on ");
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie,
    };

    let alice = token(&key, &server.issuer(), json!({}));
    let reply = initialize_with(addr, &alice);
    let session = reply.header("mcp-session-id").unwrap().to_owned();
    let auth = bearer(&alice);
    let extra = [("authorization", auth.as_str())];
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1}}});
    assert_eq!(
        post(addr, Some(&session), &call, &extra).json()["error"]["code"],
        -32003
    );
    let init = crate::support::http::initialize_request();
    assert_eq!(post(addr, None, &init, &[]).status, 401);

    let out = remote.eval("auth rules", false);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("tools:admin") && shown.contains("sleep"),
        "{shown}"
    );
    let denials = remote.eval_json("auth denials");
    assert_eq!(denials[0]["subject"], "alice", "{denials}");
    assert_eq!(denials[0]["name"], "sleep", "{denials}");
    assert_eq!(
        denials[0]["missing_scopes"],
        json!(["tools:admin"]),
        "{denials}"
    );
    let stats = remote.eval_json("auth");
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(stats["denials"], 1, "{stats}");

    let (status, metrics) = get_metrics(admin_http, Some(cookie));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("erlmcp_auth_denials_total{node=")
            && metrics.contains("reason=\"missing\"} 1"),
        "{metrics}"
    );
}
