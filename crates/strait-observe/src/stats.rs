//! Per-(listener, route, upstream) request stats with pre-resolved metric handles, so the request path never looks up labels.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter};

use crate::metrics::{method_label, Metrics};
use crate::openmetrics::{Exemplar, ExemplarCell};

/// Slots per stats object: distinct (method, code) pairs a route sees in practice stay well under this.
const SLOTS: usize = 16;

/// The identity of one stats object: the bounded labels that do not vary per request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatsKey {
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name, or `unmatched`.
    pub route: Arc<str>,
    /// Upstream name, empty for direct responses.
    pub upstream: Arc<str>,
}

struct Slot {
    key: u32,
    count: IntCounter,
    duration: Histogram,
    exemplar: Arc<ExemplarCell>,
}

impl Slot {
    fn offer(&self, trace_id: [u8; 16], seconds: f64) {
        self.exemplar.offer(Exemplar {
            trace_id,
            value: seconds,
            timestamp: unix_now(),
        });
    }
}

/// Request counters and latency for one (listener, route, upstream); handles per (method, code) are resolved once.
pub struct RouteStats {
    metrics: Arc<Metrics>,
    key: StatsKey,
    slots: OnceLock<Box<[OnceLock<Slot>; SLOTS]>>,
    bytes: OnceLock<(IntCounter, IntCounter)>,
}

impl std::fmt::Debug for RouteStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RouteStats").field(&self.key).finish()
    }
}

impl RouteStats {
    /// Creates stats for `key`; nothing is registered until the first request.
    pub fn new(metrics: Arc<Metrics>, key: StatsKey) -> Self {
        RouteStats {
            metrics,
            key,
            slots: OnceLock::new(),
            bytes: OnceLock::new(),
        }
    }

    /// The labels this object records under.
    pub fn key(&self) -> &StatsKey {
        &self.key
    }

    /// Counts one answered request and its latency in seconds.
    pub fn record(&self, method: &http::Method, code: u16, seconds: f64) {
        self.record_traced(method, code, seconds, None);
    }

    /// Adds request and response body bytes to the route's byte counters.
    pub fn add_bytes(&self, request: u64, response: u64) {
        let (req, resp) = self.bytes.get_or_init(|| {
            let labels = [&*self.key.listener, &*self.key.route, &*self.key.upstream];
            (
                self.metrics.request_bytes.with_label_values(&labels),
                self.metrics.response_bytes.with_label_values(&labels),
            )
        });
        if request > 0 {
            req.inc_by(request);
        }
        if response > 0 {
            resp.inc_by(response);
        }
    }

    /// Like [`RouteStats::record`]; a sampled request's trace id becomes the series' exemplar.
    pub fn record_traced(
        &self,
        method: &http::Method,
        code: u16,
        seconds: f64,
        trace_id: Option<[u8; 16]>,
    ) {
        if let Some(slot) = self.slot(method, code, true) {
            slot.count.inc();
            slot.duration.observe(seconds);
            if let Some(trace_id) = trace_id {
                slot.offer(trace_id, seconds);
            }
            return;
        }
        // More distinct (method, code) pairs than slots: correct but slower label lookup.
        let code = code.to_string();
        let labels = self.labels(method, &code);
        self.metrics.requests.with_label_values(&labels).inc();
        self.metrics
            .request_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Makes `trace_id` the exemplar of the (method, code) series if it has been recorded; for
    /// traces kept at the end (errors, slow requests) whose start decision left no exemplar.
    pub fn offer_exemplar(
        &self,
        method: &http::Method,
        code: u16,
        seconds: f64,
        trace_id: [u8; 16],
    ) {
        if let Some(slot) = self.slot(method, code, false) {
            slot.offer(trace_id, seconds);
        }
    }

    /// The pre-resolved handles of (method, code): probed from a hash of the pair; with
    /// `create`, resolved into the first free slot, otherwise only found if already there.
    fn slot(&self, method: &http::Method, code: u16, create: bool) -> Option<&Slot> {
        let mkey = (method_index(method) << 16) | u32::from(code);
        let slots = if create {
            self.slots
                .get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())))
        } else {
            self.slots.get()?
        };
        let start = (mkey as usize).wrapping_mul(0x9E37_79B9) >> 4;
        for i in 0..SLOTS {
            let cell = &slots[(start + i) % SLOTS];
            let slot = if create {
                cell.get_or_init(|| self.resolve(mkey, method, code))
            } else {
                cell.get()?
            };
            if slot.key == mkey {
                return Some(slot);
            }
        }
        None
    }

    fn resolve(&self, key: u32, method: &http::Method, code: u16) -> Slot {
        let code = code.to_string();
        let labels = self.labels(method, &code);
        let named: Vec<(&str, &str)> = crate::metrics::REQUEST_LABELS
            .iter()
            .copied()
            .zip(labels.iter().copied())
            .collect();
        Slot {
            key,
            count: self.metrics.requests.with_label_values(&labels),
            duration: self.metrics.request_duration.with_label_values(&labels),
            exemplar: self.metrics.exemplars.cell(&named),
        }
    }

    fn labels<'a>(&'a self, method: &http::Method, code: &'a str) -> [&'a str; 5] {
        [
            &self.key.listener,
            &self.key.route,
            &self.key.upstream,
            method_label(method),
            code,
        ]
    }
}

/// Seconds since the Unix epoch (exemplar timestamps).
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn method_index(m: &http::Method) -> u32 {
    match *m {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::PUT => 2,
        http::Method::DELETE => 3,
        http::Method::HEAD => 4,
        http::Method::OPTIONS => 5,
        http::Method::PATCH => 6,
        http::Method::CONNECT => 7,
        http::Method::TRACE => 8,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_code_under_the_route_labels() {
        let metrics = Arc::new(Metrics::new());
        let stats = RouteStats::new(
            metrics.clone(),
            StatsKey {
                listener: "web".into(),
                route: "api".into(),
                upstream: "users".into(),
            },
        );
        for _ in 0..3 {
            stats.record(&http::Method::GET, 200, 0.001);
        }
        stats.record(&http::Method::from_bytes(b"PURGE").unwrap(), 404, 0.001);
        let get = metrics
            .requests
            .with_label_values(&["web", "api", "users", "GET", "200"])
            .get();
        let other = metrics
            .requests
            .with_label_values(&["web", "api", "users", "OTHER", "404"])
            .get();
        assert_eq!((get, other), (3, 1));
    }

    #[test]
    fn more_pairs_than_slots_are_still_counted() {
        let metrics = Arc::new(Metrics::new());
        let stats = RouteStats::new(
            metrics.clone(),
            StatsKey {
                listener: "l".into(),
                route: "r".into(),
                upstream: "".into(),
            },
        );
        for code in 200..240u16 {
            stats.record(&http::Method::POST, code, 0.0);
            stats.record(&http::Method::POST, code, 0.0);
        }
        for code in 200..240u16 {
            let n = metrics
                .requests
                .with_label_values(&["l", "r", "", "POST", &code.to_string()])
                .get();
            assert_eq!(n, 2, "code {code}");
        }
    }
}
