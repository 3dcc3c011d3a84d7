//! Embeds erlmcp with `hibernate_after = 0` and checks that every session then has its actor
//! from its first message to its last (none hibernates, however idle), and that a session whose
//! actor is killed ends and closes its connection — over TCP and over WebSocket — while other
//! sessions carry on.
//!
//! The application tree registers global names, so one tree per process: `support::tree` runs
//! the in-process trees of the test binary one at a time.

use crate::support::{node, tree, ws};

use erlmcp::app::Application;
use erlmcp::session::{SESSION_SUP, hibernating_count};
use erlmcp_supervisors::SupervisorRef;
use futures::StreamExt as _;
use serde_json::json;
use std::time::Duration;

/// Session actors running under `erlmcp_session_sup`, oldest first.
async fn session_actors() -> Vec<ractor::ActorCell> {
    let sup = SupervisorRef::whereis(SESSION_SUP).unwrap();
    sup.which_children()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|child| child.actor)
        .collect()
}

#[test]
fn with_hibernation_off_sessions_keep_their_actor() {
    tree::run(|home| async move {
        let mut config = home.config();
        config.http.enabled = true;
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.tcp.enabled = true;
        config.tcp.addr = "127.0.0.1:0".parse().unwrap();
        config.hibernate_after = 0;
        let app = Application::start_with(&config, Vec::new()).await.unwrap();
        let tcp = app.tcp_addr().expect("tcp bound");
        let http = app.http_addr().expect("http bound");

        let client = tokio::task::spawn_blocking(move || {
            let stream = std::net::TcpStream::connect(tcp).unwrap();
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let mut client = node::Client::new(stream.try_clone().unwrap(), stream);
            client.initialize("2025-11-25", json!({}));
            client
        })
        .await
        .unwrap();
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws"))
            .await
            .unwrap();
        ws::send(
            &mut socket,
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
               "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
        )
        .await;
        let answer = ws::next_json(&mut socket).await;
        assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(session_actors().await.len(), 2, "one actor per session");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(session_actors().await.len(), 2, "idle, they keep them");
        assert_eq!(hibernating_count(), 0);

        // The WebSocket session's actor (the newer) killed: its socket closes; TCP carries on.
        session_actors().await[1].kill();
        let end = tokio::time::timeout(node::WAIT, async {
            loop {
                match socket.next().await {
                    Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)) | Err(_)) | None => {
                        return;
                    }
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the socket of a killed session closes");
        let client = tokio::task::spawn_blocking(move || {
            let mut client = client;
            assert_eq!(client.call(1, "ping", json!({}))["result"], json!({}));
            client
        })
        .await
        .unwrap();

        // The TCP session's actor killed: its connection closes.
        session_actors().await[0].kill();
        tokio::task::spawn_blocking(move || {
            let mut client = client;
            assert!(client.closed(), "the killed session's connection closes");
        })
        .await
        .unwrap();
        app.stop().await.unwrap();
    });
}
