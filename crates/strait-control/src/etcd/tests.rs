//! Unit tests of the etcd key layout: assembling keys into a document, mapping errors back to keys, splitting documents.

use std::collections::BTreeMap;

use super::layout::{assemble, classify, held_by, same, split, split_shared, Key, Origin, Values};
use super::{plan, Kv};

const BOOT: &str = "admin:\n  listen: 127.0.0.1:0\nconfig:\n  provider: etcd\n";

fn values(pairs: &[(&str, &str)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn base() -> Values {
    values(&[
        ("listeners/web", "listen: 127.0.0.1:0"),
        (
            "routes/b",
            "match: { path_prefix: /b }\nrespond: { body: b }",
        ),
        ("routes/a", "{\"respond\": {\"body\": \"a\"}}"),
    ])
}

#[test]
fn keys_are_classified_by_layout() {
    assert_eq!(classify("server"), Some(Key::Server));
    assert_eq!(classify("route_order"), Some(Key::RouteOrder));
    assert_eq!(classify("routes/api"), Some(Key::Item("routes", "api")));
    assert_eq!(classify("routes/"), None);
    assert_eq!(classify("routes/a/b"), None);
    assert_eq!(classify("filters/x"), None);
    assert_eq!(classify("policies/p"), Some(Key::Item("policies", "p")));
    assert_eq!(classify("rollouts/r"), Some(Key::Item("rollouts", "r")));
}

fn route_names(config: &strait_config::Config) -> Vec<&str> {
    config.routes.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn assembled_document_is_a_valid_config_with_names_from_keys() {
    let a = assemble("/strait/", BOOT, &base()).expect("assembles");
    let loaded =
        strait_config::parse("etcd", &a.text, None).unwrap_or_else(|e| panic!("{e}\n{}", a.text));
    let names = route_names(&loaded.config);
    // No route_order key: name order.
    assert_eq!(names, ["a", "b"]);
    assert_eq!(loaded.config.listeners[0].name, "web");
    assert_eq!(
        loaded.config.provider.kind,
        strait_config::ProviderKind::Etcd
    );
}

#[test]
fn route_order_key_decides_written_order_and_unlisted_routes_follow() {
    let mut v = base();
    v.insert("routes/c".into(), "respond: { body: c }".into());
    v.insert("route_order".into(), "[b, ghost, a]".into());
    let a = assemble("/strait/", BOOT, &v).expect("assembles");
    let loaded = strait_config::parse("etcd", &a.text, None).expect("valid");
    let names = route_names(&loaded.config);
    assert_eq!(names, ["b", "a", "c"]);
}

#[test]
fn errors_name_the_key_and_the_position_inside_its_value() {
    let mut v = base();
    v.insert(
        "routes/bad".into(),
        "match: { path_prefix: /x }\nupstream: nowhere".into(),
    );
    let a = assemble("/strait/", BOOT, &v).expect("assembles");
    let errors =
        strait_config::parse("etcd:/strait/", &a.text, None).expect_err("unknown upstream");
    let d = a.map_diagnostic(errors.0[0].clone(), "/strait/", "boot.yaml");
    assert_eq!(d.source, "etcd:/strait/routes/bad");
    assert_eq!((d.line, d.column), (2, 11), "{d}");
    assert!(d.message.contains("nowhere"), "{d}");
}

#[test]
fn bootstrap_lines_map_to_the_bootstrap_file() {
    let a = assemble("/strait/", BOOT, &base()).expect("assembles");
    assert_eq!(a.locate((2, 3)), Origin::Bootstrap((2, 3)));
}

#[test]
fn malformed_values_are_rejected_with_the_key() {
    let mut v = base();
    v.insert("routes/x".into(), "respond: [".into());
    v.insert("routes/y".into(), "name: z\nrespond: {}".into());
    v.insert("upstreams/u".into(), "- a".into());
    v.insert("nonsense".into(), "1".into());
    let errors = assemble("/strait/", BOOT, &v).expect_err("invalid");
    let sources: Vec<&str> = errors.iter().map(|d| d.source.as_str()).collect();
    for key in ["routes/x", "routes/y", "upstreams/u", "nonsense"] {
        assert!(
            sources.contains(&format!("etcd:/strait/{key}").as_str()),
            "{key} in {errors:?}"
        );
    }
}

#[test]
fn no_listeners_is_an_error_that_says_how_to_seed() {
    let errors = assemble("/strait/", BOOT, &Values::new()).expect_err("no listeners");
    assert!(
        errors[0].message.contains("strait config push"),
        "{errors:?}"
    );
}

#[test]
fn split_then_assemble_round_trips_order_and_content() {
    let doc = "admin:\n  listen: 127.0.0.1:0\nserver: { drain_timeout: 1s }\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: z\n    match: { headers: { x-v: \"010\" } }\n    respond: { body: z }\n  - name: a\n    respond: { body: a }\n";
    let v = split(doc).expect("splits");
    assert!(!v.contains_key("admin"), "local sections stay local");
    assert_eq!(v["route_order"], "[\"z\",\"a\"]");
    let a = assemble("/strait/", BOOT, &v).expect("assembles");
    let loaded = strait_config::parse("etcd", &a.text, None).expect("valid");
    let names = route_names(&loaded.config);
    assert_eq!(names, ["z", "a"]);
    assert_eq!(
        loaded.config.server.drain_timeout,
        std::time::Duration::from_secs(1)
    );
    let direct = strait_config::parse("file", doc, None).expect("valid");
    assert_eq!(direct.config.routes, loaded.config.routes);
}

#[test]
fn split_rejects_items_without_names() {
    let err = split("routes:\n  - respond: { body: x }\n").expect_err("no name");
    assert!(err.contains("routes[0]"), "{err}");
}

#[test]
fn values_compare_by_meaning_not_spelling() {
    assert!(same(
        "routes/a",
        "respond: { body: a }",
        "{\"name\":\"a\",\"respond\":{\"body\":\"a\"}}"
    ));
    assert!(!same(
        "routes/a",
        "respond: { body: a }",
        "respond: { body: b }"
    ));
}

#[test]
fn a_write_touches_only_keys_whose_meaning_changed() {
    let kv = |value: &str, mod_revision| Kv {
        value: value.into(),
        mod_revision,
    };
    let base: BTreeMap<String, Kv> = [
        ("listeners/web".to_string(), kv("listen: 127.0.0.1:0", 3)),
        ("routes/a".to_string(), kv("respond: { body: a }", 4)),
        ("routes/gone".to_string(), kv("respond: { body: g }", 5)),
    ]
    .into();
    let desired = values(&[
        (
            "listeners/web",
            "{\"listen\":\"127.0.0.1:0\",\"name\":\"web\"}",
        ),
        ("routes/a", "respond: { body: changed }"),
        ("routes/new", "respond: { body: n }"),
    ]);
    let (compares, ops, touched) = plan("/strait/", &base, &desired);
    assert_eq!(touched, ["routes/a", "routes/new", "routes/gone"]);
    assert_eq!((compares.len(), ops.len()), (3, 3));
}

/// The base keys plus two upstreams, a split route, a policy it uses and a rollout of it.
fn with_rollout() -> Values {
    let mut v = base();
    v.insert("upstreams/v1".into(), "endpoints: [\"127.0.0.1:1\"]".into());
    v.insert("upstreams/v2".into(), "endpoints: [\"127.0.0.1:2\"]".into());
    v.insert(
        "routes/checkout".into(),
        "match: { path_prefix: /c }\nupstreams: [v1, v2]\npolicies: [limit]".into(),
    );
    v.insert(
        "policies/limit".into(),
        "rate_limit: { requests: 10, per: 1s }".into(),
    );
    v.insert(
        "rollouts/checkout".into(),
        "route: checkout\nstable: v1\ncanary: v2\nsteps: [{ weight: 10, pause: 1s }]".into(),
    );
    v
}

#[test]
fn policies_and_rollouts_come_from_their_keys() {
    let a = assemble("/strait/", BOOT, &with_rollout()).expect("assembles");
    let loaded =
        strait_config::parse("etcd", &a.text, None).unwrap_or_else(|e| panic!("{e}\n{}", a.text));
    let c = &loaded.config;
    assert_eq!(c.policies.len(), 1);
    assert_eq!(c.policies[0].name, "limit");
    assert_eq!(c.rollouts.len(), 1);
    assert_eq!(
        (c.rollouts[0].name.as_str(), c.rollouts[0].canary.as_str()),
        ("checkout", "v2")
    );
}

/// The first error of `with_rollout()` with `key` set to `value`, mapped back to its key.
fn first_error_with(key: &str, value: &str) -> strait_config::Diagnostic {
    let mut v = with_rollout();
    v.insert(key.into(), value.into());
    let a = assemble("/strait/", BOOT, &v).expect("assembles");
    let errors = strait_config::parse("etcd:/strait/", &a.text, None).expect_err("invalid");
    a.map_diagnostic(errors.0[0].clone(), "/strait/", "boot.yaml")
}

#[test]
fn errors_in_a_rollout_key_name_the_key_and_the_position() {
    let d = first_error_with(
        "rollouts/checkout",
        "route: checkout\nstable: v1\ncanary: nowhere\nsteps: [{ weight: 10, pause: 1s }]",
    );
    assert_eq!(
        (d.source.as_str(), d.line),
        ("etcd:/strait/rollouts/checkout", 3),
        "{d}"
    );
    let d = first_error_with("policies/limit", "rate_limit: { requests: -1, per: 1s }");
    assert_eq!(
        (d.source.as_str(), d.line),
        ("etcd:/strait/policies/limit", 1),
        "{d}"
    );
}

#[test]
fn a_section_in_both_the_bootstrap_file_and_etcd_is_an_error_naming_the_keys() {
    let boot =
        format!("{BOOT}policies:\n  - name: limit\n    rate_limit: {{ requests: 1, per: 1s }}\n");
    assert_eq!(held_by(&boot), ["policies"]);
    assert!(held_by(BOOT).is_empty());
    let errors = assemble("/strait/", &boot, &with_rollout()).expect_err("twice");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].source, "etcd:/strait/policies/limit");
    assert!(errors[0].message.contains("bootstrap"), "{errors:?}");
}

#[test]
fn push_splits_policies_and_rollouts_into_keys() {
    let doc = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nupstreams:\n  - { name: v1, endpoints: [\"127.0.0.1:1\"] }\n  - { name: v2, endpoints: [\"127.0.0.1:2\"] }\npolicies:\n  - name: limit\n    rate_limit: { requests: 10, per: 1s }\nroutes:\n  - name: checkout\n    upstreams: [v1, v2]\n    policies: [limit]\nrollouts:\n  - name: c\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: [{ weight: 5, pause: 1s }]\n";
    let v = split(doc).expect("splits");
    assert!(v.contains_key("policies/limit"), "{v:?}");
    assert!(v.contains_key("rollouts/c"), "{v:?}");
    let a = assemble("/strait/", BOOT, &v).expect("assembles");
    let loaded = strait_config::parse("etcd", &a.text, None).expect("valid");
    let direct = strait_config::parse("file", doc, None).expect("valid");
    assert_eq!(direct.config.rollouts, loaded.config.rollouts);
    assert_eq!(direct.config.policies, loaded.config.policies);
}

#[test]
fn an_admin_write_leaves_the_bootstrap_files_sections_to_it() {
    let boot =
        format!("{BOOT}policies:\n  - name: limit\n    rate_limit: {{ requests: 1, per: 1s }}\n");
    let doc = format!("{boot}listeners:\n  - name: web\n    listen: 127.0.0.1:0\n");
    let v = split_shared(&doc, &boot).expect("unchanged bootstrap section");
    assert!(!v.keys().any(|k| k.starts_with("policies/")), "{v:?}");
    assert!(v.contains_key("listeners/web"));
    let changed = doc.replace("requests: 1,", "requests: 2,");
    let err = split_shared(&changed, &boot).expect_err("changes a bootstrap section");
    assert!(err.contains("bootstrap file"), "{err}");
}
