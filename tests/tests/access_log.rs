//! Access logs through the real binary: one JSON line per request with the documented fields,
//! trace ids that match the spans a real OTLP receiver got, a configurable field list, and
//! SIGUSR1 reopening the file after logrotate renamed it.

use std::path::Path;
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, empty};
use strait_e2e::otlp::OtlpReceiver;
use strait_e2e::{poll_until, Strait, Upstream};

fn yaml(up: &Upstream, access_log: &str, tracing: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n\
         \x20 - name: api\n    match: {{ path_prefix: /api }}\n    upstream: up\n\
         \x20 - name: hello\n    match: {{ path: /hello }}\n    respond: {{ status: 200, body: hi }}\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n\
         observability:\n  access_log: {access_log}\n{tracing}",
        up.addr()
    )
}

async fn get(s: &Strait, path: &str) -> u16 {
    let req = Request::get(path)
        .header("host", "gw.example")
        .header("user-agent", "e2e \"quoted\"")
        .body(empty())
        .unwrap();
    client::status(s.web(), req).await
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    poll_until(Duration::from_secs(10), "access log lines", || async {
        let l = lines(path);
        (l.len() >= n).then_some(l)
    })
    .await
}

#[tokio::test]
async fn lines_are_json_and_their_trace_ids_match_the_exported_spans() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let tracing = format!(
        "  tracing:\n    otlp: {{ endpoint: \"{}\" }}\n    sampling: {{ ratio: 1 }}\n    batch: {{ interval: 100ms }}\n",
        rx.endpoint()
    );
    let s = Strait::start(&yaml(&up, "{ path: access.log }", &tracing)).await;
    let path = s.dir().join("access.log");
    for _ in 0..3 {
        assert_eq!(get(&s, "/api/items?x=1").await, 200);
    }
    assert_eq!(get(&s, "/hello").await, 200);
    assert_eq!(get(&s, "/nowhere").await, 404);
    let log = wait_lines(&path, 5).await;
    assert_eq!(log.len(), 5);
    let first = &log[0];
    for (k, v) in [
        ("method", "GET"),
        ("host", "gw.example"),
        ("path", "/api/items"),
        ("route", "api"),
        ("upstream", "up"),
        ("user_agent", "e2e \"quoted\""),
        ("listener", "web"),
        ("protocol", "HTTP/1.1"),
    ] {
        assert_eq!(first[k], v, "field {k} in {first}");
    }
    assert_eq!(first["status"], 200);
    assert_eq!(first["endpoint"], up.addr().to_string());
    assert_eq!(first["bytes_out"], 2, "body `up`");
    assert!(
        first["duration_ms"].as_f64().unwrap() >= first["upstream_duration_ms"].as_f64().unwrap()
    );
    assert!(first["policy"].is_null());
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(log[3]["route"], "hello");
    assert!(log[3]["upstream"].is_null());
    assert_eq!(
        (log[4]["route"].as_str(), log[4]["status"].as_u64()),
        (Some("unmatched"), Some(404))
    );

    // Every line's trace and span ids are those of an exported server span.
    let spans = poll_until(
        Duration::from_secs(10),
        "spans of all 5 requests",
        || async {
            let spans = rx.spans();
            (spans.iter().filter(|s| s.is_server()).count() >= 5).then_some(spans)
        },
    )
    .await;
    for line in &log {
        let (trace, span) = (
            line["trace_id"].as_str().unwrap(),
            line["span_id"].as_str().unwrap(),
        );
        assert!(
            spans
                .iter()
                .any(|s| s.is_server() && s.trace_id() == trace && s.span_id() == span),
            "no exported server span for {line}"
        );
    }
}

#[tokio::test]
async fn the_field_list_is_configurable() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&yaml(
        &up,
        "{ path: a.log, fields: [status, route, trace_id] }",
        "",
    ))
    .await;
    assert_eq!(get(&s, "/hello").await, 200);
    let log = wait_lines(&s.dir().join("a.log"), 1).await;
    let keys: Vec<&String> = log[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{}", log[0]);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["route"], "hello");
    assert!(log[0]["trace_id"].is_null(), "no tracing configured");
}

#[tokio::test]
async fn sigusr1_reopens_the_file_after_a_rename() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&yaml(&up, "{ path: access.log }", "")).await;
    let path = s.dir().join("access.log");
    let rotated = s.dir().join("access.log.1");
    for _ in 0..3 {
        assert_eq!(get(&s, "/hello").await, 200);
    }
    wait_lines(&path, 3).await;
    std::fs::rename(&path, &rotated).unwrap();
    s.signal("USR1");
    // The writer reopens on its next pass; wait until the new file exists.
    poll_until(Duration::from_secs(10), "a new access.log", || async {
        path.exists().then_some(())
    })
    .await;
    for _ in 0..2 {
        assert_eq!(get(&s, "/api/x").await, 200);
    }
    let new = wait_lines(&path, 2).await;
    assert!(new.iter().all(|l| l["route"] == "api"), "{new:?}");
    let old = lines(&rotated);
    assert_eq!(old.len(), 3);
    assert!(old.iter().all(|l| l["route"] == "hello"));
    assert!(s.logs_text().contains("access log reopened"));
}

#[tokio::test]
async fn a_reload_changes_fields_and_sampling_for_the_next_request() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let cfg = |fields: &str, ratio: &str| {
        yaml(
            &up,
            &format!("{{ path: access.log, fields: [{fields}] }}"),
            &format!(
                "  tracing:\n    otlp: {{ endpoint: \"{}\" }}\n    sampling: {{ ratio: {ratio} }}\n    batch: {{ interval: 100ms }}\n",
                rx.endpoint()
            ),
        )
    };
    let s = Strait::start(&cfg("route, trace_id", "0")).await;
    let path = s.dir().join("access.log");
    assert_eq!(get(&s, "/hello").await, 200);
    let first = wait_lines(&path, 1).await;
    assert_eq!(first[0].as_object().unwrap().len(), 2, "{}", first[0]);

    let text = format!(
        "admin:\n  listen: {}\n{}",
        s.admin(),
        cfg("route, status, trace_id", "1")
    );
    let tmp = s.dir().join("strait.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, s.config_path()).unwrap();
    s.signal("HUP");
    poll_until(Duration::from_secs(5), "reload applied", || async {
        let m = s.metrics().await;
        (strait_e2e::metrics::sum(&m, "strait_config_version", &[]) >= 2.0).then_some(())
    })
    .await;
    assert_eq!(get(&s, "/hello").await, 200);
    let log = wait_lines(&path, 2).await;
    assert_eq!(
        log[1]["status"], 200,
        "the new field list applies: {}",
        log[1]
    );
    let trace = log[1]["trace_id"].as_str().unwrap().to_string();
    poll_until(
        Duration::from_secs(10),
        "the sampled request's span",
        || async { (!rx.trace(&trace).is_empty()).then_some(()) },
    )
    .await;
    assert!(
        rx.trace(first[0]["trace_id"].as_str().unwrap()).is_empty(),
        "the request before the reload was not sampled"
    );
}

#[tokio::test]
async fn lines_of_the_last_requests_are_written_before_exit() {
    let up = Upstream::start("up").await;
    let mut s = Strait::start(&yaml(&up, "{ path: access.log }", "")).await;
    for _ in 0..20 {
        assert_eq!(get(&s, "/hello").await, 200);
    }
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    assert_eq!(lines(&s.dir().join("access.log")).len(), 20);
}
