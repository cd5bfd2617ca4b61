//! `strait validate` on what a config cannot do at run time: overlapping binds, direct responses HTTP cannot send, and sizes in GiB.

use strait_e2e::config_file::{column_of, line_of, Validated};

#[test]
fn validate_rejects_a_wildcard_listener_overlapping_a_specific_one_on_the_same_port() {
    let port = strait_e2e::free_port();
    let yaml = format!(
        "admin: {{ listen: \"127.0.0.1:0\" }}\nlisteners:\n  - name: a\n    listen: 127.0.0.1:{port}\n  - name: b\n    listen: 0.0.0.0:{port}\n  - name: c\n    listen: \"[::]:{port}\"\n"
    );
    let v = Validated::run(&yaml, &[]);
    let line = line_of(&yaml, "0.0.0.0:");
    let col = column_of(&yaml, "0.0.0.0:", "0.0.0.0");
    let at_b = v.errors_at(line);
    assert!(
        at_b.iter().any(|l| l.contains(&format!(
            ":{line}:{col}: address 0.0.0.0:{port} overlaps 127.0.0.1:{port} at line 4"
        ))),
        "no error at {line}:{col}; stderr:\n{}",
        v.stderr
    );
    let at_c = v.errors_at(line_of(&yaml, "[::]:"));
    assert!(
        at_c.iter().any(|l| l.contains("overlaps")),
        "stderr:\n{}",
        v.stderr
    );
}

#[test]
fn validate_rejects_a_listener_on_the_admin_port_of_a_wildcard() {
    let port = strait_e2e::free_port();
    let yaml = format!(
        "admin:\n  listen: 0.0.0.0:{port}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:{port}\n"
    );
    let v = Validated::run(&yaml, &[]);
    let errs = v.errors_at(line_of(&yaml, "    listen: 127.0.0.1"));
    assert!(
        errs.iter().any(|l| l.contains("(admin.listen)")),
        "stderr:\n{}",
        v.stderr
    );
    // The default admin address (127.0.0.1:9901) is written nowhere, and still clashes.
    let yaml = "listeners:\n  - name: web\n    listen: 0.0.0.0:9901\n";
    let v = Validated::run(yaml, &[]);
    let errs = v.errors_at(3);
    assert!(
        errs.iter()
            .any(|l| l.contains("(the default admin.listen)")),
        "stderr:\n{}",
        v.stderr
    );
}

#[test]
fn validate_rejects_direct_responses_http_cannot_send() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: interim
    match: { path: /a }
    respond: { status: 100 }
  - name: no-content
    match: { path: /b }
    respond: { status: 204, body: \"gone\" }
  - name: not-modified
    match: { path: /c }
    respond:
      status: 304
      body: stale
  - name: framed
    match: { path: /d }
    respond: { body: hi, headers: { content-length: \"99\" } }
";
    let v = Validated::run(yaml, &[]);
    let cases = [
        ("status: 100", "100", "respond cannot use status 100"),
        ("status: 204", "\"gone\"", "a 204 response has no body"),
        ("body: stale", "stale", "a 304 response has no body"),
        (
            "content-length",
            "content-length",
            "respond cannot set `content-length`",
        ),
    ];
    for (line_needle, at, reason) in cases {
        let line = line_of(yaml, line_needle);
        let col = column_of(yaml, line_needle, at);
        let hits = v.errors_at(line);
        assert!(
            hits.iter()
                .any(|l| l.contains(&format!(":{line}:{col}: {reason}"))),
            "no `{reason}` at {line}:{col}; stderr:\n{}",
            v.stderr
        );
    }
}

#[test]
fn sizes_may_be_written_in_gib_and_g_gets_a_hint() {
    let good = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: { max_request_body: 2GiB }\n";
    Validated::run(good, &[]).assert_ok();
    let bad = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: { max_request_body: 2G }\n";
    let v = Validated::run(bad, &[]);
    let errs = v.errors_at(4);
    assert!(
        errs.iter().any(|l| l.contains("did you mean `GiB`?")),
        "stderr:\n{}",
        v.stderr
    );
}
