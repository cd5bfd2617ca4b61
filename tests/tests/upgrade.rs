//! Zero-downtime binary upgrade through the real binary: a second process started with the same `--upgrade-socket` takes over the listening sockets; the old one finishes its in-flight requests and exits 0; no request fails.

use std::time::Duration;

use strait_e2e::client::{self, text};
use strait_e2e::load::Load;
use strait_e2e::{within, Reply, Strait, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hands_over_sockets_and_loses_no_request() {
    let up = Upstream::with_handler("up", |req| {
        if req.uri.path() == "/slow" {
            Reply::text("slow done").delay(Duration::from_millis(800))
        } else {
            Reply::text("ok")
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let sock_arg = sock.to_str().unwrap().to_string();
    let config = format!(
        "server:\n  drain_timeout: 10s\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n  - name: second\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let mut old = Strait::start_opts(&config, &[], &["--upgrade-socket", &sock_arg], &[]).await;
    let (web, second, admin) = (old.web(), old.addr("second"), old.admin());

    // Steady load on new connections against both listeners, plus one slow request in flight.
    let load = Load::start(&[web, second, web], 20_000);
    let slow = tokio::spawn(async move { client::get(web, "/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let new = old.start_next(&["--upgrade-socket", &sock_arg], &[]).await;
    assert_eq!(new.web(), web, "the new process serves the same address");
    assert_eq!(new.addr("second"), second);
    assert_eq!(new.admin(), admin, "the admin socket is handed over too");

    // The old process drains (its in-flight request completes) and exits 0.
    let status = old.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "old process exit: {status:?}");
    let slow = within(Duration::from_secs(5), "slow request", slow)
        .await
        .unwrap()
        .expect("in-flight request finished");
    assert_eq!(text(&slow), "slow done");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed) = load.finish().await;
    eprintln!(
        "upgrade under load: {ok} requests succeeded, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 50, "too little load: {ok}");

    // The new process can itself be upgraded later: it now owns the socket path.
    assert!(new.logs_text().contains("upgrade socket bound"));
    assert_eq!(text(&client::get(web, "/").await.unwrap()), "ok");
}

#[tokio::test]
async fn the_upgrade_socket_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let s = Strait::start_opts(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    respond: { status: 200 }\n",
        &[],
        &["--upgrade-socket", sock.to_str().unwrap()],
        &[],
    )
    .await;
    let mode = within(Duration::from_secs(5), "socket file", async {
        loop {
            if s.logs_text().contains("upgrade socket bound") {
                return std::fs::metadata(&sock).unwrap().permissions().mode();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(mode & 0o777, 0o600);
}
