//! The policy pipeline through the real binary: named and inline policies, listener policies before route policies in kind order, a waiting (async) policy, the denying policy named in metrics, access log and span, and policy live state kept across reloads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strait_e2e::json_lines as lines;

use http::Request;
use strait_e2e::client::{self, empty};
use strait_e2e::metrics::sum;
use strait_e2e::otlp::OtlpReceiver;
use strait_e2e::strait::run_cli;
use strait_e2e::{poll_until, Reply, Strait, Upstream};

fn get(path: &str, headers: &[(&str, &str)]) -> Request<client::Body> {
    let mut b = Request::get(path).header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(empty()).unwrap()
}

#[tokio::test]
async fn the_denying_policy_is_named_in_metrics_access_log_and_span() {
    let up = Upstream::start("up").await;
    let rx = OtlpReceiver::grpc().await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: game-day\n    fault: {{ abort: {{ status: 503 }}, header: x-chaos }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [game-day]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n\
         observability:\n  access_log: {{ path: access.log }}\n  tracing:\n    otlp: {{ endpoint: \"{}\" }}\n    \
         sampling: {{ ratio: 1 }}\n    batch: {{ interval: 100ms }}\n",
        up.addr(),
        rx.endpoint()
    );
    let s = Strait::start(&yaml).await;
    assert_eq!(client::status(s.web(), get("/", &[])).await, 200);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp = format!("00-{trace}-00f067aa0ba902b7-01");
    let denied = client::send(
        s.web(),
        client::Proto::H1,
        get("/", &[("x-chaos", "1"), ("traceparent", &tp)]),
    )
    .await
    .unwrap();
    assert_eq!(denied.status(), 503);
    assert_eq!(client::text(&denied), "strait: fault injected\n");
    assert_eq!(
        up.requests().len(),
        1,
        "the denied request never reached the upstream"
    );

    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "game-day"), ("reason", "fault_abort")]
        ),
        1.0,
        "{m}"
    );
    let path = s.dir().join("access.log");
    let log = poll_until(Duration::from_secs(10), "two access log lines", || async {
        let l = lines(&path);
        (l.len() >= 2).then_some(l)
    })
    .await;
    assert_eq!(log[0]["policy"], serde_json::Value::Null);
    assert_eq!(log[1]["policy"], "game-day");
    assert_eq!(log[1]["policy_reason"], "fault_abort");
    assert_eq!(log[1]["status"], 503);
    let spans = poll_until(
        Duration::from_secs(10),
        "the denied request's span",
        || async {
            let spans = rx.trace(trace);
            (!spans.is_empty()).then_some(spans)
        },
    )
    .await;
    let server = spans.iter().find(|s| s.is_server()).expect("server span");
    assert_eq!(server.attr("strait.policy").as_deref(), Some("game-day"));
    assert_eq!(
        server.attr("strait.policy.reason").as_deref(),
        Some("fault_abort")
    );
    assert!(
        spans.iter().all(|s| s.is_server()),
        "no upstream attempt was made"
    );
}

#[tokio::test]
async fn a_waiting_policy_delays_the_request_then_forwards_it() {
    let up = Upstream::start("up").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: api\n    upstream: up\n    \
         policies: [{{ fault: {{ delay: {{ duration: 300ms, percentage: 100 }} }} }}]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let t = Instant::now();
    assert_eq!(client::status(s.web(), get("/", &[])).await, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(up.requests().len(), 1);
    // Other requests are not held up by a waiting one: ten at once take one delay, not ten.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let addr = s.web();
        tasks.push(tokio::spawn(async move {
            client::status(addr, get("/", &[])).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn listener_policies_run_first_and_kinds_run_in_their_documented_order() {
    let up = Upstream::start("up").await;
    // The listener's headers policy sets x-trigger; the route's fault policy only fires on
    // x-trigger but runs before header edits (fault ranks before headers), so it never sees it.
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    policies: [tag]\n\
         policies:\n  - name: tag\n    headers: {{ request: {{ set: {{ x-trigger: listener, x-order: listener }} }} }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies:\n      \
         - {{ headers: {{ request: {{ set: {{ x-order: route }} }}, response: {{ add: {{ x-seen: route }} }} }} }}\n      \
         - {{ fault: {{ abort: {{ status: 418 }}, header: x-trigger }} }}\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let s = Strait::start(&yaml).await;
    let resp = client::send(s.web(), client::Proto::H1, get("/", &[]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the fault ran before the header edits");
    assert_eq!(client::header(&resp, "x-seen"), "route");
    let seen = up.only_request();
    assert_eq!(seen.header("x-trigger"), "listener");
    assert_eq!(
        seen.header("x-order"),
        "route",
        "route policies after listener ones"
    );
    // A client that sends the header itself meets the fault.
    assert_eq!(
        client::status(s.web(), get("/", &[("x-trigger", "1")])).await,
        418
    );
}

#[tokio::test]
async fn an_unknown_policy_reference_is_a_config_error_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    policies: [nope]\n\
         routes:\n  - name: r\n    respond: { status: 200 }\n    policies: [{ retry: {} }]\n",
    )
    .unwrap();
    let out = run_cli(&["validate", "-c", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("s.yaml:4:16: unknown policy `nope`"), "{err}");
    assert!(
        err.contains("a retry policy only applies to routes that forward"),
        "{err}"
    );
}

#[tokio::test]
async fn breaker_state_survives_a_hundred_reloads_that_keep_its_settings() {
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let up = Upstream::with_handler("flaky", move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::text("no").status(500)
        } else {
            Reply::text("yes")
        }
    })
    .await;
    let yaml = |body: &str| {
        format!(
            "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
             routes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: up\n  \
             - name: other\n    respond: {{ status: 200, body: \"{body}\" }}\n\
             upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n    \
             circuit_breaker: {{ consecutive_failures: 3, failure_ratio: 0, open_for: 1h }}\n",
            up.addr()
        )
    };
    let s = Strait::start(&yaml("v0")).await;
    for _ in 0..3 {
        assert_eq!(client::status(s.web(), get("/api", &[])).await, 500);
    }
    failing.store(false, Ordering::SeqCst);
    assert_eq!(client::status(s.web(), get("/api", &[])).await, 503, "open");
    let admin = format!("admin:\n  listen: {}\n", s.admin());
    for i in 1..=100 {
        let tmp = s.dir().join("next.yaml");
        std::fs::write(&tmp, format!("{admin}{}", yaml(&format!("v{i}")))).unwrap();
        std::fs::rename(&tmp, s.config_path()).unwrap();
        let want = format!("v{i}");
        poll_until(Duration::from_secs(10), "reload served", || async {
            let r = client::get(s.web(), "/other").await.ok()?;
            (client::text(&r) == want).then_some(())
        })
        .await;
    }
    let before = up.requests().len();
    assert_eq!(
        client::status(s.web(), get("/api", &[])).await,
        503,
        "still open"
    );
    assert_eq!(up.requests().len(), before);
    assert_eq!(sum(&s.metrics().await, "strait_config_version", &[]), 101.0);
}
