//! The admin listener: /healthz, /readyz, and /metrics in Prometheus text
//! format with exact per-request counts (checked by promtool too), OpenMetrics
//! with trace-id exemplars when asked (scraped by a real Prometheus server),
//! and the Grafana dashboard's queries checked against what is exported.

use std::time::Duration;

use http::{Method, Request};
use strait_e2e::client::{self, empty, text, Proto};
use strait_e2e::metrics::{self, has_family, sum};
use strait_e2e::otlp::OtlpReceiver;
use strait_e2e::{closed_addr, poll_until, Reply, Strait, Upstream};

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
    client::status(s.web(), req).await
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
    let up = Upstream::start("up").await;
    let s = start(&up).await;
    assert_eq!(send(&s, "GET", "/r").await, 200);
    assert_eq!(send(&s, "GET", "/u").await, 200);
    assert_eq!(send(&s, "GET", "/dead").await, 502);
    assert_eq!(send(&s, "GET", "/nowhere").await, 404);
    let m = s.metrics().await;
    if let Err(e) = metrics::promtool_check(&m).await {
        panic!("promtool check metrics failed:\n{e}");
    }
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

async fn start_traced(up: &Upstream, rx: &OtlpReceiver) -> Strait {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n\
         \x20 - name: r\n    match: {{ path_prefix: /r }}\n    respond: {{ status: 200, body: ok }}\n\
         \x20 - name: u\n    match: {{ path_prefix: /u }}\n    upstream: up\n\
         \x20 - name: dead\n    match: {{ path_prefix: /dead }}\n    upstream: dead\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n  - name: dead\n    endpoints: [\"{}\"]\n\
         observability:\n  tracing:\n    otlp: {{ endpoint: \"{}\" }}\n    sampling: {{ ratio: 0 }}\n",
        up.addr(),
        closed_addr(),
        rx.endpoint()
    );
    Strait::start(&yaml).await
}

async fn send_traced(s: &Strait, path: &str, trace: &str) -> u16 {
    let req = Request::get(path)
        .header("host", "h")
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .body(empty())
        .unwrap();
    client::status(s.web(), req).await
}

async fn openmetrics(s: &Strait) -> (String, String) {
    let req = Request::get("/metrics")
        .header("host", "admin")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .body(empty())
        .unwrap();
    let resp = client::send(s.admin(), Proto::H1, req).await.unwrap();
    (client::header(&resp, "content-type"), text(&resp))
}

#[tokio::test]
async fn openmetrics_is_served_when_asked_with_trace_id_exemplars() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = start_traced(&up, &rx).await;
    assert_eq!(send_traced(&s, "/r", TRACE).await, 200);
    // An unsampled request leaves no exemplar; an unsampled 5xx, kept at the end, does.
    assert_eq!(send(&s, "GET", "/u").await, 200);
    assert_eq!(send(&s, "GET", "/dead").await, 502);
    let m = poll_until(Duration::from_secs(5), "the 5xx exemplar", || async {
        let (ct, m) = openmetrics(&s).await;
        assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        m.lines()
            .any(|l| l.contains("route=\"dead\"") && l.contains("# {trace_id="))
            .then_some(m)
    })
    .await;
    assert!(m.ends_with("# EOF\n"), "{m}");
    assert!(m.contains("# TYPE strait_http_requests counter\n"), "{m}");
    let ex: Vec<&str> = m
        .lines()
        .filter(|l| l.contains("# {trace_id=") && !l.contains("route=\"dead\""))
        .collect();
    assert_eq!(ex.len(), 1, "{ex:?}");
    assert!(
        ex[0].starts_with("strait_http_request_duration_seconds_bucket{"),
        "{}",
        ex[0]
    );
    assert!(
        ex[0].contains(&format!("trace_id=\"{TRACE}\"")),
        "{}",
        ex[0]
    );
    assert!(ex[0].contains("route=\"r\""), "{}", ex[0]);
    // The default stays the classic text format.
    let plain = s.metrics().await;
    assert!(!plain.contains("# EOF") && !plain.contains("trace_id"));
}

#[tokio::test]
async fn a_real_prometheus_scrapes_exact_counts_and_our_exemplars() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = start_traced(&up, &rx).await;
    let prom = strait_e2e::prometheus::Prometheus::start(s.admin()).await;
    const N: usize = 17;
    for i in 0..N {
        let trace = format!("{:032x}", 0xabc0 + i);
        assert_eq!(send_traced(&s, "/r", &trace).await, 200);
    }
    let q = "sum(strait_http_requests_total{route=\"r\",code=\"200\"})";
    let v = poll_until(
        Duration::from_secs(30),
        "prometheus sees all requests",
        || async { prom.query_value(q).await.filter(|v| *v >= N as f64) },
    )
    .await;
    assert_eq!(v, N as f64, "exactly N requests counted");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 300).to_string(), (now + 60).to_string());
    let ours: Vec<String> = (0..N).map(|i| format!("{:032x}", 0xabc0 + i)).collect();
    let found = poll_until(
        Duration::from_secs(20),
        "exemplars in prometheus",
        || async {
            let v = prom
                .api(
                    "query_exemplars",
                    &[
                        (
                            "query",
                            "strait_http_request_duration_seconds_bucket{route=\"r\"}",
                        ),
                        ("start", &start),
                        ("end", &end),
                    ],
                )
                .await;
            let ids: Vec<String> = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|series| series["exemplars"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["labels"]["trace_id"].as_str().map(String::from))
                .collect();
            ids.iter().any(|id| ours.contains(id)).then_some(ids)
        },
    )
    .await;
    assert!(found.iter().all(|id| ours.contains(id)), "{found:?}");
}

#[tokio::test]
async fn the_grafana_dashboard_only_queries_families_strait_exports() {
    let up = Upstream::start("up").await;
    // Health checks on, so the endpoint health family has series too.
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: u\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n    health_check: {{ type: tcp, interval: 1s }}\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    assert_eq!(send(&s, "GET", "/u").await, 200);
    let m = poll_until(
        Duration::from_secs(10),
        "endpoint health reported",
        || async {
            let m = s.metrics().await;
            has_family(&m, "strait_upstream_endpoint_healthy").then_some(m)
        },
    )
    .await;
    let path = strait_e2e::workspace_root().join("examples/grafana-dashboard.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(q.to_string());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut names = Vec::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("strait_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    for n in &names {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s).filter(|f| has_family(&m, f)))
            .unwrap_or(n);
        assert!(
            has_family(&m, family),
            "dashboard queries {n}, which /metrics does not export"
        );
    }
}
