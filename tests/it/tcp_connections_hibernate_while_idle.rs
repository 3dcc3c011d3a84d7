//! Embeds erlmcp and checks TCP connection hibernation (`connection_hibernate_after`): a
//! connection that has read nothing, queued nothing and had nothing in flight that long lets
//! its actor go (none under `erlmcp_tcp_connections`, counted as hibernating, its slot still
//! held); a change notification sent while it sleeps reaches its client, and a request sent to
//! it is answered; its idle timeout still closes it; and killing the transport supervisor
//! closes it rather than leaving its socket to a task nobody owns.

use crate::support::{node, tree};

use erlmcp::app::Application;
use erlmcp::registry::Change;
use erlmcp::transport::hibernating_connections;
use erlmcp_supervisors::SupervisorRef;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a wait for the node may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);
/// `connection_hibernate_after` in these tests, in milliseconds.
const HIBERNATE_AFTER: u64 = 200;

type Client = node::Client<std::net::TcpStream, std::net::TcpStream>;

/// A client connected to `addr` and initialized (blocking: run off the runtime's threads), and
/// a handle on its socket to close it with.
fn connect(addr: SocketAddr) -> (Client, std::net::TcpStream) {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let closer = stream.try_clone().unwrap();
    let mut client = node::Client::new(stream.try_clone().unwrap(), stream);
    client.initialize("2025-11-25", json!({}));
    (client, closer)
}

/// Runs `f` with the client on the blocking pool and hands the client back.
async fn with<T: Send + 'static>(
    client: Client,
    f: impl FnOnce(&mut Client) -> T + Send + 'static,
) -> (Client, T) {
    tokio::task::spawn_blocking(move || {
        let mut client = client;
        let out = f(&mut client);
        (client, out)
    })
    .await
    .unwrap()
}

/// Connection actors running under `erlmcp_tcp_connections`.
async fn running_connections() -> usize {
    let Some(sup) = SupervisorRef::whereis("erlmcp_tcp_connections") else {
        return 0;
    };
    sup.which_children()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|child| child.actor.is_some())
        .count()
}

/// Waits (bounded) until `hibernating` connections hibernate and `running` have an actor.
async fn until(what: &str, hibernating: usize, running: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = (hibernating_connections(), running_connections().await);
        if now == (hibernating, running) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: (hibernating, running) = {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn an_idle_tcp_connection_hibernates_and_wakes_for_its_client_and_its_notifications() {
    tree::run(|home| async move {
        let mut config = home.tcp_config();
        config.connection_hibernate_after = HIBERNATE_AFTER;
        let app = Application::start_with(&config, Vec::new()).await.unwrap();
        let addr = app.tcp_addr().expect("tcp bound");
        let (client, closer) = tokio::task::spawn_blocking(move || connect(addr))
            .await
            .unwrap();
        until("the idle connection hibernates", 1, 0).await;
        let stats = app.connection_stats();
        assert_eq!(stats.active.load(Ordering::Relaxed), 1, "its slot is held");

        // A notification queued while it sleeps wakes it and reaches the client.
        app.registry()
            .apply(vec![Change::RemoveTool("echo".into())])
            .await
            .unwrap();
        let (client, note) = with(client, |c| c.next(WAIT)).await;
        let note = note.expect("the connection is open");
        assert_eq!(note["method"], "notifications/tools/list_changed", "{note}");
        // Asleep again, then a request wakes it and is answered.
        until("it hibernates again", 1, 0).await;
        let (client, pong) = with(client, |c| c.call(7, "ping", json!({}))).await;
        assert_eq!(pong["result"], json!({}), "{pong}");
        let (client, listed) = with(client, |c| c.call(8, "tools/list", json!({}))).await;
        let tools = listed["result"]["tools"].as_array().expect("tools").clone();
        assert!(
            tools.iter().all(|tool| tool["name"] != "echo"),
            "the same session, which saw the change: {listed}"
        );
        until("it hibernates once more", 1, 0).await;

        // Closed by its client while asleep: the slot and the count go.
        closer.shutdown(std::net::Shutdown::Both).unwrap();
        drop(client);
        until("the closed connection is gone", 0, 0).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while stats.active.load(Ordering::Relaxed) != 0 {
            assert!(tokio::time::Instant::now() < deadline, "the slot is freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        app.stop().await.unwrap();
    });
}

#[test]
fn a_hibernated_connection_closes_at_its_idle_timeout() {
    tree::run(|home| async move {
        let mut config = home.tcp_config();
        config.connection_hibernate_after = HIBERNATE_AFTER;
        config.idle_timeout = 1500;
        let app = Application::start_with(&config, Vec::new()).await.unwrap();
        let addr = app.tcp_addr().expect("tcp bound");
        let (idle, _closer) = tokio::task::spawn_blocking(move || connect(addr))
            .await
            .unwrap();
        until("the idle connection hibernates", 1, 0).await;
        let (_, closed) = with(idle, |c| c.closed()).await;
        assert!(closed, "closed at idle_timeout while hibernating");
        until("the idle connection is gone", 0, 0).await;
        app.stop().await.unwrap();
    });
}

#[test]
fn a_hibernated_connection_closes_when_its_transport_supervisor_is_killed() {
    tree::run(|home| async move {
        let mut config = home.tcp_config();
        config.connection_hibernate_after = HIBERNATE_AFTER;
        // No idle timeout to close it otherwise.
        config.idle_timeout = 0;
        let app = Application::start_with(&config, Vec::new()).await.unwrap();
        let addr = app.tcp_addr().expect("tcp bound");
        let (asleep, _closer) = tokio::task::spawn_blocking(move || connect(addr))
            .await
            .unwrap();
        until("the connection hibernates", 1, 0).await;
        SupervisorRef::whereis("erlmcp_transport_sup")
            .expect("the transport supervisor")
            .cell()
            .kill();
        let (_, closed) = with(asleep, |c| c.closed()).await;
        assert!(closed, "its socket closed with the transport");
        until("no connection hibernates", 0, 0).await;
        // The root restarted the transport (it did not give up on a name still taken by the
        // killed supervisor's children) and stops cleanly.
        app.stop().await.unwrap();
    });
}
