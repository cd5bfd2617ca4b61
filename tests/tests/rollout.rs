//! SLO-gated rollouts through the real binary: a healthy canary promoted through every step while the observed shares move, a canary failing 10% of requests rolled back within two analysis intervals, admin pause/resume/abort/promote, a restart resuming the stored step, a changed definition restarting, the same decisions from a real Prometheus scraping Strait, and config errors with positions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use strait_e2e::admin::{AdminClient, TOKEN};
use strait_e2e::config_file::{line_of, Validated};
use strait_e2e::metrics::sum;
use strait_e2e::prometheus::Prometheus;
use strait_e2e::recorder::Recorder;
use strait_e2e::{poll_until, Reply, Strait, Upstream};

/// Upstreams, one route per `(path, stable, canary)` and one rollout per route (named like the
/// route), with `steps` and `analysis` as flow YAML.
fn config(
    ups: &[(&str, SocketAddr)],
    routes: &[(&str, &str, &str)],
    steps: &str,
    analysis: &str,
) -> String {
    let mut y = format!(
        "admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\nupstreams:\n"
    );
    for (name, addr) in ups {
        y += &format!("  - {{ name: {name}, endpoints: [\"{addr}\"] }}\n");
    }
    y += "routes:\n";
    for (name, stable, canary) in routes {
        y += &format!(
            "  - name: {name}\n    match: {{ path_prefix: /{name} }}\n    upstreams: [{stable}, {canary}]\n"
        );
    }
    y += "rollouts:\n";
    for (name, stable, canary) in routes {
        y += &format!(
            "  - name: {name}\n    route: {name}\n    stable: {stable}\n    canary: {canary}\n    steps: {steps}\n    analysis: {analysis}\n"
        );
    }
    y
}

/// A canary answering 500 to every 10th request.
async fn flaky(name: &str) -> Upstream {
    let n = Arc::new(AtomicU64::new(0));
    let body = name.to_string();
    Upstream::with_handler(name, move |_| {
        if n.fetch_add(1, Ordering::SeqCst) % 10 == 9 {
            Reply::text("boom").status(500)
        } else {
            Reply::text(&body)
        }
    })
    .await
}

async fn rollout(admin: &AdminClient, name: &str) -> Value {
    let (status, v, _) = admin.json("/api/rollouts").await;
    assert_eq!(status, 200, "{v}");
    v["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no rollout {name} in {v}"))
}

/// Polls until rollout `name` is in `phase`, collecting the canary weights seen on the way.
async fn wait_phase(
    admin: &AdminClient,
    name: &str,
    phase: &str,
    limit: Duration,
) -> (Value, Vec<u64>) {
    let mut weights = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let r = rollout(admin, name).await;
        let canary = r["canary"].as_str().unwrap().to_string();
        let w = r["weights"][&canary].as_u64().unwrap();
        if weights.last() != Some(&w) {
            weights.push(w);
        }
        if r["phase"] == phase {
            return (r, weights);
        }
        assert!(
            Instant::now() < deadline,
            "rollout {name} not {phase} within {limit:?}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(admin: &AdminClient, path: &str) -> (u16, Value) {
    admin.write(reqwest::Method::POST, path, None, "").await
}

#[tokio::test]
async fn a_healthy_canary_is_promoted_through_every_step_and_shares_follow() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let yaml = config(
        &[("v1", v1.addr()), ("v2", v2.addr())],
        &[("checkout", "v1", "v2")],
        "[{ weight: 20, pause: 1s }, { weight: 50, pause: 1s }]",
        "{ interval: 300ms, min_requests: 5, max_error_rate: 0.01, max_p99: 500ms }",
    );
    let s = Strait::start(&yaml).await;
    let admin = AdminClient::new(s.admin());
    let first = rollout(&admin, "checkout").await;
    assert_eq!(first["phase"], "progressing");
    assert_eq!(
        (
            first["weights"]["v1"].as_u64(),
            first["weights"]["v2"].as_u64()
        ),
        (Some(80), Some(20))
    );
    let load = Recorder::start(s.web(), "checkout");
    // Weights are exact per period of the smooth weighted round robin.
    let early = load.count_after(0, 50, "v2").await;
    assert!(
        (8..=12).contains(&early),
        "{early} of the first 50 on the canary at 20%"
    );
    let (done, weights) = wait_phase(&admin, "checkout", "promoted", Duration::from_secs(30)).await;
    assert_eq!(weights.first(), Some(&20));
    assert!(weights.contains(&50), "the 50% step was seen: {weights:?}");
    assert_eq!(weights.last(), Some(&100));
    assert_eq!(done["last_analysis"]["verdict"], "pass");
    assert_eq!(done["last_analysis"]["source"], "metrics");
    let from = load.len() + 20;
    assert_eq!(
        load.count_after(from, 50, "v2").await,
        50,
        "promoted: every request on the canary"
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_rollout_transitions_total",
            &[("rollout", "checkout"), ("to", "promoted")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "strait_rollout_transitions_total",
            &[("rollout", "checkout"), ("to", "progressing")]
        ),
        2.0
    );
    assert_eq!(
        sum(
            &m,
            "strait_rollout_canary_weight",
            &[("rollout", "checkout")]
        ),
        100.0
    );
    assert!(s.logs_text().contains("rollout transition"));
}

#[tokio::test]
async fn a_canary_failing_one_request_in_ten_is_rolled_back_within_two_intervals() {
    let (v1, v2) = (Upstream::start("v1").await, flaky("v2").await);
    let interval = Duration::from_millis(700);
    let yaml = config(
        &[("v1", v1.addr()), ("v2", v2.addr())],
        &[("checkout", "v1", "v2")],
        "[{ weight: 20, pause: 10s }, { weight: 50, pause: 10s }]",
        "{ interval: 700ms, min_requests: 10, max_error_rate: 0.01 }",
    );
    let s = Strait::start(&yaml).await;
    let admin = AdminClient::new(s.admin());
    let load = Recorder::start(s.web(), "checkout");
    let started = Instant::now();
    let (failed, _) = wait_phase(&admin, "checkout", "failed", Duration::from_secs(20)).await;
    // The interval running when the load started may have too few requests; the next breaches.
    let took = started.elapsed();
    assert!(
        took <= interval * 2 + Duration::from_millis(600),
        "rolled back after {took:?}"
    );
    assert_eq!(failed["weights"]["v2"], 0);
    assert_eq!(failed["weights"]["v1"], 100);
    assert_eq!(failed["last_analysis"]["verdict"], "breach");
    assert!(failed["last_analysis"]["error_rate"].as_f64().unwrap() > 0.01);
    let from = load.len() + 20;
    assert_eq!(
        load.count_after(from, 50, "v1").await,
        50,
        "failed: no request on the canary"
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_rollout_transitions_total",
            &[("rollout", "checkout"), ("to", "failed")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "strait_rollout_canary_weight",
            &[("rollout", "checkout")]
        ),
        0.0
    );
}

#[tokio::test]
async fn admin_pauses_resumes_aborts_and_promotes() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let yaml = config(
        &[("v1", v1.addr()), ("v2", v2.addr())],
        &[("checkout", "v1", "v2")],
        "[{ weight: 30, pause: 1h }]",
        "{ interval: 1h }",
    );
    let s = Strait::start(&yaml).await;
    let admin = AdminClient::new(s.admin());
    let (code, r) = post(&admin, "/api/rollouts/checkout/pause").await;
    assert_eq!((code, r["phase"].as_str()), (200, Some("paused")), "{r}");
    assert_eq!(r["weights"]["v2"], 30, "paused keeps the step's weights");
    let (code, r) = post(&admin, "/api/rollouts/checkout/pause").await;
    assert_eq!(code, 409, "{r}");
    let (code, r) = post(&admin, "/api/rollouts/checkout/resume").await;
    assert_eq!(
        (code, r["phase"].as_str()),
        (200, Some("progressing")),
        "{r}"
    );
    let (code, r) = post(&admin, "/api/rollouts/checkout/abort").await;
    assert_eq!(
        (code, r["phase"].as_str(), r["weights"]["v2"].as_u64()),
        (200, Some("aborted"), Some(0)),
        "{r}"
    );
    let load = Recorder::start(s.web(), "checkout");
    assert_eq!(
        load.count_after(0, 30, "v1").await,
        30,
        "aborted: the stable takes everything"
    );
    let (code, r) = post(&admin, "/api/rollouts/checkout/promote").await;
    assert_eq!(
        (code, r["phase"].as_str(), r["weights"]["v2"].as_u64()),
        (200, Some("promoted"), Some(100)),
        "{r}"
    );
    let from = load.len() + 10;
    assert_eq!(
        load.count_after(from, 30, "v2").await,
        30,
        "promoted: the canary takes everything"
    );
    assert_eq!(post(&admin, "/api/rollouts/nope/pause").await.0, 404);
    assert_eq!(post(&admin, "/api/rollouts/checkout/explode").await.0, 404);
    let anonymous = reqwest::Client::new()
        .get(format!("http://{}/api/rollouts", s.admin()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let m = s.metrics().await;
    for to in ["paused", "aborted", "promoted"] {
        assert_eq!(
            sum(
                &m,
                "strait_rollout_transitions_total",
                &[("rollout", "checkout"), ("to", to)]
            ),
            1.0,
            "{to}"
        );
    }
}

#[tokio::test]
async fn a_restart_resumes_the_stored_step_and_a_new_definition_starts_over() {
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let ups = [("v1", v1.addr()), ("v2", v2.addr())];
    let route = [("checkout", "v1", "v2")];
    let analysis = "{ interval: 300ms, min_requests: 5 }";
    let yaml = config(
        &ups,
        &route,
        "[{ weight: 10, pause: 0s }, { weight: 40, pause: 1h }]",
        analysis,
    );
    let mut s = Strait::start(&yaml).await;
    let admin = AdminClient::new(s.admin());
    let load = Recorder::start(s.web(), "checkout");
    poll_until(Duration::from_secs(20), "the second step", || async {
        (rollout(&admin, "checkout").await["step"] == 1).then_some(())
    })
    .await;
    drop(load);
    let stored = std::fs::read_to_string(s.dir().join(".strait-state/rollouts.json")).unwrap();
    assert!(stored.contains("\"step\":1"), "{stored}");

    s.restart().await;
    let admin = AdminClient::new(s.admin());
    let r = rollout(&admin, "checkout").await;
    assert_eq!(
        (r["phase"].as_str(), r["step"].as_u64()),
        (Some("progressing"), Some(1)),
        "{r}"
    );
    assert_eq!(r["weights"]["v2"], 40);
    let load = Recorder::start(s.web(), "checkout");
    let resumed = load.count_after(0, 50, "v2").await;
    assert!(
        (18..=22).contains(&resumed),
        "{resumed} of 50 on the canary at 40% right after the restart"
    );
    drop(load);

    // New steps: the rollout starts again at its first step.
    s.write_config(&config(
        &ups,
        &route,
        "[{ weight: 25, pause: 1h }]",
        analysis,
    ));
    poll_until(Duration::from_secs(10), "the restarted rollout", || async {
        let r = rollout(&admin, "checkout").await;
        (r["step"] == 0 && r["weights"]["v2"] == 25).then_some(())
    })
    .await;
    // Without the rollout, the route's configured weights (1:1) apply again.
    let mut plain = config(&ups, &route, "[{ weight: 25, pause: 1h }]", analysis);
    plain.truncate(plain.find("rollouts:").unwrap());
    s.write_config(&plain);
    poll_until(Duration::from_secs(10), "the rollout removed", || async {
        let (_, v, _) = admin.json("/api/rollouts").await;
        (v["rollouts"].as_array().is_some_and(Vec::is_empty)).then_some(())
    })
    .await;
    let load = Recorder::start(s.web(), "checkout");
    assert_eq!(
        load.count_after(10, 40, "v2").await,
        20,
        "configured 1:1 weights"
    );
}

#[tokio::test]
async fn prometheus_analysis_promotes_the_healthy_canary_and_rolls_back_the_faulty_one() {
    let (a1, a2) = (Upstream::start("a1").await, Upstream::start("a2").await);
    let (b1, b2) = (Upstream::start("b1").await, flaky("b2").await);
    let ups = [
        ("a1", a1.addr()),
        ("a2", a2.addr()),
        ("b1", b1.addr()),
        ("b2", b2.addr()),
    ];
    let routes = [("a", "a1", "a2"), ("b", "b1", "b2")];
    // Prometheus needs Strait's admin address and Strait needs Prometheus's: start without the
    // rollouts, then add them (a reload starts them).
    let mut without = config(&ups, &routes, "[]", "{}");
    without.truncate(without.find("rollouts:").unwrap());
    let s = Strait::start(&without).await;
    let prom = Prometheus::start(s.admin()).await;
    let prom_addr = prom.addr();
    let mut yaml = config(
        &ups,
        &routes,
        "[{ weight: 20, pause: 2s }, { weight: 50, pause: 2s }]",
        "ANALYSIS",
    );
    yaml = yaml.replace(
        "upstreams:\n",
        &format!("upstreams:\n  - {{ name: prom, endpoints: [\"{prom_addr}\"] }}\n"),
    );
    for (name, _, canary) in routes {
        let sel = format!("route=\"{name}\",upstream=\"{canary}\"");
        let analysis = format!(
            "\n      interval: 1s\n      min_requests: 5\n      max_error_rate: 0.01\n      max_p99: 1s\n      prometheus:\n        upstream: prom\n        error_rate: '(sum(rate(strait_http_requests_total{{{sel},code=~\"5..\"}}[5s])) or vector(0)) / sum(rate(strait_http_requests_total{{{sel}}}[5s]))'\n        p99: 'histogram_quantile(0.99, sum by (le) (rate(strait_http_request_duration_seconds_bucket{{{sel}}}[5s])))'"
        );
        yaml = yaml.replacen("analysis: ANALYSIS", &format!("analysis:{analysis}"), 1);
    }
    s.write_config(&yaml);
    let admin = AdminClient::new(s.admin());
    poll_until(Duration::from_secs(10), "rollouts started", || async {
        let (_, v, _) = admin.json("/api/rollouts").await;
        (v["rollouts"].as_array().is_some_and(|r| r.len() == 2)).then_some(())
    })
    .await;
    let (_la, _lb) = (Recorder::start(s.web(), "a"), Recorder::start(s.web(), "b"));
    let (failed, _) = wait_phase(&admin, "b", "failed", Duration::from_secs(30)).await;
    assert_eq!(failed["last_analysis"]["source"], "prometheus");
    assert_eq!(failed["last_analysis"]["verdict"], "breach");
    assert_eq!(failed["weights"]["b2"], 0);
    let (promoted, weights) = wait_phase(&admin, "a", "promoted", Duration::from_secs(40)).await;
    assert_eq!(promoted["last_analysis"]["source"], "prometheus");
    assert_eq!(promoted["last_analysis"]["verdict"], "pass");
    assert!(weights.contains(&100), "{weights:?}");
}

#[test]
fn rollout_errors_are_reported_with_their_positions() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nupstreams:\n  - { name: v1, endpoints: [\"127.0.0.1:1\"] }\n  - { name: v2, endpoints: [\"127.0.0.1:2\"] }\nroutes:\n  - name: checkout\n    upstreams: [v1]\nrollouts:\n  - name: c\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: [{ weight: 150 }]\n";
    let v = Validated::run(yaml, &[]);
    let canary = v.errors_at(line_of(yaml, "canary: v2"));
    assert!(
        canary[0].contains("canary upstream `v2` is not among route `checkout`'s upstreams"),
        "{canary:?}"
    );
    let steps = v.errors_at(line_of(yaml, "weight: 150"));
    assert!(
        steps[0].contains("weight must be a whole number from 0 to 100"),
        "{steps:?}"
    );
}
