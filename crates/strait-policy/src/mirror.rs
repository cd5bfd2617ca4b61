//! The `mirror` policy: copy a share of requests (head and body up to a limit) to a shadow upstream, fire and forget, so the shadow's answers, failures and latency never reach the client.
//!
//! The request hook samples (one random number against a precomputed threshold, [`Share`]),
//! takes a slot of the policy's in-flight bound without waiting, and copies the head as it
//! stands after the earlier filters (so at rank 900 the shadow sees header edits). The body
//! goes through a [`BodyFilter`] that only looks ([`BodyFilter::observes_only`]): each chunk is
//! passed on at once and copied into a buffer of at most `max_body` bytes; at the body's end the
//! copy is sent on its own task through Strait's upstream client (the shadow upstream's
//! balancing, pools and TLS). A body over `max_body`, a full in-flight bound, a failure or a
//! timeout each drop the copy and are counted in `strait_mirror_requests_total{policy,result}`.
//!
//! Memory is bounded by `max_in_flight × max_body`: the slot is taken before any byte is kept
//! and held until the copy is answered, fails or times out.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri, Version};
use prometheus::IntCounter;
use strait_core::{
    BodyFilter, BodyFlow, Filter, FilterState, Flow, Hooks, ProxyError, RequestCtx, UpstreamClient,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What Envoy appends to the Host (before any port) of a shadowed request.
const SHADOW_SUFFIX: &str = "-shadow";

/// A share of requests, decided by comparing a uniform random `u64` with a threshold computed
/// once, so each decision is one comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Values below it are admitted.
    threshold: u64,
    /// 100%: every value is admitted (no `u64` threshold says so).
    all: bool,
}

impl Share {
    /// The share for `percent` (0 to 100; out-of-range values are clamped).
    pub fn from_percent(percent: f64) -> Share {
        if percent >= 100.0 {
            return Share {
                threshold: u64::MAX,
                all: true,
            };
        }
        let fraction = (percent / 100.0).max(0.0);
        // 2^64 · fraction, saturating (`as` rounds towards zero and clamps).
        let threshold = (fraction * 18_446_744_073_709_551_616.0) as u64;
        Share {
            threshold,
            all: false,
        }
    }

    /// Whether the request drawn `r` (uniform over `u64`) is in the share.
    pub fn admits(self, r: u64) -> bool {
        self.all || r < self.threshold
    }
}

/// The counters of one mirror policy, one per result.
pub struct MirrorCounters {
    /// The shadow answered (any status).
    pub sent: IntCounter,
    /// The copy failed (no connection, reset, bad response).
    pub error: IntCounter,
    /// The copy took longer than `timeout`.
    pub timeout: IntCounter,
    /// Not sent: `max_in_flight` copies were already out.
    pub dropped_busy: IntCounter,
    /// Not sent: the request body was larger than `max_body`.
    pub dropped_body_too_large: IntCounter,
}

/// Settings and shared parts of one mirror policy.
struct Inner {
    client: Arc<dyn UpstreamClient>,
    max_body: u64,
    timeout: Duration,
    slots: Arc<Semaphore>,
    counters: MirrorCounters,
}

/// The `mirror` filter.
pub struct MirrorFilter {
    name: Arc<str>,
    share: Share,
    inner: Arc<Inner>,
}

impl MirrorFilter {
    /// A mirror called `name` sending `share` of requests through `client`; `slots` bounds the
    /// copies in flight (shared across reloads through live state).
    pub fn new(
        name: &str,
        client: Arc<dyn UpstreamClient>,
        share: Share,
        max_body: u64,
        timeout: Duration,
        slots: Arc<Semaphore>,
        counters: MirrorCounters,
    ) -> Self {
        MirrorFilter {
            name: Arc::from(name),
            share,
            inner: Arc::new(Inner {
                client,
                max_body,
                timeout,
                slots,
                counters,
            }),
        }
    }
}

/// A sampled request waiting for its body: the copied head and the slot it holds.
struct Pending {
    head: http::request::Parts,
    /// The declared body length, to size the buffer once.
    declared: Option<u64>,
    permit: OwnedSemaphorePermit,
}

impl Filter for MirrorFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "mirror"
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            request_body: true,
            ..Hooks::REQUEST
        }
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        if !self.share.admits(strait_core::rand::next_u64()) {
            return Flow::Continue;
        }
        let declared = content_length(&ctx.head.headers);
        if declared.is_some_and(|n| n > self.inner.max_body) {
            self.inner.counters.dropped_body_too_large.inc();
            return Flow::Continue;
        }
        // Never queued: a shadow that is slow or down costs the primary nothing.
        let Ok(permit) = self.inner.slots.clone().try_acquire_owned() else {
            self.inner.counters.dropped_busy.inc();
            return Flow::Continue;
        };
        state.set(Pending {
            head: shadow_head(ctx.head),
            declared,
            permit,
        });
        Flow::Continue
    }

    fn request_body(
        &self,
        _ctx: &RequestCtx<'_>,
        state: &mut FilterState,
    ) -> Option<Box<dyn BodyFilter>> {
        let pending = state.take::<Pending>()?;
        Some(Box::new(Tee {
            buf: BytesMut::with_capacity(pending.declared.unwrap_or(0) as usize),
            pending: Some(pending),
            inner: self.inner.clone(),
        }))
    }
}

/// Copies the body of a sampled request as it passes, and sends the copy at its end.
struct Tee {
    pending: Option<Pending>,
    buf: BytesMut,
    inner: Arc<Inner>,
}

impl BodyFilter for Tee {
    fn on_data(&mut self, data: Bytes, end: bool) -> BodyFlow {
        if self.pending.is_some() {
            if (self.buf.len() + data.len()) as u64 > self.inner.max_body {
                // A body without a Content-Length that grew too large: the slot and the
                // buffer go at once.
                self.pending = None;
                self.buf = BytesMut::new();
                self.inner.counters.dropped_body_too_large.inc();
            } else {
                self.buf.extend_from_slice(&data);
                if end {
                    if let Some(p) = self.pending.take() {
                        let body = std::mem::take(&mut self.buf).freeze();
                        launch(&self.inner, p, body);
                    }
                }
            }
        }
        BodyFlow::Pass(data)
    }

    fn observes_only(&self) -> bool {
        true
    }
}

/// Sends the copy on its own task; its result is only counted.
fn launch(inner: &Arc<Inner>, p: Pending, body: Bytes) {
    let Pending {
        mut head,
        permit,
        declared,
    } = p;
    // The copy is sent whole: a length when there is a body, or when the client declared one.
    if !body.is_empty() || declared.is_some() {
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let req = Request::from_parts(head, body);
    let sent = inner.client.send_discarding(req, inner.timeout);
    let inner = inner.clone();
    tokio::spawn(async move {
        let result = sent.await;
        // The slot is free once the copy is done with, whatever the outcome.
        drop(permit);
        let c = &inner.counters;
        match result {
            Ok(_) => c.sent.inc(),
            Err(ProxyError::Timeout { .. }) => c.timeout.inc(),
            Err(_) => c.error.inc(),
        }
    });
}

/// The declared body length: `Content-Length`, or `None` when absent or malformed.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), framing and `Expect`: the copy is sent whole with its
/// own length on its own connection.
static NOT_COPIED: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::EXPECT,
];

/// The head of the copy: method, origin-form target and headers of `head`, hop-by-hop headers
/// dropped, the Host (or HTTP/2 authority) marked with `-shadow`.
fn shadow_head(head: &http::request::Parts) -> http::request::Parts {
    let mut headers = head.headers.clone();
    for name in head
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        if let Ok(n) = HeaderName::from_bytes(name.trim().as_bytes()) {
            headers.remove(n);
        }
    }
    for n in &NOT_COPIED {
        headers.remove(n);
    }
    let host = head
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()));
    if let Some(v) = host.and_then(|h| HeaderValue::from_str(&shadow_host(h)).ok()) {
        headers.insert(header::HOST, v);
    }
    let target = head
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    let mut req = Request::new(());
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = target;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    req.into_parts().0
}

/// `host` with `-shadow` appended to the name, before any port (as Envoy does):
/// `api.example.com:8080` → `api.example.com-shadow:8080`, `[::1]` → `[::1]-shadow`.
pub fn shadow_host(host: &str) -> String {
    let port_start = host.rfind(':').filter(|&i| {
        let port = &host[i + 1..];
        // A colon inside an unbracketed IPv6 literal is not a port separator.
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (host.starts_with('[') || !host[..i].contains(':'))
    });
    match port_start {
        Some(i) => format!("{}{SHADOW_SUFFIX}{}", &host[..i], &host[i..]),
        None => format!("{host}{SHADOW_SUFFIX}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;
    use proptest::prelude::*;

    /// How many of `n` draws over `u64`, one in the middle of each of `n` equal strata, the
    /// share admits.
    fn admitted_of_spread(share: Share, n: u64) -> u64 {
        let step = u64::MAX / n;
        (0..n).filter(|i| share.admits(i * step + step / 2)).count() as u64
    }

    #[test]
    fn zero_admits_nothing_and_hundred_admits_everything() {
        let none = Share::from_percent(0.0);
        let all = Share::from_percent(100.0);
        for r in [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
            assert!(!none.admits(r));
            assert!(all.admits(r));
        }
    }

    proptest! {
        /// Over draws spread evenly across `u64`, the admitted share is the percentage, to
        /// within one draw: the threshold is exact to 2^-53.
        #[test]
        fn admitted_share_matches_the_percentage(percent in 0.0f64..=100.0) {
            let n = 10_000u64;
            let got = admitted_of_spread(Share::from_percent(percent), n) as f64;
            let want = percent / 100.0 * n as f64;
            prop_assert!((got - want).abs() <= 1.0, "{percent}%: {got} of {n}, want {want}");
        }

        /// A larger percentage admits every draw a smaller one admits (so raising it only adds
        /// requests to the copy).
        #[test]
        fn shares_are_monotone(a in 0.0f64..=100.0, b in 0.0f64..=100.0, r in any::<u64>()) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if Share::from_percent(lo).admits(r) {
                prop_assert!(Share::from_percent(hi).admits(r));
            }
        }

        /// The Host mark keeps the port and is never lost.
        #[test]
        fn shadow_host_keeps_the_port(name in "[a-z][a-z0-9.-]{0,20}", port in proptest::option::of(1u16..)) {
            let host = match port {
                Some(p) => format!("{name}:{p}"),
                None => name.clone(),
            };
            let got = shadow_host(&host);
            let want = match port {
                Some(p) => format!("{name}-shadow:{p}"),
                None => format!("{name}-shadow"),
            };
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn fractional_percentages_are_kept() {
        let half_percent = Share::from_percent(0.5);
        assert_eq!(admitted_of_spread(half_percent, 100_000), 500);
    }

    #[test]
    fn ip_literal_hosts_are_marked_before_the_port() {
        assert_eq!(shadow_host("[::1]:8080"), "[::1]-shadow:8080");
        assert_eq!(shadow_host("[::1]"), "[::1]-shadow");
        assert_eq!(shadow_host("127.0.0.1:80"), "127.0.0.1-shadow:80");
        assert_eq!(shadow_host("api.example.com"), "api.example.com-shadow");
    }

    #[test]
    fn the_copy_drops_hop_by_hop_headers_and_marks_the_host() {
        let req = Request::post("http://ignored/orders?id=7")
            .header("host", "api.example.com:8443")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("transfer-encoding", "chunked")
            .header("expect", "100-continue")
            .header("x-user", "u1")
            .body(())
            .unwrap();
        let (head, ()) = req.into_parts();
        let copy = shadow_head(&head);
        assert_eq!(copy.method, Method::POST);
        assert_eq!(copy.uri, "/orders?id=7");
        assert_eq!(copy.headers["host"], "api.example.com-shadow:8443");
        assert_eq!(copy.headers["x-user"], "u1");
        for gone in ["connection", "x-hop", "transfer-encoding", "expect"] {
            assert!(!copy.headers.contains_key(gone), "{gone} copied");
        }
    }

    #[test]
    fn an_http2_authority_becomes_the_marked_host() {
        let req = Request::get("https://api.example.com/x")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let (head, ()) = req.into_parts();
        assert_eq!(shadow_head(&head).headers["host"], "api.example.com-shadow");
    }
}
