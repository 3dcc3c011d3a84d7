//! Owns how one incoming message is read: the borrowed [`Envelope`] every message is first
//! parsed into, checked and classified as a request, a notification or a response
//! ([`Incoming`]), or refused with the id to answer to ([`Rejection`]).
//!
//! The envelope is MCP's, not JSON-RPC's in general: a `tools/call`'s params are read in the
//! message's own parse ([`Params::ToolCall`]), so the generic [`super::jsonrpc`] layer below it knows no
//! method.

use crate::protocol::jsonrpc::{
    Borrowed, MAX_DEPTH, MapKey, RpcError, nested_deeper_than, parse_error, too_deep, utf8,
};
use crate::protocol::tool_call::ToolCallParams;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Every JSON-RPC message, parsed no further than needed to route it.
#[derive(Debug, Default)]
pub(crate) struct Envelope<'a> {
    /// Must be `"2.0"`.
    pub(crate) jsonrpc: Option<Cow<'a, str>>,
    /// The id as raw JSON; `Some("null")` when present but null.
    pub(crate) id: Option<&'a RawValue>,
    /// The method of a request or notification.
    pub(crate) method: Option<Cow<'a, str>>,
    /// Params: raw until the method is known, or a `tools/call`'s, read in this parse when
    /// `method` came before them.
    pub(crate) params: Params<'a>,
    /// A response's result.
    pub(crate) result: Option<&'a RawValue>,
    /// A response's error.
    pub(crate) error: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, IgnoredAny, MapAccess, Visitor};
        enum Field {
            Jsonrpc,
            Id,
            Method,
            Params,
            Result,
            Error,
            Other,
        }
        fn field_of(key: &str) -> Field {
            match key {
                "jsonrpc" => Field::Jsonrpc,
                "id" => Field::Id,
                "method" => Field::Method,
                "params" => Field::Params,
                "result" => Field::Result,
                "error" => Field::Error,
                _ => Field::Other,
            }
        }
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
                let mut env = Envelope::default();
                let mut seen = [false; 6];
                while let Some(field) = map.next_key_seed(MapKey(field_of))? {
                    let (at, name) = match field {
                        Field::Jsonrpc => (0, "jsonrpc"),
                        Field::Id => (1, "id"),
                        Field::Method => (2, "method"),
                        Field::Params => (3, "params"),
                        Field::Result => (4, "result"),
                        Field::Error => (5, "error"),
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if std::mem::replace(&mut seen[at], true) {
                        return Err(de::Error::duplicate_field(name));
                    }
                    match field {
                        Field::Jsonrpc => {
                            env.jsonrpc = map.next_value::<Option<Borrowed<'de>>>()?.map(|b| b.0);
                        }
                        // Present but null reads as `Some("null")`, to be refused as an id.
                        Field::Id => env.id = Some(map.next_value()?),
                        Field::Method => {
                            env.method = map.next_value::<Option<Borrowed<'de>>>()?.map(|b| b.0);
                        }
                        Field::Params if env.method.as_deref() == Some("tools/call") => {
                            env.params = Params::ToolCall(map.next_value()?);
                        }
                        Field::Params => env.params = Params::Raw(map.next_value()?),
                        Field::Result => env.result = map.next_value()?,
                        Field::Error => env.error = map.next_value()?,
                        Field::Other => {}
                    }
                }
                Ok(env)
            }
        }
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A request's params: raw until its method reads them, or a `tools/call`'s, read in the
/// message's own parse (kept raw, they were scanned to find their end and parsed again).
#[derive(Debug)]
pub(crate) enum Params<'a> {
    /// Unparsed (`None` when absent).
    Raw(Option<&'a RawValue>),
    /// A `tools/call`'s, already read.
    ToolCall(ToolCallParams<'a>),
}

impl Default for Params<'_> {
    fn default() -> Self {
        Self::Raw(None)
    }
}

impl<'a> Params<'a> {
    /// The params as raw JSON; `None` when absent or already read as a `tools/call`'s.
    pub(crate) fn raw(&self) -> Option<&'a RawValue> {
        match self {
            Self::Raw(raw) => *raw,
            Self::ToolCall(_) => None,
        }
    }
}

/// What a message is, once its envelope is checked.
#[derive(Debug)]
pub(crate) enum Incoming<'a> {
    /// A request: answer it.
    Request {
        /// The id, raw and valid (a string or an integer).
        id: &'a RawValue,
        /// The method.
        method: Cow<'a, str>,
        /// The params.
        params: Params<'a>,
    },
    /// A notification: never answered.
    Notification {
        /// The method.
        method: Cow<'a, str>,
        /// The params.
        params: Option<&'a RawValue>,
    },
    /// A response to a request this server sent.
    Response {
        /// The id it answers.
        id: &'a RawValue,
        /// The result, or the error.
        outcome: Result<&'a RawValue, &'a RawValue>,
    },
}

/// Why a message could not be routed: the error to answer with, and the id to answer to (raw
/// JSON, or none for `null`).
#[derive(Debug)]
pub(crate) struct Rejection<'a> {
    /// The id to echo, if one could be read.
    pub(crate) id: Option<&'a RawValue>,
    /// The error.
    pub(crate) error: RpcError,
}

/// Parses one message (not a batch).
pub(crate) fn parse(bytes: &[u8]) -> Result<Incoming<'_>, Rejection<'_>> {
    if nested_deeper_than(bytes, MAX_DEPTH) {
        return Err(Rejection {
            id: None,
            error: too_deep(),
        });
    }
    let text = utf8(bytes).map_err(|error| Rejection { id: None, error })?;
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| Rejection {
        id: None,
        error: parse_error(&e),
    })?;
    classify(envelope)
}

/// Checks an envelope and says what kind of message it is.
pub(crate) fn classify(env: Envelope<'_>) -> Result<Incoming<'_>, Rejection<'_>> {
    let id = match env.id {
        Some(raw) if valid_id(raw) => Some(raw),
        Some(raw) => {
            return Err(Rejection {
                id: None,
                error: RpcError::invalid_request(format!(
                    "invalid id {}: an id must be a string or an integer",
                    raw.get()
                )),
            });
        }
        None => None,
    };
    if env.jsonrpc.as_deref() != Some("2.0") {
        return Err(Rejection {
            id,
            error: RpcError::invalid_request("`jsonrpc` must be \"2.0\""),
        });
    }
    match (env.method, id, env.result, env.error) {
        (Some(method), Some(id), None, None) => Ok(Incoming::Request {
            id,
            method,
            params: env.params,
        }),
        // A `tools/call` notification's params were read as a call's, and are dropped with it.
        (Some(method), None, None, None) => Ok(Incoming::Notification {
            method,
            params: env.params.raw(),
        }),
        (None, Some(id), Some(result), None) => Ok(Incoming::Response {
            id,
            outcome: Ok(result),
        }),
        (None, Some(id), None, Some(error)) => Ok(Incoming::Response {
            id,
            outcome: Err(error),
        }),
        (_, id, _, _) => Err(Rejection {
            id,
            error: RpcError::invalid_request(
                "a message must be a request (method + id), a notification (method) or a response (id + result or error)",
            ),
        }),
    }
}

/// A valid id is a JSON string or an integer.
fn valid_id(raw: &RawValue) -> bool {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => true,
        Some(b'-' | b'0'..=b'9') => text.parse::<i64>().is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::*;

    fn rejected(text: &str) -> RpcError {
        match parse(text.as_bytes()) {
            Err(r) => r.error,
            Ok(m) => panic!("accepted {text}: {m:?}"),
        }
    }

    #[test]
    fn the_method_is_borrowed_from_the_frame_unless_escaped() {
        let Ok(Incoming::Request { method, .. }) =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#)
        else {
            panic!("not a request");
        };
        assert!(matches!(method, Cow::Borrowed("tools/call")), "{method:?}");
        let Ok(Incoming::Notification { method, .. }) =
            parse(br#"{"jsonrpc":"2\u002e0","method":"notifications\/initialized"}"#)
        else {
            panic!("not a notification");
        };
        assert!(
            matches!(&method, Cow::Owned(m) if m == "notifications/initialized"),
            "{method:?}"
        );
        for absent in [
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":null}"#,
        ] {
            let envelope: Envelope<'_> = serde_json::from_str(absent).unwrap();
            assert!(envelope.method.is_none(), "{absent}");
        }
    }

    #[test]
    fn ids_are_echoed_byte_for_byte() {
        for id in [
            "7",
            "-3",
            "\"abc\"",
            "\"\\u00e9t\\u00e9\"",
            "12345678901234",
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let Ok(Incoming::Request { id: raw, .. }) = parse(text.as_bytes()) else {
                panic!("not a request");
            };
            let out = String::from_utf8(encode_result(raw.get(), &serde_json::json!({}))).unwrap();
            assert_eq!(
                out,
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)
            );
        }
    }

    #[test]
    fn bad_input_gets_the_right_error_code() {
        assert_eq!(rejected("{not json").code, PARSE_ERROR);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(rejected(&deep).code, PARSE_ERROR);
        assert!(rejected(&deep).message.contains("too deep"));
        assert_eq!(
            rejected(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        for twice in [
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{},"params":{}}"#,
        ] {
            let error = rejected(twice);
            assert_eq!(error.code, INVALID_REQUEST, "{twice}");
            assert!(
                error.message.contains("duplicate field"),
                "{}",
                error.message
            );
        }
        assert_eq!(rejected("[1]").code, INVALID_REQUEST);
        assert_eq!(rejected("5").code, INVALID_REQUEST);
        assert_eq!(
            rejected(r#"{"id":1,"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","method":7}"#).code,
            INVALID_REQUEST
        );
        assert_eq!(rejected("42").code, INVALID_REQUEST);
        let invalid_utf8 = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffing\"}";
        assert_eq!(parse(invalid_utf8).unwrap_err().error.code, PARSE_ERROR);
    }

    #[test]
    fn the_error_keeps_the_id_when_it_could_be_read() {
        let r = parse(br#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).unwrap_err();
        assert_eq!(r.id.map(RawValue::get), Some("\"x\""));
    }

    #[test]
    fn messages_are_classified_by_their_fields() {
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#),
            Ok(Incoming::Response { outcome: Ok(_), .. })
        ));
        assert!(matches!(
            parse(br#"{"jsonrpc":"2.0","id":"s-1","error":{"code":1,"message":"x"}}"#),
            Ok(Incoming::Response {
                outcome: Err(_),
                ..
            })
        ));
    }
}
