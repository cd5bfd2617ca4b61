use std::path::{Path, PathBuf};

use super::*;
use crate::{parse, Locations};

/// Canonical, as printed paths are absolute and without `..`.
fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
        .canonicalize()
        .unwrap()
}

/// `c` with what printing leaves out or redacts made equal on both sides, and positions dropped.
fn comparable(mut c: Config) -> Config {
    c.locations = Locations::default();
    c.admin.token = None;
    if let Some(e) = c.provider.etcd.as_mut() {
        if matches!(e.password, Some(Password::Literal(_))) {
            e.password = None;
        }
    }
    if let Some(t) = c.observability.tracing.as_mut() {
        for (_, v) in &mut t.otlp.headers {
            *v = REDACTED.to_string();
        }
    }
    c
}

/// Parses `text`, prints it, parses the print, and checks both mean the same.
fn round_trip(name: &str, text: &str, base: &Path) -> String {
    let first = parse(name, text, Some(base)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let printed = effective_yaml(&first.config);
    let second = parse("printed", &printed, Some(base))
        .unwrap_or_else(|e| panic!("{name}: the print does not validate: {e}\n{printed}"));
    let (a, b) = (comparable(first.config), comparable(second.config));
    if let Some(e) = a.provider.etcd.as_ref() {
        // Without a literal password, a username alone means the default variable.
        assert!(e.password.is_none() || b.provider.etcd.is_some(), "{name}");
    }
    let mut b = b;
    if let (Some(x), Some(y)) = (a.provider.etcd.as_ref(), b.provider.etcd.as_mut()) {
        if x.password.is_none() {
            y.password = None;
        }
    }
    assert_eq!(a, b, "{name}: the print means something else:\n{printed}");
    // Printing is stable: the print of the print is the same text (the redaction note aside).
    let body = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&effective_yaml(&b)), body(&printed), "{name}");
    printed
}

#[test]
fn every_example_round_trips_through_its_effective_print() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if crate::provider::bootstrap("b", &text, None)
            .unwrap()
            .is_some()
        {
            // A bootstrap is not a whole configuration; its `config:` is covered below.
            continue;
        }
        round_trip(&path.display().to_string(), &text, &examples_dir());
    }
    round_trip("default", crate::DEFAULT_CONFIG, &examples_dir());
}

const RICH: &str = r#"
server: { drain_timeout: 5s, worker_threads: 3, wasm_cache_dir: cache/wasm }
admin:
  listen: 127.0.0.1:9999
  token: "0123456789abcdef-secret"
  limits: { max_connections: 7, header_read_timeout: 2s }
listeners:
  - name: web
    listen: 127.0.0.1:0
    protocols: [http1]
    limits: { max_request_headers: 1KiB, max_headers: 9, idle_timeout: 1m30s, max_request_body: 10MiB }
  - name: tls
    listen: "[::1]:0"
    tls: { cert: certs/www.example.com.pem, key: certs/www.example.com.key, min_version: "1.3" }
routes:
  - name: a
    listeners: [web]
    priority: -3
    match:
      host: [API.example.com, "*.example.org"]
      path_prefix: /v1/
      methods: [GET, POST]
      headers: { x-v: "010", x-re: { regex: "^a+$" }, x-p: { present: false } }
      query: { q: { present: true } }
    upstream: u
    rewrite: { path_prefix: /, host: "backend:8080" }
    request_headers: { add: { x-a: "1" }, set: { x-b: "2" }, remove: [x-c] }
    response_headers: { set: { cache-control: no-store } }
  - name: b
    match: { path_template: "/users/{id}" }
    respond: { status: 201, body: "made\n", headers: { content-type: text/plain } }
  - name: c
    match: { path: /old }
    redirect: { status: 308, scheme: https, host: new.example.com, port: 8443, path: /new }
  - name: d
    match: { path_regex: "/r/[0-9]+" }
    upstream: h
    rewrite: { path: /fixed }
upstreams:
  - name: u
    endpoints: ["127.0.0.1:1", { address: "localhost:2", weight: 5 }]
    load_balancer: consistent_hash
    hash_on: { header: X-User }
    timeouts: { connect: 100ms, request: 1h, idle: 1s }
    pool: { max_idle_per_endpoint: 0, idle_timeout: 1s }
    health_check: { type: http, path: /h, expected_status: [200, 204], interval: 2s, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 9 }
  - name: h
    endpoints: ["127.0.0.1:3"]
    protocol: h2
    load_balancer: consistent_hash
    hash_on: client_ip
    tls: { sni: api.internal, ca: certs/api.example.com.pem }
    health_check: { type: tcp }
observability:
  access_log: { path: access.log, fields: [status, time], buffer: 10 }
  tracing:
    otlp: { endpoint: "http://127.0.0.1:4318/v1/traces", protocol: http, timeout: 3s, headers: { x-api-key: very-secret } }
    service_name: edge
    sampling: { ratio: 0.25, parent_based: false, always_on_error: false, latency_threshold: 250ms, target_per_second: 12.5 }
    propagation: [b3, w3c]
    queue: 100
    batch: { size: 10, interval: 5s }
"#;

#[test]
fn a_config_setting_every_field_round_trips_and_secrets_stay_out() {
    let printed = round_trip("rich", RICH, &examples_dir());
    assert!(!printed.contains("0123456789abcdef-secret"), "{printed}");
    assert!(!printed.contains("very-secret"), "{printed}");
    assert!(
        printed.starts_with("# The effective configuration"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "# Redacted: admin.token (left out), observability.tracing.otlp.headers values."
        ),
        "{printed}"
    );
}

#[test]
fn defaults_are_written_out() {
    let text = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\nroutes:\n  - name: r\n    upstream: u\nupstreams:\n  - name: u\n    endpoints: [\"127.0.0.1:1\"]\n";
    let printed = round_trip("small", text, &examples_dir());
    for needle in [
        "drain_timeout: 30s",
        "listen: 127.0.0.1:9901",
        "max_connections: 10000",
        "header_read_timeout: 10s",
        "max_request_headers: 65536",
        "protocols:",
        "connect: 2s",
        "request: 15s",
        "max_idle_per_endpoint: 256",
        "load_balancer: round_robin",
    ] {
        assert!(printed.contains(needle), "missing {needle}:\n{printed}");
    }
}

#[test]
fn an_etcd_bootstrap_prints_its_provider_without_a_literal_password() {
    let text = "config:\n  provider: etcd\n  endpoints: [http://127.0.0.1:2379]\n  username: u\n  password: hunter2-hunter2\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n";
    let printed = round_trip("etcd", text, &examples_dir());
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("provider: etcd"), "{printed}");
}
