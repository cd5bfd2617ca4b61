//! One rollout across a fleet on a real etcd: two strait instances on the same prefix, with the rollout in etcd's `rollouts/` key; one leads, both serve the same weights step by step, a pause on the follower's admin API pauses the fleet, and killing the leader lets the other take over from the stored step and finish; and `strait config push` putting policies and rollouts in etcd.

use std::time::{Duration, Instant};

use serde_json::Value;
use strait_e2e::admin::AdminClient;
use strait_e2e::etcd::{Etcd, ADMIN_TOKEN};
use strait_e2e::recorder::Recorder;
use strait_e2e::strait::run_cli;
use strait_e2e::{poll_until, Strait, Upstream};

/// Each test starts etcd and strait processes; one at a time keeps their timings apart.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The rollout's own entry and the `fleet` object of `GET /api/rollouts`.
async fn rollout(admin: &AdminClient) -> (Value, Value) {
    let (status, v, _) = admin.json("/api/rollouts").await;
    assert_eq!(status, 200, "{v}");
    (v["rollouts"][0].clone(), v["fleet"].clone())
}

fn canary_weight(r: &Value) -> u64 {
    r["weights"]["v2"].as_u64().expect("v2 weight")
}

/// The phase, step and canary weight an instance shows.
fn position(r: &Value) -> (String, u64, u64) {
    (
        r["phase"].as_str().unwrap_or_default().to_string(),
        r["step"].as_u64().unwrap_or(99),
        canary_weight(r),
    )
}

/// Polls both instances until `check` holds on each; returns what they show then.
async fn both<F: Fn(&Value) -> bool>(
    admins: [&AdminClient; 2],
    limit: Duration,
    what: &str,
    check: F,
) -> [Value; 2] {
    poll_until(limit, what, || async {
        let a = rollout(admins[0]).await.0;
        let b = rollout(admins[1]).await.0;
        (check(&a) && check(&b)).then_some([a, b])
    })
    .await
}

async fn post(admin: &AdminClient, path: &str) -> (u16, Value) {
    admin.write(reqwest::Method::POST, path, None, "").await
}

/// Seeds etcd with a listener, the upstreams `v1` and `v2`, the split route `checkout` and its
/// rollout with `steps`, judged every 400 ms.
async fn seed(etcd: &Etcd, upstreams: &[&Upstream; 2], steps: &str) {
    let c = etcd.client().await;
    etcd.put(&c, "/strait/listeners/web", "listen: 127.0.0.1:0")
        .await;
    for (name, u) in ["v1", "v2"].iter().zip(upstreams) {
        let value = format!("endpoints: [\"{}\"]", u.addr());
        etcd.put(&c, &format!("/strait/upstreams/{name}"), &value)
            .await;
    }
    etcd.put(
        &c,
        "/strait/routes/checkout",
        "match: { path_prefix: /checkout }\nupstreams: [v1, v2]",
    )
    .await;
    let rollout = format!(
        "route: checkout\nstable: v1\ncanary: v2\nsteps: {steps}\n\
         analysis: {{ interval: 400ms, min_requests: 3, max_error_rate: 0.01 }}"
    );
    etcd.put(&c, "/strait/rollouts/checkout", &rollout).await;
}

/// Two instances, `east` and `west`, on etcd's prefix, and the one that leads once both agree.
async fn pair(etcd: &Etcd) -> (Strait, Strait, String) {
    let boot = etcd.bootstrap_with_admin();
    let east = Strait::start_opts(&boot, &[], &[], &[("STRAIT_INSTANCE_ID", "east")]).await;
    let west = Strait::start_opts(&boot, &[], &[], &[("STRAIT_INSTANCE_ID", "west")]).await;
    let admin_east = AdminClient::with_token(east.admin(), ADMIN_TOKEN);
    let admin_west = AdminClient::with_token(west.admin(), ADMIN_TOKEN);
    let leader = poll_until(Duration::from_secs(10), "a leader", || async {
        let (_, fe) = rollout(&admin_east).await;
        let (_, fw) = rollout(&admin_west).await;
        let l = fe["leader"].as_str()?.to_string();
        (fw["leader"].as_str() == Some(&l)).then_some(l)
    })
    .await;
    assert!(leader == "east" || leader == "west", "{leader}");
    (east, west, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_etcd_runs_one_rollout_that_survives_its_leader() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    let c = etcd.client().await;
    // Step 1 holds 5 s, long enough to pause it after the followers saw it.
    seed(
        &etcd,
        &[&v1, &v2],
        "[{ weight: 20, pause: 1s }, { weight: 50, pause: 5s }, { weight: 80, pause: 6s }]",
    )
    .await;
    let (mut east, mut west, leader) = pair(&etcd).await;
    let admin_east = AdminClient::with_token(east.admin(), ADMIN_TOKEN);
    let admin_west = AdminClient::with_token(west.admin(), ADMIN_TOKEN);
    let admins = [&admin_east, &admin_west];
    let (_, fe) = rollout(&admin_east).await;
    let (_, fw) = rollout(&admin_west).await;
    assert_eq!(
        (fe["instance"].as_str(), fw["instance"].as_str()),
        (Some("east"), Some("west"))
    );
    let (lead, follow, admin_follow) = match leader.as_str() {
        "east" => (&mut east, &mut west, &admin_west),
        _ => (&mut west, &mut east, &admin_east),
    };
    let follower_name = if leader == "east" { "west" } else { "east" };

    // Traffic through both: the leader's share is what its built-in analysis judges.
    let load_lead = Recorder::start(lead.web(), "checkout");
    let load_follow = Recorder::start(follow.web(), "checkout");

    // Both show the same steps in the same order.
    let mut seen: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = [rollout(&admin_east).await.0, rollout(&admin_west).await.0];
        for (i, r) in r.iter().enumerate() {
            let w = canary_weight(r);
            if seen[i].last() != Some(&w) {
                seen[i].push(w);
            }
        }
        if r.iter().all(|r| r["step"] == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "step 1 not reached: {r:?}\n{}",
            lead.logs_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, [vec![20, 50], vec![20, 50]]);

    // A pause through the follower's admin API pauses the fleet.
    let (status, paused) = post(admin_follow, "/api/rollouts/checkout/pause").await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["phase"], "paused");
    let [a, b] = both(admins, Duration::from_secs(5), "paused on both", |r| {
        r["phase"] == "paused"
    })
    .await;
    assert_eq!(position(&a), ("paused".into(), 1, 50));
    assert_eq!(position(&b), ("paused".into(), 1, 50));
    // Longer than the step's pause, with passing analyses: nobody advances.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for admin in admins {
        assert_eq!(position(&rollout(admin).await.0), ("paused".into(), 1, 50));
    }
    // Both instances serve the stored weights: 50 consecutive requests split 25/25.
    for load in [&load_lead, &load_follow] {
        let on_canary = load.count_after(load.len() + 10, 50, "v2").await;
        assert!(
            (23..=27).contains(&on_canary),
            "{on_canary} of 50 on the canary at 50%"
        );
    }

    // Resumed through the follower too; the fleet goes on to step 2.
    let (status, resumed) = post(admin_follow, "/api/rollouts/checkout/resume").await;
    assert_eq!(status, 200, "{resumed}");
    let [a, b] = both(admins, Duration::from_secs(20), "step 2 on both", |r| {
        r["step"] == 2
    })
    .await;
    assert_eq!(position(&a), ("progressing".into(), 2, 80));
    assert_eq!(position(&b), ("progressing".into(), 2, 80));

    // The leader dies; the follower takes over from the stored step once the lease ends.
    lead.signal("KILL");
    lead.wait_exit(Duration::from_secs(5)).await;
    let killed = Instant::now();
    let mut weights = Vec::new();
    let mut took_over = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let (r, f) = rollout(admin_follow).await;
        weights.push(canary_weight(&r));
        if took_over.is_none() && f["leader"].as_str() == Some(follower_name) {
            took_over = Some((killed.elapsed(), r.clone()));
        }
        if r["phase"] == "promoted" {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "not promoted: {r}\n{}",
            follow.logs_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (after, at) = took_over.expect("the follower took over");
    assert!(after < Duration::from_secs(9), "took over after {after:?}");
    assert_eq!(position(&at).1, 2, "continues from the stored step: {at}");
    assert_eq!(canary_weight(&done), 100);
    assert!(
        weights.iter().all(|w| *w >= 80),
        "never went back to an earlier step: {weights:?}"
    );
    assert!(follow
        .logs_text()
        .contains("this instance leads the fleet's rollouts"));

    // The state lives outside the watched prefix.
    let stored = etcd
        .value(&c, "/strait.state/rollouts")
        .await
        .expect("state key");
    let v: Value = serde_json::from_str(&stored).expect("json");
    assert_eq!(v["leader"], follower_name);
    assert_eq!(v["rollouts"]["checkout"]["phase"], "promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_push_puts_policies_and_rollouts_in_etcd_and_not_beside_a_bootstrap_copy() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(
        &file,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         upstreams:\n  - { name: v1, endpoints: [\"127.0.0.1:1\"] }\n  - { name: v2, endpoints: [\"127.0.0.1:2\"] }\n\
         policies:\n  - name: limit\n    rate_limit: { requests: 100, per: 1s }\n\
         routes:\n  - name: checkout\n    upstreams: [v1, v2]\n    policies: [limit]\n\
         rollouts:\n  - name: checkout\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: [{ weight: 10, pause: 1m }]\n",
    )
    .unwrap();
    let ep = etcd.endpoints()[0].clone();
    let out = run_cli(&[
        "config",
        "push",
        "-c",
        file.to_str().unwrap(),
        "--etcd",
        &ep,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = etcd.client().await;
    assert!(etcd.value(&c, "/strait/policies/limit").await.is_some());
    assert!(etcd.value(&c, "/strait/rollouts/checkout").await.is_some());

    let s = Strait::start(&etcd.bootstrap_with_admin()).await;
    let admin = AdminClient::with_token(s.admin(), ADMIN_TOKEN);
    let (r, _) = rollout(&admin).await;
    assert_eq!(
        (r["name"].as_str(), canary_weight(&r)),
        (Some("checkout"), 10)
    );

    // A bootstrap file that keeps its own `policies:` while etcd has them too is refused,
    // naming the key.
    let boot = dir.path().join("boot.yaml");
    std::fs::write(
        &boot,
        format!(
            "{}policies:\n  - name: limit\n    rate_limit: {{ requests: 1, per: 1s }}\n",
            etcd.bootstrap()
        ),
    )
    .unwrap();
    let out = run_cli(&["routes", "-c", boot.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("etcd:/strait/policies/limit") && err.contains("also in the bootstrap file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_sigterm_hands_over_at_once() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let (v1, v2) = (Upstream::start("v1").await, Upstream::start("v2").await);
    seed(&etcd, &[&v1, &v2], "[{ weight: 30, pause: 1m }]").await;
    let (mut east, mut west, leader) = pair(&etcd).await;
    let (lead, follow, follower) = match leader.as_str() {
        "east" => (&mut east, &mut west, "west"),
        _ => (&mut west, &mut east, "east"),
    };
    let admin = AdminClient::with_token(follow.admin(), ADMIN_TOKEN);
    lead.signal("TERM");
    let stopped = Instant::now();
    lead.wait_exit(Duration::from_secs(10)).await;
    poll_until(Duration::from_secs(4), "the follower leads", || async {
        let (_, f) = rollout(&admin).await;
        (f["leader"].as_str() == Some(follower)).then_some(())
    })
    .await;
    // Within a poll or two, not the 6 s a lease runs.
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(4), "took over after {took:?}");
    assert!(lead.logs_text().contains("rollout leadership released"));
    assert_eq!(
        position(&rollout(&admin).await.0),
        ("progressing".into(), 0, 30)
    );
}
