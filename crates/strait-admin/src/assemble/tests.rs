use proptest::prelude::*;
use serde_json::json;

use super::*;

fn running() -> Value {
    json!({
        "admin": {"listen": "127.0.0.1:0"},
        "listeners": [{"name": "web", "listen": "127.0.0.1:0"}],
        "routes": [
            {"name": "all", "match": {"path_prefix": "/"}, "upstream": "up"},
            {"name": "b", "respond": {"status": 200}}
        ],
        "upstreams": [{"name": "up", "endpoints": ["127.0.0.1:1"]}]
    })
}

fn errors(a: &Assembled) -> Vec<String> {
    match strait_config::parse("admin", &a.text, None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|d| a.describe(d)).collect(),
    }
}

#[test]
fn an_error_in_a_yaml_body_points_into_the_body() {
    let body = "match: { path_prefix: /x }\nupstream: nope\n";
    let a = Assembled::item(&running(), "routes", "b", body, false).unwrap();
    let e = errors(&a);
    assert_eq!(e.len(), 1, "{e:?}\n{}", a.text);
    assert!(
        e[0].starts_with("routes/b:2:11: unknown upstream `nope`"),
        "{e:?}"
    );
}

#[test]
fn an_error_in_a_json_body_keeps_its_column_after_the_name_is_added() {
    let body = r#"{"match": {"path_prefix": "/x"}, "upstream": "nope"}"#;
    let a = Assembled::item(&running(), "routes", "new", body, false).unwrap();
    let e = errors(&a);
    let col = body.find("\"nope\"").unwrap() + 1;
    assert_eq!(e.len(), 1, "{e:?}\n{}", a.text);
    assert!(
        e[0].starts_with(&format!("routes/new:1:{col}: unknown upstream")),
        "{e:?} (expected column {col})"
    );
}

#[test]
fn a_body_with_its_name_is_placed_as_written() {
    let body = "name: b\nrespond: { status: 700 }\n";
    let a = Assembled::item(&running(), "routes", "b", body, true).unwrap();
    let e = errors(&a);
    assert!(e[0].starts_with("routes/b:2:20: "), "{e:?}");
}

#[test]
fn an_error_elsewhere_names_the_item_that_has_it() {
    let mut tree = running();
    tree["upstreams"] = json!([]);
    let a = Assembled::tree(&tree);
    let e = errors(&a);
    assert!(
        e.iter()
            .any(|m| m.starts_with("routes/all: unknown upstream `up`")),
        "{e:?}\n{}",
        a.text
    );
}

#[test]
fn a_new_item_is_appended_to_its_section_and_the_order_is_kept() {
    let a = Assembled::item(&running(), "routes", "z", "respond: { status: 204 }", false).unwrap();
    let loaded = strait_config::parse("admin", &a.text, None).unwrap();
    let names: Vec<&str> = loaded
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["all", "b", "z"]);
    let a = Assembled::item(
        &running(),
        "upstreams",
        "u2",
        "endpoints: [\"127.0.0.1:2\"]",
        false,
    )
    .unwrap();
    let loaded = strait_config::parse("admin", &a.text, None).unwrap();
    assert_eq!(loaded.config.upstreams.len(), 2);
    assert_eq!(loaded.config.routes[0].name, "all");
}

#[test]
fn line_references_in_messages_name_what_the_user_wrote() {
    let a = Assembled::item(
        &running(),
        "routes",
        "x",
        "match: { path_prefix: /x }\nrespond: { status: 200 }\n",
        false,
    )
    .unwrap();
    let loaded = strait_config::parse("admin", &a.text, None).unwrap();
    let w: Vec<String> = strait_control::shadow::shadow_warnings(&loaded.config)
        .iter()
        .map(|d| a.describe(d))
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(
            "routes/x: route `x` is never matched: route `all` (routes/all) is tried first"
        ),
        "{w:?}"
    );
}

#[test]
fn document_markers_in_a_body_are_refused() {
    let e =
        Assembled::item(&running(), "routes", "b", "respond: {}\n---\nx: 1\n", false).unwrap_err();
    assert_eq!(e.0, (2, 1));
}

#[test]
fn a_whole_document_keeps_its_positions_when_a_section_is_added() {
    let admin = json!({"listen": "127.0.0.1:0"});
    let yaml = "listeners:\n  - name: web\n    listen: nope\n";
    let a = Assembled::document(yaml, "admin", Some(&admin));
    let e = errors(&a);
    assert!(e[0].starts_with("admin:3:13: "), "{e:?}");
    let json_body = r#"{"listeners": [{"name": "web", "listen": "nope"}]}"#;
    let a = Assembled::document(json_body, "admin", Some(&admin));
    let e = errors(&a);
    let col = json_body.find("\"nope\"").unwrap() + 1;
    assert!(
        e[0].starts_with(&format!("admin:1:{col}: ")),
        "{e:?} want {col}\n{}",
        a.text
    );
}

proptest! {
    #[test]
    fn a_field_inserted_into_a_json_object_is_there_and_nothing_else_changes(
        keys in prop::collection::btree_map("[a-z]{1,6}", "[a-z0-9 ]{0,8}", 0..5),
        pretty in any::<bool>(),
    ) {
        let obj: Map<String, Value> = keys.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        let text = if pretty {
            serde_json::to_string_pretty(&obj).unwrap()
        } else {
            serde_json::to_string(&obj).unwrap()
        };
        let (out, _) = insert_into_flow(&text, "\"name\": \"n\"").unwrap();
        let mut expected = obj.clone();
        expected.insert("name".into(), Value::String("n".into()));
        let got: Value = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(got, Value::Object(expected));
    }
}
