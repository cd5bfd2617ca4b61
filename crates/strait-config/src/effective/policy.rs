//! The effective form of policies, policy references, weighted backends and upstream resilience settings.

use super::node::{int, M};
use super::Node;
use crate::policy::*;

/// Floats print in their shortest exact form, so they read back equal (`0.2`, `12.5`).
fn float(v: f64) -> Node {
    Node::Str(format!("{v}"))
}

use super::access as access_node;

/// The `policies:` list.
pub(super) fn policies(list: &[Policy]) -> Node {
    Node::List(list.iter().map(policy).collect())
}

/// One policy: its name and its kind's settings under the kind's key.
pub(super) fn policy(p: &Policy) -> Node {
    let Policy { name, spec } = p;
    M::new()
        .put("name", name.as_str())
        .put(spec.kind(), spec_node(spec))
        .into()
}

/// A route's or listener's `policies:` references.
pub(super) fn refs(list: &[PolicyRef]) -> Node {
    Node::List(
        list.iter()
            .map(|r| match r {
                PolicyRef::Named(n) => n.as_str().into(),
                // A generated name (`ROUTE/KIND`, not a valid written name) is generated again.
                PolicyRef::Inline(p) if p.name.contains('/') => {
                    M::new().put(p.spec.kind(), spec_node(&p.spec)).into()
                }
                PolicyRef::Inline(p) => policy(p),
            })
            .collect(),
    )
}

fn spec_node(spec: &PolicySpec) -> Node {
    match spec {
        PolicySpec::IpRules(p) => access_node::ip_rules(p),
        PolicySpec::RequestLimits(p) => access_node::request_limits(p),
        PolicySpec::Cors(p) => access_node::cors(p),
        PolicySpec::ClientCert(p) => access_node::client_cert(p),
        PolicySpec::Headers(HeadersPolicy { request, response }) => M::new()
            .put("request", super::header_ops(request))
            .put("response", super::header_ops(response))
            .into(),
        PolicySpec::Retry(r) => retry(r),
        PolicySpec::ApiKey(k) => super::auth::api_key(k),
        PolicySpec::BasicAuth(b) => super::auth::basic_auth(b),
        PolicySpec::ForwardAuth(f) => super::auth::forward_auth(f),
        PolicySpec::Jwt(j) => super::jwt::jwt(j),
        PolicySpec::Fault(FaultPolicy {
            abort,
            delay,
            header,
        }) => M::new()
            .opt(
                "abort",
                abort.map(|(s, pct)| {
                    M::new()
                        .put("status", int(s.as_u16()))
                        .put("percentage", float(pct))
                }),
            )
            .opt(
                "delay",
                delay.map(|(d, pct)| M::new().put("duration", d).put("percentage", float(pct))),
            )
            .opt("header", header.clone())
            .into(),
        PolicySpec::RateLimit(r) => super::ratelimit::rate_limit(r),
        PolicySpec::ConcurrencyLimit(c) => super::ratelimit::concurrency_limit(c),
        PolicySpec::Mirror(MirrorPolicy {
            upstream,
            percentage,
            max_body,
            max_in_flight,
            timeout,
        }) => M::new()
            .put("upstream", upstream.as_str())
            .put("percentage", float(*percentage))
            .put("max_body", int(*max_body))
            .put("max_in_flight", int(*max_in_flight))
            .put("timeout", *timeout)
            .into(),
        PolicySpec::Colour(c) => super::colour::colour(c),
        PolicySpec::Wasm(w) => wasm(w),
    }
}

fn wasm(w: &WasmPolicy) -> Node {
    let WasmPolicy {
        module,
        module_at: _,
        config,
        fail_open,
        memory_limit,
        cpu_limit,
        max_body,
        root_id,
    } = w;
    M::new()
        .put("module", module.as_path())
        .opt("config", config.as_ref().map(json))
        .put("fail", if *fail_open { "open" } else { "closed" })
        .put("memory_limit", int(*memory_limit))
        .put("cpu_limit", *cpu_limit)
        .put("max_body", int(*max_body))
        .opt("root_id", (!root_id.is_empty()).then_some(root_id.as_str()))
        .into()
}

/// A plugin's configuration as written (numbers that are not whole keep their spelling).
fn json(v: &serde_json::Value) -> Node {
    match v {
        serde_json::Value::Null => Node::Str(String::new()),
        serde_json::Value::Bool(b) => Node::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Str(n.to_string()),
        },
        serde_json::Value::String(s) => Node::Str(s.clone()),
        serde_json::Value::Array(a) => Node::List(a.iter().map(json).collect()),
        serde_json::Value::Object(o) => {
            Node::Map(o.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}

fn retry(r: &RetryPolicy) -> Node {
    let RetryPolicy {
        attempts,
        on,
        retry_non_idempotent,
        per_try_timeout,
        backoff_base,
        backoff_max,
        budget_ratio,
        budget_min_per_second,
        budget_window,
        max_replay_body,
    } = r;
    let RetryOn {
        connect_failure: _,
        reset,
        timeout,
        statuses,
    } = on;
    // Connect failures are always retried; listing them keeps the print self-explaining.
    let mut conditions: Vec<Node> = vec!["connect_failure".into()];
    if *reset {
        conditions.push("reset".into());
    }
    if *timeout {
        conditions.push("timeout".into());
    }
    conditions.extend(statuses.iter().map(|s| Node::Str(s.to_string())));
    M::new()
        .put("attempts", int(*attempts))
        .put("on", Node::List(conditions))
        .put("retry_non_idempotent", *retry_non_idempotent)
        .opt("per_try_timeout", *per_try_timeout)
        .put(
            "backoff",
            M::new().put("base", *backoff_base).put("max", *backoff_max),
        )
        .put(
            "budget",
            M::new()
                .put("ratio", float(*budget_ratio))
                .put("min_per_second", int(*budget_min_per_second))
                .put("window", *budget_window),
        )
        .put("max_replay_body", int(*max_replay_body))
        .into()
}

/// A route's weighted backends.
pub(super) fn backends(list: &[Backend]) -> Node {
    Node::List(
        list.iter()
            .map(|Backend { upstream, weight }| {
                M::new()
                    .put("name", upstream.as_str())
                    .put("weight", int(*weight))
                    .into()
            })
            .collect(),
    )
}

/// `outlier_detection:`.
pub(super) fn outlier(o: &OutlierDetection) -> Node {
    let OutlierDetection {
        consecutive_gateway_failures,
        consecutive_5xx,
        base_ejection_time,
        max_ejection_time,
        max_ejection_percent,
    } = o;
    M::new()
        .put(
            "consecutive_gateway_failures",
            int(*consecutive_gateway_failures),
        )
        .put("consecutive_5xx", int(*consecutive_5xx))
        .put("base_ejection_time", *base_ejection_time)
        .put("max_ejection_time", *max_ejection_time)
        .put("max_ejection_percent", int(*max_ejection_percent))
        .into()
}

/// `circuit_breaker:`.
pub(super) fn breaker(b: &CircuitBreaker) -> Node {
    let CircuitBreaker {
        failure_ratio,
        min_requests,
        window,
        consecutive_failures,
        open_for,
        half_open_requests,
        scope,
    } = b;
    M::new()
        .put("failure_ratio", float(*failure_ratio))
        .put("min_requests", int(*min_requests))
        .put("window", *window)
        .put("consecutive_failures", int(*consecutive_failures))
        .put("open_for", *open_for)
        .put("half_open_requests", int(*half_open_requests))
        .put(
            "scope",
            match scope {
                BreakerScope::Upstream => "upstream",
                BreakerScope::Endpoint => "endpoint",
            },
        )
        .into()
}

/// `limits:` of an upstream.
pub(super) fn limits(l: &UpstreamLimits) -> Node {
    let UpstreamLimits {
        max_connections,
        max_pending,
    } = l;
    M::new()
        .put("max_connections", int(*max_connections))
        .put("max_pending", int(*max_pending))
        .into()
}
