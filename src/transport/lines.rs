//! Owns newline-delimited framing: the reader that splits a byte stream into frames (enforcing
//! `max_message_size`, the idle timeout and `high_watermark` backpressure) and the writer that
//! drains a connection's queue in batches, giving up when the client stops taking bytes for
//! `write_timeout`.

use crate::dispatch::Dispatcher;
use crate::outbound::OutboundReceiver;
use crate::protocol::jsonrpc::{self, RpcError};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a connection's read buffer starts at (and returns to reading when empty).
const IDLE_BUFFER: usize = 2048;

/// Limits of one line-delimited connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineLimits {
    /// Largest frame accepted, in bytes; a larger one gets an error and the connection closes.
    pub max_message_size: usize,
    /// Read buffer growth step, in bytes.
    pub read_buffer: usize,
    /// Close after this long without a byte from the client.
    pub(crate) idle_timeout: Option<Duration>,
    /// Close when queued output has not moved for this long (a client that does not read).
    pub(crate) write_timeout: Duration,
    /// Stop reading while more than this many bytes wait to be written…
    pub high_watermark: usize,
    /// … or more than this many frames.
    pub queue_size: usize,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// The client closed its side.
    Eof,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// A frame exceeded `max_message_size` (an error was sent).
    TooLarge,
    /// The socket failed.
    Failed(std::io::Error),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eof => f.write_str("client closed the connection"),
            Self::Idle => f.write_str("idle timeout"),
            Self::TooLarge => f.write_str("message exceeded max_message_size"),
            Self::Failed(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Reads frames and hands each to `dispatcher` until the stream ends.
pub(crate) async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: R,
    dispatcher: &Dispatcher,
    limits: LineLimits,
) -> ReadEnd {
    // Start small: an idle connection should cost little; the buffer grows with the traffic.
    let mut buf = BytesMut::with_capacity(IDLE_BUFFER);
    let mut chunk = IDLE_BUFFER;
    let mut scanned = 0;
    let level = dispatcher.shared().outbound().level();
    loop {
        while let Some(pos) = memchr::memchr(b'\n', &buf[scanned..]) {
            let line = buf.split_to(scanned + pos + 1);
            scanned = 0;
            let frame = trim_newline(&line);
            if frame.len() > limits.max_message_size {
                too_large(dispatcher, limits.max_message_size);
                return ReadEnd::TooLarge;
            }
            dispatcher.handle_frame(frame).await;
        }
        scanned = buf.len();
        if buf.len() > limits.max_message_size {
            too_large(dispatcher, limits.max_message_size);
            return ReadEnd::TooLarge;
        }
        if level.bytes() > limits.high_watermark || level.frames() > limits.queue_size {
            level
                .wait_below(limits.high_watermark / 2, limits.queue_size / 2)
                .await;
        }
        // Read chunks adapt to the traffic: doubling while reads fill them (up to `read_buffer`),
        // halving back towards IDLE_BUFFER when the client goes quiet.
        buf.reserve(chunk);
        let spare = buf.capacity() - buf.len();
        let read = match limits.idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, reader.read_buf(&mut buf)).await {
                Ok(read) => read,
                Err(_) => return ReadEnd::Idle,
            },
            None => reader.read_buf(&mut buf).await,
        };
        match read {
            Ok(0) => {
                // A last frame without its newline is still a frame.
                if !buf.is_empty() {
                    dispatcher.handle_frame(trim_newline(&buf)).await;
                }
                return ReadEnd::Eof;
            }
            Ok(n) => {
                if n >= spare {
                    chunk = (chunk * 2).min(limits.read_buffer.max(IDLE_BUFFER));
                } else if n < chunk / 4 {
                    chunk = (chunk / 2).max(IDLE_BUFFER);
                }
            }
            Err(e) => return ReadEnd::Failed(e),
        }
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn too_large(dispatcher: &Dispatcher, max: usize) {
    dispatcher.shared().send(jsonrpc::encode_error(
        None,
        &RpcError::invalid_request(format!(
            "message exceeds max_message_size ({max} bytes); closing the connection"
        )),
    ));
}

/// Writes queued frames, newline-terminated, batching what is already queued into one write.
/// Returns after the end marker (or when every sender is gone) once all before it is written, or
/// when the write side fails — [`std::io::ErrorKind::TimedOut`] when the client took no byte
/// for `write_timeout` while output waited (a slow write that keeps moving is never cut).
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: OutboundReceiver,
    write_timeout: Duration,
) -> std::io::Result<()> {
    const BATCH: usize = 64 * 1024;
    let mut out = Vec::new();
    let mut ended = false;
    while !ended {
        let Some(first) = queue.rx.recv().await else {
            break;
        };
        out.clear();
        let (mut frames, mut bytes) = (0, 0);
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            frames += 1;
            bytes += frame.len();
            if frame.is_empty() {
                ended = true;
                break;
            }
            out.extend_from_slice(&frame);
            out.push(b'\n');
            if out.len() < BATCH {
                next = queue.rx.try_recv().ok();
            }
        }
        let written = write_moving(&mut writer, &out, write_timeout).await;
        queue.level().written(frames, bytes);
        written?;
    }
    writer.shutdown().await.or(Ok(()))
}

/// Writes all of `bytes` and flushes, failing with `TimedOut` when one write (or the flush)
/// takes nothing for `stall`: the deadline is on the output being stuck, and each write that
/// takes some bytes starts it again.
pub(crate) async fn write_moving<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    let stuck = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the client took no output for {} ms (write_timeout)",
                stall.as_millis()
            ),
        )
    };
    while !bytes.is_empty() {
        match tokio::time::timeout(stall, writer.write(bytes)).await {
            Err(_) => return Err(stuck()),
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => bytes = &bytes[n.min(bytes.len())..],
            Ok(Err(e)) => return Err(e),
        }
    }
    tokio::time::timeout(stall, writer.flush())
        .await
        .map_err(|_| stuck())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A writer that takes `per_write` bytes every `every`, or nothing at all when `every` is
    /// `None`.
    struct Trickle {
        per_write: usize,
        every: Option<Duration>,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        taken: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let Some(every) = self.every else {
                return Poll::Pending;
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
            let n = buf.len().min(self.per_write);
            self.taken += n;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_write_that_takes_nothing_for_the_deadline_fails() {
        let mut stuck = Trickle {
            per_write: 1,
            every: None,
            sleep: None,
            taken: 0,
        };
        let started = tokio::time::Instant::now();
        let err = write_moving(&mut stuck, b"abc", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }

    #[tokio::test]
    async fn a_slow_write_that_keeps_moving_is_not_cut() {
        // 30 bytes, 1 byte every 10 ms: 300 ms in all, past the 200 ms deadline, each step well
        // within it.
        let mut slow = Trickle {
            per_write: 1,
            every: Some(Duration::from_millis(10)),
            sleep: None,
            taken: 0,
        };
        let started = tokio::time::Instant::now();
        write_moving(&mut slow, &[b'x'; 30], Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(slow.taken, 30);
        assert!(started.elapsed() > Duration::from_millis(200));
    }
}
