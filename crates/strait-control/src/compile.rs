//! Compiles a validated `Config` into an immutable `Snapshot`: names resolved, regexes and TLS built, chains assembled.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use strait_config as cfg;
use strait_config::{Diagnostic, Errors};
use strait_core::{
    balance::{Balancer, Policy},
    route::{Action, Redirect, Respond, Rewrite, Route},
    snapshot::{ListenerLimits, ListenerRoutes, ListenerSpec, RouteEntry, Snapshot},
    upstream::{
        Endpoint, HashOn, HealthCheck, HealthCheckKind, PoolSettings, Protocol, Upstream,
        UpstreamTimeouts, UpstreamTls,
    },
    Chain, Filter, LiveState,
};
use strait_observe::{Metrics, RouteStats, StatsKey};
use strait_policy::{HeaderOps, HeadersFilter};

/// Builds the snapshot for `config`; live state (endpoint health, pools, listener ids) comes from `live`.
pub fn compile(
    config: &cfg::Config,
    version: u64,
    live: &LiveState,
    metrics: &Arc<Metrics>,
) -> Result<Snapshot, Errors> {
    compile_after(config, version, live, metrics, None)
}

/// The snapshot that replaces `previous`.
pub struct Previous<'a> {
    /// The configuration `snapshot` was compiled from.
    pub config: &'a cfg::Config,
    /// The running snapshot.
    pub snapshot: &'a Snapshot,
    /// Files changed on disk (certificate rotation): nothing that reads files is reused.
    pub files_changed: bool,
}

/// Like [`compile`], reusing from `previous` every upstream whose configuration did not change,
/// so its balancer state (round-robin position, hash ring) survives the reload.
pub fn compile_after(
    config: &cfg::Config,
    version: u64,
    live: &LiveState,
    metrics: &Arc<Metrics>,
    previous: Option<Previous<'_>>,
) -> Result<Snapshot, Errors> {
    let loc = &config.locations;
    let mut errors: Vec<Diagnostic> = Vec::new();

    let reuse = |u: &cfg::Upstream| -> Option<Arc<Upstream>> {
        let p = previous.as_ref()?;
        if p.files_changed && u.tls.is_some() {
            return None;
        }
        p.config
            .upstreams
            .iter()
            .find(|o| o.name == u.name && *o == u)?;
        p.snapshot
            .upstreams
            .iter()
            .find(|o| *o.name == *u.name)
            .cloned()
    };
    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    let mut by_name: HashMap<&str, Arc<Upstream>> = HashMap::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        if let Some(up) = reuse(u) {
            by_name.insert(&u.name, up.clone());
            upstreams.push(up);
            continue;
        }
        match upstream(u, live) {
            Ok(up) => {
                let up = Arc::new(up);
                by_name.insert(&u.name, up.clone());
                upstreams.push(up);
            }
            Err(e) => errors.push(loc.diag(loc.upstream(i), e)),
        }
    }

    let mut listeners = Vec::with_capacity(config.listeners.len());
    for (i, l) in config.listeners.iter().enumerate() {
        match listener(l, live) {
            Ok(spec) => listeners.push(Arc::new(spec)),
            Err(e) => errors.push(loc.diag(loc.listener(i), e)),
        }
    }

    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        match route(r, &by_name) {
            Ok(rt) => routes.push(Some(Arc::new(rt))),
            Err(e) => {
                errors.push(loc.diag(loc.route(i), e));
                routes.push(None);
            }
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }

    let mut tables: Vec<Option<Arc<ListenerRoutes>>> = Vec::new();
    for l in &listeners {
        let applies: Vec<usize> = (0..config.routes.len())
            .filter(|&i| match &config.routes[i].listeners {
                None => true,
                Some(names) => names.iter().any(|n| **n == *l.name),
            })
            .collect();
        let specs: Vec<strait_router::RouteSpec> = applies
            .iter()
            .map(|&i| route_spec(&config.routes[i]))
            .collect();
        let router = strait_router::Router::build(&specs).map_err(|e| {
            let i = e.index().and_then(|x| applies.get(x).copied()).unwrap_or(0);
            Errors(vec![loc.diag(loc.route(i), e.to_string())])
        })?;
        let entries = applies
            .iter()
            .map(|&i| {
                let route = routes[i].clone().expect("compiled above");
                let upstream: Arc<str> = match &route.action {
                    Action::Forward { upstream, .. } => upstream.name.clone(),
                    _ => Arc::from(""),
                };
                let stats = RouteStats::new(
                    metrics.clone(),
                    StatsKey {
                        listener: l.name.clone(),
                        route: route.name.clone(),
                        upstream,
                    },
                );
                RouteEntry {
                    route,
                    stats: Arc::new(stats),
                }
            })
            .collect();
        let unmatched = RouteStats::new(
            metrics.clone(),
            StatsKey {
                listener: l.name.clone(),
                route: Arc::from("unmatched"),
                upstream: Arc::from(""),
            },
        );
        if tables.len() <= l.id {
            tables.resize_with(l.id + 1, || None);
        }
        tables[l.id] = Some(Arc::new(ListenerRoutes {
            name: l.name.clone(),
            router,
            routes: entries,
            unmatched: Arc::new(unmatched),
        }));
    }

    Ok(Snapshot {
        version,
        routes: tables,
        listeners,
        upstreams,
        drain_timeout: config.server.drain_timeout,
        observe: None,
    })
}

/// The router's view of a configured route.
pub fn route_spec(r: &cfg::Route) -> strait_router::RouteSpec {
    let m = &r.matcher;
    let value = |v: &cfg::ValueMatch| match v {
        cfg::ValueMatch::Exact(s) => strait_router::ValueMatch::Exact(s.clone()),
        cfg::ValueMatch::Regex(s) => strait_router::ValueMatch::Regex(s.clone()),
        cfg::ValueMatch::Present(b) => strait_router::ValueMatch::Present(*b),
    };
    strait_router::RouteSpec {
        hosts: m.hosts.clone(),
        path: match &m.path {
            cfg::PathMatch::Any => strait_router::PathSpec::Any,
            cfg::PathMatch::Exact(p) => strait_router::PathSpec::Exact(p.clone()),
            cfg::PathMatch::Prefix(p) => strait_router::PathSpec::Prefix(p.clone()),
            cfg::PathMatch::Template(p) => strait_router::PathSpec::Template(p.clone()),
            cfg::PathMatch::Regex(p) => strait_router::PathSpec::Regex(p.clone()),
        },
        methods: m.methods.clone(),
        headers: m
            .headers
            .iter()
            .filter_map(|(n, v)| Some((HeaderName::from_bytes(n.as_bytes()).ok()?, value(v))))
            .collect(),
        query: m.query.iter().map(|(n, v)| (n.clone(), value(v))).collect(),
        priority: r.priority,
    }
}

fn header_pairs(pairs: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    pairs
        .iter()
        .map(|(n, v)| {
            let name =
                HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n}: {e}"))?;
            let value = HeaderValue::from_str(v).map_err(|e| format!("header {n}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

fn header_ops(ops: &cfg::HeaderOps) -> Result<HeaderOps, String> {
    Ok(HeaderOps {
        remove: ops
            .remove
            .iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|e| format!("header {n}: {e}")))
            .collect::<Result<_, _>>()?,
        set: header_pairs(&ops.set)?,
        add: header_pairs(&ops.add)?,
    })
}

fn route(r: &cfg::Route, upstreams: &HashMap<&str, Arc<Upstream>>) -> Result<Route, String> {
    let action = match &r.action {
        cfg::RouteAction::Upstream { name } => Action::Forward {
            upstream: upstreams
                .get(name.as_str())
                .cloned()
                .ok_or_else(|| format!("unknown upstream {name}"))?,
            rewrite: r
                .rewrite
                .as_ref()
                .map(|rw| -> Result<Rewrite, String> {
                    let (path_prefix, path) = match &rw.path {
                        Some(cfg::PathRewrite::Prefix(p)) => (Some(p.clone()), None),
                        Some(cfg::PathRewrite::Full(p)) => (None, Some(p.clone())),
                        None => (None, None),
                    };
                    let host = rw
                        .host
                        .as_deref()
                        .map(HeaderValue::from_str)
                        .transpose()
                        .map_err(|e| format!("rewrite.host: {e}"))?;
                    Ok(Rewrite {
                        path_prefix,
                        path,
                        host,
                    })
                })
                .transpose()?,
        },
        cfg::RouteAction::Respond(resp) => {
            let mut headers = HeaderMap::new();
            for (n, v) in header_pairs(&resp.headers)? {
                headers.append(n, v);
            }
            Action::Respond(Respond {
                status: resp.status,
                body: Bytes::from(resp.body.clone()),
                headers,
            })
        }
        cfg::RouteAction::Redirect(rd) => Action::Redirect(Redirect {
            status: rd.status,
            scheme: rd.scheme.clone(),
            host: rd.host.clone(),
            port: rd.port,
            path: rd.path.clone(),
        }),
    };
    let mut filters: Vec<Arc<dyn Filter>> = Vec::new();
    let request = header_ops(&r.request_headers)?;
    let response = header_ops(&r.response_headers)?;
    if !request.is_empty() || !response.is_empty() {
        filters.push(Arc::new(HeadersFilter { request, response }));
    }
    Ok(Route {
        name: Arc::from(r.name.as_str()),
        action,
        filters: Chain::new(filters),
    })
}

fn upstream(u: &cfg::Upstream, live: &LiveState) -> Result<Upstream, String> {
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
                protocol == Protocol::H2,
            )
            .map_err(|e| format!("upstream {} tls: {e}", u.name))?,
            sni: t.sni.clone(),
        }),
    };
    // Transport is part of the live-state key: a changed protocol or TLS setting means new connections.
    let transport = format!(
        "{:?}|{:?}",
        protocol,
        u.tls
            .as_ref()
            .map(|t| (&t.sni, &t.ca, t.insecure_skip_verify))
    );
    let mut endpoints = Vec::with_capacity(u.endpoints.len());
    for e in &u.endpoints {
        let authority = http::uri::Authority::try_from(e.address.as_str())
            .map_err(|err| format!("endpoint {}: {err}", e.address))?;
        endpoints.push(Arc::new(Endpoint {
            address: Arc::from(e.address.as_str()),
            authority,
            weight: e.weight,
            state: live.endpoint(&u.name, &e.address, &transport),
        }));
    }
    let weights: Vec<u32> = u.endpoints.iter().map(|e| e.weight).collect();
    let keys: Vec<&str> = u.endpoints.iter().map(|e| e.address.as_str()).collect();
    let policy = match u.load_balancer {
        cfg::LoadBalancer::RoundRobin => Policy::RoundRobin,
        cfg::LoadBalancer::LeastRequest => Policy::LeastRequest,
        cfg::LoadBalancer::Random => Policy::Random,
        cfg::LoadBalancer::ConsistentHash => Policy::ConsistentHash,
    };
    Ok(Upstream {
        name: Arc::from(u.name.as_str()),
        protocol,
        endpoints,
        balancer: Balancer::new(policy, &weights, &keys),
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
    })
}

fn listener(l: &cfg::Listener, live: &LiveState) -> Result<ListenerSpec, String> {
    let tls = match &l.tls {
        None => None,
        Some(t) => {
            let pairs: Vec<_> = t
                .certificates
                .iter()
                .map(|c| (c.cert.as_path(), c.key.as_path()))
                .collect();
            Some(
                strait_proxy::tls::server_config(
                    &pairs,
                    t.min_version == cfg::TlsVersion::V1_3,
                    l.protocols.h2,
                    l.protocols.http1,
                )
                .map_err(|e| format!("listener {} tls: {e}", l.name))?,
            )
        }
    };
    Ok(ListenerSpec {
        name: Arc::from(l.name.as_str()),
        id: live.listener_id(&l.name),
        addr: l.listen,
        http1: l.protocols.http1,
        h2: l.protocols.h2,
        tls,
        limits: ListenerLimits {
            max_request_headers: l.limits.max_request_headers as usize,
            max_request_line: l.limits.max_request_line as usize,
            max_headers: l.limits.max_headers,
            header_read_timeout: l.limits.header_read_timeout,
            idle_timeout: l.limits.idle_timeout,
            max_connections: l.limits.max_connections,
            max_request_body: l.limits.max_request_body,
            send_timeout: l.limits.send_timeout,
            max_concurrent_streams: l.limits.max_concurrent_streams,
            ping_interval: l.limits.ping_interval,
            ping_timeout: l.limits.ping_timeout,
        },
    })
}

/// Every certificate, key and CA file `config` reads: watched so rotation on disk reloads them.
pub fn certificate_files(config: &cfg::Config) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for l in &config.listeners {
        for c in l.tls.iter().flat_map(|t| &t.certificates) {
            files.push(c.cert.clone());
            files.push(c.key.clone());
        }
    }
    for u in &config.upstreams {
        if let Some(ca) = u.tls.as_ref().and_then(|t| t.ca.clone()) {
            files.push(ca);
        }
    }
    files.sort();
    files.dedup();
    files
}
