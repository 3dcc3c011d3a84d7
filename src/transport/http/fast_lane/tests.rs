//! Tests of the fast lane: what it reads, what it hands to hyper, how it writes answers.

use super::*;

/// A peer that never goes.
impl PeerWatch for Vec<u8> {
    async fn peer_gone(&self) {
        std::future::pending().await
    }
}

fn parse(raw: &[u8], limit: usize) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(raw);
    let parsed = Head::parse(&mut buf, limit);
    (parsed, buf)
}

fn is_other(raw: &[u8]) -> bool {
    matches!(parse(raw, 100).0, Parsed::Other)
}

#[test]
fn a_plain_post_head_is_read_with_its_names_in_lower_case() {
    let raw = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Session-Id: AbC\r\n\
                CONTENT-LENGTH: 2\r\nConnection: keep-alive\r\n\r\n{}POST";
    let (Parsed::Plain(head), buf) = parse(raw, 100) else {
        panic!("a plain head");
    };
    assert_eq!(head.len, raw.len() - "{}POST".len());
    assert_eq!(head.body_len, 2);
    assert!(!head.close);
    let text = std::str::from_utf8(&buf[..head.len]).unwrap();
    let pairs: Vec<_> = head.pairs(text).collect();
    assert_eq!(
        pairs,
        [
            ("host", "127.0.0.1"),
            ("mcp-session-id", "AbC"),
            ("content-length", "2"),
            ("connection", "keep-alive"),
        ],
        "names lower-cased in place, values as sent"
    );
    let read = RequestHeaders::from_pairs(head.pairs(text));
    assert_eq!(read.session_id, Some("AbC"));

    let (Parsed::Plain(head), _) = parse(
        b"POST /mcp HTTP/1.1\r\ncontent-length: 0\r\nconnection: Close\r\n\r\n",
        100,
    ) else {
        panic!("close is served too");
    };
    assert!(head.close);
}

#[test]
fn a_head_not_yet_whole_waits_unless_it_is_already_too_long() {
    assert!(matches!(
        parse(b"POST /mcp HTTP/1.1\r\ncontent-le", 100).0,
        Parsed::Partial
    ));
    assert!(matches!(parse(b"", 100).0, Parsed::Partial));
    let mut long = b"POST /mcp HTTP/1.1\r\nx-pad: ".to_vec();
    long.resize(MAX_HEAD + 1, b'a');
    assert!(is_other(&long), "hyper refuses a head that long");
}

#[test]
fn every_other_request_goes_to_hyper() {
    let plain = |extra: &str| format!("POST /mcp HTTP/1.1\r\n{extra}\r\n\r\n{{}}");
    assert!(!is_other(plain("content-length: 2").as_bytes()));
    for (raw, why) in [
        ("GET /mcp HTTP/1.1\r\n\r\n".to_owned(), "a GET stream"),
        ("DELETE /mcp HTTP/1.1\r\n\r\n".to_owned(), "DELETE"),
        (
            "POST /messages?sessionId=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}".to_owned(),
            "another path",
        ),
        (
            "POST /mcp?x=1 HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}".to_owned(),
            "a query",
        ),
        (
            "POST /mcp HTTP/1.0\r\ncontent-length: 2\r\n\r\n{}".to_owned(),
            "HTTP/1.0",
        ),
        (plain("x-no-length: 1"), "no Content-Length"),
        (
            plain("content-length: 2\r\ncontent-length: 2"),
            "two lengths",
        ),
        (plain("content-length: +2"), "a length that is not digits"),
        (
            plain("content-length: 2a"),
            "a length that ends in a letter",
        ),
        (plain("content-length: "), "an empty length"),
        (plain("content-length: 101"), "a body over the limit"),
        (
            plain("content-length: 99999999999999999999999"),
            "a length past usize",
        ),
        (
            plain("transfer-encoding: chunked\r\ncontent-length: 2"),
            "a chunked body",
        ),
        (plain("content-length: 2\r\nexpect: 100-continue"), "Expect"),
        (plain("content-length: 2\r\nupgrade: h2c"), "Upgrade"),
        (
            plain("content-length: 2\r\nconnection: upgrade"),
            "a Connection to negotiate",
        ),
        (
            "POST /mcp HTTP/1.1\r\nbad header\r\n\r\n".to_owned(),
            "malformed",
        ),
        ("\x16\x03\x01\x02\x00".to_owned(), "TLS, not HTTP"),
    ] {
        assert!(is_other(raw.as_bytes()), "{why}");
    }
    let mut many = String::from("POST /mcp HTTP/1.1\r\ncontent-length: 2\r\n");
    for n in 0..MAX_HEADERS {
        many.push_str(&format!("x-{n}: 1\r\n"));
    }
    many.push_str("\r\n{}");
    assert!(
        is_other(many.as_bytes()),
        "more headers than the lane reads"
    );
}

#[test]
fn answers_are_written_as_http_1_1_with_a_length_or_chunked() {
    use super::super::answer::IntoAnswer as _;
    let headers = [
        (header::CONTENT_TYPE, "text/plain"),
        (header::CONTENT_LENGTH, "999"),
    ];
    let (head, _) = (StatusCode::ACCEPTED, headers).into_answer().into_parts();
    let mut out = Vec::new();
    let length = Some(0);
    write_head(
        &mut out,
        &head,
        Ending {
            length,
            close: true,
        },
    );
    let text = String::from_utf8(out).unwrap();
    let (before_date, date) = text.split_once("date: ").unwrap();
    assert_eq!(
        before_date,
        "HTTP/1.1 202 Accepted\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\
         connection: close\r\n",
        "the lane's own length, not the map's"
    );
    let date = date.strip_suffix("\r\n\r\n").unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");

    let (head, _) = StatusCode::OK.into_answer().into_parts();
    let mut out = Vec::new();
    write_head(&mut out, &head, Ending::default());
    write_chunk(&mut out, b"");
    write_chunk(&mut out, &[b'x'; 26]);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"));
    assert!(
        text.ends_with(&format!("\r\n\r\n1a\r\n{}\r\n", "x".repeat(26))),
        "an empty chunk is not written (it would end the body): {text}"
    );
}

#[tokio::test]
async fn a_body_with_a_length_is_sent_whole_and_a_stream_chunk_by_chunk() {
    use super::super::answer::IntoAnswer as _;
    let (head, _) = StatusCode::OK.into_answer().into_parts();
    let plain = Ending::default();
    let mut sent = Vec::new();
    let mut out = b"earlier answer|".to_vec();
    let body = axum::body::Body::from("text");
    let whole = send_axum_body(&mut sent, &mut out, &head, plain, body);
    assert!(whole.await.unwrap());
    assert!(sent.is_empty(), "a whole body waits in `out` like a frame");
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("earlier answer|HTTP/1.1 200 OK\r\ncontent-length: 4\r\n"));
    assert!(text.ends_with("\r\n\r\ntext"));

    let chunks = futures::stream::iter(["ab", "", "cde"].map(Ok::<_, io::Error>));
    let body = axum::body::Body::from_stream(chunks);
    let mut out = b"earlier answer|".to_vec();
    let streamed = send_axum_body(&mut sent, &mut out, &head, plain, body);
    assert!(streamed.await.unwrap());
    let text = String::from_utf8(std::mem::take(&mut sent)).unwrap();
    assert!(text.starts_with("earlier answer|HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"));
    assert!(text.ends_with("\r\n\r\n2\r\nab\r\n3\r\ncde\r\n"), "{text}");
    assert_eq!(out, b"0\r\n\r\n", "the last chunk goes with what follows");

    let failing = futures::stream::iter([
        Ok("ab"),
        Err(io::Error::other("the handler's stream broke")),
    ]);
    let mut out = Vec::new();
    let body = axum::body::Body::from_stream(failing);
    let cut = send_axum_body(&mut sent, &mut out, &head, plain, body);
    assert!(
        !cut.await.unwrap(),
        "a body that fails midway is reported cut"
    );
}

#[test]
fn tokens_are_lower_cased_as_byte_by_byte() {
    // Every byte value in every place of a word, and every length up to three words.
    for byte in 0..=255u8 {
        for at in 0..8 {
            let mut token = *b"Content-";
            token[at] = byte;
            let mut expected = token;
            expected.make_ascii_lowercase();
            lowercase_token(&mut token);
            assert_eq!(token, expected, "byte {byte:#x} at {at}");
        }
    }
    let text = b"MCP-Protocol-Version-X-Forwarded-FOR";
    for len in 0..=text.len() {
        let mut token = text[..len].to_vec();
        lowercase_token(&mut token);
        assert_eq!(token, text[..len].to_ascii_lowercase(), "length {len}");
    }
}

#[test]
fn buffers_grown_by_a_large_message_are_let_go_once_empty() {
    let mut buf = BytesMut::with_capacity(300_000);
    buf.extend_from_slice(b"next request, partly read");
    let mut out = Vec::with_capacity(200_000);
    let mut grown = true;
    let_go_of_grown(&mut buf, &mut grown, &mut out);
    assert!(
        grown && buf.capacity() > KEPT_CAPACITY,
        "kept while it holds bytes"
    );
    assert!(
        out.capacity() <= KEPT_CAPACITY,
        "an empty answer buffer shrinks"
    );
    buf.advance(buf.len());
    let_go_of_grown(&mut buf, &mut grown, &mut out);
    assert!(!grown);
    assert_eq!(buf.capacity(), READ_SIZE);

    // A buffer of the usual size is kept as it is.
    let mut usual = BytesMut::with_capacity(READ_SIZE);
    let before = usual.as_ptr();
    let_go_of_grown(&mut usual, &mut false, &mut out);
    assert_eq!(usual.as_ptr(), before);
}

#[tokio::test]
async fn a_handed_over_connection_reads_the_pending_bytes_first() {
    let (near, mut far) = tokio::io::duplex(64);
    let mut rewound = Rewound {
        pending: Bytes::from_static(b"GET / HT"),
        io: near,
    };
    far.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
    drop(far.shutdown().await);
    let mut small = [0u8; 3];
    rewound.read_exact(&mut small).await.unwrap();
    assert_eq!(&small, b"GET", "a read smaller than what is pending");
    let mut rest = Vec::new();
    rewound.read_to_end(&mut rest).await.unwrap();
    assert_eq!(rest, b" / HTTP/1.1\r\n\r\n");
    rewound.write_all(b"answer").await.unwrap();
    let mut answer = [0u8; 6];
    far.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"answer", "writes go to the connection");
}

#[tokio::test]
async fn a_handed_over_connection_lets_go_of_the_lane_buffer_once_read() {
    // The lane's read buffer (8 KiB) came along with the bytes it held; an upgraded WebSocket
    // kept it for its whole life when an empty view of it was left behind.
    let (near, _far) = tokio::io::duplex(64);
    let mut buffer = BytesMut::with_capacity(8 * 1024);
    buffer.extend_from_slice(b"GET /ws HTTP/1.1\r\n\r\n");
    let pending = buffer.freeze();
    let watch = pending.clone();
    let mut rewound = Rewound { pending, io: near };
    let mut head = [0u8; 20];
    rewound.read_exact(&mut head[..5]).await.unwrap();
    assert!(!watch.is_unique(), "still reading it");
    rewound.read_exact(&mut head[5..]).await.unwrap();
    assert_eq!(&head, b"GET /ws HTTP/1.1\r\n\r\n");
    assert!(watch.is_unique(), "the buffer is let go once read");
}
