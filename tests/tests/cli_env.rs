//! `${VAR}` references in config files, through `strait validate` and `strait run`: values, defaults, the `$${` escape, and errors at the position written.

use std::time::Duration;

use strait_e2e::config_file::{column_of, line_of, write, Validated};
use strait_e2e::process::Spawned;
use strait_e2e::{client, Strait};

#[test]
fn validate_reports_an_unset_variable_and_later_errors_at_their_written_columns() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:${STRAIT_T_UNSET}
routes:
  - name: a
    match: { host: \"${STRAIT_T_HOST}\", methods: [get] }
    respond: { body: \"${STRAIT_T_MISSING:-fallback}\" }
";
    let host = "a-rather-long-host-name.example.com";
    let v = Validated::run(yaml, &[("STRAIT_T_HOST", host), ("STRAIT_T_UNSET", "")]);
    let line = line_of(yaml, "STRAIT_T_UNSET");
    let col = column_of(yaml, "STRAIT_T_UNSET", "${");
    let unset = v.errors_at(line);
    assert!(
        unset.iter().any(|l| l.contains(&format!(
            ":{line}:{col}: environment variable `STRAIT_T_UNSET` is not set"
        ))),
        "stderr:\n{}",
        v.stderr
    );
    // Only the unset variable is reported: expansion errors stop before YAML is read.
    assert_eq!(v.stderr.lines().count(), 1, "{}", v.stderr);

    // With it set, the lowercase method is reported where `get` is written, although the
    // expanded host is longer than `${STRAIT_T_HOST}`.
    let v = Validated::run(yaml, &[("STRAIT_T_HOST", host), ("STRAIT_T_UNSET", "0")]);
    let line = line_of(yaml, "methods");
    let col = column_of(yaml, "methods", "get");
    let errs = v.errors_at(line);
    assert!(
        errs.iter().any(|l| l.contains(&format!(":{line}:{col}: "))),
        "no error at {line}:{col}; stderr:\n{}",
        v.stderr
    );
}

#[test]
fn validate_expands_references_in_an_etcd_bootstrap_file() {
    let yaml = "config:\n  provider: etcd\n  endpoints: [\"${STRAIT_T_ETCD}\"]\n";
    let v = Validated::run(yaml, &[("STRAIT_T_ETCD", "http://127.0.0.1:2379")]);
    v.assert_ok();
    assert!(
        v.stdout.contains("read from http://127.0.0.1:2379"),
        "{}",
        v.stdout
    );
}

#[tokio::test]
async fn run_serves_expanded_values_defaults_and_escapes_in_flow_and_quoted_positions() {
    let yaml = "\
listeners:
  - name: web
    listen: 127.0.0.1:0
routes:
  - name: env
    match: { path: ${STRAIT_T_PATH} }
    respond: { body: \"${STRAIT_T_BODY} ${STRAIT_T_NONE:-default} $${NOT_EXPANDED}\" }
# a commented-out line may name unset variables: ${STRAIT_T_COMMENTED}
";
    let env = [
        ("STRAIT_T_PATH", "/hello"),
        ("STRAIT_T_BODY", "from env"),
        ("STRAIT_T_NONE", ""),
    ];
    let s = Strait::start_opts(yaml, &[], &[], &env).await;
    let resp = client::get(s.web(), "/hello").await.expect("GET /hello");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        String::from_utf8_lossy(resp.body()),
        "from env default ${NOT_EXPANDED}"
    );
    // A changed file is read again (its unquoted flow reference is YAML only once expanded)
    // and applied as version 2.
    let text = std::fs::read_to_string(s.config_path()).unwrap();
    std::fs::write(
        s.config_path(),
        format!(
            "{text}  - name: more\n    match: {{ path: /more }}\n    respond: {{ body: more }}\n"
        ),
    )
    .unwrap();
    strait_e2e::poll_until(Duration::from_secs(10), "version 2", || async {
        s.metrics()
            .await
            .contains("strait_config_version 2")
            .then_some(())
    })
    .await;
    let resp = client::get(s.web(), "/hello").await.expect("GET /hello");
    assert_eq!(
        String::from_utf8_lossy(resp.body()),
        "from env default ${NOT_EXPANDED}"
    );
}

#[test]
fn run_with_an_unset_variable_exits_1_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "admin: { listen: \"127.0.0.1:0\" }\nlisteners:\n  - name: web\n    listen: \"${STRAIT_T_LISTEN}\"\n";
    let file = write(dir.path(), "c.yaml", yaml);
    let args = ["run", "-c", file.to_str().unwrap()];
    let mut p = Spawned::strait(&args, &[("STRAIT_T_LISTEN", "")], dir.path());
    assert_eq!(p.wait_exit(Duration::from_secs(15)), Some(1));
    let want = format!(
        "{}:4:14: environment variable `STRAIT_T_LISTEN` is not set",
        file.display()
    );
    assert!(p.text().contains(&want), "{}", p.text());
}
