//! Load balancing across recording upstreams: smooth weighted round robin,
//! random, least_request (P2C), consistent_hash by header, and active health
//! checks removing and restoring an endpoint.

use std::collections::HashMap;
use std::time::Duration;

use strait_e2e::client::reqwest_client;
use strait_e2e::{poll_until, Reply, Strait, Upstream};

fn config(endpoints: &str, upstream_extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: pool\n\
         upstreams:\n  - name: pool\n    endpoints:\n{endpoints}{upstream_extra}"
    )
}

fn endpoint(up: &Upstream, weight: u32) -> String {
    format!(
        "      - {{ address: \"{}\", weight: {weight} }}\n",
        up.addr()
    )
}

/// Send `n` sequential GETs; returns the upstream name (x-upstream) of each.
async fn sequence(s: &Strait, n: usize, headers: &[(&str, &str)]) -> Vec<String> {
    let client = reqwest_client();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = client.get(s.url("/lb"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200);
        out.push(
            resp.headers()
                .get("x-upstream")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
        );
    }
    out
}

fn counts(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn round_robin_is_smooth_and_weighted_one_to_three() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let s = Strait::start(&config(&(endpoint(&a, 1) + &endpoint(&b, 3)), "")).await;
    let seq = sequence(&s, 400, &[]).await;
    let c = counts(&seq);
    assert_eq!(c.get("a"), Some(&100), "weight 1 of 4: {c:?}");
    assert_eq!(c.get("b"), Some(&300), "weight 3 of 4: {c:?}");
    for (i, window) in seq.chunks(4).enumerate() {
        let in_window = window.iter().filter(|n| *n == "a").count();
        assert_eq!(
            in_window, 1,
            "smooth WRR: each run of 4 picks has exactly one `a` (window {i}: {window:?})"
        );
    }
    assert_eq!(a.requests().len() + b.requests().len(), 400);
}

#[tokio::test]
async fn random_spreads_requests_over_all_endpoints() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let s = Strait::start(&config(
        &(endpoint(&a, 1) + &endpoint(&b, 1)),
        "    load_balancer: random\n",
    ))
    .await;
    let seq = sequence(&s, 200, &[]).await;
    let c = counts(&seq);
    let (na, nb) = (
        c.get("a").copied().unwrap_or(0),
        c.get("b").copied().unwrap_or(0),
    );
    assert_eq!(na + nb, 200);
    // Binomial(200, 0.5): sd ~7; 60..140 is more than 5 sd either way.
    assert!((60..=140).contains(&na), "random is badly skewed: {c:?}");
    // A strict alternation would mean round robin, not random.
    let alternations = seq.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        alternations < 190,
        "sequence looks like round robin: {alternations} switches"
    );
}

#[tokio::test]
async fn least_request_avoids_the_busy_endpoint() {
    let slow = Upstream::with_handler("slow", |_| {
        Reply::text("slow").delay(Duration::from_secs(1))
    })
    .await;
    let fast = Upstream::start("fast").await;
    let s = Strait::start(&config(
        &(endpoint(&slow, 1) + &endpoint(&fast, 1)),
        "    load_balancer: least_request\n",
    ))
    .await;
    // Four clients request concurrently for a fixed time. A request only goes
    // to `slow` when its in-flight count is not above `fast`'s, so `slow`
    // holds about one request at a time; round robin or random would send it
    // half of all requests (each costing a client 1 s).
    let client = reqwest_client();
    let run_for = Duration::from_millis(2500);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        let url = s.url("/lb");
        tasks.push(tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut names = Vec::new();
            for _ in 0..20_000 {
                if start.elapsed() >= run_for {
                    break;
                }
                let resp = client.get(&url).send().await.expect("request");
                assert_eq!(resp.status(), 200);
                names.push(header_of(&resp));
            }
            names
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("least_request loops finished")
                .unwrap(),
        );
    }
    let c = counts(&all);
    let slow_n = c.get("slow").copied().unwrap_or(0);
    let fast_n = c.get("fast").copied().unwrap_or(0);
    eprintln!("least_request distribution: {c:?}");
    assert!(fast_n >= 100, "too few requests to judge: {c:?}");
    assert!(
        slow_n * 10 <= fast_n,
        "least_request should send most traffic to the idle endpoint: {c:?}"
    );
    assert_eq!(slow.requests().len(), slow_n);
}

fn header_of(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn consistent_hash_keeps_each_key_on_one_endpoint_and_spreads_keys() {
    let ups = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let eps: String = ups.iter().map(|u| endpoint(u, 1)).collect();
    let s = Strait::start(&config(
        &eps,
        "    load_balancer: consistent_hash\n    hash_on: { header: x-user }\n",
    ))
    .await;
    let mut owner: HashMap<String, String> = HashMap::new();
    for round in 0..4 {
        for k in 0..30 {
            let key = format!("user-{k}");
            let got = sequence(&s, 1, &[("x-user", &key)]).await.remove(0);
            match owner.get(&key) {
                Some(prev) => assert_eq!(prev, &got, "key {key} moved in round {round}"),
                None => {
                    owner.insert(key, got);
                }
            }
        }
    }
    let used: std::collections::HashSet<&String> = owner.values().collect();
    assert!(
        used.len() >= 2,
        "30 keys all hashed to one endpoint: {owner:?}"
    );
}

#[tokio::test]
async fn unhealthy_endpoint_is_removed_and_returns_when_healthy() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let hc = "    health_check: { type: http, path: /healthz, interval: 100ms, timeout: 1s, \
              healthy_threshold: 1, unhealthy_threshold: 1 }\n";
    let s = Strait::start(&config(&(endpoint(&a, 1) + &endpoint(&b, 1)), hc)).await;
    let client = reqwest_client();
    poll_until(
        Duration::from_secs(5),
        "both endpoints serve while healthy",
        || async {
            let mut seen = Vec::new();
            for _ in 0..4 {
                let resp = client.get(s.url("/lb")).send().await.ok()?;
                if resp.status() == 200 {
                    seen.push(header_of(&resp));
                }
            }
            (seen.contains(&"a".to_string()) && seen.contains(&"b".to_string())).then_some(())
        },
    )
    .await;
    poll_until(
        Duration::from_secs(5),
        "health checks reach endpoint a",
        || async {
            a.requests()
                .iter()
                .any(|r| r.uri.path() == "/healthz")
                .then_some(())
        },
    )
    .await;

    a.set_status_override(Some(503));
    poll_until(
        Duration::from_secs(5),
        "a is taken out of rotation",
        || async {
            let mut last = Vec::new();
            for _ in 0..6 {
                let resp = client.get(s.url("/lb")).send().await.ok()?;
                last.push(header_of(&resp));
            }
            last.iter().all(|n| n == "b").then_some(())
        },
    )
    .await;
    let before = a.requests_except("/healthz").len();
    let seq = sequence(&s, 20, &[]).await;
    assert!(
        seq.iter().all(|n| n == "b"),
        "unhealthy a still got traffic: {seq:?}"
    );
    assert_eq!(a.requests_except("/healthz").len(), before);

    a.set_status_override(None);
    poll_until(Duration::from_secs(5), "a returns to rotation", || async {
        let resp = client.get(s.url("/lb")).send().await.ok()?;
        (header_of(&resp) == "a").then_some(())
    })
    .await;
    let seq = sequence(&s, 20, &[]).await;
    let c = counts(&seq);
    assert_eq!(
        c.get("a"),
        Some(&10),
        "healthy again, a gets its share: {c:?}"
    );
}

/// For each hash_on form, 10 keys × 3 requests: each key stays on one endpoint.
#[tokio::test]
async fn consistent_hash_by_cookie_and_path_is_stable_per_key() {
    let ups = [Upstream::start("a").await, Upstream::start("b").await];
    let eps: String = ups.iter().map(|u| endpoint(u, 1)).collect();
    for hash_on in ["{ cookie: session }", "path"] {
        let s = Strait::start(&config(
            &eps,
            &format!("    load_balancer: consistent_hash\n    hash_on: {hash_on}\n"),
        ))
        .await;
        let client = reqwest_client();
        let mut owner: HashMap<usize, String> = HashMap::new();
        for _round in 0..3 {
            for k in 0..10 {
                let req = if hash_on == "path" {
                    client.get(s.url(&format!("/item/{k}")))
                } else {
                    client
                        .get(s.url("/same-path"))
                        .header("cookie", format!("theme=dark; session=s{k}"))
                };
                let resp = req.send().await.expect("request");
                assert_eq!(resp.status(), 200);
                let got = header_of(&resp);
                let prev = owner.entry(k).or_insert_with(|| got.clone());
                assert_eq!(*prev, got, "key {k} moved (hash_on {hash_on})");
            }
        }
    }
}

/// An endpoint added by a reload with `initial_state: unhealthy` gets no traffic until its
/// checks pass; one the reload keeps keeps its health.
#[tokio::test]
async fn a_new_endpoint_starting_unhealthy_waits_for_its_checks() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    b.set_status_override(Some(503));
    let hc = "    health_check: { type: http, path: /healthz, interval: 100ms, timeout: 1s, \
              healthy_threshold: 1, unhealthy_threshold: 1, initial_state: unhealthy }\n";
    let s = Strait::start(&config(&endpoint(&a, 1), hc)).await;
    poll_until(
        Duration::from_secs(5),
        "a passes its first check",
        // Until then `a` is unhealthy too and answers are 503s: not yet a failure.
        || async {
            let resp = reqwest_client().get(s.url("/lb")).send().await.ok()?;
            (resp.status() == 200 && header_of(&resp) == "a").then_some(())
        },
    )
    .await;
    s.write_config(&config(&(endpoint(&a, 1) + &endpoint(&b, 1)), hc));
    poll_until(Duration::from_secs(5), "the reload is applied", || async {
        strait_e2e::metrics::sum(&s.metrics().await, "strait_config_version", &[])
            .eq(&2.0)
            .then_some(())
    })
    .await;
    // b fails its checks: it never gets a request, not even before its first probe.
    let seq = sequence(&s, 20, &[]).await;
    assert!(seq.iter().all(|n| n == "a"), "{seq:?}");
    assert!(b.requests_except("/healthz").is_empty());
    b.set_status_override(None);
    poll_until(
        Duration::from_secs(5),
        "b joins once its check passes",
        || async {
            let seq = sequence(&s, 4, &[]).await;
            seq.iter().any(|n| n == "b").then_some(())
        },
    )
    .await;
}
