//! Example plugin: text and JSON utilities — `word_count`, `json_pretty`, `json_get` (a dotted
//! path into a JSON document) — and `summarize`, which asks the client's model through the host
//! (`sampling/createMessage`), as a native tool would; `whoami`, who the call comes from (the
//! principal the host's `[auth]` gave it: subject, client id, scopes). Built twice: plain (1.0.0) and with the
//! feature `v2` (2.0.0, which adds `case`). Its self-test checks counting and path lookup.

use erlmcp_plugin_api::{Host, Plugin, ToolDecl, export_plugin, text_result};
use serde_json::{Value, json};

#[cfg(not(feature = "v2"))]
const VERSION: &str = "1.0.0";
#[cfg(feature = "v2")]
const VERSION: &str = "2.0.0";

/// The plugin: stateless.
pub struct TextKit;

fn string_arg<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, String> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("argument `{name}` (a string) is required"))
}

fn counts(text: &str) -> (usize, usize, usize) {
    (
        text.split_whitespace().count(),
        text.lines().count(),
        text.chars().count(),
    )
}

/// The value at a dotted path (`a.b.0.c`: object keys and array indexes).
fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(value, |v, part| match v {
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(part),
        })
}

fn tool(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolDecl {
    ToolDecl {
        asks_client: name == "summarize",
        blocking: false,
        name: name.into(),
        description: description.into(),
        input_schema: json!({"type": "object", "properties": properties, "required": required}),
        ..ToolDecl::default()
    }
}

impl Plugin for TextKit {
    fn new(_config: &Value) -> Result<Self, String> {
        Ok(Self)
    }

    fn tools(&self) -> Vec<ToolDecl> {
        let text = json!({"text": {"type": "string"}});
        #[allow(unused_mut)]
        let mut tools = vec![
            tool(
                "word_count",
                "Counts the words, lines and characters of `text`",
                text.clone(),
                &["text"],
            ),
            tool(
                "json_pretty",
                "Pretty-prints the JSON document `json`",
                json!({"json": {"type": "string"}}),
                &["json"],
            ),
            tool(
                "json_get",
                "The value at the dotted `path` (keys and array indexes) of the JSON document `json`",
                json!({"json": {"type": "string"}, "path": {"type": "string"}}),
                &["json", "path"],
            ),
            tool(
                "summarize",
                "A one-sentence summary of `text`, written by the client's model (sampling)",
                text.clone(),
                &["text"],
            ),
            tool(
                "whoami",
                "Who this call comes from: the subject, client id and scopes of its access token",
                json!({}),
                &[],
            ),
        ];
        #[cfg(feature = "v2")]
        tools.push(tool(
            "case",
            "`text` in `to` case: upper, lower or title",
            json!({"text": {"type": "string"}, "to": {"type": "string", "enum": ["upper", "lower", "title"]}}),
            &["text", "to"],
        ));
        tools
    }

    fn call_tool(&self, name: &str, arguments: Value, host: &Host) -> Result<Value, String> {
        match name {
            "word_count" => {
                let (words, lines, chars) = counts(string_arg(&arguments, "text")?);
                Ok(json!({
                    "content": [{"type": "text", "text": format!("{words} words, {lines} lines, {chars} characters")}],
                    "structuredContent": {"words": words, "lines": lines, "characters": chars},
                }))
            }
            "json_pretty" => {
                let doc: Value = serde_json::from_str(string_arg(&arguments, "json")?)
                    .map_err(|e| format!("not JSON: {e}"))?;
                serde_json::to_string_pretty(&doc)
                    .map(text_result)
                    .map_err(|e| e.to_string())
            }
            "json_get" => {
                let doc: Value = serde_json::from_str(string_arg(&arguments, "json")?)
                    .map_err(|e| format!("not JSON: {e}"))?;
                let path = string_arg(&arguments, "path")?;
                at_path(&doc, path)
                    .map(|v| text_result(v.to_string()))
                    .ok_or_else(|| format!("nothing at `{path}`"))
            }
            "summarize" => {
                let text = string_arg(&arguments, "text")?;
                let answer = host.create_message(&json!({
                    "messages": [{"role": "user", "content": {"type": "text",
                        "text": format!("Summarize in one sentence: {text}")}}],
                    "maxTokens": 100,
                }))?;
                let summary = answer["content"]["text"]
                    .as_str()
                    .ok_or("the client's model answered no text")?;
                Ok(text_result(format!("summary: {summary}")))
            }
            "whoami" => Ok(match host.principal() {
                Some(p) => json!({
                    "content": [{"type": "text", "text": format!("{} ({})", p.subject, p.scopes.join(" "))}],
                    "structuredContent": {"subject": p.subject, "clientId": p.client_id,
                        "scopes": p.scopes, "via": p.via},
                }),
                None => text_result("anonymous: this call carries no principal"),
            }),
            #[cfg(feature = "v2")]
            "case" => {
                let text = string_arg(&arguments, "text")?;
                let out = match string_arg(&arguments, "to")? {
                    "upper" => text.to_uppercase(),
                    "lower" => text.to_lowercase(),
                    "title" => text
                        .split(' ')
                        .map(|w| {
                            let mut chars = w.chars();
                            chars.next().map_or_else(String::new, |c| {
                                c.to_uppercase()
                                    .chain(chars.flat_map(char::to_lowercase))
                                    .collect()
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => return Err(format!("unknown case `{other}`: upper, lower or title")),
                };
                Ok(text_result(out))
            }
            other => Err(format!("no tool {other} in textkit {VERSION}")),
        }
    }

    fn self_test(&self, _host: &Host) -> Result<(), String> {
        let doc = json!({"a": [{"b": 7}]});
        if counts("one two\nthree") != (3, 2, 13) || at_path(&doc, "a.0.b") != Some(&json!(7)) {
            return Err("text utilities give wrong answers".into());
        }
        Ok(())
    }
}

export_plugin!(TextKit, name = "textkit", version = VERSION);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_keys_and_indexes_and_miss_cleanly() {
        let doc = json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(at_path(&doc, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(at_path(&doc, "a.b.9"), None);
        assert_eq!(at_path(&doc, "a.z"), None);
        assert_eq!(at_path(&doc, ""), Some(&doc));
    }

    #[test]
    fn counting_counts_words_lines_and_characters() {
        assert_eq!(counts("héllo  world\nbye"), (3, 2, 16));
    }
}
