//! Tests of the `colour` policy and endpoint labels: defaults, the effective print, and every error with its position.

use crate::*;

const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                    routes:\n  - name: r\n    upstream: u\n    policies: [p]\n\
                    upstreams:\n  - name: u\n    endpoints: [\"127.0.0.1:1\"]\n\
                    policies:\n  - name: p\n";

fn spec(policy: &str) -> ColourPolicy {
    let l = parse("t.yaml", &format!("{HEAD}{policy}"), None).unwrap_or_else(|e| panic!("{e}"));
    match &l.config.policies[0].spec {
        PolicySpec::Colour(c) => c.clone(),
        other => panic!("{other:?}"),
    }
}

fn errors(text: &str) -> String {
    match parse("t.yaml", text, None) {
        Ok(_) => panic!("expected errors for {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_colour_policy_is_parsed_with_defaults() {
    let c = spec("    colour: { header: X-Region-Id, label: region, values: [eu, us] }\n");
    assert_eq!(c.header, "x-region-id");
    assert_eq!(c.label, "region");
    assert_eq!(c.values, ["eu", "us"]);
    assert_eq!(c.derive, None);
    assert_eq!(c.fallback, ColourFallback::Any);
    let c = spec(
        "    colour:\n      header: x-region-id\n      label: region\n      values: [eu, us]\n      \
         derive: { key: header:X-User-Id }\n      fallback: reject\n",
    );
    assert_eq!(c.derive, Some(ColourKey::Header("x-user-id".into())));
    assert_eq!(c.fallback, ColourFallback::Reject);
    let p = PolicySpec::Colour(c);
    assert_eq!((p.kind(), p.rank()), ("colour", 650));
}

#[test]
fn endpoint_labels_are_parsed_and_printed() {
    let text = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                routes:\n  - name: r\n    upstream: u\n\
                upstreams:\n  - name: u\n    endpoints:\n      \
                - { address: \"127.0.0.1:1\", weight: 2, labels: { version: 2, region: eu } }\n      \
                - \"127.0.0.1:2\"\n";
    let l = parse("t.yaml", text, None).unwrap_or_else(|e| panic!("{e}"));
    let e = &l.config.upstreams[0].endpoints;
    assert_eq!(
        e[0].labels,
        [
            ("region".to_owned(), "eu".to_owned()),
            ("version".to_owned(), "2".to_owned())
        ]
    );
    assert!(e[1].labels.is_empty());
    let printed = effective_yaml(&l.config);
    assert!(printed.contains("labels:"), "{printed}");
    assert!(printed.contains("region: eu"), "{printed}");
    // The print reads back to the same configuration.
    let again = parse("p.yaml", &printed, None).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again.config.upstreams, l.config.upstreams);
}

#[test]
fn a_colour_policy_prints_and_reads_back() {
    let text = format!(
        "{HEAD}    colour: {{ header: x-r, label: region, values: [eu, us], derive: {{ key: cookie:uid }}, fallback: reject }}\n"
    );
    let l = parse("t.yaml", &text, None).unwrap_or_else(|e| panic!("{e}"));
    let printed = effective_yaml(&l.config);
    let again = parse("p.yaml", &printed, None).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(again.config.policies, l.config.policies);
}

#[test]
fn bad_colour_settings_are_reported_with_their_position() {
    let e = errors(&format!(
        "{HEAD}    colour: {{ label: region, values: [eu] }}\n"
    ));
    assert!(e.contains("t.yaml:13:13: colour needs `header`"), "{e}");
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, values: [eu] }}\n"
    ));
    assert!(e.contains("t.yaml:13:13: colour needs `label`"), "{e}");
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, label: region }}\n"
    ));
    assert!(e.contains("t.yaml:13:13: colour needs `values`"), "{e}");
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, label: region, values: [eu, \"e u\", eu] }}\n"
    ));
    assert!(
        e.contains("t.yaml:13:56: colour.values: `e u` is not a label value"),
        "{e}"
    );
    assert!(
        e.contains("t.yaml:13:63: colour.values lists `eu` twice"),
        "{e}"
    );
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, label: region, values: [eu], derive: {{ key: ip }} }}\n"
    ));
    assert!(
        e.contains("t.yaml:13:72: unknown colour.derive.key `ip`"),
        "{e}"
    );
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, label: region, values: [eu], fallback: default }}\n"
    ));
    assert!(e.contains("t.yaml:13:67:"), "{e}");
    assert!(e.contains("colour.fallback"), "{e}");
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: \"bad header\", label: \"1x\", values: [eu] }}\n"
    ));
    assert!(e.contains("t.yaml:13:23: colour.header:"), "{e}");
    assert!(
        e.contains("t.yaml:13:44: colour.label: `1x` is not a label name"),
        "{e}"
    );
    let e = errors(&format!(
        "{HEAD}    colour: {{ header: x-r, label: r, values: [] }}\n"
    ));
    assert!(e.contains("colour.values is empty"), "{e}");
}

#[test]
fn bad_endpoint_labels_are_reported_with_their_position() {
    let text = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                routes:\n  - name: r\n    upstream: u\n\
                upstreams:\n  - name: u\n    endpoints:\n      \
                - { address: \"127.0.0.1:1\", labels: { \"-x\": eu, region: \"e/u\" } }\n";
    let e = errors(text);
    assert!(e.contains("t.yaml:10:45: `-x` is not a label name"), "{e}");
    assert!(
        e.contains("t.yaml:10:63: label `region`: `e/u` is not a label value"),
        "{e}"
    );
    let text = "listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n\
                routes:\n  - name: r\n    upstream: u\n\
                upstreams:\n  - name: u\n    endpoints:\n      \
                - { address: \"127.0.0.1:1\", labels: [eu] }\n";
    let e = errors(text);
    assert!(e.contains("t.yaml:10:"), "{e}");
}
