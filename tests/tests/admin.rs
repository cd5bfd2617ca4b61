//! The admin API through the real binary: bearer-token protection, reading and replacing the configuration (dry run, If-Match, 409), per-resource edits, versions, rollback, upstream health; writes land in the config file.

use std::time::Duration;

use strait_e2e::admin::{AdminClient, TOKEN};
use strait_e2e::client::{self, text};
use strait_e2e::{poll_until, Strait, Upstream};

fn config(body: &str, up: &Upstream) -> String {
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    match: {{ path_prefix: / }}\n    respond: {{ status: 200, body: \"{body}\" }}\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    )
}

async fn body(s: &Strait, path: &str) -> String {
    text(&client::get(s.web(), path).await.expect("GET"))
}

#[tokio::test]
async fn without_a_token_the_api_is_closed_and_health_stays_open() {
    let up = Upstream::start("up").await;
    let s = Strait::start(&config("one", &up)).await;
    let http = client::reqwest_client();
    let base = format!("http://{}", s.admin());
    for path in ["/api/config", "/api/versions", "/api/routes/r"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .put(format!("{base}/api/config"))
        .bearer_auth("anything-at-all-123456")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn config_read_replace_dry_run_and_optimistic_concurrency() {
    let up = Upstream::start("up").await;
    let s = Strait::start_opts(
        &config("one", &up),
        &[],
        &[],
        &[("STRAIT_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let admin = AdminClient::new(s.admin());
    let http = client::reqwest_client();

    // Wrong or missing token.
    let r = http
        .get(admin.url("/api/config"))
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));

    let (status, cfg, etag) = admin.json("/api/config").await;
    assert_eq!(status, 200);
    assert_eq!(etag, "\"1\"");
    assert_eq!(cfg["version"], 1);
    assert_eq!(cfg["provider"], "file");
    assert_eq!(cfg["config"]["routes"][0]["name"], "r");

    // Dry run of an invalid document: errors with line and column, nothing changes.
    let bad = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    upstream: missing\n";
    let (status, err) = admin
        .write(reqwest::Method::PUT, "/api/config?dry_run=true", None, bad)
        .await;
    assert_eq!(status, 400, "{err}");
    let first = err["errors"][0].as_str().unwrap().to_string();
    assert!(first.starts_with("admin:6:"), "{first}");
    assert!(first.contains("missing"), "{first}");
    let (status, ok) = admin
        .write(
            reqwest::Method::PUT,
            "/api/config?dry_run=true",
            None,
            &config("two", &up),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["valid"], true);
    assert_eq!(body(&s, "/").await, "one", "a dry run changes nothing");

    // A write must say which version it is based on.
    let (status, _) = admin
        .write(
            reqwest::Method::PUT,
            "/api/config",
            None,
            &config("two", &up),
        )
        .await;
    assert_eq!(status, 428);
    let keep_admin = format!("admin:\n  listen: {}\n", s.admin());
    let two = format!("{keep_admin}{}", config("two", &up));
    let (status, v) = admin
        .write(reqwest::Method::PUT, "/api/config", Some("\"1\""), &two)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(body(&s, "/").await, "two");
    // A document without `admin` keeps the running admin section (its token and address).
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/config",
            Some("\"2\""),
            &config("two-b", &up),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(body(&s, "/").await, "two-b");
    let on_disk = std::fs::read_to_string(s.config_path()).unwrap();
    assert!(on_disk.contains(&s.admin().to_string()), "{on_disk}");
    let (status, v) = admin
        .write(reqwest::Method::PUT, "/api/config", Some("\"3\""), &two)
        .await;
    assert_eq!(status, 200, "{v}");
    // One source of truth: the file now holds what the API wrote.
    let on_disk = std::fs::read_to_string(s.config_path()).unwrap();
    assert!(
        on_disk.contains("\"two\"") || on_disk.contains("two"),
        "{on_disk}"
    );

    // A stale writer gets 409, never a silent overwrite.
    let three = format!("{keep_admin}{}", config("three", &up));
    let (status, v) = admin
        .write(reqwest::Method::PUT, "/api/config", Some("\"1\""), &three)
        .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["current_version"], 4);
    assert_eq!(body(&s, "/").await, "two");

    // The file watcher sees our own write: no new version for the same document.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, cfg, _) = admin.json("/api/config").await;
    assert_eq!(cfg["version"], 4);

    // An invalid file is reported by the API and the running config stays.
    std::fs::write(s.config_path(), format!("{keep_admin}{bad}")).unwrap();
    let st = poll_until(Duration::from_secs(3), "error shown", || async {
        let (_, st, _) = admin.json("/api/status").await;
        (!st["last_error"].is_null()).then_some(st)
    })
    .await;
    assert!(
        st["last_error"][0]
            .as_str()
            .unwrap()
            .contains("strait.yaml:8:"),
        "{st}"
    );
    assert_eq!(body(&s, "/").await, "two");
}

#[tokio::test]
async fn per_resource_edits_versions_rollback_and_health() {
    let up = Upstream::start("up").await;
    let s = Strait::start_opts(
        &format!(
            "admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n{}",
            config("one", &up)
        ),
        &[],
        &[],
        &[],
    )
    .await;
    let admin = AdminClient::new(s.admin());

    // Create a route (201), served at once.
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/routes/hello",
            Some("\"1\""),
            "{\"match\": {\"path_prefix\": \"/hello\"}, \"priority\": 10, \"respond\": {\"status\": 200, \"body\": \"hi\"}}",
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(body(&s, "/hello").await, "hi");
    let (status, item, etag) = admin.json("/api/routes/hello").await;
    assert_eq!(status, 200);
    assert_eq!(etag, "\"2\"");
    assert_eq!(item["respond"]["body"], "hi");
    let (_, list, _) = admin.json("/api/routes").await;
    assert_eq!(list.as_array().unwrap().len(), 3);

    // Replace it (200), with YAML this time; a name in the body must match the URL.
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/routes/hello",
            Some("\"2\""),
            "name: other\nrespond: {status: 200}\n",
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/routes/hello",
            Some("\"2\""),
            "match: {path_prefix: /hello}\npriority: 10\nrespond: {status: 200, body: hello}\n",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(body(&s, "/hello").await, "hello");

    // An edit that breaks a reference is refused with the reason.
    let (status, v) = admin
        .write(
            reqwest::Method::DELETE,
            "/api/upstreams/up",
            Some("\"3\""),
            "",
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(v["errors"].to_string().contains("up"), "{v}");

    // Delete the route: the catch-all answers again.
    let (status, v) = admin
        .write(
            reqwest::Method::DELETE,
            "/api/routes/hello",
            Some("\"3\""),
            "",
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(body(&s, "/hello").await, "one");
    let (status, _, _) = admin.json("/api/routes/hello").await;
    assert_eq!(status, 404);

    // Versions and rollback to version 2.
    let (_, versions, _) = admin.json("/api/versions").await;
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 4, "{versions}");
    assert_eq!(list[0]["source"], "file");
    assert_eq!(list[1]["source"], "admin");
    assert_eq!(versions["current"], 4);
    let (status, v) = admin
        .write(reqwest::Method::POST, "/api/rollback/2", Some("\"4\""), "")
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 5);
    assert_eq!(body(&s, "/hello").await, "hi");
    let (status, _) = admin
        .write(reqwest::Method::POST, "/api/rollback/99", Some("\"5\""), "")
        .await;
    assert_eq!(status, 404);

    // A listener on a port that is taken is refused before anything is stored.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap();
    let before = std::fs::read_to_string(s.config_path()).unwrap();
    for path in ["/api/listeners/extra?dry_run=true", "/api/listeners/extra"] {
        let (status, v) = admin
            .write(
                reqwest::Method::PUT,
                path,
                Some("\"5\""),
                &format!("listen: {taken}\n"),
            )
            .await;
        assert_eq!(status, 400, "{path}: {v}");
        assert!(v["errors"].to_string().contains("cannot bind"), "{v}");
    }
    assert_eq!(std::fs::read_to_string(s.config_path()).unwrap(), before);

    // Endpoint states of an upstream.
    let (status, h, _) = admin.json("/api/upstreams/up/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["endpoints"][0]["address"], up.addr().to_string());
    assert_eq!(h["endpoints"][0]["healthy"], true);
    let (status, _, _) = admin.json("/api/upstreams/nope/health").await;
    assert_eq!(status, 404);
}
