//! Compiles a validated `Config` into an immutable `Snapshot`: names resolved, regexes and TLS built, policies compiled into per-listener chains, live state fetched by stable keys.

use std::{collections::HashMap, sync::Arc};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use strait_config as cfg;
use strait_config::{Diagnostic, Errors};
use strait_core::{Chain, LiveState};
use strait_observe::{Metrics, RouteStats, StatsKey};
use strait_proxy::{
    route::{Action, Backends, Forward, Redirect, Respond, Rewrite, Route},
    snapshot::{
        ListenerHttp, ListenerLimits, ListenerRoutes, ListenerSpec, RouteEntry, Snapshot,
        UnderscoreHeaders,
    },
    upstream::Upstream,
};

mod access;
mod auth;
mod colour;
mod jwt;
mod mirror;
mod policy;
mod ratelimit;
mod split;
mod upstream;
mod wasm;

pub use upstream::ENDPOINT;

use policy::{Compiled, PolicyCx};

/// Builds the snapshot for `config`; live state (endpoint health, pools, policy state, listener
/// ids) comes from `live`.
pub fn compile(
    config: &cfg::Config,
    version: u64,
    live: &LiveState,
    metrics: &Arc<Metrics>,
) -> Result<Snapshot, Errors> {
    compile_after(config, version, live, metrics, None)
}

/// The upstream connection pools, one set per process (kept in live state, so the policies'
/// upstream clients and the data plane share them).
pub fn pools(live: &LiveState) -> Arc<strait_proxy::pool::Pools> {
    live.get_or_insert("pools", "", 0, strait_proxy::pool::Pools::default)
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

    let previous_upstreams: HashMap<&str, (&cfg::Upstream, &Arc<Upstream>)> = match &previous {
        Some(p) if !p.files_changed => p
            .config
            .upstreams
            .iter()
            .filter_map(|u| {
                let running = p.snapshot.upstreams.iter().find(|o| *o.name == *u.name)?;
                Some((u.name.as_str(), (u, running)))
            })
            .collect(),
        // Certificates may have changed on disk: TLS upstreams are rebuilt.
        Some(p) => p
            .config
            .upstreams
            .iter()
            .filter(|u| u.tls.is_none())
            .filter_map(|u| {
                let running = p.snapshot.upstreams.iter().find(|o| *o.name == *u.name)?;
                Some((u.name.as_str(), (u, running)))
            })
            .collect(),
        None => HashMap::new(),
    };
    let dns = live.get_or_insert(crate::dns::KIND, "", 0, crate::dns::DnsCache::default);
    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    let mut by_name: HashMap<&str, Arc<Upstream>> = HashMap::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let addresses = crate::dns::expand(u, &dns);
        // Reused whole when neither its settings nor its DNS answers changed.
        let unchanged = |running: &Upstream| {
            running.endpoints.len() == addresses.len()
                && running
                    .endpoints
                    .iter()
                    .zip(&addresses)
                    .all(|(e, (a, _, _))| *e.address == **a)
        };
        if let Some((_, running)) = previous_upstreams
            .get(u.name.as_str())
            .filter(|(old, running)| *old == u && unchanged(running))
        {
            by_name.insert(&u.name, (*running).clone());
            upstreams.push((*running).clone());
            continue;
        }
        match upstream::upstream(u, &addresses, live) {
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
    let pcx = PolicyCx {
        live,
        metrics,
        upstreams: &by_name,
        pools: pools(live),
        wasm_cache_dir: &config.server.wasm_cache_dir,
    };
    let named = match policy::named(&config.policies, &pcx) {
        Ok(n) => n,
        Err((at, e)) => {
            errors.push(loc.diag(at, e));
            HashMap::new()
        }
    };
    if !errors.is_empty() {
        return Err(Errors(errors));
    }

    let mut tables: Vec<Option<Arc<ListenerRoutes>>> = Vec::new();
    for (li, l) in listeners.iter().enumerate() {
        let listener_policies = policy::resolve(&config.listeners[li].policies, &named, &pcx)
            .map_err(|e| Errors(vec![loc.diag(loc.listener(li), e)]))?;
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
        let mut entries = Vec::with_capacity(applies.len());
        for &i in &applies {
            let r = &config.routes[i];
            let entry = route_entry(
                r,
                &by_name,
                &listener_policies,
                &named,
                &pcx,
                metrics,
                &l.name,
            )
            .map_err(|e| Errors(vec![loc.diag(loc.route(i), e)]))?;
            entries.push(entry);
        }
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

    crate::certs::record_expiry(config, metrics);
    Ok(Snapshot {
        version,
        routes: tables,
        listeners,
        upstreams,
        drain_timeout: config.server.drain_timeout,
        observe: None,
    })
}

/// A route as one listener serves it: the listener's policies then the route's, in one chain.
fn route_entry(
    r: &cfg::Route,
    upstreams: &HashMap<&str, Arc<Upstream>>,
    listener_policies: &[Compiled],
    named: &HashMap<String, Compiled>,
    pcx: &PolicyCx<'_>,
    metrics: &Arc<Metrics>,
    listener: &Arc<str>,
) -> Result<RouteEntry, String> {
    let mut compiled: Vec<Compiled> = listener_policies.to_vec();
    compiled.extend(policy::resolve(&r.policies, named, pcx)?);
    compiled.extend(policy::route_headers(r)?);
    let (filters, retry) = policy::assemble(compiled);
    let route = Arc::new(route(r, upstreams, retry)?);
    let stats = |upstream: &str| {
        Arc::new(RouteStats::new(
            metrics.clone(),
            StatsKey {
                listener: listener.clone(),
                route: route.name.clone(),
                upstream: Arc::from(upstream),
            },
        ))
    };
    let backend_stats: Box<[Arc<RouteStats>]> = match &route.action {
        Action::Forward(f) => f
            .backends
            .all()
            .iter()
            .map(|(u, _)| stats(&u.name))
            .collect(),
        _ => Box::new([]),
    };
    // Answers given before a backend is chosen carry the upstream when there is only one.
    let local = match &*backend_stats {
        [only] => only.clone(),
        _ => stats(""),
    };
    Ok(RouteEntry {
        chain: Chain::new(filters),
        route,
        stats: local,
        backend_stats,
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
        client_uris: m.client_cert.clone(),
        priority: r.priority,
    }
}

fn route(
    r: &cfg::Route,
    upstreams: &HashMap<&str, Arc<Upstream>>,
    retry: Option<Arc<strait_proxy::retry::RetryPolicy>>,
) -> Result<Route, String> {
    let action = match &r.action {
        cfg::RouteAction::Forward { backends } => {
            let list = backends
                .iter()
                .map(|b| {
                    let u = upstreams
                        .get(b.upstream.as_str())
                        .cloned()
                        .ok_or_else(|| format!("unknown upstream {}", b.upstream))?;
                    Ok((u, b.weight))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Action::Forward(Box::new(Forward {
                backends: Backends::new(list),
                rewrite: r.rewrite.as_ref().map(rewrite).transpose()?,
                retry,
                upgrades: r.upgrades.iter().map(|u| u.as_str().into()).collect(),
                split: r
                    .split
                    .as_ref()
                    .map(|s| split::split(s, backends).map(Box::new))
                    .transpose()?,
            }))
        }
        cfg::RouteAction::Respond(resp) => {
            let mut headers = HeaderMap::new();
            for (n, v) in policy::pairs(&resp.headers)? {
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
    Ok(Route {
        name: Arc::from(r.name.as_str()),
        action,
    })
}

fn rewrite(rw: &cfg::Rewrite) -> Result<Rewrite, String> {
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
}

fn listener(l: &cfg::Listener, live: &LiveState) -> Result<ListenerSpec, String> {
    let tls = match &l.tls {
        None => None,
        Some(t) => {
            let pairs: Vec<_> = t
                .certificates
                .iter()
                .map(|c| strait_proxy::tls::CertFiles {
                    cert: &c.cert,
                    key: &c.key,
                    ocsp: c.ocsp.as_deref(),
                })
                .collect();
            let groups: Vec<_> = t
                .groups
                .iter()
                .map(|g| match g {
                    cfg::TlsGroup::X25519 => strait_proxy::tls::Group::X25519,
                    cfg::TlsGroup::X25519MlKem768 => strait_proxy::tls::Group::X25519MlKem768,
                    cfg::TlsGroup::Secp256r1 => strait_proxy::tls::Group::Secp256r1,
                    cfg::TlsGroup::Secp384r1 => strait_proxy::tls::Group::Secp384r1,
                })
                .collect();
            let opts = strait_proxy::tls::ServerOptions {
                groups: &groups,
                resumption: t.session_resumption.map(|r| strait_proxy::tls::Resumption {
                    ticket_rotation: r.ticket_rotation,
                    scope: &l.name,
                }),
                tls13_only: t.min_version == cfg::TlsVersion::V1_3,
                alpn_h2: l.protocols.h2,
                alpn_h1: l.protocols.http1,
                client_auth: t
                    .client_auth
                    .as_ref()
                    .map(|c| strait_proxy::tls::ClientAuth {
                        ca: &c.ca,
                        required: c.mode == cfg::ClientAuthMode::Require,
                    }),
            };
            Some(
                strait_proxy::tls::server_config(&pairs, opts)
                    .map_err(|e| format!("listener {} tls: {e}", l.name))?,
            )
        }
    };
    let http3 = match (&l.http3, &tls) {
        (Some(h), Some(tls)) => {
            let limits = strait_proxy::server::quic::Http3Limits {
                max_concurrent_streams: h.max_concurrent_streams,
                idle_timeout: h.idle_timeout,
                max_udp_payload_size: h.max_udp_payload_size,
            };
            let spec = strait_proxy::server::quic::http3_spec(tls, limits)
                .map_err(|e| format!("listener {} http3: {e}", l.name))?;
            Some(Arc::new(spec))
        }
        // Validation requires tls with http3.
        _ => None,
    };
    Ok(ListenerSpec {
        name: Arc::from(l.name.as_str()),
        id: live.listener_id(&l.name),
        addr: l.listen,
        http1: l.protocols.http1,
        h2: l.protocols.h2,
        tls,
        forward_client_cert: l
            .tls
            .as_ref()
            .and_then(|t| t.client_auth.as_ref())
            .is_some_and(|c| c.forward_client_cert == cfg::ForwardClientCert::SanitizeSet),
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
        http: listener_http(&l.http),
        proxy_protocol: l.proxy_protocol,
        client_address: l
            .client_address
            .as_ref()
            .map(|c| {
                http::HeaderName::from_bytes(c.header.as_bytes())
                    .map(|h| {
                        Arc::new(strait_proxy::client_addr::ClientResolver::new(
                            &c.trusted_proxies,
                            h,
                        ))
                    })
                    .map_err(|e| format!("listener {} client_address.header: {e}", l.name))
            })
            .transpose()?,
        http3,
    })
}

pub(crate) fn listener_http(h: &cfg::ListenerHttp) -> ListenerHttp {
    use strait_router::EscapedSlashes;
    ListenerHttp {
        path: strait_router::PathOptions {
            normalize: h.normalize_path,
            merge_slashes: h.merge_slashes,
            escaped_slashes: match h.escaped_slashes {
                cfg::EscapedSlashesAction::KeepUnchanged => EscapedSlashes::KeepUnchanged,
                cfg::EscapedSlashesAction::RejectRequest => EscapedSlashes::RejectRequest,
                cfg::EscapedSlashesAction::UnescapeAndForward => EscapedSlashes::UnescapeAndForward,
            },
        },
        underscores: match h.underscores {
            cfg::UnderscoresAction::Allow => UnderscoreHeaders::Allow,
            cfg::UnderscoresAction::DropHeader => UnderscoreHeaders::Drop,
            cfg::UnderscoresAction::RejectRequest => UnderscoreHeaders::Reject,
        },
    }
}

/// Every certificate, key and CA file `config` reads: watched so rotation on disk reloads them.
pub fn certificate_files(config: &cfg::Config) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for l in &config.listeners {
        for c in l.tls.iter().flat_map(|t| &t.certificates) {
            files.push(c.cert.clone());
            files.push(c.key.clone());
            files.extend(c.ocsp.clone());
        }
        if let Some(c) = l.tls.as_ref().and_then(|t| t.client_auth.as_ref()) {
            files.push(c.ca.clone());
        }
    }
    for u in &config.upstreams {
        if let Some(ca) = u.tls.as_ref().and_then(|t| t.ca.clone()) {
            files.push(ca);
        }
        if let Some(c) = u.tls.as_ref().and_then(|t| t.client_cert.as_ref()) {
            files.push(c.cert.clone());
            files.push(c.key.clone());
        }
    }
    files.extend(jwt::key_files(config));
    files.extend(wasm::module_files(config));
    files.sort();
    files.dedup();
    files
}
