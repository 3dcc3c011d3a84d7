//! Owns the check of a plugin's answer to a tool call before it is written to a client as it
//! came: valid JSON (in text already found to be UTF-8), shaped as a `CallToolResult` (an object whose `content` is an array
//! of objects that each have a string `type`; `isError`, when present, a boolean), read in one
//! pass without building anything. serde_json took 200 ns for the same check of a 50-byte answer
//! (a typed parse; 85 ns only to skip over it), more than the whole budget of a plugin call.
//!
//! [`check_call_result`] accepts exactly what `serde_json` would parse into that shape, except
//! that a key repeated in one object is not an error here (it is to serde's derived types), and
//! that an array is refused (serde's derived structs read `[[]]` as their fields in order); a
//! differential test and the `plugin_answer` fuzz target hold the two to that.

/// Nesting deeper than this is refused (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// What the check learned of a well-formed answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckedAnswer {
    /// The result's `isError`.
    pub(crate) is_error: bool,
    /// The text has line breaks between its tokens: valid JSON, but it cannot be a line of a
    /// newline-delimited stream as it is.
    pub(crate) has_line_breaks: bool,
}

/// Checks `answer` (text: its UTF-8 is the caller's to check); the error says what is wrong and
/// where.
pub(crate) fn check_call_result(answer: &str) -> Result<CheckedAnswer, String> {
    let mut reader = Reader {
        text: answer.as_bytes(),
        at: 0,
        depth: 0,
        has_line_breaks: false,
    };
    let checked = reader.result();
    checked.map_err(|Fail { what, at }| format!("{what} at byte {at}"))
}

/// What serde_json makes of `answer` read into a `CallToolResult` shape (`content` blocks with a
/// `type`, and `isError`): the reference [`check_call_result`] is compared with by its tests and
/// the `plugin_answer` fuzz target.
pub(crate) fn serde_reference(answer: &str) -> Result<bool, String> {
    #[derive(serde::Deserialize)]
    struct Block {
        #[serde(rename = "type")]
        _kind: String,
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "content")]
        _content: Vec<Block>,
        #[serde(default, rename = "isError")]
        is_error: bool,
    }
    serde_json::from_str::<Shape>(answer)
        .map(|s| s.is_error)
        .map_err(|e| e.to_string())
}

/// What is wrong, and where: cheap to return, formatted only at the end.
struct Fail {
    what: &'static str,
    at: usize,
}

/// Which object is being read, for the members whose shape matters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The result itself: `content` and `isError` are checked.
    Result,
    /// An element of `content`: it must have a string `type`.
    Block,
    /// Anything else: only well-formed.
    Any,
}

/// What an object had, of the members that matter.
#[derive(Default)]
struct ObjectFacts {
    has_content: bool,
    has_type: bool,
    is_error: bool,
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    depth: usize,
    has_line_breaks: bool,
}

impl<'a> Reader<'a> {
    fn result(&mut self) -> Result<CheckedAnswer, Fail> {
        let top = self.object(Level::Result)?;
        self.whitespace();
        if self.at != self.text.len() {
            return Err(self.error("trailing characters"));
        }
        if !top.has_content {
            return Err(self.error("missing field `content`"));
        }
        Ok(CheckedAnswer {
            is_error: top.is_error,
            has_line_breaks: self.has_line_breaks,
        })
    }

    fn error(&self, what: &'static str) -> Fail {
        Fail { what, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        if self.peek().is_some_and(|b| b > b' ') {
            return;
        }
        while let Some(byte) = self.peek() {
            match byte {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.has_line_breaks = true,
                _ => return,
            }
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Fail> {
        self.whitespace();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        Ok(())
    }

    /// The elements of an array or the members of an object, its opener just read: `each`
    /// reads one, the separators and the closing `close` are read here.
    fn sequence(
        &mut self,
        close: u8,
        mut each: impl FnMut(&mut Self) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        self.enter()?;
        self.whitespace();
        if self.peek() != Some(close) {
            loop {
                self.whitespace();
                each(self)?;
                self.whitespace();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(byte) if byte == close => break,
                    _ if close == b']' => return Err(self.error("expected `,` or `]`")),
                    _ => return Err(self.error("expected `,` or `}`")),
                }
            }
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    fn object(&mut self, level: Level) -> Result<ObjectFacts, Fail> {
        self.expect(b'{', "expected an object")?;
        let mut facts = ObjectFacts::default();
        self.sequence(b'}', |this| {
            if this.peek() != Some(b'"') {
                return Err(this.error("expected a key"));
            }
            let key = this.string()?;
            this.expect(b':', "expected `:`")?;
            this.whitespace();
            match (level, key_is(key)) {
                (Level::Result, Key::Content) => {
                    this.content()?;
                    facts.has_content = true;
                }
                (Level::Result, Key::IsError) => facts.is_error = this.boolean()?,
                (Level::Block, Key::Type) => {
                    if this.peek() != Some(b'"') {
                        return Err(this.error("`type` is not a string"));
                    }
                    this.string()?;
                    facts.has_type = true;
                }
                _ => this.value()?,
            }
            Ok(())
        })?;
        Ok(facts)
    }

    /// `content`: an array of blocks, each with a `type`.
    fn content(&mut self) -> Result<(), Fail> {
        self.expect(b'[', "`content` is not an array")?;
        self.sequence(b']', |this| {
            if this.peek() != Some(b'{') {
                return Err(this.error("a content block is not an object"));
            }
            if !this.object(Level::Block)?.has_type {
                return Err(this.error("a content block has no `type`"));
            }
            Ok(())
        })
    }

    fn boolean(&mut self) -> Result<bool, Fail> {
        if self.literal(b"true") {
            Ok(true)
        } else if self.literal(b"false") {
            Ok(false)
        } else {
            Err(self.error("`isError` is not a boolean"))
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.text[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    /// Any value (leading whitespace already skipped).
    fn value(&mut self) -> Result<(), Fail> {
        match self.peek() {
            Some(b'{') => self.object(Level::Any).map(drop),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ if self.literal(b"true") || self.literal(b"false") || self.literal(b"null") => Ok(()),
            _ => Err(self.error("expected a value")),
        }
    }

    fn array(&mut self) -> Result<(), Fail> {
        self.at += 1;
        self.sequence(b']', Self::value)
    }

    /// A string (at its opening quote); its raw text between the quotes.
    fn string(&mut self) -> Result<&'a [u8], Fail> {
        self.at += 1;
        let start = self.at;
        loop {
            // Plain characters in one sweep: most strings have no escape.
            let plain = self.text[self.at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            self.at = plain.map_or(self.text.len(), |n| self.at + n);
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(&self.text[start..self.at - 1]);
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1
                        }
                        Some(b'u') => {
                            let unit = self.hex_unit(self.at + 1)?;
                            self.at += 5;
                            // UTF-16 in escapes: a high surrogate must be followed by an
                            // escaped low one, and a low one never stands alone (serde_json
                            // refuses both; so would the client reading the answer).
                            match unit {
                                0xD800..=0xDBFF => {
                                    let low = match self.text.get(self.at..self.at + 2) {
                                        Some(b"\\u") => self.hex_unit(self.at + 2)?,
                                        _ => {
                                            return Err(
                                                self.error("lone surrogate in a \\u escape")
                                            );
                                        }
                                    };
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return Err(self.error("lone surrogate in a \\u escape"));
                                    }
                                    self.at += 6;
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(self.error("lone surrogate in a \\u escape"));
                                }
                                _ => {}
                            }
                        }
                        _ => return Err(self.error("bad escape")),
                    }
                }
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => self.at += 1,
            }
        }
    }

    /// The UTF-16 unit of the four hex digits at `at` (after a `\\u`).
    fn hex_unit(&self, at: usize) -> Result<u16, Fail> {
        self.text
            .get(at..at + 4)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            .ok_or_else(|| self.error("bad \\u escape"))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), Fail> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("bad number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        Ok(())
    }
}

enum Key {
    Content,
    IsError,
    Type,
    Other,
}

/// Which key `raw` (a key's text between its quotes) names; one written with escapes is decoded
/// first (rare: nothing writes keys that way, but it is valid JSON).
fn key_is(raw: &[u8]) -> Key {
    let decoded;
    let key = if raw.contains(&b'\\') {
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(raw);
        quoted.push(b'"');
        decoded = serde_json::from_slice::<String>(&quoted).unwrap_or_default();
        decoded.as_bytes()
    } else {
        raw
    };
    match key {
        b"content" => Key::Content,
        b"isError" => Key::IsError,
        b"type" => Key::Type,
        _ => Key::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the host does: UTF-8 first, then the shape.
    fn check(answer: &[u8]) -> Result<CheckedAnswer, String> {
        let text = std::str::from_utf8(answer).map_err(|e| format!("not UTF-8: {e}"))?;
        check_call_result(text)
    }

    /// The reference, in text that is UTF-8 (serde_json lets invalid UTF-8 pass in strings it
    /// skips; a client reading text would not).
    fn reference(answer: &[u8]) -> Result<bool, String> {
        let text = std::str::from_utf8(answer).map_err(|e| e.to_string())?;
        serde_reference(text)
    }

    const SEEDS: &[&str] = &[
        r#"{"content":[{"type":"text","text":"1.0.0 12"}]}"#,
        r#"{"content":[{"type":"text","text":"no"}],"isError":true}"#,
        r#"{"isError":false,"content":[]}"#,
        r#" { "content" : [ { "text" : "a\"b\\c\u00e9\n" , "type" : "text" } ] , "structuredContent" : { "n" : -1.5e+3 , "m" : [ true , false , null , 0 , 0.25 , 1E2 ] } } "#,
        r#"{"content":[{"type":"image","data":"aGk=","mimeType":"image/png","annotations":{"audience":["user"],"priority":0.5}}],"_meta":{}}"#,
        r#"{"content":[{"type":"text","text":"日本語 ✓"}],"structuredContent":{"nested":[[[{"a":[{}]}]]]}}"#,
        r#"{"con\u0074ent":[{"\u0074ype":"text"}],"is\u0045rror":true}"#,
    ];

    #[test]
    fn accepts_results_and_reads_is_error() {
        for seed in SEEDS {
            let checked = check(seed.as_bytes());
            assert_eq!(
                checked.as_ref().map(|c| c.is_error).map_err(drop),
                reference(seed.as_bytes()).map_err(drop),
                "{seed}: {checked:?}"
            );
        }
        assert!(check(SEEDS[1].as_bytes()).unwrap().is_error);
        assert!(!check(SEEDS[0].as_bytes()).unwrap().has_line_breaks);
        let pretty = "{\n  \"content\": []\n}";
        assert!(check(pretty.as_bytes()).unwrap().has_line_breaks);
    }

    #[test]
    fn refuses_what_is_not_a_result_or_not_json() {
        for bad in [
            &br#"{"contents":[]}"#[..],
            br#"{"content":[{"text":"no type"}]}"#,
            br#"{"content":[{"type":1}]}"#,
            br#"{"content":"not a list"}"#,
            br#"{"content":[1]}"#,
            br#"{"content":[],"isError":"yes"}"#,
            br#"{"content":[],"isError":null}"#,
            br#"[{"content":[]}]"#,
            br#"{"content":[]} x"#,
            br#"{"content":[],}"#,
            br#"{"content":[{"type":"text","text":"a	tab"}]}"#,
            br#"{"content":[{"type":"text","text":"\x"}]}"#,
            br#"{"content":[{"type":"text","n":01}]}"#,
            br#"{"content":[{"type":"text","n":1.}]}"#,
            br#"{"content":[{"type":"text","n":tru}]}"#,
            b"{\"content\":[{\"type\":\"\xff\"}]}",
            br#"not json"#,
            b"",
        ] {
            let error = check(bad).unwrap_err();
            assert!(reference(bad).is_err(), "{}", String::from_utf8_lossy(bad));
            assert!(!error.is_empty());
        }
        let deep = format!(
            r#"{{"content":[],"x":{}{}}}"#,
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(check(deep.as_bytes()).is_err());
    }

    /// A small deterministic generator (xorshift), so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn a_lone_surrogate_in_an_escape_is_refused_anywhere() {
        // Found by cargo-fuzz (fuzz/regressions/plugin_answer/): a lone high surrogate in
        // `type` was accepted here and refused by serde_json. serde_json refuses one in a string
        // it reads (`type`) and lets one pass in a string it skips (`text` here); a client reads
        // `text` too, so the check refuses it everywhere — stricter on purpose.
        for (text, in_a_field_serde_reads) in [
            (r#"{"content":[{"type":"ext\udadd","text":"0."}]}"#, true),
            (r#"{"content":[{"type":"\udc00","text":"x"}]}"#, true),
            (r#"{"content":[{"type":"\ud800\u0041"}]}"#, true),
            (r#"{"content":[{"type":"t","text":"\udc00"}]}"#, false),
            (r#"{"content":[{"type":"t","text":"\ud800\u0041"}]}"#, false),
            (r#"{"content":[{"type":"t","text":"\ud800\n"}]}"#, false),
            (r#"{"content":[{"type":"t","text":"\ud800"}]}"#, false),
        ] {
            let ours = check(text.as_bytes());
            assert!(
                ours.as_ref()
                    .is_err_and(|e| e.starts_with("lone surrogate")),
                "{text}: {ours:?}"
            );
            assert_eq!(
                reference(text.as_bytes()).is_err(),
                in_a_field_serde_reads,
                "{text}"
            );
        }
        // A pair is one character, in either case.
        let pair = r#"{"content":[{"type":"t\ud83d\ude00","text":"\uD83D\uDE00"}]}"#;
        assert_eq!(check(pair.as_bytes()).map(|c| c.is_error), Ok(false));
        assert_eq!(reference(pair.as_bytes()), Ok(false));
    }

    #[test]
    fn agrees_with_serde_json_on_mutated_answers() {
        const ALPHABET: &[u8] = b"{}[]\":,\\ \n-+.0123456789eEtrufalsn\x01\xc3\xa9abcuyp";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..100_000 {
            let mut text = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(text.len() + 1);
                match rng.below(4) {
                    0 if at < text.len() => {
                        text.remove(at);
                    }
                    1 if at < text.len() => text[at] = ALPHABET[rng.below(ALPHABET.len())],
                    2 => text.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    _ => {
                        let end = (at + rng.below(8)).min(text.len());
                        let piece = text[at..end].to_vec();
                        text.splice(at..at, piece);
                    }
                }
            }
            let expected = reference(&text);
            if expected
                .as_ref()
                .is_err_and(|e| e.starts_with("duplicate field"))
            {
                continue;
            }
            let found = check(&text);
            assert_eq!(
                found.as_ref().map(|c| c.is_error).map_err(drop),
                expected.as_ref().map(|e| *e).map_err(drop),
                "{:?}: ours {found:?}, serde_json {expected:?}",
                String::from_utf8_lossy(&text)
            );
            if found.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // The mutations must exercise both sides.
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} / {refused}"
        );
    }
}
