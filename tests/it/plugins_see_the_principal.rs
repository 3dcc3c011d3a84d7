//! A plugin sees who calls it: the textkit example plugin's `whoami` reads the principal of its
//! call through the host's `principal` callback (appended to the callback table; a plugin checks
//! the table's size first). Over HTTP with `[auth]` on, a static API key's subject and scopes
//! reach the plugin; over TCP, which carries no principal, the plugin is told there is none.

use crate::support::http::{initialize_request, post};
use crate::support::node::{self, Client};
use crate::support::{plugin_build, tree};
use serde_json::json;
use std::net::TcpStream;

const KEY: &str = "plugin-principal-key-0001";

#[test]
fn a_plugin_tool_reads_the_principal_of_its_call() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let library = dir.path().join("textkit.so");
        let built = library.clone();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-textkit", &[], &built);
        })
        .await
        .unwrap();
        let mut config = home.tcp_config();
        config.http.enabled = true;
        config.http.addr = "127.0.0.1:0".parse().unwrap();
        config.plugins.staging = dir.path().join("staging").display().to_string();
        config.auth.enabled = true;
        config.auth.resource = "http://127.0.0.1/mcp".into();
        config.auth.api_keys = vec![erlmcp::config::ApiKeyConfig {
            key: KEY.into(),
            subject: "ops-bot".into(),
            scopes: vec!["mcp".into(), "tools:admin".into()],
        }];
        let app = erlmcp::app::Application::start(&config).await.unwrap();
        app.plugins().load(&library, json!({})).await.unwrap();
        let (http, tcp) = (app.http_addr().unwrap(), app.tcp_addr().unwrap());

        tokio::task::spawn_blocking(move || {
            // HTTP with the key: the plugin gets its subject, scopes and how it came.
            let bearer = format!("Bearer {KEY}");
            let auth = [("authorization", bearer.as_str())];
            let made = post(http, None, &initialize_request(), &auth);
            assert_eq!(made.status, 200, "{}", made.text());
            let session = made.header("mcp-session-id").unwrap().to_owned();
            let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            assert_eq!(post(http, Some(&session), &initialized, &auth).status, 202);
            let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "whoami", "arguments": {}}});
            let reply = post(http, Some(&session), &call, &auth);
            assert_eq!(reply.status, 200, "{}", reply.text());
            let seen = &reply.json()["result"]["structuredContent"];
            assert_eq!(seen["subject"], "ops-bot", "{seen}");
            assert_eq!(seen["scopes"], json!(["mcp", "tools:admin"]), "{seen}");
            assert_eq!(seen["via"], "api_key", "{seen}");
            assert_eq!(seen["clientId"], json!(null), "{seen}");

            // TCP carries no principal: the plugin is told so.
            let stream = TcpStream::connect(tcp).unwrap();
            stream.set_read_timeout(Some(node::WAIT)).unwrap();
            let mut client = Client::new(stream.try_clone().unwrap(), stream);
            client.initialize("2025-11-25", json!({}));
            let anonymous =
                client.call(1, "tools/call", json!({"name": "whoami", "arguments": {}}));
            let text = anonymous["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default();
            assert!(text.starts_with("anonymous"), "{anonymous}");
        })
        .await
        .unwrap();
        app.stop().await.unwrap();
    });
}
