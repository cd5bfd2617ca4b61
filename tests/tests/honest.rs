//! Honest errors through the real binary: clients get a status, a generic reason and the request id (never an upstream address); operators get the detail in the access log, the span and a rate-limited warn line; gRPC clients get `grpc-status`; upgrades are tunnelled only as the route allows.

use std::time::Duration;

use http::Request;
use strait_e2e::certs::Ca;
use strait_e2e::client::{self, empty, Proto};
use strait_e2e::grpc::EchoClient;
use strait_e2e::upstream::SilentUpstream;
use strait_e2e::{closed_addr, poll_until, Reply, Strait, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn get(path: &str) -> Request<client::Body> {
    Request::get(path)
        .header("host", "h")
        .body(empty())
        .unwrap()
}

fn access_log(s: &Strait) -> Vec<serde_json::Value> {
    strait_e2e::json_lines(&s.dir().join("access.log"))
}

#[tokio::test]
async fn a_dead_upstream_is_named_to_operators_but_never_to_clients() {
    let dead = closed_addr();
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{dead}\"]\n\
         observability:\n  access_log: {{ path: access.log }}\n"
    );
    let s = Strait::start(&yaml).await;
    for i in 0..40 {
        let req = Request::get("/")
            .header("host", "h")
            .header("x-request-id", format!("dead-{i}"))
            .body(empty())
            .unwrap();
        let resp = client::send(s.web(), Proto::H1, req).await.unwrap();
        assert_eq!(resp.status(), 502);
        let body = client::text(&resp);
        assert_eq!(body, format!("strait: bad gateway (request id dead-{i})\n"));
        assert!(!body.contains(&dead.to_string()) && !body.contains("up"));
    }
    let log = poll_until(Duration::from_secs(10), "40 access log lines", || async {
        let l = access_log(&s);
        (l.len() >= 40).then_some(l)
    })
    .await;
    let error = log[0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("upstream up")
            && error.contains(&dead.to_string())
            && error.contains("refused"),
        "access log error: {error}"
    );
    // The warn lines name the cause, at most ten a second, and say how many were held back.
    let logs = s.logs_text();
    let warns: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains("request failed"))
        .collect();
    assert!(
        !warns.is_empty() && warns.len() <= 20,
        "{} warn lines",
        warns.len()
    );
    assert!(warns[0].contains(&dead.to_string()), "{}", warns[0]);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_is_explained_in_the_access_log() {
    let leaf = Ca::new("unknown-ca").leaf(&["localhost"]);
    let up = Upstream::with_tls("tls", leaf.server_config(&[b"http/1.1"]), |_| {
        Reply::text("x")
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"localhost:{}\"]\n    tls: {{}}\n\
         observability:\n  access_log: {{ path: access.log }}\n",
        up.addr().port()
    );
    let s = Strait::start(&yaml).await;
    assert_eq!(client::status(s.web(), get("/")).await, 502);
    let log = poll_until(Duration::from_secs(10), "an access log line", || async {
        let l = access_log(&s);
        (!l.is_empty()).then_some(l)
    })
    .await;
    let error = log[0]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("TLS handshake") && error.contains("certificate"),
        "access log error: {error}"
    );
    assert!(
        s.logs_text().contains("TLS handshake"),
        "warn line names the cause"
    );
}

#[tokio::test]
async fn grpc_clients_get_a_grpc_status_for_local_replies() {
    let hung = SilentUpstream::start().await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  \
         - name: dead\n    match: {{ path_prefix: /dead. }}\n    upstream: dead\n  \
         - name: hung\n    match: {{ path_prefix: /hung. }}\n    upstream: hung\n  \
         - name: echo\n    match: {{ path_prefix: /strait.test.Echo/ }}\n    upstream: dead\n    \
         policies: [{{ fault: {{ abort: {{ status: 429 }} }} }}]\n\
         upstreams:\n  - name: dead\n    protocol: h2c\n    endpoints: [\"{}\"]\n  \
         - name: hung\n    protocol: h2c\n    endpoints: [\"{}\"]\n    timeouts: {{ request: 300ms }}\n",
        closed_addr(),
        hung.addr()
    );
    let s = Strait::start(&yaml).await;
    // The echo client calls /strait.test.Echo/Unary: the fault answers 429 → RESOURCE_EXHAUSTED.
    let mut c = EchoClient::connect(s.web()).await.unwrap();
    let status = c.unary("hi").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    for (path, grpc) in [
        ("/nowhere/X", "12"),
        ("/dead.S/M", "14"),
        ("/hung.S/M", "4"),
    ] {
        let req = Request::post(format!("http://{}{path}", s.web()))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(empty())
            .unwrap();
        let resp = client::send(s.web(), Proto::H2c, req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}: gRPC replies are HTTP 200");
        assert_eq!(client::header(&resp, "grpc-status"), grpc, "{path}");
        assert!(!client::header(&resp, "grpc-message").is_empty(), "{path}");
    }
    let m = s.metrics().await;
    assert!(
        m.contains("code=\"404\"") && m.contains("code=\"502\"") && m.contains("code=\"504\""),
        "metrics keep the status Strait decided:\n{m}"
    );
}

#[tokio::test]
async fn an_h2c_upgrade_is_never_tunnelled_and_only_allowed_tokens_pass() {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    for token in ["h2c", "foo/1", "websocket, h2c"] {
        let req = format!(
            "GET /x HTTP/1.1\r\nhost: h\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: {token}\r\n\
             http2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        );
        let reply = client::raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(3)).await;
        assert_eq!(
            reply.status(),
            Some(200),
            "{token}: served as a plain request"
        );
    }
    for r in up.requests() {
        assert!(r.headers.get("upgrade").is_none(), "{:?}", r.headers);
        assert!(r.headers.get("http2-settings").is_none(), "{:?}", r.headers);
    }
}

#[tokio::test]
async fn a_101_the_client_did_not_ask_for_is_a_502() {
    // An upstream that switches protocols whatever it is asked.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{addr}\"]\n"
    );
    let s = Strait::start(&yaml).await;
    // A plain request answered with 101, and a WebSocket request answered with a switch to h2c.
    assert_eq!(client::status(s.web(), get("/")).await, 502);
    let ws = "GET /ws HTTP/1.1\r\nhost: h\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let reply = client::raw_exchange(s.web(), ws.as_bytes(), Duration::from_secs(3)).await;
    assert_eq!(reply.status(), Some(502), "{}", reply.text());
}

#[tokio::test]
async fn head_and_http2_local_answers_never_carry_a_forbidden_body() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  \
                - name: r\n    respond: { status: 200, body: \"hello\" }\n";
    let s = Strait::start(yaml).await;
    let mut tcp = TcpStream::connect(s.web()).await.unwrap();
    tcp.write_all(b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\nGET / HTTP/1.1\r\nhost: h\r\n\r\n")
        .await
        .unwrap();
    let reply = client::read_until_close(&mut tcp, Duration::from_secs(2)).await;
    assert_eq!(reply.response_count(), 2, "{}", reply.text());
    assert_eq!(reply.text().matches("hello").count(), 1, "{}", reply.text());
    let req = Request::head(format!("http://{}/", s.web()))
        .body(empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H2c, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.body().is_empty());
}
