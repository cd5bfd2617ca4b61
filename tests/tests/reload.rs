//! Reloads through the real binary: a changed file is picked up (watch and SIGHUP), an unchanged one makes no
//! version, an invalid one keeps the running configuration and is counted, and requests keep succeeding
//! while reloads happen.

use std::time::Duration;

use strait_e2e::client::{self, text};
use strait_e2e::{metrics, poll_until, Strait};

fn config(body: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    match: {{ path_prefix: / }}\n    respond: {{ status: 200, body: \"{body}\" }}\n"
    )
}

/// Replaces the config the way deploy tools do: write a temp file, rename it over the old one.
fn rewrite(s: &Strait, yaml: &str) {
    let admin = format!("admin:\n  listen: {}\n", s.admin());
    let tmp = s.dir().join("strait.yaml.tmp");
    std::fs::write(&tmp, format!("{admin}{yaml}")).unwrap();
    std::fs::rename(&tmp, s.config_path()).unwrap();
}

async fn body(s: &Strait) -> String {
    text(&client::get(s.web(), "/").await.expect("GET /"))
}

#[tokio::test]
async fn changed_file_is_served_without_a_signal() {
    let s = Strait::start(&config("one")).await;
    assert_eq!(body(&s).await, "one");
    rewrite(&s, &config("two"));
    poll_until(Duration::from_secs(3), "new body served", || async {
        (body(&s).await == "two").then_some(())
    })
    .await;
}

#[tokio::test]
async fn sighup_with_an_unchanged_file_makes_no_new_version() {
    let s = Strait::start(&config("one")).await;
    for n in 1..=3 {
        s.signal("HUP");
        // Each SIGHUP is a reload (counted as a success) that finds nothing changed.
        poll_until(Duration::from_secs(3), "SIGHUP handled", || async {
            let m = s.metrics().await;
            (metrics::sum(&m, "strait_config_reload_total", &[("result", "success")])
                >= f64::from(n))
            .then_some(())
        })
        .await;
    }
    let m = s.metrics().await;
    assert_eq!(metrics::sum(&m, "strait_config_version", &[]), 1.0);
    // A changed file still makes one.
    rewrite(&s, &config("two"));
    s.signal("HUP");
    poll_until(Duration::from_secs(3), "new body served", || async {
        (body(&s).await == "two").then_some(())
    })
    .await;
    let m = s.metrics().await;
    assert_eq!(metrics::sum(&m, "strait_config_version", &[]), 2.0);
}

#[tokio::test]
async fn sighup_reloads_and_invalid_file_keeps_the_running_config() {
    let s = Strait::start(&config("one")).await;
    rewrite(
        &s,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    bogus: 1\n",
    );
    s.signal("HUP");
    poll_until(Duration::from_secs(3), "reload error counted", || async {
        let m = s.metrics().await;
        (metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]) >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(body(&s).await, "one", "the running config must stay");
    rewrite(&s, &config("three"));
    s.signal("HUP");
    poll_until(Duration::from_secs(3), "valid reload served", || async {
        (body(&s).await == "three").then_some(())
    })
    .await;
    let m = s.metrics().await;
    assert!(metrics::sum(&m, "strait_config_version", &[]) >= 2.0);
    let applied = metrics::sum(
        &m,
        "strait_config_last_reload_success_timestamp_seconds",
        &[],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - applied).abs() < 60.0,
        "last success {applied}, now {now}"
    );
}

#[tokio::test]
async fn requests_during_reloads_all_succeed() {
    let s = Strait::start(&config("a")).await;
    let addr = s.web();
    let load = tokio::spawn(async move {
        let mut failures = 0;
        for _ in 0..400 {
            match client::get(addr, "/").await {
                Ok(r) if r.status() == 200 => {}
                _ => failures += 1,
            }
        }
        failures
    });
    for i in 0..20 {
        rewrite(&s, &config(if i % 2 == 0 { "b" } else { "a" }));
        s.signal("HUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failures = tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .expect("load finished")
        .unwrap();
    assert_eq!(failures, 0);
}
