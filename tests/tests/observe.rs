//! The admin listener: /healthz, /readyz, and /metrics in Prometheus text
//! format with exact per-request counts (checked by promtool too).

use std::time::Duration;

use http::{Method, Request};
use strait_e2e::client::{self, empty, text, Proto};
use strait_e2e::metrics::{has_family, sum};
use strait_e2e::{closed_addr, tool, within, Reply, Strait, Upstream};

async fn start(up: &Upstream) -> Strait {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n\
         \x20 - name: r\n    match: {{ path_prefix: /r }}\n    respond: {{ status: 200, body: ok }}\n\
         \x20 - name: u\n    match: {{ path_prefix: /u }}\n    upstream: up\n\
         \x20 - name: dead\n    match: {{ path_prefix: /dead }}\n    upstream: dead\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n  - name: dead\n    endpoints: [\"{}\"]\n",
        up.addr(),
        closed_addr()
    );
    Strait::start(&yaml).await
}

async fn send(s: &Strait, method: &str, path: &str) -> u16 {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("host", "h")
        .body(empty())
        .unwrap();
    client::send(s.web(), Proto::H1, req)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn healthz_and_readyz_answer_ok_and_ready() {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    let resp = client::get(s.admin(), "/healthz").await.unwrap();
    assert_eq!((resp.status().as_u16(), text(&resp).trim()), (200, "ok"));
    let resp = client::get(s.admin(), "/readyz").await.unwrap();
    assert_eq!((resp.status().as_u16(), text(&resp).trim()), (200, "ready"));
}

#[tokio::test]
async fn metrics_expose_the_documented_families() {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    assert_eq!(send(&s, "GET", "/r").await, 200);
    assert_eq!(send(&s, "GET", "/dead").await, 502);
    let resp = client::get(s.admin(), "/metrics").await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = client::header(&resp, "content-type");
    assert!(ct.starts_with("text/plain"), "metrics content-type: {ct}");
    let m = text(&resp);
    for family in [
        "strait_http_requests_total",
        "strait_http_request_duration_seconds_bucket",
        "strait_http_request_duration_seconds_sum",
        "strait_http_request_duration_seconds_count",
        "strait_upstream_connect_errors_total",
        "strait_downstream_connections_active",
        "strait_config_version",
    ] {
        assert!(
            has_family(&m, family),
            "{family} missing from /metrics:\n{m}"
        );
    }
    assert!(
        m.contains("# TYPE strait_http_request_duration_seconds histogram"),
        "duration is a histogram"
    );
    assert_eq!(
        sum(
            &m,
            "strait_upstream_connect_errors_total",
            &[("upstream", "dead")]
        ),
        1.0
    );
}

#[tokio::test]
async fn request_counters_rise_by_exactly_the_number_of_requests() {
    let up = Upstream::with_handler("up", |_| Reply::text("made").status(201)).await;
    let s = start(&up).await;
    let respond_labels = [
        ("listener", "web"),
        ("route", "r"),
        ("upstream", ""),
        ("method", "GET"),
        ("code", "200"),
    ];
    let upstream_labels = [
        ("listener", "web"),
        ("route", "u"),
        ("upstream", "up"),
        ("method", "POST"),
        ("code", "201"),
    ];
    let before = s.metrics().await;
    for _ in 0..7 {
        assert_eq!(send(&s, "GET", "/r").await, 200);
    }
    for _ in 0..5 {
        assert_eq!(send(&s, "POST", "/u").await, 201);
    }
    let after = s.metrics().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        sum(&after, name, labels) - sum(&before, name, labels)
    };
    assert_eq!(
        delta("strait_http_requests_total", &respond_labels),
        7.0,
        "{after}"
    );
    assert_eq!(
        delta("strait_http_requests_total", &upstream_labels),
        5.0,
        "{after}"
    );
    assert_eq!(
        delta(
            "strait_http_request_duration_seconds_count",
            &respond_labels
        ),
        7.0
    );
    assert_eq!(
        delta(
            "strait_http_request_duration_seconds_count",
            &upstream_labels
        ),
        5.0
    );
    assert_eq!(
        delta("strait_http_requests_total", &[("route", "r")]),
        7.0,
        "no other series for route r"
    );
    assert_eq!(up.requests().len(), 5);
}

#[tokio::test]
async fn unknown_methods_are_counted_as_other() {
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    for _ in 0..3 {
        assert_eq!(send(&s, "BREW", "/r").await, 200);
    }
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_http_requests_total",
            &[("route", "r"), ("method", "OTHER")]
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        sum(&m, "strait_http_requests_total", &[("method", "BREW")]),
        0.0
    );
}

#[tokio::test]
async fn promtool_accepts_the_metrics_output() {
    let promtool = tool("promtool", &["/usr/bin/promtool"]);
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    assert_eq!(send(&s, "GET", "/r").await, 200);
    assert_eq!(send(&s, "GET", "/u").await, 200);
    assert_eq!(send(&s, "GET", "/dead").await, 502);
    assert_eq!(send(&s, "GET", "/nowhere").await, 404);
    let m = s.metrics().await;
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(m.as_bytes()).await.unwrap();
    }
    let out = within(
        Duration::from_secs(30),
        "promtool",
        child.wait_with_output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
