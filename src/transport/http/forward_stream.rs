//! Owns streamed forwarding (docs/cluster.md, "Sessions through any node"): an SSE answer to a
//! request that another node received for a session of this one — a GET stream, or a POST whose
//! answer streams (progress, then the result) — relayed as its events come rather than buffered
//! whole.
//!
//! On the owner, [`ForwardedStreams`] keeps each such answer's body, read by a task of its own
//! into a bounded queue, under a stream id the forward's answer carries. The node that received
//! the request pulls it (`ForwardMsg::Pull`: a long poll, one RPC per batch of at most
//! [`MAX_PULL_BYTES`]) and writes what comes to its client ([`relay`]); when its client goes, it
//! tells the owner (`ForwardMsg::Close`). Bounds: at most [`MAX_STREAMS`] streams held per
//! owner (past them 503); a stream not pulled for three forward timeouts is dropped by the
//! owner's sweep (its body with it: a GET stream ends there as if its client had left); a puller
//! whose owner stops answering ends its client's stream, and the client reconnects (to the
//! session's next owner after a takeover). Like every forward these are RPCs over
//! ractor_cluster with bincode payloads: no wire protocol of our own.

use crate::locks::lock;
use axum::body::{Body, Bytes};
use futures::StreamExt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Streams one owner holds for other nodes at most; past them a streaming answer is refused
/// (503), and the client may send its GET to the owner itself.
pub(crate) const MAX_STREAMS: usize = 1024;

/// What one pull carries at most (well under ractor_cluster's 16 MiB frame).
pub(crate) const MAX_PULL_BYTES: usize = 256 * 1024;

/// Chunks of a body read ahead of its puller on the owner.
const READ_AHEAD: usize = 64;

/// A pull: the stream, and how long the owner may wait for its next bytes.
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct Pull {
    pub(super) stream: u64,
    pub(super) wait_ms: u64,
}

/// What a pull brings: bytes (maybe none, when the wait passed), whether the stream ended, and
/// whether the owner knew the stream (an unreadable answer reads as unknown: the relay ends).
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct Pulled {
    pub(super) bytes: Vec<u8>,
    pub(super) ended: bool,
    pub(super) known: bool,
}

/// A stream the relaying node no longer wants (0: none, what unreadable bytes read as).
#[derive(Debug, Default, bincode::Encode, bincode::Decode)]
pub(crate) struct StreamId {
    pub(super) id: u64,
}

crate::cluster::bincode_on_the_wire!(Pull, Pulled, StreamId);

/// One body held for its puller.
struct HeldStream {
    /// One puller at a time.
    queue: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
    /// When it was last pulled (or opened).
    pulled: std::sync::Mutex<Instant>,
    /// The task reading the body: stopped when the stream is dropped.
    reader: tokio::task::AbortHandle,
}

impl Drop for HeldStream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The owner's table of streams held for other nodes.
pub(crate) struct ForwardedStreams {
    next: AtomicU64,
    held: std::sync::Mutex<HashMap<u64, Arc<HeldStream>>>,
    /// A stream not pulled for this long is dropped.
    idle: Duration,
}

impl ForwardedStreams {
    /// An empty table whose streams are dropped after `idle` without a pull.
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            next: AtomicU64::new(1),
            held: std::sync::Mutex::new(HashMap::new()),
            idle,
        }
    }

    /// Holds `body` for a puller: its stream id, or `None` when [`MAX_STREAMS`] are held.
    pub(crate) fn open(&self, body: Body) -> Option<u64> {
        self.sweep();
        let mut held = lock(&self.held);
        if held.len() >= MAX_STREAMS {
            return None;
        }
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(async move {
            let mut data = body.into_data_stream();
            while let Some(Ok(chunk)) = data.next().await {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
        })
        .abort_handle();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        held.insert(
            id,
            Arc::new(HeldStream {
                queue: tokio::sync::Mutex::new(rx),
                pulled: std::sync::Mutex::new(Instant::now()),
                reader,
            }),
        );
        Some(id)
    }

    /// The next bytes of a stream: what is queued, or what comes within the pull's wait.
    pub(crate) async fn pull(&self, pull: Pull) -> Pulled {
        let Some(stream) = lock(&self.held).get(&pull.stream).cloned() else {
            return Pulled::default();
        };
        let wait = Duration::from_millis(pull.wait_ms).min(self.idle / 2);
        let mut queue = stream.queue.lock().await;
        *lock(&stream.pulled) = Instant::now();
        let mut bytes = Vec::new();
        let mut ended = false;
        match tokio::time::timeout(wait, queue.recv()).await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => ended = true,
            Err(_) => {}
        }
        while !ended && bytes.len() < MAX_PULL_BYTES {
            match queue.try_recv() {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => ended = true,
            }
        }
        *lock(&stream.pulled) = Instant::now();
        drop(queue);
        if ended {
            lock(&self.held).remove(&pull.stream);
        }
        Pulled {
            bytes,
            ended,
            known: true,
        }
    }

    /// Drops a stream its relaying node no longer wants.
    pub(crate) fn close(&self, id: u64) {
        lock(&self.held).remove(&id);
    }

    /// Drops the streams not pulled for `idle` (none is being pulled now).
    pub(crate) fn sweep(&self) {
        let idle = self.idle;
        lock(&self.held).retain(|_, stream| {
            stream.queue.try_lock().is_err() || lock(&stream.pulled).elapsed() < idle
        });
    }

    /// Streams held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.held).len()
    }
}

/// Runs its closure when dropped: tells the owner, when the relay is dropped (its client gone,
/// or the stream over), that the stream is no longer wanted.
struct OnDrop(Option<Box<dyn FnOnce() + Send>>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(close) = self.0.take() {
            close();
        }
    }
}

/// The body of a relayed stream: what each `pull` brings, until one says the stream ended or
/// brings nothing (the owner stopped answering); `close` runs once the body is dropped.
pub(super) fn relay<P, F>(pull: P, close: Box<dyn FnOnce() + Send>) -> Body
where
    P: Fn() -> F + Send + 'static,
    F: std::future::Future<Output = Option<Pulled>> + Send,
{
    let chunks = futures::stream::unfold(
        (OnDrop(Some(close)), pull, false),
        |(close, pull, mut ended)| async move {
            while !ended {
                let pulled = pull().await.filter(|pulled| pulled.known)?;
                ended = pulled.ended;
                if !pulled.bytes.is_empty() {
                    let bytes = Bytes::from(pulled.bytes);
                    return Some((Ok::<_, Infallible>(bytes), (close, pull, ended)));
                }
            }
            None
        },
    );
    Body::from_stream(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ractor::BytesConvertable as _;

    fn pull(stream: u64) -> Pull {
        Pull {
            stream,
            wait_ms: 200,
        }
    }

    #[tokio::test]
    async fn a_held_body_is_pulled_in_order_until_it_ends_and_then_is_gone() {
        let streams = ForwardedStreams::new(Duration::from_secs(10));
        let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
        let body = Body::from_stream(tokio_stream_from(rx));
        let id = streams.open(body).unwrap();
        tx.send(Ok(Bytes::from_static(b"data: 1\n\n")))
            .await
            .unwrap();
        let first = streams.pull(pull(id)).await;
        assert_eq!(first.bytes, b"data: 1\n\n");
        assert!(first.known && !first.ended);
        // Nothing within the wait: an empty pull, the stream still held.
        let quiet = streams.pull(pull(id)).await;
        assert!(quiet.bytes.is_empty() && !quiet.ended && quiet.known);
        tx.send(Ok(Bytes::from_static(b"data: 2\n\n")))
            .await
            .unwrap();
        tx.send(Ok(Bytes::from_static(b"data: 3\n\n")))
            .await
            .unwrap();
        drop(tx);
        let mut rest = Vec::new();
        loop {
            let pulled = streams.pull(pull(id)).await;
            rest.extend(pulled.bytes);
            if pulled.ended {
                break;
            }
        }
        assert_eq!(rest, b"data: 2\n\ndata: 3\n\n");
        assert_eq!(streams.len(), 0);
        assert!(!streams.pull(pull(id)).await.known);
    }

    #[tokio::test]
    async fn streams_are_capped_closed_and_swept_when_not_pulled() {
        // Long enough that opening them all (a debug build) sweeps none.
        let streams = ForwardedStreams::new(Duration::from_millis(1500));
        let pending = || Body::from_stream(futures::stream::pending::<Result<Bytes, Infallible>>());
        let ids: Vec<u64> = (0..MAX_STREAMS)
            .map(|_| streams.open(pending()).unwrap())
            .collect();
        assert!(streams.open(pending()).is_none(), "past the cap");
        streams.close(ids[0]);
        assert_eq!(streams.len(), MAX_STREAMS - 1);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        streams.sweep();
        assert_eq!(streams.len(), 0, "none pulled for the idle bound");
    }

    #[test]
    fn pulls_cross_as_bytes_and_garbage_reads_as_an_unknown_stream() {
        let back = Pulled::from_bytes(
            Pulled {
                bytes: b"x".to_vec(),
                ended: true,
                known: true,
            }
            .into_bytes(),
        );
        assert_eq!(
            (back.bytes.as_slice(), back.ended, back.known),
            (&b"x"[..], true, true)
        );
        assert!(!Pulled::from_bytes(vec![0xff; 2]).known);
        assert_eq!(StreamId::from_bytes(vec![0xff; 2]).id, 0);
        assert_eq!(Pull::from_bytes(pull(7).into_bytes()).stream, 7);
    }

    /// A receiver as a stream.
    fn tokio_stream_from(
        rx: mpsc::Receiver<Result<Bytes, Infallible>>,
    ) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
    }
}
