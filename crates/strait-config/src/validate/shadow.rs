//! Warnings for routes that can never match because an earlier route takes all their traffic.
//!
//! The check is conservative: it warns only when coverage is certain from the config alone
//! (e.g. a prefix that contains another's prefix), never on regexes it would have to reason about.

use super::Ctx;
use crate::types::{Config, PathMatch, Route, RouteMatch, ValueMatch};

pub(super) fn warn_shadowed(cx: &mut Ctx, config: &Config) {
    let order = config.route_order();
    for (k, &later) in order.iter().enumerate() {
        let b = &config.routes[later];
        let Some(&earlier) = order[..k].iter().find(|&&a| covers(&config.routes[a], b)) else {
            continue;
        };
        let a = &config.routes[earlier];
        let line = config.locations.route(earlier).0;
        cx.warn(
            config.locations.route(later),
            format!(
                "route `{}` is never matched: route `{}` (line {line}) is tried first and \
                 matches every request it would",
                b.name, a.name
            ),
        );
    }
}

/// Whether every request `b` matches is also matched by `a`.
fn covers(a: &Route, b: &Route) -> bool {
    let listeners = match (&a.listeners, &b.listeners) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(la), Some(lb)) => lb.iter().all(|l| la.contains(l)),
    };
    listeners && match_covers(&a.matcher, &b.matcher)
}

fn match_covers(a: &RouteMatch, b: &RouteMatch) -> bool {
    hosts_cover(&a.hosts, &b.hosts)
        && path_covers(&a.path, &b.path)
        && (a.methods.is_empty()
            || (!b.methods.is_empty() && b.methods.iter().all(|m| a.methods.contains(m))))
        && values_cover(&a.headers, &b.headers)
        && values_cover(&a.query, &b.query)
}

fn hosts_cover(a: &[String], b: &[String]) -> bool {
    let any = |h: &[String]| h.is_empty() || h.iter().any(|x| x == "*");
    if any(a) {
        return true;
    }
    if any(b) {
        return false;
    }
    b.iter().all(|hb| {
        a.iter().any(|ha| {
            ha == hb
                // Only single-label wildcard coverage is certain whatever the router's
                // wildcard depth rule is.
                || ha.strip_prefix("*.").is_some_and(|suffix| {
                    !hb.starts_with('*')
                        && hb
                            .strip_suffix(suffix)
                            .and_then(|l| l.strip_suffix('.'))
                            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                })
        })
    })
}

fn path_covers(a: &PathMatch, b: &PathMatch) -> bool {
    match (a, b) {
        (PathMatch::Any, _) => true,
        (PathMatch::Prefix(p), PathMatch::Prefix(q) | PathMatch::Exact(q)) => {
            q.starts_with(p.as_str())
        }
        (PathMatch::Prefix(p), PathMatch::Template(t)) => {
            // The template's literal head is a prefix of every path it matches.
            let head = t.split('{').next().unwrap_or("");
            head.starts_with(p.as_str())
        }
        (x, y) => x == y,
    }
}

/// Every condition of `a` is implied by some condition of `b`.
fn values_cover(a: &[(String, ValueMatch)], b: &[(String, ValueMatch)]) -> bool {
    a.iter().all(|(name, va)| {
        b.iter().any(|(nb, vb)| {
            nb == name
                && (va == vb
                    || (*va == ValueMatch::Present(true)
                        && !matches!(vb, ValueMatch::Present(false))))
        })
    })
}
