//! Route matching and route actions through the real binary: host, path,
//! method, header and query matchers, priority and first-match order, 404
//! for unmatched requests, respond/redirect actions, rewrites, header edits
//! and listener restrictions.

use std::net::SocketAddr;

use http::Request;
use strait_e2e::client::{self, empty, header, text, Proto};
use strait_e2e::{metrics, Reply, Strait, Upstream};

/// Send `method path` with `Host: host` and extra headers; returns (status, body).
async fn hit(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client::send(addr, Proto::H1, b.body(empty()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{path}: {e}"));
    (resp.status().as_u16(), text(&resp))
}

/// Assert each (path, headers, expected) case: expected `Some(body)` means
/// 200 with that body (the route's name), `None` means 404.
/// (method, host, path, headers, expected route name or None for 404).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
);

async fn expect_all(addr: SocketAddr, cases: &[Case<'_>]) {
    for (method, host, path, headers, want) in cases {
        let (status, body) = hit(addr, method, host, path, headers).await;
        match want {
            Some(name) => assert_eq!(
                (status, body.as_str()),
                (200, *name),
                "{method} {host}{path} {headers:?} should hit route {name}"
            ),
            None => assert_eq!(
                status, 404,
                "{method} {host}{path} {headers:?} should match nothing, got {status} {body:?}"
            ),
        }
    }
}

/// A respond route named `name` answering 200 with its name.
fn respond(name: &str, matcher: &str) -> String {
    format!(
        "  - name: {name}\n    match: {matcher}\n    respond: {{ status: 200, body: \"{name}\" }}\n"
    )
}

fn config(routes: &[String]) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n{}",
        routes.concat()
    )
}

#[tokio::test]
async fn host_matches_exactly_ignoring_case_or_by_wildcard() {
    let s = Strait::start(&config(&[
        respond("exact", "{ host: api.example.com }"),
        respond("wild", "{ host: \"*.example.com\" }"),
        respond("listed", "{ host: [a.test, b.test] }"),
        respond("any", "{ host: \"*\", path_prefix: /any/ }"),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "api.example.com", "/", &[], Some("exact")),
            ("GET", "API.Example.COM", "/", &[], Some("exact")),
            ("GET", "www.example.com", "/", &[], Some("wild")),
            ("GET", "example.com", "/", &[], None),
            ("GET", "example.com.evil", "/", &[], None),
            ("GET", "b.test", "/", &[], Some("listed")),
            ("GET", "c.test", "/", &[], None),
            ("GET", "whatever.test", "/any/x", &[], Some("any")),
        ],
    )
    .await;
}

#[tokio::test]
async fn path_matches_exact_prefix_template_and_regex() {
    let s = Strait::start(&config(&[
        respond("exact", "{ path: /exact }"),
        respond("prefix", "{ path_prefix: /str }"),
        respond("user", "{ path_template: \"/users/{id}\" }"),
        respond("files", "{ path_template: \"/files/{dir}/{*rest}\" }"),
        respond("regex", "{ path_regex: \"/v[0-9]+/items\" }"),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "h", "/exact", &[], Some("exact")),
            ("GET", "h", "/exact?x=1", &[], Some("exact")),
            ("GET", "h", "/exact/", &[], None),
            ("GET", "h", "/exactly", &[], None),
            // path_prefix is a plain string prefix (Envoy's `prefix`).
            ("GET", "h", "/str", &[], Some("prefix")),
            ("GET", "h", "/strait/x", &[], Some("prefix")),
            ("GET", "h", "/st", &[], None),
            ("GET", "h", "/users/42", &[], Some("user")),
            ("GET", "h", "/users/42/posts", &[], None),
            ("GET", "h", "/users/", &[], None),
            ("GET", "h", "/files/docs/a/b/c.txt", &[], Some("files")),
            ("GET", "h", "/v12/items", &[], Some("regex")),
            ("GET", "h", "/v12/items/1", &[], None),
            ("GET", "h", "/xv1/items", &[], None),
        ],
    )
    .await;
}

#[tokio::test]
async fn methods_restrict_a_route() {
    let s = Strait::start(&config(&[
        respond("read-write", "{ methods: [GET, POST] }"),
        respond("delete", "{ methods: [DELETE] }"),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "h", "/", &[], Some("read-write")),
            ("POST", "h", "/", &[], Some("read-write")),
            ("DELETE", "h", "/", &[], Some("delete")),
            ("PUT", "h", "/", &[], None),
        ],
    )
    .await;
}

#[tokio::test]
async fn headers_match_exact_regex_present_and_absent() {
    let s = Strait::start(&config(&[
        respond("exact", "{ headers: { x-env: canary } }"),
        respond("regex", "{ headers: { x-ver: { regex: \"v[0-9]+\" } } }"),
        respond("present", "{ headers: { x-debug: { present: true } } }"),
        respond(
            "absent",
            "{ path_prefix: /absent, headers: { x-block: { present: false } } }",
        ),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "h", "/", &[("x-env", "canary")], Some("exact")),
            ("GET", "h", "/", &[("X-ENV", "canary")], Some("exact")),
            ("GET", "h", "/", &[("x-env", "prod")], None),
            ("GET", "h", "/", &[("x-ver", "v12")], Some("regex")),
            ("GET", "h", "/", &[("x-ver", "v12a")], None),
            ("GET", "h", "/", &[("x-debug", "")], Some("present")),
            ("GET", "h", "/", &[], None),
            ("GET", "h", "/absent", &[], Some("absent")),
            ("GET", "h", "/absent", &[("x-block", "1")], None),
        ],
    )
    .await;
}

#[tokio::test]
async fn query_parameters_match_exact_regex_and_present() {
    let s = Strait::start(&config(&[
        respond("exact", "{ query: { debug: \"1\" } }"),
        respond("regex", "{ query: { v: { regex: \"[a-z]+\" } } }"),
        respond("present", "{ query: { flag: { present: true } } }"),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "h", "/?debug=1", &[], Some("exact")),
            ("GET", "h", "/x?a=b&debug=1", &[], Some("exact")),
            ("GET", "h", "/?debug=2", &[], None),
            ("GET", "h", "/?v=abc", &[], Some("regex")),
            ("GET", "h", "/?v=ab1", &[], None),
            ("GET", "h", "/?flag=", &[], Some("present")),
            ("GET", "h", "/?other=1", &[], None),
            ("GET", "h", "/", &[], None),
        ],
    )
    .await;
}

#[tokio::test]
async fn higher_priority_is_tried_first_and_ties_keep_written_order() {
    let s = Strait::start(&config(&[
        respond("low", "{ path_prefix: /p/ }"),
        format!(
            "{}    priority: 5\n",
            respond("high", "{ path_prefix: /p/ }")
        ),
        respond("tie-first", "{ path_prefix: /t/ }"),
        respond("tie-second", "{ path_prefix: /t/ }"),
        format!(
            "{}    priority: -1\n",
            respond("below-default", "{ path_prefix: /q/ }")
        ),
        respond("default-prio", "{ path_prefix: /q/ }"),
    ]))
    .await;
    expect_all(
        s.web(),
        &[
            ("GET", "h", "/p/x", &[], Some("high")),
            ("GET", "h", "/t/x", &[], Some("tie-first")),
            ("GET", "h", "/q/x", &[], Some("default-prio")),
        ],
    )
    .await;
}

#[tokio::test]
async fn the_first_matching_route_wins() {
    let s = Strait::start(&config(&[
        respond("broad", "{ path_prefix: /a }"),
        respond("narrow", "{ path: /a/b }"),
    ]))
    .await;
    expect_all(s.web(), &[("GET", "h", "/a/b", &[], Some("broad"))]).await;
}

#[tokio::test]
async fn unmatched_request_gets_404_with_request_id_and_is_counted() {
    let s = Strait::start(&config(&[respond("only", "{ host: only.test }")])).await;
    let before = metrics::sum(
        &s.metrics().await,
        "strait_http_requests_total",
        &[
            ("route", "unmatched"),
            ("code", "404"),
            ("upstream", ""),
            ("listener", "web"),
        ],
    );
    for _ in 0..3 {
        let resp = client::get_host(s.web(), "other.test", "/nope")
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let id = header(&resp, "x-request-id");
        assert!(
            id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "x-request-id should be 32 hex chars: {id:?}"
        );
        assert!(header(&resp, "content-type").starts_with("text/plain"));
        let body = text(&resp);
        assert!(
            body.starts_with("strait: ") && body.ends_with(&format!("(request id {id})\n")),
            "error body format: {body:?}"
        );
    }
    let after = metrics::sum(
        &s.metrics().await,
        "strait_http_requests_total",
        &[
            ("route", "unmatched"),
            ("code", "404"),
            ("upstream", ""),
            ("listener", "web"),
        ],
    );
    assert_eq!(
        after - before,
        3.0,
        "unmatched requests counted with route=\"unmatched\""
    );
}

#[tokio::test]
async fn respond_route_returns_its_status_body_and_headers() {
    let s = Strait::start(&config(&[
        "  - name: tea\n    match: { path: /tea }\n    respond: { status: 418, body: \"short and stout\", headers: { content-type: text/x-tea, x-extra: \"yes\" } }\n".to_string(),
        "  - name: nothing\n    match: { path: /none }\n    respond: { status: 204 }\n".to_string(),
    ]))
    .await;
    let resp = client::get(s.web(), "/tea").await.unwrap();
    assert_eq!(resp.status(), 418);
    assert_eq!(text(&resp), "short and stout");
    assert_eq!(header(&resp, "content-type"), "text/x-tea");
    assert_eq!(header(&resp, "x-extra"), "yes");
    assert!(
        !header(&resp, "x-request-id").is_empty(),
        "respond routes carry x-request-id"
    );
    let resp = client::get(s.web(), "/none").await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.body().is_empty());
}

#[tokio::test]
async fn redirect_sets_status_and_location() {
    let s = Strait::start(&config(&[
        "  - name: full\n    match: { path_prefix: /full }\n    redirect: { status: 301, scheme: https, host: example.com, port: 8443, path: /new }\n".to_string(),
        "  - name: to-https\n    match: { path_prefix: /secure }\n    redirect: { scheme: https }\n".to_string(),
        "  - name: other-host\n    match: { path_prefix: /moved }\n    redirect: { status: 308, host: other.test }\n".to_string(),
    ]))
    .await;
    let resp = client::get_host(s.web(), "from.test", "/full/x")
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(header(&resp, "location"), "https://example.com:8443/new");
    let resp = client::get_host(s.web(), "from.test", "/secure/page")
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "default redirect status is 302");
    assert_eq!(header(&resp, "location"), "https://from.test/secure/page");
    let resp = client::get_host(s.web(), "from.test", "/moved/here")
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(header(&resp, "location"), "http://other.test/moved/here");
}

fn upstream_config(up: &Upstream, routes: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n{routes}upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    )
}

#[tokio::test]
async fn rewrite_replaces_or_strips_the_prefix_the_path_and_the_host() {
    let up = Upstream::start("up").await;
    let routes = "  - name: replace
    match: { path_prefix: /api/ }
    upstream: up
    rewrite: { path_prefix: /v2/ }
  - name: strip
    match: { path_prefix: /strip/ }
    upstream: up
    rewrite: { path_prefix: / }
  - name: fixed
    match: { path_prefix: /fixed-src }
    upstream: up
    rewrite: { path: /fixed }
  - name: host
    match: { path_prefix: /host }
    upstream: up
    rewrite: { host: internal.svc }
";
    let s = Strait::start(&upstream_config(&up, routes)).await;
    for (path, want) in [
        ("/api/users?x=1", "/v2/users?x=1"),
        ("/strip/a/b", "/a/b"),
        ("/fixed-src/anything?q=1", "/fixed?q=1"),
    ] {
        let resp = client::get_host(s.web(), "client.test", path)
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let got = up.requests().last().unwrap().path_and_query();
        assert_eq!(got, want, "rewrite of {path}");
    }
    let resp = client::get_host(s.web(), "client.test", "/host")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let last = up.requests().last().unwrap().clone();
    assert_eq!(last.header("host"), "internal.svc");
    assert_eq!(last.header("x-forwarded-host"), "client.test");
    assert_eq!(last.path_and_query(), "/host");
}

#[tokio::test]
async fn request_and_response_headers_are_added_set_and_removed() {
    let up = Upstream::with_handler("up", |_| {
        Reply::text("ok")
            .header("x-radd", "orig")
            .header("x-rset", "orig")
            .header("x-rremove", "secret")
    })
    .await;
    let routes = "  - name: edit
    upstream: up
    request_headers: { add: { x-add: added }, set: { x-set: forced }, remove: [x-remove] }
    response_headers: { add: { x-radd: added }, set: { x-rset: forced }, remove: [x-rremove] }
";
    let s = Strait::start(&upstream_config(&up, routes)).await;
    let req = Request::get("/")
        .header("host", "h")
        .header("x-add", "orig")
        .header("x-set", "orig")
        .header("x-remove", "secret")
        .body(empty())
        .unwrap();
    let resp = client::send(s.web(), Proto::H1, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.only_request();
    let all = |h: &http::HeaderMap, n: &str| -> Vec<String> {
        h.get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(all(&seen.headers, "x-add"), ["orig", "added"]);
    assert_eq!(all(&seen.headers, "x-set"), ["forced"]);
    assert!(
        all(&seen.headers, "x-remove").is_empty(),
        "x-remove forwarded"
    );
    assert_eq!(all(resp.headers(), "x-radd"), ["orig", "added"]);
    assert_eq!(all(resp.headers(), "x-rset"), ["forced"]);
    assert!(
        all(resp.headers(), "x-rremove").is_empty(),
        "x-rremove returned"
    );
}

#[tokio::test]
async fn a_route_with_listeners_applies_only_to_those_listeners() {
    let yaml = "\
listeners:
  - name: public
    listen: 127.0.0.1:0
  - name: internal
    listen: 127.0.0.1:0
routes:
  - name: internal-only
    listeners: [internal]
    match: { path_prefix: /admin }
    respond: { status: 200, body: internal-only }
  - name: everywhere
    respond: { status: 200, body: everywhere }
";
    let s = Strait::start(yaml).await;
    let (public, internal) = (s.addr("public"), s.addr("internal"));
    assert_ne!(public, internal);
    expect_all(
        internal,
        &[("GET", "h", "/admin", &[], Some("internal-only"))],
    )
    .await;
    expect_all(public, &[("GET", "h", "/admin", &[], Some("everywhere"))]).await;
    expect_all(internal, &[("GET", "h", "/other", &[], Some("everywhere"))]).await;
}
