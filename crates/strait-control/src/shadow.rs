//! `validate` warnings for routes that can never match, decided by the router's own (property-tested) coverage check.

use strait_config::{Config, Diagnostic};

use crate::compile::route_spec;

/// One warning per route that an earlier-tried route fully covers on every listener it applies to.
pub fn shadow_warnings(config: &Config) -> Vec<Diagnostic> {
    let specs: Vec<_> = config.routes.iter().map(route_spec).collect();
    let loc = &config.locations;
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut reported = vec![false; specs.len()];
    for s in strait_router::shadowed(&specs) {
        let (a, b) = (&config.routes[s.by], &config.routes[s.index]);
        // The earlier route only takes the later one's traffic on listeners it also applies to.
        let covers_listeners = match (&a.listeners, &b.listeners) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(la), Some(lb)) => lb.iter().all(|l| la.contains(l)),
        };
        if !covers_listeners || reported[s.index] {
            continue;
        }
        reported[s.index] = true;
        let line = loc.route(s.by).0;
        out.push(loc.diag(
            loc.route(s.index),
            format!(
                "route `{}` is never matched: route `{}` (line {line}) is tried first and matches every request it would",
                b.name, a.name
            ),
        ));
    }
    out.extend(crate::canonical::canonical_path_warnings(config));
    out.sort_by_key(|d| (d.line, d.column));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(routes: &str) -> Vec<Diagnostic> {
        let yaml = format!("listeners:\n  - name: web\n    listen: 127.0.0.1:1\n{routes}");
        let loaded = strait_config::parse("t.yaml", &yaml, None).expect("valid config");
        shadow_warnings(&loaded.config)
    }

    #[test]
    fn shadowed_route_is_reported_at_its_line() {
        let w = warnings(
            "routes:\n  - { name: all, match: { path_prefix: / }, respond: {} }\n  - { name: api, match: { path_prefix: /api, methods: [GET] }, respond: {} }\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].line, w[0].column), (6, 5));
        assert!(w[0]
            .message
            .contains("route `api` is never matched: route `all` (line 5)"));
    }

    #[test]
    fn priority_changes_which_route_shadows() {
        let w = warnings(
            "routes:\n  - { name: all, respond: {} }\n  - { name: api, priority: 10, match: { path_prefix: /api }, respond: {} }\n",
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn narrower_earlier_route_does_not_shadow() {
        let w = warnings(
            "routes:\n  - { name: a, match: { host: \"*.example.com\", headers: { x-env: canary } }, respond: {} }\n  - { name: b, match: { host: api.example.com }, respond: {} }\n  - { name: c, match: { host: api.example.com, headers: { x-env: canary }, path: /x }, respond: {} }\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].message.contains("route `c`"));
    }

    #[test]
    fn a_route_limited_to_other_listeners_does_not_shadow() {
        let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:1\n  - name: api\n    listen: 127.0.0.1:2\nroutes:\n  - { name: all, listeners: [api], respond: {} }\n  - { name: x, match: { path_prefix: /x }, respond: {} }\n";
        let loaded = strait_config::parse("t.yaml", yaml, None).expect("valid config");
        assert!(shadow_warnings(&loaded.config).is_empty());
    }
}
