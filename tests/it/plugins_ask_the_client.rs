//! A plugin tool asks the client, as a native tool does: the textkit example plugin's
//! `summarize` sends `sampling/createMessage` through the host's callback, the client's answer
//! comes back into the plugin, and the tool answers with it. Without the client's capability the
//! tool fails with a result that names it. The v2 build adds a tool on swap.

use crate::support::{node, plugin_build, tree};

use node::{Client, tool_error_text};
use serde_json::json;
use std::net::TcpStream;

fn connect(addr: std::net::SocketAddr) -> Client<TcpStream, TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(node::WAIT)).unwrap();
    Client::new(stream.try_clone().unwrap(), stream)
}

#[test]
fn a_plugin_tool_samples_the_clients_model_through_the_host() {
    tree::run(|home| async move {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            plugin_build::build("erlmcp-plugin-textkit", &[], &root.join("v1.so"));
            plugin_build::build("erlmcp-plugin-textkit", &["v2"], &root.join("v2.so"));
        })
        .await
        .unwrap();
        let app = plugin_build::start_node(&home, &dir.path().join("staging")).await;
        let addr = app.tcp_addr().unwrap();
        let loaded = app
            .plugins()
            .load(&dir.path().join("v1.so"), json!({}))
            .await
            .unwrap();
        assert_eq!(
            (loaded.name.as_str(), loaded.version.as_str()),
            ("textkit", "1.0.0")
        );

        tokio::task::spawn_blocking(move || {
        // A client that can sample: the plugin's request reaches it, its answer reaches the plugin.
        let mut client = connect(addr);
        client.initialize("2025-11-25", json!({"sampling": {}}));
        client.request(
            json!(1),
            "tools/call",
            json!({"name": "summarize", "arguments": {"text": "erlmcp supervises everything"}}),
        );
        let ask = client.next(node::WAIT).expect("a request from the server");
        assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
        let prompt = ask["params"]["messages"][0]["content"]["text"].as_str().unwrap();
        assert!(prompt.contains("erlmcp supervises everything"), "{prompt}");
        client.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
            "role": "assistant", "model": "test-model",
            "content": {"type": "text", "text": "It supervises."}}}));
        let answer = client.response(&json!(1));
        assert_eq!(answer["result"]["content"][0]["text"], "summary: It supervises.", "{answer}");

        // The client refuses: the tool fails with the client's reason.
        client.request(json!(2), "tools/call", json!({"name": "summarize", "arguments": {"text": "x"}}));
        let ask = client.next(node::WAIT).unwrap();
        client.send(&json!({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -1, "message": "user declined"}}));
        let refused = client.response(&json!(2));
        assert!(tool_error_text(&refused).contains("user declined"), "{refused}");

        // Other tools answer with structured content.
        let counted = client.call(3, "tools/call", json!({"name": "word_count", "arguments": {"text": "a b c"}}));
        assert_eq!(counted["result"]["structuredContent"]["words"], 3);

        // A client without the capability: the tool fails and says why; nothing is sent to it.
        let mut plain = connect(addr);
        plain.initialize("2025-11-25", json!({}));
        let failed = plain.call(1, "tools/call", json!({"name": "summarize", "arguments": {"text": "x"}}));
        assert!(tool_error_text(&failed).contains("sampling"), "{failed}");
    })
    .await
    .unwrap();

        // v2 adds `case`; the swap registers it.
        app.plugins()
            .load(&dir.path().join("v2.so"), json!({}))
            .await
            .unwrap();
        tokio::task::spawn_blocking(move || {
            let mut client = connect(addr);
            client.initialize("2025-11-25", json!({}));
            let r = client.call(
                1,
                "tools/call",
                json!({"name": "case", "arguments": {"text": "hello world", "to": "title"}}),
            );
            assert_eq!(r["result"]["content"][0]["text"], "Hello World", "{r}");
        })
        .await
        .unwrap();
        app.stop().await.unwrap();
    });
}
