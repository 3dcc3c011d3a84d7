//! The per-tool rules change while the node runs, and the scope challenge reaches every HTTP path
//! that can carry it. A node with `[auth]` (a static API key holding scope `mcp`) and one rule
//! (`sleep` needs `tools:admin`):
//! - `erlmcp remote auth reload` reads the config file again: the rule gone, the session's stream
//!   gets `notifications/tools/list_changed`, `sleep` is listed and served; SIGHUP does the same (the rule back, `sleep` refused again); a file that does not load
//!   is an error that names it and leaves the rules in force;
//! - the refusal for the missing scope is 403 `insufficient_scope` with the challenge on a
//!   session's `POST /mcp`, on the stateless (2026-07-28) path and on legacy SSE's
//!   `POST /messages`; a batch keeps its JSON-RPC errors (200: the other items ran, a client that
//!   retried the batch after a 403 would run them again).

use crate::support::http::{JSON, Reply, envelope, post, post_stateless, request_to};
use crate::support::node::Node;
use crate::support::remote::{Remote, text};
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const KEY: &str = "alice-key-0000000000001";
const RULE: &str = "[[auth.rules]]\nscopes = [\"tools:admin\"]\ntools = [\"sleep\"]\n";

fn config(rules: &str) -> String {
    format!(
        "[auth]\nenabled = true\nresource = \"http://127.0.0.1/mcp\"\n\
         api_keys = [{{ key = \"{KEY}\", subject = \"alice\", scopes = [\"mcp\"] }}]\n\n{rules}"
    )
}

fn bearer() -> String {
    format!("Bearer {KEY}")
}

fn call_sleep(id: i64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1}}})
}

/// A session of `revision` made with the key: its id.
fn session(addr: SocketAddr, revision: &str) -> String {
    let auth = bearer();
    let extra = [("authorization", auth.as_str())];
    let mut init = crate::support::http::initialize_request();
    init["params"]["protocolVersion"] = json!(revision);
    let made = post(addr, None, &init, &extra);
    assert_eq!(made.status, 200, "{}", made.text());
    let id = made.header("mcp-session-id").unwrap().to_owned();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(addr, Some(&id), &initialized, &extra).status, 202);
    id
}

fn in_session(addr: SocketAddr, session: &str, body: &Value) -> Reply {
    let auth = bearer();
    post(
        addr,
        Some(session),
        body,
        &[("authorization", auth.as_str())],
    )
}

/// The step-up answer: 403, the challenge naming the scopes to ask for, the -32003 error.
fn assert_step_up(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text());
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp tools:admin\""),
        "{what}: {challenge}"
    );
    assert_eq!(reply.json()["error"]["code"], -32003, "{what}");
}

/// The JSON-RPC messages of an answer, plain JSON or events (a batch's array opened up).
fn messages(reply: &Reply) -> Vec<Value> {
    let sse = reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/event-stream"));
    let frames = if sse {
        reply.sse_messages()
    } else {
        vec![reply.json()]
    };
    frames
        .into_iter()
        .flat_map(|f| match f {
            Value::Array(items) => items,
            one => vec![one],
        })
        .collect()
}

fn listed(addr: SocketAddr, session: &str) -> Vec<String> {
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    in_session(addr, session, &list).json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The session's GET stream, its head read (the stream is open when this returns).
fn open_stream(addr: SocketAddr, session: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        &stream,
        "GET /mcp HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: text/event-stream\r\n\
         mcp-session-id: {session}\r\nauthorization: {}\r\n\r\n",
        addr.port(),
        bearer()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    while line.trim_end() != "" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    reader
}

#[test]
fn the_rules_reload_from_the_shell_and_on_sighup() {
    let runtime = tempfile::tempdir().unwrap();
    let name = format!("auth-reload-{}", std::process::id());
    let cookie = "auth-reload-cookie";
    let dir = runtime.path().as_os_str();
    let env = [
        ("XDG_RUNTIME_DIR", dir),
        ("HOME", dir),
        ("ERLMCP_COOKIE", OsStr::new(cookie)),
    ];
    let args = ["--http", "127.0.0.1:0", "--name", &name];
    let mut node = Node::with_env_and_config(&args, &env, &config(RULE));
    node.wait_log("admin channel listening");
    let addr = node.http.unwrap();
    let file = node.config_path().unwrap().to_owned();
    let remote = Remote {
        runtime_dir: runtime.path(),
        node: name.clone(),
        cookie,
    };
    let id = session(addr, "2025-11-25");
    assert!(!listed(addr, &id).contains(&"sleep".to_owned()));
    assert_step_up(&in_session(addr, &id, &call_sleep(1)), "before the reload");

    // The rule gone from the file, then `auth reload`: the session's stream is told its tools
    // changed; sleep is listed and served, same session.
    let mut stream = open_stream(addr, &id);
    std::fs::write(&file, config("")).unwrap();
    let out = remote.eval("auth reload", false);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 rules"), "{}", text(&out));
    let told = (&mut stream)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("notifications/tools/list_changed"));
    assert!(
        told.is_some(),
        "no tools/list_changed on the session's stream"
    );
    assert!(listed(addr, &id).contains(&"sleep".to_owned()));
    let served = in_session(addr, &id, &call_sleep(2));
    assert_eq!(served.status, 200, "{}", served.text());
    assert!(
        messages(&served)
            .iter()
            .any(|m| m["id"] == 2 && m["result"].is_object()),
        "{}",
        served.text()
    );
    let shown = remote.eval("auth rules", false);
    assert!(text(&shown).contains("no rules"), "{}", text(&shown));

    // The rule back, then SIGHUP: refused again.
    node.wait_log("auth rules reloaded"); // the shell's, above
    std::fs::write(&file, config(RULE)).unwrap();
    let pid = node.child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    node.wait_log("auth rules reloaded");
    assert_step_up(&in_session(addr, &id, &call_sleep(3)), "after SIGHUP");

    // A file that does not load: the error names it, the rules in force stay.
    std::fs::write(&file, "[auth\nbroken").unwrap();
    let out = remote.eval("auth reload", false);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&file.display().to_string()) && said.contains("unchanged"),
        "{said}"
    );
    assert_step_up(&in_session(addr, &id, &call_sleep(4)), "after a bad file");
    assert!(node.is_running());
}

#[test]
fn the_scope_challenge_on_every_http_path_that_can_carry_it() {
    let node = Node::http(Some(&config(RULE)));
    let addr = node.http.unwrap();
    let auth = bearer();

    // A session's POST (plain JSON).
    let id = session(addr, "2025-11-25");
    assert_step_up(&in_session(addr, &id, &call_sleep(1)), "session POST");

    // A batch (revision 2025-03-26): JSON-RPC errors in a 200, not a challenge (the echo in it
    // ran).
    let id = session(addr, "2025-03-26");
    let echo = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "ran"}}});
    let batch = in_session(addr, &id, &json!([echo, call_sleep(3)]));
    assert_eq!(batch.status, 200, "{}", batch.text());
    let answers = messages(&batch);
    assert!(
        answers
            .iter()
            .any(|a| a["id"] == 3 && a["error"]["code"] == -32003)
            && answers
                .iter()
                .any(|a| a["id"] == 2 && a["result"].is_object()),
        "{answers:?}"
    );

    // The stateless path (2026-07-28).
    let mut call = call_sleep(4);
    call["params"]["_meta"] = envelope(json!({}));
    assert_step_up(
        &post_stateless(addr, &call, &[("authorization", auth.as_str())]),
        "stateless POST",
    );

    // Legacy HTTP+SSE: the stream opened with the key, then its POST /messages.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /sse HTTP/1.1\r\nhost: 127.0.0.1:{}\r\naccept: text/event-stream\r\nauthorization: {auth}\r\n\r\n",
        addr.port()
    )
    .unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
    let endpoint = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("data: /messages")
                .map(|q| format!("/messages{q}"))
        })
        .expect("the endpoint event");
    let messages = |body: &Value| {
        request_to(
            addr,
            "POST",
            &endpoint,
            &[JSON, ("authorization", auth.as_str())],
            body.to_string().as_bytes(),
            Duration::from_secs(10),
        )
    };
    let init = crate::support::http::initialize_request();
    assert_eq!(messages(&init).status, 202);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(messages(&initialized).status, 202);
    assert_step_up(&messages(&call_sleep(5)), "legacy POST /messages");
    // A call the rules allow is still acknowledged and answered on the stream.
    assert_eq!(messages(&echo).status, 202);
    let answered = lines
        .map_while(Result::ok)
        .filter_map(|l| l.strip_prefix("data: ").map(str::to_owned))
        .filter_map(|d| serde_json::from_str::<Value>(&d).ok())
        .find(|m| m["id"] == 2)
        .expect("the echo's answer on the stream");
    assert_eq!(
        answered["result"]["content"][0]["text"], "ran",
        "{answered}"
    );
    drop(stream);
}
