//! Owns newline-delimited framing: the reader that splits a byte stream into frames (enforcing
//! `max_message_size`, the idle timeout and `high_watermark` backpressure, and saying when the
//! connection may hibernate) and the writer that drains a connection's queue in batches, giving
//! up when the client stops taking bytes for `write_timeout`, and handing its socket half and
//! queue back when the connection hibernates.

use crate::dispatch::Dispatcher;
use crate::outbound::OutboundReceiver;
use crate::protocol::jsonrpc::{self, RpcError};
use bytes::BytesMut;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// What a connection's read buffer starts at (and returns to reading when empty).
const IDLE_BUFFER: usize = 2048;

/// The read side of a line-delimited connection. One that can tell when bytes are waiting
/// without a buffer to read them into (a plain TCP socket) holds no read buffer while idle: the
/// buffer is let go whenever it is empty and taken again when bytes arrive, so an idle
/// connection does not keep the last chunk size it read with (2–64 KiB). The others (TLS, whose
/// records may already hold plaintext; stdin) keep theirs.
pub(crate) trait FrameSource: AsyncRead + Send + Unpin {
    /// Whether [`FrameSource::poll_readable`] says when bytes are waiting.
    fn waits_without_buffer(&self) -> bool {
        false
    }

    /// Ready once a read would find bytes, the end of the stream or an error (it may, rarely,
    /// find nothing yet: the read then waits as usual).
    fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl FrameSource for tokio::net::tcp::OwnedReadHalf {
    fn waits_without_buffer(&self) -> bool {
        true
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }
}

impl<T: AsyncRead + Send> FrameSource for tokio::io::ReadHalf<T> {}
impl FrameSource for tokio::io::Stdin {}

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
    /// Hibernate after this long with nothing read, nothing queued and nothing in flight
    /// (`connection_hibernate_after`; only sources that wait without a buffer).
    pub(crate) hibernate_after: Option<Duration>,
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
    /// Nothing read, queued or in flight for `hibernate_after`, no frame partial: the
    /// connection may hibernate. The client has been quiet since `quiet_since` (its idle
    /// timeout runs from there).
    Hibernate {
        /// When the wait for the client's next byte began.
        quiet_since: Instant,
    },
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eof => f.write_str("client closed the connection"),
            Self::Idle => f.write_str("idle timeout"),
            Self::TooLarge => f.write_str("message exceeded max_message_size"),
            Self::Failed(e) => write!(f, "read failed: {e}"),
            Self::Hibernate { .. } => f.write_str("idle: hibernating"),
        }
    }
}

/// Reads frames and hands each to `dispatcher` until the stream ends (or the connection may
/// hibernate). `quiet_since`: a connection woken from hibernation by something else than its
/// client (a notification queued) keeps the idle deadline it had.
pub(crate) async fn read_frames<R: FrameSource + ?Sized>(
    reader: &mut R,
    dispatcher: &Dispatcher,
    limits: LineLimits,
    mut quiet_since: Option<Instant>,
) -> ReadEnd {
    let mut buf = LineBuffer::new(reader.waits_without_buffer(), limits.read_buffer);
    let level = dispatcher.shared().outbound().level();
    loop {
        while let Some(line) = buf.next_line() {
            let frame = trim_newline(&line);
            if frame.len() > limits.max_message_size {
                too_large(dispatcher, limits.max_message_size);
                return ReadEnd::TooLarge;
            }
            // Boxed: inline, its state would be held by every idle connection's task.
            Box::pin(dispatcher.handle_frame(frame)).await;
        }
        if buf.rest().len() > limits.max_message_size {
            too_large(dispatcher, limits.max_message_size);
            return ReadEnd::TooLarge;
        }
        if level.bytes() > limits.high_watermark || level.frames() > limits.queue_size {
            level
                .wait_below(limits.high_watermark / 2, limits.queue_size / 2)
                .await;
        }
        // Woken with the deadline it had, a connection hibernates again only after a full
        // `hibernate_after` awake (and at the deadline, closes as idle first).
        let (since, mut hibernate_from) = match quiet_since.take() {
            Some(since) => (since, Instant::now()),
            None => {
                let now = Instant::now();
                (now, now)
            }
        };
        let idle_at = limits.idle_timeout.map(|idle| since + idle);
        let read = loop {
            // One timer for both deadlines: the idle timeout's and, while nothing of a frame is
            // held, hibernation's.
            let hibernate_at = limits
                .hibernate_after
                .filter(|_| buf.holds_nothing())
                .map(|after| hibernate_from + after);
            let wake_at = match (idle_at, hibernate_at) {
                (Some(idle), Some(hibernate)) => Some(idle.min(hibernate)),
                (idle, hibernate) => idle.or(hibernate),
            };
            let Some(wake_at) = wake_at else {
                break buf.fill(reader).await;
            };
            match tokio::time::timeout_at(wake_at, buf.fill(reader)).await {
                Ok(read) => break read,
                Err(_) if idle_at.is_some_and(|idle| idle <= wake_at) => return ReadEnd::Idle,
                Err(_) => {
                    let shared = dispatcher.shared();
                    if level.frames() == 0 && shared.in_flight() == 0 && buf.holds_nothing() {
                        return ReadEnd::Hibernate { quiet_since: since };
                    }
                    // Busy still (an answer on its way): asked again `hibernate_after` later,
                    // under the same idle deadline.
                    hibernate_from = Instant::now();
                }
            }
        };
        match read {
            Ok(0) => {
                // A last frame without its newline is still a frame.
                if !buf.rest().is_empty() {
                    Box::pin(dispatcher.handle_frame(trim_newline(buf.rest()))).await;
                }
                return ReadEnd::Eof;
            }
            Ok(_) => {}
            Err(e) => return ReadEnd::Failed(e),
        }
    }
}

/// A connection's read buffer: whole lines out, bytes in by chunks that adapt to the traffic
/// (doubling while reads fill them, up to `read_buffer`; halving back towards
/// [`IDLE_BUFFER`] when the client goes quiet). Where the source can wait without a buffer, the
/// buffer is let go whenever nothing of a frame is held, whatever size it had grown to.
struct LineBuffer {
    buf: BytesMut,
    chunk: usize,
    max_chunk: usize,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    lets_go: bool,
}

impl LineBuffer {
    fn new(lets_go: bool, read_buffer: usize) -> Self {
        let buf = if lets_go {
            BytesMut::new()
        } else {
            BytesMut::with_capacity(IDLE_BUFFER)
        };
        Self {
            buf,
            chunk: IDLE_BUFFER,
            max_chunk: read_buffer.max(IDLE_BUFFER),
            scanned: 0,
            lets_go,
        }
    }

    /// The next whole line read, its newline included.
    fn next_line(&mut self) -> Option<BytesMut> {
        let Some(pos) = memchr::memchr(b'\n', &self.buf[self.scanned..]) else {
            self.scanned = self.buf.len();
            return None;
        };
        let line = self.buf.split_to(self.scanned + pos + 1);
        self.scanned = 0;
        Some(line)
    }

    /// What was read past the last whole line.
    fn rest(&self) -> &[u8] {
        &self.buf
    }

    /// Nothing of a frame held, on a source that waits without a buffer: what a connection may
    /// hibernate with.
    fn holds_nothing(&self) -> bool {
        self.lets_go && self.buf.is_empty()
    }

    /// Reads once: the bytes read, 0 at the end of the stream.
    async fn fill<R: FrameSource + ?Sized>(&mut self, reader: &mut R) -> std::io::Result<usize> {
        let (n, spare) = if self.lets_go && self.buf.is_empty() {
            self.fill_idle(reader).await?
        } else {
            self.buf.reserve(self.chunk);
            let spare = self.buf.capacity() - self.buf.len();
            (reader.read_buf(&mut self.buf).await?, spare)
        };
        if n >= spare {
            self.chunk = (self.chunk * 2).min(self.max_chunk);
        } else if n < self.chunk / 4 {
            self.chunk = (self.chunk / 2).max(IDLE_BUFFER);
        }
        Ok(n)
    }

    /// A read when nothing of a frame is held: bytes already waiting (a busy connection) are
    /// read into the buffer still held; when none are, the buffer goes until bytes arrive.
    async fn fill_idle<R: FrameSource + ?Sized>(
        &mut self,
        reader: &mut R,
    ) -> std::io::Result<(usize, usize)> {
        if self.buf.capacity() > 0 {
            self.buf.reserve(self.chunk);
            let spare = self.buf.capacity();
            let waiting = futures::FutureExt::now_or_never(reader.read_buf(&mut self.buf));
            if let Some(read) = waiting {
                return Ok((read?, spare));
            }
            self.buf = BytesMut::new();
        }
        std::future::poll_fn(|cx| reader.poll_readable(cx)).await?;
        self.buf.reserve(self.chunk);
        let spare = self.buf.capacity();
        Ok((reader.read_buf(&mut self.buf).await?, spare))
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
/// When `park` fires while nothing is queued, it returns the write half and the queue instead
/// (`Ok(Some(..))`: the connection hibernates); a frame queued first is written first.
pub(crate) async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: OutboundReceiver,
    write_timeout: Duration,
    mut park: Option<oneshot::Receiver<()>>,
) -> std::io::Result<Option<(W, OutboundReceiver)>> {
    const BATCH: usize = 64 * 1024;
    let mut out = Vec::new();
    let mut ended = false;
    // A frame that came while the last batch was written: the next batch starts with it.
    let mut waiting: Option<Vec<u8>> = None;
    while !ended {
        let first = match waiting.take() {
            Some(first) => first,
            None => {
                // Idle: the batch buffer goes until there is something to write.
                out = Vec::new();
                let next = match park.as_mut() {
                    None => queue.rx.recv().await,
                    Some(parked) => tokio::select! {
                        biased;
                        next = queue.rx.recv() => next,
                        asked = parked => {
                            if asked.is_ok() {
                                return Ok(Some((writer, queue)));
                            }
                            // Never to be asked: the connection is closing.
                            park = None;
                            continue;
                        }
                    },
                };
                match next {
                    Some(first) => first,
                    None => break,
                }
            }
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
        if !ended {
            waiting = queue.rx.try_recv().ok();
        }
    }
    let _ = writer.shutdown().await;
    Ok(None)
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

    /// One line of `len` bytes of `fill`, newline-terminated.
    fn line(len: usize, fill: u8) -> Vec<u8> {
        let mut line = vec![fill; len];
        line.push(b'\n');
        line
    }

    #[tokio::test]
    async fn an_idle_socket_holds_no_read_buffer_after_a_large_message() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut reader, _writer) = server.into_split();
        let mut buf = LineBuffer::new(reader.waits_without_buffer(), 64 * 1024);
        for round in 0..2u8 {
            // A message far past the first chunk grows the buffer to read it…
            let sent = line(300 * 1024, b'a' + round);
            client.write_all(&sent).await.unwrap();
            let got = loop {
                if let Some(got) = buf.next_line() {
                    break got;
                }
                assert!(buf.fill(&mut reader).await.unwrap() > 0);
            };
            assert_eq!(&got[..], &sent[..], "round {round}");
            drop(got);
            // … and while the connection waits for the next one, it holds none.
            let waited =
                tokio::time::timeout(Duration::from_millis(50), buf.fill(&mut reader)).await;
            assert!(waited.is_err(), "nothing was sent");
            assert_eq!(buf.buf.capacity(), 0, "round {round}");
        }
        // A message split across writes is still read whole, the buffer kept while it is partial.
        client.write_all(b"{\"part").await.unwrap();
        assert!(buf.fill(&mut reader).await.unwrap() > 0);
        assert!(buf.next_line().is_none());
        client.write_all(b"\":1}\n").await.unwrap();
        let got = loop {
            if let Some(got) = buf.next_line() {
                break got;
            }
            assert!(buf.fill(&mut reader).await.unwrap() > 0);
        };
        assert_eq!(&got[..], b"{\"part\":1}\n");
        drop(client);
        assert_eq!(buf.fill(&mut reader).await.unwrap(), 0);
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
