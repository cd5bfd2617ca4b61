//! Everything changes live through the real binary: listeners added, moved and removed; certificates rotated on disk; 50 reloads under load with a WebSocket held open; 1,000 reloads with bounded memory; reload latency from file write and admin PUT.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use strait_e2e::certs::{accept_any_client_config, Leaf};
use strait_e2e::client::{self, text};
use strait_e2e::load::Load;
use strait_e2e::ws::WsEcho;
use strait_e2e::{free_port, metrics, poll_until, rss_kib, within, Strait, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "live-test-token-0123456789";

/// The `admin:` section with the test token, listening on `listen`.
fn admin_yaml(listen: impl std::fmt::Display) -> String {
    format!("admin:\n  listen: {listen}\n  token: {TOKEN}\n")
}

/// Replaces the config the way deploy tools do, keeping the admin address.
fn rewrite(s: &Strait, yaml: &str) {
    let admin = admin_yaml(s.admin());
    let tmp = s.dir().join("strait.yaml.tmp");
    std::fs::write(&tmp, format!("{admin}{yaml}")).unwrap();
    std::fs::rename(&tmp, s.config_path()).unwrap();
}

async fn version(s: &Strait) -> f64 {
    metrics::sum(&s.metrics().await, "strait_config_version", &[])
}

async fn served(addr: SocketAddr, path: &str) -> Option<String> {
    let r = client::get(addr, path).await.ok()?;
    (r.status() == 200).then(|| text(&r))
}

fn respond(listeners: &str, body: &str) -> String {
    format!(
        "listeners:\n{listeners}routes:\n  - name: r\n    respond: {{ status: 200, body: \"{body}\" }}\n"
    )
}

fn listener(name: &str, addr: &str) -> String {
    format!("  - name: {name}\n    listen: {addr}\n")
}

#[tokio::test]
async fn listeners_are_added_moved_and_removed_live() {
    let web = listener("web", "127.0.0.1:0");
    let s = Strait::start(&format!(
        "{}{}",
        admin_yaml("127.0.0.1:0"),
        respond(&web, "one")
    ))
    .await;
    let first = SocketAddr::from(([127, 0, 0, 1], free_port()));

    // Added: serves within 1 s of the file write.
    let t = Instant::now();
    rewrite(
        &s,
        &respond(
            &format!("{web}{}", listener("extra", &first.to_string())),
            "two",
        ),
    );
    poll_until(Duration::from_secs(1), "added listener serves", || async {
        (served(first, "/").await.as_deref() == Some("two")).then_some(())
    })
    .await;
    eprintln!("listener added and serving after {:?}", t.elapsed());
    assert_eq!(served(s.web(), "/").await.as_deref(), Some("two"));
    // A keep-alive connection left parked on the listener about to move.
    let mut parked = TcpStream::connect(first).await.unwrap();
    parked
        .write_all(b"GET / HTTP/1.1\r\nhost: live.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    within(
        Duration::from_secs(5),
        "response on the parked connection",
        async {
            let mut chunk = [0u8; 1024];
            while !String::from_utf8_lossy(&got).ends_with("two") {
                let n = parked.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&chunk[..n]);
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Moved: the new port serves, the old one refuses.
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    rewrite(
        &s,
        &respond(
            &format!("{web}{}", listener("extra", &second.to_string())),
            "three",
        ),
    );
    poll_until(Duration::from_secs(2), "moved listener serves", || async {
        (served(second, "/").await.as_deref() == Some("three")).then_some(())
    })
    .await;
    poll_until(Duration::from_secs(2), "old port closed", || async {
        TcpStream::connect(first).await.is_err().then_some(())
    })
    .await;
    // The moved listener's parked connection is closed with it, not left to its idle timeout.
    let rest = client::read_until_close(&mut parked, Duration::from_secs(5)).await;
    assert!(rest.closed && rest.bytes.is_empty(), "{rest:?}");

    // A port that cannot be bound rejects the whole reload; the running config stays.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let before = version(&s).await;
    rewrite(
        &s,
        &respond(
            &format!(
                "{web}{}{}",
                listener("extra", &second.to_string()),
                listener("bad", &taken_addr)
            ),
            "four",
        ),
    );
    poll_until(Duration::from_secs(2), "bind failure counted", || async {
        let m = s.metrics().await;
        (metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]) >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(version(&s).await, before);
    assert_eq!(served(second, "/").await.as_deref(), Some("three"));
    assert!(s.logs_text().contains("cannot bind"), "{}", s.logs_text());

    // Removed: refuses; the other listener keeps serving.
    rewrite(&s, &respond(&web, "five"));
    poll_until(
        Duration::from_secs(2),
        "removed listener refuses",
        || async { TcpStream::connect(second).await.is_err().then_some(()) },
    )
    .await;
    assert_eq!(served(s.web(), "/").await.as_deref(), Some("five"));
}

async fn tls_handshake(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("live.test").unwrap();
    within(
        Duration::from_secs(10),
        "TLS handshake",
        tokio_rustls::TlsConnector::from(accept_any_client_config(&[b"http/1.1"]))
            .connect(name, tcp),
    )
    .await
    .unwrap()
}

fn presented(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn raw_get(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: live.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("tls-ok") {
        let n = within(Duration::from_secs(5), "TLS response", tls.read(&mut buf))
            .await
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn write_pair(dir: &std::path::Path, leaf: &Leaf) {
    // Write both files first under temporary names, then rename: an agent rotating
    // certificates swaps whole files.
    std::fs::write(dir.join("cert.pem.new"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem.new"), &leaf.key_pem).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
}

#[tokio::test]
async fn rotated_certificate_is_served_to_the_next_handshake() {
    let a = Leaf::self_signed(&["live.test"]);
    let b = Leaf::self_signed(&["live.test"]);
    let s = Strait::start_with_files(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    tls: { cert: cert.pem, key: key.pem }\n\
         routes:\n  - name: r\n    respond: { status: 200, body: \"tls-ok\" }\n",
        &[("cert.pem", a.cert_pem.as_bytes()), ("key.pem", a.key_pem.as_bytes())],
    )
    .await;
    let mut before = tls_handshake(s.web()).await;
    assert_eq!(presented(&before), a.der.to_vec());
    assert!(raw_get(&mut before).await.contains("200"));

    write_pair(s.dir(), &b);
    poll_until(Duration::from_secs(3), "new certificate served", || async {
        let tls = tls_handshake(s.web()).await;
        (presented(&tls) == b.der.to_vec()).then_some(())
    })
    .await;
    // The connection established before the rotation keeps working.
    assert!(raw_get(&mut before).await.contains("200"));
    let m = s.metrics().await;
    assert_eq!(
        metrics::sum(&m, "strait_config_reload_total", &[("result", "error")]),
        0.0,
        "{}",
        s.logs_text()
    );
}

fn split(a: &Upstream, b: &Upstream, ws: &WsEcho, use_b: bool) -> String {
    let target = if use_b { "b" } else { "a" };
    format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: ws\n    match: {{ path_prefix: /ws }}\n    upstream: ws\n  - name: main\n    upstream: {target}\n\
         upstreams:\n  - name: a\n    endpoints: [\"{}\"]\n  - name: b\n    endpoints: [\"{}\"]\n  - name: ws\n    endpoints: [\"{}\"]\n",
        a.addr(),
        b.addr(),
        ws.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_reloads_under_load_fail_nothing_and_keep_a_websocket_open() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let ws = WsEcho::start().await;
    let s = Strait::start(&format!(
        "{}{}",
        admin_yaml("127.0.0.1:0"),
        split(&a, &b, &ws, false)
    ))
    .await;
    let (mut sock, _) = within(
        Duration::from_secs(5),
        "websocket connect",
        tokio_tungstenite::connect_async(format!("ws://{}/ws", s.web())),
    )
    .await
    .unwrap();
    sock.send(Message::text("before")).await.unwrap();
    assert_eq!(sock.next().await.unwrap().unwrap(), Message::text("before"));

    let load = Load::start(&[s.web(); 4], 5_000);
    let start = version(&s).await;
    for i in 1..=50u32 {
        rewrite(&s, &split(&a, &b, &ws, i % 2 == 1));
        let want = start + f64::from(i);
        poll_until(Duration::from_secs(5), "reload applied", || async {
            (version(&s).await >= want).then_some(())
        })
        .await;
    }
    let (ok, failed) = load.finish().await;
    eprintln!(
        "50 reloads under load: {ok} requests succeeded, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 100, "too little load: {ok}");
    assert!(a.started() > 0 && b.started() > 0, "both upstreams served");

    // The WebSocket opened before all of it is still open and echoing.
    sock.send(Message::text("after")).await.unwrap();
    let echoed = within(Duration::from_secs(5), "echo", sock.next()).await;
    assert_eq!(echoed.unwrap().unwrap(), Message::text("after"));
}

async fn admin_put(http: &reqwest::Client, s: &Strait, doc: &str) -> u16 {
    http.put(format!("http://{}/api/config", s.admin()))
        .bearer_auth(TOKEN)
        .header("if-match", "*")
        .body(doc.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_thousand_reloads_keep_memory_bounded() {
    let s = Strait::start(&format!(
        "{}{}",
        admin_yaml("127.0.0.1:0"),
        respond(&listener("web", "127.0.0.1:0"), "r0")
    ))
    .await;
    let admin = admin_yaml(s.admin());
    let http = client::reqwest_client();
    let mut at_100 = 0;
    for i in 1..=1000 {
        let doc = format!(
            "{admin}{}",
            respond(&listener("web", "127.0.0.1:0"), &format!("r{i}"))
        );
        assert_eq!(admin_put(&http, &s, &doc).await, 200);
        if i % 50 == 0 {
            // Traffic between reloads, so per-snapshot state is exercised too.
            assert_eq!(served(s.web(), "/").await, Some(format!("r{i}")));
        }
        if i == 100 {
            at_100 = rss_kib(s.pid());
        }
    }
    let at_1000 = rss_kib(s.pid());
    eprintln!("RSS after 100 reloads: {at_100} KiB; after 1000: {at_1000} KiB");
    assert!(
        at_1000 * 10 < at_100 * 11,
        "RSS grew more than 10% between reload 100 ({at_100} KiB) and 1000 ({at_1000} KiB)"
    );
    assert_eq!(version(&s).await, 1001.0);
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn reload_latency_from_file_write_and_admin_put() {
    let s = Strait::start(&format!(
        "{}{}",
        admin_yaml("127.0.0.1:0"),
        respond(&listener("web", "127.0.0.1:0"), "f0")
    ))
    .await;
    let web = s.web();
    let mut file = Vec::new();
    for i in 1..=30 {
        let want = format!("f{i}");
        let t = Instant::now();
        rewrite(&s, &respond(&listener("web", "127.0.0.1:0"), &want));
        loop {
            if served(web, "/").await.as_deref() == Some(want.as_str()) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "reload {i} not served"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        file.push(t.elapsed());
    }
    let admin = admin_yaml(s.admin());
    let http = client::reqwest_client();
    let mut api = Vec::new();
    for i in 1..=30 {
        let want = format!("a{i}");
        let t = Instant::now();
        let doc = format!("{admin}{}", respond(&listener("web", "127.0.0.1:0"), &want));
        assert_eq!(admin_put(&http, &s, &doc).await, 200);
        // The PUT returns once the new snapshot is published.
        assert_eq!(served(web, "/").await.as_deref(), Some(want.as_str()));
        api.push(t.elapsed());
    }
    let (f50, f99) = (percentile(&mut file, 0.5), percentile(&mut file, 0.99));
    let (a50, a99) = (percentile(&mut api, 0.5), percentile(&mut api, 0.99));
    eprintln!("reload latency file write -> served: p50 {f50:?} p99 {f99:?}; admin PUT -> served: p50 {a50:?} p99 {a99:?}");
    // Functional bound only; the figures are reported from the release build.
    assert!(f99 < Duration::from_secs(2) && a99 < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unchanged_upstream_keeps_its_balancer_position_across_a_reload() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let doc = |body: &str| {
        format!(
            "listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: other\n    match: {{ path_prefix: /other }}\n    respond: {{ status: 200, body: \"{body}\" }}\n  - name: main\n    upstream: ab\n\
             upstreams:\n  - name: ab\n    endpoints: [\"{}\", \"{}\"]\n",
            a.addr(),
            b.addr()
        )
    };
    let s = Strait::start(&format!("{}{}", admin_yaml("127.0.0.1:0"), doc("x"))).await;
    assert_eq!(served(s.web(), "/").await.unwrap(), "a");
    rewrite(&s, &doc("y"));
    poll_until(Duration::from_secs(3), "reload applied", || async {
        (served(s.web(), "/other").await.as_deref() == Some("y")).then_some(())
    })
    .await;
    // Round robin continues where it was (a, then b), instead of starting over at a.
    assert_eq!(served(s.web(), "/").await.unwrap(), "b");
    assert_eq!(served(s.web(), "/").await.unwrap(), "a");
}

#[tokio::test]
async fn series_of_removed_endpoints_and_routes_leave_metrics_and_churn_stays_bounded() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let doc = |admin: &str, endpoint: String, extra: bool| {
        let mut d = format!(
            "{admin}listeners:\n  - name: web\n    listen: 127.0.0.1:0\nroutes:\n  - name: r\n    match: {{ path: /r }}\n    upstream: u\n"
        );
        if extra {
            d.push_str("  - name: gone\n    match: { path: /gone }\n    upstream: v\n");
        }
        d.push_str(&format!(
            "upstreams:\n  - name: u\n    endpoints: [\"{endpoint}\"]\n"
        ));
        if extra {
            d.push_str(&format!("  - name: v\n    endpoints: [\"{}\"]\n", b.addr()));
        }
        d
    };
    let s = Strait::start(&doc(&admin_yaml("127.0.0.1:0"), a.addr().to_string(), true)).await;
    let admin = admin_yaml(s.admin());
    let http = client::reqwest_client();
    for path in ["/r", "/r", "/gone"] {
        assert_eq!(
            client::status(s.web(), client::get_req(s.web(), path)).await,
            200
        );
    }
    let m = s.metrics().await;
    let a_addr = a.addr().to_string();
    assert_eq!(
        metrics::sum(
            &m,
            "strait_upstream_requests_total",
            &[("endpoint", &a_addr)]
        ),
        2.0
    );
    assert!(m.contains(r#"route="gone""#));

    // u moves from a to b; route gone and upstream v are removed.
    assert_eq!(
        admin_put(&http, &s, &doc(&admin, b.addr().to_string(), false)).await,
        200
    );
    assert_eq!(
        client::status(s.web(), client::get_req(s.web(), "/r")).await,
        200
    );
    let m = s.metrics().await;
    assert!(
        !m.contains(&a_addr),
        "series of the removed endpoint remain:\n{m}"
    );
    assert!(
        !m.contains(r#"route="gone""#),
        "series of the removed route remain"
    );
    assert!(
        !m.contains(r#"upstream="v""#),
        "series of the removed upstream remain"
    );
    let r = [("route", "r")];
    assert_eq!(
        metrics::sum(&m, "strait_http_requests_total", &r),
        3.0,
        "the kept route's counter continues"
    );

    // Endpoint churn (a new address per reload, each tried once) leaves one endpoint's series.
    for _ in 0..30 {
        let gone = strait_e2e::closed_addr().to_string();
        assert_eq!(admin_put(&http, &s, &doc(&admin, gone, false)).await, 200);
        assert_eq!(
            client::status(s.web(), client::get_req(s.web(), "/r")).await,
            502
        );
    }
    let m = s.metrics().await;
    let endpoints: std::collections::HashSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("strait_upstream_"))
        .filter_map(|l| l.split("endpoint=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        endpoints.len(),
        1,
        "endpoint series after churn: {endpoints:?}"
    );
    // promtool still accepts the exposition after series were removed.
    metrics::promtool_check(&m).await.unwrap();
}

/// A new connection with `GET /` sent on it.
async fn send_new(addr: SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    conn
}

/// Whether a `200` response head arrives on `conn` within `limit`.
async fn answered(conn: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 12];
    tokio::time::timeout(limit, conn.read_exact(&mut buf))
        .await
        .is_ok_and(|r| r.is_ok() && buf.starts_with(b"HTTP/1.1 200"))
}

#[tokio::test]
async fn a_changed_max_connections_applies_at_once_and_counts_open_connections() {
    let doc = |admin: &str, max: u32| {
        format!(
            "{admin}listeners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits: {{ max_connections: {max} }}\n\
             routes:\n  - name: r\n    respond: {{ status: 200 }}\n"
        )
    };
    let s = Strait::start(&doc(&admin_yaml("127.0.0.1:0"), 1)).await;
    let admin = admin_yaml(s.admin());
    let http = client::reqwest_client();
    let quiet = Duration::from_millis(300);

    let mut a = send_new(s.web()).await;
    assert!(answered(&mut a, Duration::from_secs(5)).await);
    // Over the limit: the connection waits in the backlog, unanswered.
    let mut b = send_new(s.web()).await;
    assert!(
        !answered(&mut b, quiet).await,
        "served over max_connections 1"
    );

    // Raised while `a` stays open: `b` is accepted now, not when `a` closes.
    assert_eq!(admin_put(&http, &s, &doc(&admin, 2)).await, 200);
    assert!(
        answered(&mut b, Duration::from_secs(5)).await,
        "raise did not apply"
    );

    // Lowered to 1 with two open: a third waits until both have closed.
    assert_eq!(admin_put(&http, &s, &doc(&admin, 1)).await, 200);
    let mut c = send_new(s.web()).await;
    assert!(
        !answered(&mut c, quiet).await,
        "served over the lowered limit"
    );
    drop(a);
    assert!(
        !answered(&mut c, quiet).await,
        "served with 1 open under a limit of 1"
    );
    drop(b);
    assert!(
        answered(&mut c, Duration::from_secs(5)).await,
        "not served after both closed"
    );

    // Lowered while the accept loop holds a free slot for the next connection (2 → 1 with `c`
    // open): that slot is retired too, so the next connection waits for `c` to close.
    assert_eq!(admin_put(&http, &s, &doc(&admin, 2)).await, 200);
    assert_eq!(admin_put(&http, &s, &doc(&admin, 1)).await, 200);
    let mut d = send_new(s.web()).await;
    assert!(
        !answered(&mut d, quiet).await,
        "served over the lowered limit"
    );
    drop(c);
    assert!(
        answered(&mut d, Duration::from_secs(5)).await,
        "not served after c closed"
    );
}
