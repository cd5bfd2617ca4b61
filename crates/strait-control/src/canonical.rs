//! `validate` warnings for route paths that no request can carry, because requests are
//! normalised before routing (`/a//b`, `/%7Euser`, `/a/../b` never arrive as written).

use std::borrow::Cow;

use strait_config::{Config, Diagnostic, PathMatch};
use strait_router::normalize_path;

use crate::compile::listener_http;

/// One warning per `path` or `path_prefix` that is not canonical on any listener of its route.
pub fn canonical_path_warnings(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, r) in config.routes.iter().enumerate() {
        let (field, path, exact) = match &r.matcher.path {
            PathMatch::Exact(p) => ("path", p, true),
            PathMatch::Prefix(p) => ("path_prefix", p, false),
            _ => continue,
        };
        let listeners = config
            .listeners
            .iter()
            .filter(|l| r.listeners.as_ref().is_none_or(|ls| ls.contains(&l.name)));
        let mut canonical = None;
        let mut matchable = false;
        for l in listeners {
            match canonical_form(path, exact, &listener_http(&l.http).path) {
                Some(c) if c == *path => matchable = true,
                Some(c) => canonical = Some(c),
                None => {}
            }
        }
        if matchable {
            continue;
        }
        let hint = match canonical {
            Some(c) => format!("write `{c}`"),
            None => "such requests are refused with 400".to_string(),
        };
        out.push(config.locations.diag(
            config.locations.route(i),
            format!(
                "route `{}` is never matched: {field} `{path}` is not a normalised path, and \
                 requests are normalised before routing; {hint}",
                r.name
            ),
        ));
    }
    out
}

/// The spelling requests starting with (or equal to) `path` have after normalisation: `None` when
/// they are refused, `Some(path)` when it can match. A prefix is judged by extending it with a
/// plain character, since `/api/.` still begins canonical paths such as `/api/.well-known`.
fn canonical_form(path: &str, exact: bool, opts: &strait_router::PathOptions) -> Option<String> {
    if exact {
        return normalize_path(path.as_bytes(), opts)
            .ok()
            .map(Cow::into_owned);
    }
    let tail = path.len().saturating_sub(2);
    if path.get(tail..).is_none_or(|t| t.contains('%')) {
        // A prefix ending inside an escape can begin several escapes: assume it can match.
        return Some(path.to_string());
    }
    let probe = format!("{path}x");
    let c = normalize_path(probe.as_bytes(), opts).ok()?;
    Some(c.strip_suffix('x').unwrap_or(&c).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(yaml_tail: &str) -> Vec<String> {
        let yaml = format!(
            "listeners:\n  - name: web\n    listen: 127.0.0.1:1\n  - name: keep\n    listen: 127.0.0.1:2\n    \
             http: {{ path_with_escaped_slashes_action: keep_unchanged, merge_slashes: false }}\n{yaml_tail}"
        );
        let loaded = strait_config::parse("t.yaml", &yaml, None).expect("valid config");
        canonical_path_warnings(&loaded.config)
            .into_iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn non_canonical_paths_are_reported_with_their_canonical_form() {
        let w = warnings(
            "routes:\n  - { name: a, listeners: [web], match: { path_prefix: /api//v1 }, respond: {} }\n  \
             - { name: b, match: { path: /%7euser }, respond: {} }\n  \
             - { name: c, match: { path: /x/../admin }, respond: {} }\n  \
             - { name: d, listeners: [web], match: { path_prefix: /a%2Fb }, respond: {} }\n",
        );
        assert_eq!(w.len(), 4, "{w:#?}");
        assert!(
            w[0].starts_with("8:5: route `a` is never matched: path_prefix `/api//v1`"),
            "{}",
            w[0]
        );
        assert!(w[0].ends_with("write `/api/v1`"), "{}", w[0]);
        assert!(w[1].ends_with("write `/~user`"), "{}", w[1]);
        assert!(w[2].ends_with("write `/admin`"), "{}", w[2]);
        assert!(
            w[3].ends_with("such requests are refused with 400"),
            "{}",
            w[3]
        );
    }

    #[test]
    fn paths_that_can_match_somewhere_are_not_reported() {
        let w = warnings(
            "routes:\n  - { name: a, match: { path_prefix: /api/. }, respond: {} }\n  \
             - { name: b, match: { path_prefix: /a%2Fb }, respond: {} }\n  \
             - { name: c, match: { path_prefix: /a//b }, respond: {} }\n  \
             - { name: d, match: { path_prefix: /caf%C3%A9 }, respond: {} }\n  \
             - { name: e, match: { path_prefix: /x%2 }, respond: {} }\n  \
             - { name: f, match: { path: / }, respond: {} }\n",
        );
        assert!(w.is_empty(), "{w:#?}");
    }
}
