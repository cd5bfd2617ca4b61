//! The `rollouts:` section: SLO-gated progressive delivery of a canary upstream on a route (types, raw YAML forms, validation).
//!
//! Kept in one file, like `observability.rs`: `Config` and `RawConfig` only gain the one
//! `rollouts` field. The controller that runs rollouts lives in `strait-control`.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::Pos;
use crate::raw::S;
use crate::types::{Route, RouteAction};
use crate::validate::{pos, Ctx};

// === validated types ===

/// One rollout (`rollouts[]`): moves a route's traffic from `stable` to `canary` step by step
/// while the canary's own traffic stays within its thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Unique name (admin API path, metric label).
    pub name: String,
    /// The route whose two backends' weights the rollout sets.
    pub route: String,
    /// The upstream that keeps `100 - weight` percent.
    pub stable: String,
    /// The upstream that gets `weight` percent.
    pub canary: String,
    /// Canary weights in order (at least one); after the last the canary is promoted.
    pub steps: Vec<RolloutStep>,
    /// How each interval of the canary's traffic is judged.
    pub analysis: RolloutAnalysis,
}

/// One step (`steps[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutStep {
    /// Canary share in percent, 0..=100.
    pub weight: u32,
    /// Least time at this step before it may advance (default 1 m).
    pub pause: Duration,
}

/// The analysis (`analysis:`).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutAnalysis {
    /// How often the canary's traffic is judged (default 30 s).
    pub interval: Duration,
    /// Fewer canary requests in an interval: inconclusive (default 50).
    pub min_requests: u64,
    /// Highest share of 5xx canary responses (default 0.01).
    pub max_error_rate: f64,
    /// Highest canary p99 latency to the response head (default: not checked).
    pub max_p99: Option<Duration>,
    /// Take the figures from PromQL queries instead of the process's own metrics.
    pub prometheus: Option<PrometheusAnalysis>,
}

/// PromQL analysis (`analysis.prometheus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusAnalysis {
    /// The upstream the Prometheus server is (queried through Strait's own client).
    pub upstream: String,
    /// An instant query giving the canary's error rate (0..1).
    pub error_rate: String,
    /// An instant query giving the canary's p99 in seconds (needed with `max_p99`).
    pub p99: Option<String>,
}

// === raw forms ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRollout {
    pub name: Option<S>,
    pub route: Option<S>,
    pub stable: Option<S>,
    pub canary: Option<S>,
    pub steps: Option<Spanned<Vec<Spanned<RawStep>>>>,
    pub analysis: Option<Spanned<RawAnalysis>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub weight: Option<S>,
    pub pause: Option<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnalysis {
    pub interval: Option<S>,
    pub min_requests: Option<S>,
    pub max_error_rate: Option<S>,
    pub max_p99: Option<S>,
    pub prometheus: Option<Spanned<RawPrometheus>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrometheus {
    pub upstream: Option<S>,
    pub error_rate: Option<S>,
    pub p99: Option<S>,
}

// === validation ===

/// Validates `rollouts:` against the validated routes and the upstream names.
pub(crate) fn validate(
    cx: &mut Ctx,
    raw: Option<&Vec<Spanned<RawRollout>>>,
    routes: &[Route],
    upstreams: &HashSet<&str>,
) -> Vec<Rollout> {
    let Some(raw) = raw else { return Vec::new() };
    let out: Vec<(Rollout, Pos, Pos)> = raw
        .iter()
        .map(|r| rollout(cx, r, routes, upstreams))
        .collect();
    let names: Vec<(&str, Pos)> = out
        .iter()
        .map(|(r, at, _)| (r.name.as_str(), *at))
        .collect();
    cx.unique("rollout", &names);
    let mut seen: HashSet<&str> = HashSet::new();
    for (r, _, route_at) in &out {
        if !r.route.is_empty() && !seen.insert(r.route.as_str()) {
            cx.err(
                *route_at,
                format!(
                    "route `{}` already has a rollout: one rollout per route",
                    r.route
                ),
            );
        }
    }
    out.into_iter().map(|(r, _, _)| r).collect()
}

/// One rollout, with the positions of its name and its route.
fn rollout(
    cx: &mut Ctx,
    raw: &Spanned<RawRollout>,
    routes: &[Route],
    upstreams: &HashSet<&str>,
) -> (Rollout, Pos, Pos) {
    let at = pos(raw);
    let r = &raw.value;
    let name = cx.name(r.name.as_ref(), at, "rollout");
    let name_at = r.name.as_ref().map_or(at, pos);
    let required = |cx: &mut Ctx, v: Option<&S>, field: &str| match v {
        Some(s) => (s.value.clone(), pos(s)),
        None => {
            cx.err(at, format!("rollout needs a `{field}`"));
            (String::new(), at)
        }
    };
    let (route, route_at) = required(cx, r.route.as_ref(), "route");
    let (stable, stable_at) = required(cx, r.stable.as_ref(), "stable");
    let (canary, canary_at) = required(cx, r.canary.as_ref(), "canary");
    if !stable.is_empty() && stable == canary {
        cx.err(canary_at, "canary must be another upstream than stable");
    }
    if !route.is_empty() {
        match routes.iter().find(|x| x.name == route) {
            None => cx.err(route_at, format!("unknown route `{route}`")),
            Some(Route {
                action: RouteAction::Forward { backends },
                ..
            }) => {
                for (u, u_at, field) in [
                    (&stable, stable_at, "stable"),
                    (&canary, canary_at, "canary"),
                ] {
                    if !u.is_empty() && !backends.iter().any(|b| b.upstream == *u) {
                        cx.err(
                            u_at,
                            format!(
                                "{field} upstream `{u}` is not among route `{route}`'s upstreams: \
                                 list both in the route's `upstreams:`"
                            ),
                        );
                    }
                }
            }
            Some(_) => cx.err(
                route_at,
                format!(
                    "route `{route}` does not forward to upstreams, so it has nothing to roll out"
                ),
            ),
        }
    }
    let steps = steps(cx, r.steps.as_ref(), at);
    let analysis = analysis(cx, r.analysis.as_ref(), upstreams);
    (
        Rollout {
            name,
            route,
            stable,
            canary,
            steps,
            analysis,
        },
        name_at,
        route_at,
    )
}

fn steps(cx: &mut Ctx, raw: Option<&Spanned<Vec<Spanned<RawStep>>>>, at: Pos) -> Vec<RolloutStep> {
    let Some(raw) = raw else {
        cx.err(
            at,
            "rollout needs `steps`: e.g. [{ weight: 5, pause: 1m }, { weight: 50, pause: 1m }]",
        );
        return Vec::new();
    };
    if raw.value.is_empty() {
        cx.err(pos(raw), "steps must list at least one step");
    }
    raw.value
        .iter()
        .map(|s| {
            if s.value.weight.is_none() {
                cx.err(
                    pos(s),
                    "step needs a `weight` (the canary's percent, 0 to 100)",
                );
            }
            RolloutStep {
                weight: cx.count(s.value.weight.as_ref(), "weight", 0u32, (0, 100)),
                pause: cx.duration(
                    s.value.pause.as_ref(),
                    "pause",
                    Duration::from_secs(60),
                    true,
                ),
            }
        })
        .collect()
}

fn analysis(
    cx: &mut Ctx,
    raw: Option<&Spanned<RawAnalysis>>,
    upstreams: &HashSet<&str>,
) -> RolloutAnalysis {
    let a = raw.map(|r| &r.value);
    let interval = cx.duration(
        a.and_then(|a| a.interval.as_ref()),
        "interval",
        Duration::from_secs(30),
        false,
    );
    let min_requests = cx.count(
        a.and_then(|a| a.min_requests.as_ref()),
        "min_requests",
        50u64,
        (1, u64::MAX),
    );
    let max_error_rate = cx.ratio(
        a.and_then(|a| a.max_error_rate.as_ref()),
        "max_error_rate",
        0.01,
    );
    let max_p99 = a
        .and_then(|a| a.max_p99.as_ref())
        .map(|s| cx.duration(Some(s), "max_p99", Duration::from_millis(500), false));
    let prometheus = a.and_then(|a| a.prometheus.as_ref()).map(|p| {
        let at = pos(p);
        let p = &p.value;
        let upstream = match &p.upstream {
            Some(u) if !upstreams.contains(u.value.as_str()) => {
                cx.err(
                    pos(u),
                    format!("prometheus.upstream: unknown upstream `{}`", u.value),
                );
                u.value.clone()
            }
            Some(u) => u.value.clone(),
            None => {
                cx.err(at, "prometheus needs an `upstream` (the Prometheus server)");
                String::new()
            }
        };
        let query = |cx: &mut Ctx, q: Option<&S>| {
            q.map(|q| {
                if q.value.trim().is_empty() {
                    cx.err(pos(q), "a PromQL query cannot be empty");
                }
                q.value.clone()
            })
        };
        let error_rate = query(cx, p.error_rate.as_ref()).unwrap_or_else(|| {
            cx.err(at, "prometheus needs an `error_rate` query");
            String::new()
        });
        let p99 = query(cx, p.p99.as_ref());
        if max_p99.is_some() && p99.is_none() {
            cx.err(
                at,
                "prometheus needs a `p99` query when analysis.max_p99 is set",
            );
        }
        PrometheusAnalysis {
            upstream,
            error_rate,
            p99,
        }
    });
    RolloutAnalysis {
        interval,
        min_requests,
        max_error_rate,
        max_p99,
        prometheus,
    }
}

#[cfg(test)]
mod tests;
