//! Owns a connection's outgoing queue: encoded frames from any task to the connection's writer,
//! with the counts the reader consults for backpressure (`high_watermark`, `queue_size`).
//! An empty frame is the end marker sent by [`Outbound::close`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

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

/// The sending side; cheap to clone. Frames are complete JSON-RPC messages without a newline.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    level: Arc<QueueLevel>,
    /// An HTTP response stream, which a handler may end early (the client then resumes).
    resumable_stream: bool,
}

/// The writer's side.
#[derive(Debug)]
pub struct OutboundReceiver {
    /// Frames in order.
    pub rx: mpsc::UnboundedReceiver<Vec<u8>>,
    /// The shared level, to report writes.
    pub level: Arc<QueueLevel>,
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
        let (tx, rx) = mpsc::unbounded_channel();
        let level = Arc::new(QueueLevel::default());
        (
            Self {
                tx,
                level: Arc::clone(&level),
                resumable_stream,
            },
            OutboundReceiver { rx, level },
        )
    }

    /// Whether this queue feeds a resumable HTTP stream.
    pub fn is_resumable_stream(&self) -> bool {
        self.resumable_stream
    }

    /// Queues a frame; `false` if the connection's writer is gone.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        let len = frame.len();
        self.level.bytes.fetch_add(len, Ordering::Relaxed);
        self.level.frames.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(frame).is_err() {
            self.level.written(1, len);
            return false;
        }
        true
    }

    /// Asks the writer to end once everything queued so far is written.
    pub fn close(&self) {
        let _ = self.tx.send(Vec::new());
    }

    /// The shared level.
    pub fn level(&self) -> &Arc<QueueLevel> {
        &self.level
    }

    /// Whether the writer is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}
