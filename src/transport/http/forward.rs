//! Owns session forwarding across the cluster (docs/cluster.md, "Sessions through any node"): a
//! Streamable HTTP session belongs to the node that made it — its `Mcp-Session-Id` is drawn
//! until the ring names that node as owner — and a request for a session this node does not hold
//! and the ring gives to another member goes to that member's forwarder over ractor_cluster, which
//! serves it through the same MCP endpoint as its own clients' requests and sends back the
//! status, headers and body.
//!
//! A task is placed the same way: its id is drawn for the node that makes it, and a stateless
//! `tasks/get`, `tasks/update` or `tasks/cancel` (the task id in `Mcp-Name`) for a task this node
//! does not keep and the ring gives to another member is forwarded to it alike. In a session a
//! task request follows its session (the session's node made its tasks).
//!
//! Each node's forwarder actor ([`super::forwarder`], spawned by the HTTP listener, linked to
//! it) is in the process group `erlmcp_http_forward:<node name>`, which ractor_cluster mirrors on
//! every node, so a member's forwarder is found by its name without the name registry (remote
//! actors are not in it). A forward is one RPC (`ForwardMsg::Forward`) whose request and answer are bincode inside
//! ractor_cluster's frames: no wire protocol of our own.
//!
//! Bounds: the RPC has `cluster.forward_timeout` (504 past it); an answer that does not stream is
//! buffered whole on the owner and refused past [`MAX_ANSWER_BYTES`] (502); a request body is already capped by `max_message_size` where it
//! arrived. An owner that cannot be reached gets 502 (the call failed) or 503 (no forwarder of
//! it is known), each with a JSON-RPC error. An SSE answer — a GET stream, a POST whose answer
//! streams — is not buffered: the owner holds it and this node pulls it as it comes
//! ([`super::forward_stream`]). Stateless 2026-07-28 requests carry no session and are served
//! where they arrive, but for the task requests above.

use super::answer::{self, Answer, IntoAnswer as _};
use super::forward_stream::{Pull, Pulled, StreamId};
use super::{HttpState, RequestHeaders};
use crate::locks::lock;
use crate::log_limit::LogLimiter;
use crate::protocol::jsonrpc::{self, RpcError};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use ractor::RpcReplyPort;
use std::sync::Arc;
use std::time::Duration;

/// The process group of a node's forwarder: this prefix, then the node's cluster name.
pub(super) const FORWARD_GROUP: &str = "erlmcp_http_forward:";

/// An answer larger than this is not sent back (ractor_cluster refuses frames over 16 MiB).
pub(crate) const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// What a forwarder is sent.
#[derive(ractor_cluster::RactorClusterMessage)]
pub(crate) enum ForwardMsg {
    /// Serve a request as if it had arrived here, and answer with what the endpoint answers.
    #[rpc]
    Forward(ForwardedRequest, RpcReplyPort<ForwardedAnswer>),
    /// Keep these session records as replicas (`super::replica`); answers whether they were.
    #[rpc]
    Replicate(ReplicaBatch, RpcReplyPort<bool>),
    /// The next bytes of a streamed answer held here ([`super::forward_stream`]).
    #[rpc]
    Pull(Pull, RpcReplyPort<Pulled>),
    /// A streamed answer held here is no longer wanted.
    Close(StreamId),
    /// Take these sessions over from the sender, which held them but the ring now gives them
    /// to this node (`super::replica`, a heal or a join): each replaces this node's own copy, if
    /// any; answers whether all were taken.
    #[rpc]
    Handoff(ReplicaBatch, RpcReplyPort<bool>),
    /// This node's HTTP address for the forwarding lane ([`super::forward_lane`]), as text;
    /// empty when it has none.
    #[rpc]
    LaneAddress(RpcReplyPort<Vec<u8>>),
}

/// A request as it travels to the session's owner: its method, the headers the endpoint reads,
/// its body, the client's address, and how long the caller waits.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct ForwardedRequest {
    pub(super) method: String,
    /// (lower-case name, value).
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) peer: Option<String>,
    /// How long the caller waits for the answer, in ms (the owner stops buffering before).
    pub(super) wait_ms: u64,
    /// False when the bytes received could not be read (then nothing else is set).
    pub(super) readable: bool,
}

/// The owner's answer: status, headers (framing headers left out) and the whole body — or, for
/// an SSE answer, the id of the stream held there to pull the body from.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct ForwardedAnswer {
    /// 0 when the bytes received could not be read.
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    /// 0: the body is whole; else the stream to pull ([`super::forward_stream`]).
    pub(super) stream: u64,
}

// Bytes that cannot be read give a value marked unreadable: a request or an answer is answered
// with 502, a batch of replicas refused.
crate::cluster::bincode_on_the_wire!(ForwardedRequest, ForwardedAnswer, ReplicaBatch);

/// Session records on their way: (session id, record; `None`: forgotten).
pub(super) type Records = Vec<(String, Option<Vec<u8>>)>;

/// A batch of records for one replica, as it crosses the cluster.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct ReplicaBatch {
    /// The sending node.
    pub(super) from: String,
    pub(super) records: Records,
    /// False when the bytes received could not be read.
    pub(super) readable: bool,
}

/// A session id the ring gives to this node, when it runs clustered (else any random id).
pub(super) fn owned_session_id() -> Result<String, RpcError> {
    crate::cluster::owned_key(super::session_id)
}

/// A random session id that `ring` gives to `name` (the last of [`crate::cluster::MAX_DRAWS`] draws when none
/// was).
fn draw_owned_id(ring: &crate::cluster::ring::Ring, name: &str) -> Result<String, RpcError> {
    ring.draw_owned(name, crate::cluster::MAX_DRAWS, super::session_id)
}

/// `http_owned_session_id` for `erlmcp bench core`: drawing a session id that the ring of three
/// members gives to this node (three draws on average), beside drawing one random id (what a
/// node outside a cluster does).
pub(crate) fn bench_pairs() -> Vec<crate::core_bench::pair::Pair> {
    use std::hint::black_box;
    let ring = Arc::new(crate::cluster::ring::Ring::new(
        ["a@10.0.0.1", "b@10.0.0.2", "c@10.0.0.3"],
        100,
    ));
    let owned = Arc::new(move || {
        let _ = black_box(draw_owned_id(&ring, "b@10.0.0.2"));
    });
    let random = Arc::new(|| {
        let _ = black_box(super::session_id());
    });
    vec![crate::core_bench::pair::Pair {
        name: "http_owned_session_id",
        ours: ("an id the ring gives this node (3 members)", owned),
        baseline: ("one random id (no cluster)", random),
    }]
}

/// 404 for a session this node does not know. In a cluster the session may have been on a
/// member that left without a replica of it reaching this node (docs/cluster.md), so the client
/// must initialize again, and the message says so.
pub(super) fn unknown_session() -> axum::response::Response {
    let message = if crate::cluster::current().is_some() {
        "unknown or expired session (or its node left the cluster: initialize again)"
    } else {
        "unknown or expired session"
    };
    super::plain(StatusCode::NOT_FOUND, message)
}

/// The member a request must go to: it names a session this node does not hold, and the ring
/// gives that session to another member. `None`: served here.
pub(super) fn owner_elsewhere(state: &HttpState, read: &RequestHeaders<'_>) -> Option<String> {
    let id = read.session_id?;
    // Clustered first: a node alone pays no second look at its session table.
    let owner = ring_owner_elsewhere(id)?;
    (lock(&state.sessions).get(id).is_none()).then_some(owner)
}

/// The member the ring gives session `id` to, when the node runs clustered and it is not this
/// node (whether this node holds the session is not asked).
pub(super) fn ring_owner_elsewhere(id: &str) -> Option<String> {
    let view = crate::cluster::current()?;
    view.owner(id.as_bytes())
        .filter(|owner| owner != view.name())
}

/// The member a stateless task request (`tasks/get`, `tasks/update`, `tasks/cancel`, its task
/// id in `Mcp-Name`) must go to: this node does not keep the task and the ring gives its id to
/// another member (task ids are drawn for their maker, as session ids are). `None`: served here
/// (a request whose routing headers are repeated is refused here, as on a single node).
pub(super) fn task_owner_elsewhere(method: &Method, read: &RequestHeaders<'_>) -> Option<String> {
    crate::cluster::current()?;
    let headers = &read.routing.headers;
    if *method != Method::POST
        || read.repeated_routing.is_some()
        || !matches!(
            headers.method,
            Some("tasks/get" | "tasks/update" | "tasks/cancel")
        )
    {
        return None;
    }
    let id = headers.name.filter(|id| !id.is_empty())?;
    if crate::tasks::current().is_some_and(|tasks| tasks.holds(id)) {
        return None;
    }
    ring_owner_elsewhere(id)
}

/// What a forwarded request names: its owner is the session's node, or the task's.
#[derive(Debug, Clone, Copy)]
pub(super) enum Named {
    Session,
    Task,
}

impl Named {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Task => "task",
        }
    }
}

/// Sends the request to `owner`'s forwarder over the cluster RPC and answers with what it
/// answered.
pub(super) async fn forward(
    owner: &str,
    named: Named,
    method: &Method,
    read: &RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    let what = named.as_str();
    let wait = crate::cluster::forward_timeout();
    let Some(target) = crate::cluster::member_actor::<ForwardMsg>(FORWARD_GROUP, owner) else {
        log_unreachable(what, owner, "no forwarder of it is known");
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{what}'s node {owner} is not reachable"),
        );
    };
    let request = ForwardedRequest {
        method: method.as_str().to_owned(),
        headers: forwarded_headers(read),
        body: body.to_vec(),
        peer: read.peer.map(|peer| peer.to_string()),
        wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        readable: true,
    };
    let sent_at = std::time::Instant::now();
    let result = target
        .call(|port| ForwardMsg::Forward(request, port), Some(wait))
        .await;
    // ractor_cluster's remote actor gives its own reply port the same deadline and drops it when
    // it passes: a call that failed at the deadline timed out.
    let timed_out = sent_at.elapsed() >= wait.saturating_sub(wait / 10);
    match result {
        Ok(ractor::rpc::CallResult::Success(answer)) => relayed(what, owner, answer, &target, wait),
        Ok(ractor::rpc::CallResult::Timeout)
        | Ok(ractor::rpc::CallResult::SenderError)
        | Err(_)
            if timed_out =>
        {
            no_answer_in_time(what, owner, wait)
        }
        Ok(_) | Err(_) => failed_call(what, owner, "the call failed"),
    }
}

/// 504 for a forward the owner did not answer within `wait` (logged, bounded).
pub(super) fn no_answer_in_time(what: &str, owner: &str, wait: Duration) -> Answer {
    log_unreachable(what, owner, "no answer within cluster.forward_timeout");
    refusal(
        StatusCode::GATEWAY_TIMEOUT,
        &format!("{what}'s node {owner} did not answer within {wait:?}"),
    )
}

/// 502 for a forward whose call or connection to the owner failed (`why`, logged, bounded).
pub(super) fn failed_call(what: &str, owner: &str, why: &str) -> Answer {
    log_unreachable(what, owner, why);
    refusal(
        StatusCode::BAD_GATEWAY,
        &format!("{what}'s node {owner} is not reachable"),
    )
}

/// The headers the MCP endpoint reads, as (lower-case name, value) pairs.
fn forwarded_headers(read: &RequestHeaders<'_>) -> Vec<(String, String)> {
    forwarded_header_refs(read)
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The headers the MCP endpoint reads, those the request has, as (lower-case name, value).
pub(super) fn forwarded_header_refs<'a>(
    read: &RequestHeaders<'a>,
) -> impl Iterator<Item = (&'static str, &'a str)> {
    let text = [
        ("host", read.host),
        ("origin", read.origin),
        ("authorization", read.authorization),
        ("content-type", read.content_type),
        ("accept", read.accept),
        ("mcp-session-id", read.session_id),
        ("last-event-id", read.last_event_id),
        (
            "mcp-protocol-version",
            read.routing.headers.protocol_version,
        ),
        ("mcp-method", read.routing.headers.method),
        ("mcp-name", read.routing.headers.name),
        (
            "accept-encoding",
            read.accept_encoding
                .and_then(|bytes| std::str::from_utf8(bytes).ok()),
        ),
    ];
    text.into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
}

/// The owner's answer as this node's (a stream's body pulled from `target` as it comes, each
/// pull within `wait`).
fn relayed(
    what: &str,
    owner: &str,
    answer: ForwardedAnswer,
    target: &ractor::ActorRef<ForwardMsg>,
    wait: Duration,
) -> Answer {
    let Ok(status) = StatusCode::from_u16(answer.status) else {
        log_unreachable(what, owner, "its answer could not be read");
        return refusal(
            StatusCode::BAD_GATEWAY,
            &format!("{what}'s node {owner} sent an answer that could not be read"),
        );
    };
    let headers = answer.headers.into_iter().filter_map(|(name, value)| {
        Some((
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(&value).ok()?,
        ))
    });
    let body = match answer.stream {
        0 => answer::AnswerBody::Frame(Some(answer.body)),
        stream => answer::AnswerBody::Axum(relay_stream(target, owner, stream, wait)),
    };
    answer::relayed(status, headers, body)
}

/// The body of stream `stream` held by `target` (`owner`'s forwarder): what each
/// pull brings (each waiting up to half of `wait` on the owner, the call up to `wait`); the owner
/// is told once the body is dropped.
fn relay_stream(
    target: &ractor::ActorRef<ForwardMsg>,
    owner: &str,
    stream: u64,
    wait: Duration,
) -> axum::body::Body {
    let wait_ms = u64::try_from((wait / 2).as_millis()).unwrap_or(u64::MAX);
    let (puller, closer, owner) = (target.clone(), target.clone(), owner.to_owned());
    let pull = move || {
        let (target, owner) = (puller.clone(), owner.clone());
        async move {
            let pulled = target
                .call(
                    |port| ForwardMsg::Pull(Pull { stream, wait_ms }, port),
                    Some(wait),
                )
                .await;
            match pulled {
                Ok(ractor::rpc::CallResult::Success(pulled)) => Some(pulled),
                _ => {
                    tracing::debug!(%owner, stream, "cluster: a relayed stream ended: its node stopped answering");
                    None
                }
            }
        }
    };
    let close = Box::new(move || {
        let _ = closer.cast(ForwardMsg::Close(StreamId { id: stream }));
    });
    super::forward_stream::relay(pull, close)
}

/// A refusal with a JSON-RPC error (-32000) saying why.
pub(super) fn refusal(status: StatusCode, message: &str) -> Answer {
    let body = jsonrpc::encode_error(None, &RpcError::new(-32000, message.to_owned()));
    (
        status,
        [(header::CONTENT_TYPE, super::APPLICATION_JSON)],
        body,
    )
        .into_answer()
}

/// Logs, at most once a second with a count, that a session's or task's owner could not be
/// reached.
pub(super) fn log_unreachable(what: &str, owner: &str, why: &str) {
    static LIMIT: LogLimiter = LogLimiter::per_second();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            suppressed,
            "cluster: a request for a {what} of node {owner} was not forwarded: {why}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable as _;

    #[test]
    fn a_drawn_session_id_is_owned_by_the_node_that_drew_it() {
        let ring = crate::cluster::ring::Ring::new(["a@h", "b@h", "c@h"], 100);
        for name in ["a@h", "b@h", "c@h"] {
            for _ in 0..50 {
                let id = draw_owned_id(&ring, name).unwrap();
                assert_eq!(id.len(), 32);
                assert_eq!(ring.owner(id.as_bytes()), Some(name));
            }
        }
    }

    #[test]
    fn a_request_and_an_answer_cross_as_bytes_and_garbage_reads_as_unreadable() {
        let request = ForwardedRequest {
            method: "POST".into(),
            headers: vec![("mcp-session-id".into(), "abc".into())],
            body: b"{}".to_vec(),
            peer: Some("127.0.0.1".into()),
            wait_ms: 1000,
            readable: true,
        };
        let back = ForwardedRequest::from_bytes(request.into_bytes());
        assert_eq!(back.method, "POST");
        assert_eq!(back.headers, vec![("mcp-session-id".into(), "abc".into())]);
        assert_eq!(back.body, b"{}");
        assert!(back.readable);
        assert!(!ForwardedRequest::from_bytes(vec![0xff; 3]).readable);
        assert_eq!(ForwardedAnswer::from_bytes(vec![0xff; 3]).status, 0);
    }

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
    async fn an_owner_without_a_known_forwarder_gets_503_for_a_post_and_a_get() {
        let read = RequestHeaders {
            session_id: Some("abc"),
            ..RequestHeaders::default()
        };
        let (status, text) = status_and_text(
            forward(
                "nobody@127.0.0.1",
                Named::Session,
                &Method::POST,
                &read,
                b"{}",
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("\"code\":-32000"), "{text}");
        assert!(text.contains("nobody@127.0.0.1 is not reachable"), "{text}");
        // A GET goes the same way (streamed when its owner answers).
        let (status, text) = status_and_text(
            forward("nobody@127.0.0.1", Named::Task, &Method::GET, &read, b"").await,
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(text.contains("nobody@127.0.0.1 is not reachable"), "{text}");
    }
}
