//! Unit tests of the pure core: head validation, chunked framing, pipelining and response sniffing.

use super::framing::{Fed, Framing};
use super::head::{BodyKind, Head, Parser, UpgradeKind};
use super::{H1Limits, Rejection};

/// What a whole input amounts to: the number of complete heads, or the refusal.
type Outcome = Result<u64, Rejection>;

/// Feeds `pieces` as successive reads, answering possibly-switching requests with a 200.
pub(super) fn feed_pieces<'a>(
    limits: H1Limits,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Outcome {
    let mut framing = Framing::new(limits);
    for piece in pieces {
        let mut rest = piece;
        loop {
            if framing.awaiting_response() {
                assert!(framing.on_written(b"HTTP/1.1 200 OK\r\n"));
            }
            match framing.feed(rest) {
                Fed::All => break,
                Fed::Hold(n) => {
                    assert!(n > 0 && n < rest.len(), "hold {n} of {}", rest.len());
                    rest = &rest[n..];
                }
                Fed::Reject(rejection) => return Err(rejection),
            }
        }
    }
    Ok(framing.heads())
}

/// The outcome of `input`, asserted identical for one read, byte-by-byte reads and every split.
fn outcome_with(limits: H1Limits, input: &[u8]) -> Outcome {
    let whole = feed_pieces(limits, [input]);
    assert_eq!(
        whole,
        feed_pieces(limits, input.chunks(1)),
        "byte-by-byte differs"
    );
    // Every two-piece split, for inputs small enough to keep this quadratic check fast.
    for split in (1..input.len()).filter(|_| input.len() <= 4096) {
        let (a, b) = input.split_at(split);
        assert_eq!(
            whole,
            feed_pieces(limits, [a, b]),
            "split at {split} differs"
        );
    }
    whole
}

fn outcome(input: &[u8]) -> Outcome {
    outcome_with(H1Limits::default(), input)
}

/// Parses exactly one head, which must end at the last byte.
fn head(input: &[u8]) -> Result<Head, Rejection> {
    let mut parser = Parser::new(H1Limits::default());
    let (n, head) = parser.feed(input)?;
    assert_eq!(n, input.len(), "head ended early");
    Ok(head.expect("head incomplete"))
}

fn bad(input: &[u8]) -> &'static str {
    match outcome(input) {
        Err(Rejection::BadRequest(reason)) => reason,
        other => panic!(
            "expected 400 for {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

const CURL: &[u8] = b"GET /api/v1/items?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const BROWSER: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\nsec-ch-ua: \"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: a=b; c=d\r\n\r\n";

#[test]
fn accepts_typical_curl_and_browser_heads() {
    assert_eq!(outcome(CURL), Ok(1));
    assert_eq!(outcome(BROWSER), Ok(1));
    assert_eq!(head(CURL).unwrap().body, BodyKind::None);
}

#[test]
fn accepts_obs_text_tabs_and_empty_values() {
    assert_eq!(
        outcome(b"GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9 \x80\xff\r\nX-T:\tv\t\r\nX-Empty:\r\n\r\n"),
        Ok(1)
    );
}

#[test]
fn accepts_http10_without_transfer_encoding() {
    assert_eq!(outcome(b"GET / HTTP/1.0\r\n\r\n"), Ok(1));
    assert_eq!(
        outcome(b"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
        Ok(1)
    );
}

#[test]
fn skips_leading_empty_lines() {
    assert_eq!(outcome(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Ok(1));
}

#[test]
fn reads_content_length_with_ows() {
    let parsed = head(b"POST / HTTP/1.1\r\ncontent-LENGTH: \t 42 \r\n\r\n").unwrap();
    assert_eq!(parsed.body, BodyKind::Length(42));
    assert_eq!(
        head(b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n")
            .unwrap()
            .body,
        BodyKind::Length(u64::MAX)
    );
}

#[test]
fn reads_chunked_case_insensitively_with_ows() {
    let parsed = head(b"POST / HTTP/1.1\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n").unwrap();
    assert_eq!(parsed.body, BodyKind::Chunked);
}

#[test]
fn marks_upgrade_and_connect_requests() {
    let ws = head(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    assert_eq!(ws.unwrap().upgrade, Some(UpgradeKind::Header));
    let connect = head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(connect.unwrap().upgrade, Some(UpgradeKind::Connect));
    assert_eq!(
        head(b"CONNECTX / HTTP/1.1\r\nUpgrades: x\r\n\r\n")
            .unwrap()
            .upgrade,
        None
    );
}

#[test]
fn rejects_bare_lf_anywhere_in_head() {
    bad(b"GET / HTTP/1.1\nHost: a\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: a\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: a\r\n\n");
    bad(b"\nGET / HTTP/1.1\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nX: a\nb\r\n\r\n");
}

#[test]
fn rejects_bare_cr_anywhere_in_head() {
    bad(b"GET / HTTP/1.1\rHost: a\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n");
    bad(b"GET / HTTP/1.1\r\nHost: a\r\n\rx");
    bad(b"\rGET / HTTP/1.1\r\n\r\n");
}

#[test]
fn rejects_malformed_request_lines() {
    bad(b"GET  / HTTP/1.1\r\n\r\n");
    bad(b"GET /  HTTP/1.1\r\n\r\n");
    bad(b"GET / HTTP/1.1 \r\n\r\n");
    bad(b"GET /a b HTTP/1.1\r\n\r\n");
    bad(b"GET /\r\n\r\n");
    bad(b"GET / HTTP/2.0\r\n\r\n");
    bad(b"GET / http/1.1\r\n\r\n");
    bad(b"GET / HTTP/1.10\r\n\r\n");
    bad(b"G(T / HTTP/1.1\r\n\r\n");
    bad(b" GET / HTTP/1.1\r\n\r\n");
    bad(b"GET /\x00 HTTP/1.1\r\n\r\n");
    bad(b"GET /\x7f HTTP/1.1\r\n\r\n");
    bad(b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n");
    bad(b"GET\t/ HTTP/1.1\r\n\r\n");
}

#[test]
fn rejects_malformed_header_lines() {
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        "invalid field name"
    );
    assert_eq!(bad(b"GET / HTTP/1.1\r\n: a\r\n\r\n"), "invalid field name");
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"),
        "obsolete line folding"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n"),
        "obsolete line folding"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n"),
        "invalid field value"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n"),
        "invalid field value"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX: a\x0bb\r\n\r\n"),
        "invalid field value"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
        "invalid field name"
    );
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nX\x00Y: a\r\n\r\n"),
        "invalid field name"
    );
}

#[test]
fn rejects_long_request_line_with_414_before_it_ends() {
    let limits = H1Limits {
        max_request_line: 32,
        ..H1Limits::default()
    };
    let mut line = b"GET /".to_vec();
    line.extend(std::iter::repeat_n(b'a', 40));
    assert_eq!(outcome_with(limits, &line), Err(Rejection::UriTooLong));
    // 32 bytes exactly is fine: "GET /" + 18 + " HTTP/1.1" is 32.
    let mut fits = b"GET /".to_vec();
    fits.extend(std::iter::repeat_n(b'a', 18));
    fits.extend(b" HTTP/1.1\r\n\r\n");
    assert_eq!(outcome_with(limits, &fits), Ok(1));
}

#[test]
fn rejects_too_many_headers_with_431() {
    let limits = H1Limits {
        max_headers: 3,
        ..H1Limits::default()
    };
    assert_eq!(
        outcome_with(limits, b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
        Ok(1)
    );
    let four = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_eq!(outcome_with(limits, four), Err(Rejection::HeadersTooLarge));
}

#[test]
fn rejects_oversized_head_with_431_as_bytes_arrive() {
    let limits = H1Limits {
        max_head: 64,
        ..H1Limits::default()
    };
    let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
    input.extend(std::iter::repeat_n(b'v', 100));
    assert_eq!(
        outcome_with(limits, &input),
        Err(Rejection::HeadersTooLarge)
    );
}

#[test]
fn the_head_limit_is_exact_wherever_it_falls() {
    // Values and untracked names are skipped in bulk: the limit must still hold to the byte.
    let limits = H1Limits {
        max_head: 96,
        ..H1Limits::default()
    };
    for (prefix, suffix) in [
        (&b"GET / HTTP/1.1\r\nX-Long: "[..], &b"\r\n\r\n"[..]),
        (b"GET / HTTP/1.1\r\nX-", b": v\r\n\r\n"),
    ] {
        let head = |len: usize| {
            let mut h = prefix.to_vec();
            h.resize(len - suffix.len(), b'k');
            h.extend_from_slice(suffix);
            h
        };
        // The limit falls in the suffix, then at the end of the run, then inside it.
        for total in 94..=96 + suffix.len() + 2 {
            let expected = if total <= 96 {
                Ok(1)
            } else {
                Err(Rejection::HeadersTooLarge)
            };
            assert_eq!(
                outcome_with(limits, &head(total)),
                expected,
                "{total} bytes"
            );
        }
    }
}

#[test]
fn rejects_ambiguous_content_length() {
    assert_eq!(
        bad(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
        "duplicate content-length"
    );
    bad(b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx");
    bad(b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx");
    bad(b"POST / HTTP/1.1\r\nContent-Length: 0x1\r\n\r\nx");
    bad(b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\nx");
    bad(b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n");
    bad(b"POST / HTTP/1.1\r\nContent-Length:  \r\n\r\n");
    let overflow = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n";
    assert_eq!(bad(overflow), "content-length overflow");
}

#[test]
fn rejects_any_transfer_encoding_but_chunked() {
    for value in [
        "xchunked",
        "chunked, identity",
        "identity",
        "gzip, chunked",
        "",
        "chunkedx",
        "chunked;q=1",
        "chunk ed",
    ] {
        let input = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {value}\r\n\r\n");
        assert_eq!(
            bad(input.as_bytes()),
            "unsupported transfer-encoding",
            "{value:?}"
        );
    }
    let twice =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(bad(twice), "duplicate transfer-encoding");
    let http10 = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(bad(http10), "transfer-encoding in http/1.0");
}

#[test]
fn rejects_content_length_with_transfer_encoding_in_either_order() {
    let cl_te =
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let te_cl =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
    assert_eq!(bad(cl_te), "content-length with transfer-encoding");
    assert_eq!(bad(te_cl), "content-length with transfer-encoding");
}

#[test]
fn tracks_chunked_body_with_extensions_and_trailers() {
    let input = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;name=value;flag\r\nhello\r\nA \t;x=\"q s\"\r\n0123456789\r\n0\r\nChecksum: abc\r\nX-T: \xff\r\n\r\n\
        GET /next HTTP/1.1\r\n\r\n";
    assert_eq!(outcome(input), Ok(2));
}

#[test]
fn rejects_malformed_chunked_framing() {
    let post = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases = [
        (
            "5\r\nhelloX\r\n0\r\n\r\n",
            "chunk data longer than its size",
        ),
        ("5\nhello\r\n0\r\n\r\n", "invalid chunk size"),
        ("5\r\nhello\n0\r\n\r\n", "chunk data longer than its size"),
        ("5\r\nhello\r0\r\n\r\n", "bare CR in chunked framing"),
        ("\r\n", "invalid chunk size"),
        ("x\r\n", "invalid chunk size"),
        (" 5\r\nhello\r\n", "invalid chunk size"),
        ("5 \r\nhello\r\n", "invalid chunk size"),
        ("-1\r\n", "invalid chunk size"),
        ("10000000000000000\r\n", "chunk size overflow"),
        ("1;a\x00\r\nx\r\n", "invalid chunk extension"),
        ("1;a\nb\r\nx\r\n", "invalid chunk extension"),
        ("0\r\nTrailer: a\n\r\n", "invalid trailer value"),
        ("0\r\nTrailer : a\r\n\r\n", "invalid trailer field"),
        ("0\r\n folded\r\n\r\n", "invalid trailer field"),
        ("0\r\n\rx", "bare CR in chunked framing"),
    ];
    for (body, reason) in cases {
        assert_eq!(bad(format!("{post}{body}").as_bytes()), reason, "{body:?}");
    }
    let long_ext = format!("{post}1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(5000));
    assert_eq!(bad(long_ext.as_bytes()), "chunk-size line too long");
    let big_trailer = format!("{post}0\r\nX: {}\r\n\r\n", "t".repeat(70000));
    assert_eq!(bad(big_trailer.as_bytes()), "trailer section too large");
}

#[test]
fn accepts_sixteen_hex_digit_chunk_sizes() {
    let mut framing = Framing::new(H1Limits::default());
    let input = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nabc";
    assert_eq!(framing.feed(input), Fed::All);
}

#[test]
fn follows_pipelined_requests_through_bodies() {
    let input = b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
        GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
        PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
        POST /d HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(outcome(input), Ok(4));
    // A body that looks like a head is data, not a request.
    let smuggle = b"POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\nGET /x HTTP/1.1\n";
    assert_eq!(outcome(smuggle), Ok(1));
}

#[test]
fn rejects_bad_head_behind_good_pipelined_request() {
    let input = b"GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\nX: y\r\n\r\n";
    let mut framing = Framing::new(H1Limits::default());
    assert!(matches!(
        framing.feed(input),
        Fed::Reject(Rejection::BadRequest(_))
    ));
}

#[test]
fn h2_preface_switches_to_passthrough_even_when_split() {
    let mut input = super::framing::H2_PREFACE.to_vec();
    input.extend(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00 \n\r anything");
    assert_eq!(outcome(&input), Ok(0));
    for split in 0..input.len() {
        let mut framing = Framing::new(H1Limits::default());
        assert_eq!(framing.feed(&input[..split]), Fed::All);
        assert_eq!(framing.feed(&input[split..]), Fed::All);
        assert!(framing.is_passthrough(), "split at {split}");
    }
}

#[test]
fn pri_method_over_http11_is_a_head_not_a_preface() {
    assert_eq!(outcome(b"PRI * HTTP/1.1\r\n\r\n"), Ok(1));
    assert_eq!(outcome(b"PRIX / HTTP/1.1\r\n\r\n"), Ok(1));
    assert!(matches!(
        outcome(b"PRI * HTTP/2.0\r\n\r\nXX"),
        Err(Rejection::BadRequest(_))
    ));
}

#[test]
fn upgrade_request_holds_following_bytes_until_response() {
    let mut framing = Framing::new(H1Limits::default());
    let head = b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    let mut input = head.to_vec();
    input.extend(b"\x81\x02hi");
    assert_eq!(framing.feed(&input), Fed::Hold(head.len()));
    assert!(framing.awaiting_response());
    // Interim responses do not decide; the status line may arrive in pieces.
    assert!(!framing.on_written(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1"));
    assert!(framing.on_written(b".1 101 Switching Protocols\r\n\r\n"));
    assert!(framing.is_passthrough());
    assert_eq!(framing.feed(b"\x81\x02hi\n\n"), Fed::All);
}

#[test]
fn non_101_response_resumes_checking_after_upgrade_request() {
    let mut framing = Framing::new(H1Limits::default());
    assert_eq!(
        framing.feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"),
        Fed::All
    );
    assert!(framing.on_written(b"HTTP/1.1 426 Upgrade Required\r\n\r\n"));
    assert!(!framing.is_passthrough());
    assert!(matches!(framing.feed(b"\x81\x02hi"), Fed::Reject(_)));
}

#[test]
fn connect_2xx_switches_to_passthrough() {
    let mut framing = Framing::new(H1Limits::default());
    assert_eq!(
        framing.feed(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
        Fed::All
    );
    assert!(framing.on_written(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert!(framing.is_passthrough());
    // A 200 to an Upgrade request is an ordinary response.
    let mut framing = Framing::new(H1Limits::default());
    assert_eq!(
        framing.feed(b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n"),
        Fed::All
    );
    assert!(framing.on_written(b"HTTP/1.1 200 OK\r\n\r\n"));
    assert!(!framing.is_passthrough());
}

#[test]
fn upgrade_request_body_is_read_before_holding() {
    let mut framing = Framing::new(H1Limits::default());
    let input = b"POST /ws HTTP/1.1\r\nUpgrade: x\r\nContent-Length: 2\r\n\r\nabGET";
    assert_eq!(framing.feed(input), Fed::Hold(input.len() - 3));
}
