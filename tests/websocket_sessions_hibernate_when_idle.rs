//! Embeds erlmcp and checks WebSocket session hibernation (`http.ws_hibernate_after`): an idle
//! session's actor stops while its socket stays open, change notifications still reach it, its
//! next message wakes it with its state intact, a session with a subscription or waiting on its
//! client stays awake, and a socket closed while hibernating leaves nothing behind.
//!
//! One test function: the application tree registers global names, so one tree per process.

#[path = "support/ws.rs"]
mod ws;

use erlmcp::app::Application;
use erlmcp::config::Config;
use erlmcp::registry::Change;
use erlmcp::session::{SESSION_SUP, SessionInfo, hibernating_count, hibernating_sessions};
use erlmcp_supervisors::SupervisorRef;
use serde_json::{Value, json};
use std::time::Duration;
use ws::{Socket, next_json, send};

/// How long a wait for the node may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

async fn call(socket: &mut Socket, id: u64, method: &str, params: Value) -> Value {
    send(
        socket,
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .await;
    next_json(socket).await
}

async fn open(addr: std::net::SocketAddr, capabilities: Value) -> Socket {
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

/// Waits (bounded) until the hibernating sessions satisfy `check`, and returns them.
async fn until_hibernating(what: &str, check: impl Fn(&[SessionInfo]) -> bool) -> Vec<SessionInfo> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = hibernating_sessions();
        if check(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: hibernating {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websocket_sessions_hibernate_and_wake_with_their_state() {
    let mut config = Config::embedded().unwrap();
    config.http.enabled = true;
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.http.ws_hibernate_after = 200;
    let app = Application::start_with(&config, Vec::new()).await.unwrap();
    let addr = app.http_addr().expect("http bound");

    // a stays idle; b subscribes to a resource, which its actor holds, so b stays awake.
    let mut a = open(addr, json!({})).await;
    let mut b = open(addr, json!({})).await;
    let subscribed = call(
        &mut b,
        1,
        "resources/subscribe",
        json!({"uri": "test://watched-resource"}),
    )
    .await;
    assert_eq!(subscribed["result"], json!({}));
    let asleep = until_hibernating("a hibernates", |s| s.len() == 1).await;
    assert!(asleep[0].hibernating);
    assert_eq!(asleep[0].revision.as_deref(), Some("2025-11-25"));
    let a_id = asleep[0].id.clone();
    let requests_before = asleep[0].requests;
    assert_eq!(running_sessions().await, 1, "only b's actor runs");
    assert_eq!(hibernating_count(), 1, "what the metrics gauge reads");
    // b is not hibernating, even after several periods.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(hibernating_sessions().len(), 1, "b holds a subscription");

    // Change notifications reach the hibernating session (and the awake one).
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
    assert_eq!(
        running_sessions().await,
        1,
        "a notification does not wake a"
    );

    // A message wakes a: answered by a new actor, the session's state carried over.
    let answer = call(&mut a, 2, "tools/call", json!({"name": "echo"})).await;
    assert_eq!(
        answer["error"]["code"], -32602,
        "echo was removed: {answer}"
    );
    let pong = call(&mut a, 3, "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}));
    assert!(hibernating_sessions().iter().all(|s| s.id != a_id));

    // Idle again, it hibernates again, its request count carried through both actors.
    let asleep = until_hibernating("a hibernates again", |s| s.len() == 1).await;
    assert_eq!(asleep[0].id, a_id);
    assert!(
        asleep[0].requests >= requests_before + 2,
        "{} then {}",
        requests_before,
        asleep[0].requests
    );

    // A session waiting on the client (a tool's sampling request unanswered) stays awake;
    // once answered and idle, it hibernates.
    let mut c = open(addr, json!({"sampling": {}})).await;
    let call_sampling = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "test_sampling", "arguments": {"prompt": "hi"}}});
    send(&mut c, call_sampling).await;
    let asked = next_json(&mut c).await;
    assert_eq!(asked["method"], "sampling/createMessage", "{asked}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hibernating_sessions().len(),
        1,
        "c waits on its client: awake"
    );
    let answer = json!({"jsonrpc": "2.0", "id": asked["id"].clone(),
        "result": {"role": "assistant", "model": "m", "content": {"type": "text", "text": "hello"}}});
    send(&mut c, answer).await;
    let result = next_json(&mut c).await;
    assert_eq!(
        result["result"]["content"][0]["text"], "LLM response: hello",
        "{result}"
    );
    until_hibernating("c hibernates once answered", |s| s.len() == 2).await;
    c.close(None).await.unwrap();

    // Closing a hibernating socket leaves nothing behind.
    a.close(None).await.unwrap();
    until_hibernating("a's session is gone", <[SessionInfo]>::is_empty).await;
    assert_eq!(running_sessions().await, 1);
    let pong = call(&mut b, 4, "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}));
    app.stop().await.unwrap();
}
