//! Validation tests of `rollouts:`: defaults, and each error with its position.

use std::time::Duration;

use crate::*;

const BASE: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
upstreams:\n  - { name: v1, endpoints: [\"127.0.0.1:1\"] }\n  - { name: v2, endpoints: [\"127.0.0.1:2\"] }\n  - { name: prom, endpoints: [\"127.0.0.1:3\"] }\n\
routes:\n  - name: checkout\n    upstreams: [v1, v2]\n  - name: hello\n    respond: { body: hi }\n";

/// Errors as `LINE:COL: message`.
fn errors(rollouts: &str) -> Vec<String> {
    let yaml = format!("{BASE}{rollouts}");
    match parse("t.yaml", &yaml, None) {
        Ok(_) => panic!("expected errors in:\n{yaml}"),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        }
    }
}

#[test]
fn a_rollout_gets_its_defaults() {
    let yaml = format!(
        "{BASE}rollouts:\n  - name: c\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: [{{ weight: 5 }}, {{ weight: 50, pause: 10s }}]\n"
    );
    let c = parse("t.yaml", &yaml, None).unwrap().config;
    let r = &c.rollouts[0];
    assert_eq!(
        (r.route.as_str(), r.stable.as_str(), r.canary.as_str()),
        ("checkout", "v1", "v2")
    );
    assert_eq!(
        r.steps[0],
        RolloutStep {
            weight: 5,
            pause: Duration::from_secs(60)
        }
    );
    assert_eq!(r.steps[1].pause, Duration::from_secs(10));
    assert_eq!(r.analysis.interval, Duration::from_secs(30));
    assert_eq!(r.analysis.min_requests, 50);
    assert_eq!(r.analysis.max_error_rate, 0.01);
    assert_eq!(r.analysis.max_p99, None);
    assert!(r.analysis.prometheus.is_none());
}

#[test]
fn the_route_must_exist_forward_and_list_both_upstreams() {
    // BASE has 12 lines: `rollouts:` is line 13.
    let e = errors(
        "rollouts:\n  - name: a\n    route: nope\n    stable: v1\n    canary: v2\n    steps: [{ weight: 5 }]\n  - name: b\n    route: hello\n    stable: v1\n    canary: v2\n    steps: [{ weight: 5 }]\n  - name: c\n    route: checkout\n    stable: v1\n    canary: prom\n    steps: [{ weight: 5 }]\n",
    );
    assert_eq!(
        e,
        [
            "15:12: unknown route `nope`",
            "20:12: route `hello` does not forward to upstreams, so it has nothing to roll out",
            "27:13: canary upstream `prom` is not among route `checkout`'s upstreams: list both in the route's `upstreams:`",
        ]
    );
}

#[test]
fn steps_names_and_analysis_values_are_checked_with_positions() {
    let e = errors(
        "rollouts:\n  - name: a\n    route: checkout\n    stable: v1\n    canary: v1\n    steps: [{ weight: 101 }, { pause: 1m }]\n    analysis: { interval: 0s, max_error_rate: 2, max_p99: fast }\n  - name: a\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: []\n",
    );
    assert_eq!(
        e,
        [
            "17:13: canary must be another upstream than stable",
            "18:23: weight must be a whole number from 0 to 100, not `101`",
            "18:30: step needs a `weight` (the canary's percent, 0 to 100)",
            "19:27: interval must be greater than 0",
            "19:47: max_error_rate must be from 0 to 1 (or 0% to 100%), not `2`",
            "19:59: max_p99: invalid duration `fast`: expected a whole number before `fast` (write e.g. `1m30s`, not `1.5m`)",
            "20:11: duplicate rollout name `a` (first defined at line 14)",
            "21:12: route `checkout` already has a rollout: one rollout per route",
            "24:12: steps must list at least one step",
        ]
    );
}

#[test]
fn prometheus_needs_a_known_upstream_and_its_queries() {
    let e = errors(
        "rollouts:\n  - name: a\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: [{ weight: 5 }]\n    analysis:\n      max_p99: 500ms\n      prometheus: { upstream: nope }\n",
    );
    assert_eq!(
        e,
        [
            "21:19: prometheus needs an `error_rate` query",
            "21:19: prometheus needs a `p99` query when analysis.max_p99 is set",
            "21:31: prometheus.upstream: unknown upstream `nope`",
        ]
    );
}
