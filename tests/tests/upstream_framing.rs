//! Upstream HTTP/1 responses checked with the rigour of the request guard, against a raw-TCP
//! upstream that sends exactly the bytes given: ambiguous or malformed framing is a 502 with the
//! upstream connection closed (never passed on), and Content-Length beside Transfer-Encoding is
//! read by Transfer-Encoding on a connection that is then not reused.

use std::time::Duration;

use strait_e2e::client::{self, text};
use strait_e2e::rawup::RawUpstream;
use strait_e2e::{poll_until, Strait};

async fn proxy(up: &RawUpstream) -> Strait {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    Strait::start(&yaml).await
}

/// `/bad` gets `bad`, anything else a plain `ok`.
async fn serving(bad: &'static [u8]) -> RawUpstream {
    RawUpstream::start(move |head| {
        if head.starts_with(b"GET /bad ") {
            bad.to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        }
    })
    .await
}

async fn refused(bad: &'static [u8]) {
    let up = serving(bad).await;
    let s = proxy(&up).await;
    let resp = client::get(s.web(), "/bad").await.expect("a response");
    assert_eq!(
        resp.status(),
        502,
        "{:?} was passed on: {}",
        String::from_utf8_lossy(bad),
        text(&resp)
    );
    next_request_gets_a_new_connection(&up, &s).await;
}

/// The upstream connection of the last response was closed, and the next request is served on
/// a new one.
async fn next_request_gets_a_new_connection(up: &RawUpstream, s: &Strait) {
    poll_until(
        Duration::from_secs(5),
        "the upstream connection closed",
        || async { (up.closed() == 1).then_some(()) },
    )
    .await;
    let resp = client::get(s.web(), "/next").await.expect("a response");
    assert_eq!((resp.status().as_u16(), text(&resp)), (200, "ok".into()));
    assert_eq!(up.accepted(), 2, "a new connection for the next request");
}

macro_rules! refused {
    ($($name:ident: $bytes:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            refused($bytes).await;
        }
    )*};
}

refused! {
    duplicate_content_length_gets_502: b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello";
    content_length_list_gets_502: b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\nhello";
    invalid_content_length_gets_502: b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello";
    obfuscated_transfer_encoding_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    transfer_encoding_list_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    duplicate_transfer_encoding_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    space_before_colon_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    bare_lf_gets_502: b"HTTP/1.1 200 OK\ncontent-length: 5\n\nhello";
    obs_fold_gets_502: b"HTTP/1.1 200 OK\r\nx-a: 1\r\n continued\r\ncontent-length: 5\r\n\r\nhello";
    nul_in_a_value_gets_502: b"HTTP/1.1 200 OK\r\nx-a: a\x00b\r\ncontent-length: 5\r\n\r\nhello";
    bad_chunk_size_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    chunk_longer_than_its_size_gets_502: b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n";
    invalid_status_line_gets_502: b"HTTP/1.1 2OO OK\r\ncontent-length: 5\r\n\r\nhello";
    transfer_encoding_in_http10_gets_502: b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
}

/// RFC 9112 §6.3: Transfer-Encoding wins, and the connection is closed after the response.
#[tokio::test]
async fn content_length_beside_transfer_encoding_is_read_chunked_and_the_connection_not_reused() {
    let up = serving(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let s = proxy(&up).await;
    let resp = client::get(s.web(), "/bad").await.expect("a response");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        text(&resp),
        "hello",
        "the whole chunked body, not the first 2 bytes"
    );
    assert!(
        resp.headers()
            .get("content-length")
            .is_none_or(|v| v == "5"),
        "{:?}",
        resp.headers()
    );
    next_request_gets_a_new_connection(&up, &s).await;
}

/// A response to HEAD has no body whatever its Content-Length says, and the connection is
/// reused for the next request.
#[tokio::test]
async fn a_head_response_with_content_length_has_no_body_and_the_connection_is_reused() {
    let up = RawUpstream::start(|head| {
        if head.starts_with(b"HEAD ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n".to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        }
    })
    .await;
    let s = proxy(&up).await;
    let mut conn = client::Conn::connect(s.web(), client::Proto::H1)
        .await
        .unwrap();
    let head = http::Request::head("/h")
        .header("host", "x")
        .body(client::empty())
        .unwrap();
    let resp = client::collect(conn.send(head).await.unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for _ in 0..3 {
        let resp = client::collect(conn.send(client::get_req(s.web(), "/g")).await.unwrap())
            .await
            .unwrap();
        assert_eq!(text(&resp), "ok");
    }
    assert_eq!(up.accepted(), 1, "one upstream connection served all four");
    assert_eq!(up.requests(), 4);
}

/// Interim responses (103 Early Hints, 100 Continue) are skipped to the final one.
#[tokio::test]
async fn interim_responses_pass_and_the_final_one_is_checked() {
    let up = serving(
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
    )
    .await;
    let s = proxy(&up).await;
    let resp = client::get(s.web(), "/bad").await.expect("a response");
    assert_eq!((resp.status().as_u16(), text(&resp)), (200, "hello".into()));
}

/// One scripted upstream connection after another: each request head (and Content-Length
/// body) gets the writes `script` gives for its path, a pause between them; `close` ends the
/// connection after the response.
async fn scripted(
    script: fn(&str) -> (Vec<&'static [u8]>, bool),
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + length {
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + 4 + length);
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    let (writes, close) = script(&path);
                    for w in writes {
                        if tcp.write_all(w).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                    if close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Requests without a body are written and read without hyper: chunked bodies are decoded
/// across reads (extensions and trailers dropped), interim, 204 and close-delimited responses
/// pass, a clean connection serves the next request, including one with a body (hyper's), and
/// one the response ended by closing is not used again.
#[tokio::test]
async fn responses_to_requests_without_a_body_are_read_in_every_framing() {
    let (addr, accepted) = scripted(|path| match path {
        "/chunked" => (
            vec![
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;e=1\r\nhel",
                b"lo\r\n6\r\n world\r",
                b"\n0\r\nx-t: 1\r\n\r\n",
            ],
            false,
        ),
        "/early" => (
            vec![
                b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
                b"HTTP/1.1 299 Fine By Me\r\ncontent-length: 4\r\n\r\nfi",
                b"ne",
            ],
            false,
        ),
        "/none" => (vec![b"HTTP/1.1 204 No Content\r\nx-a: \r\n\r\n"], false),
        "/close" => (vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"close"], true),
        _ => (
            vec![b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
            false,
        ),
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{addr}\"]\n",
    );
    let s = Strait::start(&yaml).await;
    let get = |path: &'static str| {
        let web = s.web();
        async move {
            let resp = client::get(web, path).await.expect(path);
            (resp.status().as_u16(), text(&resp))
        }
    };
    assert_eq!(get("/chunked").await, (200, "hello world".into()));
    let early = client::get(s.web(), "/early").await.expect("/early");
    assert_eq!(
        (early.status().as_u16(), text(&early)),
        (299, "fine".into())
    );
    let reason = early.extensions().get::<hyper::ext::ReasonPhrase>();
    assert_eq!(reason.map(|r| r.as_bytes()), Some(&b"Fine By Me"[..]));
    assert_eq!(get("/none").await, (204, "".into()));
    let resp = client::send(
        s.web(),
        client::Proto::H1,
        http::Request::post("/posted")
            .header("host", "h")
            .body(client::full("abc"))
            .unwrap(),
    )
    .await
    .expect("a response");
    assert_eq!((resp.status().as_u16(), text(&resp)), (200, "ok".into()));
    assert_eq!(get("/plain").await, (200, "ok".into()));
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one upstream connection served every exchange so far"
    );
    assert_eq!(get("/close").await, (200, "until close".into()));
    assert_eq!(get("/plain").await, (200, "ok".into()));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}
