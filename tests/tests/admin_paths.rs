//! Files named by configurations from the admin API, through the real binary: paths outside the directories the operator allows (by default the config file's own) are refused with a JSON 400 before anything is written or read, `..` and links cannot climb out, errors do not tell whether an outside path exists, input files are size-limited, and `--allow-dir` widens the set.

use std::path::Path;

use strait_e2e::admin::{AdminClient, TOKEN};
use strait_e2e::certs::Leaf;
use strait_e2e::client;
use strait_e2e::{poll_until, Strait};

const BASE: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    respond: { status: 200, body: ok }\n";

fn with_access_log(path: &Path) -> String {
    format!(
        "{BASE}observability:\n  access_log: {{ path: \"{}\" }}\n",
        path.display()
    )
}

async fn start(args: &[&str]) -> Strait {
    Strait::start_opts(BASE, &[], args, &[("STRAIT_ADMIN_TOKEN", TOKEN)]).await
}

fn refused(status: u16, v: &serde_json::Value) -> String {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"], "invalid configuration; nothing changed", "{v}");
    let e = v["errors"][0].as_str().unwrap_or_default().to_string();
    assert!(e.contains("is outside the directories"), "{v}");
    e
}

#[tokio::test]
async fn an_access_log_outside_the_allowed_directory_is_refused_and_nothing_is_written() {
    let s = start(&[]).await;
    let admin = AdminClient::new(s.admin());
    let elsewhere = tempfile::tempdir().unwrap();
    let evil = elsewhere.path().join("evil.log");
    // `..` from the config's directory into another one is the same path.
    let climbing = Path::new("..")
        .join(elsewhere.path().file_name().unwrap())
        .join("climb.log");
    for doc in [with_access_log(&evil), with_access_log(&climbing)] {
        for path in ["/api/config?dry_run=true", "/api/config"] {
            let (status, v) = admin
                .write(reqwest::Method::PUT, path, Some("*"), &doc)
                .await;
            let e = refused(status, &v);
            assert!(e.starts_with("admin:8:"), "positioned in the body: {e}");
        }
    }
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing is created outside"
    );
    // The configuration file itself is not a log.
    let (status, v) = admin.put_config(&with_access_log(s.config_path())).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("configuration file"),
        "{v}"
    );

    // Inside the config's directory it is applied, and written.
    let (status, v) = admin
        .put_config(&with_access_log(Path::new("access.log")))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        client::status(s.web(), client::get_req(s.web(), "/")).await,
        200
    );
    let log = s.dir().join("access.log");
    poll_until(
        std::time::Duration::from_secs(5),
        "access log line",
        || async {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("\"status\":200"))
        },
    )
    .await;
}

#[tokio::test]
async fn certificate_paths_outside_are_refused_without_telling_whether_they_exist() {
    let s = start(&[]).await;
    let admin = AdminClient::new(s.admin());
    let listener =
        |cert: &str| format!("listen: 127.0.0.1:0\ntls: {{ cert: \"{cert}\", key: \"{cert}\" }}\n");
    let answer = |path: &'static str| {
        let admin = &admin;
        let body = listener(path);
        async move {
            let (status, v) = admin
                .write(
                    reqwest::Method::PUT,
                    "/api/listeners/tls?dry_run=1",
                    None,
                    &body,
                )
                .await;
            refused(status, &v);
            serde_json::to_string(&v["errors"])
                .unwrap()
                .replace(path, "PATH")
        }
    };
    // Same length, so the columns of the two answers are the same too.
    assert!(Path::new("/etc/passwd").exists() && !Path::new("/etc/passwq").exists());
    let existing = answer("/etc/passwd").await;
    let missing = answer("/etc/passwq").await;
    assert_eq!(
        existing, missing,
        "the answers must not differ by existence"
    );
    assert!(existing.contains("listeners/tls:2:"), "{existing}");

    // Inside, a file over the size limit is refused before it is parsed.
    std::fs::write(s.dir().join("huge.pem"), vec![b'A'; 2 << 20]).unwrap();
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/listeners/tls?dry_run=1",
            None,
            &listener("huge.pem"),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"].to_string().contains("larger than 1024 KiB"),
        "{v}"
    );

    // A real certificate inside is accepted.
    let (cert, key) = Leaf::self_signed(&["localhost"]).write(s.dir(), "site");
    let body = format!(
        "listen: 127.0.0.1:0\ntls: {{ cert: {}, key: {} }}\n",
        cert.file_name().unwrap().to_str().unwrap(),
        key.file_name().unwrap().to_str().unwrap()
    );
    let (status, v) = admin
        .write(reqwest::Method::PUT, "/api/listeners/tls", Some("*"), &body)
        .await;
    assert_eq!(status, 201, "{v}");
}

#[tokio::test]
async fn a_symbolic_link_inside_that_leads_out_is_refused() {
    let s = start(&[]).await;
    let admin = AdminClient::new(s.admin());
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.dir().join("out")).unwrap();
    let (status, v) = admin
        .put_config(&with_access_log(Path::new("out/x.log")))
        .await;
    refused(status, &v);
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn allow_dir_sets_the_directories_instead_of_the_config_directory() {
    let logs = tempfile::tempdir().unwrap();
    let s = start(&["--allow-dir", logs.path().to_str().unwrap()]).await;
    let admin = AdminClient::new(s.admin());
    let (status, v) = admin
        .put_config(&with_access_log(Path::new("access.log")))
        .await;
    refused(status, &v);
    let (status, v) = admin
        .put_config(&with_access_log(&logs.path().join("access.log")))
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn the_operators_own_file_may_name_any_path() {
    // Only remote sources are restricted: a file edited on the host is the operator's choice.
    let elsewhere = tempfile::tempdir().unwrap();
    let doc = with_access_log(&elsewhere.path().join("mine.log"));
    let s = Strait::start_opts(&doc, &[], &[], &[]).await;
    assert_eq!(
        client::status(s.web(), client::get_req(s.web(), "/")).await,
        200
    );
    poll_until(std::time::Duration::from_secs(5), "log written", || async {
        elsewhere.path().join("mine.log").exists().then_some(())
    })
    .await;
}
