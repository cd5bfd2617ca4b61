//! Policy validation: named policies, inline ones, references from routes and listeners, and each kind's settings.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::route::header_ops;
use super::{pos, Ctx};
use crate::diag::Pos;
use crate::policy::*;
use crate::raw::{RawFault, RawPolicy, RawPolicyRef, RawRetry, S};

/// Named policies by name, for resolving references.
pub(crate) type Known<'a> = HashMap<&'a str, &'a PolicySpec>;

/// Converts the `policies:` list.
pub(super) fn policies(cx: &mut Ctx, raw: Option<&Vec<Spanned<RawPolicy>>>) -> Vec<Policy> {
    let mut out = Vec::new();
    let mut names = Vec::new();
    for item in raw.into_iter().flatten() {
        let at = pos(item);
        let name = cx.name(item.value.name.as_ref(), at, "policy");
        names.push((name.clone(), item.value.name.as_ref().map_or(at, pos)));
        if let Some(spec) = spec(cx, &item.value, at) {
            out.push(Policy { name, spec });
        }
    }
    let named: Vec<(&str, Pos)> = names.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    cx.unique("policy", &named);
    out
}

/// The references of a route or listener called `owner`, in written order.
pub(super) fn refs(
    cx: &mut Ctx,
    raw: Option<&Spanned<Vec<Spanned<RawPolicyRef>>>>,
    owner: &str,
    known: &Known,
) -> Vec<PolicyRef> {
    let mut out = Vec::new();
    let mut inline_names: HashMap<String, u32> = HashMap::new();
    for item in raw.map(|l| l.value.as_slice()).unwrap_or_default() {
        let at = pos(item);
        match &item.value {
            RawPolicyRef::Name(name) => {
                if !known.contains_key(name.as_str()) {
                    let mut names: Vec<&str> = known.keys().copied().collect();
                    names.sort_unstable();
                    let hint = if names.is_empty() {
                        "no policies are defined under `policies:`".to_owned()
                    } else {
                        format!("defined: {}", names.join(", "))
                    };
                    cx.err(at, format!("unknown policy `{name}` ({hint})"));
                }
                out.push(PolicyRef::Named(name.clone()));
            }
            RawPolicyRef::Inline(p) => {
                let Some(spec) = spec(cx, p, at) else {
                    continue;
                };
                let name = match &p.name {
                    Some(n) => cx.name(Some(n), at, "policy"),
                    None => {
                        // Unique within the owner, so metrics and logs can tell them apart.
                        let base = format!("{owner}/{}", spec.kind());
                        let n = inline_names.entry(base.clone()).or_insert(0);
                        *n += 1;
                        if *n == 1 {
                            base
                        } else {
                            format!("{base}-{n}")
                        }
                    }
                };
                out.push(PolicyRef::Inline(Policy { name, spec }));
            }
        }
    }
    out
}

/// The one kind a policy sets.
fn spec(cx: &mut Ctx, p: &RawPolicy, at: Pos) -> Option<PolicySpec> {
    let mut kinds: Vec<(&str, Pos)> = Vec::new();
    if let Some(h) = &p.headers {
        kinds.push(("headers", pos(h)));
    }
    if let Some(r) = &p.retry {
        kinds.push(("retry", pos(r)));
    }
    if let Some(f) = &p.fault {
        kinds.push(("fault", pos(f)));
    }
    if let Some(x) = &p.ip_rules {
        kinds.push(("ip_rules", pos(x)));
    }
    if let Some(x) = &p.client_cert {
        kinds.push(("client_cert", pos(x)));
    }
    if let Some(x) = &p.request_limits {
        kinds.push(("request_limits", pos(x)));
    }
    if let Some(x) = &p.cors {
        kinds.push(("cors", pos(x)));
    }
    if let Some(k) = &p.api_key {
        kinds.push(("api_key", pos(k)));
    }
    if let Some(b) = &p.basic_auth {
        kinds.push(("basic_auth", pos(b)));
    }
    if let Some(f) = &p.forward_auth {
        kinds.push(("forward_auth", pos(f)));
    }
    if let Some(j) = &p.jwt {
        kinds.push(("jwt", pos(j)));
    }
    if let Some(r) = &p.rate_limit {
        kinds.push(("rate_limit", pos(r)));
    }
    if let Some(c) = &p.concurrency_limit {
        kinds.push(("concurrency_limit", pos(c)));
    }
    if let Some(m) = &p.mirror {
        kinds.push(("mirror", pos(m)));
    }
    if let Some(c) = &p.colour {
        kinds.push(("colour", pos(c)));
    }
    if let Some(w) = &p.wasm {
        kinds.push(("wasm", pos(w)));
    }
    match kinds.as_slice() {
        [] => {
            cx.err(
                at,
                "policy has no kind: set one of headers, retry, fault, ip_rules, client_cert, \
                 request_limits, cors, jwt, api_key, basic_auth, forward_auth, rate_limit, concurrency_limit, \
                 mirror, colour, wasm",
            );
            return None;
        }
        [_] => {}
        [(first, _), rest @ ..] => {
            for (k, p) in rest {
                cx.err(
                    *p,
                    format!("a policy has one kind (`{first}` and `{k}`): write two policies"),
                );
            }
            return None;
        }
    }
    if let Some(h) = &p.headers {
        return Some(PolicySpec::Headers(HeadersPolicy {
            request: header_ops(cx, h.value.request.as_ref()),
            response: header_ops(cx, h.value.response.as_ref()),
        }));
    }
    if let Some(f) = &p.fault {
        return Some(PolicySpec::Fault(fault(cx, f)));
    }
    if let Some(x) = &p.ip_rules {
        return Some(PolicySpec::IpRules(super::access::ip_rules(cx, x)));
    }
    if let Some(x) = &p.client_cert {
        return Some(PolicySpec::ClientCert(super::access::client_cert(cx, x)));
    }
    if let Some(x) = &p.request_limits {
        return Some(PolicySpec::RequestLimits(super::access::request_limits(
            cx, x,
        )));
    }
    if let Some(x) = &p.cors {
        return Some(PolicySpec::Cors(super::access::cors(cx, x)));
    }
    if let Some(k) = &p.api_key {
        return Some(PolicySpec::ApiKey(super::auth::api_key(cx, k)));
    }
    if let Some(b) = &p.basic_auth {
        return Some(PolicySpec::BasicAuth(super::auth::basic_auth(cx, b)));
    }
    if let Some(f) = &p.forward_auth {
        return Some(PolicySpec::ForwardAuth(super::auth::forward_auth(cx, f)));
    }
    if let Some(j) = &p.jwt {
        return Some(PolicySpec::Jwt(Box::new(super::jwt::jwt(cx, j))));
    }
    if let Some(r) = &p.rate_limit {
        return Some(PolicySpec::RateLimit(Box::new(
            super::ratelimit::rate_limit(cx, r),
        )));
    }
    if let Some(c) = &p.concurrency_limit {
        return Some(PolicySpec::ConcurrencyLimit(
            super::ratelimit::concurrency_limit(cx, c),
        ));
    }
    if let Some(m) = &p.mirror {
        return Some(PolicySpec::Mirror(super::mirror::mirror(cx, m)));
    }
    if let Some(c) = &p.colour {
        return Some(PolicySpec::Colour(super::colour::colour(cx, c)));
    }
    if let Some(w) = &p.wasm {
        return Some(PolicySpec::Wasm(Box::new(super::wasm::wasm(cx, w))));
    }
    p.retry
        .as_ref()
        .map(|r| PolicySpec::Retry(retry(cx, &r.value)))
}

fn fault(cx: &mut Ctx, raw: &Spanned<RawFault>) -> FaultPolicy {
    let f = &raw.value;
    if f.abort.is_none() && f.delay.is_none() {
        cx.err(pos(raw), "fault does nothing: set `abort`, `delay` or both");
    }
    let abort = f.abort.as_ref().map(|a| {
        let status = match &a.value.status {
            None => {
                cx.err(pos(a), "fault.abort needs a `status`");
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            Some(s) => {
                let code = cx.count(Some(s), "fault.abort.status", 503u16, (200, 599));
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE)
            }
        };
        let share = percentage(cx, a.value.percentage.as_ref(), "fault.abort.percentage");
        (status, share)
    });
    let delay = f.delay.as_ref().map(|d| {
        let duration = match &d.value.duration {
            None => {
                cx.err(pos(d), "fault.delay needs a `duration`");
                Duration::ZERO
            }
            Some(s) => cx.duration(Some(s), "fault.delay.duration", Duration::ZERO, false),
        };
        let share = percentage(cx, d.value.percentage.as_ref(), "fault.delay.percentage");
        (duration, share)
    });
    let header = f.header.as_ref().map(|h| {
        super::values::header_name(&h.value).unwrap_or_else(|e| {
            cx.err(pos(h), e);
            h.value.clone()
        })
    });
    FaultPolicy {
        abort,
        delay,
        header,
    }
}

/// A percentage 0 to 100 (default 100).
pub(super) fn percentage(cx: &mut Ctx, raw: Option<&S>, field: &str) -> f64 {
    let Some(s) = raw else { return 100.0 };
    match s.value.trim().trim_end_matches('%').parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => v,
        _ => {
            cx.err(
                pos(s),
                format!("{field} must be from 0 to 100, not `{}`", s.value),
            );
            100.0
        }
    }
}

fn retry(cx: &mut Ctx, r: &RawRetry) -> RetryPolicy {
    let attempts = cx.count(r.attempts.as_ref(), "retry.attempts", 3u32, (1, 10));
    let on = match &r.on {
        None => RetryOn {
            connect_failure: true,
            reset: true,
            timeout: false,
            statuses: vec![502, 503, 504],
        },
        Some(list) => retry_on(cx, list),
    };
    let backoff = r.backoff.as_ref();
    let backoff_base = cx.duration(
        backoff.and_then(|b| b.base.as_ref()),
        "retry.backoff.base",
        Duration::from_millis(25),
        true,
    );
    let backoff_max = cx.duration(
        backoff.and_then(|b| b.max.as_ref()),
        "retry.backoff.max",
        Duration::from_millis(250),
        true,
    );
    if backoff_max < backoff_base {
        let at = backoff
            .and_then(|b| b.max.as_ref().or(b.base.as_ref()))
            .map_or((0, 0), pos);
        cx.err(at, "retry.backoff.max must not be below retry.backoff.base");
    }
    let budget = r.budget.as_ref();
    let budget_window = cx.duration(
        budget.and_then(|b| b.window.as_ref()),
        "retry.budget.window",
        Duration::from_secs(10),
        false,
    );
    if budget_window < Duration::from_secs(1) {
        if let Some(w) = budget.and_then(|b| b.window.as_ref()) {
            cx.err(pos(w), "retry.budget.window must be at least 1s");
        }
    }
    RetryPolicy {
        attempts,
        on,
        retry_non_idempotent: r.retry_non_idempotent.as_ref().is_some_and(|b| b.value),
        per_try_timeout: r.per_try_timeout.as_ref().map(|t| {
            cx.duration(
                Some(t),
                "retry.per_try_timeout",
                Duration::from_secs(1),
                false,
            )
        }),
        backoff_base,
        backoff_max,
        budget_ratio: cx.ratio(
            budget.and_then(|b| b.ratio.as_ref()),
            "retry.budget.ratio",
            0.2,
        ),
        budget_min_per_second: cx.count(
            budget.and_then(|b| b.min_per_second.as_ref()),
            "retry.budget.min_per_second",
            3u32,
            (0, 100_000),
        ),
        budget_window,
        max_replay_body: {
            let v = cx.size(
                r.max_replay_body.as_ref(),
                "retry.max_replay_body",
                64 * 1024,
            );
            if v > 64 * 1024 * 1024 {
                if let Some(s) = &r.max_replay_body {
                    cx.err(pos(s), "retry.max_replay_body must be at most 64MiB");
                }
            }
            v
        },
    }
}

fn retry_on(cx: &mut Ctx, list: &Spanned<Vec<S>>) -> RetryOn {
    let mut on = RetryOn {
        // Connect failures never reached the upstream: always retried.
        connect_failure: true,
        reset: false,
        timeout: false,
        statuses: Vec::new(),
    };
    if list.value.is_empty() {
        cx.err(
            pos(list),
            "retry.on is empty: omit it for the default (connect_failure, reset, gateway_error)",
        );
    }
    for item in &list.value {
        match item.value.as_str() {
            "connect_failure" => {}
            "reset" => on.reset = true,
            "timeout" => on.timeout = true,
            "gateway_error" => on.statuses.extend([502, 503, 504]),
            "5xx" => on.statuses.extend(500..=599),
            code => match code.parse::<u16>() {
                Ok(c) if (400..=599).contains(&c) => on.statuses.push(c),
                _ => cx.err(
                    pos(item),
                    format!(
                        "unknown retry condition `{code}`: expected connect_failure, reset, \
                         timeout, gateway_error, 5xx or a status from 400 to 599"
                    ),
                ),
            },
        }
    }
    on.statuses.sort_unstable();
    on.statuses.dedup();
    on
}
