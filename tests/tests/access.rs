//! Client address and access policies through the real binary: trusted proxies and `X-Forwarded-For`, the PROXY protocol (v1, v2, refused headers, with TLS), `ip_rules`, `request_limits` (413, 504) and `cors`, each denial named in the access log and `strait_policy_denials_total`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strait_e2e::certs::{provider, Ca};
use strait_e2e::client::{raw_exchange, read_until_close, RawReply};
use strait_e2e::config_file::{line_of, Validated};
use strait_e2e::metrics::sum;
use strait_e2e::{within, Reply, Strait, Upstream};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LOG: &str = "observability:\n  access_log: { path: access.log }\n";

fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: h\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

async fn exchange(addr: SocketAddr, data: &[u8]) -> RawReply {
    raw_exchange(addr, data, Duration::from_secs(10)).await
}

async fn log_lines(s: &Strait, n: usize) -> Vec<serde_json::Value> {
    strait_e2e::wait_json_lines(&s.dir().join("access.log"), n).await
}

fn denials(m: &str, policy: &str, reason: &str) -> f64 {
    sum(
        m,
        "strait_policy_denials_total",
        &[("policy", policy), ("reason", reason)],
    )
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_peers_and_feeds_ip_rules() {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    \
         client_address: {{ trusted_proxies: [127.0.0.0/8] }}\n  \
         - name: strict\n    listen: 127.0.0.1:0\n    \
         client_address: {{ trusted_proxies: [10.0.0.0/8] }}\n\
         policies:\n  - name: no-evil\n    ip_rules: {{ deny: [198.51.100.0/24, \"2001:db8:bad::/48\"] }}\n  \
         - name: v6-only\n    ip_rules: {{ allow: [\"2001:db8::/32\"] }}\n\
         routes:\n  - name: v6\n    match: {{ path_prefix: /v6 }}\n    upstream: up\n    policies: [v6-only]\n  \
         - name: api\n    upstream: up\n    policies: [no-evil]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let web = s.web();
    let strict = s.addr("strict");
    let xff = |v: &str| format!("X-Forwarded-For: {v}\r\n");

    // Trusted peer: the right-most untrusted entry is the client; the forwarded header keeps the
    // chain and appends the peer.
    let r = exchange(web, &get("/", &xff("203.0.113.5"))).await;
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert_eq!(
        up.requests()[0].header("x-forwarded-for"),
        "203.0.113.5, 127.0.0.1"
    );
    // A denied client, direct and behind a trusted hop.
    for chain in ["198.51.100.7", "198.51.100.7, 127.0.0.5", "2001:db8:bad::1"] {
        let r = exchange(web, &get("/", &xff(chain))).await;
        assert_eq!(r.status(), Some(403), "{chain}: {}", r.text());
        assert!(!r.text().contains("198.51.100"), "no internals echoed");
    }
    // A spoofed left-most entry does not matter: the right-most untrusted one is the client.
    let r = exchange(web, &get("/", &xff("198.51.100.7, 203.0.113.5"))).await;
    assert_eq!(r.status(), Some(200));
    // A malformed entry stops the walk: the last good (trusted) address is the client.
    let r = exchange(web, &get("/", &xff("198.51.100.7, bogus"))).await;
    assert_eq!(r.status(), Some(200));
    // Untrusted peer (127.0.0.1 is not in 10.0.0.0/8): the header is ignored.
    let r = exchange(strict, &get("/", &xff("198.51.100.7"))).await;
    assert_eq!(r.status(), Some(200), "{}", r.text());
    // IPv6 allow list through the header.
    let r = exchange(web, &get("/v6", &xff("2001:db8::42"))).await;
    assert_eq!(r.status(), Some(200));
    let r = exchange(web, &get("/v6", &xff("[2001:db9::1]:4711"))).await;
    assert_eq!(r.status(), Some(403));
    let r = exchange(web, &get("/v6", "")).await;
    assert_eq!(r.status(), Some(403), "127.0.0.1 is not allowed");

    let m = s.metrics().await;
    assert_eq!(denials(&m, "no-evil", "ip_denied"), 3.0, "{m}");
    assert_eq!(denials(&m, "v6-only", "ip_denied"), 2.0, "{m}");
    let log = log_lines(&s, 10).await;
    assert_eq!(log[0]["client_address"], "203.0.113.5:0", "{}", log[0]);
    assert_eq!(log[1]["policy"], "no-evil");
    assert_eq!(log[1]["policy_reason"], "ip_denied");
    assert_eq!(log[1]["status"], 403);
    assert_eq!(log[1]["client_address"], "198.51.100.7:0");
    assert!(log[6]["client_address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
}

fn v2_header(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&8080u16.to_be_bytes());
    h
}

#[tokio::test]
async fn proxy_protocol_names_the_client_and_refuses_connections_without_a_valid_header() {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    proxy_protocol: true\n    \
         limits: {{ header_read_timeout: 500ms }}\n\
         policies:\n  - name: no-evil\n    ip_rules: {{ deny: [198.51.100.0/24] }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [no-evil]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let web = s.web();
    let with = |h: &[u8]| [h, &get("/", "")].concat();

    let r = exchange(web, &with(b"PROXY TCP4 192.0.2.7 127.0.0.1 5123 8080\r\n")).await;
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert_eq!(up.requests()[0].header("x-forwarded-for"), "192.0.2.7");
    let r = exchange(web, &with(&v2_header([192, 0, 2, 8], 6000))).await;
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert_eq!(up.requests()[1].header("x-forwarded-for"), "192.0.2.8");
    let r = exchange(web, &with(b"PROXY TCP6 2001:db8::5 ::1 1 2\r\n")).await;
    assert_eq!(r.status(), Some(200));
    let r = exchange(web, &with(b"PROXY UNKNOWN\r\n")).await;
    assert_eq!(r.status(), Some(200), "UNKNOWN keeps the peer");
    let r = exchange(web, &with(b"PROXY TCP4 198.51.100.9 127.0.0.1 1 2\r\n")).await;
    assert_eq!(
        r.status(),
        Some(403),
        "the header's address is the client for ip_rules"
    );

    // Refused: no header, a malformed one, an oversized one, a slow one. Closed, no response.
    let mut oversized = b"PROXY TCP4 ".to_vec();
    oversized.resize(300, b'1');
    for (label, data) in [
        ("missing", get("/", "")),
        ("malformed", with(b"PROXY TCP4 192.0.2.7 nonsense 1 2\r\n")),
        ("oversized", oversized),
    ] {
        let r = exchange(web, &data).await;
        assert!(r.closed && r.bytes.is_empty(), "{label}: {}", r.text());
    }
    let mut slow = within(Duration::from_secs(5), "connect", TcpStream::connect(web))
        .await
        .unwrap();
    slow.write_all(b"PROXY TCP4 192.0.2.7").await.unwrap();
    let started = std::time::Instant::now();
    let r = read_until_close(&mut slow, Duration::from_secs(5)).await;
    assert!(r.closed && r.bytes.is_empty(), "slow: {}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        up.requests().len(),
        4,
        "refused connections never reached the upstream"
    );

    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_downstream_rejected_requests_total",
            &[("listener", "web"), ("reason", "proxy_protocol")]
        ),
        4.0,
        "{m}"
    );
    assert_eq!(denials(&m, "no-evil", "ip_denied"), 1.0);
    let log = log_lines(&s, 5).await;
    assert_eq!(log[0]["client_address"], "192.0.2.7:5123");
    assert_eq!(log[4]["policy"], "no-evil");
}

#[tokio::test]
async fn proxy_protocol_comes_before_tls() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("access-ca");
    let (cert, key) = ca.leaf(&["localhost"]).write(dir.path(), "leaf");
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    proxy_protocol: true\n    \
         tls: {{ cert: \"{}\", key: \"{}\" }}\n\
         routes:\n  - name: api\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        cert.display(),
        key.display(),
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut tcp = TcpStream::connect(s.web()).await.unwrap();
    tcp.write_all(&v2_header([192, 0, 2, 44], 7000))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = within(
        Duration::from_secs(10),
        "TLS handshake after the PROXY header",
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .expect("handshake");
    tls.write_all(&get("/", "")).await.unwrap();
    let mut out = Vec::new();
    let _ = within(
        Duration::from_secs(10),
        "TLS response",
        tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut out),
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(up.only_request().header("x-forwarded-for"), "192.0.2.44");
}

#[tokio::test]
async fn request_limits_answer_413_for_large_bodies_and_504_past_the_deadline() {
    let up = Upstream::start("up").await;
    let slow = Upstream::with_handler("slow", |_| {
        Reply::text("late").delay(Duration::from_secs(3))
    })
    .await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: small-bodies\n    request_limits: {{ max_body: 1KiB, timeout: 400ms }}\n\
         routes:\n  - name: slow\n    match: {{ path_prefix: /slow }}\n    upstream: slow\n    policies: [small-bodies]\n  \
         - name: api\n    upstream: up\n    policies: [small-bodies]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n  - name: slow\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr(),
        slow.addr()
    );
    let s = Strait::start(&yaml).await;
    let web = s.web();
    let post = |head: &str, body: &[u8]| {
        [
            format!("POST / HTTP/1.1\r\nHost: h\r\n{head}Connection: close\r\n\r\n").as_bytes(),
            body,
        ]
        .concat()
    };
    // Within the cap.
    let r = exchange(web, &post("Content-Length: 1024\r\n", &[b'a'; 1024])).await;
    assert_eq!(r.status(), Some(200), "{}", r.text());
    // Declared too large: refused at once, before the upstream.
    let r = exchange(web, &post("Content-Length: 1025\r\n", &[b'a'; 1025])).await;
    assert_eq!(r.status(), Some(413), "{}", r.text());
    // Chunked, crossing the cap while streaming.
    let mut chunked = Vec::new();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'b'; 0x200]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(web, &post("Transfer-Encoding: chunked\r\n", &chunked)).await;
    assert_eq!(r.status(), Some(413), "{}", r.text());
    assert_eq!(
        up.requests().iter().filter(|q| q.body_len > 1024).count(),
        0
    );
    // The upstream answers after the route's deadline.
    let started = std::time::Instant::now();
    let r = exchange(web, &get("/slow", "")).await;
    assert_eq!(r.status(), Some(504), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let m = s.metrics().await;
    assert_eq!(denials(&m, "small-bodies", "body_too_large"), 2.0, "{m}");
    assert_eq!(denials(&m, "small-bodies", "request_timeout"), 1.0, "{m}");
    let log = log_lines(&s, 4).await;
    assert_eq!(log[1]["policy"], "small-bodies");
    assert_eq!(log[2]["policy"], "small-bodies");
    assert_eq!(log[3]["policy"], "small-bodies");
    assert_eq!(log[3]["policy_reason"], "request_timeout");
    assert_eq!(log[3]["status"], 504);
}

#[tokio::test]
async fn cors_answers_preflights_and_decorates_allowed_responses() {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: web-app\n    cors: {{ allow_origins: [\"https://app.example\", \"https://*.example.com\"], \
         allow_methods: [GET, POST], allow_headers: [authorization, content-type], expose_headers: [x-total], \
         allow_credentials: true, max_age: 10m }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [web-app]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let web = s.web();
    let preflight = |origin: &str, method: &str, headers: &str| {
        format!(
            "OPTIONS /x HTTP/1.1\r\nHost: h\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\n\
             Access-Control-Request-Headers: {headers}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let r = exchange(
        web,
        &preflight("https://app.example", "POST", "content-type, Authorization"),
    )
    .await;
    let t = r.text().to_ascii_lowercase();
    assert_eq!(r.status(), Some(204), "{t}");
    assert!(
        t.contains("access-control-allow-origin: https://app.example\r\n"),
        "{t}"
    );
    assert!(
        t.contains("access-control-allow-methods: get, post\r\n"),
        "{t}"
    );
    assert!(
        t.contains("access-control-allow-credentials: true\r\n"),
        "{t}"
    );
    assert!(t.contains("access-control-max-age: 600\r\n"), "{t}");
    assert!(t.contains("vary: origin"), "{t}");
    let r = exchange(web, &preflight("https://a.b.Example.com", "GET", "")).await;
    assert_eq!(r.status(), Some(204), "{}", r.text());
    for (origin, method, headers) in [
        ("https://evil.example", "GET", ""),
        ("https://app.example", "DELETE", ""),
        ("https://app.example", "GET", "x-secret"),
        ("https://example.com.evil.com", "GET", ""),
    ] {
        let r = exchange(web, &preflight(origin, method, headers)).await;
        assert_eq!(
            r.status(),
            Some(403),
            "{origin} {method} {headers}: {}",
            r.text()
        );
        assert!(!r
            .text()
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"));
    }
    assert_eq!(
        up.requests().len(),
        0,
        "preflights are answered at the gateway"
    );

    // Actual requests: allowed origin gets the headers, others do not; both vary on Origin.
    let r = exchange(web, &get("/", "Origin: https://app.example\r\n")).await;
    let t = r.text().to_ascii_lowercase();
    assert_eq!(r.status(), Some(200));
    assert!(
        t.contains("access-control-allow-origin: https://app.example\r\n"),
        "{t}"
    );
    assert!(
        t.contains("access-control-allow-credentials: true\r\n"),
        "{t}"
    );
    assert!(
        t.contains("access-control-expose-headers: x-total\r\n"),
        "{t}"
    );
    assert!(t.contains("vary: origin"), "{t}");
    let r = exchange(web, &get("/", "Origin: https://evil.example\r\n")).await;
    let t = r.text().to_ascii_lowercase();
    assert_eq!(r.status(), Some(200));
    assert!(!t.contains("access-control-allow-origin"), "{t}");
    assert!(t.contains("vary: origin"), "{t}");

    let m = s.metrics().await;
    assert_eq!(denials(&m, "web-app", "preflight"), 2.0, "{m}");
    assert_eq!(denials(&m, "web-app", "cors_denied"), 4.0, "{m}");
    let log = log_lines(&s, 8).await;
    assert_eq!(log[0]["policy"], "web-app");
    assert_eq!(log[2]["policy"], "web-app");
    assert_eq!(log[2]["status"], 403);
    assert_eq!(log[6]["policy"], serde_json::Value::Null);
}

#[test]
fn config_errors_name_the_line() {
    let yaml = "admin: { listen: \"127.0.0.1:0\" }\nlisteners:\n  - name: a\n    listen: 127.0.0.1:0\n    \
                client_address: { trusted_proxies: [10.0.0.0/33] }\n\
                policies:\n  - name: p\n    ip_rules: { allow: [not-an-ip] }\n  \
                - name: c\n    cors: { allow_origins: [\"*\"], allow_credentials: true }\n  \
                - name: o\n    cors: { allow_origins: [\"https://a.example/path\"] }\n\
                routes:\n  - name: r\n    respond: { status: 200 }\n";
    let v = Validated::run(yaml, &[]);
    for (needle, msg) in [
        ("10.0.0.0/33", "prefix length must be at most 32"),
        ("not-an-ip", "not an address block"),
        (
            "allow_credentials: true",
            "cannot be combined with allow_credentials",
        ),
        ("a.example/path", "no path"),
    ] {
        let line = line_of(yaml, needle);
        assert!(
            v.errors_at(line).iter().any(|l| l.contains(msg)),
            "no `{msg}` at line {line}; stderr:\n{}",
            v.stderr
        );
    }
}
