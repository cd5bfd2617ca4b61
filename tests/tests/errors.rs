//! Upstream failures become defined responses: 502 for refused or reset
//! connections, 504 when response headers do not arrive within
//! `timeouts.request`, 503 when no endpoint is healthy; every error body is
//! text/plain and names the request id.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::Request;
use strait_e2e::client::{self, empty, header, text, Proto};
use strait_e2e::upstream::SilentUpstream;
use strait_e2e::{closed_addr, metrics, poll_until, Strait};
use tokio::io::AsyncReadExt;

fn proxy_to(addr: SocketAddr, extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{addr}\"]\n{extra}"
    )
}

/// GET / with a known request id; returns (status, body, elapsed).
async fn get_with_id(s: &Strait, id: &str) -> (u16, String, Duration) {
    let req = Request::get("/")
        .header("host", "h")
        .header("x-request-id", id)
        .body(empty())
        .unwrap();
    let t = Instant::now();
    let resp = client::send(s.web(), Proto::H1, req)
        .await
        .expect("response from strait");
    let elapsed = t.elapsed();
    assert_eq!(
        header(&resp, "x-request-id"),
        id,
        "error responses carry x-request-id"
    );
    if resp.status() != 200 {
        assert!(
            header(&resp, "content-type").starts_with("text/plain"),
            "error content-type: {:?}",
            resp.headers()
        );
    }
    (resp.status().as_u16(), text(&resp), elapsed)
}

fn assert_error_body(body: &str, id: &str) {
    assert!(
        body.starts_with("strait: ") && body.ends_with(&format!(" (request id {id})\n")),
        "error body should be `strait: <reason> (request id {id})\\n`, got {body:?}"
    );
}

#[tokio::test]
async fn connection_refused_gives_502_and_counts_a_connect_error() {
    let dead = closed_addr();
    let s = Strait::start(&proxy_to(dead, "")).await;
    let (status, body, _) = get_with_id(&s, "refused-1").await;
    assert_eq!(status, 502);
    assert_error_body(&body, "refused-1");
    let m = s.metrics().await;
    let errors = metrics::sum(
        &m,
        "strait_upstream_connect_errors_total",
        &[("upstream", "up"), ("endpoint", &dead.to_string())],
    );
    assert!(errors >= 1.0, "connect error not counted:\n{m}");
    let counted = metrics::sum(
        &m,
        "strait_http_requests_total",
        &[("route", "r"), ("upstream", "up"), ("code", "502")],
    );
    assert_eq!(counted, 1.0);
}

#[tokio::test]
async fn upstream_closing_without_a_response_gives_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        for _ in 0..10 {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await;
            drop(tcp);
        }
    });
    let s = Strait::start(&proxy_to(addr, "")).await;
    let (status, body, _) = get_with_id(&s, "reset-1").await;
    assert_eq!(status, 502);
    assert_error_body(&body, "reset-1");
    closer.abort();
}

#[tokio::test]
async fn hung_upstream_gives_504_after_the_request_timeout() {
    let silent = SilentUpstream::start().await;
    let s = Strait::start(&proxy_to(
        silent.addr(),
        "    timeouts: { request: 500ms }\n",
    ))
    .await;
    let (status, body, elapsed) = get_with_id(&s, "hung-1").await;
    assert_eq!(status, 504);
    assert_error_body(&body, "hung-1");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(2),
        "504 should come after ~500ms, came after {elapsed:?}"
    );
    assert!(
        silent.accepted() >= 1,
        "strait never connected to the upstream"
    );
}

#[tokio::test]
async fn all_endpoints_unhealthy_gives_503_immediately() {
    let dead = closed_addr();
    let hc = "    health_check: { type: http, path: /healthz, interval: 100ms, timeout: 1s, \
              healthy_threshold: 1, unhealthy_threshold: 1 }\n";
    let s = Strait::start(&proxy_to(dead, hc)).await;
    // Before the first failed check the endpoint may still be tried (502).
    poll_until(
        Duration::from_secs(5),
        "503 once the endpoint is unhealthy",
        || async {
            let resp = client::get(s.web(), "/").await.ok()?;
            (resp.status() == 503).then_some(())
        },
    )
    .await;
    for i in 0..5 {
        let id = format!("unhealthy-{i}");
        let (status, body, elapsed) = get_with_id(&s, &id).await;
        assert_eq!(status, 503);
        assert_error_body(&body, &id);
        assert!(
            elapsed < Duration::from_millis(300),
            "503 should not wait for a connect attempt: {elapsed:?}"
        );
    }
}

fn limited(up: &strait_e2e::Upstream) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ max_request_body: 1KiB }}\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    )
}

#[tokio::test]
async fn body_over_max_request_body_with_content_length_gets_413_and_is_not_forwarded() {
    let up = strait_e2e::Upstream::start("up").await;
    let s = Strait::start(&limited(&up)).await;
    let req = Request::post("/")
        .header("host", "h")
        .body(client::full(vec![b'x'; 2048]))
        .unwrap();
    let resp = client::send(s.web(), Proto::H1, req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 413);
    assert!(!header(&resp, "x-request-id").is_empty());
    assert_eq!(up.started(), 0, "an over-limit body must not be forwarded");
    let req = Request::post("/")
        .header("host", "h")
        .body(client::full(vec![b'x'; 1024]))
        .unwrap();
    let resp = client::send(s.web(), Proto::H1, req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 200, "a body of exactly the limit is fine");
    assert_eq!(up.only_request().body_len, 1024);
}

#[tokio::test]
async fn chunked_body_over_max_request_body_gets_413() {
    let up = strait_e2e::Upstream::start("up").await;
    let s = Strait::start(&limited(&up)).await;
    let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let reply = client::raw_exchange(s.web(), raw.as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(reply.status(), Some(413), "reply: {}", reply.text());
    assert!(
        up.requests().iter().all(|r| r.body_len <= 1024),
        "more than the limit reached the upstream"
    );
}

#[tokio::test]
async fn stalled_upstream_body_is_cut_after_the_idle_timeout() {
    // An upstream that sends headers and part of the body, then goes silent.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await;
        use tokio::io::AsyncWriteExt;
        let _ = c
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello")
            .await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let s = Strait::start(&proxy_to(addr, "    timeouts: { idle: 300ms }\n")).await;
    let mut tcp = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    use tokio::io::AsyncWriteExt;
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let reply = client::read_until_close(&mut tcp, Duration::from_secs(5)).await;
    let elapsed = t.elapsed();
    assert_eq!(reply.status(), Some(200));
    assert!(
        reply.text().ends_with("hello"),
        "partial body forwarded: {:?}",
        reply.text()
    );
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
}
