//! `listeners[].http`: defaults, accepted words, positions of errors, and the warning for
//! turning normalisation off.

use crate::*;

fn parsed(http: &str) -> Result<Loaded, String> {
    let yaml = format!("listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n{http}");
    parse("t.yaml", &yaml, None).map_err(|e| e.to_string())
}

#[test]
fn defaults_normalise_reject_escaped_slashes_and_drop_underscores() {
    let l = parsed("").unwrap();
    let h = l.config.listeners[0].http;
    assert!(h.normalize_path && h.merge_slashes);
    assert_eq!(h.escaped_slashes, EscapedSlashesAction::RejectRequest);
    assert_eq!(h.underscores, UnderscoresAction::DropHeader);
    assert!(l.warnings.is_empty());
}

#[test]
fn every_setting_is_read() {
    let l = parsed(
        "    http:\n      normalize_path: true\n      merge_slashes: false\n      \
         path_with_escaped_slashes_action: unescape_and_forward\n      \
         headers_with_underscores_action: allow\n",
    )
    .unwrap();
    let h = l.config.listeners[0].http;
    assert!(h.normalize_path && !h.merge_slashes);
    assert_eq!(h.escaped_slashes, EscapedSlashesAction::UnescapeAndForward);
    assert_eq!(h.underscores, UnderscoresAction::Allow);
}

#[test]
fn unknown_action_is_reported_at_its_value_with_the_choices() {
    let e = parsed(
        "    http: { path_with_escaped_slashes_action: decode, headers_with_underscores_action: keep }\n",
    )
    .unwrap_err();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(
        lines[0].starts_with("t.yaml:4:47: unknown path_with_escaped_slashes_action `decode`: expected one of `keep_unchanged`, `reject_request`, `unescape_and_forward`"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("t.yaml:4:88: unknown headers_with_underscores_action `keep`"),
        "{e}"
    );
}

#[test]
fn unknown_field_and_non_boolean_are_errors() {
    let e = parsed("    http: { normalise_path: true }\n").unwrap_err();
    assert!(
        e.starts_with("t.yaml:4:13: unknown field `normalise_path`"),
        "{e}"
    );
    assert!(parsed("    http: { merge_slashes: yes }\n").is_err());
}

#[test]
fn turning_normalisation_off_warns() {
    let l = parsed("    http: { normalize_path: false }\n").unwrap();
    assert!(!l.config.listeners[0].http.normalize_path);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].message.contains("normalize_path: false"));
}
