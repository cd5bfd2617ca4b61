//! Weighted splits through the real binary with two real upstreams: exact 95/5 shares, gray overrides by header, cookie and query, sticky users that stay put and only move onto a canary whose weight rises, and JWT-claim stickiness.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::json;
use strait_e2e::client::reqwest_client;
use strait_e2e::{closed_addr, metrics, poll_until, within, Strait, Upstream};

const SECRET: &str = "0123456789abcdef0123456789abcdef-split";

/// Routes over `stable` and `canary`: `/checkout` 95/5 with overrides, `/dark` with a
/// weight-0 upstream reachable by header only, `/sticky` and `/claim` sticky by user with
/// the canary at `canary_weight` (of 100), `/down` forcing an upstream with no live endpoint.
fn config(stable: SocketAddr, canary: SocketAddr, canary_weight: u32) -> String {
    let stable_weight = 100 - canary_weight;
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n\
         \x20 - name: checkout\n    match: {{ path_prefix: /checkout }}\n\
         \x20   upstreams: [{{ name: stable, weight: 95 }}, {{ name: canary, weight: 5 }}]\n\
         \x20   split:\n      overrides:\n\
         \x20       - {{ header: x-canary, value: always, upstream: canary }}\n\
         \x20       - {{ cookie: beta, value: \"1\", upstream: canary }}\n\
         \x20       - {{ query: canary, value: \"1\", upstream: canary }}\n\
         \x20 - name: dark\n    match: {{ path_prefix: /dark }}\n\
         \x20   upstreams: [{{ name: stable, weight: 1 }}, {{ name: canary, weight: 0 }}]\n\
         \x20   split: {{ overrides: [{{ header: x-dark, upstream: canary }}] }}\n\
         \x20 - name: sticky\n    match: {{ path_prefix: /sticky }}\n\
         \x20   upstreams: [{{ name: stable, weight: {stable_weight} }}, {{ name: canary, weight: {canary_weight} }}]\n\
         \x20   split: {{ sticky: {{ key: \"header:x-user-id\" }} }}\n\
         \x20 - name: claim\n    match: {{ path_prefix: /claim }}\n\
         \x20   upstreams: [{{ name: stable, weight: {stable_weight} }}, {{ name: canary, weight: {canary_weight} }}]\n\
         \x20   split: {{ sticky: {{ key: \"claim:sub\" }} }}\n\
         \x20   policies:\n      - jwt:\n          algorithms: [HS256]\n          keys: [{{ secret: \"{SECRET}\" }}]\n\
         \x20 - name: down\n    match: {{ path_prefix: /down }}\n\
         \x20   upstreams: [{{ name: stable, weight: 1 }}, {{ name: gone, weight: 0 }}]\n\
         \x20   split: {{ overrides: [{{ header: x-gone, upstream: gone }}] }}\n\
         \x20 - name: gone\n    match: {{ path_prefix: /plain-gone }}\n    upstream: gone\n\
         upstreams:\n  - {{ name: stable, endpoints: [\"{stable}\"] }}\n\
         \x20 - {{ name: canary, endpoints: [\"{canary}\"] }}\n\
         \x20 - {{ name: gone, endpoints: [\"{}\"] }}\n",
        closed_addr()
    )
}

/// The upstream that answered a GET of `path` with `headers`.
async fn served_by(
    client: &reqwest::Client,
    s: &Strait,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let mut req = client.get(s.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status(), 200, "{path} {headers:?}");
    resp.text().await.expect("body")
}

fn counts<'a>(names: impl IntoIterator<Item = &'a String>) -> HashMap<&'a str, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.as_str()).or_insert(0) += 1;
    }
    m
}

async fn start() -> (Strait, Upstream, Upstream) {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let s = Strait::start(&config(stable.addr(), canary.addr(), 5)).await;
    (s, stable, canary)
}

#[tokio::test]
async fn weights_95_5_give_shares_within_one_point_over_ten_thousand_requests() {
    const WORKERS: usize = 10;
    const EACH: usize = 1_000;
    let (s, stable, canary) = start().await;
    let url = s.url("/checkout");
    let names = within(Duration::from_secs(180), "10,000 requests", async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            let url = url.clone();
            tasks.spawn(async move {
                let client = reqwest_client();
                let mut out = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    let r = client.get(&url).send().await.expect("request");
                    assert_eq!(r.status(), 200);
                    out.push(r.text().await.expect("body"));
                }
                out
            });
        }
        let mut all = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.expect("worker"));
        }
        all
    })
    .await;
    let c = counts(&names);
    let canary_share = c.get("canary").copied().unwrap_or(0) as f64 / names.len() as f64;
    assert!((canary_share - 0.05).abs() <= 0.01, "{c:?}");
    // Smooth weighted round robin is exact over every full period of 100.
    assert_eq!(c.get("canary"), Some(&500), "{c:?}");
    assert_eq!(stable.requests().len() + canary.requests().len(), 10_000);
}

#[tokio::test]
async fn overrides_by_header_cookie_and_query_force_the_canary() {
    let (s, _stable, _canary) = start().await;
    let client = reqwest_client();
    for (path, headers) in [
        ("/checkout", vec![("x-canary", "always")]),
        ("/checkout", vec![("cookie", "theme=dark; beta=1")]),
        ("/checkout?x=y&canary=1", vec![]),
    ] {
        for _ in 0..50 {
            assert_eq!(
                served_by(&client, &s, path, &headers).await,
                "canary",
                "{path} {headers:?}"
            );
        }
    }
    // A different value is no override: 100 requests in a row are one period of the weights.
    let mut names = Vec::new();
    for i in 0..100 {
        let (path, h) = match i % 3 {
            0 => ("/checkout", ("x-canary", "never")),
            1 => ("/checkout", ("cookie", "beta=0")),
            _ => ("/checkout?canary=2", ("x-other", "1")),
        };
        names.push(served_by(&client, &s, path, &[h]).await);
    }
    let c = counts(&names);
    assert_eq!(
        (c.get("stable"), c.get("canary")),
        (Some(&95), Some(&5)),
        "{c:?}"
    );
}

#[tokio::test]
async fn a_weight_zero_upstream_is_reachable_only_by_its_override() {
    let (s, _stable, canary) = start().await;
    let client = reqwest_client();
    for _ in 0..50 {
        assert_eq!(served_by(&client, &s, "/dark", &[]).await, "stable");
    }
    assert!(canary.requests().is_empty());
    for _ in 0..20 {
        assert_eq!(
            served_by(&client, &s, "/dark", &[("x-dark", "")]).await,
            "canary"
        );
    }
}

#[tokio::test]
async fn an_overridden_upstream_with_no_live_endpoint_fails_as_a_plain_route_does() {
    let (s, stable, _canary) = start().await;
    let client = reqwest_client();
    let plain = client
        .get(s.url("/plain-gone"))
        .send()
        .await
        .unwrap()
        .status();
    let forced = client
        .get(s.url("/down"))
        .header("x-gone", "1")
        .send()
        .await
        .unwrap()
        .status();
    assert!(plain.is_server_error(), "{plain}");
    assert_eq!(forced, plain, "no fallback to another upstream");
    assert!(stable.requests().is_empty());
}

/// Each of `users` once on `path`, the user id in `x-user-id`: the upstream each got.
async fn assign(s: &Strait, path: &str, users: usize) -> Vec<String> {
    let client = reqwest_client();
    let mut out = Vec::with_capacity(users);
    for u in 0..users {
        let id = format!("user-{u}");
        out.push(served_by(&client, s, path, &[("x-user-id", &id)]).await);
    }
    out
}

#[tokio::test]
async fn sticky_users_keep_their_upstream_and_only_move_onto_a_growing_canary() {
    const USERS: usize = 2_000;
    let (s, stable, canary) = start().await;
    let first = within(
        Duration::from_secs(120),
        "first pass",
        assign(&s, "/sticky", USERS),
    )
    .await;
    let again = within(
        Duration::from_secs(120),
        "second pass",
        assign(&s, "/sticky", USERS),
    )
    .await;
    assert_eq!(
        first, again,
        "a user changed upstream on a repeated request"
    );
    let share = |v: &[String]| v.iter().filter(|n| *n == "canary").count() as f64 / v.len() as f64;
    // 2,000 users: one standard deviation of a 5% share is 0.5 points.
    assert!(
        (share(&first) - 0.05).abs() < 0.025,
        "canary share {}",
        share(&first)
    );

    // The canary grows from 5 to 20 (stable 95 → 80) by rewriting the file.
    s.write_config(&config(stable.addr(), canary.addr(), 20));
    poll_until(Duration::from_secs(10), "reload applied", || async {
        let m = s.metrics().await;
        (metrics::sum(&m, "strait_config_version", &[]) >= 2.0).then_some(())
    })
    .await;
    let after = within(
        Duration::from_secs(120),
        "after reload",
        assign(&s, "/sticky", USERS),
    )
    .await;
    let back: Vec<usize> = (0..USERS)
        .filter(|&u| first[u] == "canary" && after[u] == "stable")
        .collect();
    assert!(
        back.is_empty(),
        "users moved from canary back to stable: {back:?}"
    );
    // 2,000 users: one standard deviation of a 20% share is 0.9 points.
    assert!(
        (share(&after) - 0.20).abs() < 0.04,
        "canary share {}",
        share(&after)
    );
    let again = within(
        Duration::from_secs(120),
        "repeat after reload",
        assign(&s, "/sticky", USERS),
    )
    .await;
    assert_eq!(
        after, again,
        "a user changed upstream on a repeated request after the reload"
    );
}

fn hs256_token(sub: &str) -> String {
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256"})),
        b64(json!({"sub": sub, "exp": exp}))
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test]
async fn a_verified_claim_is_a_sticky_key_like_a_header_with_the_same_value() {
    const USERS: usize = 300;
    let (s, _stable, _canary) = start().await;
    let client = reqwest_client();
    let by_header = assign(&s, "/sticky", USERS).await;
    let mut by_claim = Vec::with_capacity(USERS);
    for u in 0..USERS {
        let auth = format!("Bearer {}", hs256_token(&format!("user-{u}")));
        let first = served_by(&client, &s, "/claim", &[("authorization", &auth)]).await;
        assert_eq!(
            served_by(&client, &s, "/claim", &[("authorization", &auth)]).await,
            first
        );
        by_claim.push(first);
    }
    assert_eq!(
        by_claim, by_header,
        "the same user value lands on the same upstream"
    );
    assert!(
        by_claim.iter().any(|n| n == "canary"),
        "some of {USERS} users are canary users"
    );
    // Without a token the jwt policy answers; the split never runs.
    let r = client.get(s.url("/claim")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_access_log_says_what_chose_the_upstream() {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let log = "access.log";
    let yaml = format!(
        "{}observability:\n  access_log: {{ path: {log} }}\n",
        config(stable.addr(), canary.addr(), 5)
    );
    let s = Strait::start(&yaml).await;
    let client = reqwest_client();
    served_by(&client, &s, "/checkout", &[("x-canary", "always")]).await;
    served_by(&client, &s, "/sticky", &[("x-user-id", "u1")]).await;
    served_by(&client, &s, "/sticky", &[]).await;
    let lines = strait_e2e::wait_json_lines(&s.dir().join(log), 3).await;
    let split: Vec<&str> = lines.iter().map(|l| l["split"].as_str().unwrap()).collect();
    assert_eq!(split, ["override", "sticky", "weights"]);
}
