//! The admin API's answers through the real binary: every error under `/api/` is JSON (malformed or unknown query parameters, unknown paths, wrong methods, bad path values, oversized bodies); per-resource writes report errors inside the body sent and name the item a dangling reference is in; writes and dry runs return warnings; the effective configuration is served and validates.

use std::time::Duration;

use serde_json::{json, Value};
use strait_e2e::admin::{routed_config as config, start_routed as start, AdminClient, TOKEN};
use strait_e2e::client;

#[tokio::test]
async fn every_api_error_is_json() {
    let (up, s, admin) = start().await;
    let doc = config(&up);
    let cases: Vec<(reqwest::Method, &str, &str, u16)> = vec![
        (
            reqwest::Method::PUT,
            "/api/config?dry_run=maybe",
            doc.as_str(),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/config?dryrun=true",
            doc.as_str(),
            400,
        ),
        (
            reqwest::Method::PUT,
            "/api/config?dry_run=1&dry_run=0",
            doc.as_str(),
            400,
        ),
        (reqwest::Method::GET, "/api/config?format=xml", "", 400),
        (
            reqwest::Method::GET,
            "/api/config?effective=perhaps",
            "",
            400,
        ),
        (reqwest::Method::GET, "/api/versions/abc", "", 400),
        (reqwest::Method::GET, "/api/no/such/path", "", 404),
        (reqwest::Method::GET, "/api/widgets", "", 404),
        (reqwest::Method::DELETE, "/api/config", "", 405),
        (reqwest::Method::POST, "/api/routes/r", "", 405),
    ];
    for (method, path, body, want) in cases {
        let a = AdminClient::send(admin.req(method.clone(), path).body(body.to_string())).await;
        assert_eq!(a.status, want, "{method} {path}: {}", a.text);
        assert!(
            a.content_type.starts_with("application/json"),
            "{method} {path}: {} {}",
            a.content_type,
            a.text
        );
        assert!(a.json["error"].is_string(), "{method} {path}: {}", a.text);
    }
    // A body over the limit: refused from its Content-Length, before it is sent (so a raw
    // connection, which does not fail on the early answer as a client still sending would).
    let head = format!(
        "PUT /api/config?dry_run=1 HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: {}\r\n\r\n",
        17 << 20
    );
    let r = client::raw_exchange(s.admin(), head.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(r.status(), Some(413), "{}", r.text());
    let text = r.text().to_ascii_lowercase();
    assert!(text.contains("content-type: application/json"), "{text}");
    assert!(text.contains("{\"error\":"), "{text}");
    // `1` is true: a dry run, not a write.
    let (status, v) = admin
        .write(reqwest::Method::PUT, "/api/config?dry_run=1", None, &doc)
        .await;
    assert_eq!((status, &v["valid"]), (200, &json!(true)), "{v}");
    let (_, st, _) = admin.json("/api/status").await;
    assert_eq!(st["version"], 1);
}

#[tokio::test]
async fn per_resource_errors_point_into_the_body_sent() {
    let (_up, _s, admin) = start().await;
    let put = |path: &'static str, body: &'static str| {
        let admin = &admin;
        async move {
            admin
                .write(reqwest::Method::PUT, path, Some("*"), body)
                .await
        }
    };
    let (status, v) = put(
        "/api/routes/x",
        "match: { path_prefix: /x }\nupstream: nope\n",
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["errors"][0].as_str().unwrap().split(": unknown").next(),
        Some("routes/x:2:11"),
        "{v}"
    );
    let body = r#"{"match": {"path_prefix": "/x"}, "upstream": "nope"}"#;
    let (status, v) = put("/api/routes/x", body).await;
    assert_eq!(status, 400, "{v}");
    let col = body.find("\"nope\"").unwrap() + 1;
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("routes/x:1:{col}: ")),
        "{v}"
    );
    // YAML that does not parse is told at its place in the body too.
    let (status, v) = put(
        "/api/upstreams/u2",
        "endpoints: [\"127.0.0.1:1\"\nprotocol: h9\n",
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("upstreams/u2:"),
        "{v}"
    );
    // A delete that leaves a reference dangling names the route holding it.
    let (status, v) = admin
        .write(reqwest::Method::DELETE, "/api/upstreams/up", Some("*"), "")
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("routes/api: unknown upstream `up`"),
        "{v}"
    );
}

#[tokio::test]
async fn writes_and_dry_runs_return_their_warnings() {
    let (_up, _s, admin) = start().await;
    let shadowed = "match: { path_prefix: /x }\nrespond: { status: 200 }\n";
    let warned = |v: &Value| {
        let w = v["warnings"].to_string();
        assert!(
            w.contains("routes/x: route `x` is never matched: route `r` (routes/r) is tried first"),
            "{v}"
        );
    };
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/routes/x?dry_run=true",
            None,
            shadowed,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    warned(&v);
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/routes/x",
            Some("\"1\""),
            shadowed,
        )
        .await;
    assert_eq!(status, 201, "{v}");
    warned(&v);
    let (_, st, _) = admin.json("/api/status").await;
    assert!(
        st["warnings"]
            .to_string()
            .contains("route `x` is never matched"),
        "{st}"
    );
}

#[tokio::test]
async fn the_effective_configuration_has_every_default_and_validates() {
    let (_up, _s, admin) = start().await;
    let (status, v, etag) = admin.json("/api/config?effective=true").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(etag, "\"1\"");
    assert_eq!(v["effective"], true);
    let c = &v["config"];
    assert_eq!(c["server"]["drain_timeout"], "30s", "{c}");
    assert_eq!(c["listeners"][0]["limits"]["max_connections"], 10000, "{c}");
    assert_eq!(c["upstreams"][0]["timeouts"]["request"], "15s", "{c}");
    assert_eq!(c["admin"]["limits"]["max_connections"], 128, "{c}");
    let yaml =
        AdminClient::send(admin.req(reqwest::Method::GET, "/api/config?effective=1&format=yaml"))
            .await;
    assert_eq!(yaml.status, 200);
    assert!(
        yaml.content_type.starts_with("application/yaml"),
        "{}",
        yaml.content_type
    );
    assert!(yaml.text.contains("idle_timeout: 5m"), "{}", yaml.text);
    // It is a configuration this instance accepts as it is, and it means the same: its own
    // effective configuration is the one it came from.
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/config",
            Some("\"1\""),
            &yaml.text,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("(line "), "{v}");
    let (_, after, _) = admin.json("/api/config?effective=true").await;
    assert_eq!(after["config"], c.clone(), "{after}");
}
