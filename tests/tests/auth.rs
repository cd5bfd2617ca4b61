//! Credential policies through the real binary: API keys (header, query, SHA-256-stored), basic auth (bcrypt, argon2, the verification cache and bound), consumers (upstream header, spoofing, metric), and forward auth against a real local auth service (allow, deny, timeout in both failure modes, cache).

use std::sync::Arc;
use std::time::{Duration, Instant};
use strait_e2e::json_lines as lines;

use base64::Engine;
use http::Request;
use strait_e2e::client::{self, empty};
use strait_e2e::metrics::sum;
use strait_e2e::{poll_until, Reply, Strait, Upstream};

fn get(path: &str, headers: &[(&str, &str)]) -> Request<client::Body> {
    let mut b = Request::get(path).header("host", "h");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(empty()).unwrap()
}

async fn send(s: &Strait, path: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    client::send(s.web(), client::Proto::H1, get(path, headers))
        .await
        .expect("response")
}

/// Waits for `n` access log lines and returns the `policy` of each.
async fn logged_policies(s: &Strait, n: usize) -> Vec<serde_json::Value> {
    let path = s.dir().join("access.log");
    let log = poll_until(Duration::from_secs(10), "access log lines", || async {
        let l = lines(&path);
        (l.len() >= n).then_some(l)
    })
    .await;
    log.iter().map(|l| l["policy"].clone()).collect()
}

const LOG: &str = "observability:\n  access_log: { path: access.log }\n";

#[tokio::test]
async fn api_keys_in_header_and_query_name_consumers_and_are_hidden() {
    let up = Upstream::start("up").await;
    // sha256("bob-secret"), as `echo -n bob-secret | sha256sum` prints it.
    let bob = "9f03ef1533a68d2f506f81ef463c1183a82a6bd40e45613f36e6fe1889cf1b99";
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: keys\n    api_key:\n      query: api_key\n      keys:\n        \
         - {{ consumer: alice, key: \"${{T_ALICE_KEY}}\" }}\n        - {{ consumer: bob, sha256: \"{bob}\" }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [keys]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr()
    );
    let s = Strait::start_opts(&yaml, &[], &[], &[("T_ALICE_KEY", "alice-key-1")]).await;

    let r = send(
        &s,
        "/a",
        &[("x-api-key", "alice-key-1"), ("x-consumer", "mallory")],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", client::text(&r));
    let seen = up.requests().last().cloned().unwrap();
    assert_eq!(
        seen.header("x-consumer"),
        "alice",
        "the spoofed consumer is replaced"
    );
    assert_eq!(seen.headers.get_all("x-consumer").iter().count(), 1);
    assert_eq!(
        seen.header("x-api-key"),
        "",
        "the key is hidden from the upstream"
    );

    let r = send(&s, "/q?a=1&api_key=bob-secret&b=2", &[]).await;
    assert_eq!(r.status(), 200);
    let seen = up.requests().last().cloned().unwrap();
    assert_eq!(
        seen.path_and_query(),
        "/q?a=1&b=2",
        "the query key is hidden"
    );
    assert_eq!(seen.header("x-consumer"), "bob", "a sha256-stored key");

    let r = send(&s, "/a", &[("x-consumer", "alice")]).await;
    assert_eq!(r.status(), 401);
    let r = send(&s, "/a", &[("x-api-key", "bob-secret-not")]).await;
    assert_eq!(r.status(), 401);
    assert!(!client::text(&r).contains("bob"), "no secrets echoed");
    let r = send(&s, "/q?api_key=nope", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        up.requests().len(),
        2,
        "denied requests never reach the upstream"
    );

    let m = s.metrics().await;
    let c = |consumer| {
        sum(
            &m,
            "strait_consumer_requests_total",
            &[("policy", "keys"), ("consumer", consumer)],
        )
    };
    assert_eq!((c("alice"), c("bob")), (1.0, 1.0), "{m}");
    let d = |reason| {
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "keys"), ("reason", reason)],
        )
    };
    assert_eq!((d("missing_key"), d("invalid_key")), (1.0, 2.0), "{m}");
    let p = logged_policies(&s, 5).await;
    assert_eq!(p[0], serde_json::Value::Null);
    assert_eq!(
        &p[2..5],
        &[
            serde_json::json!("keys"),
            serde_json::json!("keys"),
            serde_json::json!("keys")
        ]
    );
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn argon2_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::from_b64("c3RyYWl0LXRlc3Qtc2FsdA").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn basic_auth_with_bcrypt_and_argon2_caches_and_bounds_verifications() {
    let up = Upstream::start("up").await;
    let ops = bcrypt::hash("ops-pass", 11).unwrap();
    let dev = argon2_hash("dev-pass");
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: admins\n    basic_auth:\n      realm: admin\n      \
         max_concurrent_verifications: 1\n      users:\n        \
         - {{ username: ops, password_hash: \"{ops}\", consumer: operators }}\n        \
         - {{ username: dev, password_hash: '{dev}' }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [admins]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n{LOG}",
        up.addr()
    );
    let s = Strait::start(&yaml).await;

    let r = send(&s, "/", &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        client::header(&r, "www-authenticate"),
        "Basic realm=\"admin\", charset=\"UTF-8\""
    );

    let good = basic("ops", "ops-pass");
    let t = Instant::now();
    let r = send(&s, "/", &[("authorization", &good)]).await;
    let first = t.elapsed();
    assert_eq!(r.status(), 200);
    let seen = up.requests().last().cloned().unwrap();
    assert_eq!(seen.header("authorization"), "", "credentials hidden");
    assert_eq!(seen.header("x-consumer"), "operators");
    // Remembered: the next requests skip the bcrypt verification.
    let mut cached = Duration::ZERO;
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(
            send(&s, "/", &[("authorization", &good)]).await.status(),
            200
        );
        cached = cached.max(t.elapsed());
    }
    assert!(
        cached * 2 < first,
        "cached logins ({cached:?}) are much faster than the first ({first:?})"
    );

    let r = send(&s, "/", &[("authorization", &basic("dev", "dev-pass"))]).await;
    assert_eq!(r.status(), 200, "argon2id");
    assert_eq!(up.requests().last().unwrap().header("x-consumer"), "dev");
    let r = send(&s, "/", &[("authorization", &basic("dev", "wrong"))]).await;
    assert_eq!(r.status(), 401);
    let r = send(&s, "/", &[("authorization", &basic("nobody", "x"))]).await;
    assert_eq!(r.status(), 401);

    // One verification at a time: a burst of wrong guesses is partly refused with 503.
    let addr = s.web();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let h = basic("ops", &format!("guess-{i}"));
            tokio::spawn(async move {
                client::send(addr, client::Proto::H1, get("/", &[("authorization", &h)]))
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "over the bound → 503: {statuses:?}"
    );
    assert!(statuses.contains(&401), "{statuses:?}");

    let m = s.metrics().await;
    let d = |reason| {
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "admins"), ("reason", reason)],
        )
    };
    assert_eq!(d("missing_credentials"), 1.0, "{m}");
    assert!(d("invalid_credentials") >= 3.0, "{m}");
    assert!(d("verify_busy") >= 1.0, "{m}");
    let c = sum(
        &m,
        "strait_consumer_requests_total",
        &[("policy", "admins"), ("consumer", "operators")],
    );
    assert_eq!(c, 6.0, "{m}");
    let p = logged_policies(&s, 18).await;
    assert_eq!(p[0], serde_json::json!("admins"));
    assert_eq!(p[1], serde_json::Value::Null);
}

/// An auth service: `Bearer good` is allowed (with `x-user-id`), `Bearer slow` answers after
/// 2 s, anything else is refused with 401 and a body.
async fn auth_service() -> Upstream {
    Upstream::with_handler("auth", |req| match req.header("authorization").as_str() {
        "Bearer good" => Reply::text("ok")
            .header("x-user-id", "u1")
            .header("x-auth-internal", "secret"),
        "Bearer slow" => Reply::text("ok").delay(Duration::from_secs(2)),
        _ => Reply::text("go away")
            .status(401)
            .header("www-authenticate", "Bearer realm=\"sso\"")
            .header("x-auth-internal", "secret"),
    })
    .await
}

#[tokio::test]
async fn forward_auth_allows_denies_fails_and_caches() {
    let up = Upstream::start("up").await;
    let auth = Arc::new(auth_service().await);
    let fa = |failure: &str, cache: &str| {
        format!(
            "forward_auth: {{ upstream: auth, path: /verify, timeout: 300ms, \
             request_headers: [authorization], response_headers: [x-user-id], failure: {failure}{cache} }}"
        )
    };
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: sso\n    {}\n  - name: sso-open\n    {}\n  - name: sso-cached\n    {}\n\
         routes:\n  - name: closed\n    match: {{ path_prefix: /closed }}\n    upstream: up\n    policies: [sso]\n  \
         - name: open\n    match: {{ path_prefix: /open }}\n    upstream: up\n    policies: [sso-open]\n  \
         - name: cached\n    match: {{ path_prefix: /cached }}\n    upstream: up\n    policies: [sso-cached]\n\
         upstreams:\n  - name: up\n    endpoints: [\"{}\"]\n  - name: auth\n    endpoints: [\"{}\"]\n{LOG}",
        fa("closed", ""),
        fa("open", ""),
        fa("closed", ", cache: { ttl: 30s, key: [authorization] }"),
        up.addr(),
        auth.addr()
    );
    let s = Strait::start(&yaml).await;

    // Allow: the named response header is copied, a client-sent copy removed first.
    let r = send(
        &s,
        "/closed/x?y=1",
        &[("authorization", "Bearer good"), ("x-user-id", "admin")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen = up.requests().last().cloned().unwrap();
    assert_eq!(seen.header("x-user-id"), "u1");
    assert_eq!(seen.headers.get_all("x-user-id").iter().count(), 1);
    assert_eq!(
        seen.header("x-auth-internal"),
        "",
        "only named headers are copied"
    );
    let asked = auth.requests().last().cloned().unwrap();
    assert_eq!(asked.path_and_query(), "/verify");
    assert_eq!(asked.header("x-forwarded-method"), "GET");
    assert_eq!(asked.header("x-forwarded-uri"), "/closed/x?y=1");
    assert_eq!(asked.header("x-forwarded-host"), "h");
    assert_eq!(asked.header("x-forwarded-proto"), "http");
    assert_eq!(asked.header("x-forwarded-for"), "127.0.0.1");
    assert_eq!(asked.header("authorization"), "Bearer good");

    // Deny: the auth service's status, body and safe headers go back to the client.
    let r = send(&s, "/closed/x", &[("authorization", "Bearer bad")]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(client::text(&r), "go away");
    assert_eq!(
        client::header(&r, "www-authenticate"),
        "Bearer realm=\"sso\""
    );
    assert_eq!(
        client::header(&r, "x-auth-internal"),
        "",
        "unsafe headers are dropped"
    );
    let upstream_hits = up.requests().len();

    // Timeout: closed → 503, open → through.
    let t = Instant::now();
    let r = send(&s, "/closed/x", &[("authorization", "Bearer slow")]).await;
    assert_eq!(r.status(), 503);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        !client::text(&r).contains(&auth.addr().to_string()),
        "no internals echoed"
    );
    let r = send(&s, "/open/x", &[("authorization", "Bearer slow")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(up.requests().len(), upstream_hits + 1);

    // Cache: one auth call for repeated allows and denials with the same key header.
    let before = auth.requests().len();
    for _ in 0..3 {
        assert_eq!(
            send(&s, "/cached/a", &[("authorization", "Bearer good")])
                .await
                .status(),
            200
        );
        assert_eq!(up.requests().last().unwrap().header("x-user-id"), "u1");
        assert_eq!(
            send(&s, "/cached/a", &[("authorization", "Bearer bad")])
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        auth.requests().len(),
        before + 2,
        "cache hits do not ask the auth service"
    );

    // The auth service gone: closed → 503 at once.
    let auth_addr = auth.addr();
    drop(Arc::try_unwrap(auth).ok().expect("one owner"));
    let r = send(&s, "/closed/x", &[("authorization", "Bearer other")]).await;
    assert_eq!(r.status(), 503);
    assert!(!client::text(&r).contains(&auth_addr.to_string()));

    let m = s.metrics().await;
    let d = |policy, reason| {
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", policy), ("reason", reason)],
        )
    };
    assert_eq!(d("sso", "denied"), 1.0, "{m}");
    assert_eq!(d("sso", "auth_unavailable"), 2.0, "{m}");
    assert_eq!(d("sso-cached", "denied"), 3.0, "{m}");
    let p = logged_policies(&s, 11).await;
    assert_eq!(p[0], serde_json::Value::Null);
    assert_eq!(p[1], serde_json::json!("sso"));
    assert_eq!(p[2], serde_json::json!("sso"));
    assert_eq!(p[3], serde_json::Value::Null);
}

#[tokio::test]
async fn config_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(
        &path,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: k\n    api_key: { keys: [{ consumer: a, sha256: nothex }] }\n  \
         - name: b\n    basic_auth: { users: [{ username: u, password_hash: \"$1$md5\" }] }\n  \
         - name: f\n    forward_auth: { upstream: nowhere }\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [k, b, f]\n\
         upstreams:\n  - name: up\n    endpoints: [\"127.0.0.1:1\"]\n",
    )
    .unwrap();
    let out = strait_e2e::strait::run_cli(&["validate", "-c", path.to_str().unwrap()]);
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(":6:") && err.contains("sha256 must be 64 hex digits"),
        "{err}"
    );
    assert!(err.contains(":8:") && err.contains("bcrypt"), "{err}");
    assert!(
        err.contains(":10:") && err.contains("`nowhere` is not defined"),
        "{err}"
    );
}
