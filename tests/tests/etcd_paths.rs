//! Files named by configurations read from etcd, through the real binaries: a certificate path in a listener from etcd must lie under the directories the instance allows (the bootstrap file's by default), and an admin write on an etcd instance cannot change the sections its bootstrap file owns.

use std::time::Duration;

use strait_e2e::admin::{AdminClient, TOKEN};
use strait_e2e::certs::Leaf;
use strait_e2e::etcd::Etcd;
use strait_e2e::{client, poll_until, Strait};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_listeners_may_only_name_files_under_the_allowed_directories() {
    let etcd = Etcd::single().await;
    let c = etcd.client().await;
    etcd.put(&c, "/strait/listeners/web", "listen: 127.0.0.1:0")
        .await;
    etcd.put(&c, "/strait/routes/root", "respond: { body: ok }")
        .await;
    let boot = format!(
        "admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\nconfig:\n  provider: etcd\n  endpoints: {}\n  dial_timeout: 1s\nobservability:\n  access_log: {{ path: access.log }}\n",
        etcd.endpoints_yaml()
    );
    let s = Strait::start(&boot).await;
    let admin = AdminClient::new(s.admin());
    let r = client::get(s.web(), "/").await.unwrap();
    assert_eq!(client::text(&r), "ok");

    // A listener whose certificate lies outside is refused; the running configuration stays.
    etcd.put(
        &c,
        "/strait/listeners/tls",
        "listen: 127.0.0.1:0\ntls: { cert: /etc/passwd, key: /etc/passwd }",
    )
    .await;
    let st = poll_until(Duration::from_secs(5), "rejected etcd change", || async {
        let (_, st, _) = admin.json("/api/status").await;
        (!st["last_error"].is_null()).then_some(st)
    })
    .await;
    assert!(
        st["last_error"]
            .to_string()
            .contains("is outside the directories"),
        "{st}"
    );
    assert_eq!(st["version"], 1, "{st}");

    // One inside the bootstrap file's directory is served.
    let (cert, key) = Leaf::self_signed(&["localhost"]).write(s.dir(), "site");
    let value = format!(
        "listen: 127.0.0.1:0\ntls: {{ cert: {}, key: {} }}",
        cert.display(),
        key.display()
    );
    etcd.put(&c, "/strait/listeners/tls", &value).await;
    poll_until(Duration::from_secs(5), "applied etcd change", || async {
        let (_, st, _) = admin.json("/api/status").await;
        (st["version"] == 2 && st["last_error"].is_null()).then_some(())
    })
    .await;

    // The bootstrap's own sections are not the admin API's to change on an etcd instance.
    let (_, cfg, _) = admin.json("/api/config").await;
    let mut doc = cfg["config"].clone();
    doc["observability"]["access_log"]["path"] = "/tmp/strait-evil.log".into();
    let (status, v) = admin.put_config(&doc.to_string()).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .contains("`observability` is local to this instance"),
        "{v}"
    );
    assert!(!std::path::Path::new("/tmp/strait-evil.log").exists());
}
