//! Property tests: lookup equals a naive linear scan, and `shadowed` routes are unreachable.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use regex::Regex;
use strait_router::{shadowed, Match, PathSpec, Request, RouteSpec, Router, ValueMatch};

// === reference matcher: obviously correct, slow, allocating ===

/// Normalises a request host: drop the port, bracket bare IPv6, lowercase.
fn ref_host(host: &str) -> String {
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host[..=end].to_string(),
            None => host.to_string(),
        }
    } else {
        match host.matches(':').count() {
            0 => host.to_string(),
            1 => host.split(':').next().unwrap().to_string(),
            _ => format!("[{host}]"),
        }
    };
    name.to_ascii_lowercase()
}

fn ref_host_matches(patterns: &[String], host: &str) -> bool {
    if patterns.is_empty() || patterns.iter().any(|p| p == "*") {
        return true;
    }
    let host = ref_host(host);
    if host.len() > 256 {
        return false;
    }
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => {
                let suffix = format!(".{suffix}");
                host.ends_with(&suffix) && host.len() > suffix.len()
            }
            None => p == host,
        }
    })
}

fn full(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).unwrap()
}

fn template_regex(template: &str) -> Regex {
    let parts: Vec<String> = template
        .split('/')
        .map(|seg| {
            if seg.starts_with("{*") {
                ".*".to_string()
            } else if seg.starts_with('{') {
                "[^/]+".to_string()
            } else {
                regex::escape(seg)
            }
        })
        .collect();
    full(&parts.join("/"))
}

/// Whether the path matches, and the prefix length to report.
fn ref_path(spec: &PathSpec, path: &str) -> Option<usize> {
    match spec {
        PathSpec::Any => Some(0),
        PathSpec::Exact(e) => (path == e).then_some(0),
        PathSpec::Prefix(p) => path.starts_with(p.as_str()).then_some(p.len()),
        PathSpec::Template(t) => template_regex(t).is_match(path).then_some(0),
        PathSpec::Regex(r) => full(r).is_match(path).then_some(0),
    }
}

fn ref_values(m: &ValueMatch, values: &[String]) -> bool {
    match m {
        ValueMatch::Present(p) => values.is_empty() != *p,
        ValueMatch::Exact(e) => values.iter().any(|v| v == e),
        ValueMatch::Regex(r) => values.iter().any(|v| full(r).is_match(v)),
    }
}

/// An owned request, so strategies can generate it.
#[derive(Debug, Clone)]
struct Req {
    host: String,
    path: String,
    query: Option<String>,
    method: Method,
    headers: Vec<(&'static str, &'static str)>,
}

impl Req {
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in &self.headers {
            map.append(*n, HeaderValue::from_static(v));
        }
        map
    }

    fn lookup(&self, router: &Router) -> Option<Match> {
        let headers = self.header_map();
        router.lookup(&Request {
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            method: &self.method,
            headers: &headers,
            client_uris: &[],
        })
    }
}

fn ref_matches(spec: &RouteSpec, req: &Req) -> Option<usize> {
    let header_values = |name: &HeaderName| -> Vec<String> {
        req.headers
            .iter()
            .filter(|(n, _)| *n == name.as_str())
            .map(|(_, v)| v.to_string())
            .collect()
    };
    let query_values = |name: &str| -> Vec<String> {
        let query = req.query.clone().unwrap_or_default();
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .collect()
    };
    let ok = ref_host_matches(&spec.hosts, &req.host)
        && (spec.methods.is_empty() || spec.methods.contains(&req.method))
        && spec
            .headers
            .iter()
            .all(|(n, m)| ref_values(m, &header_values(n)))
        && spec
            .query
            .iter()
            .all(|(n, m)| ref_values(m, &query_values(n)));
    if ok {
        ref_path(&spec.path, &req.path)
    } else {
        None
    }
}

fn ref_order(specs: &[RouteSpec]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(specs[i].priority), i));
    order
}

fn ref_lookup(specs: &[RouteSpec], req: &Req) -> Option<Match> {
    ref_order(specs).into_iter().find_map(|index| {
        ref_matches(&specs[index], req).map(|prefix_len| Match { index, prefix_len })
    })
}

// === strategies ===

fn value_match() -> impl Strategy<Value = ValueMatch> {
    prop_oneof![
        select(vec!["1", "2", ""]).prop_map(|s| ValueMatch::Exact(s.into())),
        select(vec!["[12]", "1|3", ".*"]).prop_map(|s| ValueMatch::Regex(s.into())),
        any::<bool>().prop_map(ValueMatch::Present),
    ]
}

fn path_spec() -> impl Strategy<Value = PathSpec> {
    let s = |v: Vec<&'static str>| select(v).prop_map(String::from);
    prop_oneof![
        Just(PathSpec::Any),
        s(vec!["", "/", "/a", "/a/", "/ab", "/a/b", "/b"]).prop_map(PathSpec::Prefix),
        s(vec!["/", "/a", "/a/b", "/ab", "/b/", ""]).prop_map(PathSpec::Exact),
        s(vec![
            "/a/{x}", "/{x}/b", "/a/{*r}", "/{x}", "/a/{x}/b", "/{*r}", "/a/"
        ])
        .prop_map(PathSpec::Template),
        // The last three stress the literal prefix that indexes a regex route.
        s(vec![
            "/a.*", "/[ab]+", ".*b", "/a/?", "/a|/b", "/ab+", "(?i)/A"
        ])
        .prop_map(PathSpec::Regex),
    ]
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    let host = select(vec![
        "a.com", "B.com", "x.a.com", "*.a.com", "*.com", "*", "[::1]",
    ]);
    let methods = subsequence(vec![Method::GET, Method::POST, Method::PUT], 0..=2);
    let header = (select(vec!["x-a", "x-b"]), value_match())
        .prop_map(|(n, m)| (HeaderName::from_static(n), m));
    let query = (select(vec!["q", "r"]), value_match()).prop_map(|(n, m)| (n.to_string(), m));
    (
        prop::collection::vec(host.prop_map(String::from), 0..3),
        path_spec(),
        methods,
        prop::collection::vec(header, 0..2),
        prop::collection::vec(query, 0..2),
        select(vec![0, 0, 0, 1, -1]),
    )
        .prop_map(
            |(hosts, path, methods, headers, query, priority)| RouteSpec {
                hosts,
                path,
                methods,
                headers,
                query,
                client_uris: Vec::new(),
                priority,
            },
        )
}

fn request() -> impl Strategy<Value = Req> {
    let host = select(vec![
        "a.com",
        "A.com:80",
        "x.a.com",
        ".a.com",
        "y.X.a.com",
        "b.com",
        "com",
        "[::1]:80",
        "c.org",
        "",
    ]);
    let path = (
        prop::collection::vec(select(vec!["a", "b", "ab", ""]), 0..4),
        any::<bool>(),
    )
        .prop_map(|(segments, rooted)| match (segments.is_empty(), rooted) {
            (true, true) => "/".to_string(),
            (_, true) => format!("/{}", segments.join("/")),
            (_, false) => segments.join("/"),
        });
    let query = prop::option::of(
        prop::collection::vec(
            select(vec!["q=1", "q=2", "r=1", "q", "r=", "x=3", ""]),
            0..3,
        )
        .prop_map(|pairs| pairs.join("&")),
    );
    let method = select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]);
    let headers = prop::collection::vec(
        (
            select(vec!["x-a", "x-b", "x-c"]),
            select(vec!["1", "2", "3", ""]),
        ),
        0..3,
    );
    (host, path, query, method, headers).prop_map(|(host, path, query, method, headers)| Req {
        host: host.into(),
        path,
        query,
        method,
        headers,
    })
}

/// A request built to satisfy `spec` where that is easy, so that shadow checks exercise the
/// routes they are about rather than only random misses.
fn request_for(spec: &RouteSpec) -> Req {
    let host = match spec.hosts.first().map(String::as_str) {
        None | Some("*") => "any.org".to_string(),
        Some(h) => h.replace("*.", "z."),
    };
    let path = match &spec.path {
        PathSpec::Any => "/zz".to_string(),
        PathSpec::Exact(e) => e.clone(),
        PathSpec::Prefix(p) => format!("{p}x"),
        PathSpec::Template(t) => t.replace("{x}", "v").replace("{*r}", "r/s"),
        PathSpec::Regex(_) => "/ab".to_string(),
    };
    let value = |m: &ValueMatch| match m {
        ValueMatch::Exact(e) => Some(e.clone()),
        ValueMatch::Regex(_) | ValueMatch::Present(true) => Some("1".to_string()),
        ValueMatch::Present(false) => None,
    };
    let headers = spec
        .headers
        .iter()
        .filter_map(|(n, m)| {
            let v: &'static str = match value(m)?.as_str() {
                "1" => "1",
                "2" => "2",
                _ => "",
            };
            Some((if n == "x-a" { "x-a" } else { "x-b" }, v))
        })
        .collect();
    let query: Vec<String> = spec
        .query
        .iter()
        .filter_map(|(n, m)| Some(format!("{n}={}", value(m)?)))
        .collect();
    Req {
        host,
        path,
        query: Some(query.join("&")),
        method: spec.methods.first().cloned().unwrap_or(Method::GET),
        headers,
    }
}

// === properties ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lookup_equals_linear_scan(
        specs in prop::collection::vec(route_spec(), 0..12),
        requests in prop::collection::vec(request(), 1..16),
    ) {
        let router = Router::build(&specs).expect("generated routes compile");
        let order = ref_order(&specs);
        prop_assert_eq!(router.order(), order.as_slice());
        let derived = specs.iter().map(request_for);
        for req in requests.into_iter().chain(derived) {
            prop_assert_eq!(req.lookup(&router), ref_lookup(&specs, &req), "{:?}", req);
        }
    }

    #[test]
    fn shadowed_routes_are_unreachable(
        specs in prop::collection::vec(route_spec(), 1..10),
        requests in prop::collection::vec(request(), 1..24),
    ) {
        let router = Router::build(&specs).expect("generated routes compile");
        let samples: Vec<Req> = requests.into_iter().chain(specs.iter().map(request_for)).collect();
        for shadow in shadowed(&specs) {
            for req in &samples {
                if ref_matches(&specs[shadow.index], req).is_some() {
                    prop_assert!(
                        ref_matches(&specs[shadow.by], req).is_some(),
                        "{:?} reaches {} but not {}", req, shadow.index, shadow.by
                    );
                }
                prop_assert_ne!(req.lookup(&router).map(|m| m.index), Some(shadow.index));
            }
        }
    }
}
