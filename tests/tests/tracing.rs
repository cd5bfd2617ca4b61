//! Tracing through the real binary: W3C/B3 context in and out, server and client spans received
//! by a real OTLP receiver (tonic gRPC `TraceService`, and OTLP/HTTP protobuf), tail sampling of
//! errors and slow requests, and a collector that is down or hung never slowing requests.

use std::time::{Duration, Instant};

use http::Request;
use strait_e2e::client::{self, empty, Conn, Proto};
use strait_e2e::metrics::sum;
use strait_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use strait_e2e::upstream::SilentUpstream;
use strait_e2e::{closed_addr, poll_until, rss_kib, Reply, Strait, Upstream};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn yaml(up: &Upstream, endpoint: &str, tracing_extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n\
         \x20 - name: api\n    match: {{ path_prefix: /api }}\n    upstream: up\n\
         \x20 - name: dead\n    match: {{ path_prefix: /dead }}\n    upstream: dead\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n  - name: dead\n    endpoints: [\"{}\"]\n\
         observability:\n  tracing:\n    otlp: {{ endpoint: \"{endpoint}\" }}\n    batch: {{ interval: 100ms }}\n{tracing_extra}",
        up.addr(),
        closed_addr()
    )
}

async fn get(s: &Strait, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut b = Request::get(path).header("host", "gw.example");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client::status(s.web(), b.body(empty()).unwrap()).await
}

async fn wait_spans(rx: &OtlpReceiver, trace: &str, n: usize) -> Vec<ReceivedSpan> {
    poll_until(Duration::from_secs(10), "spans at the receiver", || async {
        let spans = rx.trace(trace);
        (spans.len() >= n).then_some(spans)
    })
    .await
}

#[tokio::test]
async fn spans_continue_the_incoming_traceparent_and_the_upstream_sees_the_client_span() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = Strait::start(&yaml(&up, &rx.endpoint(), "    sampling: { ratio: 0 }\n")).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(
        get(
            &s,
            "/api/users?id=7",
            &[("traceparent", &tp), ("tracestate", "k=v")]
        )
        .await,
        200
    );

    let spans = wait_spans(&rx, TRACE, 2).await;
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    let client = spans.iter().find(|s| !s.is_server()).expect("client span");
    assert_eq!(
        server.parent_id(),
        PARENT,
        "server span's parent is the caller's span"
    );
    assert_eq!(
        client.parent_id(),
        server.span_id(),
        "client span is the server span's child"
    );
    assert_eq!(server.span.name, "GET api");
    assert_eq!(server.service, "strait");
    for (k, v) in [
        ("http.request.method", "GET"),
        ("http.route", "api"),
        ("http.response.status_code", "200"),
        ("url.path", "/api/users"),
        ("url.query", "id=7"),
        ("server.address", "gw.example"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(server.attr(k).as_deref(), Some(v), "server span {k}");
    }
    assert_eq!(
        client.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(client.attr("server.address").as_deref(), Some("127.0.0.1"));

    let seen = up.only_request();
    assert_eq!(
        seen.header("traceparent"),
        format!("00-{TRACE}-{}-01", client.span_id()),
        "the upstream's parent is the client span, sampled as the caller said"
    );
    assert_eq!(seen.header("tracestate"), "k=v", "tracestate is forwarded");
}

#[tokio::test]
async fn errors_are_exported_even_when_the_ratio_is_zero() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = Strait::start(&yaml(&up, &rx.endpoint(), "    sampling: { ratio: 0 }\n")).await;
    assert_eq!(get(&s, "/api/ok", &[]).await, 200);
    assert_eq!(get(&s, "/dead", &[]).await, 502);
    let spans = poll_until(Duration::from_secs(10), "the 502's spans", || async {
        let spans = rx.spans();
        (spans.len() >= 2).then_some(spans)
    })
    .await;
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("502")
    );
    assert_eq!(
        server.span.status.as_ref().map(|s| s.code),
        Some(2),
        "status ERROR"
    );
    let client = spans.iter().find(|s| !s.is_server()).unwrap();
    assert_eq!(client.attr("error.type").as_deref(), Some("connect"));
    // The 200 was not sampled at the start; the upstream was told so and nothing was exported.
    let tp = up.only_request().header("traceparent");
    assert!(tp.ends_with("-00"), "unsampled flag sent upstream: {tp}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let trace_200 = &tp[3..35];
    assert!(rx.trace(trace_200).is_empty(), "the 200 was not exported");
}

#[tokio::test]
async fn slow_requests_are_exported_past_the_latency_threshold() {
    let up = Upstream::with_handler("up", |r| {
        let d = if r.uri.path() == "/api/slow" { 300 } else { 0 };
        Reply::text("x").delay(Duration::from_millis(d))
    })
    .await;
    let rx = OtlpReceiver::grpc().await;
    let extra = "    sampling: { ratio: 0, latency_threshold: 200ms }\n";
    let s = Strait::start(&yaml(&up, &rx.endpoint(), extra)).await;
    assert_eq!(get(&s, "/api/fast", &[]).await, 200);
    assert_eq!(get(&s, "/api/slow", &[]).await, 200);
    let spans = poll_until(
        Duration::from_secs(10),
        "the slow request's spans",
        || async {
            let spans = rx.spans();
            (spans.len() >= 2).then_some(spans)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_now = rx.spans();
    assert_eq!(spans_now.len(), 2, "only the slow request: {spans_now:?}");
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    assert_eq!(server.attr("url.path").as_deref(), Some("/api/slow"));
}

/// The receiver refuses an absolute-form target (`POST http://host/v1/traces`) with 404, as
/// strict collectors do: spans arrive only when the exporter sends origin-form.
#[tokio::test]
async fn otlp_http_receiver_gets_the_spans_over_an_origin_form_target() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::http().await;
    let extra = "    service_name: edge\n    sampling: { ratio: 1 }\n";
    let text = yaml(&up, &rx.endpoint(), extra).replace(
        &format!("endpoint: \"{}\" }}", rx.endpoint()),
        &format!("endpoint: \"{}\", protocol: http }}", rx.endpoint()),
    );
    let s = Strait::start(&text).await;
    assert_eq!(get(&s, "/api/x", &[]).await, 200);
    let tp = up.only_request().header("traceparent");
    assert!(tp.ends_with("-01"), "{tp}");
    let spans = wait_spans(&rx, &tp[3..35], 2).await;
    assert!(spans.iter().all(|s| s.service == "edge"));
}

#[tokio::test]
async fn b3_context_is_read_and_written_when_configured() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let extra = "    sampling: { ratio: 0 }\n    propagation: [w3c, b3]\n";
    let s = Strait::start(&yaml(&up, &rx.endpoint(), extra)).await;
    let b3 = format!("{TRACE}-{PARENT}-1");
    assert_eq!(get(&s, "/api/b3", &[("b3", &b3)]).await, 200);
    let spans = wait_spans(&rx, TRACE, 2).await;
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    let client = spans.iter().find(|s| !s.is_server()).unwrap();
    assert_eq!(server.parent_id(), PARENT);
    let seen = up.only_request();
    assert_eq!(
        seen.header("b3"),
        format!("{TRACE}-{}-1-{}", client.span_id(), server.span_id())
    );
    assert_eq!(seen.header("x-b3-traceid"), TRACE);
    assert_eq!(seen.header("x-b3-spanid"), client.span_id());
    assert_eq!(seen.header("x-b3-sampled"), "1");
    assert_eq!(
        seen.header("traceparent"),
        format!("00-{TRACE}-{}-01", client.span_id())
    );
}

#[tokio::test]
async fn malformed_traceparent_starts_a_new_trace() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = Strait::start(&yaml(&up, &rx.endpoint(), "    sampling: { ratio: 1 }\n")).await;
    let bad = format!("00-{}-{PARENT}-01", "0".repeat(32));
    assert_eq!(get(&s, "/api/x", &[("traceparent", &bad)]).await, 200);
    let tp = up.only_request().header("traceparent");
    assert_eq!(tp.len(), 55, "{tp}");
    assert_ne!(&tp[3..35], "0".repeat(32));
    let spans = wait_spans(&rx, &tp[3..35], 2).await;
    let server = spans.iter().find(|s| s.is_server()).unwrap();
    assert_eq!(server.parent_id(), "", "a new root span");
}

#[tokio::test]
async fn without_tracing_configured_trace_headers_pass_through_untouched() {
    let up = Upstream::start("up").await;
    let text = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: api\n    upstream: up\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&text).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(get(&s, "/api", &[("traceparent", &tp)]).await, 200);
    assert_eq!(up.only_request().header("traceparent"), tp);
}

/// p99 of `n` sequential GETs on one keep-alive connection.
async fn p99(s: &Strait, n: usize) -> Duration {
    let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = conn
            .send(
                Request::get("/api/x")
                    .header("host", "h")
                    .body(empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        client::collect(resp).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    lat[n * 99 / 100]
}

#[tokio::test]
async fn a_stopped_collector_costs_requests_nothing_and_spans_are_counted_as_dropped() {
    let up = Upstream::start("up").await;
    let mut rx = OtlpReceiver::grpc().await;
    let extra = "    sampling: { ratio: 1 }\n    queue: 64\n";
    let s = Strait::start(&yaml(&up, &rx.endpoint(), extra)).await;
    let with = p99(&s, 500).await;
    // Batches leave every `batch.interval` (1 s): wait for one to arrive before the collector
    // stops, or a fast run stops it before anything was exported.
    poll_until(Duration::from_secs(10), "spans exported", || async {
        (sum(&s.metrics().await, "strait_trace_spans_exported_total", &[]) > 0.0).then_some(())
    })
    .await;
    let rss_before = rss_kib(s.pid());
    rx.stop();
    let without = p99(&s, 2000).await;
    let rss_after = rss_kib(s.pid());
    let m = poll_until(Duration::from_secs(10), "dropped spans counted", || async {
        let m = s.metrics().await;
        (sum(&m, "strait_trace_spans_dropped_total", &[]) > 0.0).then_some(m)
    })
    .await;
    assert!(
        sum(&m, "strait_trace_spans_exported_total", &[]) > 0.0,
        "{m}"
    );
    // Loose bounds: a debug build on a shared 2-core machine is noisy.
    assert!(
        without < with * 5 + Duration::from_millis(20),
        "p99 with collector {with:?}, without {without:?}"
    );
    assert!(
        rss_after < rss_before + 20 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[tokio::test]
async fn a_hung_collector_fills_the_bounded_queue_and_requests_do_not_wait() {
    let up = Upstream::start("up").await;
    let hung = SilentUpstream::start().await;
    let extra = "    sampling: { ratio: 1 }\n    queue: 16\n";
    let endpoint = format!("http://{}", hung.addr());
    let text = yaml(&up, &endpoint, extra).replace("otlp: {", "otlp: { timeout: 5s,");
    let s = Strait::start(&text).await;
    let p = p99(&s, 300).await;
    assert!(
        p < Duration::from_millis(100),
        "p99 {p:?} with a hung collector"
    );
    let m = s.metrics().await;
    assert!(
        sum(
            &m,
            "strait_trace_spans_dropped_total",
            &[("reason", "queue_full")]
        ) > 0.0,
        "{m}"
    );
}

#[tokio::test]
async fn queued_spans_are_sent_before_exit() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    // A batch interval longer than the test: only the shutdown flush can send these.
    let text = yaml(&up, &rx.endpoint(), "    sampling: { ratio: 1 }\n")
        .replace("batch: { interval: 100ms }", "batch: { interval: 60s }");
    let mut s = Strait::start(&text).await;
    for _ in 0..5 {
        assert_eq!(get(&s, "/api/x", &[]).await, 200);
    }
    s.signal("TERM");
    assert!(s.wait_exit(Duration::from_secs(10)).await.success());
    assert_eq!(
        rx.spans().len(),
        10,
        "5 server + 5 client spans; logs:\n{}",
        s.logs_text()
    );
}

#[tokio::test]
async fn a_traces_per_second_target_lowers_the_ratio_under_load_and_restores_it_after() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = Strait::start(&yaml(
        &up,
        &rx.endpoint(),
        "    sampling: { ratio: 1.0, target_per_second: 5 }\n",
    ))
    .await;
    let ratio = |m: &str| sum(m, "strait_trace_sampling_ratio", &[]);
    assert_eq!(ratio(&s.metrics().await), 1.0);
    // Bounded load: 3.5 s or 20,000 requests, whichever comes first.
    let t = Instant::now();
    let mut sent = 0u32;
    while t.elapsed() < Duration::from_millis(3500) && sent < 20_000 {
        assert_eq!(get(&s, "/api/x", &[]).await, 200);
        sent += 1;
    }
    let rate = f64::from(sent) / t.elapsed().as_secs_f64();
    let under_load = ratio(&s.metrics().await);
    eprintln!("{sent} requests ({rate:.0}/s): sampling ratio adapted to {under_load:.4}");
    assert!(rate > 20.0, "too little load to adapt: {rate:.0}/s");
    // Aiming at 5 traces/s: the ratio moved from 1.0 towards 5 / rate.
    assert!(under_load < 0.5, "ratio under load {under_load}");
    // Without load it moves back towards the configured ratio.
    let restored = poll_until(Duration::from_secs(6), "ratio restored", || async {
        let r = ratio(&s.metrics().await);
        (r > 0.9).then_some(r)
    })
    .await;
    assert!(restored <= 1.0);
}

#[tokio::test]
async fn the_request_failure_log_line_carries_the_trace_id() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let s = Strait::start_opts(
        &yaml(&up, &rx.endpoint(), "    sampling: { ratio: 1 }\n"),
        &[],
        &[],
        &[("STRAIT_LOG", "info,strait_proxy=debug")],
    )
    .await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(get(&s, "/dead", &[("traceparent", &tp)]).await, 502);
    let line = poll_until(
        Duration::from_secs(5),
        "request failed log line",
        || async {
            s.logs_text()
                .lines()
                .find(|l| l.contains("request failed"))
                .map(str::to_owned)
        },
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert_eq!(v["fields"]["trace_id"], TRACE, "{line}");
    assert_eq!(v["fields"]["route"], "dead");
}
