//! Owns a connection's outgoing queue: encoded frames from any task to the connection's writer,
//! with the counts the reader consults for backpressure (`high_watermark`, `queue_size`).
//! An empty frame is the end marker sent by [`Outbound::close`].
//!
//! Below the sessions and the dispatcher, which queue answers and notifications here, and the
//! transports, which drain it into their sockets.

use crate::locks::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
pub(crate) use tokio::sync::mpsc::error::TryRecvError;

/// Shared counters of what is queued and not yet written.
#[derive(Debug, Default)]
pub struct QueueLevel {
    bytes: AtomicUsize,
    frames: AtomicUsize,
    drained: Notify,
}

impl QueueLevel {
    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Frames queued.
    pub fn frames(&self) -> usize {
        self.frames.load(Ordering::Relaxed)
    }

    /// Called by the writer after writing `frames` frames of `bytes` bytes.
    pub fn written(&self, frames: usize, bytes: usize) {
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.frames.fetch_sub(frames, Ordering::Relaxed);
        self.drained.notify_waiters();
    }

    /// Waits until at most `max_bytes` and `max_frames` are queued.
    pub async fn wait_below(&self, max_bytes: usize, max_frames: usize) {
        loop {
            let notified = self.drained.notified();
            if self.bytes() <= max_bytes && self.frames() <= max_frames {
                return;
            }
            notified.await;
        }
    }
}

/// The frames between the senders and the writer: a short-locked deque that allocates nothing
/// until a frame is queued (a tokio unbounded channel allocates a 32-slot block up front: 1.3 KB
/// per idle connection, measured with massif), and a `Notify` to wake the writer.
#[derive(Debug, Default)]
struct FrameQueue {
    frames: Mutex<VecDeque<Vec<u8>>>,
    senders: AtomicUsize,
    writer_gone: AtomicBool,
    ready: Notify,
    /// What is queued and not yet written (in the same allocation: one per queue, and an HTTP
    /// request makes a queue).
    level: QueueLevel,
}

/// The sending side; cheap to clone. Frames are complete JSON-RPC messages without a newline.
#[derive(Debug)]
pub struct Outbound {
    queue: Arc<FrameQueue>,
    /// An HTTP response stream, which a handler may end early (the client then resumes).
    resumable_stream: bool,
}

impl Clone for Outbound {
    fn clone(&self) -> Self {
        self.queue.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            queue: Arc::clone(&self.queue),
            resumable_stream: self.resumable_stream,
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        if self.queue.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: the writer drains what is queued, then sees the end.
            self.queue.ready.notify_one();
        }
    }
}

/// The writer's end of the queue.
#[derive(Debug)]
pub struct FrameReceiver {
    queue: Arc<FrameQueue>,
}

impl FrameReceiver {
    /// The next frame; `None` once every sender is gone and nothing is left.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.try_recv() {
                Ok(frame) => return Some(frame),
                Err(TryRecvError::Disconnected) => return None,
                // A send or the last sender's drop after this check leaves a permit: no lost wake.
                Err(TryRecvError::Empty) => self.queue.ready.notified().await,
            }
        }
    }

    /// Returns once a frame is queued (or every sender is gone), taking none: what a
    /// hibernated connection waits for besides its client.
    pub(crate) async fn ready(&self) {
        loop {
            let notified = self.queue.ready.notified();
            if !lock(&self.queue.frames).is_empty()
                || self.queue.senders.load(Ordering::Acquire) == 0
            {
                return;
            }
            notified.await;
        }
    }

    /// The next frame if one is queued.
    pub fn try_recv(&mut self) -> Result<Vec<u8>, TryRecvError> {
        if let Some(frame) = lock(&self.queue.frames).pop_front() {
            return Ok(frame);
        }
        if self.queue.senders.load(Ordering::Acquire) == 0 {
            // A frame sent just before the last sender left is still to be taken.
            return lock(&self.queue.frames)
                .pop_front()
                .ok_or(TryRecvError::Disconnected);
        }
        Err(TryRecvError::Empty)
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        self.queue.writer_gone.store(true, Ordering::Release);
        lock(&self.queue.frames).clear();
    }
}

/// The writer's side.
#[derive(Debug)]
pub struct OutboundReceiver {
    /// Frames in order.
    pub rx: FrameReceiver,
}

impl OutboundReceiver {
    /// The shared level, to report writes.
    pub fn level(&self) -> &QueueLevel {
        &self.rx.queue.level
    }
}

impl Outbound {
    /// A new queue.
    pub fn channel() -> (Self, OutboundReceiver) {
        Self::make(false)
    }

    /// A new queue feeding one resumable HTTP (SSE) response stream: [`Outbound::close`] on it
    /// ends the current response, not the stream's events.
    pub fn resumable_stream() -> (Self, OutboundReceiver) {
        Self::make(true)
    }

    fn make(resumable_stream: bool) -> (Self, OutboundReceiver) {
        let queue = Arc::new(FrameQueue::default());
        queue.senders.store(1, Ordering::Relaxed);
        (
            Self {
                queue: Arc::clone(&queue),
                resumable_stream,
            },
            OutboundReceiver {
                rx: FrameReceiver { queue },
            },
        )
    }

    /// Whether this queue feeds a resumable HTTP stream.
    pub fn is_resumable_stream(&self) -> bool {
        self.resumable_stream
    }

    /// Queues a frame; `false` if the connection's writer is gone.
    pub(crate) fn send(&self, frame: Vec<u8>) -> bool {
        if self.queue.writer_gone.load(Ordering::Acquire) {
            return false;
        }
        let len = frame.len();
        self.queue.level.bytes.fetch_add(len, Ordering::Relaxed);
        self.queue.level.frames.fetch_add(1, Ordering::Relaxed);
        lock(&self.queue.frames).push_back(frame);
        self.queue.ready.notify_one();
        true
    }

    /// Asks the writer to end once everything queued so far is written.
    pub fn close(&self) {
        if !self.queue.writer_gone.load(Ordering::Acquire) {
            lock(&self.queue.frames).push_back(Vec::new());
            self.queue.ready.notify_one();
        }
    }

    /// The shared level.
    pub fn level(&self) -> &QueueLevel {
        &self.queue.level
    }

    /// Whether the writer is gone.
    pub fn is_closed(&self) -> bool {
        self.queue.writer_gone.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_arrive_in_order_and_the_end_comes_after_the_last_sender() {
        let (tx, mut queue) = Outbound::channel();
        let other = tx.clone();
        assert!(tx.send(b"1".to_vec()));
        assert!(other.send(b"2".to_vec()));
        drop(tx);
        assert_eq!(queue.rx.recv().await.unwrap(), b"1");
        assert!(matches!(queue.rx.try_recv(), Ok(f) if f == b"2"));
        assert!(matches!(queue.rx.try_recv(), Err(TryRecvError::Empty)));
        let late = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            other.send(b"3".to_vec());
        });
        assert_eq!(
            queue.rx.recv().await.unwrap(),
            b"3",
            "a waiting writer is woken"
        );
        late.await.unwrap();
        assert_eq!(queue.rx.recv().await, None, "every sender gone");
        assert!(matches!(
            queue.rx.try_recv(),
            Err(TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn sending_to_a_gone_writer_fails_and_keeps_the_level_straight() {
        let (tx, queue) = Outbound::channel();
        drop(queue);
        assert!(tx.is_closed());
        assert!(!tx.send(b"x".to_vec()));
        assert_eq!((tx.level().bytes(), tx.level().frames()), (0, 0));
    }
}
