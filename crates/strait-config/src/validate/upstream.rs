//! Upstream validation: endpoints, protocol, load balancing, timeouts, pool, TLS, health checks.

use std::collections::HashMap;
use std::time::Duration;

use http::StatusCode;
use serde_saphyr::Spanned;

use super::values;
use super::{pos, pos_or, Ctx};
use crate::diag::{Pos, UpstreamLocs};
use crate::raw::{Pairs, RawEndpoint, RawHashOn, RawHealthCheck, RawUpstream, RawUpstreamTls, S};
use crate::types::*;

/// Converts one upstream, reporting every problem in it.
pub(super) fn upstream(cx: &mut Ctx, raw: &Spanned<RawUpstream>) -> (Upstream, UpstreamLocs) {
    let at = pos(raw);
    let u = &raw.value;
    let name = cx.name(u.name.as_ref(), at, "upstream");
    let mut locs = UpstreamLocs {
        at,
        ..UpstreamLocs::default()
    };
    let endpoints = endpoints(cx, u, &name, at, &mut locs.endpoints);

    let protocol = match u.protocol.as_ref() {
        Some(p) if p.value.eq_ignore_ascii_case("grpc") => {
            cx.err(
                pos(p),
                "there is no protocol `grpc`: gRPC runs over h2c (cleartext) or h2 (TLS)",
            );
            Protocol::Http1
        }
        other => protocol(cx, other),
    };
    let load_balancer = cx.token(
        u.load_balancer.as_ref(),
        "load_balancer",
        &[
            ("round_robin", LoadBalancer::RoundRobin),
            ("least_request", LoadBalancer::LeastRequest),
            ("random", LoadBalancer::Random),
            ("consistent_hash", LoadBalancer::ConsistentHash),
        ],
        LoadBalancer::RoundRobin,
    );
    let hash_on = u.hash_on.as_ref().and_then(|h| hash_on(cx, h));
    match (load_balancer, &u.hash_on) {
        (LoadBalancer::ConsistentHash, None) => {
            let at = u.load_balancer.as_ref().map_or(at, pos);
            cx.err(
                at,
                "consistent_hash needs `hash_on`: client_ip, path, { header: NAME } or { cookie: NAME }",
            );
        }
        (lb, Some(h)) if lb != LoadBalancer::ConsistentHash => {
            cx.err(
                pos(h),
                "hash_on is only used with load_balancer: consistent_hash",
            );
        }
        _ => {}
    }

    let t = u.timeouts.as_ref();
    let timeouts = UpstreamTimeouts {
        connect: cx.duration(
            t.and_then(|t| t.connect.as_ref()),
            "timeouts.connect",
            Duration::from_secs(2),
            false,
        ),
        request: cx.duration(
            t.and_then(|t| t.request.as_ref()),
            "timeouts.request",
            Duration::from_secs(15),
            false,
        ),
        idle: cx.duration(
            t.and_then(|t| t.idle.as_ref()),
            "timeouts.idle",
            Duration::from_secs(60),
            false,
        ),
    };
    let p = u.pool.as_ref();
    let pool = Pool {
        max_idle_per_endpoint: cx.count(
            p.and_then(|p| p.max_idle_per_endpoint.as_ref()),
            "pool.max_idle_per_endpoint",
            256,
            (0, 100_000),
        ),
        idle_timeout: cx.duration(
            p.and_then(|p| p.idle_timeout.as_ref()),
            "pool.idle_timeout",
            Duration::from_secs(90),
            false,
        ),
    };

    let mut tls = u.tls.as_ref().map(|t| upstream_tls(cx, t, &mut locs));
    if protocol == Protocol::H2c {
        if let Some(t) = &u.tls {
            cx.err(
                pos(t),
                "tls cannot be used with protocol h2c (cleartext); use protocol h2 for HTTP/2 over TLS",
            );
        }
    }
    // h2 means HTTP/2 over TLS, so it implies TLS with default settings.
    if protocol == Protocol::H2 && tls.is_none() {
        tls = Some(UpstreamTls::default());
    }
    let health_check = u.health_check.as_ref().map(|h| health_check(cx, h));
    let outlier_detection = super::resilience::outlier(cx, u.outlier_detection.as_ref());
    let circuit_breaker = u
        .circuit_breaker
        .as_ref()
        .map(|b| super::resilience::breaker(cx, b));
    let limits = super::resilience::limits(cx, u.limits.as_ref());
    let dns_refresh = cx.duration(
        u.dns_refresh.as_ref(),
        "dns_refresh",
        Duration::from_secs(5),
        false,
    );

    let upstream = Upstream {
        name,
        endpoints,
        protocol,
        load_balancer,
        hash_on,
        timeouts,
        pool,
        tls,
        health_check,
        outlier_detection,
        circuit_breaker,
        limits,
        dns_refresh,
    };
    (upstream, locs)
}

fn endpoints(
    cx: &mut Ctx,
    u: &RawUpstream,
    name: &str,
    at: Pos,
    locs: &mut Vec<Pos>,
) -> Vec<Endpoint> {
    let items = u
        .endpoints
        .as_ref()
        .map(|e| e.value.as_slice())
        .unwrap_or_default();
    if items.is_empty() {
        let at = u.endpoints.as_ref().map_or(at, pos);
        cx.err(at, format!("upstream `{name}` needs at least one endpoint"));
    }
    let mut out = Vec::with_capacity(items.len());
    // Live state (health, pools) is keyed by upstream + address, so addresses must be unique.
    let mut seen: HashMap<String, Pos> = HashMap::new();
    for item in items {
        let (address, addr_at, weight, labels) = match &item.value {
            RawEndpoint::Short(s) => (s.clone(), pos(item), 1, Vec::new()),
            RawEndpoint::Full(f) => {
                let w = cx.count(f.weight.as_ref(), "weight", 1u32, (1, 1000));
                let labels = f.labels.as_ref().map(|l| labels(cx, l)).unwrap_or_default();
                (f.address.value.clone(), pos(&f.address), w, labels)
            }
        };
        if let Err(e) = values::endpoint_address(&address) {
            cx.err(addr_at, e);
        }
        if let Some(first) = seen.insert(address.clone(), addr_at) {
            cx.err(
                addr_at,
                format!(
                    "endpoint `{address}` is listed twice (first at line {})",
                    first.0
                ),
            );
        }
        locs.push(addr_at);
        out.push(Endpoint {
            address,
            weight,
            labels,
        });
    }
    out
}

/// Most labels on one endpoint: each is a subset the snapshot builds for its upstream.
const MAX_LABELS: usize = 16;

/// An endpoint's `labels:`, sorted by name.
fn labels(cx: &mut Ctx, raw: &Spanned<Pairs<S>>) -> Vec<(String, String)> {
    let at = pos(raw);
    let pairs = &raw.value.0;
    if pairs.len() > MAX_LABELS {
        cx.err(
            at,
            format!(
                "an endpoint has at most {MAX_LABELS} labels, not {}",
                pairs.len()
            ),
        );
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let kp = pos_or(k, at);
        if let Err(e) = values::label_name(&k.value) {
            cx.err(kp, e);
        } else if out.iter().any(|(n, _)| *n == k.value) {
            cx.err(kp, format!("label `{}` is set twice", k.value));
        }
        if let Err(e) = values::label_value(&v.value) {
            cx.err(pos_or(v, kp), format!("label `{}`: {e}", k.value));
        }
        out.push((k.value.clone(), v.value.clone()));
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn hash_on(cx: &mut Ctx, raw: &Spanned<RawHashOn>) -> Option<HashOn> {
    match &raw.value {
        RawHashOn::Token(t) => match t.as_str() {
            "client_ip" => Some(HashOn::ClientIp),
            "path" => Some(HashOn::Path),
            other => {
                cx.err(
                    pos(raw),
                    format!(
                        "unknown hash_on `{other}`: expected client_ip, path, \
                         {{ header: NAME }} or {{ cookie: NAME }}"
                    ),
                );
                None
            }
        },
        RawHashOn::Full(f) => match (&f.header, &f.cookie) {
            (Some(h), None) => match values::header_name(&h.value) {
                Ok(n) => Some(HashOn::Header(n)),
                Err(e) => {
                    cx.err(pos(h), e);
                    None
                }
            },
            (None, Some(c)) => {
                if !cookie_name(&c.value) {
                    cx.err(pos(c), format!("`{}` is not a valid cookie name", c.value));
                }
                Some(HashOn::Cookie(c.value.clone()))
            }
            (Some(_), Some(c)) => {
                cx.err(
                    pos(c),
                    "hash_on takes one key: `header` or `cookie`, not both",
                );
                None
            }
            (None, None) => {
                cx.err(pos(raw), "hash_on needs `header: NAME` or `cookie: NAME`");
                None
            }
        },
    }
}

/// RFC 6265 cookie-name: a token (visible ASCII without separators).
pub(super) fn cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn upstream_tls(
    cx: &mut Ctx,
    raw: &Spanned<RawUpstreamTls>,
    locs: &mut UpstreamLocs,
) -> UpstreamTls {
    let t = &raw.value;
    let sni = t.sni.as_ref().map(|s| {
        values::hostname(&s.value).unwrap_or_else(|e| {
            cx.err(pos(s), format!("sni: {e}"));
            s.value.clone()
        })
    });
    let ca = t.ca.as_ref().map(|c| {
        locs.ca = pos(c);
        cx.file(c, "ca")
    });
    let client_cert = match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some({
            locs.cert = pos(cert);
            CertPair {
                cert: cx.file(cert, "cert"),
                key: cx.file(key, "key"),
                ocsp: None,
            }
        }),
        (Some(cert), None) => {
            cx.err(pos(cert), "`cert` needs a matching `key`");
            None
        }
        (None, Some(key)) => {
            cx.err(pos(key), "`key` needs a matching `cert`");
            None
        }
        (None, None) => None,
    };
    let insecure = t.insecure_skip_verify.as_ref();
    if let Some(i) = insecure.filter(|i| i.value) {
        cx.warn(
            pos(i),
            "insecure_skip_verify: upstream certificates are not verified; use only for testing",
        );
    }
    UpstreamTls {
        sni,
        ca,
        client_cert,
        insecure_skip_verify: insecure.is_some_and(|i| i.value),
    }
}

fn health_check(cx: &mut Ctx, raw: &Spanned<RawHealthCheck>) -> HealthCheck {
    let h = &raw.value;
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Http,
        Tcp,
    }
    let kind = cx.token(
        h.kind.as_ref(),
        "health check type",
        &[("http", Kind::Http), ("tcp", Kind::Tcp)],
        Kind::Http,
    );
    let kind = match kind {
        Kind::Tcp => {
            if let Some(p) = &h.path {
                cx.err(pos(p), "`path` is only used with type: http");
            }
            if let Some(list) = &h.expected_status {
                let at = list.first().map_or(pos(raw), pos);
                cx.err(at, "`expected_status` is only used with type: http");
            }
            HealthCheckKind::Tcp
        }
        Kind::Http => {
            let path = h.path.as_ref().map_or_else(
                || "/".to_owned(),
                |p| {
                    if let Err(e) = values::path(&p.value) {
                        cx.err(pos(p), e);
                    }
                    p.value.clone()
                },
            );
            let mut expected_status = Vec::new();
            for s in h.expected_status.iter().flatten() {
                let code: u16 = cx.count(Some(s), "expected_status", 200, (100, 599));
                expected_status.push(StatusCode::from_u16(code).unwrap_or(StatusCode::OK));
            }
            if h.expected_status.as_ref().is_some_and(Vec::is_empty) {
                cx.err(
                    pos(raw),
                    "expected_status is empty: omit it to accept any 2xx status",
                );
            }
            HealthCheckKind::Http {
                path,
                expected_status,
            }
        }
    };
    let interval = cx.duration(
        h.interval.as_ref(),
        "interval",
        Duration::from_secs(5),
        false,
    );
    let timeout = cx.duration(h.timeout.as_ref(), "timeout", Duration::from_secs(1), false);
    if timeout >= interval {
        let at = h.timeout.as_ref().map_or(pos(raw), pos);
        cx.warn(
            at,
            "health check timeout is not shorter than its interval; probes may overlap",
        );
    }
    HealthCheck {
        kind,
        interval,
        timeout,
        healthy_threshold: cx.count(
            h.healthy_threshold.as_ref(),
            "healthy_threshold",
            2,
            (1, 1000),
        ),
        unhealthy_threshold: cx.count(
            h.unhealthy_threshold.as_ref(),
            "unhealthy_threshold",
            3,
            (1, 1000),
        ),
        initially_healthy: cx.token(
            h.initial_state.as_ref(),
            "initial_state",
            &[("healthy", true), ("unhealthy", false)],
            true,
        ),
    }
}

fn protocol(cx: &mut Ctx, raw: Option<&S>) -> Protocol {
    cx.token(
        raw,
        "protocol",
        &[
            ("http1", Protocol::Http1),
            ("h2c", Protocol::H2c),
            ("h2", Protocol::H2),
        ],
        Protocol::Http1,
    )
}
