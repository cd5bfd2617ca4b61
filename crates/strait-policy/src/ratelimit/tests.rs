use std::net::SocketAddr;

use super::*;

fn counters() -> RateLimitCounters {
    let c = || IntCounter::new("c", "c").unwrap();
    RateLimitCounters {
        evicted: c(),
        store_errors: c(),
        store_timeouts: c(),
        fallback_open: c(),
        fallback_closed: c(),
    }
}

fn filter(requests: u64, burst: u64, headers: bool) -> RateLimitFilter {
    RateLimitFilter::new(
        "per-client",
        requests,
        Duration::from_secs(1),
        burst,
        LimitKey::new(vec![KeyPart::ClientIp], false),
        Arc::new(LocalTable::new(100)),
        None,
        headers,
        counters(),
    )
}

fn run(f: &RateLimitFilter, ip: [u8; 4], state: &mut FilterState) -> Option<Reply> {
    let (mut head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
    let mut ctx = RequestCtx {
        head: &mut head,
        client: SocketAddr::from((ip, 1000)),
        listener: "web",
        route: "api",
        tls: false,
        peer: None,
    };
    let out = match f.on_request(&mut ctx, state) {
        Flow::Continue => None,
        Flow::Reply(r) => Some(r),
        Flow::Wait(_) => panic!("a local limit never waits"),
    };
    out
}

#[test]
fn over_the_burst_the_reply_is_429_with_retry_after_and_ratelimit_headers() {
    let f = filter(2, 2, false);
    let mut s = FilterState::default();
    assert!(run(&f, [10, 0, 0, 1], &mut s).is_none());
    assert!(run(&f, [10, 0, 0, 1], &mut s).is_none());
    let r = run(&f, [10, 0, 0, 1], &mut s).expect("refused");
    assert_eq!(r.response.status(), 429);
    assert_eq!(r.reason, "rate_limited");
    let h = r.response.headers();
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["ratelimit-policy"], "\"per-client\";q=2;w=1");
    assert_eq!(h["ratelimit"], "\"per-client\";r=0;t=1");
    // Another client has its own budget.
    assert!(run(&f, [10, 0, 0, 2], &mut s).is_none());
    assert!(s.is_empty(), "no state kept without response headers");
}

#[test]
fn admitted_requests_keep_their_decision_for_the_response_headers() {
    let f = filter(5, 5, true);
    assert!(f.hooks().response);
    let mut s = FilterState::default();
    assert!(run(&f, [10, 0, 0, 1], &mut s).is_none());
    let (mut parts, ()) = http::Response::new(()).into_parts();
    let uri = http::Uri::from_static("/");
    let mut ctx = ResponseCtx {
        head: &mut parts,
        method: &http::Method::GET,
        uri: &uri,
        route: "api",
        upstream: None,
        local: false,
    };
    assert!(matches!(f.on_response(&mut ctx, &mut s), Flow::Continue));
    assert_eq!(parts.headers["ratelimit"], "\"per-client\";r=4;t=1");
    assert_eq!(parts.headers["ratelimit-policy"], "\"per-client\";q=5;w=1");
}

#[test]
fn the_policy_header_scales_the_quota_to_whole_seconds() {
    assert_eq!(
        policy_header("a", 10, Duration::from_millis(500)),
        "\"a\";q=20;w=1"
    );
    assert_eq!(
        policy_header("a", 100, Duration::from_secs(60)),
        "\"a\";q=100;w=60"
    );
}
