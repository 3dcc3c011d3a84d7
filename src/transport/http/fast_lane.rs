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

use super::answer::{AnswerBody, AnswerHead, IntoAnswer as _};
use super::head_checks::{check_head, check_rate};
use super::idle_watch::Activity;
use super::{HttpState, RequestHeaders, plain};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
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
/// The start of HTTP/2's connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8 * 1024;
/// What the buffer of answers starts with.
const OUT_SIZE: usize = 1024;
/// A buffer grown past this (by one large message) is let go once empty.
const KEPT_CAPACITY: usize = 64 * 1024;
/// What the buffer grows by at most, for a body still coming.
const BODY_STEP: usize = 64 * 1024;

/// How the lane left a connection.
pub(super) enum LaneEnd<IO> {
    /// The peer closed it (or it failed): nothing more to do.
    Closed,
    /// A request the lane does not serve came: hyper serves the connection from here on.
    HandOver(Rewound<IO>),
}

/// A connection that tells when its peer has gone, so that the lane, which does not read while
/// it answers, drops a handler's answer or a waiting stream then, as hyper does.
pub(super) trait PeerWatch {
    /// Resolves once the peer has closed the connection (or it failed).
    fn peer_gone(&self) -> impl Future<Output = ()>;

    /// Resolves once a read would find bytes, the end or an error, without reading them: the
    /// lane waits for the next request holding no read buffer. `false` from
    /// [`PeerWatch::waits_without_buffer`] (TLS, whose records may already hold plaintext): it
    /// is not asked, and the lane keeps its buffer.
    fn readable(&self) -> impl Future<Output = io::Result<()>> {
        std::future::ready(Ok(()))
    }

    /// Whether [`PeerWatch::readable`] says when bytes are waiting.
    fn waits_without_buffer(&self) -> bool {
        false
    }
}

/// Serves `io`'s plain `POST /mcp` requests until the peer closes it or sends something else.
pub(super) async fn serve<IO>(
    mut io: IO,
    state: &Arc<HttpState>,
    activity: &Arc<Activity>,
    peer: std::net::IpAddr,
    principal: Option<&crate::transport::tls::Principal>,
) -> io::Result<LaneEnd<IO>>
where
    IO: AsyncRead + AsyncWrite + PeerWatch + Unpin,
{
    let limit = state.ctx.limits.max_message_size;
    let write_together = state.settings.pipeline_flush;
    // Where the socket can wait without a buffer, an idle connection holds none: both are
    // taken when a request arrives and let go once it is answered and nothing more is read.
    let lets_go = io.waits_without_buffer();
    let mut buf = BytesMut::new();
    let mut out: Vec<u8> = Vec::new();
    // From a request's whole head until its answer is written: the idle watch leaves it alone.
    let mut in_progress = None;
    // The read buffer grew past what is kept for a large request.
    let mut grown = false;
    // The request whose head has come and whose body has not, all of it.
    let mut awaited: Option<AwaitedBody> = None;
    loop {
        // Every request already read whole is answered before the socket is read again.
        loop {
            let head = match Head::parse(&mut buf, limit) {
                Parsed::Plain(head) => head,
                Parsed::Partial => break,
                Parsed::Other if buf.starts_with(H2_PREFACE) => {
                    // hyper closes on HTTP/2's preface without a word.
                    let refusal = plain(
                        StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                        "HTTP/2 is not served here: HTTP/1.1 only",
                    );
                    return Box::pin(refuse_and_close(io, &mut out, refusal)).await;
                }
                Parsed::Other => {
                    if let Some(refusal) = judge_handed_over(&buf, state.settings.max_head_bytes) {
                        return Box::pin(refuse_and_close(io, &mut out, refusal)).await;
                    }
                    return hand_over(io, &mut out, buf).await;
                }
            };
            in_progress.get_or_insert_with(|| activity.begin());
            let whole = head.len + head.body_len;
            if awaited.is_none()
                && state.ctx.server.admission.rate().limits_requests()
                && let Ok(text) = std::str::from_utf8(&buf[..head.len])
                && let Some(refusal) =
                    check_rate(state, &RequestHeaders::from_pairs(head.pairs(text)), peer)
            {
                // The head decides: the body, whole or not, is not read.
                return Box::pin(refuse_and_close(io, &mut out, refusal)).await;
            }
            grown |= whole > KEPT_CAPACITY;
            if buf.len() < whole {
                if awaited.is_none() {
                    // What the head alone decides is decided before the body is waited for.
                    let Ok(text) = std::str::from_utf8(&buf[..head.len]) else {
                        return hand_over(io, &mut out, buf).await;
                    };
                    let mut read = RequestHeaders::from_pairs(head.pairs(text));
                    read.tls_client = principal;
                    let path = "/mcp";
                    let announced = head.body_len as u64;
                    if let Some(refusal) =
                        Box::pin(check_head(state, &Method::POST, path, &read, announced)).await
                    {
                        return Box::pin(refuse_and_close(io, &mut out, refusal)).await;
                    }
                    let Some(reservation) = state.bodies.reserve(head.body_len) else {
                        let busy = super::busy("server busy: http.max_pending_body_bytes reached");
                        return Box::pin(refuse_and_close(io, &mut out, busy)).await;
                    };
                    awaited = Some(AwaitedBody {
                        deadline: tokio::time::Instant::now() + state.settings.body_read_timeout,
                        _reservation: reservation,
                    });
                }
                // Room for the body as it comes, not all it announces at once (up to the limit
                // per connection, before a byte of it arrived).
                buf.reserve((whole - buf.len()).min(BODY_STEP));
                break;
            }
            awaited = None;
            let answer = {
                let Ok(text) = std::str::from_utf8(&buf[..head.len]) else {
                    // Not text (bytes past ASCII in a value): hyper reads such heads.
                    return hand_over(io, &mut out, buf).await;
                };
                let mut read = RequestHeaders::from_pairs(head.pairs(text));
                read.peer = Some(peer);
                read.tls_client = principal;
                let body = &buf[head.len..whole];
                // Boxed: inline, its state would be held by every idle connection's task.
                let mut answer = Box::pin(super::mcp_endpoint::answer(
                    state,
                    &Method::POST,
                    read,
                    body,
                ));
                match futures::FutureExt::now_or_never(answer.as_mut()) {
                    Some(answer) => answer,
                    None => {
                        // Answers to earlier pipelined requests do not wait for this one.
                        send(&mut io, &mut out).await?;
                        tokio::select! {
                            biased;
                            answer = answer => answer,
                            () = io.peer_gone() => return Ok(LaneEnd::Closed),
                        }
                    }
                }
            };
            buf.advance(whole);
            let (answer, body) = answer.into_parts();
            let ending = Ending {
                close: head.close,
                ..Ending::default()
            };
            let sent_whole = match body {
                AnswerBody::Frame(frame) => {
                    let frame = frame.unwrap_or_default();
                    let length = Some(frame.len());
                    write_head(&mut out, &answer, Ending { length, ..ending });
                    out.extend_from_slice(&frame);
                    true
                }
                AnswerBody::Axum(body) => {
                    Box::pin(send_axum_body(&mut io, &mut out, &answer, ending, body)).await?
                }
            };
            if head.close || !sent_whole {
                // What was asked for, or an answer cut midway: the connection ends here.
                send(&mut io, &mut out).await?;
                let _ = io.shutdown().await;
                return Ok(LaneEnd::Closed);
            }
            // Else with the answers to the rest of what was read, once it is all answered.
            if !write_together {
                send(&mut io, &mut out).await?;
            }
            in_progress = None;
        }
        send(&mut io, &mut out).await?;
        let_go_of_grown(&mut buf, &mut grown, &mut out);
        if lets_go && buf.is_empty() && awaited.is_none() {
            // Between requests: bytes already waiting (a busy connection) are read into the
            // buffer held; when none are, nothing read is held and nothing waits to be
            // written: both buffers go until the next request arrives.
            let waiting = match buf.capacity() {
                0 => None,
                _ => futures::FutureExt::now_or_never(io.read_buf(&mut buf)),
            };
            match waiting {
                Some(read) => {
                    if read? == 0 {
                        return Ok(LaneEnd::Closed);
                    }
                    continue;
                }
                None => {
                    buf = BytesMut::new();
                    out = Vec::new();
                    io.readable().await?;
                }
            }
        }
        if out.capacity() == 0 {
            out.reserve(OUT_SIZE);
        }
        if buf.capacity() - buf.len() < READ_SIZE / 2 {
            buf.reserve(READ_SIZE);
        }
        let read = match &awaited {
            None => io.read_buf(&mut buf).await?,
            Some(body) => match tokio::time::timeout_at(body.deadline, io.read_buf(&mut buf)).await
            {
                Ok(read) => read?,
                Err(_) => {
                    let late = plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request body did not arrive within http.body_read_timeout",
                    );
                    return Box::pin(refuse_and_close(io, &mut out, late)).await;
                }
            },
        };
        if read == 0 {
            return Ok(LaneEnd::Closed);
        }
    }
}

/// A request whose head has come and whose body is still coming: the time it has left, and
/// its bytes held against `http.max_pending_body_bytes`.
struct AwaitedBody {
    deadline: tokio::time::Instant,
    _reservation: super::body_guard::BodyReservation,
}

/// Answers a request refused before its body was read (or whole), then closes the connection:
/// the answers already waiting go first; the client's unread bytes are read and dropped for a
/// moment first, so that closing with them unread does not reset the connection before the
/// client reads the answer.
async fn refuse_and_close<IO>(
    mut io: IO,
    out: &mut Vec<u8>,
    refusal: axum::response::Response,
) -> io::Result<LaneEnd<IO>>
where
    IO: AsyncRead + AsyncWrite + PeerWatch + Unpin,
{
    let (answer, body) = refusal.into_answer().into_parts();
    let ending = Ending {
        close: true,
        ..Ending::default()
    };
    match body {
        AnswerBody::Frame(frame) => {
            let frame = frame.unwrap_or_default();
            write_head(
                out,
                &answer,
                Ending {
                    length: Some(frame.len()),
                    ..ending
                },
            );
            out.extend_from_slice(&frame);
        }
        AnswerBody::Axum(body) => {
            send_axum_body(&mut io, out, &answer, ending, body).await?;
        }
    }
    send(&mut io, out).await?;
    let _ = io.shutdown().await;
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    })
    .await;
    Ok(LaneEnd::Closed)
}

/// How long, and for how many bytes at most, a refused request's unread bytes are read and
/// dropped before its connection closes.
const LINGER: std::time::Duration = std::time::Duration::from_millis(250);
const LINGER_BYTES: usize = 256 * 1024;

/// Writes the answers waiting in `out`, if any, and empties it.
async fn send<IO: AsyncWrite + Unpin>(io: &mut IO, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Lets go of buffers that one large request or answer grew, once they are empty, so that an
/// idle connection holds its usual few KiB and not the largest message it ever carried.
fn let_go_of_grown(buf: &mut BytesMut, grown: &mut bool, out: &mut Vec<u8>) {
    if *grown && buf.is_empty() {
        *buf = BytesMut::with_capacity(READ_SIZE);
        *grown = false;
    }
    if out.is_empty() && out.capacity() > KEPT_CAPACITY {
        out.shrink_to(OUT_SIZE);
    }
}

/// Lower-cases an HTTP token (a header name: ASCII) in place, eight bytes at a time: a byte
/// `b` is upper case when `b + 0x3f` reaches 0x80 (`b >= 'A'`) and `b + 0x25` does not
/// (`b <= 'Z'`); no sum carries into the next byte while every byte is ASCII, and a word that is
/// not is done byte by byte.
fn lowercase_token(token: &mut [u8]) {
    const EACH: u64 = u64::from_le_bytes([1; 8]);
    let mut words = token.chunks_exact_mut(8);
    for chunk in &mut words {
        let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) else {
            continue;
        };
        let word = u64::from_le_bytes(bytes);
        if word & (EACH * 0x80) != 0 {
            chunk.make_ascii_lowercase();
            continue;
        }
        let upper =
            word.wrapping_add(EACH * 0x3f) & !word.wrapping_add(EACH * 0x25) & (EACH * 0x80);
        chunk.copy_from_slice(&(word | (upper >> 2)).to_le_bytes());
    }
    words.into_remainder().make_ascii_lowercase();
}

/// The raw head of the request about to be handed to hyper, judged on what hyper would hide
/// from the checks on its path (a repeated `Content-Length`, one beside `Transfer-Encoding`:
/// [`super::head_checks::check_framing`]) and on its length. `None` when it is fine, or not a
/// whole head hyper can read (hyper answers those).
fn judge_handed_over(buf: &[u8], max_head: usize) -> Option<axum::response::Response> {
    // hyper's own number of header slots.
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > max_head => {
            Some(super::head_checks::too_large_head())
        }
        Ok(httparse::Status::Complete(_)) => super::head_checks::check_framing(
            request.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
        ),
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            Some(super::head_checks::too_large_head())
        }
        Ok(httparse::Status::Partial) | Err(_) => None,
    }
}

/// Hands the connection to hyper: the answers already made are sent, the bytes read and not
/// served are read again by hyper.
async fn hand_over<IO: AsyncWrite + Unpin>(
    mut io: IO,
    out: &mut Vec<u8>,
    buf: BytesMut,
) -> io::Result<LaneEnd<IO>> {
    send(&mut io, out).await?;
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
    headers: smallvec::SmallVec<[HeaderAt; 12]>,
}

/// Where a header's name and value lie in the head (which is at most [`MAX_HEAD`] long).
#[derive(Debug, Clone, Copy)]
struct HeaderAt {
    name: (u16, u16),
    value: (u16, u16),
}

impl HeaderAt {
    fn name(self) -> Range<usize> {
        usize::from(self.name.0)..usize::from(self.name.1)
    }
    fn value(self) -> Range<usize> {
        usize::from(self.value.0)..usize::from(self.value.1)
    }
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
        if buf.is_empty() {
            // Every request read is answered: the usual state after one.
            return Parsed::Partial;
        }
        // Slots httparse fills, not filled first (1 KiB of stores a request).
        let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut []);
        let len = match request.parse_with_uninit_headers(&buf[..], &mut slots) {
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
        // Within the head, so within u16.
        let at = |part: &[u8]| {
            let from = part.as_ptr() as usize - start;
            let to = from + part.len();
            Some((u16::try_from(from).ok()?, u16::try_from(to).ok()?))
        };
        let mut headers = smallvec::SmallVec::<[HeaderAt; 12]>::new();
        for h in request.headers.iter() {
            let (Some(name), Some(value)) = (at(h.name.as_bytes()), at(h.value)) else {
                return Parsed::Other;
            };
            headers.push(HeaderAt { name, value });
        }
        // Names as a header map keeps them: lower case. Then each is one comparison.
        let mut body_len = None;
        let mut close = false;
        for header in &headers {
            lowercase_token(&mut buf[header.name()]);
            let value = &buf[header.value()];
            match &buf[header.name()] {
                b"content-length" => {
                    // One length, digits only: anything else is hyper's to refuse.
                    let length = value
                        .iter()
                        .try_fold(0usize, |length, &digit| {
                            let digit = usize::from(digit.checked_sub(b'0').filter(|d| *d < 10)?);
                            length.checked_mul(10)?.checked_add(digit)
                        })
                        .filter(|_| !value.is_empty());
                    match (body_len, length) {
                        (None, Some(length)) if length <= limit => body_len = Some(length),
                        _ => return Parsed::Other,
                    }
                }
                b"connection" if value.eq_ignore_ascii_case(b"close") => close = true,
                b"connection" if value.eq_ignore_ascii_case(b"keep-alive") => {}
                b"connection" | b"transfer-encoding" | b"expect" | b"upgrade" => {
                    return Parsed::Other;
                }
                _ => {}
            }
        }
        let Some(body_len) = body_len else {
            return Parsed::Other;
        };
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
            .filter_map(|h| Some((head.get(h.name())?, head.get(h.value())?)))
    }
}

/// What the lane makes of the bytes at the start of a connection's buffer, for
/// [`crate::fuzzing`]: the same [`Head::parse`], its offsets turned into owned bytes.
#[derive(Debug)]
pub(crate) enum LaneRead {
    /// A plain `POST /mcp` head the lane serves itself.
    Plain {
        /// The head's length, up to and with its blank line.
        len: usize,
        /// The body's, from `Content-Length`.
        body_len: usize,
        /// `Connection: close`.
        close: bool,
        /// Each header: its name as the lane left it (lower-cased) and its value.
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Not a whole head yet.
    Partial,
    /// Handed to hyper.
    Other,
}

/// Reads `bytes` as the lane does, with `limit` as `max_message_size`.
pub(crate) fn read_head(bytes: &[u8], limit: usize) -> LaneRead {
    let mut buf = BytesMut::from(bytes);
    match Head::parse(&mut buf, limit) {
        Parsed::Plain(head) => LaneRead::Plain {
            len: head.len,
            body_len: head.body_len,
            close: head.close,
            headers: head
                .headers
                .iter()
                .map(|h| (buf[h.name()].to_vec(), buf[h.value()].to_vec()))
                .collect(),
        },
        Parsed::Partial => LaneRead::Partial,
        Parsed::Other => LaneRead::Other,
    }
}

/// The lane's lower-casing of a header name, for [`crate::fuzzing`].
pub(crate) fn lowercase_name(token: &mut [u8]) {
    lowercase_token(token);
}

/// How an answer's head ends: its body's length (chunked without one), and whether the
/// connection closes after it.
#[derive(Debug, Clone, Copy, Default)]
struct Ending {
    length: Option<usize>,
    close: bool,
}

/// Writes the status line and headers of an answer.
fn write_head(out: &mut Vec<u8>, answer: &AnswerHead, ending: Ending) {
    let status = answer.status();
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let write_header = |out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in answer.known() {
        write_header(out, name, value);
    }
    // The body's framing is the lane's to write.
    for (name, value) in answer.others() {
        if name != header::CONTENT_LENGTH
            && name != header::TRANSFER_ENCODING
            && name != header::CONNECTION
        {
            write_header(out, name, value);
        }
    }
    match ending.length {
        Some(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if ending.close {
        out.extend_from_slice(b"connection: close\r\n");
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

/// Sends an answer whose body is axum's: whole with its length when the body says it has one
/// (errors in text, 202: it is read at once), else chunk by chunk as it comes (an SSE stream),
/// each chunk written at once after `out` (answers already waiting, and this one's head).
/// `false` when the body failed midway: the connection must close, as its answer is cut.
async fn send_axum_body<IO: AsyncWrite + PeerWatch + Unpin>(
    io: &mut IO,
    out: &mut Vec<u8>,
    answer: &AnswerHead,
    ending: Ending,
    mut body: axum::body::Body,
) -> io::Result<bool> {
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;
    if body.size_hint().exact().is_some() {
        // Its length is the one read, whatever the hint said.
        let mut whole = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return Ok(false) };
            if let Ok(data) = frame.into_data() {
                whole.extend_from_slice(&data);
            }
        }
        let length = Some(whole.len());
        write_head(out, answer, Ending { length, ..ending });
        out.extend_from_slice(&whole);
        return Ok(true);
    }
    write_head(out, answer, ending);
    send(io, out).await?;
    loop {
        let next = tokio::select! {
            biased;
            next = body.frame() => next,
            () = io.peer_gone() => return Ok(false),
        };
        let Some(frame) = next else { break };
        let Ok(frame) = frame else { return Ok(false) };
        if let Ok(data) = frame.into_data() {
            write_chunk(out, &data);
            send(io, out).await?;
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
        if self.pending.is_empty() {
            // An empty view still holds the lane's whole read buffer: let it go.
            self.pending = Bytes::new();
        }
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

#[cfg(test)]
mod tests;
