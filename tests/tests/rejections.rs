//! Requests refused before routing leave a trace: each 400, 408, 414 and 431 (HTTP/1 guard and
//! the HTTP/2 equivalents) is counted in `strait_downstream_rejected_requests_total{reason}`,
//! appears in `strait_http_requests_total{route="unmatched"}` and gets an access log line. Also:
//! body framing hyper would refuse with an error (a 502 blamed on the upstream) is a 400 here.

use std::path::Path;
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, raw_exchange, Proto};
use strait_e2e::metrics::sum;
use strait_e2e::{poll_until, Strait, Upstream};
use tokio::io::AsyncWriteExt;

async fn start(up: &Upstream) -> Strait {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ header_read_timeout: 1s }}\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n\
         observability:\n  access_log: {{ path: access.log }}\n",
        up.addr()
    );
    Strait::start(&yaml).await
}

fn log_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The three traces of one refusal: the rejection counter, the unmatched request counter and
/// the access log line (whose fields are returned).
async fn assert_traced(s: &Strait, reason: &str, code: u16) -> serde_json::Value {
    let line = poll_until(Duration::from_secs(10), "access log line", || async {
        log_lines(&s.dir().join("access.log"))
            .into_iter()
            .find(|l| l["status"] == code)
    })
    .await;
    assert_eq!(line["route"], "unmatched", "{line}");
    assert_eq!(line["listener"], "web");
    let m = s.metrics().await;
    let rejected = sum(
        &m,
        "strait_downstream_rejected_requests_total",
        &[("listener", "web"), ("reason", reason)],
    );
    assert_eq!(rejected, 1.0, "{reason} counted once");
    let code = code.to_string();
    let unmatched = sum(
        &m,
        "strait_http_requests_total",
        &[("listener", "web"), ("route", "unmatched"), ("code", &code)],
    );
    assert_eq!(unmatched, 1.0, "unmatched {code} counted once");
    line
}

async fn h1_refused(vector: &[u8], status: u16, reason: &str) -> serde_json::Value {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let reply = raw_exchange(s.web(), vector, Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(status), "{}", reply.text());
    assert_eq!(up.started(), 0);
    assert_traced(&s, reason, status).await
}

#[tokio::test]
async fn http1_400_is_counted_and_logged_with_its_method_and_path() {
    let line = h1_refused(
        b"POST /smuggle?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
        "bad_request",
    )
    .await;
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/smuggle");
}

#[tokio::test]
async fn http1_408_is_counted_and_logged() {
    h1_refused(b"GET /slow HTTP/1.1\r\nHost: x\r\n", 408, "header_timeout").await;
}

#[tokio::test]
async fn http1_414_is_counted_and_logged() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    h1_refused(long.as_bytes(), 414, "uri_too_long").await;
}

#[tokio::test]
async fn http1_431_is_counted_and_logged() {
    let mut req = String::from("GET /many HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        req.push_str(&format!("x-h{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let line = h1_refused(req.as_bytes(), 431, "headers_too_large").await;
    assert_eq!(line["path"], "/many");
}

async fn h2_refused(req: Request<client::Body>, status: u16, reason: &str) {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let resp = client::send(s.web(), Proto::H2c, req)
        .await
        .expect("response");
    assert_eq!(resp.status(), status);
    assert!(!client::header(&resp, "x-request-id").is_empty());
    assert_eq!(up.started(), 0);
    let line = assert_traced(&s, reason, status).await;
    assert_eq!(line["protocol"], "HTTP/2");
}

#[tokio::test]
async fn http2_431_is_counted_and_logged() {
    let mut req = Request::get("http://localhost/many");
    for i in 0..150 {
        req = req.header(format!("x-h{i}"), "v");
    }
    h2_refused(req.body(client::empty()).unwrap(), 431, "headers_too_large").await;
}

#[tokio::test]
async fn http2_414_is_counted_and_logged() {
    let uri = format!("http://localhost/{}", "a".repeat(9000));
    let req = Request::get(uri).body(client::empty()).unwrap();
    h2_refused(req, 414, "uri_too_long").await;
}

#[tokio::test]
async fn http2_400_for_a_host_header_that_contradicts_the_authority_is_counted_and_logged() {
    let req = Request::get("http://localhost/x")
        .header("host", "elsewhere")
        .body(client::empty())
        .unwrap();
    h2_refused(req, 400, "bad_request").await;
}

/// Chunk extensions of 4 KiB in each of six chunks: under the per-line limit, over hyper's
/// 16 KiB per body, which used to fail inside hyper and come back as a 502 "upstream error".
#[tokio::test]
async fn chunk_extensions_over_16_kib_in_a_body_get_400_not_502() {
    let mut body = Vec::new();
    for _ in 0..6 {
        body.extend(format!("1;e={}\r\na\r\n", "x".repeat(4000)).as_bytes());
    }
    body.extend(b"0\r\n\r\n");
    refused_in_body(&body).await;
}

#[tokio::test]
async fn too_many_trailer_fields_get_400_not_502() {
    let mut body = b"1\r\na\r\n0\r\n".to_vec();
    for i in 0..150 {
        body.extend(format!("t{i}: v\r\n").as_bytes());
    }
    body.extend(b"\r\n");
    // In one piece with its head: the guard refuses the read whole, nothing reaches the
    // request path, and the refusal is traced like any other.
    let mut req = UPLOAD.to_vec();
    req.extend(&body);
    let line = h1_refused(&req, 400, "bad_request").await;
    assert_eq!(line["path"], "/upload");
    refused_in_body(&body).await;
}

const UPLOAD: &[u8] = b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

/// Sends the head, then (once it reached the upstream) `body`, which the guard refuses: a 400,
/// counted as a rejection; the request itself is a 400 on its route, never a 502.
async fn refused_in_body(body: &[u8]) {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let mut tcp = tokio::net::TcpStream::connect(s.web()).await.unwrap();
    tcp.write_all(UPLOAD).await.unwrap();
    up.wait_started(1, Duration::from_secs(5)).await;
    tcp.write_all(body).await.unwrap();
    let reply = client::read_until_close(&mut tcp, Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(400), "{}", reply.text());
    // The refusal is counted when the connection's HTTP/1 loop ends, which may be just after
    // the client saw the close: wait for both.
    let rejected = |m: &str| {
        sum(
            m,
            "strait_downstream_rejected_requests_total",
            &[("reason", "bad_request")],
        )
    };
    let m = poll_until(
        Duration::from_secs(5),
        "the request and the refusal are recorded",
        || async {
            let m = s.metrics().await;
            let n = sum(&m, "strait_http_requests_total", &[("route", "r")]);
            (n >= 1.0 && rejected(&m) >= 1.0).then_some(m)
        },
    )
    .await;
    assert_eq!(rejected(&m), 1.0);
    let code = |c: &str| {
        sum(
            &m,
            "strait_http_requests_total",
            &[("route", "r"), ("code", c)],
        )
    };
    assert_eq!((code("400"), code("502")), (1.0, 0.0));
}
