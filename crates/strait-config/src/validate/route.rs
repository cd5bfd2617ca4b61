//! Route validation: match conditions, exactly one action, rewrites and header edits.

use std::collections::HashSet;

use http::StatusCode;
use serde_saphyr::Spanned;

use super::values;
use super::{pos, pos_or, Ctx, Known};
use crate::diag::{Pos, RouteLocs};
use crate::policy::{Backend, PolicyRef, PolicySpec};
use crate::raw::{
    RawBackend, RawHeaderOps, RawMatch, RawRedirect, RawRespond, RawRewrite, RawRoute,
    RawValueMatch, S,
};
use crate::types::*;

#[cfg(test)]
mod tests;

type ValuePairs = Vec<(S, Spanned<RawValueMatch>)>;

/// Converts one route, reporting every problem in it.
pub(super) fn route(cx: &mut Ctx, raw: &Spanned<RawRoute>, known: &Known) -> (Route, RouteLocs) {
    let at = pos(raw);
    let r = &raw.value;
    let name = cx.name(r.name.as_ref(), at, "route");

    let listeners = r.listeners.as_ref().map(|list| {
        if list.value.is_empty() {
            cx.err(
                pos(list),
                "listeners is empty: omit it to apply the route to every listener",
            );
        }
        for l in &list.value {
            if !known.listeners.contains(l.value.as_str()) {
                cx.err(pos(l), format!("unknown listener `{}`", l.value));
            }
        }
        list.value.iter().map(|l| l.value.clone()).collect()
    });
    let priority = cx.count(r.priority.as_ref(), "priority", 0, (i32::MIN, i32::MAX));
    let empty = RawMatch::default();
    let raw_match = r.matcher.as_ref().unwrap_or(&empty);
    let matcher = route_match(cx, raw_match);

    let (action, action_at) = action(cx, r, &name, at, known);
    let forwards = matches!(action, Some(RouteAction::Forward { .. }) | None);
    let rewrite = r.rewrite.as_ref().map(|rw| {
        if !forwards {
            cx.err(pos(rw), "rewrite is only allowed with an `upstream` action");
        }
        rewrite(cx, rw, raw_match)
    });
    let policies = super::policy::refs(cx, r.policies.as_ref(), &name, known.policies);
    check_route_policies(cx, r, &policies, forwards, known);
    let upgrades = upgrades(cx, r.upgrades.as_ref(), forwards);
    let backends = match &action {
        Some(RouteAction::Forward { backends }) => Some(backends.as_slice()),
        _ => None,
    };
    let split = r
        .split
        .as_ref()
        .map(|s| super::split::split(cx, s, backends, forwards));
    let route = Route {
        name,
        listeners,
        priority,
        matcher,
        // An invalid action was already reported; any placeholder will do.
        action: action.unwrap_or(RouteAction::Forward {
            backends: Vec::new(),
        }),
        rewrite,
        request_headers: header_ops(cx, r.request_headers.as_ref()),
        response_headers: header_ops(cx, r.response_headers.as_ref()),
        policies,
        upgrades,
        split,
    };
    let locs = RouteLocs {
        at,
        action: action_at,
    };
    (route, locs)
}

fn route_match(cx: &mut Ctx, m: &RawMatch) -> RouteMatch {
    let mut hosts = Vec::new();
    if let Some(h) = &m.host {
        if h.value.0.is_empty() {
            cx.err(pos(h), "host list is empty: omit `host` to match any host");
        }
        for item in &h.value.0 {
            match values::host_pattern(&item.value) {
                Ok(host) => hosts.push(host),
                Err(e) => cx.err(pos_or(item, pos(h)), e),
            }
        }
    }

    let candidates = [
        ("path_prefix", &m.path_prefix),
        ("path", &m.path),
        ("path_template", &m.path_template),
        ("path_regex", &m.path_regex),
    ];
    let set: Vec<(&str, &S)> = candidates
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    for (k, v) in set.iter().skip(1) {
        cx.err(
            pos(v),
            format!(
                "only one path condition is allowed: `{k}` conflicts with `{}`",
                set[0].0
            ),
        );
    }
    let path = match set.first() {
        None => PathMatch::Any,
        Some((kind, v)) => {
            let s = v.value.clone();
            let checked = match *kind {
                "path_prefix" => values::path(&s),
                "path" => values::path(&s),
                "path_template" => values::template(&s),
                _ => values::regex(&s),
            };
            if let Err(e) = checked {
                cx.err(pos(v), e);
            }
            match *kind {
                "path_prefix" => PathMatch::Prefix(s),
                "path" => PathMatch::Exact(s),
                "path_template" => PathMatch::Template(s),
                _ => PathMatch::Regex(s),
            }
        }
    };

    let mut methods = Vec::new();
    for m in m.methods.iter().flatten() {
        match values::method(&m.value) {
            Ok(method) => methods.push(method),
            Err(e) => cx.err(pos(m), e),
        }
    }
    RouteMatch {
        hosts,
        path,
        methods,
        headers: value_matches(cx, m.headers.as_ref().map(|p| &p.0), true),
        query: value_matches(cx, m.query.as_ref().map(|p| &p.0), false),
        client_cert: client_cert_match(cx, m.client_cert.as_ref()),
    }
}

/// `match.client_cert`: SAN URI patterns as the `client_cert` policy's `allow`.
fn client_cert_match(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>) -> Vec<String> {
    let Some(list) = raw else { return Vec::new() };
    if list.value.is_empty() {
        cx.err(
            pos(list),
            "match.client_cert must list at least one SAN URI (or be left out)",
        );
    }
    let mut out = Vec::new();
    for s in &list.value {
        match super::access::client_cert_uri(&s.value) {
            Ok(()) => out.push(s.value.clone()),
            Err(e) => cx.err(pos(s), format!("match.client_cert: {e}")),
        }
    }
    out
}

/// Header (`is_header`) or query conditions.
fn value_matches(
    cx: &mut Ctx,
    raw: Option<&ValuePairs>,
    is_header: bool,
) -> Vec<(String, ValueMatch)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in raw.into_iter().flatten() {
        let name = if is_header {
            values::header_name(&key.value).unwrap_or_else(|e| {
                cx.err(pos(key), e);
                key.value.clone()
            })
        } else {
            if key.value.is_empty() {
                cx.err(pos(key), "query parameter name is empty");
            }
            key.value.clone()
        };
        if !seen.insert(name.clone()) {
            cx.err(pos(key), format!("`{name}` is matched more than once"));
        }
        let at = pos_or(value, pos(key));
        let vm = match &value.value {
            RawValueMatch::Exact(s) => {
                if is_header {
                    if let Err(e) = values::header_value(s) {
                        cx.err(at, e);
                    }
                }
                ValueMatch::Exact(s.clone())
            }
            RawValueMatch::Full(f) => match (&f.regex, &f.present) {
                (Some(re), None) => {
                    if let Err(e) = values::regex(&re.value) {
                        cx.err(pos(re), e);
                    }
                    ValueMatch::Regex(re.value.clone())
                }
                (None, Some(p)) => ValueMatch::Present(p.value),
                (Some(_), Some(p)) => {
                    cx.err(pos(p), "set either `regex` or `present`, not both");
                    ValueMatch::Present(p.value)
                }
                (None, None) => {
                    cx.err(at, "expected { regex: \"...\" } or { present: true|false }");
                    ValueMatch::Present(true)
                }
            },
        };
        out.push((name, vm));
    }
    out
}

/// Finds the route's single action; returns it with its position.
fn action(
    cx: &mut Ctx,
    r: &RawRoute,
    name: &str,
    at: Pos,
    known: &Known,
) -> (Option<RouteAction>, Pos) {
    let mut present: Vec<(&str, Pos)> = Vec::new();
    if let Some(u) = &r.upstream {
        present.push(("upstream", pos(u)));
    }
    if let Some(u) = &r.upstreams {
        present.push(("upstreams", pos(u)));
    }
    if let Some(x) = &r.respond {
        present.push(("respond", pos(x)));
    }
    if let Some(x) = &r.redirect {
        present.push(("redirect", pos(x)));
    }
    present.sort_by_key(|(_, p)| *p);
    match present.as_slice() {
        [] => {
            cx.err(
                at,
                format!(
                    "route `{name}` has no action: set one of upstream, upstreams, respond or redirect"
                ),
            );
            return (None, at);
        }
        [_] => {}
        [(first, _), rest @ ..] => {
            for (other, p) in rest {
                cx.err(
                    *p,
                    format!(
                        "route `{name}` has more than one action (`{first}` and `{other}`): \
                         keep exactly one"
                    ),
                );
            }
            return (None, present[0].1);
        }
    }
    let action_at = present[0].1;
    let action = if let Some(u) = &r.upstream {
        check_upstream(cx, &u.value, pos(u), known);
        RouteAction::Forward {
            backends: vec![Backend {
                upstream: u.value.clone(),
                weight: 1,
            }],
        }
    } else if let Some(list) = &r.upstreams {
        RouteAction::Forward {
            backends: backends(cx, list, known),
        }
    } else if let Some(x) = &r.respond {
        RouteAction::Respond(respond(cx, &x.value))
    } else if let Some(x) = &r.redirect {
        RouteAction::Redirect(redirect(cx, x))
    } else {
        unreachable!("one action is present")
    };
    (Some(action), action_at)
}

fn check_upstream(cx: &mut Ctx, name: &str, at: Pos, known: &Known) {
    if !known.upstreams.contains(name) {
        let mut names: Vec<&str> = known.upstreams.iter().copied().collect();
        names.sort_unstable();
        let hint = if names.is_empty() {
            "no upstreams are defined".to_owned()
        } else {
            format!("defined: {}", names.join(", "))
        };
        cx.err(at, format!("unknown upstream `{name}` ({hint})"));
    }
}

/// `upstreams:` weighted backends.
fn backends(cx: &mut Ctx, list: &Spanned<Vec<Spanned<RawBackend>>>, known: &Known) -> Vec<Backend> {
    let mut out: Vec<Backend> = Vec::new();
    for item in &list.value {
        let (name, at, weight) = match &item.value {
            RawBackend::Name(n) => (n.clone(), pos(item), 1),
            RawBackend::Full(f) => (
                f.name.value.clone(),
                pos(&f.name),
                cx.count(f.weight.as_ref(), "weight", 1u32, (0, 10_000)),
            ),
        };
        check_upstream(cx, &name, at, known);
        if out.iter().any(|b| b.upstream == name) {
            cx.err(
                at,
                format!("upstream `{name}` is listed twice in `upstreams`"),
            );
        }
        out.push(Backend {
            upstream: name,
            weight,
        });
    }
    if out.is_empty() {
        cx.err(pos(list), "upstreams is empty: list at least one upstream");
    } else if out.iter().all(|b| b.weight == 0) {
        cx.err(
            pos(list),
            "every backend has weight 0: at least one must take traffic",
        );
    }
    out
}

/// Policies that only make sense on routes that forward, and one retry policy per route.
fn check_route_policies(
    cx: &mut Ctx,
    r: &RawRoute,
    policies: &[PolicyRef],
    forwards: bool,
    known: &Known,
) {
    let at = r.policies.as_ref().map_or((0, 0), pos);
    let retries = policies
        .iter()
        .filter(|p| {
            let spec = match p {
                PolicyRef::Named(n) => known.policies.get(n.as_str()).copied(),
                PolicyRef::Inline(p) => Some(&p.spec),
            };
            matches!(spec, Some(PolicySpec::Retry(_)))
        })
        .count();
    if retries > 0 && !forwards {
        cx.err(
            at,
            "a retry policy only applies to routes that forward to an upstream",
        );
    }
    if retries > 1 {
        cx.err(
            at,
            "a route takes one retry policy (a route's own replaces its listener's)",
        );
    }
}

/// `upgrades:` the `Upgrade` tokens a route tunnels.
fn upgrades(cx: &mut Ctx, raw: Option<&Spanned<Vec<S>>>, forwards: bool) -> Vec<String> {
    let Some(list) = raw else {
        return vec!["websocket".to_owned()];
    };
    if !forwards {
        cx.err(
            pos(list),
            "upgrades only apply to routes that forward to an upstream",
        );
    }
    let mut out = Vec::new();
    for t in &list.value {
        let token = t.value.to_ascii_lowercase();
        if token == "h2c" {
            cx.err(
                pos(t),
                "h2c upgrades are never tunnelled (a request smuggling pattern); \
                 clients reach HTTP/2 upstreams through an HTTP/2 listener",
            );
        } else if token.is_empty() || !token.bytes().all(values::is_token_char) {
            cx.err(
                pos(t),
                format!("`{}` is not a valid Upgrade token", t.value),
            );
        }
        out.push(token);
    }
    out
}

fn status(cx: &mut Ctx, raw: Option<&S>, default: u16, allowed: &[u16]) -> StatusCode {
    let Some(s) = raw else {
        return StatusCode::from_u16(default).unwrap_or(StatusCode::OK);
    };
    let code = s.value.trim().parse::<u16>().ok();
    match code.filter(|c| allowed.contains(c) || (allowed.is_empty() && (100..=599).contains(c))) {
        Some(c) => StatusCode::from_u16(c).unwrap_or(StatusCode::OK),
        None => {
            let expected = if allowed.is_empty() {
                "100 to 599".to_owned()
            } else {
                let all: Vec<String> = allowed.iter().map(u16::to_string).collect();
                format!("one of {}", all.join(", "))
            };
            cx.err(
                pos(s),
                format!("status must be {expected}, not `{}`", s.value),
            );
            StatusCode::from_u16(default).unwrap_or(StatusCode::OK)
        }
    }
}

/// Headers that frame the message or the connection: Strait writes these itself for the
/// protocol in use, and a configured value would contradict the body it sends (or break HTTP/2).
const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn respond(cx: &mut Ctx, r: &RawRespond) -> Respond {
    let status = status(cx, r.status.as_ref(), 200, &[]);
    if let (Some(s), Some(why)) = (&r.status, unsendable_status(status.as_u16())) {
        cx.err(pos(s), why);
    }
    let body = r.body.as_ref().map(|b| b.value.clone()).unwrap_or_default();
    if let Some(b) = r.body.as_ref().filter(|b| !b.value.is_empty()) {
        if let Some(why) = bodyless_status(status.as_u16()) {
            cx.err(pos(b), why);
        }
    }
    let headers = header_pairs(cx, r.headers.as_ref().map(|p| &p.0));
    for (k, _) in r.headers.iter().flat_map(|p| &p.0) {
        let name = k.value.to_ascii_lowercase();
        if FRAMING_HEADERS.contains(&name.as_str()) {
            cx.err(
                pos(k),
                format!("respond cannot set `{name}`: Strait frames the response itself (it sets content-length from the body)"),
            );
        }
    }
    Respond {
        status,
        body,
        headers,
    }
}

/// Why a direct response cannot have `status` at all, if it cannot.
fn unsendable_status(status: u16) -> Option<String> {
    (100..200).contains(&status).then(|| {
        format!("respond cannot use status {status}: 1xx responses are interim, sent before a final response, and cannot end a request (use 200 to 599)")
    })
}

/// Why a direct response with `status` cannot carry a body, if it cannot (RFC 9110 §15.3.5, §15.3.6, §15.4.5).
fn bodyless_status(status: u16) -> Option<String> {
    matches!(status, 204 | 205 | 304).then(|| {
        format!("a {status} response has no body (RFC 9110): remove `body` or use another status, such as 200")
    })
}

fn redirect(cx: &mut Ctx, raw: &Spanned<RawRedirect>) -> Redirect {
    let r = &raw.value;
    if r.scheme.is_none() && r.host.is_none() && r.port.is_none() && r.path.is_none() {
        cx.err(
            pos(raw),
            "redirect changes nothing and would loop: set at least one of scheme, host, port, path",
        );
    }
    let scheme = r.scheme.as_ref().map(|s| {
        if s.value != "http" && s.value != "https" {
            cx.err(
                pos(s),
                format!("scheme must be `http` or `https`, not `{}`", s.value),
            );
        }
        s.value.clone()
    });
    let host = r.host.as_ref().map(|h| {
        values::hostname(&h.value).unwrap_or_else(|e| {
            cx.err(pos(h), e);
            h.value.clone()
        })
    });
    let port = r
        .port
        .as_ref()
        .map(|p| cx.count(Some(p), "port", 443u16, (1, u16::MAX)));
    let path = r.path.as_ref().map(|p| {
        if let Err(e) = values::path(&p.value) {
            cx.err(pos(p), e);
        }
        p.value.clone()
    });
    Redirect {
        status: status(cx, r.status.as_ref(), 302, &[301, 302, 303, 307, 308]),
        scheme,
        host,
        port,
        path,
    }
}

fn rewrite(cx: &mut Ctx, raw: &Spanned<RawRewrite>, m: &RawMatch) -> Rewrite {
    let r = &raw.value;
    let mut path = None;
    if let Some(p) = &r.path_prefix {
        if m.path_prefix.is_none() {
            cx.err(
                pos(p),
                "rewrite.path_prefix replaces the matched prefix, so it needs match.path_prefix",
            );
        }
        if let Err(e) = values::path(&p.value) {
            cx.err(pos(p), e);
        }
        path = Some(PathRewrite::Prefix(p.value.clone()));
    }
    if let Some(p) = &r.path {
        if r.path_prefix.is_some() {
            cx.err(
                pos(p),
                "set either rewrite.path_prefix or rewrite.path, not both",
            );
        }
        if let Err(e) = values::path(&p.value) {
            cx.err(pos(p), e);
        }
        path = Some(PathRewrite::Full(p.value.clone()));
    }
    let host = r.host.as_ref().map(|h| {
        // The Host header may carry a port.
        let name = h.value.rsplit_once(':').map_or(h.value.as_str(), |(n, p)| {
            if p.parse::<u16>().is_err() {
                cx.err(
                    pos(h),
                    format!("rewrite.host `{}` has an invalid port", h.value),
                );
            }
            n
        });
        if let Err(e) = values::hostname(name) {
            cx.err(pos(h), e);
        }
        h.value.to_ascii_lowercase()
    });
    Rewrite { path, host }
}

fn header_pairs(cx: &mut Ctx, raw: Option<&Vec<(S, S)>>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (k, v) in raw.into_iter().flatten() {
        let name = values::header_name(&k.value).unwrap_or_else(|e| {
            cx.err(pos(k), e);
            k.value.clone()
        });
        if !seen.insert(name.clone()) {
            cx.err(pos(k), format!("header `{name}` is listed more than once"));
        }
        if let Err(e) = values::header_value(&v.value) {
            cx.err(pos_or(v, pos(k)), e);
        }
        out.push((name, v.value.clone()));
    }
    out
}

pub(super) fn header_ops(cx: &mut Ctx, raw: Option<&RawHeaderOps>) -> HeaderOps {
    let Some(r) = raw else {
        return HeaderOps::default();
    };
    let mut remove = Vec::new();
    for n in r.remove.iter().flatten() {
        match values::header_name(&n.value) {
            Ok(name) => remove.push(name),
            Err(e) => cx.err(pos(n), e),
        }
    }
    HeaderOps {
        add: header_pairs(cx, r.add.as_ref().map(|p| &p.0)),
        set: header_pairs(cx, r.set.as_ref().map(|p| &p.0)),
        remove,
    }
}
