//! Compiles upstreams: endpoints with their live state (health, ejection, pool), balancer, TLS, health checks, breakers and limits.

use std::sync::Arc;

use http::HeaderName;
use strait_config as cfg;
use strait_core::{
    balance::{Balancer, Policy},
    colour::{self, Subset},
    live::fingerprint,
    resilience::{Breaker, BreakerSettings, OutlierSettings},
    LiveState,
};
use strait_proxy::upstream::{
    ConnectionLimits, Endpoint, EndpointState, HashOn, HealthCheck, HealthCheckKind, PoolSettings,
    Protocol, Upstream, UpstreamTimeouts, UpstreamTls,
};

/// The live-state kind of endpoint state (`name` is `UPSTREAM|ADDRESS`).
pub const ENDPOINT: &str = "endpoint";

/// Builds `u`'s runtime form; `addresses` are the endpoints to use (as written, or resolved),
/// each with the index of the written endpoint it comes from.
pub(super) fn upstream(
    u: &cfg::Upstream,
    addresses: &[(String, u32, usize)],
    live: &LiveState,
) -> Result<Upstream, String> {
    let protocol = match u.protocol {
        cfg::Protocol::Http1 => Protocol::Http1,
        cfg::Protocol::H2c => Protocol::H2c,
        cfg::Protocol::H2 => Protocol::H2,
    };
    let tls = match &u.tls {
        None => None,
        Some(t) => Some(UpstreamTls {
            config: strait_proxy::tls::client_config(
                t.ca.as_deref(),
                t.insecure_skip_verify,
                t.client_cert
                    .as_ref()
                    .map(|c| (c.cert.as_path(), c.key.as_path())),
                protocol == Protocol::H2,
            )
            .map_err(|e| format!("upstream {} tls: {e}", u.name))?,
            sni: t.sni.clone(),
        }),
    };
    // Transport is part of the live-state identity: a changed protocol or TLS setting means
    // new connections.
    let transport = fingerprint(&(
        protocol,
        u.tls
            .as_ref()
            .map(|t| (&t.sni, &t.ca, &t.client_cert, t.insecure_skip_verify)),
    ));
    let breaker = u.circuit_breaker.as_ref().map(breaker_settings);
    let per_endpoint = u
        .circuit_breaker
        .as_ref()
        .is_some_and(|b| b.scope == cfg::BreakerScope::Endpoint);
    let initially_healthy = u.health_check.as_ref().is_none_or(|h| h.initially_healthy);
    let mut endpoints = Vec::with_capacity(addresses.len());
    for (address, weight, _) in addresses {
        let authority = http::uri::Authority::try_from(address.as_str())
            .map_err(|err| format!("endpoint {address}: {err}"))?;
        let key = format!("{}|{address}", u.name);
        endpoints.push(Arc::new(Endpoint {
            address: Arc::from(address.as_str()),
            authority,
            weight: *weight,
            // Only an endpoint seen for the first time takes the initial state: one a reload
            // keeps keeps what its checks found.
            state: live.get_or_insert(ENDPOINT, &key, transport, || {
                EndpointState::starting(initially_healthy)
            }),
            breaker: breaker.filter(|_| per_endpoint).map(|s| {
                live.get_or_insert("breaker.endpoint", &key, fingerprint(&s), || {
                    Breaker::new(s)
                })
            }),
        }));
    }
    let weights: Vec<u32> = addresses.iter().map(|(_, w, _)| *w).collect();
    let keys: Vec<&str> = addresses.iter().map(|(a, _, _)| a.as_str()).collect();
    let policy = match u.load_balancer {
        cfg::LoadBalancer::RoundRobin => Policy::RoundRobin,
        cfg::LoadBalancer::LeastRequest => Policy::LeastRequest,
        cfg::LoadBalancer::Random => Policy::Random,
        cfg::LoadBalancer::ConsistentHash => Policy::ConsistentHash,
    };
    let subsets = subsets(u, addresses, policy, &weights, &keys);
    let o = &u.outlier_detection;
    Ok(Upstream {
        name: Arc::from(u.name.as_str()),
        protocol,
        endpoints,
        balancer: Balancer::new(policy, &weights, &keys),
        subsets,
        hash_on: match &u.hash_on {
            None => None,
            Some(cfg::HashOn::Header(h)) => Some(HashOn::Header(
                HeaderName::from_bytes(h.as_bytes()).map_err(|e| format!("hash_on: {e}"))?,
            )),
            Some(cfg::HashOn::Cookie(c)) => Some(HashOn::Cookie(c.clone())),
            Some(cfg::HashOn::ClientIp) => Some(HashOn::ClientIp),
            Some(cfg::HashOn::Path) => Some(HashOn::Path),
        },
        timeouts: UpstreamTimeouts {
            connect: u.timeouts.connect,
            request: u.timeouts.request,
            idle: u.timeouts.idle,
        },
        pool: PoolSettings {
            max_idle_per_endpoint: u.pool.max_idle_per_endpoint,
            idle_timeout: u.pool.idle_timeout,
        },
        tls,
        health_check: u.health_check.as_ref().map(|h| HealthCheck {
            kind: match &h.kind {
                cfg::HealthCheckKind::Tcp => HealthCheckKind::Tcp,
                cfg::HealthCheckKind::Http {
                    path,
                    expected_status,
                } => HealthCheckKind::Http {
                    path: path.clone(),
                    expected_status: expected_status.iter().map(|s| s.as_u16()).collect(),
                },
            },
            interval: h.interval,
            timeout: h.timeout,
            healthy_threshold: h.healthy_threshold,
            unhealthy_threshold: h.unhealthy_threshold,
        }),
        outlier: OutlierSettings {
            consecutive_gateway_failures: o.consecutive_gateway_failures,
            consecutive_5xx: o.consecutive_5xx,
            base_ejection: o.base_ejection_time,
            max_ejection: o.max_ejection_time,
            max_ejected_percent: o.max_ejection_percent,
        },
        breaker: breaker
            .filter(|_| !per_endpoint)
            .map(|s| live.get_or_insert("breaker", &u.name, fingerprint(&s), || Breaker::new(s))),
        limits: ConnectionLimits {
            max_connections: u.limits.max_connections,
            max_pending: u.limits.max_pending,
        },
    })
}

/// One subset per (label, value) the endpoints carry (a resolved address has the labels of
/// the endpoint it was written as), balanced like the whole upstream.
fn subsets(
    u: &cfg::Upstream,
    addresses: &[(String, u32, usize)],
    policy: Policy,
    weights: &[u32],
    keys: &[&str],
) -> Box<[Subset]> {
    let labels: Vec<&[(String, String)]> = addresses
        .iter()
        .map(|(_, _, i)| u.endpoints.get(*i).map_or(&[][..], |e| &e.labels[..]))
        .collect();
    colour::group(&labels)
        .into_iter()
        .map(|(label, value, members)| {
            let w: Vec<u32> = members.iter().map(|&m| weights[m as usize]).collect();
            let k: Vec<&str> = members.iter().map(|&m| keys[m as usize]).collect();
            Subset::new(label.into(), value.into(), policy, members, &w, &k)
        })
        .collect()
}

fn breaker_settings(b: &cfg::CircuitBreaker) -> BreakerSettings {
    BreakerSettings {
        failure_ratio: b.failure_ratio,
        min_requests: b.min_requests,
        window: b.window,
        consecutive_failures: b.consecutive_failures,
        open_for: b.open_for,
        half_open_requests: b.half_open_requests,
    }
}
