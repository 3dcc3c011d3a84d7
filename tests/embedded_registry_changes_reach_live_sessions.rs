//! Embeds erlmcp as a library: registers a native tool, changes the registry at run time and
//! checks that live sessions hear about it (`list_changed`, `resources/updated`), that a batch
//! is all or nothing, and that one crashed session does not disturb another.
//!
//! One test function: the application tree registers global names, so one tree per process.

#[path = "support/node.rs"]
mod node;

use erlmcp::app::Application;
use erlmcp::config::Config;
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, RegistryError, ToolEntry};
use erlmcp::session::{RequestContext, SESSION_SUP};
use erlmcp_supervisors::SupervisorRef;
use node::Client;
use serde_json::json;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_reach_live_sessions_and_sessions_fail_alone() {
    let mut config = Config::embedded().unwrap();
    config.tcp.enabled = true;
    config.http.enabled = false;
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

    // Kill a's session actor (the first started: a connected first): a's connection closes,
    // b's session carries on.
    let sessions = SupervisorRef::whereis(SESSION_SUP).unwrap();
    let children = sessions.which_children().await.unwrap();
    assert_eq!(children.len(), 2);
    children[0].actor.as_ref().unwrap().kill();
    tokio::task::spawn_blocking(move || {
        let (mut a, mut b) = (a, b);
        assert!(a.closed(), "the killed session's connection closes");
        assert_eq!(b.call(9, "ping", json!({}))["result"], json!({}));
    })
    .await
    .unwrap();
    let snapshot = app.snapshot().await.unwrap();
    assert!(snapshot.find_child("erlmcp_registry").is_some());
    app.stop().await.unwrap();
}
