//! Embeds erlmcp as a library: registers a native tool, changes the registry at run time and
//! checks that live sessions hear about it (`list_changed`, `resources/updated`), that a batch
//! is all or nothing, and that one crashed session does not disturb another.
//!
//! The application tree registers global names, so one tree per process: `support::tree` runs
//! the in-process trees of the test binary one at a time.

use crate::support::{node, tree};

use erlmcp::app::Application;
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, RegistryError, ToolEntry};
use erlmcp::session::{RequestContext, SESSION_SUP};
use erlmcp_supervisors::SupervisorRef;
use node::Client;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn shout() -> ToolEntry {
    ToolEntry::new(
        Tool::new("shout", "Upper-cases `text`", json!({"type": "object"})),
        |_ctx: RequestContext, args: Arguments| async move {
            #[derive(serde::Deserialize)]
            struct A {
                text: String,
            }
            Ok(CallToolResult::text(args.parse::<A>()?.text.to_uppercase()))
        },
    )
}

fn connect(addr: std::net::SocketAddr) -> Client<TcpStream, TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    Client::new(stream.try_clone().unwrap(), stream)
}

#[test]
fn registry_changes_reach_live_sessions_and_sessions_fail_alone() {
    tree::run(|home| async move {
        let mut config = home.config();
        config.tcp.enabled = true;
        config.http.enabled = true;
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.tcp.addr = "127.0.0.1:0".parse().unwrap();
        let app = Application::start_with(&config, vec![Change::Tool(shout())])
            .await
            .unwrap();
        let addr = app.tcp_addr().expect("tcp bound");

        let (mut a, mut b) = tokio::task::spawn_blocking(move || {
            let mut a = connect(addr);
            let mut b = connect(addr);
            a.initialize("2025-11-25", json!({}));
            b.initialize("2025-11-25", json!({}));
            let r = a.call(
                1,
                "tools/call",
                json!({"name": "shout", "arguments": {"text": "hey"}}),
            );
            assert_eq!(r["result"]["content"][0]["text"], "HEY");
            assert_eq!(
                a.call(
                    2,
                    "resources/subscribe",
                    json!({"uri": "test://watched-resource"})
                )["result"],
                json!({})
            );
            (a, b)
        })
        .await
        .unwrap();

        // A batch with a bad removal changes nothing.
        let before = app.registry().snapshot().version;
        let refused = app
            .registry()
            .apply(vec![
                Change::RemoveTool("echo".into()),
                Change::RemoveTool("no_such_tool".into()),
            ])
            .await;
        assert!(matches!(refused, Err(RegistryError::NotFound { .. })));
        assert_eq!(app.registry().snapshot().version, before);
        assert!(app.registry().snapshot().tools.contains_key("echo"));

        // A good batch is applied and every session is told.
        app.registry()
            .apply(vec![Change::RemoveTool("shout".into())])
            .await
            .unwrap();
        app.registry().resource_updated("test://watched-resource");

        let (a, b) = tokio::task::spawn_blocking(move || {
            for client in [&mut a, &mut b] {
                let note = client.next(node::WAIT).unwrap();
                assert_eq!(note["method"], "notifications/tools/list_changed");
            }
            let updated = a.next(node::WAIT).unwrap();
            assert_eq!(updated["method"], "notifications/resources/updated");
            assert_eq!(updated["params"]["uri"], "test://watched-resource");
            assert!(
                b.silent_for(Duration::from_millis(300)),
                "b did not subscribe"
            );
            let gone = a.call(
                3,
                "tools/call",
                json!({"name": "shout", "arguments": {"text": "x"}}),
            );
            assert_eq!(gone["error"]["code"], -32602);
            (a, b)
        })
        .await
        .unwrap();

        // Kill a's session actor (the only one: a session gets an actor once it holds something,
        // a subscription here): a's connection closes, b's session carries on.
        let sessions = SupervisorRef::whereis(SESSION_SUP).unwrap();
        let children = sessions.which_children().await.unwrap();
        assert_eq!(children.len(), 1, "only a's session holds something");
        children[0].actor.as_ref().unwrap().kill();
        tokio::task::spawn_blocking(move || {
            let (mut a, mut b) = (a, b);
            assert!(a.closed(), "the killed session's connection closes");
            assert_eq!(b.call(9, "ping", json!({}))["result"], json!({}));
        })
        .await
        .unwrap();

        // 2026-07-28 `subscriptions/listen`, over TCP and over HTTP: acknowledged first, then only
        // the kinds asked for, stamped with the listen request's id.
        let http_addr = app.http_addr().expect("http bound");
        let (c, mut http) = tokio::task::spawn_blocking(move || {
            let mut c = connect(addr);
            c.request(
                json!("listen-1"),
                "subscriptions/listen",
                json!({"notifications": {"toolsListChanged": true,
                                     "resourceSubscriptions": ["test://watched-resource"]},
                   "_meta": envelope()}),
            );
            let ack = c.next(node::WAIT).unwrap();
            assert_eq!(
                ack["method"], "notifications/subscriptions/acknowledged",
                "{ack}"
            );
            assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);
            assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], "listen-1");
            let mut http = open_http_listen(http_addr);
            let seen = read_until(&mut http, "notifications/subscriptions/acknowledged");
            assert!(seen.contains("\"listen-2\""), "{seen}");
            (c, http)
        })
        .await
        .unwrap();
        let listeners = sessions.count_children().await.unwrap();
        app.registry()
            .apply(vec![Change::Tool(shout())])
            .await
            .unwrap();
        app.registry().resource_updated("test://watched-resource");
        tokio::task::spawn_blocking(move || {
            let mut c = c;
            let changed = c.next(node::WAIT).unwrap();
            assert_eq!(changed["method"], "notifications/tools/list_changed");
            assert_eq!(changed["params"]["_meta"][SUBSCRIPTION_ID], "listen-1");
            let updated = c.next(node::WAIT).unwrap();
            assert_eq!(updated["method"], "notifications/resources/updated");
            assert_eq!(updated["params"]["uri"], "test://watched-resource");
            let seen = read_until(&mut http, "notifications/tools/list_changed");
            assert!(!seen.contains("resources/updated"), "not asked for: {seen}");
        })
        .await
        .unwrap();
        // The HTTP listener's session actor stops once its client is gone.
        let mut left = listeners.active;
        for _ in 0..100 {
            left = sessions.count_children().await.unwrap().active;
            if left < listeners.active {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            left < listeners.active,
            "the listen session outlived its client"
        );

        let snapshot = app.snapshot().await.unwrap();
        assert!(snapshot.find_child("erlmcp_registry").is_some());
        app.stop().await.unwrap();
    });
}

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

fn envelope() -> serde_json::Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
           "io.modelcontextprotocol/clientCapabilities": {}})
}

/// Opens an HTTP `subscriptions/listen` (id `listen-2`, tools only) and returns the connection.
fn open_http_listen(addr: std::net::SocketAddr) -> TcpStream {
    let body = json!({"jsonrpc": "2.0", "id": "listen-2", "method": "subscriptions/listen",
                      "params": {"notifications": {"toolsListChanged": true}, "_meta": envelope()}})
    .to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n\
         mcp-method: subscriptions/listen\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    stream
}

/// Reads from `stream` until `needle` has arrived; returns what was read.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = stream.read(&mut buf).unwrap_or(0);
        assert!(n > 0, "stream ended before {needle}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen
}
