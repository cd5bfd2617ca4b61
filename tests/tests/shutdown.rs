//! Graceful shutdown: on SIGTERM/SIGINT /readyz turns 503, new connections
//! are refused, in-flight requests finish (bounded by `server.drain_timeout`)
//! and the process exits 0.

use std::time::{Duration, Instant};

use strait_e2e::client::{self, text, Conn, Proto};
use strait_e2e::{metrics, poll_until, within, Reply, Strait, Upstream};
use tokio::net::TcpStream;

fn config(up: &Upstream, drain: &str) -> String {
    format!(
        "server:\n  drain_timeout: {drain}\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_zero() {
    let up =
        Upstream::with_handler("up", |_| Reply::text("done").delay(Duration::from_secs(2))).await;
    let mut s = Strait::start(&config(&up, "10s")).await;
    let (web, admin) = (s.web(), s.admin());

    let mut conn = Conn::connect(web, Proto::H1).await.unwrap();
    let in_flight = tokio::spawn(async move {
        let resp = conn.send(client::get_req(web, "/slow")).await?;
        client::collect(resp).await
    });
    up.wait_started(1, Duration::from_secs(5)).await;

    let t = Instant::now();
    s.signal("TERM");

    // Admin stays up while draining and reports it.
    let body = poll_until(
        Duration::from_secs(1),
        "/readyz reports draining",
        || async {
            let resp = client::get(admin, "/readyz").await.ok()?;
            (resp.status() == 503).then(|| text(&resp))
        },
    )
    .await;
    assert_eq!(body.trim(), "draining");
    let healthz = client::get(admin, "/healthz")
        .await
        .expect("admin up while draining");
    assert_eq!(healthz.status(), 200);

    // The listener no longer accepts.
    poll_until(
        Duration::from_secs(1),
        "new connections refused",
        || async { TcpStream::connect(web).await.is_err().then_some(()) },
    )
    .await;
    assert!(
        s.is_running(),
        "strait exited before the in-flight request finished"
    );

    let resp = within(Duration::from_secs(10), "in-flight request", in_flight)
        .await
        .unwrap()
        .expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert_eq!(text(&resp), "done");

    let status = s.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "exit status after drain");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "drain took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn drain_timeout_bounds_the_wait_for_in_flight_requests() {
    let up =
        Upstream::with_handler("up", |_| Reply::text("late").delay(Duration::from_secs(30))).await;
    let mut s = Strait::start(&config(&up, "1s")).await;
    let web = s.web();
    let in_flight = tokio::spawn(async move { client::get(web, "/stuck").await });
    up.wait_started(1, Duration::from_secs(5)).await;
    let t = Instant::now();
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(5)).await;
    let elapsed = t.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "drain_timeout is 1s; exited after {elapsed:?}"
    );
    // The stuck request did not get a successful response.
    let r = within(Duration::from_secs(5), "stuck request ends", in_flight)
        .await
        .unwrap();
    assert!(r.map(|resp| resp.status() != 200).unwrap_or(true));
}

#[tokio::test]
async fn sigint_on_an_idle_proxy_exits_zero_promptly() {
    let up = Upstream::start("up").await;
    let mut s = Strait::start(&config(&up, "10s")).await;
    assert_eq!(client::get(s.web(), "/").await.unwrap().status(), 200);
    let t = Instant::now();
    s.signal("INT");
    let status = s.wait_exit(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "idle shutdown should not wait for the drain timeout: {:?}",
        t.elapsed()
    );
}

/// Starts a drain, then sends a request on `late` (a connection accepted before it): the reply,
/// read until the connection closes, lowercased; how the read ended; and when the drain began.
async fn drain_then_send<IO>(s: &Strait, late: &mut IO) -> (String, std::io::Result<usize>, Instant)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = s.admin();
    let t = Instant::now();
    s.signal("TERM");
    poll_until(Duration::from_secs(1), "draining", || async {
        let resp = client::get(admin, "/readyz").await.ok()?;
        (resp.status() == 503).then_some(())
    })
    .await;
    late.write_all(b"GET / HTTP/1.1\r\nhost: gw.test\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = within(
        Duration::from_secs(5),
        "response then close",
        late.read_to_end(&mut reply),
    )
    .await;
    (
        String::from_utf8_lossy(&reply).to_ascii_lowercase(),
        read,
        t,
    )
}

/// The silent connection is let go after header_read_timeout (3s), not the drain timeout (20s).
async fn exits_before_the_drain_timeout(s: &mut Strait, since: Instant) {
    let status = s.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        since.elapsed() < Duration::from_secs(12),
        "drain took {:?}",
        since.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_accepted_before_the_drain_gets_its_first_request_answered() {
    let up = Upstream::start("up").await;
    let config = format!(
        "server:\n  drain_timeout: 20s\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n    limits:\n      header_read_timeout: 3s\n\
         routes:\n  - name: r\n    upstream: up\nupstreams:\n  - name: up\n    endpoints: [\"{}\"]\n",
        up.addr()
    );
    let mut s = Strait::start(&config).await;
    let web = s.web();
    // Both accepted (not just queued in the backlog), neither has sent a byte when the drain starts.
    let mut late = TcpStream::connect(web).await.unwrap();
    let _silent = TcpStream::connect(web).await.unwrap();
    poll_until(
        Duration::from_secs(5),
        "both connections accepted",
        || async {
            let m = s.metrics().await;
            (metrics::sum(
                &m,
                "strait_downstream_connections_active",
                &[("listener", "web")],
            ) == 2.0)
                .then_some(())
        },
    )
    .await;

    // The request sent after the drain began is served, and the connection then closes.
    let (reply, read, t) = drain_then_send(&s, &mut late).await;
    read.expect("no reset");
    assert!(reply.starts_with("http/1.1 200"), "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    exits_before_the_drain_timeout(&mut s, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_with_no_request_yet_gets_the_header_timeout_on_drain() {
    use rustls_pki_types::ServerName;
    use strait_e2e::certs::{accept_any_client_config, Leaf};

    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Leaf::self_signed(&["gw.test"]).write(dir.path(), "gw");
    let config = format!(
        "server:\n  drain_timeout: 20s\nlisteners:\n  - name: web\n    listen: 127.0.0.1:0\n\
         \x20   limits: {{ header_read_timeout: 3s }}\n\
         \x20   tls: {{ cert: \"{}\", key: \"{}\" }}\n\
         routes:\n  - name: r\n    respond: {{ status: 200 }}\n",
        cert.display(),
        key.display()
    );
    let mut s = Strait::start(&config).await;
    let web = s.web();
    let tls = tokio_rustls::TlsConnector::from(accept_any_client_config(&[b"http/1.1"]));
    let name = ServerName::try_from("gw.test").unwrap();
    // Both handshakes done, neither has sent a request when the drain starts.
    let mut late = tls
        .connect(name.clone(), TcpStream::connect(web).await.unwrap())
        .await
        .unwrap();
    let _silent = tls
        .connect(name, TcpStream::connect(web).await.unwrap())
        .await
        .unwrap();

    // Answered, then closed (the response may already be on its way when hyper is told to
    // close, so it need not say `Connection: close`; the close lacks TLS close_notify).
    let (reply, _, t) = drain_then_send(&s, &mut late).await;
    assert!(reply.starts_with("http/1.1 200"), "{reply}");
    exits_before_the_drain_timeout(&mut s, t).await;
}
