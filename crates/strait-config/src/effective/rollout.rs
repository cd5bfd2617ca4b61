//! The effective form of `rollouts:`.

use super::node::{int, M};
use super::Node;
use crate::rollout::*;

/// `rollouts:`.
pub(super) fn rollouts(rollouts: &[Rollout]) -> Node {
    Node::List(rollouts.iter().map(rollout).collect())
}

fn rollout(r: &Rollout) -> Node {
    let Rollout {
        name,
        route,
        stable,
        canary,
        steps,
        analysis,
    } = r;
    let RolloutAnalysis {
        interval,
        min_requests,
        max_error_rate,
        max_p99,
        prometheus,
    } = analysis;
    let steps: Vec<Node> = steps
        .iter()
        .map(|RolloutStep { weight, pause }| {
            M::new()
                .put("weight", int(*weight))
                .put("pause", *pause)
                .into()
        })
        .collect();
    let prometheus = prometheus.as_ref().map(
        |PrometheusAnalysis {
             upstream,
             error_rate,
             p99,
         }| {
            M::new()
                .put("upstream", upstream.as_str())
                .put("error_rate", error_rate.as_str())
                .opt("p99", p99.as_deref())
        },
    );
    M::new()
        .put("name", name.as_str())
        .put("route", route.as_str())
        .put("stable", stable.as_str())
        .put("canary", canary.as_str())
        .put("steps", Node::List(steps))
        .put(
            "analysis",
            M::new()
                .put("interval", *interval)
                .put("min_requests", int(*min_requests))
                .put("max_error_rate", max_error_rate.to_string())
                .opt("max_p99", *max_p99)
                .opt("prometheus", prometheus),
        )
        .into()
}
