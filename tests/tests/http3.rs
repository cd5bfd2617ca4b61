//! HTTP/3 through the real binary: a TLS listener with `http3` serves the same routes, policies,
//! errors and metrics over HTTP/1.1, HTTP/2 and HTTP/3 (quinn + h3 client); Alt-Svc on the TCP
//! protocols; request bodies forwarded intact, one over its Content-Length refused; mutual TLS
//! over QUIC; the access log's protocol; a reload turning `http3` on and off; `http3` without
//! `tls` refused by `validate`; SIGTERM drains an HTTP/3 request in flight. gRPC over HTTP/3 is
//! in `http3_grpc.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use strait_e2e::certs::{Ca, Leaf};
use strait_e2e::config_file::{column_of, line_of, Validated};
use strait_e2e::h3::{send_on, H3Client, H3Response};
use strait_e2e::{metrics, poll_until, within, Reply, ReplyBody, Strait, Upstream};

const HOST: &str = "h3.test";

/// The server's CA and certificate; files live next to Strait's config.
struct Pki {
    ca: Ca,
    leaf: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let ca = Ca::new("h3");
        let leaf = ca.leaf(&[HOST]);
        Pki { ca, leaf }
    }

    async fn start(&self, yaml: &str, extra: &[(&str, &[u8])]) -> Strait {
        let mut files: Vec<(&str, &[u8])> = vec![
            ("server.pem", self.leaf.cert_pem.as_bytes()),
            ("server.key", self.leaf.key_pem.as_bytes()),
        ];
        files.extend_from_slice(extra);
        Strait::start_with_files(yaml, &files).await
    }

    async fn h3(&self, addr: SocketAddr) -> H3Client {
        within(
            Duration::from_secs(10),
            "HTTP/3 connect",
            H3Client::connect(addr, HOST, &[self.ca.der()]),
        )
        .await
        .expect("HTTP/3 connection")
    }

    fn https(&self, addr: SocketAddr, http1_only: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
            .resolve(HOST, addr)
            .timeout(Duration::from_secs(20));
        if http1_only {
            b = b.http1_only();
        }
        b.build().unwrap()
    }
}

/// A TLS listener with `http3: true`, a direct answer, a forwarded route with a header policy,
/// a denied route and an echoing route.
fn config(up: SocketAddr, extra_listener: &str, extra_top: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: {{ cert: server.pem, key: server.key }}\n\
         \x20   http3: true\n{extra_listener}\
         policies:\n  - name: tag\n    headers: {{ response: {{ add: {{ x-policy: tagged }} }} }}\n\
         \x20 - name: nobody\n    ip_rules: {{ deny: [127.0.0.0/8] }}\n\
         routes:\n  - name: hello\n    match: {{ path: /hello }}\n    respond: {{ status: 200, body: \"hello over any HTTP\" }}\n\
         \x20 - name: api\n    match: {{ path_prefix: /api/ }}\n    upstream: up\n    policies: [tag]\n\
         \x20 - name: denied\n    match: {{ path_prefix: /denied }}\n    upstream: up\n    policies: [nobody]\n\
         \x20 - name: echo\n    match: {{ path_prefix: /echo }}\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{up}\"]\n{extra_top}"
    )
}

/// An upstream echoing POST bodies and naming the path otherwise.
async fn upstream() -> Upstream {
    Upstream::with_handler("up", |r| {
        if r.method == http::Method::POST {
            Reply::text("").body(ReplyBody::Echo)
        } else {
            Reply::text(&format!("up saw {}", r.path_and_query())).header("x-up", "1")
        }
    })
    .await
}

/// What the three protocols must agree on.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    body: Bytes,
    policy: Option<String>,
    up: Option<String>,
    content_type: Option<String>,
}

/// The body with this response's request id (which Strait's error bodies name) left out.
fn without_id(body: Bytes, headers: &http::HeaderMap) -> Bytes {
    let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) else {
        return body;
    };
    let text = String::from_utf8_lossy(&body).replace(id, "ID");
    Bytes::from(text)
}

fn seen_h3(r: &H3Response) -> Seen {
    let h = r.response.headers();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    Seen {
        status: r.response.status().as_u16(),
        body: without_id(r.response.body().clone(), h),
        policy: get("x-policy"),
        up: get("x-up"),
        content_type: get("content-type"),
    }
}

fn h3_req(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Request<Bytes> {
    Request::builder()
        .method(method)
        .uri(format!("https://{HOST}:{}{path}", addr.port()))
        .body(Bytes::copy_from_slice(body))
        .unwrap()
}

async fn tcp_send(
    c: &reqwest::Client,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (Seen, Version, Option<String>) {
    let url = format!("https://{HOST}:{}{path}", addr.port());
    let m = http::Method::from_bytes(method.as_bytes()).unwrap();
    let resp = c.request(m, url).body(body.to_vec()).send().await.unwrap();
    let h = resp.headers().clone();
    let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_string());
    let version = resp.version();
    let status = resp.status().as_u16();
    let seen = Seen {
        status,
        policy: get("x-policy"),
        up: get("x-up"),
        content_type: get("content-type"),
        body: without_id(resp.bytes().await.unwrap(), &h),
    };
    (seen, version, get("alt-svc"))
}

#[tokio::test]
async fn the_same_routes_answer_alike_over_http1_http2_and_http3() {
    let pki = Pki::new();
    let up = upstream().await;
    let s = pki.start(&config(up.addr(), "", ""), &[]).await;
    let addr = s.web();
    let h1 = pki.https(addr, true);
    let h2 = pki.https(addr, false);
    let mut h3 = pki.h3(addr).await;
    let alt_svc = format!("h3=\":{}\"; ma=86400", addr.port());
    let cases: [(&str, &str, &[u8], u16); 6] = [
        ("GET", "/hello", b"", 200),
        ("GET", "/api/items?page=2", b"", 200),
        ("GET", "/denied/x", b"", 403),
        ("POST", "/echo", b"posted body", 200),
        ("GET", "/nowhere", b"", 404),
        // Escaped slashes are refused before routing, on every protocol alike.
        ("GET", "/api/a%2Fb", b"", 400),
    ];
    for (method, path, body, status) in cases {
        let (one, v1, alt1) = tcp_send(&h1, addr, method, path, body).await;
        let (two, v2, alt2) = tcp_send(&h2, addr, method, path, body).await;
        let three = h3.send(h3_req(addr, method, path, body)).await.unwrap();
        assert_eq!(v1, Version::HTTP_11);
        assert_eq!(v2, Version::HTTP_2);
        assert_eq!(three.response.version(), Version::HTTP_3);
        let three_seen = seen_h3(&three);
        assert_eq!(one.status, status, "{method} {path} over HTTP/1.1");
        assert_eq!(one, two, "{method} {path}: HTTP/1.1 and HTTP/2 differ");
        assert_eq!(
            one, three_seen,
            "{method} {path}: HTTP/1.1 and HTTP/3 differ"
        );
        assert_eq!(
            alt1.as_deref(),
            Some(alt_svc.as_str()),
            "Alt-Svc on HTTP/1.1"
        );
        assert_eq!(alt2.as_deref(), Some(alt_svc.as_str()), "Alt-Svc on HTTP/2");
        assert!(
            three.response.headers().get("alt-svc").is_none(),
            "no Alt-Svc over HTTP/3 itself"
        );
        assert!(three.response.headers().get("x-request-id").is_some());
    }
    // The upstream got the forwarded requests over HTTP/1.1, path intact.
    let api: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query() == "/api/items?page=2")
        .collect();
    assert_eq!(api.len(), 3);
    assert!(api.iter().all(|r| r.version == Version::HTTP_11));
    // A GET without a body stays without one upstream (no chunked framing invented).
    let h3_get = &api[2];
    assert_eq!(
        h3_get.header("transfer-encoding"),
        "",
        "{:?}",
        h3_get.headers
    );
    assert_eq!(h3_get.header("x-forwarded-proto"), "https");

    // Metrics: HTTP/3 requests are counted with the others, QUIC connections per listener.
    let text = s.metrics().await;
    let hello = metrics::sum(&text, "strait_http_requests_total", &[("route", "hello")]);
    assert_eq!(hello, 3.0, "hello counted once per protocol");
    let quic = metrics::sum(
        &text,
        "strait_downstream_connections_active",
        &[("listener", "web"), ("protocol", "quic")],
    );
    assert_eq!(quic, 1.0, "the open QUIC connection");
}

#[tokio::test]
async fn a_1_mib_request_body_is_forwarded_intact_over_http3() {
    let pki = Pki::new();
    let up = upstream().await;
    let s = pki.start(&config(up.addr(), "", ""), &[]).await;
    let addr = s.web();
    let mut h3 = pki.h3(addr).await;
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    // With a Content-Length, and without one (then it streams upstream chunked).
    let mut with_len = h3_req(addr, "POST", "/echo/len", &body);
    with_len
        .headers_mut()
        .insert("content-length", body.len().to_string().parse().unwrap());
    for req in [with_len, h3_req(addr, "POST", "/echo/stream", &body)] {
        let path = req.uri().path().to_string();
        let resp = within(Duration::from_secs(30), "1 MiB POST", h3.send(req))
            .await
            .unwrap();
        assert_eq!(resp.response.status(), StatusCode::OK, "{path}");
        assert!(resp.response.body()[..] == body[..], "{path}: echo differs");
        let rec = up
            .requests()
            .into_iter()
            .find(|r| r.path_and_query() == path)
            .expect("forwarded");
        assert_eq!(rec.body_len, body.len() as u64, "{path}");
    }
    // A body longer than its Content-Length is malformed (RFC 9114 §4.1.2): not forwarded whole.
    let mut lying = h3_req(addr, "POST", "/echo/lying", b"0123456789");
    lying
        .headers_mut()
        .insert("content-length", "4".parse().unwrap());
    let resp = h3.send(lying).await;
    if let Ok(r) = resp {
        assert_ne!(
            r.response.status(),
            StatusCode::OK,
            "a lying body was accepted"
        );
    }
    assert!(up
        .requests()
        .iter()
        .all(|r| r.path_and_query() != "/echo/lying" || r.body_len <= 4));
}

/// Regression: a body going over its Content-Length while the client was still sending made
/// h3-quinn panic inside Strait (STOP_SENDING during an outstanding read), which killed the
/// upstream connection: the client got 502 and the upstream was blamed for it.
#[tokio::test]
async fn a_body_over_its_content_length_while_still_arriving_gets_400_without_a_panic() {
    let pki = Pki::new();
    let up = upstream().await;
    let s = pki.start(&config(up.addr(), "", ""), &[]).await;
    let addr = s.web();
    let h3 = pki.h3(addr).await;
    let mut sender = h3.sender.clone();
    for n in 1..=3 {
        let mut req = h3_req(addr, "POST", "/echo/over", b"").map(|_| ());
        req.headers_mut()
            .insert("content-length", "4".parse().unwrap());
        let mut stream = sender.send_request(req).await.unwrap();
        // The head is forwarded first: once the upstream has it, Strait waits for the body.
        up.wait_started(n, Duration::from_secs(10)).await;
        stream
            .send_data(Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let resp = within(Duration::from_secs(10), "answer", stream.recv_response())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "request {n}");
    }
    let logs = s.logs_text();
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(up.requests().iter().all(|r| r.body_len <= 4));
}

#[tokio::test]
async fn the_access_log_names_http3_and_mutual_tls_applies_over_quic() {
    let pki = Pki::new();
    let clients = Ca::new("clients");
    let up = upstream().await;
    let yaml = config(
        up.addr(),
        "",
        "observability:\n  access_log: { path: access.log }\n",
    )
    .replace(
        "key: server.key }",
        "key: server.key, client_auth: { ca: clients.pem } }",
    );
    let clients_pem = clients.pem();
    let s = pki
        .start(&yaml, &[("clients.pem", clients_pem.as_bytes())])
        .await;
    let addr = s.web();
    // Without a client certificate the QUIC handshake fails, as the TCP one does.
    let refused = within(
        Duration::from_secs(10),
        "connect without a certificate",
        async {
            match H3Client::connect(addr, HOST, &[pki.ca.der()]).await {
                Err(e) => Err(e),
                // TLS 1.3: the server's refusal may come after the client thinks it is done.
                Ok(mut c) => c.send(h3_req(addr, "GET", "/hello", b"")).await.map(|_| ()),
            }
        },
    )
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );
    let leaf = clients.client("h3-client", &["spiffe://example.org/h3"]);
    let chain = vec![leaf.der.clone()];
    let key = leaf.key_der();
    let mut c = within(
        Duration::from_secs(10),
        "connect with a certificate",
        H3Client::connect_with(addr, HOST, &[pki.ca.der()], Some((chain, key))),
    )
    .await
    .expect("mutual TLS over QUIC");
    let resp = c.send(h3_req(addr, "GET", "/api/who", b"")).await.unwrap();
    assert_eq!(resp.response.status(), 200);
    let rec = up
        .requests()
        .into_iter()
        .find(|r| r.path_and_query() == "/api/who")
        .unwrap();
    let xfcc = rec.header("x-forwarded-client-cert");
    assert!(
        xfcc.contains("spiffe://example.org/h3"),
        "the verified client certificate goes upstream: {xfcc:?}"
    );
    let path = s.dir().join("access.log");
    let line = wait_log(&path, "/api/who").await;
    assert_eq!(line["protocol"], "HTTP/3", "{line}");
    assert_eq!(line["route"], "api", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}

async fn wait_log(path: &Path, want: &str) -> serde_json::Value {
    poll_until(Duration::from_secs(10), "access log line", || async {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["path"] == want)
    })
    .await
}

#[tokio::test]
async fn sigterm_lets_an_http3_request_in_flight_finish_then_exits_0() {
    let pki = Pki::new();
    let up = Upstream::with_handler("up", |_| {
        Reply::text("slow but complete").delay(Duration::from_millis(1500))
    })
    .await;
    let mut s = pki.start(&config(up.addr(), "", ""), &[]).await;
    let addr = s.web();
    let h3 = pki.h3(addr).await;
    let mut sender = h3.sender.clone();
    // The request task holds the only sender: when it is done the client closes the connection,
    // which Strait waits for after a response, so the last bytes are not discarded with it.
    drop(h3);
    let inflight =
        tokio::spawn(
            async move { send_on(&mut sender, h3_req(addr, "GET", "/api/slow", b"")).await },
        );
    poll_until(
        Duration::from_secs(10),
        "request reaches the upstream",
        || async { (up.started() >= 1).then_some(()) },
    )
    .await;
    s.signal("TERM");
    let resp = within(Duration::from_secs(15), "in-flight response", inflight)
        .await
        .unwrap()
        .expect("the request in flight finished");
    assert_eq!(resp.response.status(), 200);
    assert_eq!(&resp.response.body()[..], b"slow but complete");
    let status = s.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{}", s.logs_text());
}

/// A second, independent client (Python's aioquic), when installed (`pip install aioquic`):
/// the answers do not depend on quinn talking to quinn.
#[tokio::test]
async fn an_independent_client_aioquic_gets_the_same_answers() {
    let py = strait_e2e::python_tools_path();
    let probe = std::process::Command::new("python3")
        .args(["-c", "import aioquic"])
        .env("PYTHONPATH", &py)
        .output();
    if !probe.is_ok_and(|o| o.status.success())
        && std::env::var_os("STRAIT_E2E_REQUIRE_PY").is_none()
    {
        eprintln!("skipped: python3 cannot import aioquic (scripts/py-tools.sh installs it)");
        return;
    }
    let pki = Pki::new();
    let up = upstream().await;
    let s = pki.start(&config(up.addr(), "", ""), &[]).await;
    let addr = s.web();
    let ca = pki.ca.write(s.dir(), "ca.pem");
    let script = strait_e2e::workspace_root().join("tests/tools/h3get.py");
    for (path, status, body, policy) in [
        ("/hello", 200, "hello over any HTTP", None),
        ("/api/x?y=1", 200, "up saw /api/x?y=1", Some("tagged")),
        ("/denied", 403, "", None),
        ("/nowhere", 404, "no route matched", None),
    ] {
        let out = within(
            Duration::from_secs(30),
            "aioquic GET",
            tokio::process::Command::new("python3")
                .env("PYTHONPATH", &py)
                .arg(&script)
                .args(["127.0.0.1", &addr.port().to_string(), HOST])
                .arg(&ca)
                .arg(path)
                .output(),
        )
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{path}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], status, "{path}: {v}");
        assert!(v["body"].as_str().unwrap().contains(body), "{path}: {v}");
        assert_eq!(v["headers"]["x-policy"].as_str(), policy, "{path}: {v}");
    }
}

/// Whether a fresh HTTP/1.1 connection's response carries `alt` as its Alt-Svc.
async fn advertises(pki: &Pki, addr: SocketAddr, alt: Option<&str>) -> Option<()> {
    let (_, _, got) = tcp_send(&pki.https(addr, true), addr, "GET", "/hello", b"").await;
    (got.as_deref() == alt).then_some(())
}

async fn h3_refused(pki: &Pki, addr: SocketAddr) -> bool {
    let attempt = async {
        let mut c = H3Client::connect(addr, HOST, &[pki.ca.der()]).await?;
        c.send(h3_req(addr, "GET", "/hello", b"")).await
    };
    !matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn a_reload_turns_http3_on_and_off_on_a_running_listener() {
    let pki = Pki::new();
    let up = upstream().await;
    let with = config(up.addr(), "", "");
    let without = with.replace("    http3: true\n", "");
    let s = pki.start(&without, &[]).await;
    let addr = s.web();
    assert_eq!(advertises(&pki, addr, None).await, Some(()));
    assert!(
        h3_refused(&pki, addr).await,
        "HTTP/3 served before it was configured"
    );

    s.write_config(&with);
    s.signal("HUP");
    let alt = format!("h3=\":{}\"; ma=86400", addr.port());
    poll_until(Duration::from_secs(10), "Alt-Svc after the reload", || {
        advertises(&pki, addr, Some(&alt))
    })
    .await;
    let mut h3 = pki.h3(addr).await;
    let resp = h3.send(h3_req(addr, "GET", "/hello", b"")).await.unwrap();
    assert_eq!(resp.response.status(), 200);
    drop(h3);

    s.write_config(&without);
    s.signal("HUP");
    poll_until(
        Duration::from_secs(10),
        "no Alt-Svc after the reload",
        || advertises(&pki, addr, None),
    )
    .await;
    assert!(
        h3_refused(&pki, addr).await,
        "HTTP/3 still served after it was removed"
    );
}

#[test]
fn http3_without_tls_is_an_error_at_the_field() {
    let yaml =
        "admin: { listen: \"127.0.0.1:0\" }\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n\
                \x20   http3: true\nroutes:\n  - name: r\n    respond: { status: 200 }\n";
    let v = Validated::run(yaml, &[]);
    let line = line_of(yaml, "http3: true");
    let want = format!(
        ":{line}:{}: listener `web`: http3 needs `tls`",
        column_of(yaml, "http3: true", "true")
    );
    assert!(
        v.errors_at(line).iter().any(|l| l.contains(&want)),
        "no {want:?}; stderr:\n{}",
        v.stderr
    );
}

#[test]
fn http3_limits_are_validated_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Ca::new("cfg").leaf(&[HOST]).write(dir.path(), "server");
    let base = format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         \x20   tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        cert.display(),
        key.display()
    );
    let tail = "routes:\n  - name: r\n    respond: { status: 200 }\n";
    let bad =
        format!("{base}    http3: {{ max_udp_payload_size: 900, idle_timeout: soon }}\n{tail}");
    let v = Validated::run(&bad, &[]);
    let line = line_of(&bad, "max_udp_payload_size");
    let errors = v.errors_at(line).join("\n");
    assert!(
        errors.contains("http3.max_udp_payload_size"),
        "{}",
        v.stderr
    );
    assert!(errors.contains("http3.idle_timeout"), "{}", v.stderr);
    let good = format!("{base}    http3: {{ max_concurrent_streams: 50 }}\n{tail}");
    let file = dir.path().join("good.yaml");
    std::fs::write(&file, &good).unwrap();
    let out = strait_e2e::strait::run_cli(&["validate", "--print", "-c", file.to_str().unwrap()]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "max_concurrent_streams: 50",
        "idle_timeout: 30s",
        "max_udp_payload_size: 1350",
    ] {
        assert!(printed.contains(want), "{want} not in:\n{printed}");
    }
}
