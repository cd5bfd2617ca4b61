//! Finds routes that can never win because an earlier-tried route matches all they match.
//!
//! The check is conservative: it reports only cases it can prove, so a route that is not
//! reported may still be unreachable, but a reported route truly is.

use crate::host::HostPattern;
use crate::path::{self, Template};
use crate::router::{compile_hosts, try_order};
use crate::value;
use crate::{PathSpec, RouteSpec};

/// A route that can never match, and the earlier-tried route that takes all its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shadow {
    /// Index of the unreachable route in the specs.
    pub index: usize,
    /// Index of the first earlier-tried route that covers it.
    pub by: usize,
}

/// Routes that can never match because an earlier-tried route matches every request they do,
/// in try order. Routes that do not compile are skipped.
pub fn shadowed(specs: &[RouteSpec]) -> Vec<Shadow> {
    let order = try_order(specs);
    let hosts: Vec<Option<Vec<HostPattern>>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| compile_hosts(i, &s.hosts).ok())
        .collect();
    let mut found = Vec::new();
    for (pos, &later) in order.iter().enumerate() {
        let Some(later_hosts) = &hosts[later] else {
            continue;
        };
        let by = order[..pos].iter().copied().find(|&earlier| {
            hosts[earlier].as_ref().is_some_and(|earlier_hosts| {
                covers_hosts(earlier_hosts, later_hosts)
                    && covers_rest(&specs[earlier], &specs[later])
                    && covers_path(&specs[earlier].path, &specs[later].path)
            })
        });
        if let Some(by) = by {
            found.push(Shadow { index: later, by });
        }
    }
    found
}

fn any_host(hosts: &[HostPattern]) -> bool {
    hosts.is_empty() || hosts.contains(&HostPattern::Any)
}

/// Every host the later route matches is matched by the earlier one.
fn covers_hosts(earlier: &[HostPattern], later: &[HostPattern]) -> bool {
    if any_host(earlier) {
        return true;
    }
    !any_host(later) && later.iter().all(|l| earlier.iter().any(|e| e.covers(l)))
}

/// Every method, header and query condition of the earlier route is implied by the later's.
fn covers_rest(earlier: &RouteSpec, later: &RouteSpec) -> bool {
    let methods = earlier.methods.is_empty()
        || (!later.methods.is_empty() && later.methods.iter().all(|m| earlier.methods.contains(m)));
    let headers = earlier.headers.iter().all(|(name, by)| {
        later
            .headers
            .iter()
            .any(|(n, implied)| n == name && value::implies(implied, by))
    });
    let query = earlier.query.iter().all(|(name, by)| {
        later
            .query
            .iter()
            .any(|(n, implied)| n == name && value::implies(implied, by))
    });
    // Each URI the later route admits is admitted by one of the earlier's patterns.
    // Each URI the later route admits is admitted by one of the earlier's patterns: a later
    // pattern, read as a URI, matches an earlier one exactly when that one admits all it does.
    let client = earlier.client_uris.is_empty()
        || (!later.client_uris.is_empty()
            && later.client_uris.iter().all(|l| {
                earlier
                    .client_uris
                    .iter()
                    .any(|e| crate::router::uri_matches(e, l))
            }));
    methods && headers && query && client
}

/// Every path the later route matches is matched by the earlier one.
fn covers_path(earlier: &PathSpec, later: &PathSpec) -> bool {
    use PathSpec::{Any, Exact, Prefix, Regex};
    match (earlier, later) {
        (Any, _) => true,
        (Prefix(p), _) if p.is_empty() => true,
        (Prefix(p), Prefix(q) | Exact(q)) => q.starts_with(p.as_str()),
        // Every path a template matches starts with its literal text.
        (Prefix(p), PathSpec::Template(t)) => {
            Template::parse(t).is_ok_and(|t2| t[..t2.literal_len()].starts_with(p.as_str()))
        }
        (Exact(a), Exact(b))
        | (PathSpec::Template(a), PathSpec::Template(b))
        | (Regex(a), Regex(b)) => a == b,
        // A single path is covered by whatever matches it.
        (PathSpec::Template(t), Exact(e)) => Template::parse(t).is_ok_and(|t| t.matches(e)),
        (Regex(r), Exact(e)) => path::compile_regex(r).is_ok_and(|r| r.is_match(e)),
        _ => false,
    }
}
