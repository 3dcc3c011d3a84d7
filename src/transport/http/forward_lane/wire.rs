//! Owns the forwarding lane's side of HTTP/1.1: one kept-alive connection to a member's HTTP
//! listener, driven by the task that forwards (no connection task between it and the socket:
//! every hand-off costs a wake-up, and those were what a forward cost). It writes a plain
//! `POST`/`DELETE /mcp` with a `Content-Length` body and reads the answer's head with
//! httparse, then its body by `Content-Length`, chunked, or to the close. Plain HTTP/1.1, no
//! protocol of our own. The reading half takes any byte stream, so that the fuzz target
//! `forward_lane_answer` ([`crate::fuzzing`]) feeds it arbitrary answers ([`fuzz_answer`]).

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::{Buf as _, Bytes, BytesMut};
use std::io;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An answer head longer than this is refused.
const MAX_HEAD: usize = 64 * 1024;
/// Headers an answer may have.
const MAX_HEADERS: usize = 64;
/// A chunk-size line or a trailer line longer than this is refused.
const MAX_LINE: usize = 4 * 1024;
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8 * 1024;

/// A connection to a member's HTTP listener (any byte stream, for the reading half), with what
/// was read and not yet used.
pub(super) struct Conn<S = TcpStream> {
    stream: S,
    buf: BytesMut,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// At the connection's close.
    Close,
}

/// An answer's head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// Its headers less those about the connection and the framing.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) framing: Framing,
    /// The connection may carry another request after this answer.
    pub(crate) keep_alive: bool,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "cluster.forward_timeout passed")
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

impl Conn {
    /// A new connection to `addr`, within `deadline`.
    pub(super) async fn open(addr: SocketAddr, deadline: Instant) -> io::Result<Self> {
        let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())??;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: BytesMut::new(),
        })
    }

    /// Whether the peer closed the connection while it was idle (or sent what was not asked).
    pub(super) fn is_stale(&self) -> bool {
        let mut probe = [0u8; 1];
        !self.buf.is_empty()
            || !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes a request whole, within `deadline`.
    pub(super) async fn write(&mut self, request: &[u8], deadline: Instant) -> io::Result<()> {
        tokio::time::timeout_at(deadline, self.stream.write_all(request))
            .await
            .map_err(|_| timed_out())?
    }
}

impl<S: AsyncRead + Unpin> Conn<S> {
    /// Reads what `stream` sends.
    fn over(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Reads more bytes into the buffer (by `deadline`, when one is given); the end of the
    /// connection is an error.
    async fn read_more(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        self.buf.reserve(READ_SIZE);
        let read = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                    .await
                    .map_err(|_| timed_out())??
            }
            None => self.stream.read_buf(&mut self.buf).await?,
        };
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Whether nothing of an answer was read yet.
    #[cfg(test)]
    fn read_nothing(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads an answer's head, by `deadline`.
    pub(super) async fn read_head(&mut self, deadline: Instant) -> io::Result<Head> {
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let head = head_of(&response)?;
                        self.buf.advance(len);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() <= MAX_HEAD => {}
                    _ => return Err(invalid("an answer head that could not be read")),
                }
            }
            self.read_more(Some(deadline)).await?;
        }
    }

    /// A body of `len` bytes, by `deadline`.
    pub(super) async fn read_length(&mut self, len: usize, deadline: Instant) -> io::Result<Bytes> {
        self.buf.reserve(len.saturating_sub(self.buf.len()));
        while self.buf.len() < len {
            self.read_more(Some(deadline)).await?;
        }
        Ok(self.buf.split_to(len).freeze())
    }

    /// A whole body framed as `framing` says, at most `cap` bytes, by `deadline` (an error past
    /// the cap: a `Content-Length` over it is refused before a byte is read).
    pub(super) async fn read_body(
        &mut self,
        framing: Framing,
        cap: usize,
        deadline: Instant,
    ) -> io::Result<Bytes> {
        match framing {
            Framing::Length(len) if len > cap => Err(invalid("an answer larger than the cap")),
            Framing::Length(len) => self.read_length(len, deadline).await,
            Framing::Close => self.read_to_close(cap, deadline).await,
            Framing::Chunked => {
                let mut body = BytesMut::new();
                while let Some(chunk) = self.next_chunk(cap, Some(deadline)).await? {
                    if body.len() + chunk.len() > cap {
                        return Err(invalid("an answer larger than the cap"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body.freeze())
            }
        }
    }

    /// A body that ends with the connection, at most `cap` bytes, by `deadline`.
    pub(super) async fn read_to_close(
        &mut self,
        cap: usize,
        deadline: Instant,
    ) -> io::Result<Bytes> {
        loop {
            if self.buf.len() > cap {
                return Err(invalid("an answer larger than the cap"));
            }
            match self.read_more(Some(deadline)).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok(std::mem::take(&mut self.buf).freeze());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next chunk of a chunked body (`None`: its end, its trailers read), each chunk at most
    /// `cap` bytes; by `deadline` when one is given.
    pub(super) async fn next_chunk(
        &mut self,
        cap: usize,
        deadline: Option<Instant>,
    ) -> io::Result<Option<Bytes>> {
        let end = self.line(deadline).await?;
        let size = {
            let line =
                std::str::from_utf8(&self.buf[..end]).map_err(|_| invalid("a chunk size"))?;
            let digits = line.split(';').next().unwrap_or_default().trim();
            usize::from_str_radix(digits, 16).map_err(|_| invalid("a chunk size"))?
        };
        self.buf.advance(end + 2);
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let end = self.line(deadline).await?;
                self.buf.advance(end + 2);
                if end == 0 {
                    return Ok(None);
                }
            }
        }
        if size > cap {
            return Err(invalid("a chunk larger than the cap"));
        }
        while self.buf.len() < size + 2 {
            self.read_more(deadline).await?;
        }
        let data = self.buf.split_to(size).freeze();
        if &self.buf[..2] != b"\r\n" {
            return Err(invalid("a chunk without its CRLF"));
        }
        self.buf.advance(2);
        Ok(Some(data))
    }

    /// The length of the next line (up to its CRLF) in the buffer, read until it is whole.
    async fn line(&mut self, deadline: Option<Instant>) -> io::Result<usize> {
        loop {
            if let Some(end) = memchr::memmem::find(&self.buf, b"\r\n") {
                return Ok(end);
            }
            if self.buf.len() > MAX_LINE {
                return Err(invalid("a chunk line too long"));
            }
            self.read_more(deadline).await?;
        }
    }
}

/// Reads `bytes` as a member's whole answer, the connection closing after them, with at most
/// `cap` bytes of body: its head and body, or why not. For the fuzz target; within a second.
pub(crate) async fn fuzz_answer(bytes: &[u8], cap: usize) -> io::Result<(Head, Bytes)> {
    let deadline = Instant::now() + std::time::Duration::from_secs(1);
    let mut conn = Conn::over(bytes);
    let head = conn.read_head(deadline).await?;
    let body = conn.read_body(head.framing, cap, deadline).await?;
    Ok((head, body))
}

/// The head of a parsed answer.
fn head_of(response: &httparse::Response<'_, '_>) -> io::Result<Head> {
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| invalid("an answer status"))?;
    let mut framing = Framing::Close;
    let mut keep_alive = response.version == Some(1);
    let mut headers = Vec::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| invalid("a header"))?;
        if name == header::CONTENT_LENGTH {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("a Content-Length"))?;
            if framing != Framing::Chunked {
                framing = Framing::Length(len);
            }
        } else if name == header::TRANSFER_ENCODING {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            } else {
                return Err(invalid("a transfer coding other than chunked"));
            }
        } else if name == header::CONNECTION {
            keep_alive &= !h.value.eq_ignore_ascii_case(b"close");
        } else if !is_hop(&name) {
            let value = HeaderValue::from_bytes(h.value).map_err(|_| invalid("a header"))?;
            headers.push((name, value));
        }
    }
    if matches!(status.as_u16(), 100..=199 | 204 | 304) {
        framing = Framing::Length(0);
    }
    keep_alive &= framing != Framing::Close;
    Ok(Head {
        status,
        headers,
        framing,
        keep_alive,
    })
}

/// Headers about this connection, which the node that answers the client writes its own.
fn is_hop(name: &HeaderName) -> bool {
    *name == header::DATE || name.as_str() == "keep-alive"
}

/// The request's bytes: `method /mcp`, the (name, value) headers and `last` (a value with a
/// line break left out), and the body with its length.
pub(super) fn request<'n, 'v>(
    method: &Method,
    headers: impl Iterator<Item = (&'n str, &'v str)>,
    last: (&str, &str),
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.extend_from_slice(b" /mcp HTTP/1.1\r\n");
    let mut put = |name: &str, value: &str| {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in headers {
        put(name, value);
    }
    put(last.0, last.1);
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A connection to a listener that writes `answer` to the first request and keeps open.
    async fn served(answer: &'static [u8]) -> Conn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            socket.write_all(answer).await.unwrap();
            let _ = socket.read(&mut buf).await;
        });
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let mut conn = Conn::open(addr, deadline).await.unwrap();
        let request = request(
            &Method::POST,
            [("host", "h")].into_iter(),
            ("x", "y"),
            b"{}",
        );
        assert!(request.ends_with(b"content-length: 2\r\n\r\n{}"));
        conn.write(&request, deadline).await.unwrap();
        conn
    }

    #[tokio::test]
    async fn a_length_answer_and_a_chunked_one_are_read_whole_and_the_connection_kept() {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let mut conn = served(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: x\r\ncontent-length: 2\r\n\r\n{}",
        )
        .await;
        let head = conn.read_head(deadline).await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        assert_eq!(head.headers.len(), 1, "date and framing left out");
        assert_eq!(&conn.read_length(2, deadline).await.unwrap()[..], b"{}");

        let mut conn = served(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nt: v\r\n\r\n",
        )
        .await;
        let head = conn.read_head(deadline).await.unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        let mut body = Vec::new();
        while let Some(chunk) = conn.next_chunk(1024, Some(deadline)).await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        assert_eq!(body, b"abcde");
        assert!(conn.read_nothing());

        let mut conn = served(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\n").await;
        conn.read_head(deadline).await.unwrap();
        assert!(
            conn.next_chunk(8, Some(deadline)).await.is_err(),
            "past the cap"
        );
        let mut conn =
            served(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").await;
        assert!(!conn.read_head(deadline).await.unwrap().keep_alive);
    }
}
