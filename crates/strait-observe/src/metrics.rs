//! The metric families (names are a contract: dashboards and alerts depend on them) and their exposition.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: fine below 10 ms where a proxy lives, coarse up to the 15 s default timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Labels of the per-request families, in order.
pub(crate) const REQUEST_LABELS: &[&str] = &["listener", "route", "upstream", "method", "code"];

/// All metric families of one process; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    /// The families with labels, for removing series nothing uses (see `retain`).
    pub(crate) labelled: Vec<Box<dyn crate::retain::Family>>,
    /// `strait_http_requests_total{listener,route,upstream,method,code}`.
    pub requests: IntCounterVec,
    /// `strait_http_request_duration_seconds{listener,route,upstream,method,code}`: until response headers.
    pub request_duration: HistogramVec,
    /// `strait_upstream_connect_errors_total{upstream,endpoint}`.
    pub upstream_connect_errors: IntCounterVec,
    /// `strait_upstream_requests_total{upstream,endpoint,outcome}`: attempts sent to an endpoint.
    pub upstream_requests: IntCounterVec,
    /// `strait_upstream_endpoint_healthy{upstream,endpoint}`: 1 healthy, 0 not.
    pub endpoint_healthy: GaugeVec,
    /// `strait_downstream_connections_active{listener,protocol}`.
    pub connections_active: IntGaugeVec,
    /// `strait_downstream_connections_total{listener}`.
    pub connections_total: IntCounterVec,
    /// `strait_downstream_rejected_requests_total{listener,reason}`: malformed or over-limit input.
    pub rejected_requests: IntCounterVec,
    /// `strait_downstream_dropped_headers_with_underscores_total{listener}`: names with `_` removed.
    pub dropped_underscore_headers: IntCounterVec,
    /// `strait_tls_handshake_errors_total{listener}`.
    pub tls_handshake_errors: IntCounterVec,
    /// `strait_tls_certificate_expiry_timestamp_seconds{kind,name,cert}`: notAfter (unix seconds) of each certificate file the configuration uses, set at each snapshot compile.
    pub tls_certificate_expiry: GaugeVec,
    /// `strait_config_version`: version of the snapshot being served.
    pub config_version: IntGauge,
    /// `strait_config_reload_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `strait_config_last_reload_success_timestamp_seconds`: when the served config was applied.
    pub config_last_success: prometheus::Gauge,
    /// `strait_upstream_request_duration_seconds{upstream,endpoint}`: one attempt, until response head.
    pub upstream_duration: HistogramVec,
    /// `strait_http_request_size_bytes_total{listener,route,upstream}`.
    pub request_bytes: IntCounterVec,
    /// `strait_http_response_size_bytes_total{listener,route,upstream}`.
    pub response_bytes: IntCounterVec,
    /// `strait_upstream_retries_total{route,upstream}`: attempts made because an earlier one failed.
    pub retries: IntCounterVec,
    /// `strait_retry_budget_exhausted_total{policy}`: retries refused by a retry budget.
    pub retry_budget_exhausted: IntCounterVec,
    /// `strait_circuit_breaker_state{upstream}`: 0 closed, 1 open, 2 half-open.
    pub breaker_state: IntGaugeVec,
    /// `strait_outlier_ejections_total{upstream,endpoint}`: ejections by outlier detection.
    pub ejections: IntCounterVec,
    /// `strait_policy_denials_total{policy,reason}`: requests a policy answered in place of the upstream.
    pub policy_denials: IntCounterVec,
    /// `strait_jwks_fetch_total{policy,result}`: JWKS fetches of `jwt` policies (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// `strait_consumer_requests_total{policy,consumer}`: requests an auth policy identified (consumers come from the configuration, so the label set is bounded).
    pub consumer_requests: IntCounterVec,
    /// `strait_colour_requests_total{policy,colour,result}`: coloured requests by how they were served (`matched`, `fallback`, `rejected`); colours are bounded by the policy's `values`.
    pub colour_requests: IntCounterVec,
    /// `strait_rate_limit_store_errors_total{policy,error}`: Redis requests that failed (`error`) or timed out (`timeout`).
    pub rate_limit_store_errors: IntCounterVec,
    /// `strait_rate_limit_store_fallbacks_total{policy,mode}`: decisions made without the store (`open`: locally, `closed`: 503).
    pub rate_limit_store_fallbacks: IntCounterVec,
    /// `strait_rate_limit_evicted_keys_total{policy}`: live keys evicted from a full local table.
    pub rate_limit_evicted_keys: IntCounterVec,
    /// `strait_mirror_requests_total{policy,result}`: request copies of `mirror` policies: `sent` (the shadow answered), `error`, `timeout`, `dropped_busy` (`max_in_flight` reached), `dropped_body_too_large` (body over `max_body`).
    pub mirror_requests: IntCounterVec,
    /// `strait_wasm_failures_total{policy,reason}`: plugin callbacks that failed (`trap`, `timeout`, `memory`, `rejected`, `unavailable`); each cost one request (or was skipped with `fail: open`); `context_lost` counts requests moved to a fresh context, not failed.
    pub wasm_failures: IntCounterVec,
    /// `strait_wasm_instances_created_total{policy}`: plugin instances started (the first, and each replacement or extra one under load).
    pub wasm_instances: IntCounterVec,
    /// `strait_wasm_module_cache_total{result}`: lookups of compiled modules in the disk cache (`hit`: loaded, not compiled; `miss`: compiled and stored; `error`: the entry or directory could not be used, compiled instead).
    pub wasm_module_cache: IntCounterVec,
    /// `strait_trace_spans_exported_total`: spans the collector accepted.
    pub spans_exported: prometheus::IntCounter,
    /// `strait_trace_spans_dropped_total{reason}`: `queue_full` or `export_failed`.
    pub spans_dropped: IntCounterVec,
    /// `strait_trace_sampling_ratio`: the start ratio in force (changes when a target rate is set).
    pub sampling_ratio: prometheus::Gauge,
    /// `strait_access_log_dropped_total`: records lost to a full buffer or a write error.
    pub access_log_dropped: prometheus::IntCounter,
    /// `strait_build_info{version,commit}`: always 1; the labels say what is running.
    pub build_info: IntGaugeVec,
    /// `strait_rollout_transitions_total{rollout,to}`: rollout phase and step changes, by the phase entered.
    pub rollout_transitions: IntCounterVec,
    /// `strait_rollout_canary_weight{rollout}`: the canary's share of its route in percent.
    pub rollout_canary_weight: IntGaugeVec,
    /// Exemplars of `request_duration`, read by the OpenMetrics encoder.
    pub(crate) exemplars: crate::openmetrics::ExemplarIndex,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "strait_http_requests_total",
                "Downstream HTTP requests answered.",
            ),
            REQUEST_LABELS,
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "strait_http_request_duration_seconds",
                "Time from request head received to response head sent.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            REQUEST_LABELS,
        )
        .expect("valid metric");
        let upstream_connect_errors = IntCounterVec::new(
            Opts::new(
                "strait_upstream_connect_errors_total",
                "Failed connection attempts to upstream endpoints.",
            ),
            &["upstream", "endpoint"],
        )
        .expect("valid metric");
        let upstream_requests = IntCounterVec::new(
            Opts::new(
                "strait_upstream_requests_total",
                "Requests sent to upstream endpoints, by outcome.",
            ),
            &["upstream", "endpoint", "outcome"],
        )
        .expect("valid metric");
        let endpoint_healthy = GaugeVec::new(
            Opts::new(
                "strait_upstream_endpoint_healthy",
                "Health of an upstream endpoint (1 healthy, 0 unhealthy).",
            ),
            &["upstream", "endpoint"],
        )
        .expect("valid metric");
        let connections_active = IntGaugeVec::new(
            Opts::new(
                "strait_downstream_connections_active",
                "Open downstream connections.",
            ),
            &["listener", "protocol"],
        )
        .expect("valid metric");
        let connections_total = IntCounterVec::new(
            Opts::new(
                "strait_downstream_connections_total",
                "Accepted downstream connections.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let rejected_requests = IntCounterVec::new(
            Opts::new(
                "strait_downstream_rejected_requests_total",
                "Requests rejected before routing because they were malformed or over a limit.",
            ),
            &["listener", "reason"],
        )
        .expect("valid metric");
        let dropped_underscore_headers = counter(
            "strait_downstream_dropped_headers_with_underscores_total",
            "Request headers whose name contains '_', removed before routing and forwarding.",
            &["listener"],
        );
        let tls_handshake_errors = IntCounterVec::new(
            Opts::new(
                "strait_tls_handshake_errors_total",
                "Failed downstream TLS handshakes.",
            ),
            &["listener"],
        )
        .expect("valid metric");
        let tls_certificate_expiry = GaugeVec::new(
            Opts::new(
                "strait_tls_certificate_expiry_timestamp_seconds",
                "When each certificate file the configuration uses expires (the earliest notAfter in the file), in unix seconds.",
            ),
            &["kind", "name", "cert"],
        )
        .expect("valid metric");
        let config_version = IntGauge::new(
            "strait_config_version",
            "Version of the configuration being served.",
        )
        .expect("valid metric");
        let config_last_success = prometheus::Gauge::new(
            "strait_config_last_reload_success_timestamp_seconds",
            "Unix time at which the configuration being served was applied.",
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "strait_config_reload_total",
                "Configuration reloads by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "strait_upstream_request_duration_seconds",
                "Time from sending one attempt to an upstream endpoint to its response head.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["upstream", "endpoint"],
        )
        .expect("valid metric");
        let route_labels = &["listener", "route", "upstream"];
        let request_bytes = counter(
            "strait_http_request_size_bytes_total",
            "Request body bytes received (declared by Content-Length).",
            route_labels,
        );
        let response_bytes = counter(
            "strait_http_response_size_bytes_total",
            "Response body bytes sent (exact when the access log or tracing is on, else as declared).",
            route_labels,
        );
        let retries = counter(
            "strait_upstream_retries_total",
            "Upstream attempts made because an earlier attempt of the request failed.",
            &["route", "upstream"],
        );
        let retry_budget_exhausted = counter(
            "strait_retry_budget_exhausted_total",
            "Retries not made because the retry policy's budget was spent.",
            &["policy"],
        );
        let policy_denials = counter(
            "strait_policy_denials_total",
            "Requests a policy answered in place of the upstream, by policy and reason.",
            &["policy", "reason"],
        );
        let jwks_fetches = counter(
            "strait_jwks_fetch_total",
            "JWKS key set fetches of jwt policies, by policy and result (ok, error).",
            &["policy", "result"],
        );
        let breaker_state = gauge(
            "strait_circuit_breaker_state",
            "Circuit breaker state of an upstream: 0 closed, 1 open, 2 half-open.",
            &["upstream"],
        );
        let ejections = counter(
            "strait_outlier_ejections_total",
            "Endpoints ejected by outlier detection (passive health).",
            &["upstream", "endpoint"],
        );
        let consumer_requests = counter(
            "strait_consumer_requests_total",
            "Requests an auth policy let through, by policy and the consumer it identified.",
            &["policy", "consumer"],
        );
        let colour_requests = counter(
            "strait_colour_requests_total",
            "Coloured requests by policy, colour and result (matched, fallback, rejected).",
            &["policy", "colour", "result"],
        );
        let rate_limit_store_errors = counter(
            "strait_rate_limit_store_errors_total",
            "Rate-limit store (Redis) requests that failed (error) or timed out (timeout).",
            &["policy", "error"],
        );
        let rate_limit_store_fallbacks = counter(
            "strait_rate_limit_store_fallbacks_total",
            "Rate-limit decisions made without the store: locally (open) or refused with 503 (closed).",
            &["policy", "mode"],
        );
        let rate_limit_evicted_keys = counter(
            "strait_rate_limit_evicted_keys_total",
            "Live keys evicted from a rate limit's full local table.",
            &["policy"],
        );
        let mirror_requests = counter(
            "strait_mirror_requests_total",
            "Request copies of mirror policies, by policy and result (sent, error, timeout, dropped_busy, dropped_body_too_large).",
            &["policy", "result"],
        );
        let wasm_failures = counter(
            "strait_wasm_failures_total",
            "Plugin callbacks that failed, by policy and reason (trap, timeout, memory, rejected, unavailable; context_lost: a request moved to a fresh context after another's failure).",
            &["policy", "reason"],
        );
        let wasm_instances = counter(
            "strait_wasm_instances_created_total",
            "Plugin instances started, by policy.",
            &["policy"],
        );
        let wasm_module_cache = counter(
            "strait_wasm_module_cache_total",
            "Compiled plugin modules looked up in the disk cache, by result (hit, miss, error).",
            &["result"],
        );
        let spans_exported = prometheus::IntCounter::new(
            "strait_trace_spans_exported_total",
            "Spans accepted by the OTLP collector.",
        )
        .expect("valid metric");
        let spans_dropped = counter(
            "strait_trace_spans_dropped_total",
            "Spans not exported: queue_full (the collector is slow or down) or export_failed.",
            &["reason"],
        );
        let sampling_ratio = prometheus::Gauge::new(
            "strait_trace_sampling_ratio",
            "Share of new traces sampled when requests start.",
        )
        .expect("valid metric");
        let access_log_dropped = prometheus::IntCounter::new(
            "strait_access_log_dropped_total",
            "Access log records dropped because the writer's buffer was full or a write failed.",
        )
        .expect("valid metric");
        let rollout_transitions = counter(
            "strait_rollout_transitions_total",
            "Rollout transitions (a step advanced, promoted, failed, paused, resumed, aborted), by the phase entered.",
            &["rollout", "to"],
        );
        let rollout_canary_weight = gauge(
            "strait_rollout_canary_weight",
            "The canary's share of its route's traffic in percent, as the rollout sets it.",
            &["rollout"],
        );
        // Created at zero so rate() works before the first failure.
        for r in ["queue_full", "export_failed"] {
            spans_dropped.with_label_values(&[r]);
        }
        for r in ["success", "error"] {
            config_reloads.with_label_values(&[r]);
        }
        // Every labelled family is registered from this one list, which `retain` also walks.
        let labelled: Vec<Box<dyn crate::retain::Family>> = vec![
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(request_bytes.clone()),
            Box::new(response_bytes.clone()),
            Box::new(upstream_connect_errors.clone()),
            Box::new(upstream_requests.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(endpoint_healthy.clone()),
            Box::new(ejections.clone()),
            Box::new(connections_active.clone()),
            Box::new(connections_total.clone()),
            Box::new(rejected_requests.clone()),
            Box::new(dropped_underscore_headers.clone()),
            Box::new(tls_handshake_errors.clone()),
            Box::new(retries.clone()),
            Box::new(retry_budget_exhausted.clone()),
            Box::new(policy_denials.clone()),
            Box::new(jwks_fetches.clone()),
            Box::new(breaker_state.clone()),
            Box::new(consumer_requests.clone()),
            Box::new(colour_requests.clone()),
            Box::new(rate_limit_store_errors.clone()),
            Box::new(rate_limit_store_fallbacks.clone()),
            Box::new(rate_limit_evicted_keys.clone()),
            Box::new(mirror_requests.clone()),
            Box::new(wasm_failures.clone()),
            Box::new(wasm_instances.clone()),
            Box::new(wasm_module_cache.clone()),
            Box::new(config_reloads.clone()),
            Box::new(spans_dropped.clone()),
        ];
        for f in &labelled {
            registry.register(f.collector()).expect("unique metric");
        }
        // Not in `labelled`: its one series stays for the life of the process.
        let build_info = gauge(
            "strait_build_info",
            "The running binary: version and git commit (\"unknown\" for a build without git); always 1.",
            &["version", "commit"],
        );
        // Not in `labelled` either: labelled by rollout, removed by the controller itself.
        // The expiry gauge is rewritten whole at each compile.
        for c in [
            Box::new(tls_certificate_expiry.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(build_info.clone()),
            Box::new(rollout_transitions.clone()),
            Box::new(rollout_canary_weight.clone()),
            Box::new(config_version.clone()),
            Box::new(config_last_success.clone()),
            Box::new(spans_exported.clone()),
            Box::new(sampling_ratio.clone()),
            Box::new(access_log_dropped.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "strait",
            );
            let _ = registry.register(Box::new(pc));
        }
        Metrics {
            registry,
            labelled,
            requests,
            request_duration,
            upstream_connect_errors,
            upstream_requests,
            endpoint_healthy,
            connections_active,
            connections_total,
            rejected_requests,
            dropped_underscore_headers,
            tls_handshake_errors,
            tls_certificate_expiry,
            config_version,
            config_reloads,
            config_last_success,
            upstream_duration,
            request_bytes,
            response_bytes,
            retries,
            retry_budget_exhausted,
            breaker_state,
            ejections,
            policy_denials,
            jwks_fetches,
            consumer_requests,
            colour_requests,
            rate_limit_store_errors,
            rate_limit_store_fallbacks,
            rate_limit_evicted_keys,
            mirror_requests,
            wasm_failures,
            wasm_instances,
            wasm_module_cache,
            spans_exported,
            spans_dropped,
            sampling_ratio,
            access_log_dropped,
            build_info,
            rollout_transitions,
            rollout_canary_weight,
            exemplars: Default::default(),
        }
    }

    /// Renders every family in the Prometheus classic text format (what promtool and every scraper read).
    pub fn render_text(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Renders every family in OpenMetrics 1.0 text, with trace-id exemplars on request duration buckets.
    pub fn render_openmetrics(&self) -> String {
        crate::openmetrics::encode(&self.registry.gather(), &self.exemplars)
    }
}

impl Metrics {
    /// Adds a collector of metrics defined at run time (plugin metrics) to the exposition.
    pub fn register_collector(&self, c: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(c) {
            tracing::warn!(error = %e, "metric collector not registered");
        }
    }

    /// Sets `strait_build_info{version,commit} 1` (the binary knows these; this crate does not).
    pub fn set_build_info(&self, version: &str, commit: &str) {
        self.build_info.with_label_values(&[version, commit]).set(1);
    }

    /// Records that a configuration version was applied now.
    pub fn config_applied(&self, version: u64) {
        self.config_version.set(version as i64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.config_last_success.set(now);
    }

    /// Makes `series` (`[kind, name, cert]` and notAfter) the certificate expiry series: each is
    /// set, then the series of files no longer used are removed. Never reset first: a scrape
    /// between the reset and the sets would find no series at all, which `absent()` alerts and
    /// dashboards read as a missing certificate.
    pub fn set_certificate_expiry(&self, series: &[([&str; 3], f64)]) {
        let gauge = &self.tls_certificate_expiry;
        for (labels, not_after) in series {
            gauge.with_label_values(labels).set(*not_after);
        }
        crate::retain::remove_series(gauge, |labels| {
            let label = |n: &str| labels.iter().find(|(k, _)| *k == n).map_or("", |(_, v)| *v);
            let labels = [label("kind"), label("name"), label("cert")];
            !series.iter().any(|(l, _)| *l == labels)
        });
    }
}

/// Cumulative figures of one route's traffic to one upstream, summed over listeners, methods
/// and codes (the rollout controller's built-in analysis).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpstreamTotals {
    /// `strait_http_requests_total`.
    pub requests: u64,
    /// Of which with a 5xx `code`.
    pub errors: u64,
    /// `strait_http_request_duration_seconds` buckets: (upper bound, cumulative count), the last +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl Metrics {
    /// The totals of `route`'s requests answered through `upstream` so far. Walks the two
    /// families' series: for the control plane, never on the request path.
    pub fn upstream_totals(&self, route: &str, upstream: &str) -> UpstreamTotals {
        use prometheus::core::Collector;
        let matches = |m: &prometheus::proto::Metric| {
            let (mut r, mut u) = (false, false);
            for l in m.get_label() {
                match l.name() {
                    "route" => r = l.value() == route,
                    "upstream" => u = l.value() == upstream,
                    _ => {}
                }
            }
            r && u
        };
        let is_5xx = |m: &prometheus::proto::Metric| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "code" && l.value().starts_with('5'))
        };
        let mut t = UpstreamTotals::default();
        for family in self.requests.collect() {
            for m in family.get_metric().iter().filter(|m| matches(m)) {
                let n = m.get_counter().get_value() as u64;
                t.requests += n;
                if is_5xx(m) {
                    t.errors += n;
                }
            }
        }
        let mut buckets: Vec<(f64, u64)> = DURATION_BUCKETS.iter().map(|&le| (le, 0)).collect();
        buckets.push((f64::INFINITY, 0));
        for family in self.request_duration.collect() {
            for m in family.get_metric().iter().filter(|m| matches(m)) {
                let h = m.get_histogram();
                for (slot, b) in buckets.iter_mut().zip(h.get_bucket()) {
                    slot.1 += b.cumulative_count();
                }
                if let Some(inf) = buckets.last_mut() {
                    inf.1 += h.get_sample_count();
                }
            }
        }
        t.buckets = buckets;
        t
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The bounded `method` label: standard methods by name, anything else `OTHER`.
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    const GAUGE: &str = "strait_tls_certificate_expiry_timestamp_seconds";

    fn expiry_lines(m: &Metrics) -> Vec<String> {
        m.render_text()
            .lines()
            .filter(|l| l.starts_with(GAUGE))
            .map(String::from)
            .collect()
    }

    #[test]
    fn certificate_expiry_series_are_updated_and_those_of_files_gone_removed() {
        let m = Metrics::new();
        m.set_certificate_expiry(&[
            (["listener", "web", "a.pem"], 100.0),
            (["upstream", "up", "b.pem"], 200.0),
        ]);
        m.set_certificate_expiry(&[
            (["upstream", "up", "b.pem"], 300.0),
            (["listener", "web", "c.pem"], 400.0),
        ]);
        let lines = expiry_lines(&m);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.contains("cert=\"b.pem\"") && l.ends_with(" 300")));
        assert!(lines
            .iter()
            .any(|l| l.contains("cert=\"c.pem\"") && l.ends_with(" 400")));
        m.set_certificate_expiry(&[]);
        assert!(expiry_lines(&m).is_empty());
    }

    #[test]
    fn a_scrape_while_the_certificate_expiry_is_replaced_always_finds_the_series() {
        // A rotated certificate replaces the series at every reload; scrapes run concurrently.
        let m = std::sync::Arc::new(Metrics::new());
        m.set_certificate_expiry(&[(["listener", "web", "s.pem"], 1.0)]);
        let writer = {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    m.set_certificate_expiry(&[(["listener", "web", "s.pem"], f64::from(i))]);
                }
            })
        };
        let mut scrapes = 0;
        while !writer.is_finished() {
            assert_eq!(expiry_lines(&m).len(), 1, "a scrape found no series");
            scrapes += 1;
        }
        writer.join().unwrap();
        assert!(scrapes > 0);
    }
}
