//! What the admin API and the CLI tell an operator about etcd through the real binaries: a
//! write etcd never answered is an unknown outcome (504), not a failure, and `strait routes`
//! on a bootstrap file reads the routes from etcd or says why it cannot.

use std::time::{Duration, Instant};

use strait_e2e::etcd::{admin_put, respond, Etcd};
use strait_e2e::strait::run_cli;
use strait_e2e::{client, poll_until, Strait};

/// Each test starts etcd and strait processes; one at a time keeps their timings apart.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn body_of(s: &Strait, path: &str) -> Option<String> {
    let r = tokio::time::timeout(Duration::from_secs(2), client::get(s.web(), path))
        .await
        .ok()?
        .ok()?;
    (r.status() == 200).then(|| client::text(&r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_write_etcd_does_not_answer_is_an_unknown_outcome_not_a_failure() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::single().await;
    let c = etcd.client().await;
    etcd.put(&c, "/strait/listeners/web", "listen: 127.0.0.1:0")
        .await;
    etcd.put(&c, "/strait/routes/root", &respond("/", "v0"))
        .await;
    let s = Strait::start(&etcd.bootstrap_with_admin()).await;
    assert_eq!(body_of(&s, "/").await.as_deref(), Some("v0"));

    // The member stops reading: the transaction is sent and waits in its socket.
    etcd.pause(0);
    let (status, body) = admin_put(&s, "routes/late", &respond("/late", "landed")).await;
    etcd.resume(0);
    assert_eq!(status, 504, "{body}\n{}", s.logs_text());
    assert!(body.contains("outcome unknown"), "{body}");
    assert!(body.contains("GET /api/versions"), "{body}");

    // What the 504 warns about: once etcd runs again the write may apply, and the instance
    // then serves whatever etcd holds, as with any other change.
    let c = etcd.client().await;
    let applied = poll_until(
        Duration::from_secs(5),
        "the instance matches etcd",
        || async {
            let held = etcd.value(&c, "/strait/routes/late").await.is_some();
            let served = body_of(&s, "/late").await.is_some();
            (held == served).then_some(held)
        },
    )
    .await;
    eprintln!(
        "after the 504, etcd {} the write",
        if applied { "applied" } else { "dropped" }
    );

    // A write that could not be sent at all is a plain failure: it cannot apply later.
    etcd.stop_all();
    let (status, body) = admin_put(&s, "routes/never", &respond("/never", "n")).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("outcome unknown"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_an_etcd_bootstrap_lists_what_etcd_holds_or_says_it_cannot() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::single().await;
    let c = etcd.client().await;
    etcd.put(&c, "/strait/listeners/web", "listen: 127.0.0.1:0")
        .await;
    etcd.put(
        &c,
        "/strait/routes/all",
        "match: { path_prefix: / }\nrespond: { body: all }",
    )
    .await;
    etcd.put(&c, "/strait/routes/api", &respond("/v1", "api"))
        .await;
    // `api` first although it sorts after `all`, which would otherwise shadow it.
    etcd.put(&c, "/strait/route_order", "[api, all]").await;
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("bootstrap.yaml");
    std::fs::write(&boot, etcd.bootstrap_with_admin()).unwrap();
    let boot = boot.to_str().unwrap();

    let out = run_cli(&["routes", "-c", boot]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let order: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(order, ["api", "all"], "{stdout}");
    assert!(stdout.contains("path=/v1"), "{stdout}");
    assert!(stderr.contains("routes read from"), "{stderr}");

    // A route etcd holds that another shadows is named by its key, as `validate` would.
    etcd.put(&c, "/strait/route_order", "[all, api]").await;
    let out = run_cli(&["routes", "-c", boot]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("etcd:/strait/routes/api") && stderr.contains("warning"),
        "{stderr}"
    );

    // With etcd gone it says so, within the bootstrap's dial_timeout (1 s), instead of
    // judging the bootstrap file as if it were the whole configuration.
    etcd.stop_all();
    let started = Instant::now();
    let out = run_cli(&["routes", "-c", boot]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot read the configuration from etcd"),
        "{stderr}"
    );
    assert!(!stderr.contains("listener is required"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
}
