//! Request mirroring through the real binary: the shadow upstream receives the configured share of requests with their method, path, headers (Host marked `-shadow`) and bodies; bodies over `max_body` are not copied and are counted; a shadow that hangs or refuses connections never delays or fails a primary request, and copies in flight stay within `max_in_flight`; bad settings are rejected with their positions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use strait_e2e::client::{self, empty, full, Body, Conn, Proto};
use strait_e2e::config_file::{line_of, Validated};
use strait_e2e::metrics::sum;
use strait_e2e::upstream::SilentUpstream;
use strait_e2e::{closed_addr, poll_until, rss_kib, within, BoxError, Strait, Upstream};

/// A mirror counter of policy `policy`.
fn mirrored(metrics: &str, policy: &str, result: &str) -> f64 {
    sum(
        metrics,
        "strait_mirror_requests_total",
        &[("policy", policy), ("result", result)],
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "api.test")
        .body(empty())
        .unwrap()
}

/// Sends `req` on `conn` and returns the status, bounded to 5 s.
async fn status(conn: &mut Conn, req: Request<Body>) -> u16 {
    within(Duration::from_secs(5), "a primary response", async {
        let r = conn.send(req).await.expect("response head");
        client::collect(r).await.expect("response body")
    })
    .await
    .status()
    .as_u16()
}

/// A body streamed in 100-byte chunks without a Content-Length (sent chunked).
fn chunked(len: usize) -> Body {
    let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..len.div_ceil(100))
        .map(|i| {
            let n = 100.min(len - i * 100);
            Ok(Frame::data(Bytes::from(vec![b'a' + (i % 26) as u8; n])))
        })
        .collect();
    BodyExt::boxed(StreamBody::new(futures_util::stream::iter(chunks)))
}

fn config(primary: SocketAddr, shadow: SocketAddr) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n\
         \x20 - name: quarter\n    mirror: {{ upstream: shadow, percentage: 25 }}\n\
         \x20 - name: uploads\n    mirror: {{ upstream: shadow, max_body: 1KiB }}\n\
         routes:\n\
         \x20 - name: orders\n    match: {{ path_prefix: /orders/ }}\n    upstream: primary\n    \
         policies: [quarter, {{ headers: {{ request: {{ set: {{ x-edited: \"yes\" }} }} }} }}]\n\
         \x20 - name: upload\n    match: {{ path_prefix: /upload }}\n    upstream: primary\n    \
         policies: [uploads]\n\
         upstreams:\n\
         \x20 - name: primary\n    endpoints: [\"{primary}\"]\n\
         \x20 - name: shadow\n    endpoints: [\"{shadow}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shadow_receives_the_configured_share_with_method_path_and_headers() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let s = Strait::start(&config(primary.addr(), shadow.addr())).await;
    let total = 2_000usize;
    let workers = 4;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let addr = s.web();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr, Proto::H1).await.unwrap();
            for i in (w..total).step_by(workers) {
                let req = Request::get(format!("/orders/{i}?q=1"))
                    .header("host", "api.test:8080")
                    .header("x-seq", i.to_string())
                    .body(empty())
                    .unwrap();
                assert_eq!(status(&mut conn, req).await, 200);
            }
        }));
    }
    within(Duration::from_secs(120), "2,000 requests", async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
    assert_eq!(
        primary.requests().len(),
        total,
        "every request reached the primary"
    );
    // The copies are sent on their own tasks: wait until every one was answered.
    let sent = poll_until(Duration::from_secs(10), "copies answered", || async {
        let m = s.metrics().await;
        let sent = mirrored(&m, "quarter", "sent");
        (sent > 0.0 && sent as usize == shadow.requests().len()).then_some(sent as usize)
    })
    .await;
    // 25% of 2,000 is 500 with a standard deviation of sqrt(2000 · 0.25 · 0.75) ≈ 19.4; ±100 is
    // over five deviations, so a correct sampler fails this about once in five million runs.
    assert!((400..=600).contains(&sent), "{sent} of {total} mirrored");
    let m = s.metrics().await;
    for result in ["error", "timeout", "dropped_busy", "dropped_body_too_large"] {
        assert_eq!(mirrored(&m, "quarter", result), 0.0, "{result}");
    }
    for r in shadow.requests() {
        let seq = r.header("x-seq");
        assert_eq!(r.method, http::Method::GET);
        assert_eq!(r.path_and_query(), format!("/orders/{seq}?q=1"));
        assert_eq!(
            r.header("host"),
            "api.test-shadow:8080",
            "Host marked before the port"
        );
        assert_eq!(
            r.header("x-edited"),
            "yes",
            "the copy is made after header edits"
        );
        assert_eq!(r.body_len, 0);
    }
    // The primary sees the request unmarked.
    assert_eq!(primary.requests()[0].header("host"), "api.test:8080");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_up_to_max_body_are_copied_and_larger_ones_are_counted() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let s = Strait::start(&config(primary.addr(), shadow.addr())).await;
    let mut conn = Conn::connect(s.web(), Proto::H1).await.unwrap();
    let small: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8).collect();
    let post = |path: &str, body: Body, len: Option<usize>| {
        let mut b = Request::post(path)
            .header("host", "api.test")
            .header("content-type", "application/octet-stream");
        if let Some(n) = len {
            b = b.header("content-length", n.to_string());
        }
        b.body(body).unwrap()
    };
    // Fits: declared length, and streamed without one.
    let req = post("/upload/a", full(small.clone()), Some(small.len()));
    assert_eq!(status(&mut conn, req).await, 200);
    assert_eq!(
        status(&mut conn, post("/upload/b", chunked(300), None)).await,
        200
    );
    // Too large: declared (refused before any byte is kept), and found out while streaming.
    let req = post("/upload/c", full(vec![b'x'; 4096]), Some(4096));
    assert_eq!(status(&mut conn, req).await, 200);
    assert_eq!(
        status(&mut conn, post("/upload/d", chunked(2000), None)).await,
        200
    );
    // No body at all.
    assert_eq!(status(&mut conn, get("/upload/e")).await, 200);

    poll_until(Duration::from_secs(10), "three copies answered", || async {
        let m = s.metrics().await;
        (mirrored(&m, "uploads", "sent") == 3.0).then_some(())
    })
    .await;
    let m = s.metrics().await;
    assert_eq!(mirrored(&m, "uploads", "dropped_body_too_large"), 2.0);
    let copies = shadow.requests();
    let paths: Vec<String> = copies.iter().map(|r| r.path_and_query()).collect();
    assert_eq!(copies.len(), 3, "{paths:?}");
    let a = copies.iter().find(|r| r.uri.path() == "/upload/a").unwrap();
    assert_eq!(a.method, http::Method::POST);
    assert_eq!(&a.body[..], &small[..]);
    assert_eq!(a.header("content-length"), "700");
    assert_eq!(a.header("content-type"), "application/octet-stream");
    assert_eq!(a.header("host"), "api.test-shadow");
    let b = copies.iter().find(|r| r.uri.path() == "/upload/b").unwrap();
    assert_eq!(b.body_len, 300);
    assert_eq!(b.header("content-length"), "300", "the copy is sent whole");
    let e = copies.iter().find(|r| r.uri.path() == "/upload/e").unwrap();
    assert_eq!((e.method.as_str(), e.body_len), ("GET", 0));

    // The primary got every body intact, with its framing: observing does not re-chunk it.
    let prim = primary.requests();
    assert_eq!(prim.len(), 5);
    let pa = prim.iter().find(|r| r.uri.path() == "/upload/a").unwrap();
    assert_eq!(&pa.body[..], &small[..]);
    assert_eq!(pa.header("content-length"), "700");
    assert_eq!(pa.header("transfer-encoding"), "");
    let pc = prim.iter().find(|r| r.uri.path() == "/upload/c").unwrap();
    assert_eq!(pc.body_len, 4096);
    let pd = prim.iter().find(|r| r.uri.path() == "/upload/d").unwrap();
    assert_eq!(pd.body_len, 2000);
    let pe = prim.iter().find(|r| r.uri.path() == "/upload/e").unwrap();
    assert_eq!(
        pe.header("transfer-encoding"),
        "",
        "a bodiless GET stays bodiless"
    );
}

/// Mirrors every request of route `hang` to a shadow that accepts and never answers (4 in
/// flight, each given a minute), of `slow` to the same shadow with a 200 ms timeout, and of
/// `refused` to a port nothing listens on; `plain` does not mirror.
fn failing_config(primary: SocketAddr, silent: SocketAddr, closed: SocketAddr) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n\
         \x20 - name: hang\n    match: {{ path_prefix: /hang }}\n    upstream: primary\n    \
         policies: [{{ name: hang, mirror: {{ upstream: silent, max_in_flight: 4, timeout: 60s }} }}]\n\
         \x20 - name: slow\n    match: {{ path_prefix: /slow }}\n    upstream: primary\n    \
         policies: [{{ name: slow, mirror: {{ upstream: silent-short, timeout: 200ms }} }}]\n\
         \x20 - name: refused\n    match: {{ path_prefix: /refused }}\n    upstream: primary\n    \
         policies: [{{ name: refused, mirror: {{ upstream: nowhere }} }}]\n\
         \x20 - name: plain\n    match: {{ path_prefix: / }}\n    upstream: primary\n\
         upstreams:\n\
         \x20 - name: primary\n    endpoints: [\"{primary}\"]\n\
         \x20 - name: silent\n    endpoints: [\"{silent}\"]\n    timeouts: {{ request: 120s }}\n\
         \x20 - name: silent-short\n    endpoints: [\"{silent}\"]\n\
         \x20 - name: nowhere\n    endpoints: [\"{closed}\"]\n"
    )
}

/// Sends `n` sequential GETs to `path` on one connection; every one must answer 200 within its
/// 5 s budget. Returns the total time.
async fn sequential(addr: SocketAddr, path: &str, n: usize) -> Duration {
    let mut conn = Conn::connect(addr, Proto::H1).await.unwrap();
    let start = Instant::now();
    for i in 0..n {
        assert_eq!(status(&mut conn, get(&format!("{path}/{i}"))).await, 200);
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_or_refusing_shadow_never_delays_or_fails_the_primary() {
    let primary = Upstream::start("primary").await;
    let silent = SilentUpstream::start().await;
    let s = Strait::start(&failing_config(
        primary.addr(),
        silent.addr(),
        closed_addr(),
    ))
    .await;
    // Warm the primary's pool so both runs below start alike.
    sequential(s.web(), "/warm", 20).await;

    let baseline = sequential(s.web(), "/plain", 200).await;
    let rss_before = rss_kib(s.pid());
    let hanging = sequential(s.web(), "/hang", 200).await;
    let refused = sequential(s.web(), "/refused", 200).await;
    let short = sequential(s.web(), "/slow", 50).await;
    let rss_after = rss_kib(s.pid());
    eprintln!("200 requests: plain {baseline:?}, hanging shadow {hanging:?}, refused {refused:?}");
    // Loose: no primary waits for a copy (a copy that did would take a minute here), so each
    // run stays within a small multiple of the plain one.
    for (what, took) in [("hanging", hanging), ("refused", refused)] {
        assert!(
            took < baseline * 5 + Duration::from_secs(2),
            "{what}: {took:?} against {baseline:?} without mirroring"
        );
    }
    assert!(short < Duration::from_secs(10), "{short:?}");

    let m = s.metrics().await;
    // At most 4 copies out at once: the shadow holds the first 4 for a minute, every other
    // request finds the bound full and its copy is dropped at once, never queued.
    assert_eq!(mirrored(&m, "hang", "dropped_busy"), 196.0);
    assert_eq!(mirrored(&m, "hang", "sent"), 0.0);
    let refused_errors = poll_until(
        Duration::from_secs(10),
        "refused copies counted",
        || async {
            let m = s.metrics().await;
            let e = mirrored(&m, "refused", "error");
            (e == 200.0).then_some(e)
        },
    )
    .await;
    assert_eq!(refused_errors, 200.0);
    // The 200 ms copies time out, each counted once the bound runs out.
    poll_until(
        Duration::from_secs(10),
        "short copies timed out",
        || async {
            let m = s.metrics().await;
            (mirrored(&m, "slow", "timeout") == 50.0).then_some(())
        },
    )
    .await;
    // The silent shadow saw the 4 held copies and the 50 short ones, nothing more.
    assert!(silent.accepted() <= 54, "{} connections", silent.accepted());
    assert_eq!(primary.requests().len(), 20 + 200 * 3 + 50);
    // Copies hold nothing beyond their bound: 650 dropped or failed copies leave no trace.
    let grown = rss_after.saturating_sub(rss_before);
    assert!(grown < 32 * 1024, "RSS grew {grown} KiB");
}

#[test]
fn bad_mirror_settings_are_reported_with_their_positions() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
                policies:\n\
                \x20 - name: a\n    mirror: { upstream: missing }\n\
                \x20 - name: b\n    mirror: { upstream: up, percentage: 150 }\n\
                \x20 - name: c\n    mirror: { upstream: up, max_in_flight: 0, timeout: 5 }\n\
                routes:\n  - name: r\n    upstream: up\n    policies: [a, b, c]\n\
                upstreams:\n  - name: up\n    endpoints: [\"127.0.0.1:9\"]\n";
    let v = Validated::run(yaml, &[]);
    let at = |needle: &str| v.errors_at(line_of(yaml, needle)).join("\n");
    // Each error at its value: LINE:COL counted in the YAML above.
    let a = at("upstream: missing");
    let want = format!(
        ":{}:25: mirror.upstream `missing` is not defined under `upstreams:`",
        line_of(yaml, "upstream: missing")
    );
    assert!(a.contains(&want), "{a}");
    let b = at("percentage: 150");
    let want = format!(
        ":{}:41: mirror.percentage must be from 0 to 100, not `150`",
        line_of(yaml, "percentage: 150")
    );
    assert!(b.contains(&want), "{b}");
    let c = at("max_in_flight: 0");
    assert!(
        c.contains("mirror.max_in_flight must be a whole number"),
        "{c}"
    );
    assert!(c.contains("mirror.timeout"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_mirrored_with_the_authority_marked() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let s = Strait::start(&config(primary.addr(), shadow.addr())).await;
    let mut conn = Conn::connect(s.web(), Proto::H2c).await.unwrap();
    // A bodiless GET (END_STREAM on its HEADERS) and a POST with a body and no length.
    let req = Request::get("http://api.test/upload/h2-get")
        .version(http::Version::HTTP_2)
        .body(empty())
        .unwrap();
    assert_eq!(status(&mut conn, req).await, 200);
    let req = Request::post("http://api.test/upload/h2-post")
        .version(http::Version::HTTP_2)
        .body(chunked(250))
        .unwrap();
    assert_eq!(status(&mut conn, req).await, 200);
    poll_until(Duration::from_secs(10), "two copies answered", || async {
        (shadow.requests().len() == 2).then_some(())
    })
    .await;
    for r in shadow.requests() {
        assert_eq!(r.header("host"), "api.test-shadow", "{}", r.uri);
    }
    let post = shadow
        .requests()
        .into_iter()
        .find(|r| r.uri.path() == "/upload/h2-post")
        .unwrap();
    assert_eq!(post.body_len, 250);
    let get = primary
        .requests()
        .into_iter()
        .find(|r| r.uri.path() == "/upload/h2-get")
        .unwrap();
    assert_eq!(
        get.header("transfer-encoding"),
        "",
        "a bodiless GET stays bodiless"
    );
}
