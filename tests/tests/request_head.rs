//! Request-head hygiene through the real binary (issue 9): HTTP/1.1 without Host, CONNECT,
//! header names with underscores and wrong-case methods, over raw HTTP/1 and h2c; each refusal
//! is counted and forwards nothing.

use std::time::Duration;

use http::{Method, Request};
use strait_e2e::client::{self, empty, header, raw_exchange, Proto};
use strait_e2e::{metrics, Strait, Upstream};

async fn start() -> (Upstream, Strait) {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:
  - name: web
    listen: 127.0.0.1:0
  - name: allow
    listen: 127.0.0.1:0
    http: {{ headers_with_underscores_action: allow }}
  - name: reject
    listen: 127.0.0.1:0
    http: {{ headers_with_underscores_action: reject_request }}
routes:
  - name: all
    upstream: up
upstreams:
  - {{ name: up, endpoints: [\"{}\"] }}
",
        up.addr()
    );
    (up, Strait::start(&yaml).await)
}

fn refused(m: &str, listener: &str, reason: &str) -> f64 {
    metrics::sum(
        m,
        "strait_downstream_rejected_requests_total",
        &[("listener", listener), ("reason", reason)],
    )
}

#[tokio::test]
async fn http11_without_host_is_refused_while_http10_gets_the_endpoint_as_host() {
    let (up, s) = start().await;
    for req in [
        "GET /a HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET http://t/a HTTP/1.1\r\nConnection: close\r\n\r\n",
        "POST /a HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    ] {
        let reply = raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(reply.status(), Some(400), "{req:?}: {}", reply.text());
        assert!(reply.text().contains("without Host"), "{}", reply.text());
    }
    assert_eq!(up.started(), 0, "{:#?}", up.requests());

    let reply = raw_exchange(
        s.web(),
        b"GET /old HTTP/1.0\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    let r = up.only_request();
    assert_eq!(r.path_and_query(), "/old");
    assert_eq!(r.header("host"), up.addr().to_string());

    let m = s.metrics().await;
    assert_eq!(refused(&m, "web", "missing_host"), 3.0, "{m}");
}

#[tokio::test]
async fn connect_is_refused_with_405_and_never_tunnelled() {
    let (up, s) = start().await;
    let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01";
    let reply = raw_exchange(s.web(), req, Duration::from_secs(5)).await;
    let text = reply.text();
    assert_eq!(reply.status(), Some(405), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nallow: get, head, post"),
        "{text}"
    );
    assert!(
        reply.closed,
        "the connection must close after a refused CONNECT: {text}"
    );
    assert_eq!(reply.response_count(), 1, "{text}");

    // Over HTTP/2 as well.
    let req = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .body(empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H2c, req)
        .await
        .expect("h2c CONNECT");
    assert_eq!(resp.status(), 405);
    assert_eq!(up.started(), 0, "{:#?}", up.requests());

    let m = s.metrics().await;
    assert_eq!(refused(&m, "web", "method_connect"), 2.0, "{m}");
}

#[tokio::test]
async fn underscored_header_names_are_dropped_unless_the_listener_allows_them() {
    let (up, s) = start().await;
    let req =
        "GET /h1 HTTP/1.1\r\nHost: t\r\nX_Forwarded_For: 6.6.6.6\r\nTransfer_Encoding: chunked\r\n\
               x_custom: a\r\nx_custom: b\r\nx-normal: n\r\nConnection: close\r\n\r\n";
    let reply = raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(200), "{}", reply.text());
    let h2 = Request::get("http://t/h2")
        .header("x_custom", "c")
        .header("x-normal", "n")
        .body(empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H2c, h2).await.expect("h2c");
    assert_eq!(resp.status(), 200);
    for r in up.requests() {
        let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
        assert!(
            !names.iter().any(|n| n.contains('_')),
            "{}: {names:?}",
            r.path_and_query()
        );
        assert_eq!(r.header("x-normal"), "n");
        assert_eq!(
            r.header("x-forwarded-for"),
            "127.0.0.1",
            "the spoofed value is gone"
        );
    }

    let with_underscore = |path: &str, value: &str| {
        Request::get(path)
            .header("host", "t")
            .header("x_custom", value)
            .body(empty())
            .unwrap()
    };
    let allowed = with_underscore("/allow", "kept");
    assert_eq!(client::status(s.addr("allow"), allowed).await, 200);
    assert_eq!(up.requests().last().unwrap().header("x_custom"), "kept");

    let before = up.requests().len();
    let refused_req = with_underscore("/reject", "no");
    assert_eq!(client::status(s.addr("reject"), refused_req).await, 400);
    assert_eq!(up.requests().len(), before);

    let m = s.metrics().await;
    let dropped = metrics::sum(
        &m,
        "strait_downstream_dropped_headers_with_underscores_total",
        &[("listener", "web")],
    );
    assert_eq!(dropped, 5.0, "four fields over HTTP/1, one over h2: {m}");
    assert_eq!(refused(&m, "reject", "header_underscore"), 1.0, "{m}");
}

#[tokio::test]
async fn wrong_case_standard_methods_are_refused_and_extension_methods_pass() {
    let (up, s) = start().await;
    for method in ["get", "Post", "dELETE", "options"] {
        let req = format!("{method} /m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(reply.status(), Some(400), "{method}: {}", reply.text());
    }
    let h2 = Request::builder()
        .method(Method::from_bytes(b"get").unwrap())
        .uri("http://t/m")
        .body(empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H2c, h2).await.expect("h2c");
    assert_eq!(resp.status(), 400, "{}", header(&resp, "content-type"));
    assert_eq!(up.started(), 0, "{:#?}", up.requests());

    for method in ["PURGE", "purge", "PROPFIND"] {
        let req = format!("{method} /m HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let reply = raw_exchange(s.web(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(reply.status(), Some(200), "{method}: {}", reply.text());
        assert_eq!(up.requests().last().unwrap().method.as_str(), method);
    }
    let m = s.metrics().await;
    assert_eq!(refused(&m, "web", "method_case"), 5.0, "{m}");
}
