//! Owns newline-delimited framing: the reader that splits a byte stream into frames (enforcing
//! `max_message_size`, the idle timeout and `high_watermark` backpressure) and the writer that
//! drains a connection's queue in batches.

use crate::dispatch::Dispatcher;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::transport::outbound::OutboundReceiver;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a connection's read buffer starts at (and returns to reading when empty).
const IDLE_BUFFER: usize = 2048;

/// Limits of one line-delimited connection.
#[derive(Debug, Clone, Copy)]
pub struct LineLimits {
    /// Largest frame accepted, in bytes; a larger one gets an error and the connection closes.
    pub max_message_size: usize,
    /// Read buffer growth step, in bytes.
    pub read_buffer: usize,
    /// Close after this long without a byte from the client.
    pub idle_timeout: Option<Duration>,
    /// Stop reading while more than this many bytes wait to be written…
    pub high_watermark: usize,
    /// … or more than this many frames.
    pub queue_size: usize,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadEnd {
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
pub async fn read_frames<R: AsyncRead + Unpin>(
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
/// when the write side fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: OutboundReceiver,
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
        let written = async {
            if !out.is_empty() {
                writer.write_all(&out).await?;
            }
            writer.flush().await
        }
        .await;
        queue.level().written(frames, bytes);
        written?;
    }
    writer.shutdown().await.or(Ok(()))
}
