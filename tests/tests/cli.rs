//! The command line: `strait version`, `strait validate` (errors as
//! FILE:LINE:COL, warnings, every example config) and `strait routes`.

use std::path::Path;
use std::path::PathBuf;

use strait_e2e::config_file::{diagnostics_at, line_of, write};
use strait_e2e::strait::run_cli;

const GOOD: &str = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: users
  - name: hello
    respond: { status: 200, body: \"hi\" }
upstreams:
  - name: users
    endpoints: [\"127.0.0.1:9001\"]
";

#[test]
fn version_prints_the_package_version() {
    let out = run_cli(&["version"]);
    assert!(out.status.success(), "exit status {:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!("strait {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(stdout.starts_with(&want), "{stdout:?}");
}

#[test]
fn validate_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "good.yaml", GOOD);
    let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("{}: ok", file.display())),
        "stdout lacks `FILE: ok`: {stdout:?}"
    );
}

#[test]
fn validate_reports_an_unknown_field_at_its_line() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: hello
    respond: { status: 200 }
    colour: blue
";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.yaml", yaml);
    let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let hits = diagnostics_at(&stderr, &file, line_of(yaml, "colour:"));
    assert!(
        hits.iter().any(|l| l.contains("colour")),
        "no FILE:{}:COL diagnostic naming `colour`; stderr:\n{stderr}",
        line_of(yaml, "colour:")
    );
}

#[test]
fn validate_reports_a_route_naming_a_missing_upstream_at_its_line() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: api
    match: { path_prefix: /api/ }
    upstream: nowhere
upstreams:
  - name: users
    endpoints: [\"127.0.0.1:9001\"]
";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "missing.yaml", yaml);
    let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let line = line_of(yaml, "upstream: nowhere");
    let hits = diagnostics_at(&stderr, &file, line);
    assert!(
        hits.iter().any(|l| l.contains("nowhere")),
        "no FILE:{line}:COL diagnostic naming `nowhere`; stderr:\n{stderr}"
    );
}

#[test]
fn validate_collects_every_error_not_just_the_first() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: api
    upstream: nowhere
  - name: other
    upstream: elsewhere
upstreams:
  - name: users
    endpoints: [\"127.0.0.1:9001\"]
    timeouts: { connect: 5 }
";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "many.yaml", yaml);
    let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    // Shape errors (an unknown field, a wrong type) stop parsing and are reported alone, like serde's;
    // every semantic error after parsing is collected, each at its own line.
    for needle in ["upstream: nowhere", "upstream: elsewhere", "connect: 5"] {
        let line = line_of(yaml, needle);
        assert!(
            !diagnostics_at(&stderr, &file, line).is_empty(),
            "no diagnostic at line {line} ({needle}); stderr:\n{stderr}"
        );
    }
    let dur = diagnostics_at(&stderr, &file, line_of(yaml, "connect: 5")).join("\n");
    assert!(
        dur.contains("unit"),
        "bare-integer duration error should mention a unit: {dur}"
    );
}

#[test]
fn validate_warns_about_a_shadowed_route_and_still_exits_zero() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: everything
    match: { path_prefix: / }
    respond: { status: 200, body: \"all\" }
  - name: later
    match: { path_prefix: /later/ }
    respond: { status: 200, body: \"never\" }
";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "shadow.yaml", yaml);
    let out = run_cli(&["validate", "-c", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning must not fail; stderr: {stderr}"
    );
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": warning:"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "exactly one warning expected; stderr:\n{stderr}"
    );
    let line = line_of(yaml, "name: later");
    let prefix = format!("{}:{line}:", file.display());
    assert!(
        warnings[0].starts_with(&prefix) && warnings[0].contains("later"),
        "warning should be at {prefix}COL and name the route `later`: {}",
        warnings[0]
    );
}

#[test]
fn every_example_config_validates() {
    let dir = strait_e2e::workspace_root().join("examples");
    let mut examples: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    examples.sort();
    assert!(
        !examples.is_empty(),
        "no example configs in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for ex in &examples {
        let out = run_cli(&["validate", "-c", ex.to_str().unwrap()]);
        if !out.status.success() {
            failures.push(format!(
                "{}: exit {:?}\n{}",
                ex.display(),
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "examples failed to validate:\n{}",
        failures.join("\n")
    );
}

#[test]
fn routes_prints_the_table_in_match_order_honouring_priority() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
  - name: internal
    listen: 127.0.0.1:0
routes:
  - name: first-written
    match: { path_prefix: /a/ }
    respond: { status: 200 }
  - name: urgent
    priority: 10
    match: { path_prefix: /b/ }
    respond: { status: 200 }
  - name: second-written
    listeners: [internal]
    match: { path: /c }
    upstream: users
  - name: negative
    priority: -5
    respond: { status: 404 }
  - name: also-urgent
    priority: 10
    match: { path_prefix: /d/ }
    respond: { status: 200 }
upstreams:
  - name: users
    endpoints: [\"127.0.0.1:9001\"]
";
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "routes.yaml", yaml);
    let out = run_cli(&["routes", "-c", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 6, "header + 5 routes expected:\n{stdout}");
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "urgent",
            "also-urgent",
            "first-written",
            "second-written",
            "negative"
        ],
        "route order (column 2) wrong:\n{stdout}"
    );
    let second = lines.iter().find(|l| l.contains("second-written")).unwrap();
    assert!(
        second.contains("internal"),
        "listeners column missing: {second}"
    );
    assert!(
        second.contains("users"),
        "action column should name the upstream: {second}"
    );
}

#[test]
fn validate_print_writes_the_effective_configuration_which_means_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let token = "admin:\n  token: do-not-print-this-token\n";
    let file = write(dir.path(), "good.yaml", &format!("{token}{GOOD}"));
    let out = run_cli(&["validate", "-c", file.to_str().unwrap(), "--print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "drain_timeout: 30s",
        "max_connections: 10000",
        "header_read_timeout: 10s",
        "load_balancer: round_robin",
        "# Redacted: admin.token",
    ] {
        assert!(printed.contains(needle), "missing {needle}:\n{printed}");
    }
    assert!(!printed.contains("do-not-print-this-token"), "{printed}");

    // The print is a configuration of its own: it validates, prints the same again, and
    // routes the same way.
    let other = tempfile::tempdir().unwrap();
    let again = write(other.path(), "printed.yaml", &printed);
    let out = run_cli(&["validate", "-c", again.to_str().unwrap(), "--print"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        body(&String::from_utf8(out.stdout).unwrap()),
        body(&printed)
    );
    let table = |p: &Path| {
        String::from_utf8(run_cli(&["routes", "-c", p.to_str().unwrap()]).stdout).unwrap()
    };
    assert_eq!(table(&file), table(&again));
}
