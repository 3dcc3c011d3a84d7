//! Owns the serving side of session forwarding (docs/cluster.md, "Sessions through any node"):
//! the forwarder actor each clustered node runs beside its HTTP listener, in the process group
//! `erlmcp_http_forward:<node name>` that ractor_cluster mirrors on every node. It serves what
//! other nodes forward ([`super::forward`]) through the same MCP endpoint as this node's own
//! clients' requests, never forwarding again, and sends back the status, the headers and the
//! body read whole within the caller's deadline and [`MAX_ANSWER_BYTES`] (else 502 with a
//! JSON-RPC error) — or, for an SSE answer, a stream held here for the caller to pull
//! ([`super::forward_stream`]; 503 past its cap).

use super::answer;
use super::forward::{
    FORWARD_GROUP, ForwardMsg, ForwardedAnswer, ForwardedRequest, MAX_ANSWER_BYTES,
};
use super::forward_stream::{ForwardedStreams, MAX_STREAMS};
use super::{HttpState, RequestHeaders, mcp_endpoint};
use crate::protocol::jsonrpc::{self, RpcError};
use axum::http::{HeaderName, Method, StatusCode, header};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::Arc;
use std::time::Duration;

/// Serves a forwarded request here, through the MCP endpoint, and buffers its answer (or holds
/// it in `streams`, when it is an SSE stream).
async fn serve(
    state: &Arc<HttpState>,
    streams: &ForwardedStreams,
    request: ForwardedRequest,
) -> ForwardedAnswer {
    let unreadable = || ForwardedAnswer {
        status: StatusCode::BAD_GATEWAY.as_u16(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: jsonrpc::encode_error(
            None,
            &RpcError::new(-32000, "the forwarded request could not be read".to_owned()),
        ),
        stream: 0,
    };
    let Ok(method) = Method::from_bytes(request.method.as_bytes()) else {
        return unreadable();
    };
    if !request.readable {
        return unreadable();
    }
    let mut read = RequestHeaders::from_pairs(
        request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    read.peer = request.peer.as_deref().and_then(|peer| peer.parse().ok());
    let answer = mcp_endpoint::answer_here(state, &method, read, &request.body).await;
    let (head, body) = answer.into_parts();
    let body = match body {
        answer::AnswerBody::Axum(body) if is_event_stream(&head) => body,
        body => {
            // Sent back a little before the caller gives up, so that it gets what there is.
            let wait = Duration::from_millis(request.wait_ms.saturating_sub(request.wait_ms / 10));
            return buffered(head, body, wait).await;
        }
    };
    match streams.open(body) {
        Some(stream) => ForwardedAnswer {
            status: head.status().as_u16(),
            headers: relayed_headers(&head),
            body: Vec::new(),
            stream,
        },
        None => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this session's node holds {MAX_STREAMS} streams for other nodes: send the request to it directly"
            ),
        ),
    }
}

/// Whether an answer is an SSE stream.
fn is_event_stream(head: &answer::AnswerHead) -> bool {
    head.known().chain(head.others()).any(|(name, value)| {
        *name == header::CONTENT_TYPE && value.as_bytes().starts_with(b"text/event-stream")
    })
}

/// An error answer: `status`, with a JSON-RPC error (-32000) saying why.
fn refused(status: StatusCode, why: String) -> ForwardedAnswer {
    ForwardedAnswer {
        status: status.as_u16(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: jsonrpc::encode_error(None, &RpcError::new(-32000, why)),
        stream: 0,
    }
}

/// An answer's headers as they cross, its framing headers left out.
fn relayed_headers(head: &answer::AnswerHead) -> Vec<(String, String)> {
    head.known()
        .chain(head.others())
        .filter(|(name, _)| !is_framing(name))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// An answer with its body read whole, within `wait` and [`MAX_ANSWER_BYTES`].
async fn buffered(
    head: answer::AnswerHead,
    body: answer::AnswerBody,
    wait: Duration,
) -> ForwardedAnswer {
    let body = match body {
        answer::AnswerBody::Frame(frame) => Ok(frame.unwrap_or_default()),
        answer::AnswerBody::Axum(body) => {
            match tokio::time::timeout(wait, axum::body::to_bytes(body, MAX_ANSWER_BYTES)).await {
                Ok(Ok(bytes)) => Ok(bytes.to_vec()),
                Ok(Err(_)) => Err(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes, the most forwarded"
                )),
                Err(_) => Err(format!("the answer did not end within {wait:?}")),
            }
        }
    };
    match body {
        Ok(body) => ForwardedAnswer {
            status: head.status().as_u16(),
            headers: relayed_headers(&head),
            body,
            stream: 0,
        },
        Err(why) => refused(StatusCode::BAD_GATEWAY, why),
    }
}

/// Headers about the connection or the body's framing: each lane writes its own.
fn is_framing(name: &HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::DATE,
    ]
    .contains(name)
}

/// The forwarder actor: serves what other nodes forward to this one.
pub(crate) struct Forwarder;

impl Actor for Forwarder {
    type Msg = ForwardMsg;
    /// The transport's state, the group joined, the session replicator (its tasks stop with
    /// this actor), and the streams held for other nodes with their sweeper.
    type State = (
        Arc<HttpState>,
        String,
        Option<super::replica::Replicator>,
        (Arc<ForwardedStreams>, tokio::task::JoinHandle<()>),
        Vec<u8>,
    );
    /// The transport's state, the node's name, and the HTTP listener's address.
    type Arguments = (Arc<HttpState>, String, std::net::SocketAddr);

    async fn pre_start(
        &self,
        myself: ActorRef<ForwardMsg>,
        (state, node, local): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let group = format!("{FORWARD_GROUP}{node}");
        ractor::pg::join(group.clone(), vec![myself.get_cell()]);
        let replicator = super::replica::Replicator::start(&state);
        let lane_address = super::forward_lane::advertised(&state, local);
        Ok((state, group, replicator, held_streams(), lane_address))
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ForwardMsg>,
        (_, group, _, (_, sweeper), _): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        sweeper.abort();
        ractor::pg::leave(group.clone(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<ForwardMsg>,
        message: ForwardMsg,
        (state, _, _, (streams, _), lane_address): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ForwardMsg::Forward(request, reply) => {
                // Each on its own task: a slow answer holds up no other.
                let (state, streams) = (Arc::clone(state), Arc::clone(streams));
                tokio::spawn(async move {
                    let answer = serve(&state, &streams, request).await;
                    let _ = reply.send(answer);
                });
            }
            ForwardMsg::Pull(pull, reply) => {
                let streams = Arc::clone(streams);
                tokio::spawn(async move {
                    let _ = reply.send(streams.pull(pull).await);
                });
            }
            ForwardMsg::Close(stream) => streams.close(stream.id),
            ForwardMsg::Replicate(batch, reply) => {
                let state = Arc::clone(state);
                tokio::spawn(async move {
                    let kept = super::replica::keep_batch(&state, batch).await;
                    let _ = reply.send(kept);
                });
            }
            ForwardMsg::LaneAddress(reply) => {
                let _ = reply.send(lane_address.clone());
            }
            ForwardMsg::Handoff(batch, reply) => {
                let state = Arc::clone(state);
                tokio::spawn(async move {
                    let taken = super::replica::adopt_batch(&state, batch).await;
                    let _ = reply.send(taken);
                });
            }
        }
        Ok(())
    }
}

/// The table of streams held for other nodes, and its sweeper: a stream not pulled for three
/// forward timeouts (at least 10 s) is dropped.
fn held_streams() -> (Arc<ForwardedStreams>, tokio::task::JoinHandle<()>) {
    let timeout = crate::cluster::forward_timeout();
    let idle = (timeout * 3).max(Duration::from_secs(10));
    let streams = Arc::new(ForwardedStreams::new(idle));
    let swept = Arc::clone(&streams);
    let sweeper = tokio::spawn(async move {
        let mut every = tokio::time::interval(idle / 2);
        loop {
            every.tick().await;
            swept.sweep();
        }
    });
    (streams, sweeper)
}

/// Starts this node's forwarder, linked to `listener`, when the node runs clustered.
pub(super) async fn start_forwarder(
    state: &Arc<HttpState>,
    local: std::net::SocketAddr,
    listener: ractor::ActorCell,
) -> Result<Option<ActorRef<ForwardMsg>>, ActorProcessingErr> {
    let Some(view) = crate::cluster::current() else {
        return Ok(None);
    };
    let (forwarder, _) = Actor::spawn_linked(
        None,
        Forwarder,
        (Arc::clone(state), view.name().to_owned(), local),
        listener,
    )
    .await?;
    Ok(Some(forwarder))
}

#[cfg(test)]
mod tests {
    use super::super::answer::{Answer, IntoAnswer as _};
    use super::*;
    use axum::http::HeaderValue;

    async fn status_and_text(answer: Answer) -> (StatusCode, String) {
        let (head, body) = answer.into_parts();
        let body = match body {
            answer::AnswerBody::Frame(frame) => frame.unwrap_or_default(),
            answer::AnswerBody::Axum(body) => axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        };
        (head.status(), String::from_utf8(body).unwrap())
    }

    #[tokio::test]
    async fn an_answer_is_buffered_whole_without_its_framing_and_refused_past_the_cap() {
        let stream = (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CONTENT_LENGTH, "6"),
            ],
            axum::body::Body::from("data: 1\n\n"),
        )
            .into_answer();
        let (head, body) = stream.into_parts();
        let kept = buffered(head, body, Duration::from_secs(1)).await;
        assert_eq!(kept.status, 200);
        assert_eq!(kept.body, b"data: 1\n\n");
        assert_eq!(
            kept.headers,
            vec![("content-type".to_owned(), "text/event-stream".to_owned())]
        );
        let huge = (StatusCode::OK, vec![b'x'; MAX_ANSWER_BYTES + 1]).into_answer();
        let (head, body) = huge.into_parts();
        let refused = buffered(head, body, Duration::from_secs(1)).await;
        assert_eq!(refused.status, 502);
        assert!(String::from_utf8_lossy(&refused.body).contains("larger than"));
        // Relayed back: the same status, headers and body.
        let (status, text) = status_and_text(answer::relayed(
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            )]
            .into_iter(),
            answer::AnswerBody::Frame(Some(b"data: 1\n\n".to_vec())),
        ))
        .await;
        assert_eq!((status, text.as_str()), (StatusCode::OK, "data: 1\n\n"));
    }
}
