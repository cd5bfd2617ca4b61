//! Tests for direct responses that HTTP cannot carry.

use crate::parse;

/// `LINE:COL: message` of each error in a config with one listener and `routes`.
fn errors(routes: &str) -> Vec<String> {
    let yaml = format!("listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n{routes}");
    match parse("t.yaml", &yaml, None) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                .collect()
        }
    }
}

#[test]
fn interim_statuses_cannot_answer_a_request() {
    for code in [100, 101, 103, 199] {
        let e = errors(&format!("  - name: r\n    respond: {{ status: {code} }}\n"));
        assert_eq!(e.len(), 1, "{code}: {e:?}");
        assert!(
            e[0].starts_with("6:24: respond cannot use status"),
            "{code}: {e:?}"
        );
    }
}

#[test]
fn bodyless_statuses_reject_a_body_at_the_body() {
    for code in [204, 205, 304] {
        let e = errors(&format!(
            "  - name: r\n    respond:\n      status: {code}\n      body: hello\n"
        ));
        assert_eq!(e.len(), 1, "{code}: {e:?}");
        let want = format!("8:13: a {code} response has no body");
        assert!(e[0].starts_with(&want), "{code}: {e:?}");
        // Without a body (or with an empty one) the status is fine.
        assert!(errors(&format!("  - name: r\n    respond: {{ status: {code} }}\n")).is_empty());
        assert!(errors(&format!(
            "  - name: r\n    respond: {{ status: {code}, body: \"\" }}\n"
        ))
        .is_empty());
    }
    assert!(errors("  - name: r\n    respond: { status: 200, body: hi }\n").is_empty());
}

#[test]
fn framing_headers_are_refused_in_a_direct_response() {
    let e = errors(
        "  - name: r\n    respond:\n      body: hi\n      headers: { Content-Length: \"10\", x-ok: y, transfer-encoding: chunked }\n",
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].starts_with("8:18: respond cannot set `content-length`"),
        "{e:?}"
    );
    assert!(e[1].contains("`transfer-encoding`"), "{e:?}");
}
