//! Unit tests for route matching and shadow detection, named for the behaviour they pin down.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::{
    shadowed, Match, PathSpec, Request, RouteSpec, Router, RouterError, Shadow, ValueMatch,
};

fn route(hosts: &[&str], path: PathSpec) -> RouteSpec {
    RouteSpec {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        path,
        ..RouteSpec::default()
    }
}

fn prefix(p: &str) -> PathSpec {
    PathSpec::Prefix(p.into())
}

fn router(specs: &[RouteSpec]) -> Router {
    Router::build(specs).expect("routes compile")
}

/// Looks up a request with the given host and `path?query`, GET and no headers.
fn find(router: &Router, host: &str, target: &str) -> Option<usize> {
    find_with(router, host, target, &Method::GET, &HeaderMap::new()).map(|m| m.index)
}

fn find_with(
    router: &Router,
    host: &str,
    target: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Match> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    router.lookup(&Request {
        host,
        path,
        query,
        method,
        headers,
        client_uris: &[],
    })
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

// === hosts ===

#[test]
fn host_match_ignores_case() {
    let r = router(&[route(&["API.Example.com"], PathSpec::Any)]);
    assert_eq!(find(&r, "api.EXAMPLE.com", "/"), Some(0));
}

#[test]
fn host_port_is_ignored() {
    let r = router(&[route(&["api.example.com"], PathSpec::Any)]);
    assert_eq!(find(&r, "api.example.com:8443", "/"), Some(0));
}

#[test]
fn host_pattern_with_port_is_rejected() {
    let err = Router::build(&[route(&["a.com:80"], PathSpec::Any)]).unwrap_err();
    assert!(
        matches!(err, RouterError::BadHost { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn ipv6_host_with_port_matches_bracketed_pattern() {
    let r = router(&[route(&["[::1]"], PathSpec::Any)]);
    assert_eq!(find(&r, "[::1]:80", "/"), Some(0));
    assert_eq!(find(&r, "[::1]", "/"), Some(0));
    assert_eq!(find(&r, "[::2]:80", "/"), None);
}

#[test]
fn bare_ipv6_pattern_matches_bracketed_host() {
    let r = router(&[route(&["FE80::1"], PathSpec::Any)]);
    assert_eq!(find(&r, "[fe80::1]:443", "/"), Some(0));
    assert_eq!(find(&r, "fe80::1", "/"), Some(0));
}

#[test]
fn wildcard_host_needs_a_label() {
    let r = router(&[route(&["*.example.com"], PathSpec::Any)]);
    assert_eq!(find(&r, "example.com", "/"), None);
    assert_eq!(find(&r, ".example.com", "/"), None);
    assert_eq!(find(&r, "a.example.com", "/"), Some(0));
}

#[test]
fn wildcard_host_matches_deeper_labels() {
    let r = router(&[route(&["*.example.com"], PathSpec::Any)]);
    assert_eq!(find(&r, "a.b.Example.com:80", "/"), Some(0));
    assert_eq!(find(&r, "a.example.org", "/"), None);
}

#[test]
fn star_or_empty_hosts_match_any_host() {
    let r = router(&[
        route(&["a.com", "*"], prefix("/a")),
        route(&[], PathSpec::Any),
    ]);
    assert_eq!(find(&r, "zzz", "/a"), Some(0));
    assert_eq!(find(&r, "", "/b"), Some(1));
}

#[test]
fn wildcard_in_the_middle_is_rejected() {
    for bad in ["a.*.com", "*example.com", "*.", ""] {
        let err = Router::build(&[route(&[bad], PathSpec::Any)]).unwrap_err();
        assert_eq!(err.index(), Some(0), "{bad:?}");
    }
}

#[test]
fn overlong_host_reaches_only_any_host_routes() {
    let long = "a".repeat(300) + ".example.com";
    let r = router(&[
        route(&["*.example.com"], PathSpec::Any),
        route(&[], PathSpec::Any),
    ]);
    assert_eq!(find(&r, &long, "/"), Some(1));
}

// === order ===

#[test]
fn first_written_route_wins_on_tie() {
    let r = router(&[route(&[], prefix("/")), route(&[], prefix("/api"))]);
    assert_eq!(find(&r, "x", "/api/users"), Some(0));
}

#[test]
fn priority_overrides_order() {
    let mut specific = route(&[], prefix("/api"));
    specific.priority = 10;
    let r = router(&[route(&[], prefix("/")), specific]);
    assert_eq!(find(&r, "x", "/api/users"), Some(1));
    assert_eq!(find(&r, "x", "/other"), Some(0));
}

#[test]
fn earlier_any_host_route_beats_later_exact_host() {
    let r = router(&[route(&[], prefix("/")), route(&["a.com"], prefix("/"))]);
    assert_eq!(find(&r, "a.com", "/x"), Some(0));
}

#[test]
fn order_lists_priority_then_written() {
    let mut specs: Vec<RouteSpec> = (0..4).map(|_| route(&[], PathSpec::Any)).collect();
    specs[2].priority = 5;
    specs[3].priority = -1;
    let r = router(&specs);
    assert_eq!(r.order(), &[2, 0, 1, 3]);
    assert_eq!(r.len(), 4);
    assert!(!r.is_empty());
}

#[test]
fn empty_router_matches_nothing() {
    let r = router(&[]);
    assert!(r.is_empty());
    assert_eq!(find(&r, "a.com", "/"), None);
}

// === paths ===

#[test]
fn prefix_is_a_plain_string_prefix() {
    let r = router(&[route(&[], prefix("/v1"))]);
    assert_eq!(find(&r, "x", "/v1x"), Some(0));
    assert_eq!(find(&r, "x", "/v"), None);
}

#[test]
fn prefix_len_reports_matched_prefix() {
    let r = router(&[route(&[], prefix("/api/")), route(&[], PathSpec::Any)]);
    let hit = find_with(&r, "x", "/api/users", &Method::GET, &HeaderMap::new());
    assert_eq!(
        hit,
        Some(Match {
            index: 0,
            prefix_len: 5
        })
    );
    let other = find_with(&r, "x", "/else", &Method::GET, &HeaderMap::new());
    assert_eq!(
        other,
        Some(Match {
            index: 1,
            prefix_len: 0
        })
    );
}

#[test]
fn exact_path_needs_whole_path() {
    let r = router(&[route(&[], PathSpec::Exact("/health".into()))]);
    assert_eq!(find(&r, "x", "/health"), Some(0));
    assert_eq!(find(&r, "x", "/health/"), None);
    assert_eq!(find(&r, "x", "/healt"), None);
}

#[test]
fn template_segment_excludes_slash() {
    let r = router(&[route(&[], PathSpec::Template("/users/{id}/posts".into()))]);
    assert_eq!(find(&r, "x", "/users/42/posts"), Some(0));
    assert_eq!(find(&r, "x", "/users/4/2/posts"), None);
}

#[test]
fn template_param_needs_non_empty_segment() {
    let r = router(&[route(&[], PathSpec::Template("/users/{id}".into()))]);
    assert_eq!(find(&r, "x", "/users/"), None);
    assert_eq!(find(&r, "x", "/users/7"), Some(0));
}

#[test]
fn template_rest_matches_empty_remainder() {
    let r = router(&[route(&[], PathSpec::Template("/static/{*path}".into()))]);
    assert_eq!(find(&r, "x", "/static/"), Some(0));
    assert_eq!(find(&r, "x", "/static/css/a.css"), Some(0));
    assert_eq!(find(&r, "x", "/static"), None);
}

#[test]
fn template_braces_must_enclose_a_whole_segment() {
    for bad in [
        "/files/{name}.json",
        "/a/{*rest}/b",
        "/a/{}",
        "users/{id}",
        "/a/{id}/{id}",
    ] {
        let err = Router::build(&[route(&[], PathSpec::Template(bad.into()))]).unwrap_err();
        assert!(
            matches!(err, RouterError::BadTemplate { index: 0, .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn regex_path_must_match_whole_path() {
    let r = router(&[route(&[], PathSpec::Regex("/v[0-9]+".into()))]);
    assert_eq!(find(&r, "x", "/v12"), Some(0));
    assert_eq!(find(&r, "x", "/v12/x"), None);
    assert_eq!(find(&r, "x", "/a/v12"), None);
}

#[test]
fn regex_alternation_is_anchored_as_a_whole() {
    let r = router(&[route(&[], PathSpec::Regex("/a|/b".into()))]);
    assert_eq!(find(&r, "x", "/a"), Some(0));
    assert_eq!(find(&r, "x", "/ab"), None);
}

#[test]
fn regex_literal_prefix_never_excludes_a_match() {
    use crate::path::regex_literal_prefix as prefix;
    assert_eq!(prefix("/legacy/users/[0-9]+"), "/legacy/users/");
    // The quantified byte is optional or repeated, so it is not part of the prefix.
    assert_eq!(prefix("/ab+"), "/a");
    assert_eq!(prefix("/a/?"), "/a");
    assert_eq!(prefix("/a{2}"), "/");
    // Alternation, flags, classes and escapes end the prefix or void it.
    assert_eq!(prefix("/a|/b"), "");
    assert_eq!(prefix("/x/(a|b)"), "");
    assert_eq!(prefix("(?i)/a"), "");
    assert_eq!(prefix("/a.b"), "/a");
    assert_eq!(prefix(r"/a\.b"), "/a");
}

#[test]
fn case_insensitive_regex_is_not_indexed_by_its_case() {
    let r = router(&[route(&[], PathSpec::Regex("(?i)/Legacy/[0-9]+".into()))]);
    assert_eq!(find(&r, "x", "/legacy/12"), Some(0));
    assert_eq!(find(&r, "x", "/LEGACY/12"), Some(0));
}

#[test]
fn bad_regex_reports_route_index() {
    let specs = [
        route(&[], PathSpec::Any),
        route(&[], PathSpec::Regex("(".into())),
    ];
    let err = Router::build(&specs).unwrap_err();
    assert!(
        matches!(err, RouterError::BadRegex { index: 1, .. }),
        "{err}"
    );
    let unbalanced = [route(&[], PathSpec::Regex("a)(b".into()))];
    assert!(Router::build(&unbalanced).is_err());
}

// === methods, headers, query ===

#[test]
fn method_mismatch_falls_through_to_next_route() {
    let mut post = route(&[], prefix("/"));
    post.methods = vec![Method::POST, Method::PUT];
    let r = router(&[post, route(&[], prefix("/"))]);
    let none = HeaderMap::new();
    assert_eq!(
        find_with(&r, "x", "/", &Method::PUT, &none).map(|m| m.index),
        Some(0)
    );
    assert_eq!(
        find_with(&r, "x", "/", &Method::GET, &none).map(|m| m.index),
        Some(1)
    );
}

#[test]
fn header_matches_if_any_value_matches() {
    let mut spec = route(&[], PathSpec::Any);
    spec.headers = vec![(
        HeaderName::from_static("x-env"),
        ValueMatch::Exact("canary".into()),
    )];
    let r = router(&[spec]);
    let hit = headers(&[("x-env", "prod"), ("x-env", "canary")]);
    let miss = headers(&[("x-env", "Canary")]);
    assert!(find_with(&r, "x", "/", &Method::GET, &hit).is_some());
    assert!(find_with(&r, "x", "/", &Method::GET, &miss).is_none());
}

#[test]
fn header_present_false_requires_absence() {
    let mut spec = route(&[], PathSpec::Any);
    spec.headers = vec![(
        HeaderName::from_static("x-debug"),
        ValueMatch::Present(false),
    )];
    let r = router(&[spec]);
    assert!(find_with(&r, "x", "/", &Method::GET, &HeaderMap::new()).is_some());
    let with = headers(&[("x-debug", "")]);
    assert!(find_with(&r, "x", "/", &Method::GET, &with).is_none());
}

#[test]
fn header_regex_is_full_match() {
    let mut spec = route(&[], PathSpec::Any);
    spec.headers = vec![(
        HeaderName::from_static("x-v"),
        ValueMatch::Regex("[0-9]+".into()),
    )];
    let r = router(&[spec]);
    assert!(find_with(&r, "x", "/", &Method::GET, &headers(&[("x-v", "42")])).is_some());
    assert!(find_with(&r, "x", "/", &Method::GET, &headers(&[("x-v", "42a")])).is_none());
}

#[test]
fn query_matches_raw_values() {
    let mut spec = route(&[], PathSpec::Any);
    spec.query = vec![("q".into(), ValueMatch::Exact("a%20b".into()))];
    let r = router(&[spec]);
    assert_eq!(find(&r, "x", "/?x=1&q=a%20b"), Some(0));
    assert_eq!(find(&r, "x", "/?q=a b"), None);
    assert_eq!(find(&r, "x", "/"), None);
}

#[test]
fn query_param_without_equals_has_empty_value() {
    let mut spec = route(&[], PathSpec::Any);
    spec.query = vec![
        ("flag".into(), ValueMatch::Exact(String::new())),
        ("off".into(), ValueMatch::Present(false)),
    ];
    let r = router(&[spec]);
    assert_eq!(find(&r, "x", "/?flag"), Some(0));
    assert_eq!(find(&r, "x", "/?flag&off=1"), None);
}

#[test]
fn router_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
}

// === shadowing ===

#[test]
fn shorter_prefix_shadows_longer_prefix() {
    let specs = [route(&[], prefix("/api")), route(&[], prefix("/api/v1"))];
    assert_eq!(shadowed(&specs), vec![Shadow { index: 1, by: 0 }]);
}

#[test]
fn slash_prefix_shadows_template_but_not_regex() {
    let specs = [
        route(&[], prefix("/")),
        route(&[], PathSpec::Template("/u/{id}".into())),
        route(&[], PathSpec::Regex("/r".into())),
    ];
    assert_eq!(shadowed(&specs), vec![Shadow { index: 1, by: 0 }]);
}

#[test]
fn earlier_route_with_headers_shadows_nothing_without_them() {
    let mut guarded = route(&[], prefix("/"));
    guarded.headers = vec![(HeaderName::from_static("x-env"), ValueMatch::Present(true))];
    let mut later = route(&[], prefix("/a"));
    assert!(shadowed(&[guarded.clone(), later.clone()]).is_empty());
    later.headers = vec![(
        HeaderName::from_static("x-env"),
        ValueMatch::Exact("c".into()),
    )];
    assert_eq!(
        shadowed(&[guarded, later]),
        vec![Shadow { index: 1, by: 0 }]
    );
}

#[test]
fn shadowing_follows_priority() {
    let mut later = route(&[], prefix("/"));
    later.priority = 1;
    let specs = [route(&[], prefix("/a")), later];
    assert_eq!(shadowed(&specs), vec![Shadow { index: 0, by: 1 }]);
}

#[test]
fn wildcard_host_shadows_exact_subdomain_only() {
    let specs = [
        route(&["*.example.com"], PathSpec::Any),
        route(&["a.example.com"], PathSpec::Any),
        route(&["example.com"], PathSpec::Any),
        route(&["*.b.example.com"], PathSpec::Any),
    ];
    let found = shadowed(&specs);
    assert_eq!(
        found,
        vec![Shadow { index: 1, by: 0 }, Shadow { index: 3, by: 0 }]
    );
}

#[test]
fn method_subset_is_shadowed() {
    let mut earlier = route(&[], PathSpec::Any);
    earlier.methods = vec![Method::GET, Method::POST];
    let mut later = route(&[], PathSpec::Any);
    later.methods = vec![Method::GET];
    let any_method = route(&[], PathSpec::Any);
    let found = shadowed(&[earlier, later, any_method]);
    assert_eq!(found, vec![Shadow { index: 1, by: 0 }]);
}

#[test]
fn extension_method_matches_only_routes_listing_it() {
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let mut listed = route(&[], prefix("/"));
    listed.methods = vec![Method::GET, purge.clone()];
    let mut standard = route(&[], prefix("/"));
    standard.methods = vec![Method::GET, Method::POST];
    let r = router(&[standard, listed]);
    let none = HeaderMap::new();
    assert_eq!(
        find_with(&r, "x", "/", &purge, &none).map(|m| m.index),
        Some(1)
    );
    let other = Method::from_bytes(b"BAN").unwrap();
    assert_eq!(find_with(&r, "x", "/", &other, &none), None);
}

fn find_as(router: &Router, uris: &[&str]) -> Option<usize> {
    let uris: Vec<Box<str>> = uris.iter().map(|u| (*u).into()).collect();
    router
        .lookup(&Request {
            host: "a.com",
            path: "/x",
            query: None,
            method: &Method::GET,
            headers: &HeaderMap::new(),
            client_uris: &uris,
        })
        .map(|m| m.index)
}

#[test]
fn client_uri_conditions_match_exact_ids_and_prefixes_and_never_without_a_certificate() {
    let mut web = route(&[], PathSpec::Any);
    web.client_uris = vec!["spiffe://example.org/ns/prod/sa/web".into()];
    let mut batch = route(&[], PathSpec::Any);
    batch.client_uris = vec!["spiffe://example.org/ns/batch/*".into()];
    let public = route(&[], PathSpec::Any);
    let r = router(&[web, batch, public]);
    assert_eq!(
        find_as(&r, &["spiffe://example.org/ns/prod/sa/web"]),
        Some(0)
    );
    // Another SAN first: any of the certificate's URIs may match.
    assert_eq!(
        find_as(&r, &["urn:x", "spiffe://example.org/ns/batch/sa/job"]),
        Some(1)
    );
    // Exact means exact: a longer ID is not the same workload.
    assert_eq!(
        find_as(&r, &["spiffe://example.org/ns/prod/sa/web2"]),
        Some(2)
    );
    assert_eq!(
        find_as(&r, &["spiffe://example.org/ns/batchx/sa/a"]),
        Some(2)
    );
    assert_eq!(find_as(&r, &[]), Some(2));
}

#[test]
fn a_route_limited_to_client_ids_shadows_only_routes_limited_to_ids_it_admits() {
    let mut ns = route(&[], PathSpec::Any);
    ns.client_uris = vec!["spiffe://example.org/ns/prod/*".into()];
    let mut one = route(&[], PathSpec::Any);
    one.client_uris = vec!["spiffe://example.org/ns/prod/sa/web".into()];
    let open = route(&[], PathSpec::Any);
    assert_eq!(shadowed(&[ns.clone(), one.clone()]).len(), 1);
    assert!(shadowed(&[one.clone(), ns.clone()]).is_empty());
    assert!(shadowed(&[ns, open.clone()]).is_empty());
    assert_eq!(shadowed(&[open, one]).len(), 1);
}
