//! The admin listener through the real binary: silent connections are closed after its header timeout and capped (the longest-idle one makes room) while `/healthz` stays served; `admin.listen` and `admin.token` change live; a setting only a restart applies (`server.worker_threads`) is reported, not shown as applied.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use strait_e2e::admin::{AdminClient, TOKEN};
use strait_e2e::client;
use strait_e2e::{free_port, poll_until, within, Strait};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const BASE: &str = "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    respond: { status: 200, body: ok }\n";

/// Opens `n` connections that never send a byte; each task returns when the server closes it.
async fn silent(addr: SocketAddr, n: usize) -> Vec<tokio::task::JoinHandle<Instant>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = within(Duration::from_secs(5), "connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        out.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            // EOF or reset: either way the server closed it.
            let _ = tcp.read(&mut buf).await;
            Instant::now()
        }));
    }
    out
}

async fn healthz_within(addr: SocketAddr, limit: Duration) {
    let r = within(limit, "GET /healthz", client::get(addr, "/healthz"))
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn silent_connections_are_capped_and_timed_out_while_healthz_is_served() {
    let s = Strait::start(&format!(
        "admin:\n  listen: 127.0.0.1:0\n  limits: {{ max_connections: 50, header_read_timeout: 5s }}\n{BASE}"
    ))
    .await;
    let started = Instant::now();
    let conns = silent(s.admin(), 300).await;
    // At the cap each new connection closed the longest-idle one, so the health check gets a
    // slot at once instead of waiting behind 300 silent connections.
    healthz_within(s.admin(), Duration::from_secs(2)).await;
    // A header timeout counts from the accept, so nothing it closes is closed this early.
    let evicted_by = started + Duration::from_millis(4500);
    let mut closed_early = 0;
    let mut all_closed = Vec::new();
    for c in conns {
        let at = within(Duration::from_secs(15), "silent connection closed", c)
            .await
            .unwrap();
        if at < evicted_by {
            closed_early += 1;
        }
        all_closed.push(at);
    }
    eprintln!(
        "300 silent admin connections: {closed_early} closed to make room, all closed after {:?}",
        all_closed.iter().max().unwrap().duration_since(started)
    );
    assert!(
        closed_early >= 250,
        "only {closed_early} of 300 closed at the cap of 50"
    );
    // The rest waited for the header timeout (5 s), not forever.
    healthz_within(s.admin(), Duration::from_secs(2)).await;
}

#[tokio::test]
async fn admin_listen_moves_live_and_the_old_address_closes() {
    let s = Strait::start_opts(
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n{BASE}"),
        &[],
        &[],
        &[],
    )
    .await;
    let old = s.admin();
    let admin = AdminClient::new(old);
    let new: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let doc = format!("admin:\n  listen: {new}\n  token: {TOKEN}\n{BASE}");
    let (status, v) = admin.put_config(&doc).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["pending_restart"], serde_json::json!([]), "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    healthz_within(new, Duration::from_secs(2)).await;
    poll_until(
        Duration::from_secs(3),
        "old admin address closed",
        || async { TcpStream::connect(old).await.is_err().then_some(()) },
    )
    .await;
    let (status, st, _) = AdminClient::new(new).json("/api/status").await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["pending_restart"], serde_json::json!([]));
    // An address already taken is refused before anything changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let doc = format!(
        "admin:\n  listen: {}\n  token: {TOKEN}\n{BASE}",
        taken.local_addr().unwrap()
    );
    let (status, v) = AdminClient::new(new).put_config(&doc).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().starts_with("admin:2:"),
        "{v}"
    );
    healthz_within(new, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_changed_token_applies_at_once_and_a_write_cannot_drop_it() {
    let s = Strait::start(&format!(
        "admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n{BASE}"
    ))
    .await;
    let admin = AdminClient::new(s.admin());
    // Leaving the token out of an `admin` section would close the API on the writer.
    let (status, v) = admin
        .put_config(&format!("admin:\n  listen: {}\n{BASE}", s.admin()))
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("remove admin.token"),
        "{v}"
    );
    let rotated = "rotated-token-abcdefghijkl";
    let doc = format!(
        "admin:\n  listen: {}\n  token: {rotated}\n{BASE}",
        s.admin()
    );
    let (status, v) = admin.put_config(&doc).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, _) = admin.json("/api/status").await;
    assert_eq!(status, 401, "the old token no longer opens the API");
    let (status, _, _) = AdminClient::with_token(s.admin(), rotated)
        .json("/api/status")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn worker_threads_changed_in_the_file_is_reported_as_needing_a_restart() {
    let s = Strait::start_opts(
        &format!("server:\n  worker_threads: 2\n{BASE}"),
        &[],
        &[],
        &[("STRAIT_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let admin = AdminClient::new(s.admin());
    let file = |threads: u32| {
        format!(
            "admin:\n  listen: {}\nserver:\n  worker_threads: {threads}\n{}",
            s.admin(),
            BASE.replace("body: ok", &format!("body: t{threads}"))
        )
    };
    let rewrite = |text: String| {
        // Renamed into place, as deploy tools do, so no reload reads a half-written file.
        let tmp = s.dir().join("strait.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, s.config_path()).unwrap();
    };
    rewrite(file(3));
    let st = poll_until(Duration::from_secs(5), "reload", || async {
        let (_, st, _) = admin.json("/api/status").await;
        (st["version"] == 2).then_some(st)
    })
    .await;
    let wanted = "needs a restart: server.worker_threads (running with 2, configured 3)";
    assert_eq!(st["pending_restart"], serde_json::json!([wanted]), "{st}");
    assert!(st["warnings"].to_string().contains(wanted), "{st}");
    // Logs are written off the reload path: the line may trail the status a little.
    poll_until(Duration::from_secs(5), "the warning logged too", || async {
        s.logs_text().contains(wanted).then_some(())
    })
    .await;
    // The rest of the change is applied.
    let r = client::get(s.web(), "/").await.unwrap();
    assert_eq!(client::text(&r), "t3");
    // A write says the same.
    let (status, v) = admin
        .write(
            reqwest::Method::PUT,
            "/api/config?dry_run=true",
            None,
            &file(4),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["pending_restart"][0]
            .as_str()
            .unwrap()
            .contains("configured 4"),
        "{v}"
    );
    // Back to what runs: nothing is pending.
    rewrite(file(2));
    let st = poll_until(Duration::from_secs(5), "reload", || async {
        let (_, st, _) = admin.json("/api/status").await;
        (st["version"] == 3).then_some(st)
    })
    .await;
    assert_eq!(st["pending_restart"], serde_json::json!([]), "{st}");
}
