//! Embeds erlmcp and checks session hibernation (`hibernate_after`) over WebSocket, Streamable
//! HTTP and TCP: a session runs without an actor until it holds something (a subscription), is
//! served meanwhile (tools, ping, a tool's request to the client, change notifications), gets an
//! actor when it subscribes and keeps it while subscribed, hibernates again once it has held
//! nothing for `hibernate_after` with its state intact, and leaves nothing behind when closed.
//!
//! The application tree registers global names, so one tree per process: `support::tree` runs
//! the in-process trees of the test binary one at a time.

use crate::support::{http, node, tree, ws};

use erlmcp::app::Application;
use erlmcp::registry::Change;
use erlmcp::session::{SESSION_SUP, SessionInfo, hibernating_count, hibernating_sessions};
use erlmcp_supervisors::SupervisorRef;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use ws::{Socket, next_json, send};

/// How long a wait for the node may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
/// `hibernate_after` in this test, in milliseconds.
const HIBERNATE_AFTER: u64 = 200;

async fn call(socket: &mut Socket, id: u64, method: &str, params: Value) -> Value {
    send(
        socket,
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .await;
    next_json(socket).await
}

async fn open(addr: SocketAddr, capabilities: Value) -> Socket {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let answer = call(
        &mut socket,
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": capabilities}),
    )
    .await;
    assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
    socket
}

/// Session actors running under `erlmcp_session_sup`.
async fn running_sessions() -> usize {
    let sup = SupervisorRef::whereis(SESSION_SUP).unwrap();
    sup.which_children()
        .await
        .unwrap()
        .iter()
        .filter(|child| child.actor.is_some())
        .count()
}

/// Waits (bounded) until `check` holds for the hibernating sessions and the count of running
/// session actors; returns the hibernating sessions.
async fn until(what: &str, check: impl Fn(&[SessionInfo], usize) -> bool) -> Vec<SessionInfo> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (asleep, running) = (hibernating_sessions(), running_sessions().await);
        if check(&asleep, running) {
            return asleep;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: hibernating {asleep:?}, {running} running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One JSON-RPC request over Streamable HTTP (the blocking client, off the runtime's threads).
async fn http_call(
    addr: SocketAddr,
    session: Option<String>,
    id: u64,
    method: &'static str,
    params: Value,
) -> http::Reply {
    tokio::task::spawn_blocking(move || {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        if let Some(session) = &session {
            headers.push(("mcp-session-id", session));
            headers.push(("mcp-protocol-version", "2025-11-25"));
        }
        http::request(addr, "POST", &headers, body.to_string().as_bytes(), WAIT)
    })
    .await
    .unwrap()
}

#[test]
fn sessions_run_without_an_actor_until_they_hold_something() {
    tree::run(|home| async move {
        let mut config = home.config();
        config.http.enabled = true;
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.tcp.enabled = true;
        config.tcp.addr = "127.0.0.1:0".parse().unwrap();
        config.hibernate_after = HIBERNATE_AFTER;
        let app = Application::start_with(&config, Vec::new()).await.unwrap();
        let addr = app.http_addr().expect("http bound");

        // Opened and initialized, neither session has an actor; both are listed, initialized.
        let mut a = open(addr, json!({})).await;
        let mut b = open(addr, json!({})).await;
        let asleep = until("a and b start hibernating", |s, running| {
            s.len() == 2 && running == 0
        })
        .await;
        assert!(asleep.iter().all(|s| s.hibernating));
        assert!(
            asleep
                .iter()
                .all(|s| s.revision.as_deref() == Some("2025-11-25"))
        );
        assert_eq!(hibernating_count(), 2, "what the metrics gauge reads");
        // Served without one.
        let echoed = call(
            &mut a,
            1,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        )
        .await;
        assert_eq!(echoed["result"]["content"][0]["text"], "hi", "{echoed}");
        let level = call(&mut a, 2, "logging/setLevel", json!({"level": "debug"})).await;
        assert_eq!(level["result"], json!({}));
        assert_eq!(
            running_sessions().await,
            0,
            "no request so far needed an actor"
        );

        // b subscribes: its session gets an actor and keeps it while it holds the subscription.
        let subscribed = call(
            &mut b,
            1,
            "resources/subscribe",
            json!({"uri": "test://watched-resource"}),
        )
        .await;
        assert_eq!(subscribed["result"], json!({}));
        assert_eq!(running_sessions().await, 1);
        tokio::time::sleep(Duration::from_millis(3 * HIBERNATE_AFTER)).await;
        assert_eq!(running_sessions().await, 1, "b holds a subscription");
        assert_eq!(hibernating_sessions().len(), 1);

        // Change notifications reach both; the update only b, which subscribed.
        app.registry()
            .apply(vec![Change::RemoveTool("echo".into())])
            .await
            .unwrap();
        for socket in [&mut a, &mut b] {
            let note = next_json(socket).await;
            assert_eq!(note["method"], "notifications/tools/list_changed");
        }
        app.registry().resource_updated("test://watched-resource");
        let updated = next_json(&mut b).await;
        assert_eq!(updated["method"], "notifications/resources/updated");
        let gone = call(&mut a, 3, "tools/call", json!({"name": "echo"})).await;
        assert_eq!(gone["error"]["code"], -32602, "echo was removed: {gone}");

        // A tool's request to the client (sampling) is served without an actor too.
        let mut c = open(addr, json!({"sampling": {}})).await;
        send(
            &mut c,
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
               "params": {"name": "test_sampling", "arguments": {"prompt": "hi"}}}),
        )
        .await;
        let asked = next_json(&mut c).await;
        assert_eq!(asked["method"], "sampling/createMessage", "{asked}");
        assert_eq!(running_sessions().await, 1, "only b's");
        send(
        &mut c,
        json!({"jsonrpc": "2.0", "id": asked["id"].clone(),
               "result": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "hello"}}}),
    )
    .await;
        let result = next_json(&mut c).await;
        assert_eq!(
            result["result"]["content"][0]["text"], "LLM response: hello",
            "{result}"
        );

        // b unsubscribes: holding nothing, it hibernates after `hibernate_after`, state kept.
        let unsubscribed = call(
            &mut b,
            2,
            "resources/unsubscribe",
            json!({"uri": "test://watched-resource"}),
        )
        .await;
        assert_eq!(unsubscribed["result"], json!({}));
        let asleep = until("b hibernates again", |s, running| {
            s.len() == 3 && running == 0
        })
        .await;
        assert!(
            asleep
                .iter()
                .all(|s| s.revision.as_deref() == Some("2025-11-25"))
        );
        assert!(
            asleep.iter().any(|s| s.requests >= 3),
            "b's requests (initialize, subscribe, unsubscribe) carried over: {asleep:?}"
        );
        let pong = call(&mut b, 4, "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}));

        // Subscribing just as the actor is due to hibernate: the subscription is kept either way
        // (asking and hibernating take the same lock), so the update reaches b every time.
        let uri = "test://watched-resource";
        for round in 0..12u64 {
            let id = 10 + 4 * round;
            let done = call(&mut b, id, "resources/subscribe", json!({"uri": uri})).await;
            assert_eq!(done["result"], json!({}));
            let done = call(&mut b, id + 1, "resources/unsubscribe", json!({"uri": uri})).await;
            assert_eq!(done["result"], json!({}));
            tokio::time::sleep(Duration::from_millis(HIBERNATE_AFTER - 30 + 5 * round)).await;
            let done = call(&mut b, id + 2, "resources/subscribe", json!({"uri": uri})).await;
            assert_eq!(done["result"], json!({}));
            app.registry().resource_updated(uri);
            let updated = next_json(&mut b).await;
            assert_eq!(
                updated["method"], "notifications/resources/updated",
                "round {round}"
            );
            let done = call(&mut b, id + 3, "resources/unsubscribe", json!({"uri": uri})).await;
            assert_eq!(done["result"], json!({}));
        }

        // Closed, the WebSocket sessions leave nothing behind.
        for socket in [&mut a, &mut b, &mut c] {
            socket.close(None).await.unwrap();
        }
        until("the WebSocket sessions are gone", |s, running| {
            s.is_empty() && running == 0
        })
        .await;

        // Streamable HTTP: the same, ended by DELETE.
        let init = http_call(
            addr,
            None,
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}}),
        )
        .await;
        assert_eq!(init.status, 200, "{}", init.text());
        let id = init
            .header("mcp-session-id")
            .expect("a session id")
            .to_owned();
        until("the HTTP session hibernates", |s, running| {
            s.len() == 1 && running == 0
        })
        .await;
        let watched = json!({"uri": "test://watched-resource"});
        let reply = http_call(
            addr,
            Some(id.clone()),
            2,
            "resources/subscribe",
            watched.clone(),
        )
        .await;
        assert_eq!(reply.json()["result"], json!({}), "{}", reply.text());
        assert_eq!(running_sessions().await, 1, "subscribed over HTTP");
        let reply = http_call(addr, Some(id.clone()), 3, "resources/unsubscribe", watched).await;
        assert_eq!(reply.json()["result"], json!({}), "{}", reply.text());
        until("the HTTP session hibernates again", |s, running| {
            s.len() == 1 && running == 0
        })
        .await;
        tokio::task::spawn_blocking(move || {
            let reply = http::request(
                addr,
                "DELETE",
                &[
                    ("mcp-session-id", &id),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                b"",
                WAIT,
            );
            assert_eq!(reply.status, 200);
        })
        .await
        .unwrap();
        until("the HTTP session is gone", |s, _| s.is_empty()).await;

        // TCP: subscribed when its connection closes, the session's actor stops with it.
        let tcp = app.tcp_addr().expect("tcp bound");
        let client = tokio::task::spawn_blocking(move || {
            let stream = std::net::TcpStream::connect(tcp).unwrap();
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let closer = stream.try_clone().unwrap();
            let mut client = node::Client::new(stream.try_clone().unwrap(), stream);
            client.initialize("2025-11-25", json!({}));
            (client, closer)
        })
        .await
        .unwrap();
        until("the TCP session hibernates", |s, running| {
            s.len() == 1 && running == 0
        })
        .await;
        let (client, closer) = tokio::task::spawn_blocking(move || {
            let (mut client, closer) = client;
            let reply = client.call(
                1,
                "resources/subscribe",
                json!({"uri": "test://watched-resource"}),
            );
            assert_eq!(reply["result"], json!({}));
            (client, closer)
        })
        .await
        .unwrap();
        until("the TCP session is awake", |s, running| {
            s.is_empty() && running == 1
        })
        .await;
        closer.shutdown(std::net::Shutdown::Both).unwrap();
        drop(client);
        until("the TCP session is gone", |s, running| {
            s.is_empty() && running == 0
        })
        .await;
        app.stop().await.unwrap();
    });
}
