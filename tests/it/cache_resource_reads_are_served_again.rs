//! Resource reads that opt in to the cache are served again from it until the resource changes
//! (`resource_updated`, or a registry change replacing it); a resource cached per session is
//! never served to another session, nor cached for a stateless request; and a 2026-07-28 read
//! says what the cache did: `ttlMs` and `cacheScope: "public"` for a resource cached for every
//! caller, `ttlMs: 0` and `"private"` otherwise.

use crate::support::node::{Client, WAIT, connect_initialized};
use crate::support::tree;
use erlmcp::protocol::jsonrpc::RpcError;
use erlmcp::protocol::messages::{Resource, ResourceContents, ResourceTemplate};
use erlmcp::registry::{Change, ResourceEntry, TemplateEntry};
use erlmcp::session::RequestContext;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A resource whose text says how many times it was read.
fn counting_resource(uri: &str, reads: &Arc<AtomicU64>) -> ResourceEntry {
    let reads = Arc::clone(reads);
    ResourceEntry::new(
        Resource::new(uri, "counted"),
        move |_ctx: RequestContext, uri: String| {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Ok::<_, RpcError>(vec![ResourceContents::Text {
                    uri,
                    mime_type: None,
                    text: format!("read {n}"),
                }])
            }
        },
    )
}

/// A template whose reads say the URI read and how many reads the template answered.
fn counting_template(reads: &Arc<AtomicU64>) -> TemplateEntry {
    let reads = Arc::clone(reads);
    TemplateEntry::new(
        ResourceTemplate::new("test://items/{id}", "items"),
        move |_ctx: RequestContext, (uri, _vars): (String, HashMap<String, String>)| {
            let n = reads.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Ok::<_, RpcError>(vec![ResourceContents::Text {
                    text: format!("{uri} read {n}"),
                    uri,
                    mime_type: None,
                }])
            }
        },
    )
    .unwrap()
    .cached(60_000, false)
}

fn read(client: &mut Client<TcpStream, TcpStream>, id: i64, uri: &str) -> String {
    let r = client.call(id, "resources/read", json!({"uri": uri}));
    r["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {r}"))
        .to_owned()
}

/// A stateless (2026-07-28) read on a connection of its own: the whole result.
fn stateless_read(addr: SocketAddr, uri: &str) -> Value {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut client = Client::new(stream.try_clone().unwrap(), stream);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "erlmcp-tests", "version": "1"},
    });
    let r = client.call(1, "resources/read", json!({"uri": uri, "_meta": meta}));
    r["result"].clone()
}

#[test]
fn cached_reads_until_the_resource_changes_private_ones_stay_in_their_session() {
    tree::run(|home| async move {
        let public_reads = Arc::new(AtomicU64::new(0));
        let private_reads = Arc::new(AtomicU64::new(0));
        let config = home.tcp_config();
        let app = erlmcp::app::Application::start_with(
            &config,
            vec![
                Change::Resource(
                    counting_resource("test://public", &public_reads).cached(60_000, false),
                ),
                Change::Resource(
                    counting_resource("test://mine", &private_reads).cached(60_000, true),
                ),
            ],
        )
        .await
        .unwrap();
        let addr = app.tcp_addr().unwrap();

        let (before, private) = tokio::task::spawn_blocking(move || {
            let mut first = connect_initialized(addr);
            let mut second = connect_initialized(addr);
            let before = [
                read(&mut first, 2, "test://public"),
                read(&mut second, 2, "test://public"),
            ];
            let private = [
                read(&mut first, 3, "test://mine"),
                read(&mut second, 3, "test://mine"),
                read(&mut first, 4, "test://mine"),
            ];
            (before, private)
        })
        .await
        .unwrap();
        assert_eq!(
            before,
            ["read 1", "read 1"],
            "the second read came from the cache"
        );
        assert_eq!(private, ["read 1", "read 2", "read 1"]);

        // The program says the resource changed: its cached read goes.
        app.registry().resource_updated("test://public");
        let (after, public_hint, private_hint) = tokio::task::spawn_blocking(move || {
            let mut client = connect_initialized(addr);
            (
                read(&mut client, 2, "test://public"),
                stateless_read(addr, "test://public"),
                stateless_read(addr, "test://mine"),
            )
        })
        .await
        .unwrap();
        assert_eq!(after, "read 2");
        assert_eq!(public_hint["resultType"], "complete", "{public_hint}");
        assert_eq!(public_hint["ttlMs"], 60_000, "{public_hint}");
        assert_eq!(public_hint["cacheScope"], "public", "{public_hint}");
        assert_eq!(
            public_hint["contents"][0]["text"], "read 2",
            "{public_hint}"
        );
        assert_eq!(private_hint["ttlMs"], 0, "{private_hint}");
        assert_eq!(private_hint["cacheScope"], "private", "{private_hint}");
        assert_eq!(
            private_hint["contents"][0]["text"], "read 3",
            "a stateless read of a per-session resource runs, never cached: {private_hint}"
        );
        assert_eq!(public_reads.load(Ordering::SeqCst), 2);
        app.stop().await.unwrap();
    });
}

#[test]
fn template_reads_are_cached_by_uri_until_that_uri_or_the_template_changes() {
    tree::run(|home| async move {
        let reads = Arc::new(AtomicU64::new(0));
        let config = home.tcp_config();
        let app = erlmcp::app::Application::start_with(
            &config,
            vec![Change::Template(counting_template(&reads))],
        )
        .await
        .unwrap();
        let addr = app.tcp_addr().unwrap();
        let first = tokio::task::spawn_blocking(move || {
            let mut one = connect_initialized(addr);
            let mut two = connect_initialized(addr);
            [
                read(&mut one, 2, "test://items/1"),
                read(&mut two, 2, "test://items/1"),
                read(&mut one, 3, "test://items/2"),
            ]
        })
        .await
        .unwrap();
        assert_eq!(
            first,
            [
                "test://items/1 read 1",
                "test://items/1 read 1",
                "test://items/2 read 2"
            ],
            "each URI is its own entry, served again to any session"
        );

        // One URI changed: only its entry goes.
        app.registry().resource_updated("test://items/1");
        let (updated, hint) = tokio::task::spawn_blocking(move || {
            let mut client = connect_initialized(addr);
            (
                [
                    read(&mut client, 2, "test://items/1"),
                    read(&mut client, 3, "test://items/2"),
                ],
                stateless_read(addr, "test://items/1"),
            )
        })
        .await
        .unwrap();
        assert_eq!(
            updated,
            ["test://items/1 read 3", "test://items/2 read 2"],
            "the updated URI is read again, the other still cached"
        );
        assert_eq!(hint["ttlMs"], 60_000, "{hint}");
        assert_eq!(hint["cacheScope"], "public", "{hint}");

        // The template replaced (a new handler): every URI it answered goes.
        app.registry()
            .apply(vec![Change::Template(counting_template(&reads))])
            .await
            .unwrap();
        let replaced = tokio::task::spawn_blocking(move || {
            let mut client = connect_initialized(addr);
            read(&mut client, 2, "test://items/2")
        })
        .await
        .unwrap();
        assert_eq!(replaced, "test://items/2 read 4");
        assert_eq!(reads.load(Ordering::SeqCst), 4);
        app.stop().await.unwrap();
    });
}
