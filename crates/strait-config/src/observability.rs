//! The `observability:` section: access logs and request tracing (types, raw YAML forms, validation).
//!
//! Kept in one file so the section can grow (log sinks, exporters) without touching the shared
//! config files; `Config` and `RawConfig` only gain the one `observability` field.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::Pos;
use crate::paths::Access;
use crate::raw::{Pairs, S};
use crate::validate::{pos, Ctx};

// === validated types ===

/// Access logs and tracing (`observability:`); metrics are always on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observability {
    /// One JSON line per request; `None` when not configured.
    pub access_log: Option<AccessLog>,
    /// Request tracing with OTLP export; `None` when not configured (headers pass through untouched).
    pub tracing: Option<Tracing>,
}

/// Where and what the access log writes (`observability.access_log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// `stdout` or a file (appended to, reopened on SIGUSR1).
    pub path: LogTarget,
    /// Fields written, in this order (default: all of [`AccessLogField::ALL`]).
    pub fields: Vec<AccessLogField>,
    /// Records queued for the writer before new ones are dropped and counted (default 8192).
    pub buffer: usize,
}

/// An access log destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// The process's standard output.
    Stdout,
    /// A file, resolved against the config's directory.
    File(PathBuf),
}

/// One access log field; the JSON key is [`AccessLogField::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessLogField {
    /// Request start, RFC 3339 UTC with milliseconds.
    Time,
    /// `X-Request-Id` (kept or generated).
    RequestId,
    /// Trace id (hex), null without tracing.
    TraceId,
    /// Server span id (hex), null without tracing.
    SpanId,
    /// Client `ip:port`.
    ClientAddress,
    /// Request method.
    Method,
    /// Host header or `:authority`.
    Host,
    /// Request path (without the query).
    Path,
    /// Matched route name or `unmatched`.
    Route,
    /// Upstream name, null for direct responses.
    Upstream,
    /// Endpoint address the request was sent to, null if none.
    Endpoint,
    /// How the upstream was chosen among the route's: `override`, `sticky` or `weights`; null if none was.
    Split,
    /// Response status code.
    Status,
    /// Total time until the response body ended, milliseconds.
    DurationMs,
    /// Time from sending to the upstream until its response head, milliseconds.
    UpstreamDurationMs,
    /// Request body bytes (as declared by Content-Length).
    BytesIn,
    /// Response body bytes sent.
    BytesOut,
    /// User-Agent header.
    UserAgent,
    /// Name of the policy that denied the request, null when none did.
    Policy,
    /// Why that policy denied it (its metric `reason`, e.g. `rate_limited`), null when none did.
    PolicyReason,
    /// Listener name.
    Listener,
    /// HTTP version of the downstream request.
    Protocol,
    /// Why the request failed (upstream, endpoint and cause), null when it did not.
    Error,
    /// The colour a `colour` policy gave the request, null when it has none.
    Colour,
    /// Whether the colour's endpoints were all unavailable and another endpoint served it
    /// (`fallback: any`).
    ColourFallback,
}

impl AccessLogField {
    /// Every field, in the default order.
    pub const ALL: [AccessLogField; 25] = [
        AccessLogField::Time,
        AccessLogField::RequestId,
        AccessLogField::TraceId,
        AccessLogField::SpanId,
        AccessLogField::ClientAddress,
        AccessLogField::Method,
        AccessLogField::Host,
        AccessLogField::Path,
        AccessLogField::Route,
        AccessLogField::Upstream,
        AccessLogField::Endpoint,
        AccessLogField::Split,
        AccessLogField::Status,
        AccessLogField::DurationMs,
        AccessLogField::UpstreamDurationMs,
        AccessLogField::BytesIn,
        AccessLogField::BytesOut,
        AccessLogField::UserAgent,
        AccessLogField::Policy,
        AccessLogField::PolicyReason,
        AccessLogField::Listener,
        AccessLogField::Protocol,
        AccessLogField::Error,
        AccessLogField::Colour,
        AccessLogField::ColourFallback,
    ];

    /// The JSON key (also the name used in `fields:`).
    pub fn name(self) -> &'static str {
        match self {
            AccessLogField::Time => "time",
            AccessLogField::RequestId => "request_id",
            AccessLogField::TraceId => "trace_id",
            AccessLogField::SpanId => "span_id",
            AccessLogField::ClientAddress => "client_address",
            AccessLogField::Method => "method",
            AccessLogField::Host => "host",
            AccessLogField::Path => "path",
            AccessLogField::Route => "route",
            AccessLogField::Upstream => "upstream",
            AccessLogField::Endpoint => "endpoint",
            AccessLogField::Split => "split",
            AccessLogField::Status => "status",
            AccessLogField::DurationMs => "duration_ms",
            AccessLogField::UpstreamDurationMs => "upstream_duration_ms",
            AccessLogField::BytesIn => "bytes_in",
            AccessLogField::BytesOut => "bytes_out",
            AccessLogField::UserAgent => "user_agent",
            AccessLogField::Policy => "policy",
            AccessLogField::PolicyReason => "policy_reason",
            AccessLogField::Listener => "listener",
            AccessLogField::Protocol => "protocol",
            AccessLogField::Error => "error",
            AccessLogField::Colour => "colour",
            AccessLogField::ColourFallback => "colour_fallback",
        }
    }
}

/// Request tracing (`observability.tracing`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// Where spans go.
    pub otlp: Otlp,
    /// `service.name` resource attribute (default `strait`).
    pub service_name: String,
    /// What is exported.
    pub sampling: Sampling,
    /// Context formats read from requests and written to upstreams.
    pub propagation: Propagation,
    /// Finished requests waiting for export before new ones are dropped and counted (default 2048).
    pub queue: usize,
    /// Export batching.
    pub batch: Batch,
}

/// The OTLP collector (`tracing.otlp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// `http://host:port` (gRPC) or `http://host:port[/v1/traces]` (HTTP/protobuf).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: OtlpProtocol,
    /// Time allowed for one export call (default 2 s).
    pub timeout: Duration,
    /// Extra request headers (gRPC metadata), e.g. an API key.
    pub headers: Vec<(String, String)>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (`TraceService/Export`), default port 4317.
    Grpc,
    /// OTLP/HTTP with a protobuf body (`POST /v1/traces`), default port 4318.
    Http,
}

/// Sampling (`tracing.sampling`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Share of new traces sampled when the request starts, 0..=1 (default 0.1).
    pub ratio: f64,
    /// Follow the incoming `traceparent`'s sampled flag when there is one (default true).
    pub parent_based: bool,
    /// Export every 5xx even when the start decision said no (default true).
    pub always_on_error: bool,
    /// Export every request at least this slow (default none).
    pub latency_threshold: Option<Duration>,
    /// Adapt the ratio to aim at this many sampled traces per second; 0 = fixed ratio (default 0).
    pub target_per_second: f64,
}

/// Context propagation formats (`tracing.propagation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagation {
    /// W3C `traceparent`/`tracestate`.
    pub w3c: bool,
    /// Zipkin B3 (`b3` single header read; `b3` and `X-B3-*` written).
    pub b3: bool,
}

/// Batching (`tracing.batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Spans per export call at most (default 512).
    pub size: usize,
    /// Longest wait before a partial batch is sent (default 1 s).
    pub interval: Duration,
}

// === raw forms ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawObservability {
    pub access_log: Option<Spanned<RawAccessLog>>,
    pub tracing: Option<Spanned<RawTracing>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccessLog {
    pub path: Option<S>,
    pub fields: Option<Spanned<Vec<S>>>,
    pub buffer: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    pub otlp: Option<Spanned<RawOtlp>>,
    pub service_name: Option<S>,
    pub sampling: Option<RawSampling>,
    pub propagation: Option<Spanned<Vec<S>>>,
    pub queue: Option<S>,
    pub batch: Option<RawBatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOtlp {
    pub endpoint: Option<S>,
    pub protocol: Option<S>,
    pub timeout: Option<S>,
    pub headers: Option<Pairs<S>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSampling {
    pub ratio: Option<S>,
    pub parent_based: Option<Spanned<bool>>,
    pub always_on_error: Option<Spanned<bool>>,
    pub latency_threshold: Option<S>,
    pub target_per_second: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub size: Option<S>,
    pub interval: Option<S>,
}

// === validation ===

/// Validates `observability:`; absent means no access log and no tracing.
pub(crate) fn validate(cx: &mut Ctx, raw: Option<&RawObservability>) -> Observability {
    let Some(raw) = raw else {
        return Observability::default();
    };
    Observability {
        access_log: raw.access_log.as_ref().map(|a| access_log(cx, a)),
        tracing: raw.tracing.as_ref().map(|t| tracing(cx, t)),
    }
}

fn access_log(cx: &mut Ctx, raw: &Spanned<RawAccessLog>) -> AccessLog {
    let a = &raw.value;
    let path = match &a.path {
        None => LogTarget::Stdout,
        Some(s) if s.value == "stdout" || s.value == "-" => LogTarget::Stdout,
        Some(s) if s.value.is_empty() => {
            cx.err(
                pos(s),
                "access_log.path: empty path (use `stdout` or a file)",
            );
            LogTarget::Stdout
        }
        Some(s) => {
            let p = cx.resolve_path(&s.value);
            let allowed = cx.allowed_path(pos(s), "access_log.path", &p, Access::Write);
            // The file is created at start, but its directory must exist: say so now, at the line.
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            if allowed && cx.checks_files() && dir.is_some_and(|d| !d.is_dir()) {
                cx.err(
                    pos(s),
                    format!(
                        "access_log.path: directory of `{}` does not exist (looked for {})",
                        s.value,
                        dir.map(|d| d.display().to_string()).unwrap_or_default()
                    ),
                );
            }
            LogTarget::File(p)
        }
    };
    let fields = match &a.fields {
        None => AccessLogField::ALL.to_vec(),
        Some(list) => {
            if list.value.is_empty() {
                cx.err(pos(list), "access_log.fields must list at least one field");
            }
            let mut out: Vec<AccessLogField> = Vec::with_capacity(list.value.len());
            for f in &list.value {
                match AccessLogField::ALL.iter().find(|k| k.name() == f.value) {
                    Some(k) if out.contains(k) => {
                        cx.err(
                            pos(f),
                            format!("access log field `{}` is listed twice", f.value),
                        );
                    }
                    Some(k) => out.push(*k),
                    None => {
                        let names: Vec<&str> =
                            AccessLogField::ALL.iter().map(|k| k.name()).collect();
                        cx.err(
                            pos(f),
                            format!(
                                "unknown access log field `{}`: expected one of {}",
                                f.value,
                                names.join(", ")
                            ),
                        );
                    }
                }
            }
            out
        }
    };
    AccessLog {
        path,
        fields,
        buffer: cx.count(a.buffer.as_ref(), "access_log.buffer", 8192, (1, 1 << 22)),
    }
}

fn tracing(cx: &mut Ctx, raw: &Spanned<RawTracing>) -> Tracing {
    let t = &raw.value;
    let otlp = match &t.otlp {
        Some(o) => otlp(cx, o),
        None => {
            cx.err(
                pos(raw),
                "tracing needs `otlp: { endpoint: http://HOST:PORT }` (where spans are sent)",
            );
            Otlp {
                endpoint: String::new(),
                protocol: OtlpProtocol::Grpc,
                timeout: Duration::from_secs(2),
                headers: Vec::new(),
            }
        }
    };
    let service_name = match &t.service_name {
        Some(s) if s.value.trim().is_empty() => {
            cx.err(pos(s), "service_name must not be empty");
            "strait".to_owned()
        }
        Some(s) => s.value.clone(),
        None => "strait".to_owned(),
    };
    let mut propagation = Propagation {
        w3c: true,
        b3: false,
    };
    if let Some(list) = &t.propagation {
        propagation.w3c = false;
        if list.value.is_empty() {
            cx.err(pos(list), "propagation must list at least one of w3c, b3");
            propagation.w3c = true;
        }
        for p in &list.value {
            match p.value.as_str() {
                "w3c" => propagation.w3c = true,
                "b3" => propagation.b3 = true,
                other => cx.err(
                    pos(p),
                    format!("unknown propagation `{other}`: expected w3c or b3"),
                ),
            }
        }
    }
    let batch = t.batch.as_ref();
    Tracing {
        otlp,
        service_name,
        sampling: sampling(cx, t.sampling.as_ref()),
        propagation,
        queue: cx.count(t.queue.as_ref(), "tracing.queue", 2048, (1, 1 << 20)),
        batch: Batch {
            size: cx.count(
                batch.and_then(|b| b.size.as_ref()),
                "batch.size",
                512,
                (1, 65_536),
            ),
            interval: cx.duration(
                batch.and_then(|b| b.interval.as_ref()),
                "batch.interval",
                Duration::from_secs(1),
                false,
            ),
        },
    }
}

fn otlp(cx: &mut Ctx, raw: &Spanned<RawOtlp>) -> Otlp {
    let o = &raw.value;
    let protocol = cx.token(
        o.protocol.as_ref(),
        "otlp.protocol",
        &[("grpc", OtlpProtocol::Grpc), ("http", OtlpProtocol::Http)],
        OtlpProtocol::Grpc,
    );
    let endpoint = match &o.endpoint {
        Some(s) => {
            if let Err(reason) = endpoint(&s.value) {
                cx.err(pos(s), format!("otlp.endpoint: {reason}"));
            }
            s.value.trim_end_matches('/').to_owned()
        }
        None => {
            cx.err(
                pos(raw),
                "otlp needs an `endpoint` (e.g. http://127.0.0.1:4317)",
            );
            String::new()
        }
    };
    let mut headers = Vec::new();
    for (k, v) in o
        .headers
        .as_ref()
        .map(|p| p.0.as_slice())
        .unwrap_or_default()
    {
        let at: Pos = pos(k);
        match crate::validate::values::header_name(&k.value) {
            Ok(name) => headers.push((name, v.value.clone())),
            Err(e) => cx.err(at, format!("otlp.headers: {e}")),
        }
        if let Err(e) = crate::validate::values::header_value(&v.value) {
            cx.err(pos(v), format!("otlp.headers: {e}"));
        }
    }
    Otlp {
        endpoint,
        protocol,
        timeout: cx.duration(
            o.timeout.as_ref(),
            "otlp.timeout",
            Duration::from_secs(2),
            false,
        ),
        headers,
    }
}

/// An `http://host:port[/path]` URL; TLS to the collector is not supported yet.
fn endpoint(s: &str) -> Result<(), String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|_| format!("`{s}` is not a URL (e.g. http://127.0.0.1:4317)"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{s}`: https is not supported yet; use http:// to a local collector or agent"
            ))
        }
        _ => return Err(format!("`{s}` must start with http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{s}` has no host"));
    }
    Ok(())
}

fn sampling(cx: &mut Ctx, raw: Option<&RawSampling>) -> Sampling {
    let ratio = fraction(
        cx,
        raw.and_then(|s| s.ratio.as_ref()),
        "sampling.ratio",
        0.1,
    );
    let target = match raw.and_then(|s| s.target_per_second.as_ref()) {
        None => 0.0,
        Some(s) => match s.value.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=1_000_000.0).contains(&v) => v,
            _ => {
                cx.err(
                    pos(s),
                    format!(
                        "sampling.target_per_second must be a number from 0 to 1000000, not `{}`",
                        s.value
                    ),
                );
                0.0
            }
        },
    };
    let latency = raw
        .and_then(|s| s.latency_threshold.as_ref())
        .map(|s| cx.duration(Some(s), "sampling.latency_threshold", Duration::ZERO, false));
    Sampling {
        ratio,
        parent_based: raw
            .and_then(|s| s.parent_based.as_ref())
            .is_none_or(|b| b.value),
        always_on_error: raw
            .and_then(|s| s.always_on_error.as_ref())
            .is_none_or(|b| b.value),
        latency_threshold: latency.filter(|d| !d.is_zero()),
        target_per_second: target,
    }
}

fn fraction(cx: &mut Ctx, raw: Option<&S>, field: &str, default: f64) -> f64 {
    let Some(s) = raw else { return default };
    match s.value.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => v,
        _ => {
            cx.err(
                pos(s),
                format!("{field} must be a number from 0 to 1, not `{}`", s.value),
            );
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(obs: &str) -> Result<Observability, String> {
        let text = format!("listeners:\n  - name: web\n    listen: 127.0.0.1:0\n{obs}");
        crate::parse("t.yaml", &text, None)
            .map(|l| l.config.observability)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absent_section_turns_everything_off() {
        assert_eq!(parse("").unwrap(), Observability::default());
    }

    #[test]
    fn defaults_are_filled_in() {
        let o = parse(
            "observability:\n  access_log: {}\n  tracing:\n    otlp: { endpoint: \"http://127.0.0.1:4317\" }\n",
        )
        .unwrap();
        let a = o.access_log.unwrap();
        assert_eq!(a.path, LogTarget::Stdout);
        assert_eq!(a.fields, AccessLogField::ALL.to_vec());
        assert_eq!(a.buffer, 8192);
        let t = o.tracing.unwrap();
        assert_eq!(t.otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(t.sampling.ratio, 0.1);
        assert!(t.sampling.parent_based && t.sampling.always_on_error);
        assert_eq!(t.sampling.latency_threshold, None);
        assert_eq!((t.propagation.w3c, t.propagation.b3), (true, false));
        assert_eq!((t.queue, t.batch.size), (2048, 512));
        assert_eq!(t.service_name, "strait");
    }

    #[test]
    fn bad_values_are_reported_at_their_line_and_column() {
        let e = parse(
            "observability:\n  access_log: { fields: [time, nope] }\n  tracing:\n    otlp: { endpoint: \"https://x:4317\", protocol: quic }\n    sampling: { ratio: 1.5 }\n    propagation: [w3c, jaeger]\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown access log field `nope`"), "{e}");
        assert!(e.contains("https is not supported"), "{e}");
        assert!(e.contains("unknown otlp.protocol `quic`"), "{e}");
        assert!(
            e.contains("sampling.ratio must be a number from 0 to 1"),
            "{e}"
        );
        assert!(e.contains("unknown propagation `jaeger`"), "{e}");
        let first = e.lines().next().unwrap();
        assert!(first.starts_with("t.yaml:5:"), "{first}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse("observability:\n  traces: {}\n").unwrap_err();
        assert!(e.starts_with("t.yaml:5:"), "{e}");
    }

    #[test]
    fn access_log_in_a_missing_directory_is_reported_at_its_line() {
        let text = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nobservability:\n  access_log: { path: no/such/dir/a.log }\n";
        let e = crate::parse("t.yaml", text, Some(std::path::Path::new("/")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "t.yaml:5:23: access_log.path: directory of `no/such/dir/a.log` does not exist"
            ),
            "{e}"
        );
    }

    #[test]
    fn tracing_needs_an_endpoint() {
        let e = parse("observability:\n  tracing: { service_name: x }\n").unwrap_err();
        assert!(e.contains("tracing needs `otlp"), "{e}");
    }
}
