//! Tests for `${VAR}` expansion and its column map.

use proptest::prelude::*;

use super::*;

fn vars(name: &str) -> Result<Option<String>, String> {
    Ok(match name {
        "HOST" => Some("10.0.0.1".into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        "LONG" => Some("a-much-longer-value".into()),
        "NL" => Some("two\nlines".into()),
        "É" => Some("x".into()),
        _ => None,
    })
}

fn ok(text: &str) -> Expanded {
    expand(text, &vars).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errs(text: &str) -> Vec<(Pos, String)> {
    expand(text, &vars).expect_err("expected errors")
}

#[test]
fn references_and_defaults_are_replaced_anywhere_on_a_line() {
    assert_eq!(
        ok("listen: ${HOST}:${PORT}\n").text,
        "listen: 10.0.0.1:8080\n"
    );
    assert_eq!(
        ok("tls: { cert: \"${DIR:-certs}/a.pem\" }\n").text,
        "tls: { cert: \"certs/a.pem\" }\n"
    );
    // `:-` also replaces an empty value; a plain reference keeps it empty.
    assert_eq!(ok("a: ${EMPTY:-d}|${EMPTY}|${UNSET:-}\n").text, "a: d||\n");
}

#[test]
fn the_escape_and_a_lone_dollar_stay_literal() {
    assert_eq!(
        ok("a: $${HOST} $HOST ^/x$ $$\n").text,
        "a: ${HOST} $HOST ^/x$ $$\n"
    );
    assert!(!ok("a: $HOST\n").changed());
}

#[test]
fn comment_lines_are_not_expanded() {
    let e = ok("# token: ${UNSET}\n  # ${UNSET}\na: ${PORT}\n");
    assert_eq!(e.text, "# token: ${UNSET}\n  # ${UNSET}\na: 8080\n");
}

#[test]
fn an_unset_variable_is_an_error_at_its_dollar() {
    let e = errs("a: 1\nb: x-${NOPE}\nc: ${HOST}${ALSO_NOPE}\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].0, (2, 6));
    assert!(
        e[0].1.starts_with("environment variable `NOPE` is not set"),
        "{}",
        e[0].1
    );
    assert_eq!(e[1].0, (3, 11));
}

#[test]
fn malformed_references_and_line_breaks_are_errors() {
    let e = errs("a: ${1X}\nb: ${A B}\nc: ${HOST\nd: ${NL}\ne: ${}\n");
    let lines: Vec<u64> = e.iter().map(|(p, _)| p.0).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5], "{e:?}");
    assert!(e[2].1.contains("without a closing"), "{}", e[2].1);
    assert!(e[3].1.contains("line break"), "{}", e[3].1);
    // Non-ASCII names are not names.
    assert!(errs("a: ${É}\n")[0].1.contains("not a variable reference"));
}

#[test]
fn positions_map_back_to_the_written_columns() {
    let e = ok("x: é${LONG}é ${EMPTY}z $${ w\n");
    assert_eq!(e.text, "x: éa-much-longer-valueé z ${ w\n");
    // Before any reference: unchanged.
    assert_eq!(e.source_pos((1, 4)), (1, 4));
    // Inside the value: the reference's `$`.
    assert_eq!(e.source_pos((1, 5)), (1, 5));
    assert_eq!(e.source_pos((1, 20)), (1, 5));
    // After it: shifted back by the length difference.
    assert_eq!(e.source_pos((1, 24)), (1, 12));
    // `z` after the empty value, then the escape, then ` w`.
    assert_eq!(e.source_pos((1, 26)), (1, 22));
    assert_eq!(e.source_pos((1, 28)), (1, 24));
    assert_eq!(e.source_pos((1, 30)), (1, 27));
    // Past the end of the line, and on other lines.
    assert_eq!(e.source_pos((1, 40)), (1, 37));
    assert_eq!(e.source_pos((2, 7)), (2, 7));
    assert_eq!(e.source_pos((0, 0)), (0, 0));
}

/// A line of literal text, references and escapes, and what it expands to.
fn piece() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[a-z :{},\"é#-]{0,6}".prop_map(|s| (s.clone(), s)),
        Just(("${HOST}".to_string(), "10.0.0.1".to_string())),
        Just(("${EMPTY}".to_string(), String::new())),
        Just(("${UNSET:-dflt}".to_string(), "dflt".to_string())),
        Just(("$${".to_string(), "${".to_string())),
        Just(("$".to_string(), "$".to_string())),
    ]
}

proptest! {
    /// Every copied character maps back to itself, line counts never change, and a
    /// value's characters all map to the `$` of their reference.
    #[test]
    fn copied_characters_map_back_to_themselves(parts in prop::collection::vec(piece(), 0..12)) {
        // `$` followed by `{` or `$` from the next piece would form another token.
        let mut src = String::from("k: ");
        let mut want = String::from("k: ");
        let mut spans = Vec::new();
        for (s, v) in &parts {
            if s == "$" && parts.len() > 1 { continue; }
            let start = src.chars().count() as u64 + 1;
            let out_start = want.chars().count() as u64 + 1;
            src.push_str(s);
            want.push_str(v);
            spans.push((s.starts_with('$') && s != "$", start, out_start, v.chars().count() as u64));
        }
        src.push('\n');
        want.push('\n');
        let e = expand(&src, &vars).unwrap();
        prop_assert_eq!(&e.text, &want);
        prop_assert_eq!(e.text.lines().count(), src.lines().count());
        let src_chars: Vec<char> = src.chars().collect();
        for (i, c) in e.text.chars().enumerate() {
            let col = i as u64 + 1;
            let (line, at) = e.source_pos((1, col));
            prop_assert_eq!(line, 1);
            let from_value = spans.iter().find(|(r, _, o, len)| *r && col >= *o && col < o + len);
            match from_value {
                Some((_, start, _, _)) => prop_assert_eq!(at, *start),
                None => prop_assert_eq!(src_chars[(at - 1) as usize], c),
            }
        }
    }
}
