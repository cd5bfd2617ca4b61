//! Traffic colouring through the real binary: endpoints labelled by region as real upstream servers, a colour from a header or derived per user, two gateways chained so the colour chosen at the first is honoured at the second, fallback (`any`, `reject`) when the colour's endpoints are down, and the colour in the access log and metrics.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, empty, Proto};
use strait_e2e::config_file::Validated;
use strait_e2e::metrics::sum;
use strait_e2e::{free_port, poll_until, wait_json_lines, Strait, Upstream};

/// An endpoint entry of `up` with `labels` (YAML flow map text, or "" for none).
fn endpoint(addr: &str, labels: &str) -> String {
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!(", labels: {{ {labels} }}")
    };
    format!("      - {{ address: \"{addr}\"{labels} }}\n")
}

/// A gateway with one route to upstream `up` (`endpoints` as made by [`endpoint`]) through the
/// colour policy `colour` (flow map text), an access log, and `upstream_extra` under the upstream.
fn gateway(colour: &str, endpoints: &str, upstream_extra: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n  - name: region\n    colour: {{ {colour} }}\n\
         routes:\n  - name: api\n    upstream: up\n    policies: [region]\n\
         upstreams:\n  - name: up\n    endpoints:\n{endpoints}{upstream_extra}\
         observability:\n  access_log: {{ path: access.log }}\n"
    )
}

const HEADER_ONLY: &str = "header: x-region-id, label: region, values: [eu, us]";

/// GET / with `headers`: the status and the body (the upstream's name).
async fn get(s: &Strait, headers: &[(&str, &str)]) -> (u16, String) {
    let mut b = Request::get("/").header("host", "gw");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client::send(s.web(), Proto::H1, b.body(empty()).unwrap())
        .await
        .expect("request");
    (resp.status().as_u16(), client::text(&resp))
}

struct Fleet {
    eu1: Upstream,
    eu2: Upstream,
    us1: Upstream,
    plain: Upstream,
}

impl Fleet {
    async fn start() -> Fleet {
        Fleet {
            eu1: Upstream::start("eu1").await,
            eu2: Upstream::start("eu2").await,
            us1: Upstream::start("us1").await,
            plain: Upstream::start("plain").await,
        }
    }

    /// The four endpoints: two `region: eu`, one `region: us`, one unlabelled.
    fn endpoints(&self) -> String {
        endpoint(&self.eu1.addr().to_string(), "region: eu, version: v2")
            + &endpoint(&self.eu2.addr().to_string(), "region: eu")
            + &endpoint(&self.us1.addr().to_string(), "region: us")
            + &endpoint(&self.plain.addr().to_string(), "")
    }
}

/// The colour of an upstream's name.
fn region_of(name: &str) -> &'static str {
    match name {
        "eu1" | "eu2" => "eu",
        "us1" => "us",
        other => panic!("not a labelled endpoint: {other}"),
    }
}

#[tokio::test]
async fn a_header_colour_routes_to_the_matching_endpoints_only() {
    let f = Fleet::start().await;
    let s = Strait::start(&gateway(HEADER_ONLY, &f.endpoints(), "")).await;
    let mut eu = HashSet::new();
    for _ in 0..20 {
        let (status, body) = get(&s, &[("x-region-id", "eu")]).await;
        assert_eq!(status, 200);
        assert_eq!(region_of(&body), "eu", "{body}");
        eu.insert(body);
    }
    assert_eq!(eu.len(), 2, "both eu endpoints share the colour's traffic");
    for _ in 0..5 {
        assert_eq!(get(&s, &[("x-region-id", "us")]).await, (200, "us1".into()));
    }
    // The colour header reaches the endpoint unchanged.
    assert!(f
        .us1
        .requests()
        .iter()
        .all(|r| r.header("x-region-id") == "us"));
    // No colour, or one the policy does not know: every endpoint serves, as without the policy.
    for headers in [&[][..], &[("x-region-id", "mars")][..]] {
        let mut seen = HashSet::new();
        for _ in 0..8 {
            let (status, body) = get(&s, headers).await;
            assert_eq!(status, 200);
            seen.insert(body);
        }
        assert_eq!(seen.len(), 4, "{headers:?}: {seen:?}");
    }
    let m = s.metrics().await;
    let count = |colour, result| {
        sum(
            &m,
            "strait_colour_requests_total",
            &[("policy", "region"), ("colour", colour), ("result", result)],
        )
    };
    assert_eq!(count("eu", "matched"), 20.0);
    assert_eq!(count("us", "matched"), 5.0);
    assert_eq!(count("eu", "fallback") + count("us", "fallback"), 0.0);
    assert_eq!(
        sum(&m, "strait_colour_requests_total", &[("colour", "mars")]),
        0.0,
        "unknown colours make no series"
    );
    let log = wait_json_lines(&s.dir().join("access.log"), 41).await;
    assert_eq!(log[0]["colour"], "eu");
    assert_eq!(log[0]["colour_fallback"], false);
    assert!(log[40]["colour"].is_null(), "{}", log[40]);
}

#[tokio::test]
async fn a_derived_colour_is_stable_per_user_spreads_and_is_sent_upstream() {
    let f = Fleet::start().await;
    let colour = format!("{HEADER_ONLY}, derive: {{ key: header:x-user-id }}");
    let s = Strait::start(&gateway(&colour, &f.endpoints(), "")).await;
    let mut per_colour: HashMap<&str, usize> = HashMap::new();
    for u in 0..40 {
        let user = format!("user-{u}");
        let (status, first) = get(&s, &[("x-user-id", &user)]).await;
        assert_eq!(status, 200);
        let colour = region_of(&first);
        for _ in 0..3 {
            let (_, again) = get(&s, &[("x-user-id", &user)]).await;
            assert_eq!(region_of(&again), colour, "{user} changed colour");
        }
        *per_colour.entry(colour).or_default() += 1;
    }
    assert_eq!(
        per_colour.len(),
        2,
        "users spread over both colours: {per_colour:?}"
    );
    assert!(per_colour.values().all(|&n| n >= 8), "{per_colour:?}");
    // The derived colour is set on the upstream request, so the next hop honours it.
    for up in [&f.eu1, &f.eu2, &f.us1] {
        let want = region_of(up.name());
        assert!(up
            .requests()
            .iter()
            .all(|r| r.header("x-region-id") == want));
    }
    // An explicit colour wins over the derived one.
    assert_eq!(
        get(&s, &[("x-user-id", "user-1"), ("x-region-id", "us")]).await,
        (200, "us1".into())
    );
}

#[tokio::test]
async fn the_colour_derived_at_one_gateway_is_honoured_at_the_next() {
    let f = Fleet::start().await;
    // B: service B's gateway, in front of the labelled endpoints; it only reads the header.
    let b = Strait::start(&gateway(HEADER_ONLY, &f.endpoints(), "")).await;
    // A: service A's gateway derives the colour per user and forwards to B.
    let colour = format!("{HEADER_ONLY}, derive: {{ key: header:x-user-id }}");
    let a = Strait::start(&gateway(&colour, &endpoint(&b.web().to_string(), ""), "")).await;
    let mut colours = HashSet::new();
    for u in 0..30 {
        let user = format!("chain-{u}");
        let (status, first) = get(&a, &[("x-user-id", &user)]).await;
        assert_eq!(status, 200);
        for _ in 0..2 {
            let (_, again) = get(&a, &[("x-user-id", &user)]).await;
            assert_eq!(region_of(&again), region_of(&first), "{user}");
        }
        colours.insert(region_of(&first));
    }
    assert_eq!(colours.len(), 2);
    // Every endpoint got the colour it serves in the header A set.
    for up in [&f.eu1, &f.eu2, &f.us1] {
        let want = region_of(up.name());
        assert!(up
            .requests()
            .iter()
            .all(|r| r.header("x-region-id") == want));
    }
    assert!(
        f.plain.requests().is_empty(),
        "a coloured chain never leaves its colour"
    );
    // A's upstream carries no region label: A passes the colour on; B matches it.
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    let total = |m: &str, result| {
        sum(
            m,
            "strait_colour_requests_total",
            &[("policy", "region"), ("result", result)],
        )
    };
    assert_eq!(total(&ma, "passed"), 90.0);
    assert_eq!(total(&mb, "matched"), 90.0);
    assert_eq!(total(&mb, "fallback") + total(&ma, "fallback"), 0.0);
}

/// Endpoints where `region: eu` is two closed ports kept unhealthy by TCP health checks.
fn eu_down(us: &Upstream, plain: &Upstream) -> (String, String) {
    let endpoints = endpoint(&format!("127.0.0.1:{}", free_port()), "region: eu")
        + &endpoint(&format!("127.0.0.1:{}", free_port()), "region: eu")
        + &endpoint(&us.addr().to_string(), "region: us")
        + &endpoint(&plain.addr().to_string(), "");
    let hc = "    health_check: { type: tcp, interval: 100ms, timeout: 50ms, \
              healthy_threshold: 1, unhealthy_threshold: 1, initial_state: unhealthy }\n";
    (endpoints, hc.to_owned())
}

/// The access log lines of `s` with colour `eu`, once there are `n` (the log is written
/// asynchronously, so lines of earlier requests may still be on their way).
async fn eu_lines(s: &Strait, n: usize) -> Vec<serde_json::Value> {
    let path = s.dir().join("access.log");
    poll_until(Duration::from_secs(10), "eu access log lines", || async {
        let l: Vec<_> = strait_e2e::json_lines(&path)
            .into_iter()
            .filter(|l| l["colour"] == "eu")
            .collect();
        (l.len() >= n).then_some(l)
    })
    .await
}

/// Waits until the live endpoints passed their first health check.
async fn wait_healthy(s: &Strait) {
    poll_until(Duration::from_secs(10), "us endpoint healthy", || async {
        (get(s, &[("x-region-id", "us")]).await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn fallback_any_serves_a_colour_whose_endpoints_are_down_from_the_others() {
    let (us1, plain) = (Upstream::start("us1").await, Upstream::start("plain").await);
    let (endpoints, hc) = eu_down(&us1, &plain);
    let colour = format!("{HEADER_ONLY}, fallback: any");
    let s = Strait::start(&gateway(&colour, &endpoints, &hc)).await;
    wait_healthy(&s).await;
    let mut seen = HashSet::new();
    for _ in 0..10 {
        let (status, body) = get(&s, &[("x-region-id", "eu")]).await;
        assert_eq!(status, 200);
        seen.insert(body);
    }
    assert_eq!(seen, HashSet::from(["us1".to_owned(), "plain".to_owned()]));
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_colour_requests_total",
            &[("colour", "eu"), ("result", "fallback")]
        ),
        10.0
    );
    for line in eu_lines(&s, 10).await {
        assert_eq!(line["colour_fallback"], true, "{line}");
        assert_eq!(line["status"], 200, "{line}");
    }
}

#[tokio::test]
async fn fallback_reject_answers_503_with_the_reason_in_metrics_and_the_log() {
    let (us1, plain) = (Upstream::start("us1").await, Upstream::start("plain").await);
    let (endpoints, hc) = eu_down(&us1, &plain);
    let colour = format!("{HEADER_ONLY}, fallback: reject");
    let s = Strait::start(&gateway(&colour, &endpoints, &hc)).await;
    wait_healthy(&s).await;
    for _ in 0..5 {
        assert_eq!(get(&s, &[("x-region-id", "eu")]).await.0, 503);
    }
    // Other colours and uncoloured requests are served as usual.
    assert_eq!(get(&s, &[("x-region-id", "us")]).await, (200, "us1".into()));
    assert_eq!(get(&s, &[]).await.0, 200);
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_colour_requests_total",
            &[("colour", "eu"), ("result", "rejected")]
        ),
        5.0
    );
    // Every rejection is a denial by the policy (the us ones came while us1 started unhealthy).
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "region"), ("reason", "colour_unavailable")]
        ),
        sum(
            &m,
            "strait_colour_requests_total",
            &[("result", "rejected")]
        )
    );
    let log = eu_lines(&s, 5).await;
    let rejected = &log[0];
    assert_eq!(rejected["status"], 503);
    assert_eq!(rejected["colour"], "eu");
    assert_eq!(rejected["policy"], "region");
    assert_eq!(rejected["policy_reason"], "colour_unavailable");
    assert!(
        rejected["error"]
            .as_str()
            .is_some_and(|e| e.contains("colour region=eu")),
        "{rejected}"
    );
}

#[test]
fn bad_labels_and_colour_settings_are_reported_with_their_position() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
                policies:\n  - name: region\n    colour: { header: x-r, label: region, values: [eu, eu] }\n\
                routes:\n  - name: api\n    upstream: up\n    policies: [region]\n\
                upstreams:\n  - name: up\n    endpoints:\n      \
                - { address: \"127.0.0.1:1\", labels: { region: \"e u\" } }\n";
    let v = Validated::run(yaml, &[]);
    assert_eq!(v.code, Some(1), "{}", v.stderr);
    let file = v.file.display().to_string();
    assert!(
        v.stderr
            .contains(&format!("{file}:6:56: colour.values lists `eu` twice")),
        "{}",
        v.stderr
    );
    assert!(
        v.stderr.contains(&format!(
            "{file}:14:53: label `region`: `e u` is not a label value"
        )),
        "{}",
        v.stderr
    );
}
