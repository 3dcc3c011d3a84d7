//! Owns JSON-RPC 2.0 on the wire, for any method: the error codes, request ids (echoed byte for
//! byte), the depth and UTF-8 checks, batches, and encoding of responses, notifications and
//! requests. Reading one message into its envelope is [`crate::protocol::incoming`]'s.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Invalid JSON (also: invalid UTF-8, nesting deeper than serde_json's 128 levels). Id is null.
pub(crate) const PARSE_ERROR: i32 = -32700;
/// Not a valid JSON-RPC request (wrong `jsonrpc`, bad id, batch where none is allowed…).
pub(crate) const INVALID_REQUEST: i32 = -32600;
/// No such method.
pub(crate) const METHOD_NOT_FOUND: i32 = -32601;
/// Params missing, of the wrong shape, or naming something unknown (e.g. an unknown tool).
pub(crate) const INVALID_PARAMS: i32 = -32602;
/// The server failed while handling a valid request.
pub(crate) const INTERNAL_ERROR: i32 = -32603;
/// MCP: the resource does not exist.
pub(crate) const RESOURCE_NOT_FOUND: i32 = -32002;
/// erlmcp's code for a request the authorization rules refuse (`[auth] rules`): the tool,
/// resource or prompt and the missing scopes are in its `data`.
pub(crate) const FORBIDDEN: i32 = -32003;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code.
    pub code: i32,
    /// A sentence saying what is wrong.
    pub message: String,
    /// Optional details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error with a code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32602` with a message.
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// `-32600` with a message.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(INVALID_REQUEST, message)
    }

    /// `-32603` with a message.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(INTERNAL_ERROR, message)
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// A map key read through `classify` without allocating (borrowed or unescaped, the key is
/// only looked at): `map.next_key_seed(MapKey(classify))`.
pub(crate) struct MapKey<F>(pub(crate) F);

impl<'de, K, F: FnOnce(&str) -> K> serde::de::DeserializeSeed<'de> for MapKey<F> {
    type Value = K;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<K, D::Error> {
        struct KeyVisitor<F>(F);
        impl<K, F: FnOnce(&str) -> K> serde::de::Visitor<'_> for KeyVisitor<F> {
            type Value = K;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<K, E> {
                Ok((self.0)(key))
            }
        }
        deserializer.deserialize_identifier(KeyVisitor(self.0))
    }
}

/// A JSON string borrowed from the input unless it has escapes (serde borrows a `Cow<str>`
/// only when it is exactly a field's or a newtype's type).
#[derive(Deserialize)]
pub(crate) struct Borrowed<'a>(#[serde(borrow)] pub(crate) Cow<'a, str>);

/// An optional string borrowed from the input unless it has escapes. serde borrows a
/// `Cow<'a, str>` field only when the field is exactly that type: behind an `Option` it copies
/// every string into a new allocation (two per message, for `jsonrpc` and `method`).
pub(crate) fn borrowed_str<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// The deepest nesting of arrays and objects accepted in a message.
pub(crate) const MAX_DEPTH: usize = 128;

/// Whether `bytes` nests arrays/objects deeper than `max` (strings are skipped). Messages with
/// fewer than `max` brackets in all — nearly all — are cleared by one count.
pub(crate) fn nested_deeper_than(bytes: &[u8], max: usize) -> bool {
    if opening_brackets(bytes) <= max {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// How many `[` and `{` bytes `bytes` holds. Counted in runs of 255 into a byte-wide counter,
/// which the compiler turns into 16-byte vector compares: a `memchr2` iterator cost ~900
/// instructions on a ~230-byte `tools/call` (a call per bracket), a plain filtered count ~1,000.
fn opening_brackets(bytes: &[u8]) -> usize {
    // `[` is 0x5B and `{` 0x7B: they, and only they, read 0x7B with bit 0x20 set.
    bytes
        .chunks(255)
        .map(|run| usize::from(run.iter().fold(0u8, |n, &b| n + u8::from(b | 0x20 == b'{'))))
        .sum()
}

/// The error for a message nested deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep() -> RpcError {
    RpcError::new(
        PARSE_ERROR,
        format!("parse error: JSON nested too deep (more than {MAX_DEPTH} levels)"),
    )
}

/// A frame as text: -32700 when it is not UTF-8. Checked once for the whole frame, so that the
/// parse that follows reads from a `&str`, which serde_json does not check again string by
/// string (reading from bytes it checks every string and every raw value it keeps: ~1,200
/// instructions of a ~230-byte `tools/call`).
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, RpcError> {
    std::str::from_utf8(bytes).map_err(|e| {
        RpcError::new(
            PARSE_ERROR,
            format!("parse error: invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

/// The -32700 error for a serde_json failure, with a useful message.
pub(crate) fn parse_error(e: &serde_json::Error) -> RpcError {
    let text = e.to_string();
    let message = if text.contains("recursion limit") {
        format!("parse error: JSON nested too deep ({text})")
    } else if e.is_data() {
        // The text is JSON but not an object (e.g. a bare number): not a request.
        return RpcError::invalid_request(format!("not a JSON-RPC message: {text}"));
    } else {
        format!("parse error: {text}")
    };
    RpcError::new(PARSE_ERROR, message)
}

/// The items of a batch, as raw messages: at most the `max` first are kept; `total` counts them
/// all (the rest are only skipped over, so a batch far over its cap costs no more memory than
/// one at it).
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    /// The first `max` items.
    pub items: Vec<&'a RawValue>,
    /// How many items the batch has.
    pub total: usize,
}

/// Reads the JSON array `text` as a batch, keeping at most `max` items.
pub(crate) fn parse_batch(text: &str, max: usize) -> Result<Batch<'_>, serde_json::Error> {
    use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};

    struct Capped(usize);

    impl<'de> Visitor<'de> for Capped {
        type Value = Batch<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of JSON-RPC messages")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.0));
            while items.len() < self.0 {
                match seq.next_element::<&RawValue>()? {
                    Some(item) => items.push(item),
                    None => {
                        let total = items.len();
                        return Ok(Batch { items, total });
                    }
                }
            }
            let mut total = items.len();
            while seq.next_element::<IgnoredAny>()?.is_some() {
                total += 1;
            }
            Ok(Batch { items, total })
        }
    }

    impl<'de> DeserializeSeed<'de> for Capped {
        type Value = Batch<'de>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Batch<'de>, D::Error> {
            d.deserialize_seq(self)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let batch = Capped(max).deserialize(&mut de)?;
    de.end()?;
    Ok(batch)
}

/// A request id as a map key (`1` and `"1"` differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl RequestId {
    /// Reads a raw id (or a `requestId` field) as a key; `None` if it is neither form.
    pub fn from_raw(raw: &RawValue) -> Option<Self> {
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str::<String>(text).ok().map(Self::String)
        } else {
            text.parse::<i64>().ok().map(Self::Number)
        }
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(i64),
            String(String),
        }
        Ok(match Either::deserialize(d)? {
            Either::Number(n) => Self::Number(n),
            Either::String(s) => Self::String(s),
        })
    }
}

impl Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Number(n) => s.serialize_i64(*n),
            Self::String(text) => s.serialize_str(text),
        }
    }
}

/// Encodes `{"jsonrpc":"2.0","id":<id>,"result":<result>}`; `id` is raw JSON, echoed as is.
pub(crate) fn encode_result<T: Serialize + ?Sized>(id: &str, result: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":");
    if serde_json::to_writer(&mut out, result).is_err() {
        return encode_error(
            Some(id),
            &RpcError::internal("the result could not be encoded as JSON"),
        );
    }
    out.push(b'}');
    out
}

/// Whether `frame`, an answer encoded here to the request `id` (raw JSON), is an error.
pub(crate) fn is_error_answer(frame: &[u8], id: &str) -> bool {
    const HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    frame
        .get(HEAD.len() + id.len()..)
        .is_some_and(|rest| rest.starts_with(br#","error""#))
}

/// Encodes a result that is already JSON text.
pub(crate) fn encode_raw_result(id: &str, result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + id.len() + result.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result);
    out.push(b'}');
    out
}

/// Encodes an error response; `id` is raw JSON, or `None` for `null`.
pub(crate) fn encode_error(id: Option<&str>, error: &RpcError) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.unwrap_or("null").as_bytes());
    out.extend_from_slice(b",\"error\":");
    // An RpcError always encodes: plain fields and a serde_json::Value.
    let _ = serde_json::to_writer(&mut out, error);
    out.push(b'}');
    out
}

/// Encodes a notification.
pub(crate) fn encode_notification<T: Serialize + ?Sized>(method: &str, params: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Notification<'a, P: ?Sized> {
        jsonrpc: &'static str,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_vec(&Notification {
        jsonrpc: "2.0",
        method,
        params,
    })
    .unwrap_or_default()
}

/// Encodes a request from this server to the client.
pub(crate) fn encode_request<T: Serialize + ?Sized>(
    id: &RequestId,
    method: &str,
    params: &T,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Request<'a, P: ?Sized> {
        jsonrpc: &'static str,
        id: &'a RequestId,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_vec(&Request {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_keeps_at_most_its_cap_and_counts_the_rest() {
        let batch = parse_batch(r#"[{"a":1}, 2, [3, 4], "x"]"#, 2).unwrap();
        assert_eq!(batch.total, 4);
        let kept: Vec<&str> = batch.items.iter().map(|i| i.get()).collect();
        assert_eq!(kept, [r#"{"a":1}"#, "2"]);
        let small = parse_batch("[1]", 5).unwrap();
        assert_eq!((small.items.len(), small.total), (1, 1));
        assert_eq!(parse_batch("[]", 5).unwrap().total, 0);
        assert!(
            parse_batch("[1, 2", 1).is_err(),
            "an unfinished tail is still an error"
        );
        assert!(
            parse_batch("[1] x", 1).is_err(),
            "trailing text is an error"
        );
        assert!(parse_batch("{}", 1).is_err());
    }

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(nested_deeper_than(deep.as_bytes(), 128));
        let at_limit = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(!nested_deeper_than(at_limit.as_bytes(), 128));
        let in_string = format!("{{\"a\":\"{}\\\"\"}}", "[".repeat(300));
        assert!(!nested_deeper_than(in_string.as_bytes(), 128));
    }

    #[test]
    fn opening_brackets_are_counted_across_runs() {
        // Every byte value, 3 times over (runs of 255 do not line up with it), against the
        // obvious count: only `[` and `{` count, not `;` `]` `}` or their neighbours.
        let bytes: Vec<u8> = (0..3 * 256).map(|i| (i % 256) as u8).collect();
        assert_eq!(opening_brackets(&bytes), 6);
        let many = "{[a]}".repeat(300);
        let naive = many.bytes().filter(|b| matches!(b, b'[' | b'{')).count();
        assert_eq!(opening_brackets(many.as_bytes()), naive);
        assert_eq!(opening_brackets(b""), 0);
        // A run of 255 brackets does not overflow its byte-wide counter.
        assert_eq!(opening_brackets("[".repeat(1000).as_bytes()), 1000);
    }

    #[test]
    fn request_ids_compare_by_value_and_kind() {
        fn key(t: &str) -> Option<RequestId> {
            RequestId::from_raw(serde_json::from_str::<&RawValue>(t).unwrap())
        }
        assert_eq!(key("5"), Some(RequestId::Number(5)));
        assert_eq!(key("\"5\""), Some(RequestId::String("5".into())));
        assert_ne!(key("5"), key("\"5\""));
    }
}
