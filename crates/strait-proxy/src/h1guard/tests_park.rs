//! Parking under paused tokio time: when the guard offers to park, when it withdraws, and what
//! it does while parked (skipped shutdown, replayed bytes, the idle timeout).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::{H1Guard, H1Limits, ParkSignal};

const PARK_AFTER: Duration = Duration::from_millis(100);

fn parking_guard() -> (DuplexStream, H1Guard<DuplexStream>, Arc<ParkSignal>) {
    let (client, server) = duplex(1 << 16);
    let mut guard = H1Guard::new(server, H1Limits::default());
    let signal = Arc::new(ParkSignal::default());
    guard.set_park(signal.clone());
    (client, guard, signal)
}

/// Lets a read wait on the guard for `d` (virtual time), as hyper's idle read does; returns
/// what it read, if anything.
async fn read_for(guard: &mut H1Guard<DuplexStream>, d: Duration) -> Option<Vec<u8>> {
    let mut buf = [0; 256];
    match tokio::time::timeout(d, guard.read(&mut buf)).await {
        Ok(n) => Some(buf[..n.unwrap()].to_vec()),
        Err(_) => None,
    }
}

/// One request in, one response out, as hyper would do it.
async fn exchange(client: &mut DuplexStream, guard: &mut H1Guard<DuplexStream>) {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_for(guard, Duration::from_millis(1)).await.is_some());
    guard
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn quiet_between_requests_offers_to_park_after_park_after() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let quiet = Instant::now();
    assert_eq!(read_for(&mut guard, PARK_AFTER / 2).await, None);
    assert!(!signal.is_ready(), "too early");
    assert_eq!(read_for(&mut guard, PARK_AFTER).await, None);
    assert!(signal.is_ready());
    assert!(quiet.elapsed() >= PARK_AFTER);
}

#[tokio::test(start_paused = true)]
async fn a_new_request_withdraws_the_offer() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    assert_eq!(read_for(&mut guard, 2 * PARK_AFTER).await, None);
    assert!(signal.is_ready());
    client.write_all(b"GET /next HTT").await.unwrap();
    assert!(read_for(&mut guard, Duration::from_millis(1))
        .await
        .is_some());
    assert!(!signal.is_ready());
    // Half a head is not idleness, however long it takes (up to the header timeout).
    assert_eq!(read_for(&mut guard, Duration::from_secs(5)).await, None);
    assert!(!signal.is_ready());
    client.write_all(b"P/1.1\r\n\r\n").await.unwrap();
    assert!(read_for(&mut guard, Duration::from_millis(1))
        .await
        .is_some());
    guard
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    // Then the next quiet period offers again.
    assert_eq!(read_for(&mut guard, 2 * PARK_AFTER).await, None);
    assert!(signal.is_ready());
}

#[tokio::test(start_paused = true)]
async fn an_outstanding_response_blocks_parking_until_done() {
    let (mut client, mut guard, signal) = parking_guard();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    signal.response_started();
    assert!(read_for(&mut guard, Duration::from_millis(1))
        .await
        .is_some());
    // A slow upstream: nothing written for a long time.
    assert_eq!(read_for(&mut guard, Duration::from_secs(2)).await, None);
    assert!(!signal.is_ready(), "must not park with a response pending");
    guard
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    signal.response_done();
    assert_eq!(read_for(&mut guard, PARK_AFTER / 2).await, None);
    assert!(!signal.is_ready(), "the write restarted the quiet period");
    assert_eq!(read_for(&mut guard, PARK_AFTER).await, None);
    assert!(signal.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_blocked_write_blocks_parking() {
    let (mut client, server) = duplex(64);
    let mut guard = H1Guard::new(server, H1Limits::default());
    let signal = Arc::new(ParkSignal::default());
    guard.set_park(signal.clone());
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_for(&mut guard, Duration::from_millis(1))
        .await
        .is_some());
    // The client does not read: the response stalls in the 64-byte pipe.
    let response = [b'x'; 1000];
    let stalled = tokio::time::timeout(Duration::from_millis(1), guard.write_all(&response)).await;
    assert!(stalled.is_err(), "the write should block");
    assert_eq!(read_for(&mut guard, Duration::from_secs(1)).await, None);
    assert!(!signal.is_ready(), "hyper still holds unwritten bytes");
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_skipped_while_parking() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let mut response = vec![0; 38];
    client.read_exact(&mut response).await.unwrap();
    signal.set_parking(true);
    guard.shutdown().await.unwrap();
    let mut buf = [0; 8];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), client.read(&mut buf))
            .await
            .is_err(),
        "the client must not see EOF"
    );
    signal.set_parking(false);
    assert!(!signal.is_ready());
    guard.shutdown().await.unwrap();
    assert_eq!(client.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn replayed_bytes_come_first_and_are_not_checked_again() {
    let (mut client, mut guard, _signal) = parking_guard();
    let (a, b, c) = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let first = [&a[..], b].concat();
    client.write_all(&first).await.unwrap();
    assert_eq!(
        read_for(&mut guard, Duration::from_millis(1))
            .await
            .unwrap(),
        first
    );
    // hyper served /a and ended; /b was still in its buffer.
    guard.replay(b);
    assert!(guard.has_buffered());
    client.write_all(c).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < b.len() + c.len() {
        seen.extend(
            read_for(&mut guard, Duration::from_millis(1))
                .await
                .unwrap(),
        );
    }
    assert_eq!(seen, [&b[..], c].concat());
    assert_eq!(guard.rejection(), None);
}

#[tokio::test(start_paused = true)]
async fn parked_guard_runs_the_idle_timeout_from_the_last_activity() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let last = Instant::now();
    assert_eq!(read_for(&mut guard, 2 * PARK_AFTER).await, None);
    assert!(signal.is_ready());
    guard.parked();
    poll_fn(|cx| guard.poll_idle_timeout(cx)).await;
    assert_eq!(last.elapsed(), H1Limits::default().idle_timeout);
    // hyper resuming on it would see EOF.
    assert_eq!(
        read_for(&mut guard, Duration::from_millis(1)).await,
        Some(vec![])
    );
}

#[tokio::test(start_paused = true)]
async fn resumed_guard_offers_again_after_a_fresh_quiet_period() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    assert_eq!(read_for(&mut guard, 2 * PARK_AFTER).await, None);
    signal.set_parking(true);
    signal.set_parking(false);
    guard.parked();
    tokio::time::sleep(Duration::from_secs(60)).await;
    guard.resume();
    // A wake-up without bytes (hyper found nothing to read): park again after `park_after`.
    assert_eq!(read_for(&mut guard, PARK_AFTER / 2).await, None);
    assert!(!signal.is_ready());
    assert_eq!(read_for(&mut guard, PARK_AFTER).await, None);
    assert!(signal.is_ready());
}

#[tokio::test(start_paused = true)]
async fn wake_ups_without_bytes_do_not_extend_the_idle_timeout() {
    // A TLS client sending a record's bytes one at a time wakes a parked connection each time
    // and gives hyper nothing to read: it is still closed an idle timeout after its last request.
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let last = Instant::now();
    let idle = H1Limits::default().idle_timeout;
    let mut wakes = 0;
    loop {
        assert_eq!(read_for(&mut guard, 2 * PARK_AFTER).await, None);
        assert!(signal.is_ready(), "parks again after each empty wake-up");
        guard.parked();
        let timed_out = tokio::time::timeout(idle / 4, poll_fn(|cx| guard.poll_idle_timeout(cx)));
        if timed_out.await.is_ok() {
            break;
        }
        guard.resume();
        wakes += 1;
        assert!(
            wakes < 8,
            "still open {:?} after its last bytes",
            last.elapsed()
        );
    }
    assert!(
        last.elapsed() <= idle + 2 * PARK_AFTER,
        "{:?}",
        last.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_guard_without_a_signal_never_parks_and_keeps_its_idle_timeout() {
    let (mut client, server) = duplex(1 << 16);
    let mut guard = H1Guard::new(server, H1Limits::default());
    exchange(&mut client, &mut guard).await;
    let last = Instant::now();
    let mut buf = [0; 8];
    assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    assert_eq!(last.elapsed(), H1Limits::default().idle_timeout);
}

/// Parks `guard` as `h1conn::serve` does once hyper has ended for the park.
async fn park_now(guard: &mut H1Guard<DuplexStream>, signal: &ParkSignal) {
    assert_eq!(read_for(guard, 2 * PARK_AFTER).await, None);
    assert!(signal.is_ready());
    signal.set_parking(true);
    signal.set_parking(false);
}

#[tokio::test(start_paused = true)]
async fn a_hibernated_guard_times_out_from_the_last_activity() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let last = Instant::now();
    park_now(&mut guard, &signal).await;
    assert!(guard.can_hibernate());
    let (_io, mut dormant) = guard.hibernate().unwrap();
    poll_fn(|cx| dormant.poll_idle_timeout(cx)).await;
    assert_eq!(last.elapsed(), H1Limits::default().idle_timeout);
}

#[tokio::test(start_paused = true)]
async fn a_woken_guard_serves_parks_again_and_keeps_the_idle_deadline() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    let mut response = vec![0; 38];
    client.read_exact(&mut response).await.unwrap();
    park_now(&mut guard, &signal).await;
    let (io, mut dormant) = guard.hibernate().unwrap();
    let idle = H1Limits::default().idle_timeout;
    let asleep = tokio::time::timeout(idle / 2, poll_fn(|cx| dormant.poll_idle_timeout(cx)));
    assert!(asleep.await.is_err(), "still within the idle timeout");
    // The client comes back: a second request on a new guard over the same stream.
    let mut guard = H1Guard::wake(io, H1Limits::default(), dormant);
    guard.resume();
    exchange(&mut client, &mut guard).await;
    assert_eq!(guard.rejection(), None);
    let last = Instant::now();
    // The park signal came along: the next quiet period offers to park again.
    park_now(&mut guard, &signal).await;
    let (io, dormant) = guard.hibernate().unwrap();
    // A wake-up that brings nothing does not move the idle deadline.
    tokio::time::sleep(idle / 2).await;
    let mut guard = H1Guard::wake(io, H1Limits::default(), dormant);
    guard.resume();
    park_now(&mut guard, &signal).await;
    let (_io, mut dormant) = guard.hibernate().unwrap();
    poll_fn(|cx| dormant.poll_idle_timeout(cx)).await;
    assert_eq!(last.elapsed(), idle);
}

#[tokio::test(start_paused = true)]
async fn a_guard_holding_bytes_or_half_a_head_does_not_hibernate() {
    let (mut client, mut guard, signal) = parking_guard();
    exchange(&mut client, &mut guard).await;
    park_now(&mut guard, &signal).await;
    guard.replay(b"GET /b HTTP/1.1\r\n\r\n");
    assert!(!guard.can_hibernate(), "replayed bytes wait");
    let mut seen = Vec::new();
    while seen.len() < 19 {
        seen.extend(
            read_for(&mut guard, Duration::from_millis(1))
                .await
                .unwrap(),
        );
    }
    guard
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    client.write_all(b"GET /c HT").await.unwrap();
    assert!(read_for(&mut guard, Duration::from_millis(1))
        .await
        .is_some());
    assert!(!guard.can_hibernate(), "half a head");
}
