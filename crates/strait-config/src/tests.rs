//! Parse-level tests: the contract example, shipped configs, YAML errors and their format.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};

use super::*;

/// The "Configuration contract" example from ARCHITECTURE.md, verbatim.
const CONTRACT: &str = r#"admin:
  listen: 127.0.0.1:9901            # GET /healthz /readyz /metrics, the admin API under /api/
listeners:
  - name: web
    listen: 127.0.0.1:8080
    # tls: { cert: certs/site.pem, key: certs/site.key }   # PEM files; ALPN h2, http/1.1
routes:
  - name: api
    match: { host: api.example.com, path_prefix: /v1/, methods: [GET], headers: { x-env: canary } }
    upstream: users                 # or `respond: { status: 200, body: "ok" }` for a direct response
upstreams:
  - name: users
    endpoints: ["127.0.0.1:9001", "127.0.0.1:9002"]
    protocol: http1                 # http1 (default) | h2c | h2 (over TLS); gRPC upstreams use h2c or h2
    timeouts: { connect: 2s, request: 15s }   # the defaults; a hung upstream yields 504 after `request`
"#;

fn examples_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).to_path_buf()
}

fn first_error(yaml: &str) -> String {
    match parse("t.yaml", yaml, None) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.0[0].to_string(),
    }
}

#[test]
fn contract_example_parses_exactly_as_written() {
    let loaded = parse("contract.yaml", CONTRACT, None).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:9901".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].name, "web");
    assert_eq!(
        c.listeners[0].listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert!(c.listeners[0].tls.is_none());

    let r = &c.routes[0];
    assert_eq!(r.name, "api");
    assert_eq!(r.matcher.hosts, vec!["api.example.com"]);
    assert_eq!(r.matcher.path, PathMatch::Prefix("/v1/".into()));
    assert_eq!(r.matcher.methods, vec![Method::GET]);
    assert_eq!(
        r.matcher.headers,
        vec![("x-env".to_owned(), ValueMatch::Exact("canary".into()))]
    );
    assert_eq!(
        r.action,
        RouteAction::Forward {
            backends: vec![crate::Backend {
                upstream: "users".into(),
                weight: 1
            }]
        }
    );

    let u = &c.upstreams[0];
    assert_eq!(u.name, "users");
    let addrs: Vec<&str> = u.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addrs, ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert!(u.endpoints.iter().all(|e| e.weight == 1));
    assert_eq!(u.protocol, Protocol::Http1);
    assert_eq!(u.timeouts.connect, Duration::from_secs(2));
    assert_eq!(u.timeouts.request, Duration::from_secs(15));
}

#[test]
fn default_config_parses_to_a_welcome_route() {
    let loaded = parse("default", DEFAULT_CONFIG, None).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(
        c.admin.listen,
        "127.0.0.1:9901".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.listeners[0].name, "web");
    assert_eq!(
        c.listeners[0].listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert!(c.upstreams.is_empty());
    assert_eq!(c.routes[0].name, "welcome");
    assert_eq!(c.routes[0].matcher.path, PathMatch::Prefix("/".into()));
    let RouteAction::Respond(resp) = &c.routes[0].action else {
        panic!("welcome route should respond directly");
    };
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.body.starts_with("Welcome to Strait.\n"),
        "{}",
        resp.body
    );
    assert!(
        resp.body.contains("strait run -c examples/minimal.yaml"),
        "{}",
        resp.body
    );
    assert_eq!(
        resp.headers,
        vec![(
            "content-type".to_owned(),
            "text/plain; charset=utf-8".to_owned()
        )]
    );
}

#[test]
fn every_example_config_is_valid_without_warnings() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        // An etcd bootstrap holds only local sections; crate::provider's tests check it.
        let text = std::fs::read_to_string(&path).unwrap();
        if let Ok(Some(_)) = crate::provider::bootstrap("example", &text, path.parent()) {
            continue;
        }
        match load_file(&path) {
            Ok(loaded) => assert!(
                loaded.warnings.is_empty(),
                "{} has warnings: {:?}",
                path.display(),
                loaded.warnings
            ),
            Err(e) => panic!("{} is invalid:\n{e}", path.display()),
        }
    }
    assert!(seen >= 5, "expected the example configs, found {seen}");
}

#[test]
fn load_file_resolves_cert_paths_against_the_config_directory() {
    let path = examples_dir().join("tls.yaml");
    let loaded = load_file(&path).unwrap();
    let tls = loaded.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates.len(), 2);
    for pair in &tls.certificates {
        assert!(pair.cert.is_file(), "{}", pair.cert.display());
        assert!(pair.key.is_file(), "{}", pair.key.display());
    }
}

#[test]
fn unreadable_file_is_one_diagnostic_at_zero() {
    let err = load_file(Path::new("/nonexistent/strait.yaml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!((err.0[0].line, err.0[0].column), (0, 0));
    assert!(err
        .to_string()
        .starts_with("/nonexistent/strait.yaml:0:0: cannot read config"));
}

#[test]
fn diagnostics_print_as_file_line_col_reason() {
    let d = Diagnostic::new("a.yaml", (3, 7), "bad thing");
    assert_eq!(d.to_string(), "a.yaml:3:7: bad thing");
    let errs = Errors(vec![d.clone(), Diagnostic::new("a.yaml", (4, 1), "other")]);
    assert_eq!(errs.to_string(), "a.yaml:3:7: bad thing\na.yaml:4:1: other");
}

#[test]
fn unknown_field_is_reported_with_line_col_and_expected_names() {
    let yaml = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    lisen: x\n";
    let e = first_error(yaml);
    assert!(e.starts_with("t.yaml:4:5: unknown field `lisen`"), "{e}");
    assert!(
        e.contains("name, listen, protocols, tls, limits, policies, http"),
        "{e}"
    );
}

#[test]
fn unknown_top_level_field_is_an_error() {
    let e = first_error("listners: []\n");
    assert!(e.starts_with("t.yaml:1:1: unknown field `listners`"), "{e}");
}

#[test]
fn unknown_field_inside_endpoint_map_is_located() {
    let yaml = "listeners: [{name: web, listen: \"127.0.0.1:0\"}]\nupstreams:\n  - name: u\n    endpoints:\n      - address: 127.0.0.1:1\n        wieght: 2\n";
    let e = first_error(yaml);
    assert!(e.starts_with("t.yaml:6:9: unknown field `wieght`"), "{e}");
    assert!(e.contains("address, weight"), "{e}");
}

#[test]
fn wrong_shape_names_the_accepted_forms() {
    let yaml = "listeners: [{name: web, listen: \"127.0.0.1:0\"}]\nupstreams:\n  - name: u\n    endpoints: [[1]]\n";
    let e = first_error(yaml);
    assert!(e.contains("\"host:port\" or { address"), "{e}");
}

#[test]
fn duplicate_yaml_key_is_reported_without_programmer_advice() {
    let e = first_error("admin: {listen: \"127.0.0.1:1\"}\nadmin: {}\n");
    assert!(e.contains("duplicate mapping key"), "{e}");
    assert!(!e.contains("DuplicateKeyPolicy"), "{e}");
}

#[test]
fn empty_config_says_so() {
    for text in ["", "  \n", "# only a comment\n"] {
        let e = first_error(text);
        assert_eq!(
            e,
            "t.yaml:1:1: config is empty: at least one listener is required"
        );
    }
}

#[test]
fn oversized_config_is_rejected_before_parsing() {
    let big = "#".repeat(MAX_CONFIG_BYTES + 1);
    let e = first_error(&big);
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn alias_bomb_is_rejected_by_the_budget() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(parse("t.yaml", &yaml, None).is_err());
}

#[test]
fn yes_is_not_a_boolean() {
    let yaml = "listeners: [{name: web, listen: \"127.0.0.1:0\"}]\nupstreams:\n  - name: u\n    endpoints: [\"h:1\"]\n    tls: { insecure_skip_verify: yes }\n";
    assert!(parse("t.yaml", yaml, None).is_err());
}

/// Checks every YAML block of `docs/NAME`; returns how many.
///
/// Blocks are fragments: they get stub listeners when they have none, and may name upstreams
/// they do not define; anything else must be valid.
fn doc_blocks_are_valid(name: &str) -> usize {
    let doc_path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(doc_path).unwrap();
    let stub = "listeners:\n  - {name: web, listen: \"127.0.0.1:0\"}\n  - {name: http, listen: \"127.0.0.1:0\"}\n  - {name: https, listen: \"127.0.0.1:0\"}\n";
    let mut checked = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap();
        if yaml.starts_with(' ') {
            continue; // an indented excerpt of a larger block
        }
        let full = if yaml.contains("listeners:\n") {
            yaml.to_owned()
        } else {
            format!("{yaml}{stub}")
        };
        // Examples may use `${VAR:-default}`: they are read as config files are.
        if let Err(e) = parse_with_env(name, &full, Some(&examples_dir())) {
            let real: Vec<_> =
                e.0.iter()
                    .filter(|d| !d.message.starts_with("unknown upstream"))
                    .collect();
            assert!(real.is_empty(), "block:\n{yaml}\nerrors: {real:#?}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn every_yaml_block_in_the_configuration_docs_is_valid() {
    let checked = doc_blocks_are_valid("configuration.md");
    assert!(checked >= 10, "only {checked} blocks checked");
}

#[test]
fn every_yaml_block_in_the_release_docs_is_valid() {
    assert!(doc_blocks_are_valid("release.md") >= 1);
}

#[test]
fn truncated_or_corrupted_configs_never_panic() {
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (cut, c) in text.char_indices().step_by(5) {
            let _ = parse("t.yaml", &text[..cut], None);
            let mut swapped = text.clone();
            swapped.replace_range(
                cut..cut + c.len_utf8(),
                if cut % 2 == 0 { "{" } else { ":" },
            );
            let _ = parse("t.yaml", &swapped, None);
        }
    }
}
