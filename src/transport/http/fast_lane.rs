//! Owns erlmcp's own HTTP/1.1 for the hot path. A connection's plain `POST /mcp` requests —
//! HTTP/1.1, a `Content-Length` body within `max_message_size`, nothing to negotiate — are read
//! with httparse straight from the socket's buffer and answered by writing the response bytes
//! ourselves: hyper's connection machinery (its header map, its body channel, its dispatch
//! loop) cost more than the whole of the MCP work of a `tools/call` here.
//!
//! Anything else hands the connection over to hyper, with the bytes already read, for the rest of
//! its life: another method or path (GET streams, `/sse`, `/ws` upgrades, the router), a chunked
//! body, `Expect`, `Upgrade`, a `Connection` other than keep-alive, HTTP/1.0, a head that is
//! malformed, too long or has too many headers, a body over the limit. hyper answers those as it
//! always did, so the lane only ever sees requests whose every byte it understands.

use super::answer::AnswerBody;
use super::idle_watch::Activity;
use super::{HttpState, RequestHeaders};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use bytes::{Buf as _, Bytes, BytesMut};
use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// A head longer than this goes to hyper (which refuses one past its own limit with 431).
const MAX_HEAD: usize = 16 * 1024;
/// Headers the lane reads; a request with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 32;
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8 * 1024;
/// `Connection: close`, on the answer to a request that asked for it.
const CLOSE: HeaderValue = HeaderValue::from_static("close");

/// How the lane left a connection.
pub(super) enum LaneEnd<IO> {
    /// The peer closed it (or it failed): nothing more to do.
    Closed,
    /// A request the lane does not serve came: hyper serves the connection from here on.
    HandOver(Rewound<IO>),
}

/// Serves `io`'s plain `POST /mcp` requests until the peer closes it or sends something else.
pub(super) async fn serve<IO>(
    mut io: IO,
    state: &Arc<HttpState>,
    activity: &Arc<Activity>,
) -> io::Result<LaneEnd<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let limit = state.ctx.limits.max_message_size;
    let write_together = state.settings.pipeline_flush;
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    // From a request's whole head until its answer is written: the idle watch leaves it alone.
    let mut in_progress = None;
    loop {
        // Every request already read whole is answered before the socket is read again.
        loop {
            let head = match Head::parse(&mut buf, limit) {
                Parsed::Plain(head) => head,
                Parsed::Partial => break,
                Parsed::Other => return hand_over(io, &out, buf).await,
            };
            in_progress.get_or_insert_with(|| activity.begin());
            let whole = head.len + head.body_len;
            if buf.len() < whole {
                buf.reserve(whole - buf.len());
                break;
            }
            let answer = {
                let Ok(text) = std::str::from_utf8(&buf[..head.len]) else {
                    // Not text (bytes past ASCII in a value): hyper reads such heads.
                    return hand_over(io, &out, buf).await;
                };
                let read = RequestHeaders::from_pairs(head.pairs(text));
                let body = &buf[head.len..whole];
                super::route_mcp(state, &Method::POST, read, body).await
            };
            buf.advance(whole);
            let (mut parts, body) = answer.into_parts();
            if head.close {
                parts.headers.insert(header::CONNECTION, CLOSE);
            }
            let sent_whole = match body {
                AnswerBody::Frame(frame) => {
                    let frame = frame.unwrap_or_default();
                    write_head(&mut out, parts.status, &parts.headers, Some(frame.len()));
                    out.extend_from_slice(&frame);
                    true
                }
                AnswerBody::Axum(body) => {
                    send_axum_body(&mut io, &mut out, parts.status, &parts.headers, body).await?
                }
            };
            if head.close || !sent_whole {
                // What was asked for, or an answer cut midway: the connection ends here.
                io.write_all(&out).await?;
                let _ = io.shutdown().await;
                return Ok(LaneEnd::Closed);
            }
            if !write_together || buf.is_empty() {
                io.write_all(&out).await?;
                out.clear();
            }
            in_progress = None;
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        if buf.capacity() - buf.len() < READ_SIZE / 2 {
            buf.reserve(READ_SIZE);
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(LaneEnd::Closed);
        }
    }
}

/// Hands the connection to hyper: the answers already made are sent, the bytes read and not
/// served are read again by hyper.
async fn hand_over<IO: AsyncWrite + Unpin>(
    mut io: IO,
    out: &[u8],
    buf: BytesMut,
) -> io::Result<LaneEnd<IO>> {
    io.write_all(out).await?;
    let pending = buf.freeze();
    Ok(LaneEnd::HandOver(Rewound { pending, io }))
}

/// A plain request's head, as offsets into the buffer it was read from.
struct Head {
    /// The head's length, up to and with its blank line.
    len: usize,
    /// The body's, from `Content-Length`.
    body_len: usize,
    /// `Connection: close`: the connection ends after the answer.
    close: bool,
    /// Each header's name (lower-cased in place) and value.
    headers: smallvec::SmallVec<[(Range<usize>, Range<usize>); 12]>,
}

/// What the buffer starts with.
enum Parsed {
    /// A plain `POST /mcp` head, whole.
    Plain(Head),
    /// Not a whole head yet.
    Partial,
    /// A request for hyper (or bytes that are no request).
    Other,
}

impl Head {
    fn parse(buf: &mut BytesMut, limit: usize) -> Parsed {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut slots);
        let len = match request.parse(&buf[..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Parsed::Partial,
            Ok(httparse::Status::Partial) | Err(_) => return Parsed::Other,
        };
        if len > MAX_HEAD
            || request.method != Some("POST")
            || request.path != Some("/mcp")
            || request.version != Some(1)
        {
            return Parsed::Other;
        }
        let start = buf.as_ptr() as usize;
        let at = |part: &[u8]| {
            let from = part.as_ptr() as usize - start;
            from..from + part.len()
        };
        let mut body_len = None;
        let mut close = false;
        let mut headers: smallvec::SmallVec<[(Range<usize>, Range<usize>); 12]> =
            smallvec::SmallVec::new();
        for h in request.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                // One length, digits only: anything else is hyper's to refuse.
                let length = std::str::from_utf8(h.value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok());
                match (body_len, length) {
                    (None, Some(length)) if length <= limit => body_len = Some(length),
                    _ => return Parsed::Other,
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                if h.value.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                    return Parsed::Other;
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"expect")
                || name.eq_ignore_ascii_case(b"upgrade")
            {
                return Parsed::Other;
            }
            headers.push((at(name), at(h.value)));
        }
        let Some(body_len) = body_len else {
            return Parsed::Other;
        };
        // Names as a header map keeps them: lower case (they are ASCII tokens).
        for (name, _) in &headers {
            buf[name.clone()].make_ascii_lowercase();
        }
        Parsed::Plain(Self {
            len,
            body_len,
            close,
            headers,
        })
    }

    /// The (name, value) pairs, in the head as [`Head::parse`] left it, read as text.
    fn pairs<'a>(&'a self, head: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.headers
            .iter()
            .filter_map(|(name, value)| Some((head.get(name.clone())?, head.get(value.clone())?)))
    }
}

/// Writes the status line and headers of an answer; with no `length`, the body is chunked.
fn write_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap, length: Option<usize>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Some(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"date: ");
    write_date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The `Date` header's value, formatted once a second per thread.
fn write_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// Sends an answer whose body is axum's: with its length when it has one (errors in text, 202),
/// else chunk by chunk as it comes (an SSE stream), each chunk written at once. `out` (answers
/// already waiting, and this one's head) is written first. `false` when the body failed midway:
/// the connection must close, as its answer is cut.
async fn send_axum_body<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    mut body: axum::body::Body,
) -> io::Result<bool> {
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;
    if let Some(length) = body.size_hint().exact() {
        let mut whole = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Ok(false) };
            if let Ok(data) = frame.into_data() {
                whole.extend_from_slice(&data);
            }
        }
        if whole.len() as u64 == length {
            write_head(out, status, headers, Some(whole.len()));
            out.extend_from_slice(&whole);
            return Ok(true);
        }
        // A body whose hint was wrong: sent chunked, which needs no length.
        write_head(out, status, headers, None);
        write_chunk(out, &whole);
        out.extend_from_slice(b"0\r\n\r\n");
        return Ok(true);
    }
    write_head(out, status, headers, None);
    io.write_all(out).await?;
    out.clear();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Ok(false) };
        if let Ok(data) = frame.into_data() {
            write_chunk(out, &data);
            io.write_all(out).await?;
            out.clear();
        }
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Ok(true)
}

/// One chunk of a chunked body (none for empty data: an empty chunk ends the body).
fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = std::io::Write::write_fmt(out, format_args!("{:x}\r\n", data.len()));
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A connection handed to hyper: the bytes the lane read but did not serve come first.
pub(super) struct Rewound<IO> {
    pending: Bytes,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewound<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let count = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..count]);
        self.pending.advance(count);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewound<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
