//! Owns the params of a `tools/call` read in the message's own parse. Kept raw, the params were
//! scanned once to find where they end and parsed again by the call; whenever `method` comes
//! before `params` (as clients write them), they are read here in that one pass instead.
//!
//! Reading never fails the message: params that are not an object, a `_meta` that is not one,
//! or a field given twice are kept as the reason the call answers -32602, to the request's id.
//! Only JSON that does not parse fails it, as it did when the params were kept raw.

use crate::protocol::jsonrpc::MapKey;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The parts of a `tools/call`'s params the server reads, borrowed from the message.
#[derive(Debug, Default)]
pub(crate) struct ToolCallParams<'a> {
    /// `name` (read by [`ToolCallParams::tool_name`]).
    pub(crate) name: Option<TextField<'a>>,
    /// `arguments`, raw (parsed by the tool itself).
    pub(crate) arguments: Option<&'a RawValue>,
    /// `_meta`, when present and an object.
    pub(crate) meta: Option<CallMeta<'a>>,
    /// `inputResponses` (multi-round requests of revision 2026-07-28), raw.
    pub(crate) input_responses: Option<&'a RawValue>,
    /// `requestState` (multi-round requests of revision 2026-07-28), raw.
    pub(crate) request_state: Option<&'a RawValue>,
    /// Why the params cannot be read as a `tools/call`'s, if they cannot.
    pub(crate) invalid: Option<String>,
}

/// The `_meta` keys of a request that the server reads, raw (read leniently here, strictly by
/// the derived `Deserialize` for params kept raw).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct CallMeta<'a> {
    /// `progressToken`.
    #[serde(default, borrow, rename = "progressToken")]
    pub(crate) progress_token: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/protocolVersion` (2026-07-28 envelope).
    #[serde(default, borrow, rename = "io.modelcontextprotocol/protocolVersion")]
    pub(crate) protocol_version: Option<TextField<'a>>,
    /// `io.modelcontextprotocol/clientCapabilities` (2026-07-28 envelope).
    #[serde(default, borrow, rename = "io.modelcontextprotocol/clientCapabilities")]
    pub(crate) client_capabilities: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/logLevel` (2026-07-28 envelope).
    #[serde(default, borrow, rename = "io.modelcontextprotocol/logLevel")]
    pub(crate) log_level: Option<&'a RawValue>,
}

impl<'a> ToolCallParams<'a> {
    /// The tool's name: -32602's message when it is missing, not a string, or the params could
    /// not be read.
    pub(crate) fn tool_name(&self) -> Result<Cow<'a, str>, String> {
        if let Some(invalid) = &self.invalid {
            return Err(invalid.clone());
        }
        match self.name.as_ref().ok_or("missing field `name`")? {
            TextField::Text(name) => Ok(name.clone()),
            TextField::Other(what) => Err(format!("`name` must be a string, not {what}")),
        }
    }

    /// `_meta.progressToken`.
    pub(crate) fn progress_token(&self) -> Option<&'a RawValue> {
        self.meta.as_ref().and_then(|m| m.progress_token)
    }
}

/// A field that must be a string (a `tools/call`'s `name`, the envelope's protocol version):
/// read as one directly (borrowed unless escaped), which costs a fraction of keeping it as a raw
/// value to read later (~200 instructions: serde_json hands a raw value over as a one-entry
/// map); anything else is kept as what it was, for the error that names it.
#[derive(Debug, Clone)]
pub(crate) enum TextField<'a> {
    /// A string.
    Text(Cow<'a, str>),
    /// Not a string: what was there (`5`, `null`, `an array`…).
    Other(String),
}

impl<'de: 'a, 'a> Deserialize<'de> for TextField<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<TextField<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = TextField<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(TextField::Text(Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(TextField::Text(Cow::Owned(name.to_owned())))
            }
            fn visit_string<E: de::Error>(self, name: String) -> Result<Self::Value, E> {
                Ok(TextField::Text(Cow::Owned(name)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(TextField::Other(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TextField::Other(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TextField::Other(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TextField::Other(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(TextField::Other("null".to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                not_an_object(seq)?;
                Ok(TextField::Other("an array".to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TextField::Other("an object".to_owned()))
            }
        }
        deserializer.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

impl TextField<'_> {
    /// The string, if it is one.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Other(_) => None,
        }
    }
}

/// Keys of the params (and of `_meta`) told apart without allocating.
enum Key {
    Name,
    Arguments,
    Meta,
    InputResponses,
    RequestState,
    ProgressToken,
    ProtocolVersion,
    ClientCapabilities,
    LogLevel,
    Other,
}

impl Key {
    fn of(key: &str) -> Self {
        match key {
            "name" => Key::Name,
            "arguments" => Key::Arguments,
            "_meta" => Key::Meta,
            "inputResponses" => Key::InputResponses,
            "requestState" => Key::RequestState,
            "progressToken" => Key::ProgressToken,
            "io.modelcontextprotocol/protocolVersion" => Key::ProtocolVersion,
            "io.modelcontextprotocol/clientCapabilities" => Key::ClientCapabilities,
            "io.modelcontextprotocol/logLevel" => Key::LogLevel,
            _ => Key::Other,
        }
    }
}

/// Takes the value of a field into `slot`, or notes that the field came twice.
fn take<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    field: &str,
    invalid: &mut Option<String>,
) -> Result<(), A::Error> {
    if slot.is_some() {
        map.next_value::<IgnoredAny>()?;
        invalid.get_or_insert_with(|| format!("duplicate field `{field}`"));
    } else {
        *slot = Some(map.next_value()?);
    }
    Ok(())
}

/// Consumes a value that is not an object (it is kept as the reason, not read).
fn not_an_object<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A visitor for an object whose other shapes are a -32602, not a parse error.
macro_rules! tolerate_non_objects {
    ($value:ty, $what:expr, $wrap:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            Ok($wrap($what))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            Ok($wrap($what))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            Ok($wrap($what))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            Ok($wrap($what))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$value, E> {
            Ok($wrap($what))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<$value, A::Error> {
            not_an_object(seq)?;
            Ok($wrap($what))
        }
    };
}

/// `_meta`: absent (`null`), read, or why it cannot be.
struct MetaField<'a>(Result<Option<CallMeta<'a>>, String>);

impl<'de> Deserialize<'de> for MetaField<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetaVisitor;
        impl<'de> Visitor<'de> for MetaVisitor {
            type Value = MetaField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`_meta`")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MetaField(Ok(None)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut progress_token, mut protocol_version) = (None, None);
                let (mut client_capabilities, mut log_level) = (None, None);
                let mut invalid = None;
                while let Some(key) = map.next_key_seed(MapKey(Key::of))? {
                    let why = &mut invalid;
                    match key {
                        Key::ProgressToken => {
                            take(&mut map, &mut progress_token, "progressToken", why)?;
                        }
                        Key::ProtocolVersion => {
                            let field = "io.modelcontextprotocol/protocolVersion";
                            take(&mut map, &mut protocol_version, field, why)?;
                        }
                        Key::ClientCapabilities => {
                            let field = "io.modelcontextprotocol/clientCapabilities";
                            take(&mut map, &mut client_capabilities, field, why)?;
                        }
                        Key::LogLevel => {
                            let field = "io.modelcontextprotocol/logLevel";
                            take(&mut map, &mut log_level, field, why)?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(MetaField(match invalid {
                    Some(why) => Err(format!("`_meta`: {why}")),
                    // `null` reads as absent, as an `Option` field reads it.
                    None => Ok(Some(CallMeta {
                        progress_token: progress_token.flatten(),
                        protocol_version: protocol_version.flatten(),
                        client_capabilities: client_capabilities.flatten(),
                        log_level: log_level.flatten(),
                    })),
                }))
            }
            tolerate_non_objects!(
                MetaField<'de>,
                "`_meta` must be an object".to_owned(),
                |why| MetaField(Err(why))
            );
        }
        deserializer.deserialize_any(MetaVisitor)
    }
}

impl<'de> Deserialize<'de> for ToolCallParams<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = ToolCallParams<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`tools/call` params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = ToolCallParams::default();
                let (mut arguments, mut meta, mut input_responses) = (None, None, None);
                let mut request_state = None;
                while let Some(key) = map.next_key_seed(MapKey(Key::of))? {
                    let invalid = &mut params.invalid;
                    match key {
                        Key::Name => take(&mut map, &mut params.name, "name", invalid)?,
                        Key::Arguments => take(&mut map, &mut arguments, "arguments", invalid)?,
                        Key::Meta => take(&mut map, &mut meta, "_meta", invalid)?,
                        Key::InputResponses => {
                            take(&mut map, &mut input_responses, "inputResponses", invalid)?;
                        }
                        Key::RequestState => {
                            take(&mut map, &mut request_state, "requestState", invalid)?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                // `null` reads as absent, as an `Option` field reads it.
                params.arguments = arguments.flatten();
                params.input_responses = input_responses.flatten();
                params.request_state = request_state.flatten();
                match meta {
                    Some(MetaField(Err(why))) => {
                        params.invalid.get_or_insert(why);
                    }
                    Some(MetaField(Ok(read))) => params.meta = read,
                    None => {}
                }
                Ok(params)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ToolCallParams::default())
            }
            tolerate_non_objects!(
                ToolCallParams<'de>,
                "params must be an object".to_owned(),
                |why| ToolCallParams {
                    invalid: Some(why),
                    ..ToolCallParams::default()
                }
            );
        }
        deserializer.deserialize_any(ParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(params: &str) -> ToolCallParams<'_> {
        serde_json::from_str(params).unwrap()
    }

    #[test]
    fn the_fields_are_read_borrowed_and_the_rest_skipped() {
        let p = read(
            r#"{"name":"echo","extra":[1,{"a":2}],"arguments":{"text":"hi"},
                "_meta":{"progressToken":7,"other":{},"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                         "io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"info"},
                "inputResponses":{"r1":{}}}"#,
        );
        assert!(matches!(p.tool_name(), Ok(Cow::Borrowed("echo"))));
        assert_eq!(p.arguments.map(RawValue::get), Some(r#"{"text":"hi"}"#));
        assert_eq!(p.progress_token().map(RawValue::get), Some("7"));
        let meta = p.meta.as_ref().unwrap();
        assert!(matches!(
            meta.protocol_version,
            Some(TextField::Text(Cow::Borrowed("2026-07-28")))
        ));
        assert_eq!(meta.client_capabilities.map(RawValue::get), Some("{}"));
        assert_eq!(meta.log_level.map(RawValue::get), Some(r#""info""#));
        assert_eq!(p.input_responses.map(RawValue::get), Some(r#"{"r1":{}}"#));
        assert!(p.invalid.is_none());
        let escaped = read(r#"{"name":"ec\u0068o","arguments":null,"_meta":null}"#);
        assert!(matches!(escaped.tool_name(), Ok(Cow::Owned(n)) if n == "echo"));
        assert!(escaped.arguments.is_none() && escaped.meta.is_none());
        // A version that is not a string is kept as what it was; `null` is absent.
        let odd = read(r#"{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":7}}"#);
        let version = odd.meta.and_then(|m| m.protocol_version);
        assert!(
            matches!(&version, Some(TextField::Other(what)) if what == "7"),
            "{version:?}"
        );
        assert!(version.is_some_and(|v| v.text().is_none()));
        let null = read(r#"{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":null}}"#);
        assert!(null.meta.is_some_and(|m| m.protocol_version.is_none()));
    }

    #[test]
    fn text_fields_are_borrowed_unless_escaped() {
        let text = |json: &'static str| serde_json::from_str::<TextField<'_>>(json).unwrap();
        assert!(matches!(
            text(r#""2026-07-28""#),
            TextField::Text(Cow::Borrowed("2026-07-28"))
        ));
        assert!(matches!(text(r#""""#), TextField::Text(Cow::Borrowed(""))));
        assert!(matches!(text(r#""a\"b\u00e9""#), TextField::Text(Cow::Owned(s)) if s == "a\"bé"));
        for not_a_string in ["5", "null", "{}", r#"["x"]"#, "true"] {
            assert!(text(not_a_string).text().is_none(), "{not_a_string}");
        }
    }

    #[test]
    fn params_of_the_wrong_shape_are_a_reason_not_a_parse_error() {
        for (params, why) in [
            ("[1,2]", "params must be an object"),
            ("5", "params must be an object"),
            (r#""x""#, "params must be an object"),
            ("{}", "missing field `name`"),
            (r#"{"name":5}"#, "`name` must be a string, not 5"),
            (r#"{"name":null}"#, "`name` must be a string, not null"),
            (r#"{"name":-1.5}"#, "`name` must be a string, not -1.5"),
            (r#"{"name":true}"#, "`name` must be a string, not true"),
            (
                r#"{"name":["echo"]}"#,
                "`name` must be a string, not an array",
            ),
            (
                r#"{"name":{"a":[1]}}"#,
                "`name` must be a string, not an object",
            ),
            (r#"{"name":"a","name":"b"}"#, "duplicate field `name`"),
            (r#"{"name":"a","_meta":[{}]}"#, "`_meta` must be an object"),
            (
                r#"{"name":"a","_meta":{"progressToken":1,"progressToken":2}}"#,
                "`_meta`: duplicate field `progressToken`",
            ),
        ] {
            assert_eq!(read(params).tool_name().unwrap_err(), why, "{params}");
        }
        assert!(
            serde_json::from_str::<ToolCallParams<'_>>(r#"{"name":"a","arguments":{"#).is_err()
        );
    }
}
