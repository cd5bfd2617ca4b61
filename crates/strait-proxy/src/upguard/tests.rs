//! The upstream guard: response framing rules on whole and split reads, and the shell over a
//! duplex stream.

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use super::framing::{Framing, Segment};
use super::UpstreamGuard;

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

/// What hyper would read from `response` after `requests` were written, in pieces of `split`
/// bytes; or the refusal.
pub(super) fn run(requests: &[u8], response: &[u8], split: usize) -> Result<Vec<u8>, &'static str> {
    run_limited(32 * 1024, requests, response, split)
}

/// [`run`] with heads limited to `max_head` bytes.
pub(super) fn run_limited(
    max_head: usize,
    requests: &[u8],
    response: &[u8],
    split: usize,
) -> Result<Vec<u8>, &'static str> {
    let mut f = Framing::new(max_head);
    f.on_written(requests);
    let mut out = Vec::new();
    for piece in response.chunks(split.max(1)) {
        let mut segs = Vec::new();
        f.feed(piece, &mut segs)?;
        for s in segs {
            match s {
                Segment::Pass(r) => out.extend_from_slice(&piece[r]),
                Segment::Head(h) => out.extend_from_slice(&h),
            }
        }
    }
    Ok(out)
}

fn every_split(requests: &[u8], response: &[u8]) -> Result<Vec<u8>, &'static str> {
    let whole = run(requests, response, response.len());
    for split in 1..response.len() {
        assert_eq!(run(requests, response, split), whole, "split {split}");
    }
    whole
}

#[test]
fn valid_responses_pass_unchanged_however_they_are_split() {
    let two_gets = [GET, GET].concat();
    for response in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nt: v\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the connection closes",
    ] {
        assert_eq!(every_split(GET, response).as_deref(), Ok(response));
    }
    let pair = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\ncontent-length: 1\r\n\r\nb";
    assert_eq!(every_split(&two_gets, pair).as_deref(), Ok(&pair[..]));
}

#[test]
fn content_length_beside_transfer_encoding_becomes_connection_close() {
    let response =
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let out = every_split(GET, response).unwrap();
    let expected =
        b"HTTP/1.1 200 OK\r\nconnection:close \r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(expected)
    );
    // The connection carries nothing more.
    let mut more = response.to_vec();
    more.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let two_gets = [GET, GET].concat();
    assert_eq!(
        run(&two_gets, &more, more.len()),
        Err("bytes after the connection's last response")
    );
}

#[test]
fn a_head_response_has_no_body_whatever_its_length_says() {
    let requests = [&b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n"[..], GET].concat();
    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    assert_eq!(
        every_split(&requests, response).as_deref(),
        Ok(&response[..])
    );
}

#[test]
fn request_bodies_are_skipped_to_find_the_next_request() {
    let requests = [
        &b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\nHEAD"[..],
        b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n4\r\nHEAD\r\n0\r\n\r\n",
        b"HEAD / HTTP/1.1\r\n\r\n",
    ]
    .concat();
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let head = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n";
    let response = [&ok[..], ok, head].concat();
    assert_eq!(every_split(&requests, &response), Ok(response));
}

#[test]
fn ambiguous_or_malformed_responses_are_refused() {
    for (response, why) in [
        (
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\na"[..],
            "duplicate content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 1,1\r\n\r\na",
            "invalid content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\na",
            "invalid content-length",
        ),
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "content-length overflow",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "unsupported transfer-encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            "duplicate transfer-encoding",
        ),
        (
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "transfer-encoding in an HTTP/1.0 response",
        ),
        (b"HTTP/1.1 200 OK\nx: y\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 200 OK\r\r\n\r\n", "bare CR"),
        (b"HTTP/1.1 200 OK\r\nx: y\n\r\n", "invalid field value"),
        (
            b"HTTP/1.1 200 OK\r\nx: y\r\n z\r\n\r\n",
            "obsolete line folding",
        ),
        (b"HTTP/1.1 200 OK\r\nx : y\r\n\r\n", "invalid field name"),
        (b"HTTP/2 200 OK\r\n\r\n", "invalid status line"),
        (b"HTTP/1.1 099 Odd\r\n\r\n", "invalid status code"),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-1\r\n",
            "invalid chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\nab\r\n",
            "chunk data longer than its size",
        ),
    ] {
        assert_eq!(
            run(GET, response, response.len()),
            Err(why),
            "{}",
            String::from_utf8_lossy(response)
        );
    }
}

#[test]
fn a_response_nobody_asked_for_is_refused() {
    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(
        run(b"", response, response.len()),
        Err("response without a request")
    );
}

#[test]
fn a_head_over_the_limit_is_refused() {
    let mut response = b"HTTP/1.1 200 OK\r\n".to_vec();
    while response.len() < 40 * 1024 {
        response.extend_from_slice(b"x-filler: 0123456789abcdef0123456789abcdef\r\n");
    }
    assert_eq!(run(GET, &response, 4096), Err("response head too large"));
}

#[test]
fn the_head_limit_is_exact_however_the_head_is_cut() {
    // A head of exactly the limit passes and one byte more is refused, wherever the limit
    // falls: in a long value, a long name or the reason phrase (each skipped in bulk).
    let limit = 256;
    for (prefix, suffix) in [
        (
            &b"HTTP/1.1 200 OK\r\nx-long: "[..],
            &b"\r\ncontent-length: 0\r\n\r\n"[..],
        ),
        (
            b"HTTP/1.1 200 OK\r\nx-",
            b": v\r\ncontent-length: 0\r\n\r\n",
        ),
        (b"HTTP/1.1 200 O", b"\r\ncontent-length: 0\r\n\r\n"),
    ] {
        let head = |len: usize| {
            let mut h = prefix.to_vec();
            h.resize(len - suffix.len(), b'k');
            h.extend_from_slice(suffix);
            h
        };
        // The limit falls in the suffix, then at the end of the run, then inside it.
        for total in limit - 2..=limit + suffix.len() + 2 {
            for split in [1, 7, 64, limit, total] {
                let result = run_limited(limit, GET, &head(total), split);
                if total <= limit {
                    assert_eq!(result, Ok(head(total)), "{total} bytes, split {split}");
                } else {
                    assert_eq!(
                        result,
                        Err("response head too large"),
                        "{total}, split {split}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_shell_passes_a_valid_exchange_and_refuses_the_whole_read_of_a_bad_one() {
    let (mut server, io) = duplex(1 << 16);
    let mut guard = UpstreamGuard::new(io);
    guard.write_all(GET).await.unwrap();
    let mut req = vec![0; GET.len()];
    server.read_exact(&mut req).await.unwrap();
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let mut got = vec![0; 43];
    guard.read_exact(&mut got).await.unwrap();
    assert!(got.ends_with(b"hello"));

    // A valid head followed by a bad chunk in the same read: nothing of it is handed on.
    guard.write_all(GET).await.unwrap();
    server.read_exact(&mut req).await.unwrap();
    server
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
        .await
        .unwrap();
    let mut buf = [0; 256];
    let err = guard.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("invalid chunk size"), "{err}");
    // And it stays refused.
    assert!(guard.read(&mut buf).await.is_err());
}

/// Whether the framing rests after `requests` were written and `response` read.
fn at_rest_after(requests: &[u8], response: &[u8]) -> bool {
    let mut f = Framing::new(32 * 1024);
    f.on_written(requests);
    f.feed(response, &mut Vec::new()).expect("valid response");
    f.is_at_rest()
}

#[test]
fn a_connection_rests_only_between_whole_exchanges() {
    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    assert!(Framing::new(1024).is_at_rest());
    assert!(at_rest_after(GET, ok));
    assert!(at_rest_after(&[GET, GET].concat(), &[&ok[..], ok].concat()));
    // A response still owed, half read, or the body not all read.
    assert!(!at_rest_after(&[GET, GET].concat(), ok));
    assert!(!at_rest_after(GET, b""));
    assert!(!at_rest_after(GET, b"HTTP/1.1 200 OK\r\ncontent-"));
    assert!(!at_rest_after(
        GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\no"
    ));
    // A request half written, or whose body is not all written.
    assert!(!at_rest_after(&[GET, b"GET /"].concat(), ok));
    let post = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab";
    assert!(!at_rest_after(post, ok));
    // The connection's last response (Connection: close by both fields), or read to the close.
    assert!(!at_rest_after(
        GET,
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    ));
    assert!(!at_rest_after(GET, b"HTTP/1.0 200 OK\r\n\r\nuntil close"));
}

#[tokio::test]
async fn the_shell_rests_after_a_whole_exchange_and_not_after_the_upstream_ended() {
    let (mut server, io) = duplex(1 << 16);
    let mut guard = UpstreamGuard::new(io);
    guard.write_all(GET).await.unwrap();
    let mut req = vec![0; GET.len()];
    server.read_exact(&mut req).await.unwrap();
    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    server.write_all(response).await.unwrap();
    let mut got = vec![0; response.len()];
    guard.read_exact(&mut got).await.unwrap();
    assert!(guard.is_at_rest());
    // The upstream closes its side (over TLS a close_notify may come without a FIN): a read
    // that saw the end must keep the connection from resting.
    drop(server);
    let mut buf = [0; 16];
    assert_eq!(guard.read(&mut buf).await.unwrap(), 0);
    assert!(!guard.is_at_rest());
}

/// A request recorded without being scanned frames its response as a scanned one does, and a
/// recording is refused while the scanner is mid-request.
#[test]
fn recorded_requests_frame_their_responses_as_scanned_ones() {
    const HEAD_OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
    for (head, response, passes) in [
        (true, HEAD_OK, HEAD_OK),
        (
            false,
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        ),
    ] {
        let mut f = Framing::new(1024);
        assert!(f.expect_request(head));
        let mut segs = Vec::new();
        f.feed(response, &mut segs).unwrap();
        assert_eq!(segs, vec![Segment::Pass(0..passes.len())]);
        assert!(f.is_at_rest(), "the exchange ended");
        // A response with no request behind it is refused.
        assert!(f.feed(HEAD_OK, &mut Vec::new()).is_err());
    }
    let mut f = Framing::new(1024);
    f.on_written(b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\na");
    assert!(
        !f.expect_request(false),
        "mid-body: the scanner must see the rest"
    );
}

/// A long head that came in pieces leaves buffer room behind; an idle connection sheds it.
#[tokio::test]
async fn a_long_split_head_leaves_no_room_behind_once_shed() {
    let (mut server, io) = duplex(1 << 16);
    let mut guard = UpstreamGuard::new(io);
    guard.write_all(GET).await.unwrap();
    let mut req = vec![0; GET.len()];
    server.read_exact(&mut req).await.unwrap();
    let mut response = b"HTTP/1.1 200 OK\r\nx-long: ".to_vec();
    response.resize(response.len() + 4000, b'a');
    response.extend_from_slice(b"\r\ncontent-length: 0\r\n\r\n");
    let (first, second) = (response[..100].to_vec(), response[100..].to_vec());
    server.write_all(&first).await.unwrap();
    let len = response.len();
    let reading = tokio::spawn(async move {
        let mut got = vec![0; len];
        guard.read_exact(&mut got).await.unwrap();
        guard
    });
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    server.write_all(&second).await.unwrap();
    let mut guard = reading.await.unwrap();
    assert!(guard.is_at_rest());
    assert!(guard.out.capacity() + guard.framing_room() > super::framing::SMALL);
    guard.shed();
    assert!(guard.out.capacity() + guard.framing_room() <= super::framing::SMALL);
    assert!(guard.is_at_rest(), "shedding keeps the exchange state");
}
