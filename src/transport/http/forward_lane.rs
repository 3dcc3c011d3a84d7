//! Owns the forwarding lane (docs/cluster.md, "Sessions through any node"): a request for a
//! session (or task) another member owns goes to that member's own HTTP listener as a plain
//! HTTP/1.1 request over one of a few kept-alive connections, rather than through
//! ractor_cluster's actors (a forward cost ~18 task hand-offs there, docs/performance.md).
//!
//! The owner authenticates the client itself: the request carries the client's own headers
//! (`Authorization`, `Mcp-Session-Id`, …) and body, plus a mark, `x-erlmcp-forwarded:
//! <owner>;<client address>;<unix seconds>;<HMAC>`, keyed by a key derived from the cluster
//! cookie. The owner trusts a mark whose HMAC checks, that names it and is at most
//! [`MARK_WINDOW_SECS`] old: it takes the client address from it (rate limits, logs) and serves
//! the request here, never forwarding it again. A mark that does not check (a client's forgery)
//! is dropped and the request is a client's like any other; one that names another node is
//! answered 421 (the sender's address of the owner was stale: it asks again and takes the RPC).
//!
//! Where the owner's HTTP address comes from: asked once of its forwarder over the cluster RPC
//! and kept; empty when the owner runs TLS on its HTTP listener or `cluster.forward_lane =
//! "rpc"`. The lane is left for the RPC ([`super::forward`]) when it cannot be used before the
//! request is sent: no address (yet), a connection refused, a kept connection found closed. GET
//! streams always take the RPC; a POST whose answer is an SSE stream is relayed as it comes, its
//! connection not kept afterwards. Bounds: `cluster.forward_lane_connections` per owner (a
//! request past them waits for one), `cluster.forward_timeout` on each forward (the answer's
//! head, and a whole answer's body), [`MAX_ANSWER_BYTES`] on a buffered answer.

use super::answer::{self, Answer, AnswerBody};
use super::forward::{
    MAX_ANSWER_BYTES, Named, failed_call, log_unreachable, no_answer_in_time, refusal,
};
use super::{HttpState, RequestHeaders};
use crate::cluster::forwards::FORWARDS;
use crate::locks::lock;
use axum::http::{HeaderValue, Method, StatusCode, header};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

use super::request_headers::FORWARDED_MARK as MARK;
/// A mark older (or newer) than this is not trusted: a mark seen on the wire between nodes is
/// worth little for long.
const MARK_WINDOW_SECS: u64 = 120;
/// An owner whose address could not be had or used is asked again after this.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(2);

type HmacSha256 = Hmac<Sha256>;

mod wire;
pub(crate) use wire::{Framing as LaneFraming, fuzz_answer};

/// The HMAC of a mark's text under `key`.
fn mac(key: &[u8; 32], text: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(text.as_bytes());
    mac
}

/// The mark for a request forwarded to `owner` on behalf of a client at `peer`, at `secs`
/// (Unix seconds).
fn mark(key: &[u8; 32], owner: &str, peer: Option<IpAddr>, secs: u64) -> String {
    use base64::Engine as _;
    let peer = peer.map_or_else(|| "-".to_owned(), |peer| peer.to_string());
    let text = format!("{owner};{peer};{secs}");
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(mac(key, &text).finalize().into_bytes());
    format!("{text};{tag}")
}

/// What a mark says, checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Judged {
    /// Made by a member for this node: the client's address as it says.
    Trusted(Option<IpAddr>),
    /// Made by a member for another node.
    Misdirected,
    /// Not made with the cluster's key, too old, or not a mark.
    Forged,
}

/// Checks `mark` for node `me` at `now` (Unix seconds).
fn judge_with(key: &[u8; 32], me: &str, mark: &str, now: u64) -> Judged {
    use base64::Engine as _;
    let Some((text, tag)) = mark.rsplit_once(';') else {
        return Judged::Forged;
    };
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
        return Judged::Forged;
    };
    if mac(key, text).verify_slice(&tag).is_err() {
        return Judged::Forged;
    }
    let mut fields = text.split(';');
    let (Some(owner), Some(peer), Some(secs), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Judged::Forged;
    };
    let Ok(secs) = secs.parse::<u64>() else {
        return Judged::Forged;
    };
    if secs.abs_diff(now) > MARK_WINDOW_SECS {
        return Judged::Forged;
    }
    let peer = match peer {
        "-" => None,
        peer => match peer.parse() {
            Ok(peer) => Some(peer),
            Err(_) => return Judged::Forged,
        },
    };
    if owner != me {
        return Judged::Misdirected;
    }
    Judged::Trusted(peer)
}

/// Checks a request's mark against this node's cluster (a node outside one trusts none).
pub(super) fn judge(mark: &str) -> Judged {
    let Some(view) = crate::cluster::current() else {
        return Judged::Forged;
    };
    let Some(lane) = view.lane() else {
        return Judged::Forged;
    };
    judge_with(&lane.key, view.name(), mark, crate::clock::wall_ms() / 1000)
}

/// Whether a request carries a trusted mark (its rate was charged where it arrived).
pub(super) fn is_trusted(read: &RequestHeaders<'_>) -> bool {
    read.forwarded
        .is_some_and(|mark| matches!(judge(mark), Judged::Trusted(_)))
}

/// Logs, at most once a second with a count, a mark that did not check.
pub(super) fn log_forged(peer: Option<IpAddr>) {
    static LIMIT: crate::log_limit::LogLimiter = crate::log_limit::LogLimiter::per_second();
    if let Some(suppressed) = LIMIT.allow() {
        tracing::warn!(
            suppressed,
            peer = ?peer,
            "cluster: a request carried an {MARK} mark that does not check: ignored (served as a client's)"
        );
    }
}

/// Where each other member's lane goes, by member name.
#[derive(Default)]
pub(crate) struct Lanes {
    owners: Mutex<HashMap<String, Arc<OwnerLane>>>,
}

/// The lane to one member.
struct OwnerLane {
    address: Mutex<Address>,
    /// Connections kept alive, not in use.
    idle: Mutex<Vec<wire::Conn>>,
    /// One per connection open (in use or idle).
    permits: Arc<Semaphore>,
}

/// What is known of a member's HTTP address.
#[derive(Clone, Copy)]
enum Address {
    /// Not asked yet.
    Unknown,
    /// Being asked now (requests meanwhile take the RPC).
    Asking,
    Known(SocketAddr),
    /// None it could give, or it could not be used: asked again from then.
    Absent(Instant),
}

impl Lanes {
    fn to(&self, owner: &str, connections: usize) -> Arc<OwnerLane> {
        let mut owners = lock(&self.owners);
        if let Some(lane) = owners.get(owner) {
            return Arc::clone(lane);
        }
        let lane = Arc::new(OwnerLane {
            address: Mutex::new(Address::Unknown),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(connections)),
        });
        owners.insert(owner.to_owned(), Arc::clone(&lane));
        lane
    }
}

impl OwnerLane {
    /// The owner's HTTP address, asked of it when not known (`None`: take the RPC).
    async fn address(&self, owner: &str, wait: Duration) -> Option<SocketAddr> {
        {
            let mut address = lock(&self.address);
            match *address {
                Address::Known(addr) => return Some(addr),
                Address::Asking => return None,
                Address::Absent(since) if since.elapsed() < ASK_AGAIN_AFTER => return None,
                Address::Unknown | Address::Absent(_) => *address = Address::Asking,
            }
        }
        // A request dropped while asking (its client gone) leaves the address to be asked
        // again, not `Asking` for ever (the lane shut to that member).
        let asking = StillAsking(&self.address);
        let asked = tokio::time::timeout(wait, ask_address(owner, wait))
            .await
            .ok()
            .flatten();
        *lock(&self.address) =
            asked.map_or_else(|| Address::Absent(Instant::now()), Address::Known);
        drop(asking);
        asked
    }

    /// The address could not be used: asked again later, its kept connections dropped.
    fn forget(&self) {
        *lock(&self.address) = Address::Absent(Instant::now());
        lock(&self.idle).clear();
    }

    fn take_idle(&self) -> Option<wire::Conn> {
        let mut idle = lock(&self.idle);
        while let Some(conn) = idle.pop() {
            if !conn.is_stale() {
                return Some(conn);
            }
        }
        None
    }

    fn keep(&self, conn: wire::Conn) {
        lock(&self.idle).push(conn);
    }
}

/// Puts an address still being asked back to unknown when its asking is dropped.
struct StillAsking<'a>(&'a Mutex<Address>);

impl Drop for StillAsking<'_> {
    fn drop(&mut self) {
        let mut address = lock(self.0);
        if matches!(*address, Address::Asking) {
            *address = Address::Unknown;
        }
    }
}

/// Asks `owner`'s forwarder for its HTTP address (empty: it has no lane).
async fn ask_address(owner: &str, wait: Duration) -> Option<SocketAddr> {
    use super::forward::{FORWARD_GROUP, ForwardMsg};
    let target = crate::cluster::member_actor::<ForwardMsg>(FORWARD_GROUP, owner)?;
    let answer = target
        .call(ForwardMsg::LaneAddress, Some(wait))
        .await
        .ok()?;
    let ractor::rpc::CallResult::Success(bytes) = answer else {
        return None;
    };
    let text = String::from_utf8(bytes).ok().filter(|t| !t.is_empty())?;
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    // A host name: resolved once, here.
    tokio::net::lookup_host(text.as_str()).await.ok()?.next()
}

/// What this node answers when asked its lane address: its HTTP listener's (`local`), the
/// cluster's advertised host in place of an unspecified IP; empty without a lane (TLS on the
/// HTTP listener, or `cluster.forward_lane = "rpc"`).
pub(super) fn advertised(state: &HttpState, local: SocketAddr) -> Vec<u8> {
    let Some(view) = crate::cluster::current() else {
        return Vec::new();
    };
    if view.lane().is_none() || state.ctx.tls.is_some() {
        return Vec::new();
    }
    if !local.ip().is_unspecified() {
        return local.to_string().into_bytes();
    }
    let host = view
        .members()
        .first()
        .and_then(|me| me.address.rsplit_once(':').map(|(host, _)| host.to_owned()));
    match host {
        Some(host) => format!("{host}:{}", local.port()).into_bytes(),
        None => Vec::new(),
    }
}

/// Sends the request to `owner` and answers with what it answered: over the lane when it takes
/// it, else over the cluster RPC ([`super::forward::forward`]).
pub(super) async fn forward_from(
    state: &HttpState,
    owner: &str,
    named: Named,
    method: &Method,
    read: &RequestHeaders<'_>,
    body: &[u8],
) -> Answer {
    if let Some(answer) = send(state, owner, named, method, read, body).await {
        return answer;
    }
    FORWARDS.count_rpc();
    super::forward::forward(owner, named, method, read, body).await
}

/// Sends a request to `owner` over the lane and answers with what it answered; `None` when the
/// lane could not take it before it was sent (then the RPC does).
async fn send(
    state: &HttpState,
    owner: &str,
    named: Named,
    method: &Method,
    read: &RequestHeaders<'_>,
    body: &[u8],
) -> Option<Answer> {
    let view = crate::cluster::current()?;
    let settings = view.lane()?;
    if *method != Method::POST && *method != Method::DELETE {
        return None;
    }
    let wait = view.forward_timeout();
    let deadline = tokio::time::Instant::now() + wait;
    let lane = state.lanes.to(owner, settings.connections);
    let Some(addr) = lane.address(owner, wait).await else {
        FORWARDS.count_fallback();
        return None;
    };
    let what = named.as_str();
    let failed = |error: &std::io::Error| {
        if error.kind() == std::io::ErrorKind::TimedOut {
            no_answer_in_time(what, owner, wait)
        } else {
            failed_call(what, owner, "the lane's connection failed")
        }
    };
    // Every lane connection to the owner busy (long SSE answers, say): the RPC takes it rather
    // than the request waiting for one.
    let Ok(permit) = Arc::clone(&lane.permits).try_acquire_owned() else {
        FORWARDS.count_fallback();
        return None;
    };
    let secs = crate::clock::wall_ms() / 1000;
    let mark = mark(&settings.key, owner, read.peer, secs);
    let headers = super::forward::forwarded_header_refs(read);
    let request = wire::request(method, headers, (MARK, &mark), body);
    // A kept connection the owner closed meanwhile (its idle timeout) gives way to a new one; a
    // new one that cannot be made leaves the request to the RPC.
    let (mut conn, head) = loop {
        let (mut conn, fresh) = match lane.take_idle() {
            Some(conn) => (conn, false),
            None => match wire::Conn::open(addr, deadline).await {
                Ok(conn) => (conn, true),
                Err(_) => {
                    lane.forget();
                    FORWARDS.count_fallback();
                    log_unreachable(
                        what,
                        owner,
                        "its HTTP listener could not be reached: sent over the cluster RPC",
                    );
                    return None;
                }
            },
        };
        match conn.write(&request, deadline).await {
            Ok(()) => {}
            // A kept connection the owner closed as it went idle: the request did not get
            // through whole, so it is sent again on another. Once written, it never is (the
            // owner may have run it: a second `tools/call` would run it twice).
            Err(error) if !fresh && error.kind() != std::io::ErrorKind::TimedOut => continue,
            Err(error) => return Some(failed(&error)),
        }
        match conn.read_head(deadline).await {
            Ok(head) => break (conn, head),
            Err(error) => return Some(failed(&error)),
        }
    };
    if head.status == StatusCode::MISDIRECTED_REQUEST
        && head.headers.iter().any(|(name, _)| name.as_str() == MARK)
    {
        // Another node listens where the owner did (it restarted elsewhere): asked again.
        lane.forget();
        FORWARDS.count_fallback();
        return None;
    }
    FORWARDS.count_lane();
    let streams = head.headers.iter().any(|(name, value)| {
        *name == header::CONTENT_TYPE && value.as_bytes().starts_with(b"text/event-stream")
    });
    let body = match head.framing {
        wire::Framing::Chunked if streams => {
            // Relayed as it comes; its connection (and its place among the owner's) goes with
            // it, not kept afterwards.
            AnswerBody::Axum(relay_chunks(conn, permit))
        }
        framing => {
            let whole = conn.read_body(framing, MAX_ANSWER_BYTES, deadline).await;
            match whole {
                Ok(bytes) => {
                    if head.keep_alive && !conn.is_stale() {
                        lane.keep(conn);
                    }
                    drop(permit);
                    AnswerBody::Frame(Some(bytes.to_vec()))
                }
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                    return Some(failed(&error));
                }
                Err(_) => {
                    log_unreachable(what, owner, "its answer was cut or too large");
                    return Some(refusal(
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "{what}'s node {owner} sent an answer larger than {MAX_ANSWER_BYTES} bytes, or cut"
                        ),
                    ));
                }
            }
        }
    };
    Some(answer::relayed(head.status, head.headers.into_iter(), body))
}

/// A streamed (SSE) answer's chunks as they come, each within [`MAX_ANSWER_BYTES`]; the
/// connection and its permit are let go when the body ends or is dropped.
fn relay_chunks(conn: wire::Conn, permit: tokio::sync::OwnedSemaphorePermit) -> axum::body::Body {
    let chunks = futures::stream::unfold(Some((conn, permit)), |held| async move {
        let (mut conn, permit) = held?;
        match conn.next_chunk(MAX_ANSWER_BYTES, None).await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some((conn, permit)))),
            Ok(None) => None,
            Err(error) => Some((Err(error), None)),
        }
    });
    axum::body::Body::from_stream(chunks)
}

/// 421 for a mark made for another node: the sender asks the owner's address again.
pub(super) fn misdirected() -> Answer {
    use super::answer::IntoAnswer as _;
    (
        StatusCode::MISDIRECTED_REQUEST,
        [
            (header::CONTENT_TYPE, super::APPLICATION_JSON),
            (
                axum::http::HeaderName::from_static(MARK),
                HeaderValue::from_static("misdirected"),
            ),
        ],
        crate::protocol::jsonrpc::encode_error(
            None,
            &crate::protocol::jsonrpc::RpcError::new(
                -32000,
                "this request was forwarded to the wrong node".to_owned(),
            ),
        ),
    )
        .into_answer()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_mark_checks_for_its_owner_only_and_a_forged_or_old_one_does_not() {
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let made = mark(&KEY, "a@h", Some(peer), 1000);
        assert_eq!(
            judge_with(&KEY, "a@h", &made, 1000),
            Judged::Trusted(Some(peer))
        );
        assert_eq!(
            judge_with(&KEY, "a@h", &made, 1000 + MARK_WINDOW_SECS),
            Judged::Trusted(Some(peer))
        );
        let without = mark(&KEY, "a@h", None, 1000);
        assert_eq!(
            judge_with(&KEY, "a@h", &without, 1000),
            Judged::Trusted(None)
        );
        // For another node: misdirected.
        assert_eq!(judge_with(&KEY, "b@h", &made, 1000), Judged::Misdirected);
        // Too old, another key, an address changed, garbage: forged.
        assert_eq!(
            judge_with(&KEY, "a@h", &made, 1001 + MARK_WINDOW_SECS),
            Judged::Forged
        );
        assert_eq!(judge_with(&[8; 32], "a@h", &made, 1000), Judged::Forged);
        let changed = made.replacen("10.1.2.3", "10.1.2.4", 1);
        assert_eq!(judge_with(&KEY, "a@h", &changed, 1000), Judged::Forged);
        for garbage in [
            "",
            "a@h;10.1.2.3;1000",
            "a@h;10.1.2.3;1000;",
            ";;;;",
            "x;y;z;!!",
        ] {
            assert_eq!(
                judge_with(&KEY, "a@h", garbage, 1000),
                Judged::Forged,
                "{garbage:?}"
            );
        }
    }
}
