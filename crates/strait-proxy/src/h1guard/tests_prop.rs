//! Property tests: valid pipelines always pass byte-identical, and byte soup never panics.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

use super::framing::Framing;
use super::tests::feed_pieces;
use super::{H1Guard, H1Limits};

const TCHARS: &str = "[A-Za-z0-9!#$%&'*+.^_`|~-]";

fn token() -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("{TCHARS}{{1,12}}")).unwrap()
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        token().prop_filter("CONNECT may switch protocols", |m| m != "CONNECT"),
    ]
}

/// Field names other than the three whose meaning the guard tracks.
fn plain_name() -> impl Strategy<Value = String> {
    token().prop_filter("framing fields are generated separately", |name| {
        !["content-length", "transfer-encoding", "upgrade"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f))
    })
}

/// A field value: visible ASCII, SP, HTAB or obs-text.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff],
        0..24,
    )
}

#[derive(Clone, Debug)]
enum Body {
    None,
    Length(Vec<u8>),
    /// Chunks with optional extensions, then trailer fields.
    Chunked(Vec<(Vec<u8>, Option<String>)>, Vec<(String, Vec<u8>)>),
}

fn body() -> impl Strategy<Value = Body> {
    let data = prop::collection::vec(any::<u8>(), 1..40);
    let ext = proptest::option::of(
        proptest::string::string_regex("[a-z]{1,5}(=[a-z0-9]{1,5})?").unwrap(),
    );
    prop_oneof![
        Just(Body::None),
        prop::collection::vec(any::<u8>(), 0..60).prop_map(Body::Length),
        (
            prop::collection::vec((data, ext), 0..4),
            prop::collection::vec((plain_name(), value()), 0..3)
        )
            .prop_map(|(chunks, trailers)| Body::Chunked(chunks, trailers)),
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    let target = proptest::string::string_regex("/[!-~]{0,30}").unwrap();
    let headers = prop::collection::vec((plain_name(), value()), 0..6);
    (method(), target, any::<bool>(), headers, body(), 0..3usize).prop_map(
        |(method, target, http10, headers, body, case)| {
            let chunked = matches!(body, Body::Chunked(..));
            let version = if http10 && !chunked { "1.0" } else { "1.1" };
            let mut out = format!("{method} {target} HTTP/{version}\r\n").into_bytes();
            for (name, value) in headers {
                out.extend(format!("{name}:").as_bytes());
                out.extend(value);
                out.extend(b"\r\n");
            }
            let cl = ["Content-Length", "content-length", "CONTENT-LENGTH"][case];
            match body {
                Body::None => out.extend(b"\r\n"),
                Body::Length(data) => {
                    out.extend(format!("{cl}: {}\r\n\r\n", data.len()).as_bytes());
                    out.extend(data);
                }
                Body::Chunked(chunks, trailers) => {
                    out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                    for (data, ext) in chunks {
                        let ext = ext.map(|e| format!(";{e}")).unwrap_or_default();
                        out.extend(format!("{:x}{ext}\r\n", data.len()).as_bytes());
                        out.extend(data);
                        out.extend(b"\r\n");
                    }
                    out.extend(b"0\r\n");
                    for (name, value) in trailers {
                        out.extend(format!("{name}:").as_bytes());
                        out.extend(value);
                        out.extend(b"\r\n");
                    }
                    out.extend(b"\r\n");
                }
            }
            out
        },
    )
}

/// Bytes from an alphabet rich in framing characters, so soup reaches deep parser states.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![
        prop::sample::select(b"\r\n :;\t0aF/GET HTTP1.chunked-Lg,\x00\x7f\x80".to_vec()),
        any::<u8>(),
    ];
    let prefix = prop::sample::select(vec![
        &b""[..],
        b"GET / HTTP/1.1\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n",
        // Whole lines the one-pass checks take, with framing a rule refuses.
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n",
        b"POST / HTTP/1.1\r\ncontent-length: 1 2\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n\r\n",
        b"CONNECTS a:1 HTTP/1.1\r\nUpgrade: x\r\n",
        b"GET /\x7f HTTP/1.1\r\n",
    ]);
    (prefix, prop::collection::vec(interesting, 0..200))
        .prop_map(|(prefix, tail)| [prefix, &tail].concat())
}

/// Cuts `input` at the given (unsorted, possibly out-of-range) positions.
fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain([input.len()]) {
        out.push(&input[start..cut]);
        start = cut;
    }
    out
}

/// Runs `input` through a guard with reads of the given sizes; returns what it passed on.
fn through_guard(input: &[u8], read_sizes: &[usize]) -> (Vec<u8>, bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (mut client, server) = duplex(input.len() + 1);
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut guard = H1Guard::new(server, H1Limits::default());
        let mut seen = Vec::new();
        let mut buf = [0; 64];
        for size in read_sizes.iter().cycle() {
            let read = guard.read(&mut buf[..1 + size % 64]);
            // Reads behind an unanswered upgrade request wait forever; paused time ends that.
            match tokio::time::timeout(Duration::from_secs(3600), read).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => seen.extend(&buf[..n]),
                Ok(Err(e)) => panic!("{e}"),
            }
        }
        (seen, guard.rejection().is_none())
    })
}

proptest! {
    #[test]
    fn valid_pipelines_always_pass(requests in prop::collection::vec(request(), 1..=3), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let input = requests.concat();
        prop_assert_eq!(feed_pieces(H1Limits::default(), pieces(&input, &cuts)), Ok(requests.len() as u64));
    }

    #[test]
    fn valid_pipelines_pass_the_guard_byte_identical(requests in prop::collection::vec(request(), 1..=3), read_sizes in prop::collection::vec(any::<usize>(), 1..4)) {
        let input = requests.concat();
        let (seen, accepted) = through_guard(&input, &read_sizes);
        prop_assert!(accepted);
        prop_assert_eq!(seen, input);
    }

    #[test]
    fn byte_soup_never_panics(input in soup(), cuts in prop::collection::vec(any::<usize>(), 0..6), written in prop::collection::vec(any::<u8>(), 0..20)) {
        let mut framing = Framing::new(H1Limits::default());
        for piece in pieces(&input, &cuts) {
            framing.feed(piece);
            framing.on_written(&written);
        }
        let _ = feed_pieces(H1Limits::default(), pieces(&input, &cuts));
    }

    #[test]
    fn byte_soup_through_the_guard_never_panics(input in soup(), read_sizes in prop::collection::vec(any::<usize>(), 1..4)) {
        let (seen, _) = through_guard(&input, &read_sizes);
        prop_assert!(seen.len() <= input.len());
        prop_assert_eq!(&seen[..], &input[..seen.len()]);
    }
}

proptest! {
    /// Fully arbitrary bytes (not only the framing-rich soup): the decision does not depend on
    /// how the bytes were cut into reads, and nothing panics.
    #[test]
    fn arbitrary_bytes_decide_the_same_however_they_are_cut(
        input in prop::collection::vec(any::<u8>(), 0..300),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = feed_pieces(H1Limits::default(), [&input[..]]);
        prop_assert_eq!(feed_pieces(H1Limits::default(), pieces(&input, &cuts)), whole);
    }

    /// Chunked bodies with many extensions and trailers: refused by the guard (a 400) before
    /// hyper's own per-body limits would fail them (a 502), never passed to hyper beyond them.
    #[test]
    fn chunk_extensions_and_trailers_stay_under_hypers_limits(
        ext_len in 0usize..4000,
        chunks in 1usize..8,
        trailers in 0usize..150,
    ) {
        let mut req = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..chunks {
            req.extend(format!("1;{}\r\na\r\n", "e".repeat(ext_len)).as_bytes());
        }
        req.extend(b"0\r\n");
        for i in 0..trailers {
            req.extend(format!("t{i}: v\r\n").as_bytes());
        }
        req.extend(b"\r\n");
        let extensions = (ext_len + 1) * chunks;
        let outcome = feed_pieces(H1Limits::default(), [&req[..]]);
        // hyper: 16 KiB of extensions per body, max_headers + 1 trailer fields.
        if extensions >= 16 * 1024 || trailers > 100 {
            prop_assert!(outcome.is_err(), "{extensions} extension bytes, {trailers} trailers passed");
        }
        if extensions <= 8 * 1024 && trailers <= 100 {
            prop_assert_eq!(outcome, Ok(1));
        }
    }

    /// Heads rich in whole lines, under default and tight limits: the one-pass checks of whole
    /// lines decide as the byte-at-a-time path does (byte-by-byte reads never hold a whole line).
    #[test]
    fn whole_lines_decide_as_single_bytes_do(input in soup(), tight in any::<bool>()) {
        let limits = if tight {
            H1Limits { max_request_line: 14, max_head: 48, max_headers: 2, ..H1Limits::default() }
        } else {
            H1Limits::default()
        };
        prop_assert_eq!(feed_pieces(limits, [&input[..]]), feed_pieces(limits, input.chunks(1)));
    }

    /// The request line kept for a refusal's log line is the start of what was sent.
    #[test]
    fn the_kept_request_line_is_a_prefix_of_the_input(input in soup()) {
        let mut framing = Framing::new(H1Limits::default());
        let _ = framing.feed(&input);
        let line = framing.request_line();
        prop_assert!(line.len() <= 64);
        prop_assert!(line.is_empty() || input.windows(line.len()).any(|w| w == line));
    }
}
