//! Async tests of the guard over in-memory streams, under paused tokio time (no real sleeping).

use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::framing::H2_PREFACE;
use super::{H1Guard, H1Limits, Rejection};

fn guard() -> (DuplexStream, H1Guard<DuplexStream>) {
    let (client, server) = duplex(1 << 16);
    (client, H1Guard::new(server, H1Limits::default()))
}

/// Reads everything the guard passes until it reports EOF.
async fn drain(guard: &mut H1Guard<DuplexStream>) -> Vec<u8> {
    let mut seen = Vec::new();
    guard.read_to_end(&mut seen).await.unwrap();
    seen
}

/// Whether a read on the guard is still waiting after a (virtual) second.
async fn read_waits(guard: &mut H1Guard<DuplexStream>) -> bool {
    let mut buf = [0; 64];
    tokio::time::timeout(Duration::from_secs(1), guard.read(&mut buf))
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn valid_pipelined_requests_pass_byte_identical() {
    let (mut client, mut guard) = guard();
    let input = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
        GET /b HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n";
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(drain(&mut guard).await, input);
    assert_eq!(guard.rejection(), None);
}

#[tokio::test(start_paused = true)]
async fn content_length_with_transfer_encoding_gets_400_and_eof() {
    let (mut client, mut guard) = guard();
    let input = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    client.write_all(input).await.unwrap();
    let mut buf = [0; 1024];
    assert_eq!(
        guard.read(&mut buf).await.unwrap(),
        0,
        "hyper must see nothing of the head"
    );
    let rejection = guard.rejection().unwrap();
    assert!(matches!(rejection, Rejection::BadRequest(_)));
    assert_eq!(rejection.status(), 400);
    // Whatever hyper writes after the refusal is discarded.
    guard.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).await.unwrap();
    assert_eq!(
        response,
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 20\r\n\
         connection: close\r\n\r\nstrait: Bad Request\n"
    );
}

#[tokio::test(start_paused = true)]
async fn bare_lf_head_split_across_reads_never_reaches_reader_whole() {
    let (mut client, mut guard) = guard();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r")
        .await
        .unwrap();
    let mut buf = [0; 64];
    let n = guard.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\nHost: x\r");
    client.write_all(b"\n\n").await.unwrap();
    assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    assert_eq!(guard.rejection().map(|r| r.status()), Some(400));
}

#[tokio::test(start_paused = true)]
async fn upgrade_101_switches_to_passthrough() {
    let (mut client, mut guard) = guard();
    let head = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let mut input = head.to_vec();
    input.extend(b"\x81\x02hi");
    client.write_all(&input).await.unwrap();
    let mut buf = [0; 256];
    let n = guard.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], head, "bytes behind the upgrade request are held");
    assert!(read_waits(&mut guard).await, "reads wait for the response");
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    guard.write_all(response).await.unwrap();
    let n = guard.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"\x81\x02hi");
    client
        .write_all(b"\x00\n\r\nnot http at all\n")
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(drain(&mut guard).await, b"\x00\n\r\nnot http at all\n");
    let mut echoed = vec![0; response.len()];
    client.read_exact(&mut echoed).await.unwrap();
    assert_eq!(echoed, response);
}

#[tokio::test(start_paused = true)]
async fn refused_upgrade_resumes_strict_checking() {
    let (mut client, mut guard) = guard();
    let head = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    let mut input = head.to_vec();
    input.extend(b"GET /next HTTP/1.1\r\n\r\n");
    client.write_all(&input).await.unwrap();
    let mut buf = [0; 256];
    assert_eq!(guard.read(&mut buf).await.unwrap(), head.len());
    guard
        .write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let n = guard.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"GET /next HTTP/1.1\r\n\r\n");
}

#[tokio::test(start_paused = true)]
async fn h2_preface_switches_to_passthrough() {
    let (mut client, mut guard) = guard();
    let mut input = H2_PREFACE.to_vec();
    input.extend(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\n\n\r");
    client.write_all(&input).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(drain(&mut guard).await, input);
}

#[tokio::test(start_paused = true)]
async fn slow_head_gets_408_after_header_read_timeout() {
    let (mut client, mut guard) = guard();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0; 64];
    assert!(guard.read(&mut buf).await.unwrap() > 0);
    assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(guard.rejection(), Some(Rejection::HeaderTimeout));
    let mut response = String::new();
    client.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nconnection: close\r\n"));
}

#[tokio::test(start_paused = true)]
async fn header_timer_restarts_for_each_head() {
    let (mut client, mut guard) = guard();
    let mut buf = [0; 64];
    client.write_all(b"GET /1 HTTP/1.1\r\n").await.unwrap();
    assert_eq!(guard.read(&mut buf).await.unwrap(), 17);
    tokio::time::sleep(Duration::from_secs(8)).await;
    client.write_all(b"\r\nGET /2 HTTP/1.1\r\n").await.unwrap();
    assert_eq!(guard.read(&mut buf).await.unwrap(), 19);
    let second = Instant::now();
    assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    assert_eq!(second.elapsed(), Duration::from_secs(10));
    assert_eq!(guard.rejection(), Some(Rejection::HeaderTimeout));
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_a_byte_gets_eof_at_the_header_timeout() {
    // Keep-alive is earned by a request: silence first gets only the header read timeout.
    let (client, guard) = guard();
    closes_quietly_after(client, guard, Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn idle_connection_after_a_request_gets_eof_without_response_at_the_idle_timeout() {
    let (mut client, mut guard) = guard();
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = [0; 64];
    assert_eq!(guard.read(&mut buf).await.unwrap(), 18);
    closes_quietly_after(client, guard, Duration::from_secs(300)).await;
}

/// The guard reports EOF after `wait`, having written nothing to the client.
async fn closes_quietly_after(
    mut client: DuplexStream,
    mut guard: H1Guard<DuplexStream>,
    wait: Duration,
) {
    let started = Instant::now();
    assert_eq!(drain(&mut guard).await, b"");
    assert_eq!(started.elapsed(), wait);
    assert_eq!(guard.rejection(), None);
    drop(guard);
    let mut response = Vec::new();
    client.read_to_end(&mut response).await.unwrap();
    assert!(response.is_empty());
}

#[tokio::test(start_paused = true)]
async fn writes_push_the_idle_deadline() {
    let (mut client, guard) = guard();
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let started = Instant::now();
    let (mut read, mut write) = tokio::io::split(guard);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        read.read_to_end(&mut seen).await.unwrap();
        seen
    });
    // A response trickling out for 400 s is not idleness.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(100)).await;
        write.write_all(b"x").await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(started.elapsed(), Duration::from_secs(700));
}

#[tokio::test(start_paused = true)]
async fn hyper_serves_valid_requests_and_never_sees_smuggled_ones() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};

    let (mut client, server) = duplex(1 << 16);
    let service = hyper::service::service_fn(|request: hyper::Request<Incoming>| async move {
        let path = request.uri().path().to_owned();
        let body = request.into_body().collect().await?.to_bytes();
        let text = format!("{path}:{}", body.len());
        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(text))))
    });
    let io = hyper_util::rt::TokioIo::new(H1Guard::new(server, H1Limits::default()));
    let conn =
        tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    client
        .write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    let mut first = [0; 128];
    let n = client.read(&mut first).await.unwrap();
    assert!(std::str::from_utf8(&first[..n]).unwrap().ends_with("/a:3"));
    // The smuggled `GET /admin` hides in what hyper would take as a chunked body.
    let smuggle = b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n";
    client.write_all(smuggle).await.unwrap();
    let mut rest = String::new();
    client.read_to_string(&mut rest).await.unwrap();
    assert!(rest.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{rest}");
    assert!(!rest.contains("/admin") && !rest.contains("/b:"), "{rest}");
    // hyper ends with an error (its request was cut short) or cleanly; either way it ended.
    let _ = conn.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn hyper_upgrade_reaches_passthrough_with_early_client_bytes() {
    use http_body_util::Empty;
    use hyper::body::{Bytes, Incoming};

    let (mut client, server) = duplex(1 << 16);
    let service = hyper::service::service_fn(|mut request: hyper::Request<Incoming>| async move {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
            let mut buf = [0; 64];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        let mut response = hyper::Response::new(Empty::<Bytes>::new());
        *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
        response.headers_mut().insert(
            hyper::header::UPGRADE,
            hyper::header::HeaderValue::from_static("echo"),
        );
        Ok::<_, hyper::Error>(response)
    });
    let io = hyper_util::rt::TokioIo::new(H1Guard::new(server, H1Limits::default()));
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    tokio::spawn(conn);
    // The first tunnel bytes arrive with the head, before the 101 is written.
    client
        .write_all(
            b"GET /e HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n\x00\n\n",
        )
        .await
        .unwrap();
    let mut head = vec![0; 512];
    let n = client.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut echoed = head.split_once("\r\n\r\n").unwrap().1.as_bytes().to_vec();
    client.write_all(b"GET /x HTTP/1.1\n\n").await.unwrap();
    while echoed.len() < 20 {
        let mut buf = [0; 64];
        let n = client.read(&mut buf).await.unwrap();
        assert!(n > 0, "tunnel closed after {echoed:?}");
        echoed.extend(&buf[..n]);
    }
    assert_eq!(echoed, b"\x00\n\nGET /x HTTP/1.1\n\n");
}

#[tokio::test(start_paused = true)]
async fn a_write_the_client_never_takes_fails_at_the_send_timeout() {
    let (mut client, server) = duplex(1024);
    let mut guard = H1Guard::new(server, H1Limits::default());
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = [0; 18];
    guard.read_exact(&mut buf).await.unwrap();
    let started = Instant::now();
    let body = vec![b'x'; 4096];
    // A client that takes a little every 40 s makes progress: no timeout in 200 s.
    for _ in 0..5 {
        let mut n = 0;
        while n < 4096 {
            n += guard.write(&body[n..]).await.unwrap();
            let mut some = [0; 4096];
            let _ = client.read(&mut some).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(40)).await;
    }
    assert_eq!(started.elapsed(), Duration::from_secs(200));
    // Then it stops reading: the write fails once it has been blocked for the send timeout.
    let blocked = Instant::now();
    let err = loop {
        if let Err(e) = guard.write(&body).await {
            break e;
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(blocked.elapsed(), Duration::from_secs(60));
}
