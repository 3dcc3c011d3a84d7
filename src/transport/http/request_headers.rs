//! Owns how the HTTP transport reads a request's headers: the few it uses, found in one walk
//! over a header map or over the wire's (name, value) pairs, the first value of each counting,
//! repeats of the routing headers and of `Host` noted for refusal.

use crate::protocol::modern::StatelessRouting;
use crate::protocol::revision::Revision;
use axum::http::{HeaderMap, HeaderValue};

/// The forwarding lane's mark (`super::forward_lane`).
pub(crate) const FORWARDED_MARK: &str = "x-erlmcp-forwarded";

/// The request headers the HTTP transport reads, found in one walk over them (a lookup by name
/// hashes the name and probes the map each time: a POST asked for five or six). The first value
/// of a header counts, as a lookup by name reads it; a value that is not text counts as absent.
#[derive(Debug, Default)]
pub(crate) struct RequestHeaders<'a> {
    pub(super) host: Option<&'a str>,
    pub(super) origin: Option<&'a str>,
    pub(super) authorization: Option<&'a str>,
    pub(super) content_type: Option<&'a str>,
    pub(super) accept: Option<&'a str>,
    pub(super) session_id: Option<&'a str>,
    pub(super) last_event_id: Option<&'a str>,
    /// `Accept-Encoding`, checked for being text only for an answer worth compressing.
    pub(super) accept_encoding: Option<&'a [u8]>,
    /// The stateless path's routing headers (`MCP-Protocol-Version` among them).
    pub(crate) routing: StatelessRouting<'a>,
    /// A routing header sent more than once (the stateless path refuses the request).
    pub(crate) repeated_routing: Option<&'a str>,
    /// `Host` was sent more than once (refused: RFC 9112 §3.2).
    pub(super) repeated_host: bool,
    /// The client's address, where the connection's is known.
    pub(crate) peer: Option<std::net::IpAddr>,
    /// Who the bearer token stands for, once checked ([`super::head_checks::check_caller`]).
    pub(crate) principal: Option<std::sync::Arc<crate::auth::Principal>>,
    /// The forwarding lane's mark (`x-erlmcp-forwarded`, `super::forward_lane`): trusted only
    /// once its HMAC is checked, else the request is a client's like any other.
    pub(crate) forwarded: Option<&'a str>,
    /// Who the client is by its TLS client certificate (mTLS), where it sent one.
    pub(crate) tls_client: Option<&'a crate::transport::tls::Principal>,
}

/// A header value as [`RequestHeaders`] reads it: its bytes, and its text when it is visible
/// ASCII (tabs allowed), as [`HeaderValue::to_str`] reads it.
pub(crate) trait HeaderText<'a>: Copy {
    /// The value's bytes.
    fn bytes(self) -> &'a [u8];
    /// The value as text, `None` when it is not visible ASCII.
    fn text(self) -> Option<&'a str>;
}

impl<'a> HeaderText<'a> for &'a HeaderValue {
    fn bytes(self) -> &'a [u8] {
        self.as_bytes()
    }
    fn text(self) -> Option<&'a str> {
        self.to_str().ok()
    }
}

/// A value from a head read as text: httparse lets no control byte but a tab into a value, so
/// ASCII is visible ASCII.
impl<'a> HeaderText<'a> for &'a str {
    fn bytes(self) -> &'a [u8] {
        self.as_bytes()
    }
    fn text(self) -> Option<&'a str> {
        self.is_ascii().then_some(self)
    }
}

impl<'a> RequestHeaders<'a> {
    pub(crate) fn read(headers: &'a HeaderMap) -> Self {
        Self::from_pairs(headers.iter().map(|(n, v)| (n.as_str(), v)))
    }

    /// The headers from (lower-case name, value) pairs, in any order: a map's, or the wire's.
    pub(crate) fn from_pairs<V: HeaderText<'a>>(pairs: impl Iterator<Item = (&'a str, V)>) -> Self {
        let mut read = Self::default();
        // Which of the headers below were seen: a later value of one is a repeat.
        let mut seen = 0u16;
        for (name, value) in pairs {
            let (bit, slot) = match name {
                "host" => (0, &mut read.host),
                "origin" => (1, &mut read.origin),
                "authorization" => (2, &mut read.authorization),
                "content-type" => (3, &mut read.content_type),
                "accept" => (4, &mut read.accept),
                "mcp-session-id" => (5, &mut read.session_id),
                "last-event-id" => (6, &mut read.last_event_id),
                "accept-encoding" => {
                    read.accept_encoding.get_or_insert(value.bytes());
                    continue;
                }
                "mcp-protocol-version" => (7, &mut read.routing.headers.protocol_version),
                "mcp-method" => (8, &mut read.routing.headers.method),
                "mcp-name" => (9, &mut read.routing.headers.name),
                FORWARDED_MARK => {
                    if read.forwarded.is_none() {
                        read.forwarded = value.text();
                    }
                    continue;
                }
                other => {
                    if other.starts_with("mcp-param-")
                        && let Some(text) = value.text()
                    {
                        read.routing.params.push((other, text));
                    }
                    continue;
                }
            };
            if seen & (1 << bit) != 0 {
                if bit >= 7 {
                    read.repeated_routing.get_or_insert(name);
                }
                read.repeated_host |= bit == 0;
                continue;
            }
            seen |= 1 << bit;
            // Only the values read are checked to be text (each byte is looked at).
            *slot = value.text();
        }
        read
    }

    /// Whether the request takes the stateless 2026-07-28 path: its version header names no
    /// handshake revision (2026-07-28, or one this server does not know).
    pub(crate) fn takes_stateless_path(&self) -> bool {
        self.routing
            .headers
            .protocol_version
            .is_some_and(|v| Revision::parse(v).is_none_or(|r| r.is_modern()))
    }

    /// Whether the request's `Accept` takes an SSE stream.
    pub(crate) fn accepts_sse(&self) -> bool {
        self.accept.is_some_and(|a| a.contains("text/event-stream"))
    }

    /// Whether the request's `Accept` allows an answer of `/mcp` (JSON or an SSE stream): no
    /// (or an empty) `Accept` allows anything (RFC 9110 §12.5.1); else one of its media ranges must be
    /// `application/json`, `text/event-stream`, `application/*`, `text/*` or `*/*`, without `q=0`.
    pub(crate) fn accepts_mcp_answer(&self) -> bool {
        let Some(accept) = self.accept.filter(|a| !a.trim().is_empty()) else {
            return true;
        };
        accept.split(',').any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            !refused
                && [
                    "application/json",
                    "text/event-stream",
                    "application/*",
                    "text/*",
                    "*/*",
                ]
                .iter()
                .any(|allowed| media.eq_ignore_ascii_case(allowed))
        })
    }

    /// Whether the request's `Accept-Encoding` takes gzip.
    pub(super) fn accepts_gzip(&self) -> bool {
        self.accept_encoding
            .and_then(|e| std::str::from_utf8(e).ok())
            .filter(|e| e.is_ascii())
            .is_some_and(|e| e.split(',').any(|c| c.trim().starts_with("gzip")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_are_read_in_one_pass_first_value_counting() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9"));
        headers.append("origin", HeaderValue::from_static("http://localhost"));
        headers.append("origin", HeaderValue::from_static("http://evil.example"));
        headers.insert("accept", HeaderValue::from_static("text/event-stream"));
        headers.insert("mcp-session-id", HeaderValue::from_static("abc"));
        headers.insert("last-event-id", HeaderValue::from_static("1-2"));
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2026-07-28"),
        );
        headers.insert("mcp-method", HeaderValue::from_static("tools/call"));
        headers.insert("mcp-name", HeaderValue::from_static("echo"));
        headers.append("mcp-param-region", HeaderValue::from_static("eu"));
        headers.append("mcp-param-region", HeaderValue::from_static("us"));
        headers.insert("x-other", HeaderValue::from_static("ignored"));
        let read = RequestHeaders::read(&headers);
        assert_eq!(read.content_type, Some("application/json"));
        assert_eq!(read.host, Some("127.0.0.1:9"));
        assert_eq!(
            read.origin,
            Some("http://localhost"),
            "the first value counts"
        );
        assert!(read.accepts_sse());
        assert_eq!(read.session_id, Some("abc"));
        assert_eq!(read.last_event_id, Some("1-2"));
        assert_eq!(read.authorization, Some("Bearer t"));
        assert!(!read.accepts_gzip());
        assert_eq!(read.routing.headers.protocol_version, Some("2026-07-28"));
        assert_eq!(read.routing.headers.method, Some("tools/call"));
        assert_eq!(read.routing.headers.name, Some("echo"));
        assert_eq!(
            read.routing.params,
            vec![("mcp-param-region", "eu"), ("mcp-param-region", "us")]
        );
        assert_eq!(read.repeated_routing, None);
        headers.append("mcp-method", HeaderValue::from_static("tools/list"));
        headers.insert(
            "accept-encoding",
            HeaderValue::from_static("br, gzip;q=0.5"),
        );
        let read = RequestHeaders::read(&headers);
        assert_eq!(read.repeated_routing, Some("mcp-method"));
        assert!(read.accepts_gzip());
        assert_eq!(read.routing.headers.method, Some("tools/call"));
        // On the wire a repeat need not follow its first value.
        let wire = [
            ("mcp-method", "tools/call"),
            ("host", "127.0.0.1"),
            ("mcp-method", "tools/list"),
            ("host", "example.com"),
            ("accept", "caf\u{e9}"),
        ];
        let read = RequestHeaders::from_pairs(wire.into_iter());
        assert_eq!(read.repeated_routing, Some("mcp-method"));
        assert_eq!(read.routing.headers.method, Some("tools/call"));
        assert_eq!(read.host, Some("127.0.0.1"), "the first value counts");
        assert_eq!(read.accept, None, "text past ASCII counts as absent");
        let mut opaque = HeaderMap::new();
        opaque.insert("host", HeaderValue::from_bytes(b"h\xffst").unwrap());
        let read = RequestHeaders::read(&opaque);
        assert_eq!(read.host, None, "a value that is not text counts as absent");
        assert!(!read.accepts_sse());
        assert!(read.accepts_mcp_answer(), "no Accept allows anything");
    }

    #[test]
    fn an_accept_that_allows_neither_json_nor_sse_is_told() {
        let allows = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("accept", HeaderValue::from_str(accept).unwrap());
            RequestHeaders::read(&headers).accepts_mcp_answer()
        };
        for accept in [
            "application/json, text/event-stream",
            "text/event-stream",
            "Application/JSON; charset=utf-8",
            "*/*",
            "text/html, */*;q=0.1",
            "application/*",
        ] {
            assert!(allows(accept), "{accept}");
        }
        for accept in ["text/html", "image/png, text/plain", "application/json;q=0"] {
            assert!(!allows(accept), "{accept}");
        }
    }
}
