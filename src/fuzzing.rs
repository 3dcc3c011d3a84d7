//! Owns the entry points of the fuzz targets (`fuzz/`, cargo-fuzz) and of the stable test that
//! replays their corpus (`tests/it/fuzz_corpus_replays.rs`): one thin wrapper per parser a
//! client reaches, each feeding it arbitrary bytes and panicking only when an invariant the node
//! relies on breaks — never on input the parser refuses, as refusing is its job.
//!
//! Not an API: hidden from the docs, and free to change with the parsers.

use crate::admin::{self, cookie, limits::LineReader, limits::MAX_AUTH_LINE};
use crate::plugin_host::answer::{check_call_result, serde_reference};
use crate::protocol::incoming::{self, Incoming, Params};
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::methods::ClientMethod;
use crate::transport::http::{LaneRead, RequestHeaders, fuzz_answer, lowercase_name, read_head};

/// A target: arbitrary bytes in, a panic only when an invariant breaks.
pub type Target = fn(&[u8]);

/// The targets, by the name of their folder under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("jsonrpc_message", jsonrpc_message),
    ("http_lane_head", http_lane_head),
    ("http_lane_vs_httparse", http_lane_vs_httparse),
    ("admin_before_auth", admin_before_auth),
    ("plugin_answer", plugin_answer),
    ("config_toml", config_toml),
    ("forward_lane_answer", forward_lane_answer),
];

/// One JSON-RPC message or batch as a transport hands it to the dispatcher: the envelope, the
/// method, a `tools/call`'s params, a batch's items. Invariants: what is accepted is JSON
/// (serde_json reads it too); a known method's name reads back as it came; every refusal
/// encodes as a JSON-RPC error that is itself JSON.
pub fn jsonrpc_message(data: &[u8]) {
    if data.first() == Some(&b'[') {
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(batch) = jsonrpc::parse_batch(text, 8)
        {
            assert!(batch.items.len() <= 8 && batch.items.len() <= batch.total);
            for item in batch.items {
                message(item.get().as_bytes());
            }
        }
        return;
    }
    message(data);
}

fn message(data: &[u8]) {
    match incoming::parse(data) {
        Ok(found) => {
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
                "accepted what is not JSON"
            );
            match found {
                Incoming::Request { id, method, params } => {
                    assert_ne!(id.get(), "null", "a request with a null id");
                    let parsed = ClientMethod::parse(&method);
                    assert_eq!(parsed.as_str(), &*method);
                    if let Params::ToolCall(call) = &params {
                        let _ = call.tool_name();
                        let _ = call.progress_token();
                    }
                }
                Incoming::Notification { .. } => {}
                Incoming::Response { id, .. } => {
                    let _ = jsonrpc::RequestId::from_raw(id);
                }
            }
        }
        Err(rejection) => {
            let id = rejection.id.map(|id| id.get());
            json_error(id, &rejection.error);
        }
    }
}

fn json_error(id: Option<&str>, error: &RpcError) {
    let frame = jsonrpc::encode_error(id, error);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&frame).is_ok(),
        "an error answer that is not JSON: {}",
        String::from_utf8_lossy(&frame)
    );
}

/// The HTTP fast lane's head parser, on bytes as they come off a socket. Invariants: a head
/// the lane serves lies within the bytes, its names are lower case, its body length is within
/// the limit; the word-at-a-time lower-casing agrees with the standard one.
pub fn http_lane_head(data: &[u8]) {
    let mut ours = data.to_vec();
    lowercase_name(&mut ours);
    assert_eq!(ours, data.to_ascii_lowercase(), "lower-casing differs");
    const LIMIT: usize = 1 << 20;
    if let LaneRead::Plain {
        len,
        body_len,
        headers,
        ..
    } = read_head(data, LIMIT)
    {
        assert!(len <= data.len() && body_len <= LIMIT);
        for (name, _) in &headers {
            assert_eq!(*name, name.to_ascii_lowercase());
        }
        if let Ok(text) = std::str::from_utf8(&data[..len]) {
            let _ = text;
            let pairs: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect();
            let _ = RequestHeaders::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        }
    }
}

/// Differential: a request the lane serves itself must be the same request to httparse as
/// hyper runs it (100 header slots, its default configuration): the same head length, `POST
/// /mcp` HTTP/1.1, exactly one `Content-Length` that reads as the same number, no
/// `Transfer-Encoding`, `Expect` or `Upgrade`. Whatever the lane is unsure of, it must hand over.
pub fn http_lane_vs_httparse(data: &[u8]) {
    const LIMIT: usize = 1 << 20;
    let LaneRead::Plain {
        len,
        body_len,
        close,
        ..
    } = read_head(data, LIMIT)
    else {
        return;
    };
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut request = httparse::Request::new(&mut slots);
    let parsed = request.parse(data);
    assert!(
        matches!(parsed, Ok(httparse::Status::Complete(n)) if n == len),
        "the lane read a {len}-byte head, httparse {parsed:?}"
    );
    assert_eq!(request.method, Some("POST"));
    assert_eq!(request.path, Some("/mcp"));
    assert_eq!(request.version, Some(1));
    let named = |name: &str| {
        request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect::<Vec<_>>()
    };
    let lengths = named("content-length");
    assert_eq!(lengths.len(), 1, "Content-Length: {lengths:?}");
    let length = std::str::from_utf8(lengths[0])
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(length, Some(body_len as u64));
    for framing in ["transfer-encoding", "expect", "upgrade"] {
        assert!(named(framing).is_empty(), "the lane kept a {framing}");
    }
    let connection = named("connection");
    assert!(
        connection
            .iter()
            .all(|v| v.eq_ignore_ascii_case(b"close") || v.eq_ignore_ascii_case(b"keep-alive"))
    );
    assert_eq!(
        close,
        connection.iter().any(|v| v.eq_ignore_ascii_case(b"close"))
    );
}

/// The admin protocol before the peer has proved the cookie: the line reader with its pre-auth
/// limit, then the proof check. Invariants: no line longer than the limit comes out; a proof
/// verifies only if it is the answer; hex is read only in its canonical forms.
pub fn admin_before_auth(data: &[u8]) {
    const COOKIE: &str = "fuzz-cookie";
    const CHALLENGE: &str = "00112233445566778899aabbccddeeff";
    let expected = cookie::answer(COOKIE, CHALLENGE);
    let mut lines = LineReader::new(data, MAX_AUTH_LINE);
    let first = futures::executor::block_on(lines.next_line());
    if let Ok(Some(line)) = first {
        assert!(line.len() <= MAX_AUTH_LINE);
        if admin::proof_verifies(COOKIE, CHALLENGE, &line) {
            let proof: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let given = proof["response"].as_str().unwrap_or("").trim();
            assert!(given.eq_ignore_ascii_case(&expected), "{given:?} verified");
        }
        if let Some(bytes) = cookie::decode_hex(line.trim()) {
            let canonical: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert!(
                canonical.eq_ignore_ascii_case(line.trim()),
                "{line:?} read as hex {bytes:?}"
            );
        }
        // After authentication a line is a command or a cancel: its parse must not panic.
        let _ = serde_json::from_str::<crate::admin::protocol::PeerMessage>(&line);
    }
}

/// The check of a plugin's answer to a tool call. Differential: it accepts exactly what
/// serde_json reads into a `CallToolResult` shape (a repeated key aside, which serde's derived
/// types refuse and the check allows; an array, which serde's derived structs also read as
/// their fields in order — `[[]]` — and a result never is; and a lone UTF-16 surrogate in an
/// escape, which serde_json lets pass in a string it skips and the check refuses), with the
/// same `isError`;
/// `has_line_breaks` says whether the text has a line break.
pub fn plugin_answer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expected = serde_reference(text);
    if expected
        .as_ref()
        .is_err_and(|e| e.starts_with("duplicate field"))
    {
        return;
    }
    if text.trim_start().starts_with('[') {
        // serde reads a struct from an array too; the check refuses one, as MCP does.
        assert!(
            check_call_result(text).is_err(),
            "{text:?}: an array accepted"
        );
        return;
    }
    let found = check_call_result(text);
    if found
        .as_ref()
        .is_err_and(|e| e.starts_with("lone surrogate"))
        && expected.is_ok()
    {
        // Stricter on purpose: serde_json lets a lone surrogate pass in a string it skips (a
        // client reading that string would not); one in a string it reads it refuses too.
        return;
    }
    assert_eq!(
        found.as_ref().map(|c| c.is_error).ok(),
        expected.as_ref().ok().copied(),
        "{text:?}: ours {found:?}, serde_json {expected:?}"
    );
    if let Ok(checked) = found {
        assert_eq!(
            checked.has_line_breaks,
            text.bytes().any(|b| b == b'\n' || b == b'\r')
        );
    }
}

/// The configuration parser on a user's file laid over the embedded default. Invariants: it
/// answers with a config or an error naming the file, and a config it accepts prints as TOML
/// that reads back as an equal config.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let default = crate::config::DEFAULT_CONFIG;
    match crate::config::Config::from_layers(&[
        ("(embedded default)", default),
        ("fuzz.toml", text),
    ]) {
        Ok(config) => {
            let printed = config.to_toml();
            let again = crate::config::Config::from_layers(&[("printed", &printed)]);
            assert!(
                again.is_ok(),
                "printed config refused: {again:?}\n{printed}"
            );
            assert_eq!(again.map(|c| c.to_toml()).ok(), Some(printed));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// The cap on an answer's body in [`forward_lane_answer`] (small, so that the fuzzer reaches it).
const FUZZ_ANSWER_CAP: usize = 4096;

/// The forwarding lane's reader of a member's answer (its own HTTP/1.1 client: head with
/// httparse, body by `Content-Length`, chunked, or to the close), on arbitrary bytes then the
/// connection's close. Invariants: a body read is within the cap, one framed by
/// `Content-Length` is exactly that long, and the bytes it came from hold it; the status is a
/// real one; a head that keeps the connection names its body's end.
pub fn forward_lane_answer(data: &[u8]) {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime for the fuzz target")
    });
    let Ok((head, body)) = runtime.block_on(fuzz_answer(data, FUZZ_ANSWER_CAP)) else {
        return;
    };
    assert!(body.len() <= FUZZ_ANSWER_CAP, "a body past the cap");
    assert!(body.len() < data.len(), "a body longer than what came");
    assert!((100..=999).contains(&head.status.as_u16()));
    match head.framing {
        crate::transport::http::LaneFraming::Length(len) => assert_eq!(body.len(), len),
        crate::transport::http::LaneFraming::Close => assert!(!head.keep_alive),
        crate::transport::http::LaneFraming::Chunked => {}
    }
}
