//! Validation tests: each rule of the schema, its position, and that all errors are reported.

use std::time::Duration;

use http::StatusCode;

use crate::*;

const LISTENER: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n";

fn ok(yaml: &str) -> Loaded {
    match parse("t.yaml", yaml, None) {
        Ok(l) => l,
        Err(e) => panic!("unexpected errors:\n{e}\nin:\n{yaml}"),
    }
}

/// Errors as `LINE:COL: message`.
fn errors(yaml: &str) -> Vec<String> {
    match parse("t.yaml", yaml, None) {
        Ok(_) => panic!("expected errors in:\n{yaml}"),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        }
    }
}

fn one_error(yaml: &str) -> String {
    let errs = errors(yaml);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

fn with_listener(rest: &str) -> String {
    format!("{LISTENER}{rest}")
}

#[test]
fn defaults_are_filled_in() {
    let l = ok(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"127.0.0.1:9000\"]\n    health_check: {}\nroutes:\n  - name: r\n    upstream: u\n",
    ));
    let c = &l.config;
    assert_eq!(c.server.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.server.worker_threads, 0);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9901");
    let li = &c.listeners[0];
    assert!(li.protocols.http1 && li.protocols.h2);
    assert_eq!(li.limits.max_request_headers, 64 * 1024);
    assert_eq!(li.limits.max_request_line, 8 * 1024);
    assert_eq!(li.limits.max_headers, 100);
    assert_eq!(li.limits.header_read_timeout, Duration::from_secs(10));
    assert_eq!(li.limits.idle_timeout, Duration::from_secs(300));
    assert_eq!(li.limits.max_connections, 10_000);
    assert_eq!(li.limits.max_request_body, 0);
    assert_eq!(li.limits.send_timeout, Duration::from_secs(60));
    assert_eq!(li.limits.max_concurrent_streams, 256);
    assert_eq!(li.limits.ping_interval, Duration::from_secs(60));
    assert_eq!(li.limits.ping_timeout, Duration::from_secs(20));
    let u = &c.upstreams[0];
    assert_eq!(u.protocol, Protocol::Http1);
    assert_eq!(u.load_balancer, LoadBalancer::RoundRobin);
    assert_eq!(u.hash_on, None);
    assert_eq!(u.timeouts.connect, Duration::from_secs(2));
    assert_eq!(u.timeouts.request, Duration::from_secs(15));
    assert_eq!(u.timeouts.idle, Duration::from_secs(60));
    assert_eq!(u.pool.max_idle_per_endpoint, 256);
    assert_eq!(u.pool.idle_timeout, Duration::from_secs(90));
    assert_eq!(u.tls, None);
    let hc = u.health_check.as_ref().unwrap();
    assert_eq!(
        hc.kind,
        HealthCheckKind::Http {
            path: "/".into(),
            expected_status: vec![]
        }
    );
    assert_eq!(hc.interval, Duration::from_secs(5));
    assert_eq!(hc.timeout, Duration::from_secs(1));
    assert_eq!((hc.healthy_threshold, hc.unhealthy_threshold), (2, 3));
    let r = &c.routes[0];
    assert_eq!(r.priority, 0);
    assert_eq!(r.listeners, None);
    assert_eq!(r.matcher, RouteMatch::default());
    assert!(r.request_headers.is_empty() && r.response_headers.is_empty());
}

#[test]
fn routes_and_upstreams_may_be_missing_or_empty() {
    ok(LISTENER);
    ok(&with_listener("routes: []\nupstreams: []\n"));
    ok(&with_listener("routes:\nupstreams:\n"));
}

#[test]
fn at_least_one_listener_is_required() {
    assert!(one_error("routes: []\n").contains("at least one listener"));
    assert_eq!(
        one_error("listeners: []\n"),
        "1:12: at least one listener is required under `listeners:`"
    );
}

#[test]
fn missing_upstream_is_reported_at_the_routes_upstream_node() {
    let e = one_error(&with_listener(
        "routes:\n  - name: api\n    upstream: users\n",
    ));
    assert_eq!(
        e,
        "6:15: unknown upstream `users` (no upstreams are defined)"
    );
}

#[test]
fn unknown_upstream_lists_the_defined_ones() {
    let e = one_error(&with_listener(
        "upstreams:\n  - {name: users, endpoints: [\"h:1\"]}\n  - {name: orders, endpoints: [\"h:2\"]}\nroutes:\n  - {name: api, upstream: userz}\n",
    ));
    assert!(
        e.ends_with("unknown upstream `userz` (defined: orders, users)"),
        "{e}"
    );
}

#[test]
fn two_actions_are_rejected_at_the_second() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    respond: {status: 200}\n    redirect: {path: /x}\n",
    ));
    assert!(
        e.starts_with("7:15: route `r` has more than one action"),
        "{e}"
    );
    assert!(e.contains("`respond` and `redirect`"), "{e}");
}

#[test]
fn a_route_needs_an_action() {
    let e = one_error(&with_listener("routes:\n  - name: r\n"));
    assert_eq!(
        e,
        "5:5: route `r` has no action: set one of upstream, upstreams, respond or redirect"
    );
}

#[test]
fn duplicate_names_are_reported_at_the_second() {
    let errs = errors(
        "listeners:\n  - {name: web, listen: \"127.0.0.1:1\"}\n  - {name: web, listen: \"127.0.0.1:2\"}\nupstreams:\n  - {name: u, endpoints: [\"h:1\"]}\n  - {name: u, endpoints: [\"h:1\"]}\nroutes:\n  - {name: r, upstream: u}\n  - {name: r, upstream: u}\n",
    );
    assert_eq!(
        errs,
        vec![
            "3:12: duplicate listener name `web` (first defined at line 2)",
            "6:12: duplicate upstream name `u` (first defined at line 5)",
            "9:12: duplicate route name `r` (first defined at line 8)",
        ]
    );
}

#[test]
fn bare_number_duration_is_rejected_with_a_hint() {
    let e = one_error(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"h:1\"]\n    timeouts: { request: 15 }\n",
    ));
    assert!(
        e.starts_with("7:26: timeouts.request: duration `15` has no unit"),
        "{e}"
    );
}

#[test]
fn unknown_duration_unit_is_rejected() {
    let e = one_error(
        "server: { drain_timeout: 2x }\nlisteners: [{name: web, listen: \"127.0.0.1:1\"}]\n",
    );
    assert_eq!(
        e,
        "1:26: drain_timeout: invalid duration `2x`: unknown unit `x` (expected ms, s, m or h)"
    );
}

#[test]
fn bad_regex_is_reported_with_its_reason() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { path_regex: \"/a[\" }\n    respond: {}\n",
    ));
    assert!(e.starts_with("6:26: invalid regex `/a[`:"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn header_regex_must_compile() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { headers: { x-a: { regex: \"(\" } } }\n    respond: {}\n",
    ));
    assert!(e.contains("invalid regex `(`"), "{e}");
}

#[test]
fn several_errors_are_all_reported_in_source_order() {
    let yaml = "server: { drain_timeout: 15 }\nlisteners:\n  - name: web\n    listen: localhost:80\nroutes:\n  - name: r\n    match: { methods: [get], path_regex: \"[\" }\n    upstream: nope\nupstreams:\n  - name: u\n    endpoints: [\"h:0\"]\n    load_balancer: fastest\n";
    let errs = errors(yaml);
    let lines: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        ["1:26", "4:13", "7:24", "7:42", "8:15", "11:17", "12:20"],
        "{errs:#?}"
    );
}

#[test]
fn wildcard_and_list_hosts_are_accepted_and_lowercased() {
    let l = ok(&with_listener(
        "routes:\n  - name: r\n    match: { host: [\"*.Example.com\", API.example.com, \"*\"] }\n    respond: {}\n",
    ));
    assert_eq!(
        l.config.routes[0].matcher.hosts,
        ["*.example.com", "api.example.com", "*"]
    );
}

#[test]
fn misplaced_wildcard_host_is_rejected() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { host: \"api.*.com\" }\n    respond: {}\n",
    ));
    assert!(e.starts_with("6:20: invalid host `api.*.com`"), "{e}");
}

#[test]
fn only_one_path_condition_is_allowed() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { path_prefix: /a, path: /b }\n    respond: {}\n",
    ));
    assert!(e.contains("`path` conflicts with `path_prefix`"), "{e}");
}

#[test]
fn path_templates_must_be_well_formed() {
    for bad in [
        "/users/{*rest}/x",
        "/a/{id",
        "/a/x{id}",
        "/{a}/{a}",
        "/{1x}",
        "nope",
    ] {
        let yaml = with_listener(&format!(
            "routes:\n  - name: r\n    match: {{ path_template: \"{bad}\" }}\n    respond: {{}}\n"
        ));
        assert_eq!(errors(&yaml).len(), 1, "{bad}");
    }
    let l = ok(&with_listener(
        "routes:\n  - name: r\n    match: { path_template: \"/users/{id}/{*rest}\" }\n    respond: {}\n",
    ));
    assert_eq!(
        l.config.routes[0].matcher.path,
        PathMatch::Template("/users/{id}/{*rest}".into())
    );
}

#[test]
fn lowercase_method_gets_a_hint() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { methods: [get] }\n    respond: {}\n",
    ));
    assert!(e.contains("write `GET`"), "{e}");
}

#[test]
fn header_and_query_values_take_three_forms() {
    let l = ok(&with_listener(
        "routes:\n  - name: r\n    match:\n      headers: { X-Env: canary, x-id: { regex: \"[0-9]+\" }, x-debug: { present: false }, x-v: 2 }\n      query: { Debug: \"1\", t: { present: true } }\n    respond: {}\n",
    ));
    let m = &l.config.routes[0].matcher;
    assert_eq!(
        m.headers,
        vec![
            ("x-env".to_owned(), ValueMatch::Exact("canary".into())),
            ("x-id".to_owned(), ValueMatch::Regex("[0-9]+".into())),
            ("x-debug".to_owned(), ValueMatch::Present(false)),
            ("x-v".to_owned(), ValueMatch::Exact("2".into())),
        ]
    );
    assert_eq!(
        m.query,
        vec![
            ("Debug".to_owned(), ValueMatch::Exact("1".into())),
            ("t".to_owned(), ValueMatch::Present(true)),
        ]
    );
}

#[test]
fn header_names_must_be_valid() {
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    match: { headers: { \"bad name\": x } }\n    respond: {}\n",
    ));
    assert!(e.contains("not a valid header name"), "{e}");
}

#[test]
fn status_codes_are_range_checked() {
    let errs = errors(&with_listener(
        "routes:\n  - {name: a, respond: {status: 600}}\n  - {name: b, redirect: {status: 200, path: /x}}\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("status must be 100 to 599"), "{}", errs[0]);
    assert!(
        errs[1].contains("one of 301, 302, 303, 307, 308"),
        "{}",
        errs[1]
    );
}

#[test]
fn redirect_defaults_to_302() {
    let l = ok(&with_listener(
        "routes:\n  - {name: a, redirect: {scheme: https, port: 8443}}\n",
    ));
    let RouteAction::Redirect(r) = &l.config.routes[0].action else {
        panic!("expected a redirect");
    };
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.scheme.as_deref(), Some("https"));
    assert_eq!(r.port, Some(8443));
}

#[test]
fn rewrite_needs_an_upstream_and_a_matched_prefix() {
    let errs = errors(&with_listener(
        "routes:\n  - name: a\n    respond: {}\n    rewrite: {path: /x}\n  - name: b\n    match: { path: /x }\n    upstream: u\n    rewrite: { path_prefix: / }\nupstreams: [{name: u, endpoints: [\"h:1\"]}]\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("rewrite is only allowed with an `upstream` action"));
    assert!(errs[1].contains("needs match.path_prefix"));
}

#[test]
fn rewrite_prefix_is_resolved() {
    let l = ok(&with_listener(
        "routes:\n  - name: b\n    match: { path_prefix: /api/ }\n    upstream: u\n    rewrite: { path_prefix: /, host: Internal.svc:8080 }\nupstreams: [{name: u, endpoints: [\"h:1\"]}]\n",
    ));
    let rw = l.config.routes[0].rewrite.as_ref().unwrap();
    assert_eq!(rw.path, Some(PathRewrite::Prefix("/".into())));
    assert_eq!(rw.host.as_deref(), Some("internal.svc:8080"));
}

#[test]
fn route_listeners_must_exist() {
    let e = one_error(&with_listener(
        "routes:\n  - { name: r, listeners: [web, admin], respond: {} }\n",
    ));
    assert!(e.starts_with("5:33: unknown listener `admin`"), "{e}");
}

#[test]
fn listeners_may_not_share_an_address_unless_port_zero() {
    let e = one_error(
        "listeners:\n  - {name: a, listen: \"127.0.0.1:8080\"}\n  - {name: b, listen: \"127.0.0.1:8080\"}\n",
    );
    assert!(e.contains("already used at line 2"), "{e}");
    ok("listeners:\n  - {name: a, listen: \"127.0.0.1:0\"}\n  - {name: b, listen: \"127.0.0.1:0\"}\n");
    ok("listeners:\n  - {name: a, listen: \"[::1]:0\"}\n");
}

#[test]
fn listener_needs_an_ip_literal() {
    let e = one_error("listeners:\n  - {name: a, listen: \"localhost:8080\"}\n");
    assert!(e.contains("not an IP:PORT address"), "{e}");
}

#[test]
fn listener_tls_shorthand_and_list_are_exclusive() {
    let e = one_error(
        "listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    tls: { cert: a.pem, key: a.key, certificates: [{cert: b.pem, key: b.key}] }\n",
    );
    assert!(e.contains("either `cert`/`key` or `certificates`"), "{e}");
    let e =
        one_error("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    tls: { cert: a.pem }\n");
    assert!(e.contains("`cert` needs a matching `key`"), "{e}");
}

#[test]
fn tls_min_version_must_be_known() {
    let errs = errors("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    tls: { cert: a.pem, key: a.key, min_version: \"1.1\" }\n");
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("unknown min_version `1.1`"), "{}", errs[0]);
    let l = ok("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    tls: { cert: a.pem, key: a.key, min_version: 1.3 }\n");
    let tls = l.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.min_version, TlsVersion::V1_3);
}

#[test]
fn missing_cert_files_are_errors_when_a_base_dir_is_given() {
    let yaml = "listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    tls: { cert: no/such.pem, key: no/such.key }\n";
    let err = parse("t.yaml", yaml, Some(std::path::Path::new("/tmp"))).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    assert!(err.0[0].message.contains("file `no/such.pem` not found"));
}

#[test]
fn consistent_hash_and_hash_on_go_together() {
    let errs = errors(&with_listener(
        "upstreams:\n  - {name: a, endpoints: [\"h:1\"], load_balancer: consistent_hash}\n  - {name: b, endpoints: [\"h:1\"], hash_on: path}\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs[0].contains("consistent_hash needs `hash_on`"));
    assert!(errs[1].contains("hash_on is only used with"));
}

#[test]
fn hash_on_accepts_all_forms() {
    let l = ok(&with_listener(
        "upstreams:\n  - {name: a, endpoints: [\"h:1\"], load_balancer: consistent_hash, hash_on: {header: X-User}}\n  - {name: b, endpoints: [\"h:1\"], load_balancer: consistent_hash, hash_on: {cookie: sid}}\n  - {name: c, endpoints: [\"h:1\"], load_balancer: consistent_hash, hash_on: client_ip}\n",
    ));
    let keys: Vec<_> = l
        .config
        .upstreams
        .iter()
        .map(|u| u.hash_on.clone())
        .collect();
    assert_eq!(
        keys,
        [
            Some(HashOn::Header("x-user".into())),
            Some(HashOn::Cookie("sid".into())),
            Some(HashOn::ClientIp)
        ]
    );
}

#[test]
fn endpoint_weights_and_addresses_are_checked() {
    let errs = errors(&with_listener(
        "upstreams:\n  - name: u\n    endpoints:\n      - { address: \"h:1\", weight: 0 }\n      - { address: \"h:2\", weight: 1001 }\n      - \"::1:80\"\n      - \"http://h:80\"\n      - \"h:1\"\n",
    ));
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[4].contains("listed twice"));
    let l = ok(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"[::1]:80\", localhost:9000, { address: \"10.0.0.1:80\", weight: 1000 }]\n",
    ));
    assert_eq!(l.config.upstreams[0].endpoints[2].weight, 1000);
}

#[test]
fn h2_upstream_implies_tls_and_h2c_rejects_it() {
    let l = ok(&with_listener(
        "upstreams:\n  - {name: a, endpoints: [\"h:443\"], protocol: h2}\n",
    ));
    assert_eq!(l.config.upstreams[0].tls, Some(UpstreamTls::default()));
    let e = one_error(&with_listener(
        "upstreams:\n  - {name: a, endpoints: [\"h:80\"], protocol: h2c, tls: {sni: a.b}}\n",
    ));
    assert!(e.contains("tls cannot be used with protocol h2c"), "{e}");
}

#[test]
fn health_check_rules_are_enforced() {
    let errs = errors(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"h:1\"]\n    health_check: { type: tcp, path: /x, interval: 0s, healthy_threshold: 0 }\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs
        .iter()
        .any(|e| e.contains("`path` is only used with type: http")));
    assert!(errs
        .iter()
        .any(|e| e.contains("interval must be greater than 0")));
    assert!(errs.iter().any(|e| e.contains("healthy_threshold must be")));
}

#[test]
fn sizes_accept_units_and_plain_bytes() {
    let l = ok("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    limits: { max_request_headers: 32KiB, max_request_body: 1048576 }\n");
    let limits = &l.config.listeners[0].limits;
    assert_eq!(limits.max_request_headers, 32 * 1024);
    assert_eq!(limits.max_request_body, 1 << 20);
}

#[test]
fn connection_limits_parse_and_ping_interval_may_be_zero() {
    let l = ok("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    limits: { send_timeout: 5s, max_concurrent_streams: 100, ping_interval: 0s, ping_timeout: 3s }\n");
    let limits = &l.config.listeners[0].limits;
    assert_eq!(limits.send_timeout, Duration::from_secs(5));
    assert_eq!(limits.max_concurrent_streams, 100);
    assert_eq!(limits.ping_interval, Duration::ZERO);
    assert_eq!(limits.ping_timeout, Duration::from_secs(3));
    let errs = errors("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n    limits: { send_timeout: 0s, max_concurrent_streams: 0 }\n");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("4:") && e.contains("send_timeout must be greater than 0")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("max_concurrent_streams must be a whole number from 1 to 65536")),
        "{errs:?}"
    );
}

#[test]
fn unused_upstream_and_insecure_tls_warn() {
    let l = ok(&with_listener(
        "upstreams:\n  - {name: u, endpoints: [\"h:1\"], tls: {insecure_skip_verify: true}}\n",
    ));
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
}

#[test]
fn locations_point_at_items_for_later_stages() {
    let l = ok(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"h:1\", \"h:2\"]\nroutes:\n  - name: r\n    upstream: u\n",
    ));
    let loc = &l.config.locations;
    assert_eq!(loc.listener(0), (2, 5));
    assert_eq!(loc.listener_listen(0), (3, 13));
    assert_eq!(loc.upstream(0), (5, 5));
    assert_eq!(loc.endpoint(0, 1), (6, 24));
    assert_eq!(loc.route(0), (8, 5));
    assert_eq!(loc.route_action(0), (9, 15));
    assert_eq!(loc.route(7), (0, 0));
    assert_eq!(
        loc.diag(loc.route(0), "boom").to_string(),
        "t.yaml:8:5: boom"
    );
}

#[test]
fn names_are_restricted_to_plain_characters() {
    let e = one_error("listeners:\n  - {name: \"my web\", listen: \"127.0.0.1:1\"}\n");
    assert!(e.contains("invalid listener name `my web`"), "{e}");
}

#[test]
fn header_ops_are_lowercased_and_checked() {
    let l = ok(&with_listener(
        "routes:\n  - name: r\n    respond: {}\n    response_headers: { add: { X-A: \"1\" }, set: { X-B: b }, remove: [Server] }\n",
    ));
    let ops = &l.config.routes[0].response_headers;
    assert_eq!(ops.add, [("x-a".to_owned(), "1".to_owned())]);
    assert_eq!(ops.set, [("x-b".to_owned(), "b".to_owned())]);
    assert_eq!(ops.remove, ["server"]);
    let e = one_error(&with_listener(
        "routes:\n  - name: r\n    respond: {}\n    request_headers: { set: { x-a: \"a\\nb\" } }\n",
    ));
    assert!(e.contains("not allowed in a header"), "{e}");
}

#[test]
fn float_match_value_must_be_quoted() {
    let errs = errors(&with_listener(
        "routes:\n  - name: r\n    match: { headers: { x-v: 1.50 } }\n    respond: {}\n",
    ));
    assert!(errs[0].contains("must be quoted"), "{errs:#?}");
}

#[test]
fn grpc_is_not_a_protocol_but_gets_a_hint() {
    let e = one_error(&with_listener(
        "upstreams:\n  - {name: g, endpoints: [\"h:1\"], protocol: grpc}\n",
    ));
    assert!(e.contains("gRPC runs over h2c"), "{e}");
}

#[test]
fn admin_and_listener_may_not_share_an_address() {
    let e = one_error("admin: { listen: \"127.0.0.1:8080\" }\nlisteners:\n  - {name: a, listen: \"127.0.0.1:8080\"}\n");
    assert!(
        e.starts_with("3:23: address 127.0.0.1:8080 is already used at line 1"),
        "{e}"
    );
}

#[test]
fn wasm_cache_dir_is_the_default_off_or_a_directory() {
    let c = ok(LISTENER).config;
    assert_eq!(c.server.wasm_cache_dir, WasmCacheDir::Default);
    let c = ok(&format!("server: {{ wasm_cache_dir: off }}\n{LISTENER}")).config;
    assert_eq!(c.server.wasm_cache_dir, WasmCacheDir::Off);
    let c = ok(&format!(
        "server: {{ wasm_cache_dir: cache/wasm }}\n{LISTENER}"
    ))
    .config;
    assert_eq!(
        c.server.wasm_cache_dir,
        WasmCacheDir::Dir("cache/wasm".into())
    );
    let e = one_error(&format!("server: {{ wasm_cache_dir: \"\" }}\n{LISTENER}"));
    assert_eq!(
        e,
        "1:27: server.wasm_cache_dir: empty path (write `off` for no disk cache)"
    );
}

#[test]
fn client_auth_defaults_to_require_and_sanitize_set() {
    let l = ok("listeners:\n  - name: web\n    listen: 127.0.0.1:8443\n    tls: { cert: c.pem, key: k.pem, client_auth: { ca: ca.pem } }\n");
    let c = l.config.listeners[0]
        .tls
        .as_ref()
        .unwrap()
        .client_auth
        .clone();
    assert_eq!(
        c,
        Some(ClientAuth {
            ca: "ca.pem".into(),
            mode: ClientAuthMode::Require,
            forward_client_cert: ForwardClientCert::SanitizeSet,
        })
    );
    let e = one_error("listeners:\n  - name: web\n    listen: 127.0.0.1:8443\n    tls: { cert: c.pem, key: k.pem, client_auth: { mode: request } }\n");
    assert!(e.starts_with("4:50: client_auth needs `ca`"), "{e}");
}

#[test]
fn client_cert_patterns_end_with_the_only_star_and_a_list_is_required() {
    let policy = |allow: &str| {
        with_listener(&format!(
            "policies:\n  - name: p\n    client_cert: {{ allow: [{allow}] }}\n"
        ))
    };
    let l = ok(&policy(
        "\"spiffe://example.org/ns/prod/*\", \"spiffe://example.org/sa/web\"",
    ));
    assert_eq!(l.config.policies[0].spec.rank(), 390);
    let e = one_error(&policy("\"spiffe://example.org/*/sa/web\""));
    assert!(e.contains("`*` may only end a pattern"), "{e}");
    let e = one_error(&policy("\"web\""));
    assert!(e.contains("is not a URI"), "{e}");
    let e = one_error(&policy(""));
    assert!(e.contains("client_cert allows nobody"), "{e}");
}

#[test]
fn an_upstream_client_certificate_needs_its_key() {
    let e = one_error(&with_listener(
        "upstreams:\n  - name: u\n    endpoints: [\"h:1\"]\n    tls: { cert: c.pem }\n",
    ));
    assert_eq!(e, "7:18: `cert` needs a matching `key`");
}
