//! Owns what `/mcp` answers: a status, headers and a body. A JSON answer is its frame, sent as
//! it is: axum's body boxes every body, and a `Vec` turned into `Bytes` allocates a shared header
//! unless it is exactly full, so a JSON answer through axum cost two allocations and two frees a
//! request. Its few headers are fields, not a `HeaderMap` (filling and dropping one cost ~1.1K
//! instructions a request): the fast lane writes them as they are, and hyper gets a response with
//! a map built from them. Anything else (SSE streams, errors in text, empty answers) is axum's
//! response, its body and its map unchanged.
//!
//! Also how a request's answer is made from what its queue holds: the frames ready at once, one
//! JSON body (gzipped past 1 KiB when the client takes it), or an SSE stream with keep-alives.

use super::{HttpSettings, RequestHeaders, SSE_HEADERS};
use crate::outbound::OutboundReceiver;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use futures::StreamExt as _;
use hyper::body::{Buf, Frame, SizeHint};
use std::convert::Infallible;
use std::io::Cursor;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The headers an answer names in fields, in the order they are written.
static KNOWN: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CACHE_CONTROL,
    super::SESSION_ID,
];
const CONTENT_TYPE: usize = 0;
const CONTENT_ENCODING: usize = 1;
const CACHE_CONTROL: usize = 2;
const SESSION_ID: usize = 3;

/// What `/mcp` answers with.
#[derive(Debug)]
pub(super) struct Answer {
    head: AnswerHead,
    body: AnswerBody,
}

/// An answer's status and headers.
#[derive(Debug)]
pub(super) struct AnswerHead {
    status: StatusCode,
    /// The values of [`KNOWN`] headers that are set.
    known: [Option<HeaderValue>; 4],
    /// Any other headers (those of axum's responses).
    others: HeaderMap,
}

impl AnswerHead {
    /// The answer's status.
    pub(super) fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers set in fields: none of them is about framing the body.
    pub(super) fn known(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        KNOWN
            .iter()
            .zip(&self.known)
            .filter_map(|(name, value)| Some((name, value.as_ref()?)))
    }

    /// Any other headers (axum's answers'), in a map.
    pub(super) fn others(&self) -> &HeaderMap {
        &self.others
    }
}

impl Answer {
    /// Sets `Mcp-Session-Id`.
    pub(super) fn set_session_id(&mut self, id: HeaderValue) {
        self.head.known[SESSION_ID] = Some(id);
    }

    /// The head and the body, apart (a body need not be shared between threads; a head is).
    pub(super) fn into_parts(self) -> (AnswerHead, AnswerBody) {
        (self.head, self.body)
    }

    /// The answer as a response, its headers in a map (for hyper).
    pub(super) fn into_response(self) -> Response<AnswerBody> {
        let mut response = Response::new(self.body);
        *response.status_mut() = self.head.status;
        let mut map = self.head.others;
        for (name, value) in KNOWN.iter().zip(self.head.known) {
            if let Some(value) = value {
                map.insert(name.clone(), value);
            }
        }
        *response.headers_mut() = map;
        response
    }
}

/// The body of an [`Answer`].
#[derive(Debug)]
pub(super) enum AnswerBody {
    /// One frame, whole (`None` once sent).
    Frame(Option<Vec<u8>>),
    /// Any other body.
    Axum(Body),
}

/// A chunk of an [`AnswerBody`]: the frame itself, or a chunk of axum's body.
#[derive(Debug)]
pub(super) enum AnswerChunk {
    /// The frame, read from its start.
    Frame(Cursor<Vec<u8>>),
    /// A chunk of axum's body.
    Bytes(Bytes),
}

impl Buf for AnswerChunk {
    fn remaining(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.remaining(),
            Self::Bytes(bytes) => bytes.remaining(),
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Self::Frame(frame) => frame.chunk(),
            Self::Bytes(bytes) => bytes.chunk(),
        }
    }

    fn advance(&mut self, count: usize) {
        match self {
            Self::Frame(frame) => frame.advance(count),
            Self::Bytes(bytes) => bytes.advance(count),
        }
    }
}

impl hyper::body::Body for AnswerBody {
    type Data = AnswerChunk;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<AnswerChunk>, axum::Error>>> {
        match self.get_mut() {
            Self::Frame(frame) => Poll::Ready(
                frame
                    .take()
                    .map(|frame| Ok(Frame::data(AnswerChunk::Frame(Cursor::new(frame))))),
            ),
            Self::Axum(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|next| next.map(|frame| frame.map(|f| f.map_data(AnswerChunk::Bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Frame(frame) => frame.is_none(),
            Self::Axum(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Frame(frame) => {
                SizeHint::with_exact(frame.as_ref().map_or(0, |f| f.len() as u64))
            }
            Self::Axum(body) => body.size_hint(),
        }
    }
}

/// Anything axum answers with, as an [`Answer`].
pub(super) trait IntoAnswer {
    /// The answer.
    fn into_answer(self) -> Answer;
}

impl<T: IntoResponse> IntoAnswer for T {
    fn into_answer(self) -> Answer {
        let (parts, body) = self.into_response().into_parts();
        Answer {
            head: AnswerHead {
                status: parts.status,
                known: Default::default(),
                others: parts.headers,
            },
            body: AnswerBody::Axum(body),
        }
    }
}

/// A JSON body with this status and `Content-Type: application/json` (and `encoding`, when the
/// body is compressed).
pub(super) fn json(status: StatusCode, body: Vec<u8>, encoding: Option<HeaderValue>) -> Answer {
    let mut known: [Option<HeaderValue>; 4] = Default::default();
    known[CONTENT_TYPE] = Some(super::APPLICATION_JSON);
    known[CONTENT_ENCODING] = encoding;
    whole(status, body, known)
}

/// An event stream whose every event is already in `body`, sent whole with its length.
pub(super) fn events(body: Vec<u8>) -> Answer {
    let [(_, content_type), (_, cache_control)] = super::SSE_HEADERS;
    let mut known: [Option<HeaderValue>; 4] = Default::default();
    known[CONTENT_TYPE] = Some(content_type);
    known[CACHE_CONTROL] = Some(cache_control);
    whole(StatusCode::OK, body, known)
}

/// Another node's answer (a forwarded request's): `body` (one frame, or a relayed stream), with
/// this status and these headers (the lane writes the framing ones).
pub(super) fn relayed(
    status: StatusCode,
    headers: impl Iterator<Item = (HeaderName, HeaderValue)>,
    body: AnswerBody,
) -> Answer {
    let mut known: [Option<HeaderValue>; 4] = Default::default();
    let mut others = HeaderMap::new();
    for (name, value) in headers {
        match KNOWN.iter().position(|k| *k == name) {
            Some(at) => known[at] = Some(value),
            None => {
                others.append(name, value);
            }
        }
    }
    Answer {
        head: AnswerHead {
            status,
            known,
            others,
        },
        body,
    }
}

/// `body` as one frame, with this status and these headers.
fn whole(status: StatusCode, body: Vec<u8>, known: [Option<HeaderValue>; 4]) -> Answer {
    Answer {
        head: AnswerHead {
            status,
            known,
            others: HeaderMap::new(),
        },
        body: AnswerBody::Frame(Some(body)),
    }
}

/// An [`Answer`] as axum's response, for `/mcp` requests that come through the router.
pub(super) fn into_axum_response(answer: Answer) -> axum::response::Response {
    answer.into_response().map(|body| match body {
        AnswerBody::Frame(frame) => Body::from(frame.unwrap_or_default()),
        AnswerBody::Axum(body) => body,
    })
}

/// Frames taken off a queue at once: nearly always one or two (an answer, maybe a notification
/// before it), kept inline so that taking them allocates nothing.
pub(super) type Ready = smallvec::SmallVec<[Vec<u8>; 2]>;

/// The frames already queued, and whether every sender is gone (nothing more will come).
pub(super) fn drain_ready(queue: &mut OutboundReceiver) -> (Ready, bool) {
    let mut ready = Ready::new();
    loop {
        match queue.rx.try_recv() {
            Ok(frame) => {
                queue.level().written(1, frame.len());
                ready.push(frame);
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => return (ready, false),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return (ready, true),
        }
    }
}

/// An SSE response without event ids (nothing to resume): `ready`, then what `queue` brings
/// until every sender is gone. `hold` lives as long as the response body.
pub(super) fn sse_frames(
    ready: Ready,
    queue: OutboundReceiver,
    settings: &HttpSettings,
    hold: Option<Box<dyn Send + Sync>>,
) -> axum::response::Response {
    let event = |frame: &[u8]| {
        let mut out = Vec::with_capacity(frame.len() + 24);
        out.extend_from_slice(b"event: message\ndata: ");
        out.extend_from_slice(frame);
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    };
    let first = futures::stream::iter(ready.iter().map(|f| event(f)).collect::<Vec<_>>());
    let rest = futures::stream::unfold((queue, hold), move |(mut queue, hold)| async move {
        let frame = queue.rx.recv().await?;
        queue.level().written(1, frame.len());
        Some((event(&frame), (queue, hold)))
    });
    sse(first.chain(rest), settings)
}

/// An SSE response: the events, with a keep-alive comment whenever the stream is quiet.
pub(super) fn sse(
    events: impl futures::Stream<Item = Bytes> + Send + 'static,
    settings: &HttpSettings,
) -> axum::response::Response {
    let keep_alive = settings.keep_alive;
    let events = events
        .map(Some)
        .chain(futures::stream::once(async { None }));
    let body = futures::stream::unfold(
        (Box::pin(events), keep_alive),
        |(mut events, keep_alive)| async move {
            match tokio::time::timeout(keep_alive, events.next()).await {
                Ok(Some(Some(event))) => Some((Ok::<_, Infallible>(event), (events, keep_alive))),
                Ok(_) => None,
                Err(_) => Some((
                    Ok(Bytes::from_static(b": keep-alive\n\n")),
                    (events, keep_alive),
                )),
            }
        },
    );
    (SSE_HEADERS, Body::from_stream(body)).into_response()
}

pub(super) fn json_response(headers: &RequestHeaders<'_>, body: Vec<u8>) -> Answer {
    // The body's size first: most answers are small, and then the header is not read.
    if body.len() > 1024 && headers.accepts_gzip() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if encoder.write_all(&body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            let gzip = HeaderValue::from_static("gzip");
            return json(StatusCode::OK, compressed, Some(gzip));
        }
    }
    json(StatusCode::OK, body, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;

    /// The headers the fast lane would write, and the body.
    fn written(answer: Answer) -> (Vec<(String, String)>, AnswerBody) {
        let (head, body) = answer.into_parts();
        let names = head
            .known()
            .chain(head.others())
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        (names, body)
    }

    #[tokio::test]
    async fn a_frame_is_sent_whole_with_its_length() {
        let answer = || {
            let mut answer = json(StatusCode::OK, b"{\"a\":1}".to_vec(), None);
            answer.set_session_id(HeaderValue::from_static("s1"));
            answer
        };
        let (headers, body) = written(answer());
        assert_eq!(
            headers,
            [
                ("content-type".into(), "application/json".into()),
                ("mcp-session-id".into(), "s1".into())
            ]
        );
        assert_eq!(body.size_hint().exact(), Some(7));

        // To hyper: the same headers in a map.
        let response = answer().into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()["mcp-session-id"], "s1");
        let body = response.into_body();
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, "{\"a\":1}");

        // Through the router it is the same answer in axum's body.
        let routed = into_axum_response(json(
            StatusCode::BAD_REQUEST,
            b"[]".to_vec(),
            Some(HeaderValue::from_static("gzip")),
        ));
        assert_eq!(routed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(routed.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(routed.into_body().collect().await.unwrap().to_bytes(), "[]");

        // A finished event stream goes the same way, with the event-stream headers.
        let (headers, body) = written(events(b"data: \n\n".to_vec()));
        assert_eq!(
            headers,
            [
                ("content-type".into(), "text/event-stream".into()),
                ("cache-control".into(), "no-cache".into())
            ]
        );
        assert_eq!(body.size_hint().exact(), Some(8));
    }

    #[tokio::test]
    async fn other_answers_keep_their_headers_and_body() {
        let answer = || {
            let mut answer =
                (StatusCode::ACCEPTED, [(header::ALLOW, "POST")], "text").into_answer();
            answer.set_session_id(HeaderValue::from_static("s2"));
            answer
        };
        assert_eq!(answer().into_parts().0.status(), StatusCode::ACCEPTED);
        let (headers, _) = written(answer());
        for expected in [
            ("allow", "POST"),
            ("mcp-session-id", "s2"),
            ("content-type", "text/plain; charset=utf-8"),
        ] {
            let expected = (expected.0.to_owned(), expected.1.to_owned());
            assert!(headers.contains(&expected), "{headers:?}");
        }
        let response = answer().into_response();
        assert_eq!(response.headers()[header::ALLOW], "POST");
        assert_eq!(response.headers()["mcp-session-id"], "s2");
        let mut body = response.into_body();
        let mut sent = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(mut chunk) = frame.unwrap().into_data() {
                // Read in two steps: `advance` moves through the chunk.
                sent.extend_from_slice(&chunk.chunk()[..1]);
                chunk.advance(1);
                sent.extend_from_slice(chunk.chunk());
                chunk.advance(chunk.remaining());
                assert_eq!(chunk.remaining(), 0);
            }
        }
        assert_eq!(sent, b"text");
    }
}
