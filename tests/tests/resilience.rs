//! Resilient forwarding through the real binary: a dead endpoint costs no request, a stale pooled connection costs no request, retries stay within their budget, breakers open and close, weighted backends get their shares, and a slow uploader cannot hang other users' requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use strait_e2e::client::{self, empty, full, Proto};
use strait_e2e::metrics::sum;
use strait_e2e::raw::{Behaviour, RawUpstream};
use strait_e2e::upstream::{RecordedRequest, Reply};
use strait_e2e::{closed_addr, poll_until, within, Strait, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(endpoints: &[SocketAddr], upstream_extra: &str, route_extra: &str, top: &str) -> String {
    let eps: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n{top}routes:\n  - name: r\n    upstream: up\n{route_extra}\
         upstreams:\n  - name: up\n    endpoints: [{}]\n{upstream_extra}",
        eps.join(", ")
    )
}

fn get(path: &str) -> Request<client::Body> {
    Request::get(path)
        .header("host", "h")
        .body(empty())
        .unwrap()
}

/// Sends `n` GETs over `workers` keep-alive connections; returns the statuses seen.
async fn hammer(addr: SocketAddr, n: usize, workers: usize) -> Vec<u16> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut conn = client::Conn::connect(addr, Proto::H1)
                .await
                .expect("connect");
            while next.fetch_add(1, Ordering::SeqCst) < n {
                let status = match conn.send(get("/")).await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = client::collect(r).await;
                        s
                    }
                    Err(_) => {
                        conn = client::Conn::connect(addr, Proto::H1)
                            .await
                            .expect("reconnect");
                        0
                    }
                };
                out.push(status);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(within(Duration::from_secs(120), "load", t).await.unwrap());
    }
    all
}

#[tokio::test]
async fn a_dead_endpoint_without_health_checks_fails_no_request() {
    let live = Upstream::start("live").await;
    let s = Strait::start(&config(&[live.addr(), closed_addr()], "", "", "")).await;
    let statuses = hammer(s.web(), 1000, 4).await;
    let failed = statuses.iter().filter(|&&s| s != 200).count();
    assert_eq!(failed, 0, "failed requests out of 1000: {failed}");
    let m = s.metrics().await;
    // Passive health took the dead endpoint out after its 5 consecutive connect failures;
    // the other 3 workers may each have picked it before the ejection landed.
    assert_eq!(sum(&m, "strait_outlier_ejections_total", &[]), 1.0, "{m}");
    let connect_errors = sum(&m, "strait_upstream_connect_errors_total", &[]);
    assert!(
        connect_errors <= 8.0,
        "connect attempts to the dead endpoint: {connect_errors}"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_just_closed_costs_no_request() {
    // The upstream closes keep-alive connections idle for 300 ms, and requests come every
    // 300 ms: each one races the close of the connection it finds in the pool.
    let up = RawUpstream::start(Behaviour::CloseIdleAfter(Duration::from_millis(300))).await;
    let s = Strait::start(&config(&[up.addr()], "", "", "")).await;
    let mut conn = client::Conn::connect(s.web(), Proto::H1).await.unwrap();
    let mut failures = Vec::new();
    for i in 0..40 {
        let resp = conn.send(get("/")).await.expect("strait answers");
        if resp.status() != 200 {
            failures.push((i, resp.status()));
        }
        let _ = client::collect(resp).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(failures.is_empty(), "client-visible errors: {failures:?}");
    assert!(
        up.connections() > 1,
        "the upstream did close its idle connections"
    );
}

#[tokio::test]
async fn a_total_outage_costs_the_upstream_at_most_a_quarter_more_requests() {
    let up = Upstream::with_handler("down", |_| Reply::text("down").status(503)).await;
    let top = "policies:\n  - name: retries\n    retry: { attempts: 3, backoff: { base: 0ms, max: 0ms } }\n";
    let s = Strait::start(&config(
        &[up.addr()],
        "    outlier_detection: { consecutive_gateway_failures: 0 }\n",
        "    policies: [retries]\n",
        top,
    ))
    .await;
    let statuses = hammer(s.web(), 1000, 4).await;
    assert!(statuses.iter().all(|&s| s == 503), "every request fails");
    let seen = up.requests().len();
    assert!(
        seen <= 1250,
        "the upstream saw {seen} requests for 1000 from the client"
    );
    let m = s.metrics().await;
    let retries = sum(&m, "strait_upstream_retries_total", &[]);
    assert_eq!(retries as usize, seen - 1000, "{m}");
    assert!(
        sum(
            &m,
            "strait_retry_budget_exhausted_total",
            &[("policy", "retries")]
        ) > 0.0
    );
}

#[tokio::test]
async fn a_retry_policy_retries_idempotent_failures_on_another_endpoint_and_replays_bodies() {
    let failing = Upstream::with_handler("bad", |_| Reply::text("bad").status(503)).await;
    let good = Upstream::with_handler("good", |r: &RecordedRequest| {
        Reply::text(&format!("good {}", r.body_len))
    })
    .await;
    let top =
        "policies:\n  - name: retries\n    retry: { attempts: 2, retry_non_idempotent: true }\n";
    let s = Strait::start(&config(
        &[failing.addr(), good.addr()],
        "    outlier_detection: { consecutive_gateway_failures: 0 }\n",
        "    policies: [retries]\n",
        top,
    ))
    .await;
    for _ in 0..6 {
        let body = "x".repeat(1000);
        let req = Request::post("/")
            .header("host", "h")
            .header("content-length", body.len())
            .body(full(body))
            .unwrap();
        let resp = client::send(s.web(), Proto::H1, req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            client::text(&resp),
            "good 1000",
            "the retry carried the whole body"
        );
    }
    assert!(good.requests().iter().all(|r| r.body_len == 1000));
    assert!(
        !failing.requests().is_empty(),
        "round robin sent some to the failing one"
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(&m, "strait_upstream_retries_total", &[("route", "r")]) as usize,
        failing.requests().len()
    );
}

#[tokio::test]
async fn without_a_policy_a_post_that_reached_the_upstream_is_not_retried() {
    let failing = Upstream::with_handler("bad", |_| Reply::text("bad").status(503)).await;
    let s = Strait::start(&config(&[failing.addr()], "", "", "")).await;
    let req = Request::post("/")
        .header("host", "h")
        .body(full("x"))
        .unwrap();
    let resp = client::send(s.web(), Proto::H1, req).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(failing.requests().len(), 1);
}

#[tokio::test]
async fn a_flaky_upstream_drives_the_breaker_open_half_open_and_closed() {
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
    let breaker = "    outlier_detection: { consecutive_gateway_failures: 0 }\n    \
                   circuit_breaker: { consecutive_failures: 5, failure_ratio: 0, open_for: 1s, half_open_requests: 2 }\n";
    let s = Strait::start(&config(&[up.addr()], breaker, "", "")).await;
    let state = |m: &str| sum(m, "strait_circuit_breaker_state", &[("upstream", "up")]);
    for _ in 0..5 {
        assert_eq!(client::status(s.web(), get("/")).await, 500);
    }
    assert_eq!(state(&s.metrics().await), 1.0, "open after 5 failures");
    let before = up.requests().len();
    let t = Instant::now();
    assert_eq!(client::status(s.web(), get("/")).await, 503);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "a fast 503 while open"
    );
    assert_eq!(
        up.requests().len(),
        before,
        "nothing reaches the upstream while open"
    );

    failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(client::status(s.web(), get("/")).await, 200, "first probe");
    assert_eq!(
        state(&s.metrics().await),
        2.0,
        "half-open after one good probe"
    );
    assert_eq!(client::status(s.web(), get("/")).await, 200, "second probe");
    assert_eq!(
        state(&s.metrics().await),
        0.0,
        "closed after both probes passed"
    );
    for _ in 0..5 {
        assert_eq!(client::status(s.web(), get("/")).await, 200);
    }
    let logs = s.logs_text();
    assert!(logs.contains("circuit breaker opened"), "{logs}");
}

#[tokio::test]
async fn weighted_backends_take_their_shares() {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    \
         upstreams: [{{ name: stable, weight: 90 }}, {{ name: canary, weight: 10 }}]\n\
         upstreams:\n  - name: stable\n    endpoints: [\"{}\"]\n  - name: canary\n    endpoints: [\"{}\"]\n",
        stable.addr(),
        canary.addr()
    );
    let s = Strait::start(&yaml).await;
    let statuses = hammer(s.web(), 10_000, 8).await;
    assert!(statuses.iter().all(|&s| s == 200));
    let (a, b) = (stable.requests().len(), canary.requests().len());
    assert_eq!(a + b, 10_000);
    let share = b as f64 / 10_000.0;
    assert!(
        (share - 0.10).abs() <= 0.01,
        "canary share {share} (stable {a}, canary {b})"
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(&m, "strait_http_requests_total", &[("upstream", "canary")]) as usize,
        b,
        "requests are counted under the backend that served them"
    );
}

#[tokio::test]
async fn a_slow_uploader_answered_early_does_not_hang_other_requests() {
    let up = RawUpstream::start(Behaviour::AnswerBeforeBody).await;
    let s = Strait::start(&config(&[up.addr()], "", "", "")).await;
    // Five uploaders announce 20 bytes and send one a second; the upstream answers 401 at once.
    let mut uploaders = Vec::new();
    for _ in 0..5 {
        let addr = s.web();
        uploaders.push(tokio::spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"POST /up HTTP/1.1\r\nhost: h\r\ncontent-length: 20\r\n\r\n")
                .await
                .unwrap();
            let mut head = [0u8; 64];
            let _ = tcp.read(&mut head).await;
            for _ in 0..20 {
                if tcp.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile ten users' requests are served promptly.
    let t = Instant::now();
    let mut users = Vec::new();
    for _ in 0..10 {
        let addr = s.web();
        users.push(tokio::spawn(
            async move { client::status(addr, get("/")).await },
        ));
    }
    for u in users {
        let status = within(Duration::from_secs(5), "a user's request", u)
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    for u in uploaders {
        u.abort();
    }
}

#[tokio::test]
async fn a_cold_http2_endpoint_is_dialled_once_for_many_concurrent_requests() {
    let up = Upstream::start("h2").await;
    let yaml = config(&[up.addr()], "    protocol: h2c\n", "", "");
    let s = Strait::start(&yaml).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let addr = s.web();
        tasks.push(tokio::spawn(
            async move { client::status(addr, get("/")).await },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "one HTTP/2 connection for 50 concurrent requests"
    );
}

#[tokio::test]
async fn over_the_endpoint_connection_limit_requests_get_a_fast_503() {
    let up = Upstream::with_handler("slow", |_| {
        Reply::text("slow").delay(Duration::from_millis(800))
    })
    .await;
    let limits = "    limits: { max_connections: 1, max_pending: 0 }\n    \
                  outlier_detection: { consecutive_gateway_failures: 0 }\n";
    let s = Strait::start(&config(&[up.addr()], limits, "", "")).await;
    let addr = s.web();
    let first = tokio::spawn(async move { client::status(addr, get("/")).await });
    up.wait_started(1, Duration::from_secs(5)).await;
    let t = Instant::now();
    assert_eq!(client::status(s.web(), get("/")).await, 503);
    assert!(t.elapsed() < Duration::from_millis(500));
    assert_eq!(first.await.unwrap(), 200);
    poll_until(Duration::from_secs(5), "the slot is free again", || async {
        (client::status(s.web(), get("/")).await == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn clients_breaking_their_request_bodies_get_no_endpoint_ejected() {
    // A client whose chunked body turns invalid after the head went upstream fails its own
    // request (400); the endpoint did nothing wrong, so passive health must not count it, or
    // any client could take healthy endpoints out of rotation.
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let s = Strait::start(&config(
        &[a.addr(), b.addr()],
        "    outlier_detection: { consecutive_gateway_failures: 2 }\n",
        "",
        "",
    ))
    .await;
    for i in 0..8 {
        let mut tcp = TcpStream::connect(s.web()).await.unwrap();
        let head = format!(
            "POST /up-{i} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        // The head is forwarded and the body streaming before the bad chunk comes.
        let (a, b) = (&a, &b);
        poll_until(
            Duration::from_secs(5),
            "the head reaches an upstream",
            || async move { (a.started() + b.started() > i).then_some(()) },
        )
        .await;
        tcp.write_all(b"zz\r\n").await.unwrap();
        let mut reply = Vec::new();
        let _ = within(
            Duration::from_secs(10),
            "the refusal",
            tcp.read_to_end(&mut reply),
        )
        .await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    }
    let m = s.metrics().await;
    assert_eq!(sum(&m, "strait_outlier_ejections_total", &[]), 0.0, "{m}");
    let statuses = hammer(s.web(), 20, 2).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(!a.requests().is_empty() && !b.requests().is_empty());
}
