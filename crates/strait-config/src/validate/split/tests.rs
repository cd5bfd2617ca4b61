//! Tests of route `split:` validation: every error at the value at fault.

use crate::parse;
use crate::types::{OverrideOn, Split, SplitOverride, StickyKey};

const HEAD: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nupstreams:\n  - { name: a, endpoints: [\"127.0.0.1:1\"] }\n  - { name: b, endpoints: [\"127.0.0.1:2\"] }\n  - { name: c, endpoints: [\"127.0.0.1:3\"] }\nroutes:\n  - name: r\n";

/// `LINE:COL: message` of each error with the route body `route` (lines start at 10).
fn errors(route: &str) -> Vec<String> {
    match parse("t.yaml", &format!("{HEAD}{route}"), None) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        }
    }
}

fn split_of(route: &str) -> Split {
    let c = parse("t.yaml", &format!("{HEAD}{route}"), None).unwrap();
    c.config.routes[0].split.clone().unwrap()
}

const WEIGHTED: &str =
    "    upstreams: [{ name: a, weight: 95 }, { name: b, weight: 5 }, { name: c, weight: 0 }]\n";

#[test]
fn overrides_and_sticky_key_are_read_in_order() {
    let s = split_of(&format!(
        "{WEIGHTED}    split:\n      overrides:\n        - {{ header: X-Canary, value: always, upstream: b }}\n        - {{ cookie: beta, value: \"1\", upstream: b }}\n        - {{ query: dark, upstream: c }}\n      sticky: {{ key: header:X-User-Id }}\n"
    ));
    let o = |on, value: Option<&str>, upstream: &str| SplitOverride {
        on,
        value: value.map(str::to_owned),
        upstream: upstream.into(),
    };
    assert_eq!(
        s.overrides,
        vec![
            o(OverrideOn::Header("x-canary".into()), Some("always"), "b"),
            o(OverrideOn::Cookie("beta".into()), Some("1"), "b"),
            o(OverrideOn::Query("dark".into()), None, "c"),
        ]
    );
    assert_eq!(s.sticky, Some(StickyKey::Header("x-user-id".into())));
}

#[test]
fn every_sticky_key_form_is_accepted() {
    for (key, want) in [
        ("cookie:sid", StickyKey::Cookie("sid".into())),
        ("claim:sub", StickyKey::Claim("sub".into())),
        ("client_ip", StickyKey::ClientIp),
    ] {
        let s = split_of(&format!(
            "{WEIGHTED}    split: {{ sticky: {{ key: \"{key}\" }} }}\n"
        ));
        assert_eq!(s.sticky, Some(want), "{key}");
    }
}

#[test]
fn an_override_to_an_upstream_outside_the_route_is_refused_at_its_name() {
    let e = errors(
        "    upstreams: [{ name: a, weight: 95 }, { name: b, weight: 5 }]\n    split:\n      overrides:\n        - { header: x-canary, upstream: c }\n",
    );
    assert_eq!(
        e,
        ["13:41: override upstream `c` is not one of the route's upstreams (a, b)"]
    );
}

#[test]
fn a_weight_zero_upstream_may_be_an_override_target() {
    let s = split_of(&format!(
        "{WEIGHTED}    split: {{ overrides: [{{ header: x-dark, upstream: c }}] }}\n"
    ));
    assert_eq!(s.overrides[0].upstream, "c");
}

#[test]
fn bad_sticky_keys_are_refused_at_the_key() {
    for (key, want) in [
        ("user", "11:29: invalid sticky key `user`: use header:NAME, cookie:NAME, claim:NAME or client_ip"),
        ("jwt:sub", "11:29: invalid sticky key `jwt:sub`: use header:NAME, cookie:NAME, claim:NAME or client_ip"),
        ("header:", "11:29: sticky key `header:` has no name after `header:`"),
        ("header:a b", "11:29: `a b` is not a valid header name"),
        ("cookie:a;b", "11:29: `a;b` is not a valid cookie name"),
    ] {
        let e = errors(&format!("{WEIGHTED}    split: {{ sticky: {{ key: \"{key}\" }} }}\n"));
        assert_eq!(e, [want], "{key}");
    }
    let e = errors(&format!("{WEIGHTED}    split: {{ sticky: {{}} }}\n"));
    assert_eq!(
        e,
        ["11:22: sticky needs a `key`: header:NAME, cookie:NAME, claim:NAME or client_ip"]
    );
}

#[test]
fn an_override_reads_exactly_one_value_and_forces_an_upstream() {
    let e = errors(&format!(
        "{WEIGHTED}    split:\n      overrides:\n        - {{ header: x-a, cookie: b, upstream: b }}\n        - {{ value: \"1\", upstream: b }}\n        - {{ query: q }}\n"
    ));
    assert_eq!(
        e,
        [
            "13:34: override has both `header` and `cookie`: one rule reads one value",
            "14:11: override needs one of `header`, `cookie` or `query`",
            "15:11: override needs the `upstream` it forces",
        ]
    );
}

#[test]
fn split_needs_a_forwarding_route_and_some_content() {
    let e = errors("    respond: { status: 200 }\n    split: { sticky: { key: client_ip } }\n");
    assert_eq!(
        e,
        ["11:12: split only applies to routes that forward to upstreams"]
    );
    let e = errors(&format!("{WEIGHTED}    split: {{}}\n"));
    assert_eq!(
        e,
        ["11:12: split is empty: set `overrides`, `sticky` or both"]
    );
}

#[test]
fn unknown_split_fields_are_refused() {
    let e = errors(&format!(
        "{WEIGHTED}    split: {{ stiky: {{ key: client_ip }} }}\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("stiky"), "{e:?}");
}
