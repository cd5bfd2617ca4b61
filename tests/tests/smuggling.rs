//! Request smuggling and malformed HTTP/1.1 over raw TCP (after sozu's
//! h1_security_tests): for each vector strait answers the specified status
//! (400, 414, 431 or 408), closes the connection, forwards NOTHING to the
//! upstream, and then still serves a normal request.

use std::time::{Duration, Instant};

use strait_e2e::client::{self, raw_exchange, read_until_close, text};
use strait_e2e::{Strait, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start() -> (Upstream, Strait) {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ header_read_timeout: 1s }}\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    (up, s)
}

/// After a rejected vector: nothing reached the upstream, and strait still
/// forwards a normal request (which is then the only one the upstream saw).
async fn assert_nothing_forwarded_and_still_healthy(up: &Upstream, s: &Strait) {
    assert_eq!(
        up.started(),
        0,
        "the upstream received a request: {:#?}",
        up.requests()
    );
    let resp = client::get(s.web(), "/healthy")
        .await
        .expect("normal request after the vector");
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "up");
    let paths: Vec<String> = up.requests().iter().map(|r| r.path_and_query()).collect();
    assert_eq!(
        paths,
        ["/healthy"],
        "only the normal request may reach the upstream"
    );
    assert_eq!(up.started(), 1);
}

/// Send `vector` on one connection; expect exactly one `status` response and a close.
async fn rejects(vector: &[u8], status: u16) {
    let (up, s) = start().await;
    let reply = raw_exchange(s.web(), vector, Duration::from_secs(5)).await;
    assert_eq!(
        reply.status(),
        Some(status),
        "vector {:?} got reply {:?}",
        String::from_utf8_lossy(vector),
        reply.text()
    );
    assert!(
        reply.closed,
        "connection must be closed after {status}: {:?}",
        reply.text()
    );
    assert_eq!(
        reply.response_count(),
        1,
        "exactly one response: {:?}",
        reply.text()
    );
    assert_nothing_forwarded_and_still_healthy(&up, &s).await;
}

macro_rules! vector {
    ($name:ident, $status:expr, $bytes:expr) => {
        #[tokio::test]
        async fn $name() {
            rejects($bytes, $status).await;
        }
    };
}

const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /p HTTP/1.1\r\nHost: h\r\n{headers}\r\n{body}").into_bytes()
}

vector!(
    content_length_with_transfer_encoding_is_rejected_and_not_forwarded,
    400,
    &post(
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        &format!("0\r\n\r\n{SMUGGLED}")
    )
);
vector!(
    transfer_encoding_with_content_length_is_rejected_and_not_forwarded,
    400,
    &post(
        "Transfer-Encoding: chunked\r\nContent-Length: 40\r\n",
        &format!("0\r\n\r\n{SMUGGLED}")
    )
);
vector!(
    two_different_content_lengths_are_rejected_and_not_forwarded,
    400,
    &post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!")
);
vector!(
    duplicate_content_length_is_rejected_and_not_forwarded,
    400,
    &post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello")
);
vector!(
    content_length_list_is_rejected_and_not_forwarded,
    400,
    &post("Content-Length: 1, 2\r\n", "ab")
);
vector!(
    content_length_with_plus_sign_is_rejected_and_not_forwarded,
    400,
    &post("Content-Length: +5\r\n", "hello")
);
vector!(
    negative_content_length_is_rejected_and_not_forwarded,
    400,
    &post("Content-Length: -1\r\n", "hello")
);
vector!(
    hex_content_length_is_rejected_and_not_forwarded,
    400,
    &post("Content-Length: 0x10\r\n", "0123456789abcdef")
);
vector!(
    unknown_transfer_coding_xchunked_is_rejected_and_not_forwarded,
    400,
    &post(
        "Transfer-Encoding: xchunked\r\n",
        &format!("0\r\n\r\n{SMUGGLED}")
    )
);
vector!(
    chunked_not_last_is_rejected_and_not_forwarded,
    400,
    &post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n")
);
vector!(
    two_transfer_encoding_headers_with_unknown_coding_are_rejected_and_not_forwarded,
    400,
    &post(
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        "0\r\n\r\n"
    )
);
vector!(
    quoted_transfer_encoding_is_rejected_and_not_forwarded,
    400,
    &post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n")
);
vector!(
    transfer_encoding_with_vertical_tab_is_rejected_and_not_forwarded,
    400,
    &post("Transfer-Encoding:\x0bchunked\r\n", "0\r\n\r\n")
);
vector!(
    transfer_encoding_with_trailing_form_feed_is_rejected_and_not_forwarded,
    400,
    &post("Transfer-Encoding: chunked\x0c\r\n", "0\r\n\r\n")
);
vector!(
    space_before_colon_in_transfer_encoding_is_rejected_and_not_forwarded,
    400,
    &post(
        "Transfer-Encoding : chunked\r\n",
        &format!("0\r\n\r\n{SMUGGLED}")
    )
);
vector!(
    space_before_colon_in_any_header_is_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo : bar\r\n\r\n"
);
vector!(
    duplicate_host_headers_are_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
);
vector!(
    absolute_target_with_a_different_host_is_rejected_and_not_forwarded,
    400,
    b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n"
);
vector!(
    invalid_chunk_size_is_rejected_and_not_forwarded,
    400,
    &post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n")
);
vector!(
    chunk_size_overflow_is_rejected_and_not_forwarded,
    400,
    &post(
        "Transfer-Encoding: chunked\r\n",
        "fffffffffffffffffffff1\r\nhello\r\n0\r\n\r\n"
    )
);
vector!(
    bare_lf_between_headers_is_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: h\nX-Foo: bar\r\n\r\n"
);
vector!(
    bare_lf_line_endings_are_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\nHost: h\n\n"
);
vector!(
    obs_fold_header_continuation_is_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\n b\r\n\r\n"
);
vector!(
    nul_in_header_value_is_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\0b\r\n\r\n"
);
vector!(
    bare_cr_in_header_value_is_rejected_and_not_forwarded,
    400,
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\rb\r\n\r\n"
);
vector!(
    invalid_method_token_is_rejected_and_not_forwarded,
    400,
    b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n"
);
vector!(
    http10_with_transfer_encoding_is_rejected_and_not_forwarded,
    400,
    b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
);
vector!(
    request_line_over_8kib_gets_414_and_is_not_forwarded,
    414,
    format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000)).as_bytes()
);
vector!(
    header_block_over_64kib_gets_431_and_is_not_forwarded,
    431,
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
        (0..70)
            .map(|i| format!("X-Big-{i}: {}\r\n", "v".repeat(1000)))
            .collect::<String>()
    )
    .as_bytes()
);
vector!(
    more_than_100_headers_get_431_and_are_not_forwarded,
    431,
    format!(
        "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-H-{i}: v\r\n"))
            .collect::<String>()
    )
    .as_bytes()
);

#[tokio::test]
async fn exactly_100_headers_are_accepted() {
    let (up, s) = start().await;
    let req = format!(
        "GET /hundred HTTP/1.1\r\nHost: h\r\nConnection: close\r\n{}\r\n",
        (0..98)
            .map(|i| format!("X-H-{i}: v\r\n"))
            .collect::<String>()
    );
    let reply = raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    assert_eq!(up.only_request().path_and_query(), "/hundred");
}

#[tokio::test]
async fn slowloris_partial_headers_get_408_and_close() {
    let (up, s) = start().await;
    let mut tcp = TcpStream::connect(s.web()).await.unwrap();
    let t = Instant::now();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let reply = read_until_close(&mut tcp, Duration::from_secs(5)).await;
    let elapsed = t.elapsed();
    assert_eq!(reply.status(), Some(408), "reply: {:?}", reply.text());
    assert!(reply.closed, "connection left open after 408");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "header_read_timeout is 1s; closed after {elapsed:?}"
    );
    assert_nothing_forwarded_and_still_healthy(&up, &s).await;
}

#[tokio::test]
async fn slowloris_dripping_headers_get_408_despite_progress() {
    let (up, s) = start().await;
    let tcp = TcpStream::connect(s.web()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        if wr
            .write_all(b"GET / HTTP/1.1\r\nHost: h\r\n")
            .await
            .is_err()
        {
            return;
        }
        for i in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-Drip-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(
            Duration::from_secs(6).saturating_sub(t.elapsed()),
            rd.read(&mut buf),
        )
        .await
        {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let elapsed = t.elapsed();
    writer.abort();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 408"), "reply: {text:?}");
    assert!(closed, "connection left open");
    assert!(
        elapsed < Duration::from_secs(3),
        "header_read_timeout (1s) must bound the whole header block; took {elapsed:?}"
    );
    assert_nothing_forwarded_and_still_healthy(&up, &s).await;
}

#[tokio::test]
async fn pipelined_valid_requests_are_answered_in_order_and_each_forwarded_once() {
    let (up, s) = start().await;
    let raw = "POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
               GET /two HTTP/1.1\r\nHost: h\r\n\r\n\
               POST /three HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
               GET /four HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let reply = raw_exchange(s.web(), raw.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.closed, "Connection: close honoured: {}", reply.text());
    assert_eq!(reply.response_count(), 4, "{}", reply.text());
    let paths: Vec<String> = up.requests().iter().map(|r| r.path_and_query()).collect();
    assert_eq!(paths, ["/one", "/two", "/three", "/four"]);
    let bodies: Vec<u64> = up.requests().iter().map(|r| r.body_len).collect();
    assert_eq!(bodies, [5, 0, 3, 0]);
}

#[tokio::test]
async fn smuggled_request_in_a_content_length_body_is_not_forwarded_as_a_request() {
    let (up, s) = start().await;
    let body = SMUGGLED.to_string();
    let raw = format!(
        "POST /outer HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = raw_exchange(s.web(), raw.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    assert_eq!(reply.response_count(), 1);
    let reqs = up.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(reqs[0].path_and_query(), "/outer");
    assert_eq!(
        &reqs[0].body[..],
        SMUGGLED.as_bytes(),
        "the body arrives as a body"
    );
}

#[tokio::test]
async fn h2_request_target_over_the_line_limit_gets_414_and_is_not_forwarded() {
    let (up, s) = start().await;
    let long = format!("/{}", "a".repeat(9000));
    let req = http::Request::get(format!("http://{}{long}", s.web()))
        .body(client::empty())
        .unwrap();
    let resp = client::send(s.web(), client::Proto::H2c, req)
        .await
        .expect("h2c request");
    assert_eq!(resp.status(), 414);
    assert_nothing_forwarded_and_still_healthy(&up, &s).await;
}
