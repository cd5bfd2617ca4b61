//! Compiles policies: each kind's validated settings into its filter (a chain member) or its forwarding setting (retry), with live state fetched by kind and name.

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use strait_config as cfg;
use strait_core::{
    live::fingerprint,
    resilience::{RetryBudget, RetryBudgetSettings},
    Filter, LiveState, UpstreamClient,
};
use strait_observe::Metrics;
use strait_policy::{FaultFilter, HeaderOps, HeadersFilter};
use strait_proxy::{pool::Pools, retry::RetryPolicy, subrequest::Client, upstream::Upstream};

/// A compiled policy.
#[derive(Clone)]
pub(super) enum Compiled {
    /// A filter, with its kind's rank in the chain.
    Filter(u16, Arc<dyn Filter>),
    /// The route's retry policy.
    Retry(Arc<RetryPolicy>),
}

/// What compiling policies needs.
pub(super) struct PolicyCx<'a> {
    pub live: &'a LiveState,
    pub metrics: &'a Arc<Metrics>,
    /// The snapshot's upstreams by name, for policies that send their own requests.
    pub upstreams: &'a HashMap<&'a str, Arc<Upstream>>,
    pub pools: Arc<Pools>,
    /// `server.wasm_cache_dir`, for plugins' compiled modules.
    pub wasm_cache_dir: &'a cfg::WasmCacheDir,
}

impl PolicyCx<'_> {
    /// A client for upstream `name` (JWKS fetches, forward auth, call-outs), through the
    /// data plane's pools.
    pub fn client(&self, name: &str) -> Result<Arc<dyn UpstreamClient>, String> {
        let up = self
            .upstreams
            .get(name)
            .ok_or_else(|| format!("unknown upstream {name}"))?;
        Ok(Arc::new(Client::new(
            up.clone(),
            self.pools.clone(),
            self.metrics.clone(),
        )))
    }
}

/// Compiles every named policy once; routes share them. An error comes with the position
/// of what caused it when that is known (a plugin's module).
pub(super) fn named(
    policies: &[cfg::Policy],
    cx: &PolicyCx<'_>,
) -> Result<HashMap<String, Compiled>, (cfg::Pos, String)> {
    policies
        .iter()
        .map(|p| {
            let at = match &p.spec {
                cfg::PolicySpec::Wasm(w) => w.module_at,
                _ => (0, 0),
            };
            Ok((p.name.clone(), compile(p, cx).map_err(|e| (at, e))?))
        })
        .collect()
}

/// Every policy of `config`: the named ones, then those written inline on listeners and routes.
pub(super) fn every_policy(config: &cfg::Config) -> impl Iterator<Item = &cfg::Policy> {
    let inline = config
        .listeners
        .iter()
        .flat_map(|l| &l.policies)
        .chain(config.routes.iter().flat_map(|r| &r.policies))
        .filter_map(|r| match r {
            cfg::PolicyRef::Inline(p) => Some(p),
            cfg::PolicyRef::Named(_) => None,
        });
    config.policies.iter().chain(inline)
}

/// Resolves references in order: named ones from `named`, inline ones compiled in place.
pub(super) fn resolve(
    refs: &[cfg::PolicyRef],
    named: &HashMap<String, Compiled>,
    cx: &PolicyCx<'_>,
) -> Result<Vec<Compiled>, String> {
    refs.iter()
        .map(|r| match r {
            cfg::PolicyRef::Named(n) => named
                .get(n)
                .cloned()
                .ok_or_else(|| format!("unknown policy {n}")),
            cfg::PolicyRef::Inline(p) => compile(p, cx),
        })
        .collect()
}

/// Compiles one policy.
pub(super) fn compile(p: &cfg::Policy, cx: &PolicyCx<'_>) -> Result<Compiled, String> {
    let rank = p.spec.rank();
    Ok(match &p.spec {
        cfg::PolicySpec::Headers(h) => Compiled::Filter(
            rank,
            Arc::new(HeadersFilter::new(
                &p.name,
                header_ops(&h.request)?,
                header_ops(&h.response)?,
            )),
        ),
        cfg::PolicySpec::Retry(r) => Compiled::Retry(Arc::new(retry(&p.name, r, cx))),
        cfg::PolicySpec::IpRules(x) => Compiled::Filter(rank, super::access::ip_rules(&p.name, x)),
        cfg::PolicySpec::ClientCert(x) => {
            Compiled::Filter(rank, super::access::client_cert(&p.name, x))
        }
        cfg::PolicySpec::RequestLimits(x) => {
            Compiled::Filter(rank, super::access::request_limits(&p.name, x))
        }
        cfg::PolicySpec::Cors(x) => Compiled::Filter(rank, super::access::cors(&p.name, x)?),
        cfg::PolicySpec::Jwt(j) => Compiled::Filter(rank, super::jwt::compile(&p.name, j, cx)?),
        cfg::PolicySpec::RateLimit(r) => {
            Compiled::Filter(rank, super::ratelimit::rate_limit(&p.name, r, cx)?)
        }
        cfg::PolicySpec::ConcurrencyLimit(c) => {
            Compiled::Filter(rank, super::ratelimit::concurrency_limit(&p.name, c, cx)?)
        }
        cfg::PolicySpec::Colour(c) => {
            Compiled::Filter(rank, super::colour::colour(&p.name, c, cx)?)
        }
        cfg::PolicySpec::Fault(f) => Compiled::Filter(
            rank,
            Arc::new(FaultFilter::new(
                &p.name,
                f.abort.map(|(s, pct)| (s, pct / 100.0)),
                f.delay.map(|(d, pct)| (d, pct / 100.0)),
                f.header
                    .as_deref()
                    .map(|h| HeaderName::from_bytes(h.as_bytes()))
                    .transpose()
                    .map_err(|e| format!("fault.header: {e}"))?,
            )),
        ),
        cfg::PolicySpec::ApiKey(k) => Compiled::Filter(rank, super::auth::api_key(&p.name, k, cx)?),
        cfg::PolicySpec::BasicAuth(b) => {
            Compiled::Filter(rank, super::auth::basic_auth(&p.name, b, cx)?)
        }
        cfg::PolicySpec::ForwardAuth(f) => {
            Compiled::Filter(rank, super::auth::forward_auth(&p.name, f, cx)?)
        }
        cfg::PolicySpec::Mirror(m) => {
            Compiled::Filter(rank, super::mirror::mirror(&p.name, m, cx)?)
        }
        cfg::PolicySpec::Wasm(w) => Compiled::Filter(rank, super::wasm::wasm(&p.name, w, cx)?),
    })
}

fn retry(name: &str, r: &cfg::RetryPolicy, cx: &PolicyCx<'_>) -> RetryPolicy {
    let budget = RetryBudgetSettings {
        ratio: r.budget_ratio,
        min_per_second: r.budget_min_per_second,
        window: r.budget_window,
    };
    // The budget's counts survive reloads while its own settings are unchanged.
    let state = cx
        .live
        .get_or_insert("retry", name, fingerprint(&budget), || {
            RetryBudget::new(budget)
        });
    let statuses: Vec<u16> = r.on.statuses.clone();
    RetryPolicy::new(
        Arc::from(name),
        r.attempts,
        r.on.reset,
        r.on.timeout,
        &statuses,
        r.retry_non_idempotent,
        r.per_try_timeout,
        (r.backoff_base, r.backoff_max),
        state,
        r.max_replay_body,
        cx.metrics.retry_budget_exhausted.with_label_values(&[name]),
    )
}

/// A route's own `request_headers` / `response_headers` as a headers filter.
pub(super) fn route_headers(r: &cfg::Route) -> Result<Option<Compiled>, String> {
    if r.request_headers.is_empty() && r.response_headers.is_empty() {
        return Ok(None);
    }
    let name = format!("{}/headers", r.name);
    Ok(Some(Compiled::Filter(
        cfg::PolicySpec::Headers(cfg::HeadersPolicy::default()).rank(),
        Arc::new(HeadersFilter::new(
            &name,
            header_ops(&r.request_headers)?,
            header_ops(&r.response_headers)?,
        )),
    )))
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

pub(super) fn header_ops(ops: &cfg::HeaderOps) -> Result<HeaderOps, String> {
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

/// Splits compiled policies into the chain's filters (sorted by kind rank, stable) and the
/// retry policy (the last one listed wins: a route's own replaces its listener's).
pub(super) fn assemble(
    compiled: Vec<Compiled>,
) -> (Vec<Arc<dyn Filter>>, Option<Arc<RetryPolicy>>) {
    let mut filters: Vec<(u16, Arc<dyn Filter>)> = Vec::new();
    let mut retry = None;
    for c in compiled {
        match c {
            Compiled::Filter(rank, f) => filters.push((rank, f)),
            Compiled::Retry(r) => retry = Some(r),
        }
    }
    filters.sort_by_key(|(rank, _)| *rank);
    (filters.into_iter().map(|(_, f)| f).collect(), retry)
}

/// `header_pairs` for direct responses.
pub(super) fn pairs(p: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    header_pairs(p)
}
