//! Owns the per-request envelope of the stateless revision 2026-07-28: the reserved `_meta` keys
//! a request carries instead of an `initialize` handshake, the validation ladder (envelope keys,
//! then the HTTP routing headers, then the version), the error codes it adds, and how results are
//! tagged with `resultType`.
//!
//! The ladder follows the Python SDK's reading of the specification, rung by rung, so that a
//! client that disagrees with itself is told so before it is told its version is unsupported.

use crate::protocol::incoming::Params;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::messages::{ClientCapabilities, LogLevel};
use crate::protocol::request_state::Subject;
use crate::protocol::revision::Revision;
use crate::protocol::tool_call::{CallMeta, ToolCallParams};
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// `_meta` key: the revision of this request.
pub(crate) const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: what the client can do, for this request.
pub(crate) const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the least severe `notifications/message` this request wants (opt-in logging).
pub(crate) const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key: who the server is, stamped on `server/discover`.
pub(crate) const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key: the `subscriptions/listen` request a notification belongs to.
pub(crate) const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// HTTP headers disagree with the body, or a required one is missing.
pub(crate) const HEADER_MISMATCH: i32 = -32020;
/// The request needs a client capability it did not declare.
pub(crate) const MISSING_REQUIRED_CLIENT_CAPABILITY: i32 = -32021;
/// The request's revision is not served.
pub(crate) const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// Methods whose `Mcp-Name` header mirrors a params field, and that field.
pub(crate) fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// What one 2026-07-28 request says about itself.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Its revision (always a modern one once validated).
    pub revision: Revision,
    /// What the client can do.
    pub(crate) capabilities: ClientCapabilities,
    /// Logging opt-in: `None` sends no `notifications/message` at all.
    pub(crate) log_level: Option<LogLevel>,
    /// Answers to the input requests of an earlier round (multi-round-trip requests).
    pub(crate) input_responses: HashMap<String, Value>,
    /// `requestState` as the client echoed it, not yet opened.
    pub(crate) request_state: Option<String>,
    /// The request a state is bound to.
    pub(crate) subject: Subject,
}

/// Whether a request's params carry the modern envelope (for raw params, a cheap test before
/// the full parse).
pub(crate) fn carries_envelope(params: &Params<'_>) -> bool {
    match params {
        Params::Raw(raw) => raw.is_some_and(|p| {
            memchr::memmem::find(p.get().as_bytes(), PROTOCOL_VERSION_KEY.as_bytes()).is_some()
        }),
        Params::ToolCall(call) => call
            .meta
            .as_ref()
            .is_some_and(|m| m.protocol_version.is_some()),
    }
}

/// Runs the ladder over one request's params, raw or read in the message's own parse.
pub(crate) fn envelope_of<'a>(
    method: &str,
    params: &Params<'a>,
    headers: Option<RoutingHeaders<'_>>,
) -> Result<(Envelope, Option<ToolCall<'a>>), RpcError> {
    match params {
        Params::Raw(raw) => read_envelope_and_call(method, *raw, headers),
        Params::ToolCall(call) => read_call_envelope(call, headers),
    }
}

/// The parts of a request's params the envelope ladder reads, in one borrowed parse.
#[derive(Deserialize)]
struct EnvelopeParams<'a> {
    #[serde(default, borrow, rename = "_meta")]
    meta: Option<CallMeta<'a>>,
    #[serde(default, rename = "inputResponses")]
    input_responses: Option<HashMap<String, Value>>,
    #[serde(default, rename = "requestState")]
    request_state: Option<String>,
    #[serde(default, borrow, deserialize_with = "jsonrpc::borrowed_str")]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "jsonrpc::borrowed_str")]
    uri: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "taskId",
        deserialize_with = "jsonrpc::borrowed_str"
    )]
    task_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

/// What a `tools/call` asks, read in the envelope's own pass over its params (so the call does
/// not parse them again).
#[derive(Debug)]
pub(crate) struct ToolCall<'a> {
    /// The tool.
    pub(crate) name: Cow<'a, str>,
    /// Its arguments, raw.
    pub(crate) arguments: Option<&'a RawValue>,
    /// `_meta.progressToken`.
    pub(crate) progress_token: Option<&'a RawValue>,
}

/// What a transport says, beside the body, about where a stateless request goes: the routing
/// values and the tool parameters it repeats outside the body (on HTTP, the `MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` headers). Borrowed from the request: checked
/// against its body before its method runs, and not kept.
#[derive(Debug, Default)]
pub(crate) struct StatelessRouting<'a> {
    /// The revision, method and name the request declares outside its body.
    pub(crate) headers: RoutingHeaders<'a>,
    /// The tool parameters it repeats (`Mcp-Param-*`): lower-cased names and values, in order
    /// (duplicates kept).
    pub(crate) params: Vec<(&'a str, &'a str)>,
}

/// The routing values a request declares outside its body (on HTTP its headers; absent on
/// stream transports).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RoutingHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub(crate) protocol_version: Option<&'a str>,
    /// `Mcp-Method`.
    pub(crate) method: Option<&'a str>,
    /// `Mcp-Name`.
    pub(crate) name: Option<&'a str>,
}

/// Runs the ladder over one request: the envelope keys (-32602), the routing headers when the
/// request came over HTTP (-32020), the version (-32022); and for a `tools/call` that names its
/// tool, what it asks.
pub(crate) fn read_envelope_and_call<'a>(
    method: &str,
    params: Option<&'a RawValue>,
    headers: Option<RoutingHeaders<'_>>,
) -> Result<(Envelope, Option<ToolCall<'a>>), RpcError> {
    let text = params.map_or("{}", RawValue::get);
    let parsed: EnvelopeParams<'_> = serde_json::from_str(text)
        .map_err(|e| RpcError::invalid_params(format!("invalid params: {e}")))?;
    run_ladder(method, parsed, headers)
}

/// [`read_envelope_and_call`] for a `tools/call` whose params were read in the message's own
/// parse.
fn read_call_envelope<'a>(
    call: &ToolCallParams<'a>,
    headers: Option<RoutingHeaders<'_>>,
) -> Result<(Envelope, Option<ToolCall<'a>>), RpcError> {
    let invalid = |why: String| RpcError::invalid_params(format!("invalid params: {why}"));
    if let Some(why) = &call.invalid {
        return Err(invalid(why.clone()));
    }
    let name = match call.name {
        Some(_) => Some(call.tool_name().map_err(invalid)?),
        None => None,
    };
    let input_responses = match call.input_responses {
        Some(raw) => Some(
            serde_json::from_str(raw.get())
                .map_err(|e| invalid(format!("`inputResponses`: {e}")))?,
        ),
        None => None,
    };
    let request_state = match call.request_state {
        Some(raw) => serde_json::from_str::<Option<String>>(raw.get())
            .map_err(|e| invalid(format!("`requestState` must be a string: {e}")))?,
        None => None,
    };
    let parsed = EnvelopeParams {
        meta: call.meta.clone(),
        input_responses,
        request_state,
        name,
        uri: None,
        task_id: None,
        arguments: call.arguments,
    };
    run_ladder("tools/call", parsed, headers)
}

/// The ladder over params already read: envelope keys, routing headers, version.
fn run_ladder<'a>(
    method: &str,
    parsed: EnvelopeParams<'a>,
    headers: Option<RoutingHeaders<'_>>,
) -> Result<(Envelope, Option<ToolCall<'a>>), RpcError> {
    let meta = parsed.meta.ok_or_else(|| {
        RpcError::invalid_params(format!(
            "params._meta must be an object carrying `{PROTOCOL_VERSION_KEY}` and `{CLIENT_CAPABILITIES_KEY}`"
        ))
    })?;
    let (Some(version), Some(capabilities)) = (&meta.protocol_version, meta.client_capabilities)
    else {
        let missing: Vec<&str> = [
            (PROTOCOL_VERSION_KEY, meta.protocol_version.is_none()),
            (CLIENT_CAPABILITIES_KEY, meta.client_capabilities.is_none()),
        ]
        .into_iter()
        .filter_map(|(key, absent)| absent.then_some(key))
        .collect();
        return Err(RpcError::invalid_params(format!(
            "params._meta is missing the required envelope key(s): {}",
            missing.join(", ")
        )));
    };
    let version = version.text();
    if let Some(headers) = headers {
        let named = match name_field(method) {
            Some("uri") => parsed.uri.as_deref(),
            Some("taskId") => parsed.task_id.as_deref(),
            Some(_) => parsed.name.as_deref(),
            None => None,
        };
        check_headers(method, named, version, headers)?;
    }
    let version = version.ok_or_else(|| {
        RpcError::invalid_params("the protocol-version envelope value must be a string")
    })?;
    let revision = Revision::parse(version)
        .filter(|r| r.is_modern())
        .ok_or_else(|| unsupported_version(version))?;
    // Most clients declare nothing per request: `{}` needs no parse.
    let capabilities = match capabilities.get() {
        "{}" => ClientCapabilities::default(),
        text => serde_json::from_str(text).map_err(|e| {
            RpcError::invalid_params(format!("`{CLIENT_CAPABILITIES_KEY}` is not an object: {e}"))
        })?,
    };
    let log_level = match meta.log_level {
        Some(v) => Some(serde_json::from_str(v.get()).map_err(|e| {
            RpcError::invalid_params(format!("`{LOG_LEVEL_KEY}` is not a log level: {e}"))
        })?),
        None => None,
    };
    let subject = Subject {
        method: method.to_owned(),
        name: match name_field(method) {
            Some("uri") => parsed.uri.as_deref().map(str::to_owned),
            Some("taskId") => parsed.task_id.as_deref().map(str::to_owned),
            Some(_) => parsed.name.as_deref().map(str::to_owned),
            None => None,
        },
        arguments: parsed.arguments.map(ToOwned::to_owned),
    };
    let call = match (method, parsed.name) {
        ("tools/call", Some(name)) => Some(ToolCall {
            name,
            arguments: parsed.arguments,
            progress_token: meta.progress_token,
        }),
        _ => None,
    };
    let envelope = Envelope {
        revision,
        capabilities,
        log_level,
        input_responses: parsed.input_responses.unwrap_or_default(),
        request_state: parsed.request_state,
        subject,
    };
    Ok((envelope, call))
}

/// Whether `version` is a revision served on the per-request path.
pub(crate) fn is_served(version: &str) -> bool {
    Revision::parse(version).is_some_and(Revision::is_modern)
}

/// -32022, naming the revisions served on the per-request path.
pub(crate) fn unsupported_version(requested: &str) -> RpcError {
    let mut error = RpcError::new(
        UNSUPPORTED_PROTOCOL_VERSION,
        format!("unsupported protocol version `{requested}`"),
    );
    let supported: Vec<&str> = Revision::MODERN.iter().map(|r| r.as_str()).collect();
    error.data = Some(serde_json::json!({ "supported": supported, "requested": requested }));
    error
}

fn mismatch(message: String) -> RpcError {
    RpcError::new(HEADER_MISMATCH, message)
}

fn check_headers(
    method: &str,
    named: Option<&str>,
    version: Option<&str>,
    headers: RoutingHeaders<'_>,
) -> Result<(), RpcError> {
    if headers.protocol_version.is_none() || headers.protocol_version != version {
        return Err(mismatch(
            "MCP-Protocol-Version header does not match the request's `_meta` protocol version"
                .to_owned(),
        ));
    }
    if headers.method != Some(method) {
        return Err(mismatch(format!(
            "Mcp-Method header does not match the request body's method `{method}`"
        )));
    }
    if let (Some(field), Some(value)) = (name_field(method), named)
        && headers.name.and_then(decode_header_value).as_deref() != Some(value)
    {
        return Err(mismatch(format!(
            "Mcp-Name header does not match the request body's `{field}`"
        )));
    }
    Ok(())
}

/// The properties of `schema` annotated `x-mcp-header` (reached through `properties` only), as
/// (path of argument names, header token).
fn annotated(schema: &Value) -> Vec<(Vec<String>, String)> {
    fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        if !path.is_empty()
            && let Some(token) = schema.get("x-mcp-header").and_then(Value::as_str)
        {
            out.push((path.clone(), token.to_owned()));
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, sub) in properties {
                path.push(name.clone());
                walk(sub, path, out);
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

/// Whether a tool's input schema asks for `Mcp-Param-*` headers at all (no allocation: asked on
/// every stateless `tools/call`).
pub(crate) fn has_param_headers(schema: &Value) -> bool {
    fn annotated_below(schema: &Value) -> bool {
        schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|properties| {
                properties.values().any(|sub| {
                    sub.get("x-mcp-header").is_some_and(Value::is_string) || annotated_below(sub)
                })
            })
    }
    annotated_below(schema)
}

/// Checks a `tools/call`'s `Mcp-Param-<token>` headers (`params`: lower-cased names and values,
/// in order) against its arguments, for each property its tool's `schema` annotates with
/// `x-mcp-header`: present together and equal (strings as they are, booleans `true`/`false`,
/// numbers as JSON writes them; a header may be `=?base64?…?=`), or absent together (`null` is
/// absent); never sent twice. -32020 naming the header otherwise.
pub(crate) fn check_param_headers(
    schema: &Value,
    arguments: &Value,
    params: &[(&str, &str)],
) -> Result<(), RpcError> {
    for (path, token) in annotated(schema) {
        let header = format!("Mcp-Param-{token}");
        let key = header.to_ascii_lowercase();
        let mut sent = params
            .iter()
            .filter(|(name, _)| *name == key)
            .map(|(_, v)| v);
        let raw = sent.next();
        if sent.next().is_some() {
            return Err(mismatch(format!("{header} header appears more than once")));
        }
        let argument = path.join(".");
        let value = path
            .iter()
            .try_fold(arguments, |v, name| v.get(name))
            .filter(|v| !v.is_null());
        let rendered = match value {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                if raw.is_some() {
                    return Err(mismatch(format!(
                        "{header} header does not match the request body's `{argument}` argument"
                    )));
                }
                continue;
            }
        };
        match (raw, rendered) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "{header} header is present but the request body's `{argument}` argument is absent"
                )));
            }
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "{header} header is missing but the request body's `{argument}` argument is present"
                )));
            }
            (Some(raw), Some(rendered)) => {
                if decode_header_value(raw).as_deref() != Some(rendered.as_str()) {
                    return Err(mismatch(format!(
                        "{header} header does not match the request body's `{argument}` argument"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A header value as sent: verbatim, or `=?base64?…?=` for values that are not plain ASCII.
/// A malformed wrapped value decodes to `None`, so it never matches a body value by accident.
pub(crate) fn decode_header_value(value: &str) -> Option<Cow<'_, str>> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(value));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// The HTTP status of a JSON-RPC error on the per-request path.
pub(crate) fn http_status_of(code: i32) -> u16 {
    match code {
        jsonrpc::PARSE_ERROR
        | jsonrpc::INVALID_REQUEST
        | jsonrpc::INVALID_PARAMS
        | HEADER_MISMATCH
        | MISSING_REQUIRED_CLIENT_CAPABILITY
        | UNSUPPORTED_PROTOCOL_VERSION => 400,
        jsonrpc::METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

/// Whether results of `method` carry caching directives (`ttlMs`, `cacheScope`) at 2026-07-28.
pub(crate) fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Tags an encoded result of `method` with `"resultType":"complete"` (required at 2026-07-28) —
/// and, for cacheable results, `ttlMs: 0` and `cacheScope: private` (never cached, never
/// shared: what erlmcp serves can change at any moment) — in place of re-encoding it. Errors,
/// and results that already start with a `resultType`, are left as they are.
pub(crate) fn mark_complete(frame: Vec<u8>, id: &str, method: &str) -> Vec<u8> {
    let members: &[u8] = if is_cacheable(method) {
        br#""resultType":"complete","ttlMs":0,"cacheScope":"private""#
    } else {
        br#""resultType":"complete""#
    };
    insert_members(frame, id, members)
}

/// Inserts `members` (JSON object members) first into the result of `frame`.
fn insert_members(mut frame: Vec<u8>, id: &str, members: &[u8]) -> Vec<u8> {
    let prefix_len = br#"{"jsonrpc":"2.0","id":"#.len() + id.len() + br#","result":"#.len();
    if frame.get(prefix_len) != Some(&b'{') || !frame.starts_with(br#"{"jsonrpc":"2.0","id":"#) {
        return frame;
    }
    let at = prefix_len + 1;
    let rest = &frame[at..];
    if rest.starts_with(b"\"resultType\"") {
        return frame;
    }
    let separator: &[u8] = if rest.first() == Some(&b'}') {
        b""
    } else {
        b","
    };
    // In place: the tail moves once, and the frame grows only if it has no room (`splice` with
    // a chained iterator cost ~550 instructions here, byte by byte).
    let (end, grow) = (frame.len(), members.len() + separator.len());
    frame.resize(end + grow, 0);
    frame.copy_within(at..end, at + grow);
    frame[at..at + members.len()].copy_from_slice(members);
    frame[at + members.len()..at + grow].copy_from_slice(separator);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn read_envelope(
        method: &str,
        params: Option<&RawValue>,
        headers: Option<RoutingHeaders<'_>>,
    ) -> Result<Envelope, RpcError> {
        read_envelope_and_call(method, params, headers).map(|(envelope, _)| envelope)
    }

    const GOOD: &str = r#"{"name":"echo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/logLevel":"debug"}}"#;

    #[test]
    fn a_tool_call_is_read_in_the_envelope_pass() {
        let p = params(
            r#"{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#,
        );
        let (_, call) = read_envelope_and_call("tools/call", Some(&p), None).unwrap();
        let call = call.expect("a tools/call naming its tool");
        assert_eq!(call.name, "echo");
        assert_eq!(call.arguments.map(RawValue::get), Some(r#"{"text":"hi"}"#));
        assert_eq!(call.progress_token.map(RawValue::get), Some("7"));
        let (_, other) = read_envelope_and_call("prompts/get", Some(&p), None).unwrap();
        assert!(other.is_none(), "only tools/call");
    }

    #[test]
    fn a_complete_envelope_is_read() {
        let p = params(GOOD);
        let envelope = read_envelope("tools/call", Some(&p), None).unwrap();
        assert_eq!(envelope.revision, Revision::V2026_07_28);
        assert!(envelope.capabilities.sampling.is_some());
        assert_eq!(envelope.log_level, Some(LogLevel::Debug));
    }

    #[test]
    fn each_rung_of_the_ladder_has_its_code() {
        let no_meta = params(r#"{"name":"echo"}"#);
        let e = read_envelope("tools/call", Some(&no_meta), None).unwrap_err();
        assert_eq!(e.code, jsonrpc::INVALID_PARAMS);
        let no_caps =
            params(r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#);
        let e = read_envelope("tools/list", Some(&no_caps), None).unwrap_err();
        assert!(e.message.contains(CLIENT_CAPABILITIES_KEY), "{}", e.message);
        let old = params(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}}"#,
        );
        let e = read_envelope("tools/list", Some(&old), None).unwrap_err();
        assert_eq!(e.code, UNSUPPORTED_PROTOCOL_VERSION);
        assert_eq!(e.data.unwrap()["supported"][0], "2026-07-28");
        for not_text in ["20260728", "null", r#"["2026-07-28"]"#] {
            let odd = params(&format!(
                r#"{{"_meta":{{"io.modelcontextprotocol/protocolVersion":{not_text},"io.modelcontextprotocol/clientCapabilities":{{}}}}}}"#
            ));
            let e = read_envelope("tools/list", Some(&odd), None).unwrap_err();
            assert_eq!(e.code, jsonrpc::INVALID_PARAMS, "{not_text}");
        }
        let escaped = params(
            r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026\u002d07-28","io.modelcontextprotocol/clientCapabilities":{}}}"#,
        );
        let envelope = read_envelope("tools/list", Some(&escaped), None).unwrap();
        assert_eq!(envelope.revision, Revision::V2026_07_28);
    }

    #[test]
    fn routing_headers_must_agree_with_the_body() {
        let p = params(GOOD);
        let right = RoutingHeaders {
            protocol_version: Some("2026-07-28"),
            method: Some("tools/call"),
            name: Some("echo"),
        };
        assert!(read_envelope("tools/call", Some(&p), Some(right)).is_ok());
        for wrong in [
            RoutingHeaders {
                protocol_version: None,
                ..right
            },
            RoutingHeaders {
                method: Some("tools/list"),
                ..right
            },
            RoutingHeaders {
                name: Some("other"),
                ..right
            },
            RoutingHeaders {
                name: None,
                ..right
            },
        ] {
            let e = read_envelope("tools/call", Some(&p), Some(wrong)).unwrap_err();
            assert_eq!(e.code, HEADER_MISMATCH, "{wrong:?}");
        }
        let wrapped = RoutingHeaders {
            name: Some("=?base64?ZWNobw==?="),
            ..right
        };
        assert!(read_envelope("tools/call", Some(&p), Some(wrapped)).is_ok());
    }

    #[test]
    fn param_headers_must_mirror_the_annotated_arguments() {
        let schema = serde_json::json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"fast": {"type": "boolean", "x-mcp-header": "Fast"}}},
            "text": {"type": "string"}}});
        assert!(has_param_headers(&schema));
        let args = serde_json::json!({"region": "eu-west", "opts": {"fast": true}, "text": "x"});
        let headers = |pairs: &[(&'static str, &'static str)]| pairs.to_vec();
        let good = headers(&[("mcp-param-region", "eu-west"), ("mcp-param-fast", "true")]);
        assert!(check_param_headers(&schema, &args, &good).is_ok());
        let wrapped = headers(&[
            ("mcp-param-region", "=?base64?ZXUtd2VzdA==?="),
            ("mcp-param-fast", "true"),
        ]);
        assert!(check_param_headers(&schema, &args, &wrapped).is_ok());
        for bad in [
            headers(&[("mcp-param-region", "us-east"), ("mcp-param-fast", "true")]),
            headers(&[("mcp-param-fast", "true")]),
            headers(&[
                ("mcp-param-region", "eu-west"),
                ("mcp-param-region", "eu-west"),
                ("mcp-param-fast", "true"),
            ]),
        ] {
            let e = check_param_headers(&schema, &args, &bad).unwrap_err();
            assert_eq!(e.code, HEADER_MISMATCH, "{bad:?}");
        }
        let no_region = serde_json::json!({"opts": {"fast": true}});
        let e = check_param_headers(&schema, &no_region, &good).unwrap_err();
        assert!(e.message.contains("absent"), "{}", e.message);
        assert!(!has_param_headers(&serde_json::json!({"type": "object"})));
    }

    #[test]
    fn results_are_tagged_once_and_errors_not_at_all() {
        let tagged = mark_complete(
            br#"{"jsonrpc":"2.0","id":7,"result":{"a":1}}"#.to_vec(),
            "7",
            "tools/call",
        );
        assert_eq!(
            tagged,
            br#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"complete","a":1}}"#
        );
        let empty = mark_complete(
            br#"{"jsonrpc":"2.0","id":"x","result":{}}"#.to_vec(),
            r#""x""#,
            "tools/list",
        );
        assert_eq!(
            empty,
            br#"{"jsonrpc":"2.0","id":"x","result":{"resultType":"complete","ttlMs":0,"cacheScope":"private"}}"#
        );
        let again = mark_complete(tagged.clone(), "7", "tools/call");
        assert_eq!(again, tagged);
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"m"}}"#.to_vec();
        assert_eq!(mark_complete(error.clone(), "7", "tools/call"), error);
    }
}
