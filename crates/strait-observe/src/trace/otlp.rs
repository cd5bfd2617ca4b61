//! Converting finished request records into OTLP spans (OpenTelemetry HTTP semantic conventions); runs in the exporter task.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};

use crate::record::RequestRecord;

/// Appends the server span and one client span per upstream attempt of `rec` to `out`.
pub fn spans(rec: &RequestRecord, out: &mut Vec<Span>) {
    let Some(t) = &rec.trace else { return };
    let flags = u32::from(t.sampled) | 0x100; // W3C flags, and "parent is remote known" bit 8
    let route = rec.route();
    let method = rec.method.as_str();
    let mut attrs = Vec::with_capacity(14);
    attrs.push(kv_str("http.request.method", method));
    attrs.push(kv_str("http.route", route));
    attrs.push(kv_int("http.response.status_code", i64::from(rec.status)));
    attrs.push(kv_str("url.path", rec.uri.path()));
    if let Some(q) = rec.uri.query() {
        attrs.push(kv_str("url.query", q));
    }
    attrs.push(kv_str("url.scheme", if rec.tls { "https" } else { "http" }));
    if let Some(h) = rec.host.as_ref().and_then(|h| h.to_str().ok()) {
        let (host, port) = split_port(h);
        attrs.push(kv_str("server.address", host));
        if let Some(p) = port {
            attrs.push(kv_int("server.port", p));
        }
    }
    attrs.push(kv_str(
        "network.protocol.version",
        protocol_version(rec.version),
    ));
    attrs.push(kv_str("client.address", &rec.client.ip().to_string()));
    attrs.push(kv_int("client.port", i64::from(rec.client.port())));
    if let Some(ua) = rec.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
        attrs.push(kv_str("user_agent.original", ua));
    }
    attrs.push(kv_str("strait.listener", &rec.listener));
    if !rec.upstream().is_empty() {
        attrs.push(kv_str("strait.upstream", rec.upstream()));
    }
    if let Ok(id) = rec.request_id.to_str() {
        attrs.push(kv_str("strait.request_id", id));
    }
    if let Some(p) = &rec.policy {
        attrs.push(kv_str("strait.policy", p));
    }
    if let Some(r) = rec.policy_reason {
        attrs.push(kv_str("strait.policy.reason", r));
    }
    let server_error = rec.status >= 500;
    if server_error {
        attrs.push(kv_str("error.type", &rec.status.to_string()));
    }
    let end = rec.unix_ns(rec.start + rec.duration);
    out.push(Span {
        trace_id: t.trace_id.to_vec(),
        span_id: t.span_id.to_vec(),
        parent_span_id: t.parent.map(|p| p.to_vec()).unwrap_or_default(),
        flags,
        name: format!("{method} {route}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: rec.start_unix_ns,
        end_time_unix_nano: end,
        attributes: attrs,
        status: Some(status_of(server_error, rec.error.as_deref())),
        ..Default::default()
    });
    for a in &rec.attempts {
        let (host, port) = split_port(&a.endpoint);
        let mut attrs = vec![
            kv_str("http.request.method", method),
            kv_str("server.address", host),
            kv_str("url.path", rec.uri.path()),
            kv_str("strait.upstream", &a.upstream),
        ];
        if let Some(p) = port {
            attrs.push(kv_int("server.port", p));
        }
        if a.status != 0 {
            attrs.push(kv_int("http.response.status_code", i64::from(a.status)));
        }
        let failed = a.error.is_some() || a.status >= 500;
        if let Some(e) = a.error {
            attrs.push(kv_str("error.type", e));
        } else if a.status >= 500 {
            attrs.push(kv_str("error.type", &a.status.to_string()));
        }
        out.push(Span {
            trace_id: t.trace_id.to_vec(),
            span_id: a.span_id.to_vec(),
            parent_span_id: t.span_id.to_vec(),
            flags: u32::from(t.sampled),
            name: method.to_owned(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: rec.unix_ns(a.start),
            end_time_unix_nano: rec.unix_ns(a.start + a.duration),
            attributes: attrs,
            status: Some(status_of(failed, a.detail.as_deref())),
            ..Default::default()
        });
    }
}

/// Wraps spans with the resource (`service.name`) and instrumentation scope.
pub fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv_str("service.name", service),
                kv_str("telemetry.sdk.name", "strait"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "strait".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

fn status_of(error: bool, detail: Option<&str>) -> Status {
    Status {
        code: if error {
            status::StatusCode::Error as i32
        } else {
            status::StatusCode::Unset as i32
        },
        message: if error {
            detail.unwrap_or_default().to_owned()
        } else {
            String::new()
        },
    }
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "",
    }
}

fn split_port(hostport: &str) -> (&str, Option<i64>) {
    if let Some((h, p)) = hostport.rsplit_once(':') {
        if !h.ends_with(':') {
            if let Ok(p) = p.parse::<u16>() {
                return (
                    h.trim_start_matches('[').trim_end_matches(']'),
                    Some(i64::from(p)),
                );
            }
        }
    }
    (hostport, None)
}

fn kv_str(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
    }
}

fn kv_int(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
    }
}
