//! Owns the bounds of the admin side that a peer must not be able to push past: the longest
//! admin line, the admin HTTP listener's connection cap, and a line reader that enforces the
//! first. (Refusals are logged at a bounded rate through [`crate::log_limit`].)
//!
//! | bound | value | what it protects |
//! |---|---|---|
//! | [`MAX_AUTH_LINE`] | 64 KiB | memory, before the peer proved the cookie |
//! | [`MAX_ADMIN_LINE`] | 1 MiB | memory, after it (a command line is a few dozen bytes) |
//! | [`ADMIN_HTTP_MAX_CONNECTIONS`] | 64 | descriptors and tasks of `admin.http` |
//! | [`ADMIN_MAX_CONNECTIONS`] | 64 | descriptors and actors of the admin socket and `admin.tcp` |

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line read before authentication (the proof is ~80 bytes).
pub(crate) const MAX_AUTH_LINE: usize = 64 * 1024;

/// Longest admin line read after authentication: a longer one is answered with an error and the
/// connection closed.
pub(crate) const MAX_ADMIN_LINE: usize = 1024 * 1024;

/// Connections the admin HTTP listener holds at once; one more is answered 503 and closed. A
/// dashboard holds one or two (its page and its live feed), a Prometheus scraper one.
pub(crate) const ADMIN_HTTP_MAX_CONNECTIONS: usize = 64;

/// Admin protocol connections (the Unix socket and `admin.tcp` together) open at once,
/// authenticated or not; the next is refused. An operator's shell or script takes one each.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LineError {
    /// The peer sent more than the limit without a newline.
    #[error("admin line longer than {0} bytes")]
    TooLong(usize),
    /// The line is not UTF-8.
    #[error("admin line is not UTF-8")]
    NotText,
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads newline-terminated lines of at most `max` bytes (the newline and a `\r` before it not
/// counted). Cancel-safe: a read dropped half-way (by `select!`) keeps what it took in `partial`,
/// and the next call goes on from there.
pub(crate) struct LineReader<R> {
    input: R,
    partial: Vec<u8>,
    max: usize,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines of `input`, at most `max` bytes each.
    pub(crate) fn new(input: R, max: usize) -> Self {
        Self {
            input,
            partial: Vec::new(),
            max,
        }
    }

    /// Changes the limit for the lines read from now on.
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The next line; `None` at the end of the stream (a last line without a newline is
    /// dropped, as the peer did not finish it).
    pub(crate) async fn next_line(&mut self) -> Result<Option<String>, LineError> {
        loop {
            // fill_buf is cancel-safe, and nothing below awaits before `consume`.
            let available = self.input.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let (taken, complete) = match memchr::memchr(b'\n', available) {
                Some(end) => (end + 1, true),
                None => (available.len(), false),
            };
            let room = (self.max + 2).saturating_sub(self.partial.len());
            self.partial
                .extend_from_slice(&available[..taken.min(room)]);
            self.input.consume(taken);
            if complete {
                let mut line = std::mem::take(&mut self.partial);
                for end in [b'\n', b'\r'] {
                    if line.last() == Some(&end) {
                        line.pop();
                    }
                }
                if line.len() > self.max {
                    return Err(LineError::TooLong(self.max));
                }
                return String::from_utf8(line)
                    .map(Some)
                    .map_err(|_| LineError::NotText);
            }
            if self.partial.len() > self.max + 1 {
                self.partial = Vec::new();
                return Err(LineError::TooLong(self.max));
            }
        }
    }
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Reads and drops up to `limit` bytes, or until the end of the stream.
    pub(crate) async fn drain(&mut self, limit: usize) {
        let mut left = limit;
        while left > 0 {
            let Ok(available) = self.input.fill_buf().await else {
                return;
            };
            if available.is_empty() {
                return;
            }
            let n = available.len().min(left);
            self.input.consume(n);
            left -= n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, BufReader};

    #[tokio::test]
    async fn lines_up_to_the_limit_pass_and_a_longer_one_is_refused() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut lines = LineReader::new(BufReader::with_capacity(8, rx), 10);
        let writer = tokio::spawn(async move {
            tx.write_all(b"0123456789\r\nshort\n0123456789A\n").await?;
            tx.shutdown().await
        });
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "0123456789");
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "short");
        assert!(matches!(
            lines.next_line().await,
            Err(LineError::TooLong(10))
        ));
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_endless_line_is_refused_without_being_held() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut lines = LineReader::new(BufReader::new(rx), 100);
        let writer = tokio::spawn(async move {
            let chunk = [b'x'; 1024];
            // Far more than the limit: the reader must stop early, not hold it all.
            for _ in 0..64 {
                if tx.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        assert!(matches!(
            lines.next_line().await,
            Err(LineError::TooLong(100))
        ));
        assert!(lines.partial.capacity() < 1024 * 8, "held too much");
        drop(lines);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_read_dropped_half_way_loses_nothing() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut lines = LineReader::new(BufReader::new(rx), 100);
        tx.write_all(b"half").await.unwrap();
        let dropped =
            tokio::time::timeout(std::time::Duration::from_millis(20), lines.next_line()).await;
        assert!(dropped.is_err(), "no whole line yet");
        tx.write_all(b" and half\n").await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), "half and half");
    }
}
