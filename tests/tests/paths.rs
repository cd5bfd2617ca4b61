//! Path normalisation through the real binary (issue 9): a route answering 403 for `/healthz`, a
//! prefix-limited route, a `rewrite.path_prefix` route and a catch-all, probed with request
//! targets sent byte for byte over raw TCP (and a few over h2c), so no client normalises them.
//! Each case names the route it must reach and the exact path its upstream must receive, or the
//! refusal; no encoding may reach the blocked path or leave a prefix.

use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, empty, raw_exchange, Proto};
use strait_e2e::{metrics, Strait, Upstream};

/// What a request target must produce.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// Answered by Strait with this status; no upstream sees anything.
    Status(u16),
    /// Forwarded to the named upstream with exactly this path and query.
    Up(&'static str, &'static str),
}
use Want::{Status, Up};

struct Setup {
    s: Strait,
    ups: Vec<Upstream>,
}

async fn start() -> Setup {
    let app = Upstream::start("app").await;
    let api = Upstream::start("api").await;
    let files = Upstream::start("files").await;
    let yaml = format!(
        "listeners:
  - name: web
    listen: 127.0.0.1:0
  - name: keep
    listen: 127.0.0.1:0
    http: {{ path_with_escaped_slashes_action: keep_unchanged }}
  - name: decode
    listen: 127.0.0.1:0
    http: {{ path_with_escaped_slashes_action: unescape_and_forward }}
  - name: raw
    listen: 127.0.0.1:0
    http: {{ normalize_path: false, merge_slashes: false }}
routes:
  - name: blocked
    match: {{ path_prefix: /healthz }}
    respond: {{ status: 403, body: blocked }}
  - name: api
    match: {{ path_prefix: /api/ }}
    upstream: api
  - name: public
    match: {{ path_prefix: /public }}
    rewrite: {{ path_prefix: /static/ }}
    upstream: files
  - name: all
    upstream: app
upstreams:
  - {{ name: app, endpoints: [\"{}\"] }}
  - {{ name: api, endpoints: [\"{}\"] }}
  - {{ name: files, endpoints: [\"{}\"] }}
",
        app.addr(),
        api.addr(),
        files.addr()
    );
    let s = Strait::start(&yaml).await;
    Setup {
        s,
        ups: vec![app, api, files],
    }
}

/// `GET target` on a fresh connection, written as raw bytes; returns (status, body).
async fn raw_get(addr: SocketAddr, target: &str) -> (u16, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let reply = raw_exchange(addr, req.as_bytes(), Duration::from_secs(5)).await;
    let text = reply.text();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (reply.status().unwrap_or(0), body.to_string())
}

impl Setup {
    fn counts(&self) -> Vec<usize> {
        self.ups.iter().map(|u| u.requests().len()).collect()
    }

    /// The reasons a case went wrong, if it did; `send` gives (status, body) for a target.
    async fn check<F, Fut>(&self, label: &str, target: &str, want: Want, send: F) -> Option<String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = (u16, String)>,
    {
        let before = self.counts();
        let (status, body) = send().await;
        let after = self.counts();
        let grew: Vec<&str> = (0..self.ups.len())
            .filter(|&i| after[i] != before[i])
            .map(|i| self.ups[i].name())
            .collect();
        let fail = |why: String| Some(format!("{label} {target:?}: {why}"));
        match want {
            Status(code) => {
                if status != code || !grew.is_empty() {
                    return fail(format!(
                        "want {code} and nothing forwarded; got {status} {body:?}, forwarded to {grew:?}"
                    ));
                }
            }
            Up(name, path) => {
                if status != 200 || body != name || grew != [name] {
                    return fail(format!(
                        "want {name} {path}; got {status} {body:?}, forwarded to {grew:?}"
                    ));
                }
                let up = self.ups.iter().find(|u| u.name() == name).unwrap();
                let got = up.requests().last().unwrap().path_and_query();
                if got != path {
                    return fail(format!("{name} received {got:?}, want {path:?}"));
                }
            }
        }
        None
    }

    async fn table(&self, listener: &str, cases: &[(&str, Want)]) -> Vec<String> {
        let addr = self.s.addr(listener);
        let mut failures = Vec::new();
        for (target, want) in cases {
            failures.extend(
                self.check(listener, target, *want, || raw_get(addr, target))
                    .await,
            );
        }
        failures
    }

    /// No request that reached `api` left `/api/`, none that reached `files` left `/static/`.
    fn assert_prefixes_held(&self) {
        for (name, prefix) in [("api", "/api/"), ("files", "/static/")] {
            let up = self.ups.iter().find(|u| u.name() == name).unwrap();
            for r in up.requests() {
                let p = r.path_and_query();
                assert!(p.starts_with(prefix), "{name} received {p:?}");
            }
        }
    }
}

const WEB: &[(&str, Want)] = &[
    // The three bypasses of the blocking route, and their relatives.
    ("/healthz", Status(403)),
    ("/x/../healthz", Status(403)),
    ("//healthz", Status(403)),
    ("/%68ealthz", Status(403)),
    ("/%68%65%61%6c%74%68%7A", Status(403)),
    ("/x/%2e%2e/healthz", Status(403)),
    ("/x/%2E%2e/healthz", Status(403)),
    ("/x/.%2E/healthz", Status(403)),
    ("/%2e/healthz", Status(403)),
    ("/./healthz", Status(403)),
    ("/.//./healthz/", Status(403)),
    ("http://t/x/../healthz", Status(403)),
    ("http://t//%68ealthz", Status(403)),
    ("/api/../healthz", Status(403)),
    // Dot segments that would climb above the root, or hide behind parameters.
    ("/..", Status(400)),
    ("/%2e%2e/healthz", Status(400)),
    ("/x/../../healthz", Status(400)),
    ("/x/..;/healthz", Status(400)),
    ("/x/..%3b/healthz", Status(400)),
    ("/x/.;/healthz", Status(400)),
    // Encodings that lenient decoders turn into separators, dots or string ends.
    ("/x%2F..%2Fhealthz", Status(400)),
    ("/x%2f", Status(400)),
    ("/healthz%2F", Status(400)),
    ("/x%5C..%5Chealthz", Status(400)),
    ("/x\\..\\healthz", Status(400)),
    ("/%C0%AE%C0%AE/healthz", Status(400)),
    ("/x/%c0%ae%c0%ae/healthz", Status(400)),
    ("/x%00", Status(400)),
    ("/healthz%00.html", Status(400)),
    ("/a%zz", Status(400)),
    ("/a%2", Status(400)),
    // Trailing dot segments resolve to a directory.
    ("/healthz/..", Up("app", "/")),
    ("/x/..", Up("app", "/")),
    ("/x/.", Up("app", "/x/")),
    ("/x/./y//z/", Up("app", "/x/y/z/")),
    // Not dot segments, not the blocked path: forwarded as the canonical spelling.
    ("/.healthz", Up("app", "/.healthz")),
    ("/x/...", Up("app", "/x/...")),
    ("/Healthz", Up("app", "/Healthz")),
    ("/%41%42c", Up("app", "/ABc")),
    ("/a%20b%3f", Up("app", "/a%20b%3F")),
    ("/a%7e%2D", Up("app", "/a~-")),
    ("/x;v=1/y", Up("app", "/x;v=1/y")),
    // The query is forwarded exactly as sent.
    (
        "/a?x=/../healthz&y=%2e%2E",
        Up("app", "/a?x=/../healthz&y=%2e%2E"),
    ),
    // The prefix-limited route: reachable only by paths under /api/.
    ("/api/users", Up("api", "/api/users")),
    ("/api//users", Up("api", "/api/users")),
    ("/api/./users/", Up("api", "/api/users/")),
    ("/api/%7Eu%73er", Up("api", "/api/~user")),
    ("/api/caf%c3%a9", Up("api", "/api/caf%C3%A9")),
    (
        "/api/v1;jsessionid=1/users",
        Up("api", "/api/v1;jsessionid=1/users"),
    ),
    ("http://t/api/./users", Up("api", "/api/users")),
    ("/api/%2e%2e/internal", Up("app", "/internal")),
    ("/api/x/../../internal", Up("app", "/internal")),
    ("/api/..%2f..%2finternal", Status(400)),
    // The rewrite route: what reaches `files` stays under /static/.
    ("/public/a.css", Up("files", "/static/a.css")),
    ("/public/./a.css?v=1", Up("files", "/static/a.css?v=1")),
    ("/public/../secret", Up("app", "/secret")),
    ("/public/%2e%2e/secret", Up("app", "/secret")),
    ("/public../secret", Status(400)),
    ("/public..", Status(400)),
    ("/public..;/secret", Status(400)),
];

#[tokio::test]
async fn no_encoding_reaches_a_blocked_path_or_leaves_a_prefix() {
    let t = start().await;
    let failures = t.table("web", WEB).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        WEB.len(),
        failures.join("\n")
    );
    t.assert_prefixes_held();

    let m = t.s.metrics().await;
    let refused = |reason: &str| {
        metrics::sum(
            &m,
            "strait_downstream_rejected_requests_total",
            &[("listener", "web"), ("reason", reason)],
        )
    };
    assert_eq!(refused("path_above_root"), 3.0, "{m}");
    assert_eq!(refused("path_dot_segment_parameters"), 3.0);
    assert_eq!(refused("path_escaped_slash"), 6.0);
    assert_eq!(refused("path_overlong_utf8"), 2.0);
    assert_eq!(refused("path_nul"), 2.0);
    assert_eq!(refused("path_bad_escape"), 2.0);
    assert_eq!(refused("path_outside_rewrite"), 3.0);
    // Refusals are requests too: counted as unmatched, with their status.
    let unmatched_400 = metrics::sum(
        &m,
        "strait_http_requests_total",
        &[("listener", "web"), ("route", "unmatched"), ("code", "400")],
    );
    assert_eq!(unmatched_400, 18.0, "{m}");
}

#[tokio::test]
async fn escaped_slashes_follow_the_listener_setting() {
    let t = start().await;
    let keep: &[(&str, Want)] = &[
        ("/x%2F..%2Fhealthz", Up("app", "/x%2F..%2Fhealthz")),
        ("/x%2f", Up("app", "/x%2F")),
        ("/x\\y%5c", Up("app", "/x%5Cy%5C")),
        ("/api%2Fusers", Up("app", "/api%2Fusers")),
        ("/x/../healthz", Status(403)),
        ("/x%00", Status(400)),
    ];
    let decode: &[(&str, Want)] = &[
        ("/x%2F..%2Fhealthz", Status(403)),
        ("/x\\..\\healthz", Status(403)),
        ("/x%5c..%5Chealthz", Status(403)),
        ("/api%2fusers", Up("api", "/api/users")),
        ("/api%2F..%2F..%2Fhealthz", Status(400)),
        ("/public%2F..%2Fsecret", Up("app", "/secret")),
    ];
    // Normalisation off: routes see the path as sent, as the validation warning says.
    let raw: &[(&str, Want)] = &[
        ("//healthz", Up("app", "//healthz")),
        ("/x/../healthz", Up("app", "/x/../healthz")),
        ("/%68ealthz", Up("app", "/%68ealthz")),
        ("/x%2F", Status(400)),
        ("/x%00", Status(400)),
        // A prefix rewrite still cannot be left.
        ("/public/../secret", Status(400)),
    ];
    let mut failures = t.table("keep", keep).await;
    failures.extend(t.table("decode", decode).await);
    failures.extend(t.table("raw", raw).await);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    t.assert_prefixes_held();
}

/// HTTP/2 `:path` goes through the same normalisation (hyper's client sends it as written).
#[tokio::test]
async fn h2_paths_are_normalised_alike() {
    let t = start().await;
    let addr = t.s.web();
    let cases: &[(&str, Want)] = &[
        ("/x/../healthz", Status(403)),
        ("//healthz", Status(403)),
        ("/%68ealthz", Status(403)),
        ("/x/%2E%2e/healthz", Status(403)),
        ("/x%2F..%2Fhealthz", Status(400)),
        ("/x/..;/healthz", Status(400)),
        ("/x%00", Status(400)),
        ("/api/%2e%2e/internal?q=/..", Up("app", "/internal?q=/..")),
        ("/api//%7Euser", Up("api", "/api/~user")),
        ("/public../x", Status(400)),
    ];
    let mut failures = Vec::new();
    for (target, want) in cases {
        let send = || async move {
            let req = Request::get(format!("http://t{target}"))
                .body(empty())
                .unwrap();
            let resp = client::send(addr, Proto::H2c, req)
                .await
                .expect("h2c response");
            (resp.status().as_u16(), client::text(&resp))
        };
        failures.extend(t.check("h2c", target, *want, send).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
