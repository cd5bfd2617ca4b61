//! Validation of the raw YAML shape into [`Config`], collecting every error with its position.
//!
//! Each item is converted even when parts of it are invalid (bad values fall back to
//! defaults), so one pass finds all the problems in a file; the result is discarded
//! if any error was recorded.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, ListenerLocs, Locations, Pos};
use crate::paths::PathPolicy;
use crate::raw::{RawClientAuth, RawConfig, RawLimits, RawListener, RawListenerTls, S};
use crate::types::*;
use crate::units::{parse_duration, parse_size};

mod access;
mod auth;
mod binds;
mod colour;
mod files;
mod http;
mod http3;
mod jwt;
mod mirror;
mod policy;
mod ratelimit;
mod resilience;
mod route;
mod split;
mod tls_policy;
mod upstream;
pub(crate) mod values;
pub(crate) mod wasm;

#[cfg(test)]
mod tests;

/// Listener and endpoint names end up in metric labels and admin URLs, so keep them plain.
const NAME_CHARS: &str = "letters, digits, '_', '.' and '-'";

/// Accumulates diagnostics while the raw config is converted.
pub(crate) struct Ctx<'a> {
    source: &'a str,
    base_dir: Option<&'a Path>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Where file paths may point, for a document from a remote source.
    policy: Option<&'a PathPolicy>,
    /// Validating a section that an etcd instance reads from its own bootstrap file.
    local_section: bool,
    /// Upstreams named by policies (`forward_auth`, `jwt.jwks`, `mirror`) with the field that names them,
    /// checked once the upstreams are known.
    auth_upstreams: Vec<(String, Pos, &'static str)>,
}

/// The position of a spanned node; `(0, 0)` when it has none.
pub(crate) fn pos<T>(s: &Spanned<T>) -> Pos {
    (s.referenced.line(), s.referenced.column())
}

/// The node's own position, or `parent`'s when the node was synthesized without one.
pub(crate) fn pos_or<T>(s: &Spanned<T>, parent: Pos) -> Pos {
    match pos(s) {
        (0, _) => parent,
        p => p,
    }
}

/// Validates `raw`; returns the config and its warnings, or every error found.
pub(crate) fn validate(
    raw: RawConfig,
    source: &str,
    base_dir: Option<&Path>,
    policy: Option<&PathPolicy>,
) -> Result<(Config, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut cx = Ctx {
        source,
        base_dir,
        errors: Vec::new(),
        warnings: Vec::new(),
        policy,
        local_section: false,
        auth_upstreams: Vec::new(),
    };
    let mut locations = Locations {
        source: source.to_owned(),
        ..Locations::default()
    };

    let server = server(&mut cx, raw.server.as_ref());
    cx.local_section = true;
    let provider = crate::provider::validate(&mut cx, raw.config.as_ref());
    let admin = admin(&mut cx, raw.admin.as_ref(), &mut locations);
    cx.local_section = false;
    let policies = policy::policies(&mut cx, raw.policies.as_ref());
    let known_policies: policy::Known = policies
        .iter()
        .map(|p| (p.name.as_str(), &p.spec))
        .collect();
    let listeners = listeners(
        &mut cx,
        raw.listeners.as_ref(),
        &admin,
        &known_policies,
        &mut locations,
    );

    let raw_upstreams = raw.upstreams.unwrap_or_default();
    let mut upstreams = Vec::with_capacity(raw_upstreams.len());
    for u in &raw_upstreams {
        let (upstream, locs) = upstream::upstream(&mut cx, u);
        upstreams.push(upstream);
        locations.upstreams.push(locs);
    }
    let named: Vec<(&str, Pos)> = upstreams
        .iter()
        .zip(&raw_upstreams)
        .map(|(u, r)| (u.name.as_str(), name_pos(r.value.name.as_ref(), pos(r))))
        .collect();
    cx.unique("upstream", &named);

    let known = Known {
        listeners: listeners.iter().map(|l| l.name.as_str()).collect(),
        upstreams: upstreams.iter().map(|u| u.name.as_str()).collect(),
        policies: &known_policies,
    };
    let raw_routes = raw.routes.unwrap_or_default();
    let mut routes = Vec::with_capacity(raw_routes.len());
    for r in &raw_routes {
        let (route, locs) = route::route(&mut cx, r, &known);
        routes.push(route);
        locations.routes.push(locs);
    }
    let named: Vec<(&str, Pos)> = routes
        .iter()
        .zip(&raw_routes)
        .map(|(rt, r)| (rt.name.as_str(), name_pos(r.value.name.as_ref(), pos(r))))
        .collect();
    cx.unique("route", &named);
    auth::check_upstreams(&mut cx, &known.upstreams);
    let rollouts =
        crate::rollout::validate(&mut cx, raw.rollouts.as_ref(), &routes, &known.upstreams);

    cx.local_section = true;
    let observability = crate::observability::validate(&mut cx, raw.observability.as_ref());
    cx.local_section = false;
    let config = Config {
        server,
        admin,
        listeners,
        routes,
        upstreams,
        policies: policies.clone(),
        provider,
        observability,
        rollouts,
        locations,
    };
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    warn_unused_upstreams(&mut cx, &config);
    cx.warnings.sort_by_key(|d| (d.line, d.column));
    Ok((config, cx.warnings))
}

/// Validates only the `config:` section of `raw` (reading a bootstrap file).
pub(crate) fn provider_section(
    raw: &RawConfig,
    source: &str,
    base_dir: Option<&Path>,
) -> Result<crate::provider::ProviderSettings, Vec<Diagnostic>> {
    let mut cx = Ctx {
        source,
        base_dir,
        errors: Vec::new(),
        warnings: Vec::new(),
        policy: None,
        local_section: true,
        auth_upstreams: Vec::new(),
    };
    let settings = crate::provider::validate(&mut cx, raw.config.as_ref());
    if cx.errors.is_empty() {
        Ok(settings)
    } else {
        Err(cx.errors)
    }
}

/// Names routes may refer to.
pub(crate) struct Known<'a> {
    pub listeners: HashSet<&'a str>,
    pub upstreams: HashSet<&'a str>,
    pub policies: &'a policy::Known<'a>,
}

fn name_pos(name: Option<&S>, item: Pos) -> Pos {
    name.map_or(item, |n| pos_or(n, item))
}

fn server(cx: &mut Ctx, raw: Option<&crate::raw::RawServer>) -> Server {
    Server {
        drain_timeout: cx.duration(
            raw.and_then(|s| s.drain_timeout.as_ref()),
            "drain_timeout",
            Duration::from_secs(30),
            true,
        ),
        worker_threads: cx.count(
            raw.and_then(|s| s.worker_threads.as_ref()),
            "worker_threads",
            0,
            (0, 1024),
        ),
        wasm_cache_dir: wasm_cache_dir(cx, raw.and_then(|s| s.wasm_cache_dir.as_ref())),
    }
}

fn wasm_cache_dir(cx: &mut Ctx, raw: Option<&S>) -> WasmCacheDir {
    let Some(s) = raw else {
        return WasmCacheDir::Default;
    };
    match s.value.as_str() {
        "off" => WasmCacheDir::Off,
        "" => {
            cx.err(
                pos(s),
                "server.wasm_cache_dir: empty path (write `off` for no disk cache)",
            );
            WasmCacheDir::Default
        }
        dir => {
            // Made when first needed; checked like any file Strait writes.
            let path = cx.resolve_path(dir);
            cx.allowed_path(
                pos(s),
                "server.wasm_cache_dir",
                &path,
                crate::paths::Access::Write,
            );
            WasmCacheDir::Dir(path)
        }
    }
}

fn admin(cx: &mut Ctx, raw: Option<&crate::raw::RawAdmin>, locs: &mut Locations) -> Admin {
    let default = SocketAddr::from(([127, 0, 0, 1], 9901));
    let token = raw.and_then(|a| a.token.as_ref()).and_then(|t| {
        // A short token is guessable; the admin API can rewrite the whole configuration.
        if t.value.len() < 16 {
            cx.err(pos(t), "admin.token must be at least 16 characters");
            None
        } else {
            Some(t.value.clone())
        }
    });
    let l = raw.and_then(|a| a.limits.as_ref());
    let d = AdminLimits::default();
    let limits = AdminLimits {
        max_connections: cx.count(
            l.and_then(|l| l.max_connections.as_ref()),
            "admin.limits.max_connections",
            d.max_connections,
            (1, 100_000),
        ),
        header_read_timeout: cx.duration(
            l.and_then(|l| l.header_read_timeout.as_ref()),
            "admin.limits.header_read_timeout",
            d.header_read_timeout,
            false,
        ),
    };
    let listen = match raw.and_then(|a| a.listen.as_ref()) {
        Some(listen) => {
            locs.admin = pos(listen);
            cx.socket_addr(listen, "admin.listen").unwrap_or(default)
        }
        None => default,
    };
    Admin {
        listen,
        token,
        limits,
    }
}

fn listeners(
    cx: &mut Ctx,
    raw: Option<&Spanned<Vec<Spanned<RawListener>>>>,
    admin: &Admin,
    known_policies: &policy::Known,
    locs: &mut Locations,
) -> Vec<Listener> {
    let items = raw.map(|l| l.value.as_slice()).unwrap_or_default();
    if items.is_empty() {
        let at = raw.map_or((1, 1), pos);
        cx.err(at, "at least one listener is required under `listeners:`");
    }
    let mut out = Vec::with_capacity(items.len());
    let mut binds = binds::Binds::default();
    let admin_what = match locs.admin {
        (0, _) => "the default admin.listen",
        _ => "admin.listen",
    };
    binds.add(admin.listen, locs.admin, admin_what.into());
    let mut names = Vec::new();
    for item in items {
        let at = pos(item);
        let l = &item.value;
        let name = cx.name(l.name.as_ref(), at, "listener");
        names.push((name_pos(l.name.as_ref(), at), name.clone()));
        let mut ll = ListenerLocs {
            at,
            ..ListenerLocs::default()
        };
        let listen = match &l.listen {
            Some(s) => {
                ll.listen = pos(s);
                cx.socket_addr(s, "listen")
            }
            None => {
                cx.err(at, format!("listener `{name}` needs a `listen` address"));
                None
            }
        };
        if let (Some(addr), Some(s)) = (listen, &l.listen) {
            if let Some(why) = binds.add(addr, pos(s), format!("listener `{name}`")) {
                cx.err(pos(s), why);
            }
        }
        let tls = l.tls.as_ref().and_then(|t| listener_tls(cx, t, &mut ll));
        let http3 = l
            .http3
            .as_ref()
            .and_then(|h| http3::http3(cx, h, &name, l.tls.is_some()));
        let policies = policy::refs(cx, l.policies.as_ref(), &name, known_policies);
        out.push(Listener {
            name,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            protocols: protocols(cx, l.protocols.as_ref()),
            tls,
            limits: limits(cx, l.limits.as_ref()),
            policies,
            http: http::listener_http(cx, l.http.as_ref()),
            proxy_protocol: l.proxy_protocol.as_ref().is_some_and(|b| b.value),
            client_address: l
                .client_address
                .as_ref()
                .map(|c| access::client_address(cx, c)),
            http3,
        });
        locs.listeners.push(ll);
    }
    let named: Vec<(&str, Pos)> = names.iter().map(|(p, n)| (n.as_str(), *p)).collect();
    cx.unique("listener", &named);
    out
}

fn protocols(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>) -> Protocols {
    let Some(list) = raw else {
        return Protocols {
            http1: true,
            h2: true,
        };
    };
    let mut p = Protocols {
        http1: false,
        h2: false,
    };
    for item in &list.value {
        match item.value.as_str() {
            "http1" => p.http1 = true,
            "h2" => p.h2 = true,
            other => cx.err(
                pos(item),
                format!(
                    "unknown protocol `{other}`: expected http1 or h2 \
                     (on a plain TCP listener, h2 is served as h2c)"
                ),
            ),
        }
    }
    if list.value.is_empty() {
        cx.err(pos(list), "protocols must list at least one of http1, h2");
    }
    p
}

fn listener_tls(
    cx: &mut Ctx,
    raw: &Spanned<RawListenerTls>,
    ll: &mut ListenerLocs,
) -> Option<ListenerTls> {
    let t = &raw.value;
    let mut certificates = Vec::new();
    if let (Some(ocsp), Some(_)) = (&t.ocsp, &t.certificates) {
        cx.err(
            pos(ocsp),
            "with `certificates`, set `ocsp` on each { cert, key, ocsp } entry",
        );
    }
    match (&t.cert, &t.key, &t.certificates) {
        (Some(_), _, Some(list)) | (_, Some(_), Some(list)) => {
            cx.err(
                pos(list),
                "set either `cert`/`key` or `certificates`, not both",
            );
        }
        (Some(cert), Some(key), None) => {
            certificates.push(cx.cert_pair(cert, key, t.ocsp.as_ref(), ll));
        }
        (Some(cert), None, None) => cx.err(pos(cert), "`cert` needs a matching `key`"),
        (None, Some(key), None) => cx.err(pos(key), "`key` needs a matching `cert`"),
        (None, None, Some(list)) => {
            if list.value.is_empty() {
                cx.err(
                    pos(list),
                    "`certificates` must list at least one { cert, key }",
                );
            }
            for pair in &list.value {
                certificates.push(cx.cert_pair(&pair.cert, &pair.key, pair.ocsp.as_ref(), ll));
            }
        }
        (None, None, None) => cx.err(
            pos(raw),
            "tls needs a certificate: set `cert` and `key`, or `certificates`",
        ),
    }
    let min_version = cx.token(
        t.min_version.as_ref(),
        "min_version",
        &[("1.2", TlsVersion::V1_2), ("1.3", TlsVersion::V1_3)],
        TlsVersion::V1_2,
    );
    let client_auth = t.client_auth.as_ref().and_then(|c| client_auth(cx, c, ll));
    let groups = tls_policy::groups(cx, t.groups.as_ref(), min_version);
    let session_resumption = tls_policy::session_resumption(cx, t.session_resumption.as_ref());
    Some(ListenerTls {
        certificates,
        min_version,
        client_auth,
        groups,
        session_resumption,
    })
}

fn client_auth(
    cx: &mut Ctx,
    raw: &Spanned<RawClientAuth>,
    ll: &mut ListenerLocs,
) -> Option<ClientAuth> {
    let c = &raw.value;
    let mode = cx.token(
        c.mode.as_ref(),
        "client_auth.mode",
        &[
            ("require", ClientAuthMode::Require),
            ("request", ClientAuthMode::Request),
        ],
        ClientAuthMode::Require,
    );
    let forward_client_cert = cx.token(
        c.forward_client_cert.as_ref(),
        "client_auth.forward_client_cert",
        &[
            ("sanitize", ForwardClientCert::Sanitize),
            ("sanitize_set", ForwardClientCert::SanitizeSet),
        ],
        ForwardClientCert::SanitizeSet,
    );
    let Some(ca) = &c.ca else {
        cx.err(
            pos(raw),
            "client_auth needs `ca`: the PEM bundle client certificates must chain to",
        );
        return None;
    };
    ll.client_ca = pos(ca);
    Some(ClientAuth {
        ca: cx.file(ca, "client_auth.ca"),
        mode,
        forward_client_cert,
    })
}

fn limits(cx: &mut Ctx, raw: Option<&RawLimits>) -> Limits {
    let f = |get: fn(&RawLimits) -> Option<&S>| raw.and_then(get);
    Limits {
        max_request_headers: cx.size(
            f(|l| l.max_request_headers.as_ref()),
            "max_request_headers",
            64 * 1024,
        ),
        max_request_line: cx.size(
            f(|l| l.max_request_line.as_ref()),
            "max_request_line",
            8 * 1024,
        ),
        max_headers: cx.count(
            f(|l| l.max_headers.as_ref()),
            "max_headers",
            100,
            (1, 10_000),
        ),
        header_read_timeout: cx.duration(
            f(|l| l.header_read_timeout.as_ref()),
            "header_read_timeout",
            Duration::from_secs(10),
            false,
        ),
        idle_timeout: cx.duration(
            f(|l| l.idle_timeout.as_ref()),
            "idle_timeout",
            Duration::from_secs(300),
            false,
        ),
        max_connections: cx.count(
            f(|l| l.max_connections.as_ref()),
            "max_connections",
            10_000,
            (1, 10_000_000),
        ),
        max_request_body: cx.size(f(|l| l.max_request_body.as_ref()), "max_request_body", 0),
        send_timeout: cx.duration(
            f(|l| l.send_timeout.as_ref()),
            "send_timeout",
            Duration::from_secs(60),
            false,
        ),
        max_concurrent_streams: cx.count(
            f(|l| l.max_concurrent_streams.as_ref()),
            "max_concurrent_streams",
            256,
            (1, 65_536),
        ),
        ping_interval: cx.duration(
            f(|l| l.ping_interval.as_ref()),
            "ping_interval",
            Duration::from_secs(60),
            true,
        ),
        ping_timeout: cx.duration(
            f(|l| l.ping_timeout.as_ref()),
            "ping_timeout",
            Duration::from_secs(20),
            false,
        ),
    }
}

fn warn_unused_upstreams(cx: &mut Ctx, config: &Config) {
    let auth: Vec<String> = cx
        .auth_upstreams
        .iter()
        .map(|(n, _, _)| n.clone())
        .collect();
    let used: HashSet<&str> = config
        .routes
        .iter()
        .flat_map(|r| match &r.action {
            RouteAction::Forward { backends } => backends.as_slice(),
            _ => &[],
        })
        .map(|b| b.upstream.as_str())
        .chain(auth.iter().map(String::as_str))
        .collect();
    for (i, u) in config.upstreams.iter().enumerate() {
        if !used.contains(u.name.as_str()) {
            cx.warn(
                config.locations.upstream(i),
                format!("upstream `{}` is not used by any route", u.name),
            );
        }
    }
}

// === impl Ctx ===

impl Ctx<'_> {
    pub(crate) fn err(&mut self, at: Pos, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.source, at, message));
    }

    /// The directory relative paths resolve against, when known.
    pub(crate) fn base_dir(&self) -> Option<&Path> {
        self.base_dir
    }

    pub(crate) fn warn(&mut self, at: Pos, message: impl Into<String>) {
        self.warnings
            .push(Diagnostic::new(self.source, at, message));
    }

    /// Reports every name after the first occurrence.
    pub(crate) fn unique(&mut self, kind: &str, names: &[(&str, Pos)]) {
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for &(name, at) in names {
            if name.is_empty() {
                continue;
            }
            if let Some(first) = seen.get(name) {
                let line = first.0;
                self.err(
                    at,
                    format!("duplicate {kind} name `{name}` (first defined at line {line})"),
                );
            } else {
                seen.insert(name, at);
            }
        }
    }

    /// A required item name; missing or malformed names are reported and yield "".
    pub(crate) fn name(&mut self, raw: Option<&S>, item: Pos, kind: &str) -> String {
        let Some(name) = raw else {
            self.err(item, format!("{kind} needs a `name`"));
            return String::new();
        };
        let ok = !name.value.is_empty()
            && name
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            self.err(
                pos(name),
                format!(
                    "invalid {kind} name `{}`: use only {NAME_CHARS}",
                    name.value
                ),
            );
        }
        name.value.clone()
    }

    pub(crate) fn duration(
        &mut self,
        raw: Option<&S>,
        field: &str,
        default: Duration,
        allow_zero: bool,
    ) -> Duration {
        let Some(s) = raw else { return default };
        match parse_duration(&s.value) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.err(pos(s), format!("{field} must be greater than 0"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.err(pos(s), format!("{field}: {e}"));
                default
            }
        }
    }

    pub(crate) fn size(&mut self, raw: Option<&S>, field: &str, default: u64) -> u64 {
        let Some(s) = raw else { return default };
        parse_size(&s.value).unwrap_or_else(|e| {
            self.err(pos(s), format!("{field}: {e}"));
            default
        })
    }

    /// An integer in `range` (inclusive).
    pub(crate) fn count<T>(&mut self, raw: Option<&S>, field: &str, default: T, range: (T, T)) -> T
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(s) = raw else { return default };
        match s.value.trim().parse::<T>() {
            Ok(v) if v >= range.0 && v <= range.1 => v,
            _ => {
                self.err(
                    pos(s),
                    format!(
                        "{field} must be a whole number from {} to {}, not `{}`",
                        range.0, range.1, s.value
                    ),
                );
                default
            }
        }
    }

    /// A ratio from 0 to 1, written as a number (`0.2`) or a percentage (`20%`).
    pub(crate) fn ratio(&mut self, raw: Option<&S>, field: &str, default: f64) -> f64 {
        let Some(s) = raw else { return default };
        let text = s.value.trim();
        let parsed = match text.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().ok().map(|v| v / 100.0),
            None => text.parse::<f64>().ok(),
        };
        match parsed {
            Some(v) if (0.0..=1.0).contains(&v) => v,
            _ => {
                self.err(
                    pos(s),
                    format!(
                        "{field} must be from 0 to 1 (or 0% to 100%), not `{}`",
                        s.value
                    ),
                );
                default
            }
        }
    }

    /// One of a fixed set of words.
    pub(crate) fn token<T: Copy>(
        &mut self,
        raw: Option<&S>,
        field: &str,
        table: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(s) = raw else { return default };
        if let Some((_, v)) = table.iter().find(|(k, _)| *k == s.value) {
            return *v;
        }
        let names: Vec<String> = table.iter().map(|(k, _)| format!("`{k}`")).collect();
        self.err(
            pos(s),
            format!(
                "unknown {field} `{}`: expected one of {}",
                s.value,
                names.join(", ")
            ),
        );
        default
    }

    fn socket_addr(&mut self, s: &S, field: &str) -> Option<SocketAddr> {
        match SocketAddr::from_str(s.value.trim()) {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    pos(s),
                    format!(
                        "{field}: `{}` is not an IP:PORT address \
                         (e.g. 127.0.0.1:8080 or [::1]:8080; host names are not allowed here)",
                        s.value
                    ),
                );
                None
            }
        }
    }

    fn cert_pair(
        &mut self,
        cert: &S,
        key: &S,
        ocsp: Option<&S>,
        ll: &mut ListenerLocs,
    ) -> CertPair {
        ll.certificates.push((pos(cert), pos(key)));
        CertPair {
            cert: self.file(cert, "cert"),
            key: self.file(key, "key"),
            ocsp: ocsp.map(|o| self.optional_file(o, "ocsp")),
        }
    }
}
