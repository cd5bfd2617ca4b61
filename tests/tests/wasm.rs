//! proxy-wasm plugins through the real binary, with plugins built from examples/plugins (Rust proxy-wasm SDK) and examples/plugins-as (AssemblyScript SDK, unchanged): header edits and properties, local responses, body rewrites, shared data across requests, ticks, plugin metrics in `/metrics`, an HTTP call-out to a real upstream, hot reload of a changed module, compiled modules kept in the disk cache across restarts (a damaged entry recompiled), and hostile plugins (loops, memory bombs, traps in each callback, out-of-bounds host calls) that fail only their own request while normal load sees no errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Request;
use strait_e2e::client::{self, empty, full, Proto};
use strait_e2e::config_file::{line_of, write};
use strait_e2e::metrics::sum;
use strait_e2e::strait::run_cli;
use strait_e2e::upstream::{Reply, ReplyBody};
use strait_e2e::{poll_until, within, Strait, Upstream};

/// Where the example plugins were built: `$STRAIT_WASM_PLUGINS`, else the wasm32-wasip1
/// release directory of `$CARGO_TARGET_DIR` or of examples/plugins (scripts/build-plugins.sh).
fn plugins_dir() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("STRAIT_WASM_PLUGINS") {
        candidates.push(PathBuf::from(d));
    }
    for dir in [
        std::env::var("CARGO_TARGET_DIR").ok(),
        option_env!("CARGO_TARGET_DIR").map(str::to_owned),
    ]
    .into_iter()
    .flatten()
    {
        candidates.push(PathBuf::from(dir).join("wasm32-wasip1/release"));
    }
    candidates
        .push(strait_e2e::workspace_root().join("examples/plugins/target/wasm32-wasip1/release"));
    candidates
        .into_iter()
        .find(|d| d.join("add_headers.wasm").is_file())
        .expect("example plugins not built: run scripts/build-plugins.sh (same CARGO_TARGET_DIR)")
}

fn plugin(name: &str) -> Vec<u8> {
    std::fs::read(plugins_dir().join(format!("{name}.wasm"))).expect("plugin file")
}

/// Starts strait with `yaml` and the plugins it names copied next to it.
async fn start(yaml: &str, plugins: &[&str]) -> Strait {
    let files: Vec<(String, Vec<u8>)> = plugins
        .iter()
        .map(|p| (format!("{p}.wasm"), plugin(p)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    Strait::start_with_files(yaml, &refs).await
}

fn config(app: SocketAddr, policies: &str, routes: &str) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         policies:\n{policies}\
         routes:\n{routes}\
         upstreams:\n  - name: app\n    endpoints: [\"{app}\"]\n"
    )
}

async fn get(s: &Strait, path: &str, headers: &[(&str, &str)]) -> http::Response<bytes::Bytes> {
    let mut req = Request::get(path).header("host", "api.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client::send(s.web(), Proto::H1, req.body(empty()).unwrap())
        .await
        .expect("response")
}

fn header(r: &http::Response<bytes::Bytes>, name: &str) -> String {
    client::header(r, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_edits_headers_and_reads_properties() {
    let app = Upstream::start("app").await;
    let s = start(
        &config(
            app.addr(),
            "  - name: addh\n    wasm:\n      module: add_headers.wasm\n      \
             config: { request: { x-added: one }, response: { x-resp: two } }\n",
            "  - name: r\n    upstream: app\n    policies: [addh]\n",
        ),
        &["add_headers"],
    )
    .await;
    for proto in [Proto::H1, Proto::H2c] {
        let req = match proto {
            Proto::H1 => Request::get("/things?q=1").header("host", "api.test"),
            _ => Request::get(format!("http://{}/things?q=1", s.web())),
        };
        let req = req.body(empty()).unwrap();
        let r = client::send(s.web(), proto, req).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-resp"), "two");
    }
    let seen = app.requests();
    assert_eq!(seen.len(), 2);
    let r = &seen[0];
    assert_eq!(r.header("x-added"), "one");
    assert_eq!(r.header("x-wasm-path"), "/things?q=1");
    assert_eq!(r.header("x-wasm-pseudo-path"), "/things?q=1");
    assert_eq!(r.header("x-wasm-method"), "GET");
    assert_eq!(r.header("x-wasm-plugin"), "addh");
    assert!(
        r.header("x-wasm-source").starts_with("127.0.0.1:"),
        "{}",
        r.header("x-wasm-source")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_answers_in_place_of_the_upstream() {
    let app = Upstream::start("app").await;
    let s = start(
        &config(
            app.addr(),
            "  - name: deny\n    wasm: { module: deny_header.wasm, config: { header: x-deny, body: \"no entry\\n\" } }\n",
            "  - name: r\n    upstream: app\n    policies: [deny]\n",
        ),
        &["deny_header"],
    )
    .await;
    let r = get(&s, "/", &[("x-deny", "1")]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(client::text(&r), "no entry\n");
    assert_eq!(header(&r, "x-denied-by"), "deny_header");
    assert_eq!(get(&s, "/", &[]).await.status(), 200);
    assert_eq!(
        app.requests().len(),
        1,
        "the denied request never reached the upstream"
    );
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "deny"), ("reason", "wasm")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_rewrites_request_and_response_bodies() {
    let app = Upstream::with_handler("app", |r| {
        Reply::text("").body(ReplyBody::Text(bytes::Bytes::from(format!(
            "you said: {} (hello back)",
            String::from_utf8_lossy(&r.body)
        ))))
    })
    .await;
    let s = start(
        &config(
            app.addr(),
            "  - name: rw\n    wasm: { module: body_rewrite.wasm, config: { from: hello, to: HELLO } }\n",
            "  - name: r\n    upstream: app\n    policies: [rw]\n",
        ),
        &["body_rewrite"],
    )
    .await;
    let req = Request::post("/echo")
        .header("host", "api.test")
        .header("content-length", "15")
        .body(full("hello and hello"))
        .unwrap();
    let r = client::send(s.web(), Proto::H1, req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.only_request().body,
        bytes::Bytes::from("HELLO and HELLO")
    );
    assert_eq!(client::text(&r), "you said: HELLO and HELLO (HELLO back)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_data_counts_across_requests_ticks_run_and_metrics_are_exported() {
    let app = Upstream::start("app").await;
    let s = start(
        &config(
            app.addr(),
            "  - name: count\n    wasm: { module: counter.wasm, config: { tick_ms: 10 } }\n",
            "  - name: r\n    upstream: app\n    policies: [count]\n",
        ),
        &["counter"],
    )
    .await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let addr = s.web();
        tasks.push(tokio::spawn(async move {
            let mut counts = Vec::new();
            for _ in 0..10 {
                let r = client::get(addr, "/c").await.unwrap();
                counts.push(client::header(&r, "x-count").parse::<u64>().unwrap());
            }
            counts
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=40).collect::<Vec<u64>>(),
        "one count across instances, no lost update"
    );
    let ticks = poll_until(Duration::from_secs(10), "ticks", || async {
        let r = client::get(s.web(), "/t").await.unwrap();
        let t: u64 = client::header(&r, "x-ticks").parse().unwrap();
        (t >= 5).then_some(t)
    })
    .await;
    assert!(ticks >= 5);
    let m = s.metrics().await;
    assert!(
        sum(
            &m,
            "strait_wasm_plugin_counter_requests",
            &[("policy", "count")]
        ) >= 41.0,
        "{m}"
    );
    assert!(
        sum(
            &m,
            "strait_wasm_plugin_counter_path_len_count",
            &[("policy", "count")]
        ) >= 41.0
    );
    assert!(m.contains("# TYPE strait_wasm_plugin_counter_last gauge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calls_an_upstream_and_resumes_or_denies_on_its_answer() {
    let app = Upstream::start("app").await;
    let auth = Upstream::with_handler("auth", |r| {
        if r.header("authorization") == "Bearer good" {
            Reply::text("ok").header("x-user", "alice")
        } else {
            Reply::text("no").status(401)
        }
    })
    .await;
    let yaml = format!(
        "{}  - name: auth\n    endpoints: [\"{}\"]\n",
        config(
            app.addr(),
            "  - name: callout\n    wasm: { module: auth_callout.wasm, config: { upstream: auth, path: /check } }\n",
            "  - name: r\n    upstream: app\n    policies: [callout]\n",
        ),
        auth.addr()
    );
    let s = start(&yaml, &["auth_callout"]).await;
    let ok = get(&s, "/in", &[("authorization", "Bearer good")]).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.only_request().header("x-user"), "alice");
    let denied = get(&s, "/in", &[("authorization", "Bearer bad")]).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(header(&denied, "x-denied-by"), "auth_callout");
    assert_eq!(app.requests().len(), 1);
    assert_eq!(auth.requests().len(), 2);
    assert_eq!(auth.requests()[0].path_and_query(), "/check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_module_file_is_compiled_and_swapped_in() {
    let app = Upstream::start("app").await;
    // The add_headers module under a neutral name, replaced by deny_header's below.
    let files = [("plugin.wasm", plugin("add_headers"))];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let s = Strait::start_with_files(
        &config(
            app.addr(),
            "  - name: p\n    wasm: { module: plugin.wasm }\n",
            "  - name: r\n    upstream: app\n    policies: [p]\n",
        ),
        &refs,
    )
    .await;
    assert_eq!(get(&s, "/", &[("x-deny", "1")]).await.status(), 200);
    std::fs::write(s.dir().join("plugin.wasm"), plugin("deny_header")).unwrap();
    poll_until(
        Duration::from_secs(15),
        "the new module answers",
        || async { (get(&s, "/", &[("x-deny", "1")]).await.status() == 403).then_some(()) },
    )
    .await;
    // A broken module is refused and the running one stays.
    std::fs::write(s.dir().join("plugin.wasm"), b"not wasm").unwrap();
    poll_until(Duration::from_secs(15), "the reload error", || async {
        let m = s.metrics().await;
        (sum(&m, "strait_config_reload_total", &[("result", "error")]) >= 1.0).then_some(())
    })
    .await;
    assert_eq!(get(&s, "/", &[("x-deny", "1")]).await.status(), 403);
    assert_eq!(get(&s, "/", &[]).await.status(), 200);
}

/// Requests a hostile plugin fails while four clients send normal requests through the same
/// plugin; every normal request must succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_plugins_fail_only_their_own_request_under_load() {
    let app = Upstream::start("app").await;
    let s = start(
        &config(
            app.addr(),
            "  - name: closed\n    wasm: { module: hostile.wasm, cpu_limit: 20ms, memory_limit: 32MiB }\n\
             \x20 - name: open\n    wasm: { module: hostile.wasm, fail: open, cpu_limit: 20ms, memory_limit: 32MiB }\n",
            "  - name: closed\n    match: { path_prefix: /closed }\n    upstream: app\n    policies: [closed]\n\
             \x20 - name: open\n    match: { path_prefix: /open }\n    upstream: app\n    policies: [open]\n",
        ),
        &["hostile"],
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..4 {
        let (addr, stop) = (s.web(), stop.clone());
        load.push(tokio::spawn(async move {
            let path = if i % 2 == 0 { "/closed/n" } else { "/open/n" };
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                let r = client::get(addr, path).await.expect("normal request");
                assert_eq!(r.status(), 200, "a normal request failed");
                n += 1;
            }
            n
        }));
    }
    let cases = [
        ("trap", "request_headers", 500),
        ("loop", "request_headers", 500),
        ("memory", "request_headers", 500),
        ("trap", "response_headers", 500),
        ("loop", "response_headers", 500),
        ("trap", "response_body", 0),
        ("trap", "log", 200),
        ("memory", "log", 200),
    ];
    for (mode, phase, want) in cases {
        for (route, fail_open) in [("closed", false), ("open", true)] {
            let req = Request::get(format!("/{route}/h"))
                .header("host", "api.test")
                .header("x-hostile", mode)
                .header("x-hostile-phase", phase)
                .body(empty())
                .unwrap();
            let r = client::send(s.web(), Proto::H1, req).await;
            match (want, fail_open) {
                // The response head was out: the body is cut.
                (0, false) => assert!(r.is_err(), "{mode}@{phase}: the body must be cut"),
                (_, true) => assert_eq!(r.unwrap().status(), 200, "{mode}@{phase} open"),
                (w, false) => assert_eq!(r.unwrap().status(), w, "{mode}@{phase} closed"),
            }
        }
    }
    let r = get(&s, "/closed/oob", &[("x-hostile", "oob")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-oob"),
        "6,6,6,6,6,6,6,6,6,6,6",
        "every bad pointer got InvalidMemoryAccess"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: usize = within(Duration::from_secs(60), "normal load", async {
        let mut t = 0;
        for l in load {
            t += l.await.unwrap();
        }
        t
    })
    .await;
    assert!(total >= 80);
    let m = s.metrics().await;
    for reason in ["trap", "timeout", "memory"] {
        assert!(
            sum(
                &m,
                "strait_wasm_failures_total",
                &[("policy", "closed"), ("reason", reason)]
            ) >= 1.0,
            "{reason}: {m}"
        );
    }
    assert!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "closed"), ("reason", "wasm_timeout")]
        ) >= 2.0
    );
    assert_eq!(
        sum(&m, "strait_policy_denials_total", &[("policy", "open")]),
        0.0
    );
}

/// Envoy's model: one shared instance per worker thread holds the HTTP contexts of every
/// request on it, so concurrency makes no instances; a request whose callback traps fails
/// alone, and those whose contexts were in the replaced instance finish in a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_per_worker_holds_many_requests_and_a_failure_fails_no_other() {
    let app = Upstream::with_handler("app", |r| {
        let reply = Reply::text("ok");
        match r.uri.path().ends_with("/slow") {
            true => reply.delay(Duration::from_millis(1500)),
            false => reply,
        }
    })
    .await;
    let yaml = format!(
        "server: {{ worker_threads: 1 }}\n{}",
        config(
            app.addr(),
            "  - name: addh\n    wasm: { module: add_headers.wasm, config: { response: { x-resp: two } } }\n\
             \x20 - name: h\n    wasm: { module: hostile.wasm }\n",
            "  - name: adds\n    match: { path_prefix: /adds }\n    upstream: app\n    policies: [addh]\n\
             \x20 - name: hostile\n    match: { path_prefix: /h }\n    upstream: app\n    policies: [h]\n",
        )
    );
    let s = start(&yaml, &["add_headers", "hostile"]).await;

    // 64 requests in flight at once through one plugin: one instance holds them all.
    let mut calls = Vec::new();
    for _ in 0..64 {
        let addr = s.web();
        calls.push(tokio::spawn(async move {
            client::get(addr, "/adds/slow").await
        }));
    }
    for c in calls {
        let r = c.await.unwrap().expect("response");
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-resp"), "two");
    }
    let m = s.metrics().await;
    let made = |m: &str, p: &str| sum(m, "strait_wasm_instances_created_total", &[("policy", p)]);
    assert_eq!(made(&m, "addh"), 1.0, "{m}");

    // 20 requests wait at the upstream with their contexts in the instance; a trap replaces it.
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let addr = s.web();
        waiting.push(tokio::spawn(
            async move { client::get(addr, "/h/slow").await },
        ));
    }
    poll_until(Duration::from_secs(10), "requests at the upstream", || {
        let n = app
            .requests()
            .iter()
            .filter(|r| r.uri.path() == "/h/slow")
            .count();
        std::future::ready((n == 20).then_some(()))
    })
    .await;
    let r = get(&s, "/h/now", &[("x-hostile", "trap")]).await;
    assert_eq!(r.status(), 500, "the trapping request fails");
    for w in waiting {
        let r = w.await.unwrap().expect("response");
        assert_eq!(r.status(), 200, "another request's trap failed this one");
        assert_eq!(
            header(&r, "x-hostile-seen"),
            "1",
            "the response phase ran in the replacement instance"
        );
    }
    let m = s.metrics().await;
    assert_eq!(made(&m, "h"), 2.0, "{m}");
    let failures = |reason: &str| {
        sum(
            &m,
            "strait_wasm_failures_total",
            &[("policy", "h"), ("reason", reason)],
        )
    };
    assert_eq!(failures("trap"), 1.0, "{m}");
    assert_eq!(failures("context_lost"), 20.0, "{m}");
}

#[test]
fn validate_reports_a_missing_broken_or_refusing_module_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"\0asm junk").unwrap();
    std::fs::write(dir.path().join("hostile.wasm"), plugin("hostile")).unwrap();
    for (module, config, want) in [
        ("missing.wasm", "", "not found"),
        ("junk.wasm", "", "wasm module"),
        (
            "hostile.wasm",
            ", config: { fail_configure: true }",
            "plugin trapped",
        ),
    ] {
        let yaml = format!(
            "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
             policies:\n  - name: p\n    wasm: {{ module: {module}{config} }}\n\
             routes:\n  - name: r\n    respond: {{ status: 200 }}\n    policies: [p]\n"
        );
        let file = write(dir.path(), "c.yaml", &yaml);
        let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{module}: {stderr}");
        let line = line_of(&yaml, "wasm:");
        assert!(
            stderr.contains(&format!("c.yaml:{line}:")) && stderr.contains(want),
            "{module}: want `{want}` at line {line}:\n{stderr}"
        );
    }
}

/// The AssemblyScript example (examples/plugins-as, `@solo-io/proxy-runtime`) as
/// scripts/build-plugins.sh built it; `None` (and why, printed) when npm is missing, so
/// the plugin could not be built; a failure when npm is there and the plugin is not.
fn assemblyscript_plugin(test: &str) -> Option<Vec<u8>> {
    let path = plugins_dir().join("as_headers.wasm");
    if let Ok(bytes) = std::fs::read(&path) {
        return Some(bytes);
    }
    let npm = std::process::Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        !npm,
        "npm is installed but {} is missing: run scripts/build-plugins.sh",
        path.display()
    );
    eprintln!(
        "SKIPPED {test}: npm not found, so scripts/build-plugins.sh could not build examples/plugins-as"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_with_the_assemblyscript_sdk_runs_unchanged() {
    let Some(module) =
        assemblyscript_plugin("a_plugin_built_with_the_assemblyscript_sdk_runs_unchanged")
    else {
        return;
    };
    let app = Upstream::start("app").await;
    // Configured as Envoy would be: the root id the SDK registered, a string configuration.
    let s = Strait::start_with_files(
        &config(
            app.addr(),
            "  - name: as\n    wasm: { module: as_headers.wasm, root_id: as_headers, config: x-block }\n",
            "  - name: r\n    upstream: app\n    policies: [as]\n",
        ),
        &[("as_headers.wasm", module.as_slice())],
    )
    .await;
    for proto in [Proto::H1, Proto::H2c] {
        let req = match proto {
            Proto::H1 => Request::get("/things").header("host", "api.test"),
            _ => Request::get(format!("http://{}/things", s.web())),
        };
        let r = client::send(s.web(), proto, req.body(empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{proto:?}");
        assert_eq!(header(&r, "x-as-plugin"), "assemblyscript", "{proto:?}");
    }
    let r = get(&s, "/", &[("x-block", "yes")]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(client::text(&r), "denied by an AssemblyScript plugin\n");
    assert_eq!(header(&r, "x-denied-by"), "as_headers");
    // The plugin's default header is not the one its configuration names.
    assert_eq!(get(&s, "/", &[("x-deny", "1")]).await.status(), 200);
    let seen = app.requests();
    assert_eq!(
        seen.len(),
        3,
        "the denied request never reached the upstream"
    );
    assert!(seen.iter().all(|r| r.header("x-as-request") == "seen"));
    let m = s.metrics().await;
    assert_eq!(
        sum(
            &m,
            "strait_policy_denials_total",
            &[("policy", "as"), ("reason", "wasm")]
        ),
        1.0
    );
    assert_eq!(sum(&m, "strait_wasm_failures_total", &[]), 0.0, "{m}");
}

fn cache_entries(dir: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

fn cache_count(metrics: &str, result: &str) -> f64 {
    sum(
        metrics,
        "strait_wasm_module_cache_total",
        &[("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_modules_are_read_from_the_disk_cache_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let app = Upstream::start("app").await;
    let yaml = format!(
        "server: {{ wasm_cache_dir: wasm-cache }}\n{}",
        config(
            app.addr(),
            "  - name: addh\n    wasm: { module: add_headers.wasm, config: { response: { x-resp: two } } }\n",
            "  - name: r\n    upstream: app\n    policies: [addh]\n",
        )
    );
    let mut s = start(&yaml, &["add_headers"]).await;
    let dir = s.dir().join("wasm-cache");
    let m = s.metrics().await;
    assert_eq!(
        (cache_count(&m, "miss"), cache_count(&m, "error")),
        (1.0, 0.0)
    );
    let entries = cache_entries(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the cache directory is private");

    s.restart().await;
    let m = s.metrics().await;
    assert_eq!(
        (cache_count(&m, "miss"), cache_count(&m, "error")),
        (0.0, 0.0),
        "the second start compiles nothing"
    );
    assert!(cache_count(&m, "hit") >= 1.0, "it loads the artefact");
    assert_eq!(header(&get(&s, "/", &[]).await, "x-resp"), "two");

    // A damaged artefact: the next start compiles (and still serves), and writes it anew.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    s.restart().await;
    let m = s.metrics().await;
    assert_eq!(
        (cache_count(&m, "error"), cache_count(&m, "miss")),
        (1.0, 0.0)
    );
    assert_eq!(header(&get(&s, "/", &[]).await, "x-resp"), "two");
    assert!(s.logs_text().contains("wasm module cache entry unusable"));
    s.restart().await;
    let m = s.metrics().await;
    assert_eq!(cache_count(&m, "error"), 0.0, "the entry was written anew");
    assert!(cache_count(&m, "hit") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_cache_defaults_to_xdg_cache_home_and_can_be_turned_off() {
    let app = Upstream::start("app").await;
    let policies = "  - name: addh\n    wasm: { module: add_headers.wasm }\n";
    let routes = "  - name: r\n    upstream: app\n    policies: [addh]\n";
    let xdg = tempfile::tempdir().unwrap();
    let files = [("add_headers.wasm", plugin("add_headers"))];
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    let xdg_env = xdg.path().to_str().unwrap();
    let s = Strait::start_opts(
        &config(app.addr(), policies, routes),
        &refs,
        &[],
        &[("XDG_CACHE_HOME", xdg_env)],
    )
    .await;
    assert_eq!(cache_count(&s.metrics().await, "miss"), 1.0);
    assert_eq!(cache_entries(&xdg.path().join("strait/wasm")).len(), 1);
    drop(s);

    let off = tempfile::tempdir().unwrap();
    let s = Strait::start_opts(
        &format!(
            "server: {{ wasm_cache_dir: off }}\n{}",
            config(app.addr(), policies, routes)
        ),
        &refs,
        &[],
        &[("XDG_CACHE_HOME", off.path().to_str().unwrap())],
    )
    .await;
    assert_eq!(get(&s, "/", &[]).await.status(), 200);
    assert_eq!(
        sum(&s.metrics().await, "strait_wasm_module_cache_total", &[]),
        0.0
    );
    assert!(!off.path().join("strait").exists(), "nothing written");
}
