//! The etcd provider through the real binaries: a fleet of strait instances converges on puts (with
//! the put→served latency printed), survives the etcd leader being killed and etcd going away, starts
//! from its cache (etcd down, or holding an invalid value), rejects invalid values naming the key, `strait config push` seeds etcd, and a stale
//! write is a conflict.

use std::time::{Duration, Instant};

use strait_e2e::client;
use strait_e2e::etcd::{admin_put, respond, Client, Etcd, TlsFiles};
use strait_e2e::strait::run_cli;
use strait_e2e::{metrics, poll_until, Strait};

/// These tests start several etcd and strait processes each; run them one at a time so that
/// the latency measured is Strait's, not the other tests' CPU use.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A listener on a port of its own in every instance, and `/` answering `body`.
async fn seed(etcd: &Etcd, c: &Client, body: &str) {
    etcd.put(c, "/strait/listeners/web", "listen: 127.0.0.1:0")
        .await;
    etcd.put(c, "/strait/routes/root", &respond("/", body))
        .await;
}

/// `(status, body)` of GET `path`, or `None` when the request fails.
async fn get(s: &Strait, path: &str) -> Option<(u16, String)> {
    let r = tokio::time::timeout(Duration::from_secs(2), client::get(s.web(), path))
        .await
        .ok()?
        .ok()?;
    Some((r.status().as_u16(), client::text(&r)))
}

/// Puts `/` answering `body` and waits until `s` serves it.
async fn put_root(etcd: &Etcd, c: &Client, s: &Strait, body: &str, limit: Duration) {
    etcd.put(c, "/strait/routes/root", &respond("/", body))
        .await;
    wait_served(s, "/", body, limit).await;
}

async fn served(s: &Strait, path: &str, body: &str) -> bool {
    get(s, path).await == Some((200, body.to_string()))
}

async fn wait_served(s: &Strait, path: &str, body: &str, limit: Duration) {
    poll_until(limit, &format!("GET {path} → {body}"), || async {
        served(s, path, body).await.then_some(())
    })
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_of_three_serves_each_put_within_a_second() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let fleet = [
        Strait::start(&etcd.bootstrap()).await,
        Strait::start(&etcd.bootstrap()).await,
        Strait::start(&etcd.bootstrap()).await,
    ];
    for s in &fleet {
        assert!(served(s, "/", "v0").await, "{}", s.logs_text());
    }
    let mut latencies = Vec::new();
    for i in 0..20 {
        let path = format!("/r{i}");
        let body = format!("r{i}");
        let start = Instant::now();
        etcd.put(&c, &format!("/strait/routes/r{i}"), &respond(&path, &body))
            .await;
        // Poll every 2 ms (not poll_until's 20 ms) so the latency is measured, not quantized.
        let waits = fleet.iter().map(|s| async {
            let deadline = start + Duration::from_secs(5);
            while !served(s, &path, &body).await {
                assert!(Instant::now() < deadline, "{path} not served within 5 s");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        futures_util::future::join_all(waits).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!(
        "etcd put → route served by all 3 instances, {} puts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?} is not under 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_mid_stream_loses_no_updates() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::cluster(3).await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let fleet = [
        Strait::start(&etcd.bootstrap()).await,
        Strait::start(&etcd.bootstrap()).await,
        Strait::start(&etcd.bootstrap()).await,
    ];
    for i in 0..10 {
        if i == 5 {
            let leader = etcd.leader().await;
            etcd.kill(leader);
        }
        let path = format!("/k{i}");
        etcd.put(
            &c,
            &format!("/strait/routes/k{i}"),
            &respond(&path, &format!("k{i}")),
        )
        .await;
    }
    for s in &fleet {
        for i in 0..10 {
            let limit = Duration::from_secs(15);
            poll_until(
                limit,
                &format!("/k{i} served after the leader died"),
                || async {
                    served(s, &format!("/k{i}"), &format!("k{i}"))
                        .await
                        .then_some(())
                },
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strait_keeps_serving_while_etcd_is_down_and_resumes_when_it_returns() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let s = Strait::start(&etcd.bootstrap()).await;
    etcd.stop_all();
    for _ in 0..10 {
        assert!(
            served(&s, "/", "v0").await,
            "must keep serving with etcd down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    etcd.start_all().await;
    let c = etcd.client().await;
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_etcd_down_serves_from_the_cache_then_converges() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let mut s = Strait::start(&etcd.bootstrap()).await;
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(3)).await;
    // The cache file is written off the watch task (it syncs to disk), so it can trail what is
    // served by a few milliseconds; the crash below must come after it.
    let cache = s.dir().join(".strait.yaml.etcd-cache.json");
    poll_until(Duration::from_secs(10), "v1 in the cache file", || async {
        std::fs::read_to_string(&cache)
            .is_ok_and(|t| t.contains("v1"))
            .then_some(())
    })
    .await;
    etcd.stop_all();
    s.restart().await;
    assert!(
        served(&s, "/", "v1").await,
        "restarted instance serves the cached config; logs:\n{}",
        s.logs_text()
    );
    assert!(s.logs_text().contains("serving the cached configuration"));
    etcd.start_all().await;
    let c = etcd.client().await;
    put_root(&etcd, &c, &s, "v2", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_value_keeps_the_running_config_and_names_the_key() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let mut s = Strait::start(&etcd.bootstrap()).await;
    etcd.put(
        &c,
        "/strait/routes/bad",
        "match: { path: /bad }\nupstream: nowhere",
    )
    .await;
    poll_until(Duration::from_secs(3), "reload error counted", || async {
        let m = s.metrics().await;
        (metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]) >= 1.0)
            .then_some(())
    })
    .await;
    let logs = s.logs_text();
    assert!(
        logs.contains("etcd:/strait/routes/bad:2:11: unknown upstream `nowhere`"),
        "{logs}"
    );
    assert!(served(&s, "/", "v0").await, "the running config stays");
    // An instance (re)started while etcd holds the invalid value starts on its cache.
    s.restart().await;
    assert!(
        served(&s, "/", "v0").await,
        "restarted on the cached config; logs:\n{}",
        s.logs_text()
    );
    let logs = s.logs_text();
    assert!(
        logs.contains("etcd holds an invalid configuration"),
        "{logs}"
    );
    assert!(logs.contains("unknown upstream `nowhere`"), "{logs}");
    // Fixing the key is enough to move on.
    etcd.delete(&c, "/strait/routes/bad").await;
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_push_seeds_etcd_and_replace_removes_what_the_file_lacks() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    let ep = etcd.endpoints()[0].clone();
    std::fs::write(
        &file,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: special\n    match: { path: /x }\n    respond: { body: special }\n  - name: all\n    match: { path_prefix: / }\n    respond: { body: all }\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = run_cli(&["config", "push", "-c", f, "--etcd", &ep]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Strait::start(&etcd.bootstrap()).await;
    // Written order survives: `special` is tried before `all` though it sorts after it.
    assert!(served(&s, "/x", "special").await, "{}", s.logs_text());
    assert!(served(&s, "/y", "all").await);

    std::fs::write(
        &file,
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: all\n    match: { path_prefix: / }\n    respond: { body: all }\n",
    )
    .unwrap();
    let out = run_cli(&["config", "push", "-c", f, "--etcd", &ep, "--replace"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_served(&s, "/x", "all", Duration::from_secs(3)).await;

    // An invalid file is refused before anything is written.
    std::fs::write(&file, "routes:\n  - name: r\n    upstream: none\n").unwrap();
    let out = run_cli(&["config", "push", "-c", f, "--etcd", &ep]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fleet.yaml:3:15"), "{err}");

    let out = run_cli(&["config", "pull", "--etcd", &ep]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("\"all\"") && !text.contains("special"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_write_is_a_conflict_not_an_overwrite() {
    use strait_control::{EtcdProvider, Provider};
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let dir = tempfile::tempdir().unwrap();
    let boot = format!("admin:\n  listen: 127.0.0.1:0\n{}", etcd.bootstrap());
    let connect = |name: &str| {
        let path = dir.path().join(name);
        let b = strait_config::provider::bootstrap(name, &boot, None)
            .expect("valid bootstrap")
            .expect("an etcd bootstrap");
        async move { EtcdProvider::connect(b, &path).await.expect("connect") }
    };
    let (a, b) = (connect("a.yaml").await, connect("b.yaml").await);
    a.load().expect("a loads");
    b.load().expect("b loads");
    let doc = |body: &str| {
        format!("listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: root\n    match: {{ path: / }}\n    respond: {{ body: {body} }}\n")
    };
    let store = |p: std::sync::Arc<EtcdProvider>, text: String| {
        tokio::task::spawn_blocking(move || p.store(&text))
    };
    store(a.clone(), doc("from-a"))
        .await
        .unwrap()
        .expect("first write wins");
    let err = store(b.clone(), doc("from-b"))
        .await
        .unwrap()
        .expect_err("b wrote from a stale view");
    assert!(err.starts_with("conflict:"), "{err}");
    assert!(err.contains("routes/root"), "{err}");
    // Once b has seen a's write, its write goes through.
    poll_until(Duration::from_secs(3), "b sees a's write", || async {
        b.load()
            .ok()
            .filter(|d| d.text.contains("from-a"))
            .map(|_| ())
    })
    .await;
    store(b.clone(), doc("from-b"))
        .await
        .unwrap()
        .expect("fresh write");
    assert!(etcd
        .value(&c, "/strait/routes/root")
        .await
        .unwrap()
        .contains("from-b"));

    // a, still on its older view, adds another route: it touches no key b changed, so it
    // goes through, and b's change to `root` stays.
    let mut with_other = doc("from-a");
    with_other.push_str("  - name: other\n    match: { path: /other }\n    respond: { body: o }\n");
    store(a.clone(), with_other)
        .await
        .unwrap()
        .expect("a change to another key is no conflict");
    assert!(
        etcd.value(&c, "/strait/routes/root")
            .await
            .unwrap()
            .contains("from-b"),
        "b's change is not reverted"
    );
    assert!(etcd.value(&c, "/strait/routes/other").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_a_client_certificate() {
    let _serial = SERIAL.lock().await;
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsFiles::generate(certs.path());
    let files = format!(
        "  tls: {{ ca: {}, cert: {}, key: {} }}\n",
        tls.ca.display(),
        tls.client.0.display(),
        tls.client.1.display()
    );
    let etcd = Etcd::single_tls(tls).await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    assert!(etcd.endpoints()[0].starts_with("https://"));
    let s = Strait::start(&format!("{}{files}", etcd.bootstrap())).await;
    assert!(served(&s, "/", "v0").await, "{}", s.logs_text());
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_user_authentication_renews_expired_tokens() {
    let _serial = SERIAL.lock().await;
    // Tokens expire after a second unused (etcd's default is 5 minutes).
    let mut etcd = Etcd::single_with(&["--auth-token-ttl", "1"]).await;
    etcd.enable_auth("s3cret-pw").await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let boot = format!(
        "{}  username: root\n  password: s3cret-pw\n",
        etcd.bootstrap_with_admin()
    );
    let s = Strait::start(&boot).await;
    assert!(served(&s, "/", "v0").await, "{}", s.logs_text());
    assert!(
        !s.logs_text().contains("s3cret-pw"),
        "the password is never logged"
    );
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(3)).await;
    // Strait's token has not been used since it started: etcd refuses it ("invalid auth
    // token") until Strait authenticates again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = admin_put(&s, "routes/hello", &respond("/hello", "hi")).await;
    assert_eq!(status, 201, "{body}\n{}", s.logs_text());
    wait_served(&s, "/hello", "hi", Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_its_member_returns_and_rereads_after_compaction() {
    let _serial = SERIAL.lock().await;
    let mut etcd = Etcd::cluster(3).await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    // Strait knows one member only, a follower, so that member's absence cuts its watch
    // while the cluster keeps taking writes.
    let a = (etcd.leader().await + 1) % 3;
    let boot = format!(
        "config:\n  provider: etcd\n  endpoints: [{}]\n  dial_timeout: 1s\n",
        etcd.endpoints()[a]
    );
    let s = Strait::start(&boot).await;

    etcd.kill(a);
    etcd.put(&c, "/strait/routes/x", &respond("/x", "x1")).await;
    etcd.put(&c, "/strait/routes/root", &respond("/", "v1"))
        .await;
    assert!(served(&s, "/", "v0").await, "still serving while cut off");
    etcd.start_all().await;
    wait_served(&s, "/x", "x1", Duration::from_secs(10)).await;
    wait_served(&s, "/", "v1", Duration::from_secs(3)).await;

    etcd.kill(a);
    etcd.put(&c, "/strait/routes/y", &respond("/y", "y1")).await;
    let rev = etcd.put(&c, "/strait/routes/x", &respond("/x", "x2")).await;
    etcd.compact(&c, rev).await;
    etcd.start_all().await;
    wait_served(&s, "/x", "x2", Duration::from_secs(10)).await;
    wait_served(&s, "/y", "y1", Duration::from_secs(3)).await;
    assert!(s.logs_text().contains("compacted"), "{}", s.logs_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_go_to_etcd_and_reach_every_instance() {
    use strait_e2e::etcd::ADMIN_TOKEN as TOKEN;
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    let boot = etcd.bootstrap_with_admin();
    let a = Strait::start(&boot).await;
    let b = Strait::start(&boot).await;
    let http = client::reqwest_client();
    let version = |s: &Strait| {
        let req = http
            .get(format!("http://{}/api/config", s.admin()))
            .bearer_auth(TOKEN);
        async move {
            let r = req.send().await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(v["provider"], "etcd");
            v["version"].as_u64().unwrap()
        }
    };
    let put = |s: &Strait, base: u64, body: &str| {
        http.put(format!("http://{}/api/routes/hello", s.admin()))
            .bearer_auth(TOKEN)
            .header("if-match", format!("\"{base}\""))
            .body(body.to_string())
            .send()
    };

    let va = version(&a).await;
    let r = put(&a, va, &respond("/hello", "from-a")).await.unwrap();
    assert_eq!(r.status(), 201);
    // One source of truth: the route is a key in etcd, and every instance serves it.
    assert!(etcd
        .value(&c, "/strait/routes/hello")
        .await
        .unwrap()
        .contains("from-a"));
    wait_served(&a, "/hello", "from-a", Duration::from_secs(1)).await;
    wait_served(&b, "/hello", "from-a", Duration::from_secs(1)).await;

    // The other instance edits it from its own (converged) view.
    let vb = version(&b).await;
    let r = put(&b, vb, &respond("/hello", "from-b")).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_served(&a, "/hello", "from-b", Duration::from_secs(1)).await;
    // A stale version on A (from before B's write reached it) is refused.
    let r = put(&a, va, &respond("/hello", "stale")).await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(served(&b, "/hello", "from-b").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_larger_than_grpc_default_message_size_is_read() {
    let _serial = SERIAL.lock().await;
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    seed(&etcd, &c, "v0").await;
    // Six routes of 900 KiB each (under etcd's 1.5 MiB request limit): 5.3 MiB in one range,
    // over gRPC's default 4 MiB message.
    let big = "x".repeat(900 * 1024);
    for i in 0..6 {
        etcd.put(
            &c,
            &format!("/strait/routes/big{i}"),
            &respond(&format!("/big{i}"), &big),
        )
        .await;
    }
    let s = Strait::start(&etcd.bootstrap()).await;
    assert!(served(&s, "/", "v0").await, "logs:\n{}", s.logs_text());
    let (status, body) = get(&s, "/big5").await.expect("response");
    assert_eq!((status, body.len()), (200, big.len()));
    // A change after start arrives through the watch as usual.
    put_root(&etcd, &c, &s, "v1", Duration::from_secs(5)).await;
}
