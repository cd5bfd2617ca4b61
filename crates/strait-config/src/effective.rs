//! The effective configuration: a validated [`Config`] written back as a document with every default filled in (`strait validate --print`, `GET /api/config?effective=true`), which itself validates to the same `Config` apart from redacted secrets.
//!
//! Every type is taken apart field by field (no `..`), so a field added to the configuration
//! does not compile until it is printed here too.

use crate::observability::{AccessLog, LogTarget, Observability, Otlp, OtlpProtocol, Tracing};
use crate::policy::Backend;
use crate::provider::{EtcdSettings, EtcdTls, Password, ProviderKind, ProviderSettings};
use crate::types::*;

mod access;
mod auth;
mod colour;
mod jwt;
mod node;
mod policy;
mod ratelimit;
mod rollout;

pub use node::Node;
use node::{int, pairs, M};

/// What replaces a secret value that has to stay in place (a header value).
pub const REDACTED: &str = "<redacted>";

/// The effective configuration of `config` as a tree; secrets are left out (`admin.token`,
/// an etcd `password`) or replaced by [`REDACTED`] (OTLP header values).
pub fn effective(config: &Config) -> Node {
    let Config {
        server,
        admin,
        listeners,
        routes,
        upstreams,
        policies,
        provider,
        observability,
        rollouts,
        locations: _,
    } = config;
    let Server {
        drain_timeout,
        worker_threads,
        wasm_cache_dir,
    } = server;
    let cache_dir: Option<Node> = match wasm_cache_dir {
        WasmCacheDir::Default => None,
        WasmCacheDir::Off => Some("off".into()),
        WasmCacheDir::Dir(d) => Some(d.as_path().into()),
    };
    let mut doc = M::new()
        .put(
            "server",
            M::new()
                .put("drain_timeout", *drain_timeout)
                .put("worker_threads", int(*worker_threads))
                .opt("wasm_cache_dir", cache_dir),
        )
        .put("admin", admin_node(admin));
    if let Some(p) = provider_node(provider) {
        doc = doc.put("config", p);
    }
    doc.put("policies", policy::policies(policies))
        .put(
            "listeners",
            Node::List(listeners.iter().map(listener).collect()),
        )
        .put("routes", Node::List(routes.iter().map(route).collect()))
        .put(
            "upstreams",
            Node::List(upstreams.iter().map(upstream).collect()),
        )
        .put("observability", observability_node(observability))
        .put("rollouts", rollout::rollouts(rollouts))
        .into()
}

/// [`effective`] as YAML, headed by a comment naming what was redacted.
pub fn effective_yaml(config: &Config) -> String {
    let mut redacted = Vec::new();
    if config.admin.token.is_some() {
        redacted.push("admin.token (left out)");
    }
    let etcd = config.provider.etcd.as_ref();
    if matches!(
        etcd.and_then(|e| e.password.as_ref()),
        Some(Password::Literal(_))
    ) {
        redacted.push("config.password (left out)");
    }
    let tracing = config.observability.tracing.as_ref();
    if tracing.is_some_and(|t| !t.otlp.headers.is_empty()) {
        redacted.push("observability.tracing.otlp.headers values");
    }
    let mut out = String::from(
        "# The effective configuration: every setting with its value, defaults filled in.\n",
    );
    if !redacted.is_empty() {
        out.push_str(&format!("# Redacted: {}.\n", redacted.join(", ")));
    }
    out.push_str(&serde_saphyr::to_string(&effective(config)).unwrap_or_default());
    out
}

fn admin_node(a: &Admin) -> Node {
    let Admin {
        listen,
        token: _,
        limits,
    } = a;
    let AdminLimits {
        max_connections,
        header_read_timeout,
    } = limits;
    M::new()
        .put("listen", listen.to_string())
        .put(
            "limits",
            M::new()
                .put("max_connections", int(*max_connections))
                .put("header_read_timeout", *header_read_timeout),
        )
        .into()
}

fn provider_node(p: &ProviderSettings) -> Option<Node> {
    let ProviderSettings { kind, etcd } = p;
    match (kind, etcd) {
        (ProviderKind::File, _) => None,
        (ProviderKind::Etcd, None) => Some(M::new().put("provider", "etcd").into()),
        (ProviderKind::Etcd, Some(e)) => {
            let EtcdSettings {
                endpoints,
                prefix,
                username,
                password,
                tls,
                dial_timeout,
                cache,
            } = e;
            let env = match password {
                Some(Password::Env(v)) => Some(v.clone()),
                _ => None,
            };
            let tls = tls.as_ref().map(|t| {
                let EtcdTls { ca, cert, key } = t;
                M::new()
                    .opt("ca", ca.as_deref())
                    .opt("cert", cert.as_deref())
                    .opt("key", key.as_deref())
            });
            Some(
                M::new()
                    .put("provider", "etcd")
                    .put("endpoints", endpoints.clone())
                    .put("prefix", prefix.as_str())
                    .opt("username", username.clone())
                    .opt("password_env", env)
                    .opt("tls", tls)
                    .put("dial_timeout", *dial_timeout)
                    .opt("cache", cache.as_deref())
                    .into(),
            )
        }
    }
}

fn listener(l: &Listener) -> Node {
    let Listener {
        name,
        listen,
        protocols,
        tls,
        limits,
        policies,
        http,
        proxy_protocol,
        client_address,
        http3,
    } = l;
    let ListenerHttp {
        normalize_path,
        merge_slashes,
        escaped_slashes,
        underscores,
    } = *http;
    let http = M::new()
        .put("normalize_path", normalize_path)
        .put("merge_slashes", merge_slashes)
        .put(
            "path_with_escaped_slashes_action",
            match escaped_slashes {
                EscapedSlashesAction::KeepUnchanged => "keep_unchanged",
                EscapedSlashesAction::RejectRequest => "reject_request",
                EscapedSlashesAction::UnescapeAndForward => "unescape_and_forward",
            },
        )
        .put(
            "headers_with_underscores_action",
            match underscores {
                UnderscoresAction::Allow => "allow",
                UnderscoresAction::DropHeader => "drop_header",
                UnderscoresAction::RejectRequest => "reject_request",
            },
        );
    let Protocols { http1, h2 } = *protocols;
    let mut p = Vec::new();
    if http1 {
        p.push("http1");
    }
    if h2 {
        p.push("h2");
    }
    let tls = tls.as_ref().map(|t| {
        let ListenerTls {
            certificates,
            min_version,
            client_auth,
            groups,
            session_resumption,
        } = t;
        let certs: Vec<Node> = certificates
            .iter()
            .map(|CertPair { cert, key, ocsp }| {
                M::new()
                    .put("cert", cert.as_path())
                    .put("key", key.as_path())
                    .opt("ocsp", ocsp.as_deref())
                    .into()
            })
            .collect();
        let groups: Vec<Node> = groups.iter().map(|g| g.name().into()).collect();
        let resumption: Node = match session_resumption {
            None => false.into(),
            Some(SessionResumption { ticket_rotation }) => {
                M::new().put("ticket_rotation", *ticket_rotation).into()
            }
        };
        let client_auth = client_auth.as_ref().map(|c| {
            let ClientAuth {
                ca,
                mode,
                forward_client_cert,
            } = c;
            M::new()
                .put("ca", ca.as_path())
                .put(
                    "mode",
                    match mode {
                        ClientAuthMode::Require => "require",
                        ClientAuthMode::Request => "request",
                    },
                )
                .put(
                    "forward_client_cert",
                    match forward_client_cert {
                        ForwardClientCert::Sanitize => "sanitize",
                        ForwardClientCert::SanitizeSet => "sanitize_set",
                    },
                )
        });
        M::new()
            .put("certificates", certs)
            .put(
                "min_version",
                match min_version {
                    TlsVersion::V1_2 => "1.2",
                    TlsVersion::V1_3 => "1.3",
                },
            )
            .opt("client_auth", client_auth)
            .put("groups", groups)
            .put("session_resumption", resumption)
    });
    let Limits {
        max_request_headers,
        max_request_line,
        max_headers,
        header_read_timeout,
        idle_timeout,
        max_connections,
        max_request_body,
        send_timeout,
        max_concurrent_streams,
        ping_interval,
        ping_timeout,
    } = limits;
    M::new()
        .put("name", name.as_str())
        .put("listen", listen.to_string())
        .put("protocols", p)
        .opt("tls", tls)
        .put(
            "limits",
            M::new()
                .put("max_request_headers", int(*max_request_headers))
                .put("max_request_line", int(*max_request_line))
                .put("max_headers", int(*max_headers))
                .put("header_read_timeout", *header_read_timeout)
                .put("idle_timeout", *idle_timeout)
                .put("max_connections", int(*max_connections))
                .put("max_request_body", int(*max_request_body))
                .put("send_timeout", *send_timeout)
                .put("max_concurrent_streams", int(*max_concurrent_streams))
                .put("ping_interval", *ping_interval)
                .put("ping_timeout", *ping_timeout),
        )
        .put("http", http)
        .put("proxy_protocol", *proxy_protocol)
        .opt(
            "client_address",
            client_address.as_ref().map(access::client_address),
        )
        .put("policies", policy::refs(policies))
        .opt("http3", http3.as_ref().map(http3_node))
        .into()
}

fn http3_node(h: &Http3) -> M {
    let Http3 {
        max_concurrent_streams,
        idle_timeout,
        max_udp_payload_size,
    } = *h;
    M::new()
        .put("max_concurrent_streams", int(max_concurrent_streams))
        .put("idle_timeout", idle_timeout)
        .put("max_udp_payload_size", int(max_udp_payload_size))
}

fn value_match(v: &ValueMatch) -> Node {
    match v {
        ValueMatch::Exact(s) => s.as_str().into(),
        ValueMatch::Regex(r) => M::new().put("regex", r.as_str()).into(),
        ValueMatch::Present(b) => M::new().put("present", *b).into(),
    }
}

fn value_matches(list: &[(String, ValueMatch)]) -> Node {
    Node::Map(
        list.iter()
            .map(|(k, v)| (k.clone(), value_match(v)))
            .collect(),
    )
}

fn route(r: &Route) -> Node {
    let Route {
        name,
        listeners,
        priority,
        matcher,
        action,
        rewrite,
        request_headers,
        response_headers,
        policies,
        upgrades,
        split,
    } = r;
    let RouteMatch {
        hosts,
        path,
        methods,
        headers,
        query,
        client_cert,
    } = matcher;
    let path = match path {
        PathMatch::Any => None,
        PathMatch::Exact(p) => Some(("path", p)),
        PathMatch::Prefix(p) => Some(("path_prefix", p)),
        PathMatch::Template(p) => Some(("path_template", p)),
        PathMatch::Regex(p) => Some(("path_regex", p)),
    };
    let mut m = M::new();
    if !hosts.is_empty() {
        m = m.put("host", hosts.clone());
    }
    if let Some((k, p)) = path {
        m = m.put(k, p.as_str());
    }
    if !methods.is_empty() {
        m = m.put(
            "methods",
            methods.iter().map(|x| x.as_str()).collect::<Vec<_>>(),
        );
    }
    if !headers.is_empty() {
        m = m.put("headers", value_matches(headers));
    }
    if !query.is_empty() {
        m = m.put("query", value_matches(query));
    }
    if !client_cert.is_empty() {
        m = m.put("client_cert", client_cert.clone());
    }
    let mut out = M::new()
        .put("name", name.as_str())
        .opt("listeners", listeners.clone())
        .put("priority", int(*priority))
        .put("match", m);
    out = match action {
        RouteAction::Forward { backends } => match backends.as_slice() {
            [Backend {
                upstream,
                weight: 1,
            }] => out.put("upstream", upstream.as_str()),
            _ => out.put("upstreams", policy::backends(backends)),
        },
        RouteAction::Respond(Respond {
            status,
            body,
            headers,
        }) => out.put(
            "respond",
            M::new()
                .put("status", int(status.as_u16()))
                .put("body", body.as_str())
                .put("headers", pairs(headers)),
        ),
        RouteAction::Redirect(Redirect {
            status,
            scheme,
            host,
            port,
            path,
        }) => out.put(
            "redirect",
            M::new()
                .put("status", int(status.as_u16()))
                .opt("scheme", scheme.clone())
                .opt("host", host.clone())
                .opt("port", port.map(int))
                .opt("path", path.clone()),
        ),
    };
    if let Some(Rewrite { path, host }) = rewrite {
        let (k, p) = match path {
            Some(PathRewrite::Prefix(p)) => ("path_prefix", Some(p.clone())),
            Some(PathRewrite::Full(p)) => ("path", Some(p.clone())),
            None => ("path", None),
        };
        out = out.put("rewrite", M::new().opt(k, p).opt("host", host.clone()));
    }
    if matches!(action, RouteAction::Forward { .. }) {
        out = out.put("upgrades", upgrades.clone());
    }
    out.put("request_headers", header_ops(request_headers))
        .put("response_headers", header_ops(response_headers))
        .put("policies", policy::refs(policies))
        .opt("split", split.as_ref().map(route_split))
        .into()
}

/// A route's `split:`, in the forms it is written in.
fn route_split(s: &Split) -> Node {
    let Split { overrides, sticky } = s;
    let overrides: Vec<Node> = overrides
        .iter()
        .map(
            |SplitOverride {
                 on,
                 value,
                 upstream,
             }| {
                let (k, name) = match on {
                    OverrideOn::Header(n) => ("header", n),
                    OverrideOn::Cookie(n) => ("cookie", n),
                    OverrideOn::Query(n) => ("query", n),
                };
                M::new()
                    .put(k, name.as_str())
                    .opt("value", value.clone())
                    .put("upstream", upstream.as_str())
                    .into()
            },
        )
        .collect();
    let key = sticky.as_ref().map(ToString::to_string);
    let mut m = M::new();
    if !overrides.is_empty() || sticky.is_none() {
        m = m.put("overrides", overrides);
    }
    m.opt("sticky", key.map(|k| M::new().put("key", k))).into()
}

pub(crate) fn header_ops(h: &HeaderOps) -> Node {
    let HeaderOps { add, set, remove } = h;
    M::new()
        .put("add", pairs(add))
        .put("set", pairs(set))
        .put("remove", remove.clone())
        .into()
}

fn upstream(u: &Upstream) -> Node {
    let Upstream {
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
    } = u;
    let endpoints: Vec<Node> = endpoints
        .iter()
        .map(
            |Endpoint {
                 address,
                 weight,
                 labels,
             }| {
                let labels = (!labels.is_empty()).then(|| {
                    labels
                        .iter()
                        .fold(M::new(), |m, (k, v)| m.put(k.as_str(), v.as_str()))
                });
                M::new()
                    .put("address", address.as_str())
                    .put("weight", int(*weight))
                    .opt("labels", labels)
                    .into()
            },
        )
        .collect();
    let hash_on = hash_on.as_ref().map(|h| -> Node {
        match h {
            HashOn::Header(n) => M::new().put("header", n.as_str()).into(),
            HashOn::Cookie(n) => M::new().put("cookie", n.as_str()).into(),
            HashOn::ClientIp => "client_ip".into(),
            HashOn::Path => "path".into(),
        }
    });
    let UpstreamTimeouts {
        connect,
        request,
        idle,
    } = timeouts;
    let Pool {
        max_idle_per_endpoint,
        idle_timeout,
    } = pool;
    let tls = tls.as_ref().map(|t| {
        let UpstreamTls {
            sni,
            ca,
            client_cert,
            insecure_skip_verify,
        } = t;
        M::new()
            .opt("sni", sni.clone())
            .opt("ca", ca.as_deref())
            .opt("cert", client_cert.as_ref().map(|c| c.cert.as_path()))
            .opt("key", client_cert.as_ref().map(|c| c.key.as_path()))
            .put("insecure_skip_verify", *insecure_skip_verify)
    });
    M::new()
        .put("name", name.as_str())
        .put("endpoints", endpoints)
        .put(
            "protocol",
            match protocol {
                Protocol::Http1 => "http1",
                Protocol::H2c => "h2c",
                Protocol::H2 => "h2",
            },
        )
        .put(
            "load_balancer",
            match load_balancer {
                LoadBalancer::RoundRobin => "round_robin",
                LoadBalancer::LeastRequest => "least_request",
                LoadBalancer::Random => "random",
                LoadBalancer::ConsistentHash => "consistent_hash",
            },
        )
        .opt("hash_on", hash_on)
        .put(
            "timeouts",
            M::new()
                .put("connect", *connect)
                .put("request", *request)
                .put("idle", *idle),
        )
        .put(
            "pool",
            M::new()
                .put("max_idle_per_endpoint", int(*max_idle_per_endpoint))
                .put("idle_timeout", *idle_timeout),
        )
        .opt("tls", tls)
        .opt("health_check", health_check.as_ref().map(health))
        .put("outlier_detection", policy::outlier(outlier_detection))
        .opt(
            "circuit_breaker",
            circuit_breaker.as_ref().map(policy::breaker),
        )
        .put("limits", policy::limits(limits))
        .put("dns_refresh", *dns_refresh)
        .into()
}

fn health(h: &HealthCheck) -> Node {
    let HealthCheck {
        kind,
        interval,
        timeout,
        healthy_threshold,
        unhealthy_threshold,
        initially_healthy,
    } = h;
    let m = match kind {
        HealthCheckKind::Http {
            path,
            expected_status,
        } => {
            let m = M::new().put("type", "http").put("path", path.as_str());
            if expected_status.is_empty() {
                m
            } else {
                m.put(
                    "expected_status",
                    Node::List(expected_status.iter().map(|s| int(s.as_u16())).collect()),
                )
            }
        }
        HealthCheckKind::Tcp => M::new().put("type", "tcp"),
    };
    m.put("interval", *interval)
        .put("timeout", *timeout)
        .put("healthy_threshold", int(*healthy_threshold))
        .put("unhealthy_threshold", int(*unhealthy_threshold))
        .put(
            "initial_state",
            if *initially_healthy {
                "healthy"
            } else {
                "unhealthy"
            },
        )
        .into()
}

fn observability_node(o: &Observability) -> Node {
    let Observability {
        access_log,
        tracing,
    } = o;
    let access_log = access_log.as_ref().map(|a| {
        let AccessLog {
            path,
            fields,
            buffer,
        } = a;
        let path: Node = match path {
            LogTarget::Stdout => "stdout".into(),
            LogTarget::File(p) => p.as_path().into(),
        };
        M::new()
            .put("path", path)
            .put(
                "fields",
                fields.iter().map(|f| f.name()).collect::<Vec<_>>(),
            )
            .put("buffer", int(*buffer))
    });
    M::new()
        .opt("access_log", access_log)
        .opt("tracing", tracing.as_ref().map(tracing_node))
        .into()
}

fn tracing_node(t: &Tracing) -> Node {
    let Tracing {
        otlp,
        service_name,
        sampling,
        propagation,
        queue,
        batch,
    } = t;
    let Otlp {
        endpoint,
        protocol,
        timeout,
        headers,
    } = otlp;
    let crate::Sampling {
        ratio,
        parent_based,
        always_on_error,
        latency_threshold,
        target_per_second,
    } = sampling;
    let crate::Propagation { w3c, b3 } = *propagation;
    let mut p = Vec::new();
    if w3c {
        p.push("w3c");
    }
    if b3 {
        p.push("b3");
    }
    let crate::Batch { size, interval } = batch;
    let redacted: Vec<(String, String)> = headers
        .iter()
        .map(|(k, _)| (k.clone(), REDACTED.to_string()))
        .collect();
    M::new()
        .put(
            "otlp",
            M::new()
                .put("endpoint", endpoint.as_str())
                .put(
                    "protocol",
                    match protocol {
                        OtlpProtocol::Grpc => "grpc",
                        OtlpProtocol::Http => "http",
                    },
                )
                .put("timeout", *timeout)
                .put("headers", pairs(&redacted)),
        )
        .put("service_name", service_name.as_str())
        .put(
            "sampling",
            M::new()
                .put("ratio", ratio.to_string())
                .put("parent_based", *parent_based)
                .put("always_on_error", *always_on_error)
                .opt("latency_threshold", *latency_threshold)
                .put("target_per_second", target_per_second.to_string()),
        )
        .put("propagation", p)
        .put("queue", int(*queue))
        .put(
            "batch",
            M::new().put("size", int(*size)).put("interval", *interval),
        )
        .into()
}

#[cfg(test)]
mod tests;
