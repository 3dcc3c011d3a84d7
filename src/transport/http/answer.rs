//! Owns the body of what `/mcp` answers. A JSON answer is its frame, sent as it is: axum's body
//! boxes every body, and a `Vec` turned into `Bytes` allocates a shared header unless it is
//! exactly full, so a JSON answer through axum cost two allocations and two frees a request.
//! Anything else (SSE streams, errors in text, empty answers) is axum's body, unchanged.

use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Buf, Frame, SizeHint};
use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

/// What `/mcp` answers with.
pub(super) type Answer = Response<AnswerBody>;

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
        self.into_response().map(AnswerBody::Axum)
    }
}

/// A JSON body with this status and `Content-Type: application/json` (and `encoding`, when the
/// body is compressed).
pub(super) fn json(status: StatusCode, body: Vec<u8>, encoding: Option<HeaderValue>) -> Answer {
    let content_type = (header::CONTENT_TYPE, super::APPLICATION_JSON);
    let encoding = encoding.map(|e| (header::CONTENT_ENCODING, e));
    whole(status, body, std::iter::once(content_type).chain(encoding))
}

/// An event stream whose every event is already in `body`, sent whole with its length.
pub(super) fn events(body: Vec<u8>) -> Answer {
    whole(StatusCode::OK, body, super::SSE_HEADERS)
}

/// `body` as one frame, with this status and these headers.
fn whole(
    status: StatusCode,
    body: Vec<u8>,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> Answer {
    let mut answer = Response::new(AnswerBody::Frame(Some(body)));
    *answer.status_mut() = status;
    // One insert each, not `extend`: it sizes the map to these headers alone, and the session
    // id added after them then grew it again (~700 instructions a request).
    let map = answer.headers_mut();
    for (name, value) in headers {
        map.insert(name, value);
    }
    answer
}

/// An [`Answer`] as axum's response, for `/mcp` requests that come through the router.
pub(super) fn into_response(answer: Answer) -> axum::response::Response {
    answer.map(|body| match body {
        AnswerBody::Frame(frame) => Body::from(frame.unwrap_or_default()),
        AnswerBody::Axum(body) => body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn a_frame_is_sent_whole_with_its_length() {
        let answer = json(StatusCode::OK, b"{\"a\":1}".to_vec(), None);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let body = answer.into_body();
        assert_eq!(body.size_hint().exact(), Some(7));
        assert!(!body.is_end_stream());
        let sent = body.collect().await.unwrap().to_bytes();
        assert_eq!(sent, "{\"a\":1}");

        // Through the router it is the same answer in axum's body.
        let routed = into_response(json(
            StatusCode::BAD_REQUEST,
            b"[]".to_vec(),
            Some(HeaderValue::from_static("gzip")),
        ));
        assert_eq!(routed.status(), StatusCode::BAD_REQUEST);
        assert_eq!(routed.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(routed.into_body().collect().await.unwrap().to_bytes(), "[]");

        // A finished event stream goes the same way, with the event-stream headers.
        let stream = events(b"data: \n\n".to_vec());
        assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(stream.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(stream.into_body().size_hint().exact(), Some(8));
    }

    #[tokio::test]
    async fn other_bodies_pass_through() {
        let answer = (StatusCode::ACCEPTED, "text").into_answer();
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
        let mut body = answer.into_body();
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
