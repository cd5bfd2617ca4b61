//! Path normalisation: a table of encodings with their canonical forms, and properties over
//! arbitrary bytes (total, idempotent, encoding-invariant, nothing left for a decoder to resolve).

use proptest::prelude::*;

use super::*;

fn norm(path: &str) -> Result<String, PathRejection> {
    normalize_path(path.as_bytes(), &PathOptions::default()).map(Cow::into_owned)
}

fn norm_with(path: &str, escaped_slashes: EscapedSlashes) -> Result<String, PathRejection> {
    let opts = PathOptions {
        escaped_slashes,
        ..PathOptions::default()
    };
    normalize_path(path.as_bytes(), &opts).map(Cow::into_owned)
}

/// The slow path alone, to compare with the allocation-free fast path.
fn slow(path: &[u8], opts: &PathOptions) -> Result<String, PathRejection> {
    if path.first() != Some(&b'/') {
        return Err(PathRejection::NotAbsolute);
    }
    resolve_segments(&decode(path, opts)?, opts)
}

#[test]
fn canonical_paths_are_borrowed_unchanged() {
    for p in [
        "/",
        "/a",
        "/a/b/",
        "/v1/users;v=2",
        "/~x/-._",
        "/a:b@c!$&'()*+,=",
    ] {
        let out = normalize_path(p.as_bytes(), &PathOptions::default()).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)), "{p} was copied");
        assert_eq!(out, p);
    }
}

#[test]
fn encodings_have_one_canonical_form() {
    let table: &[(&str, &str)] = &[
        ("/x/../healthz", "/healthz"),
        ("//healthz", "/healthz"),
        ("/%68ealthz", "/healthz"),
        ("/a/%2e%2e/healthz", "/healthz"),
        ("/x/%2E%2e/healthz", "/healthz"),
        ("/x/.%2E/healthz", "/healthz"),
        ("/./healthz", "/healthz"),
        ("/healthz/.", "/healthz/"),
        ("/healthz/x/..", "/healthz/"),
        ("/a/b/../../c", "/c"),
        ("/a//b///c", "/a/b/c"),
        ("/a/b//../c", "/a/c"),
        ("/a/%7e%7E~", "/a/~~~"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/a b", "/a%20b"),
        ("/a{b}|c^", "/a%7Bb%7D%7Cc%5E"),
        ("/a\"<>`", "/a%22%3C%3E%60"),
        ("/\u{e9}", "/%C3%A9"),
        ("/%25%32%65", "/%252e"),
        ("/a;b=c/d", "/a;b=c/d"),
        ("/...", "/..."),
        ("/.../..", "/"),
        ("/.a/..b", "/.a/..b"),
        ("/%3f?", "/%3F%3F"),
        ("/x/..", "/"),
        ("/.", "/"),
        ("/", "/"),
    ];
    for (input, want) in table {
        assert_eq!(norm(input).as_deref(), Ok(*want), "{input}");
    }
}

#[test]
fn hostile_paths_are_refused_with_their_reason() {
    use PathRejection::*;
    let table: &[(&str, PathRejection)] = &[
        ("/a%00b", Nul),
        ("/a\0b", Nul),
        ("/..", AboveRoot),
        ("/a/../..", AboveRoot),
        ("/%2e%2e/%2e%2e", AboveRoot),
        ("/a/../../etc/passwd", AboveRoot),
        ("/a%2Fb", EscapedSlash),
        ("/a%2fb", EscapedSlash),
        ("/a%5Cb", EscapedSlash),
        ("/a\\b", EscapedSlash),
        ("/x/..;/healthz", DotSegmentParameters),
        ("/x/.;a=b/y", DotSegmentParameters),
        ("/x/%2e%2e;/y", DotSegmentParameters),
        ("/x/..%3b/y", DotSegmentParameters),
        ("/x/.;", DotSegmentParameters),
        ("/%C0%AE%C0%AE/x", OverlongUtf8),
        ("/%c1%9c", OverlongUtf8),
        ("/%E0%80%AE", OverlongUtf8),
        ("/%F0%80%80%AE", OverlongUtf8),
        ("/a%", BadEscape),
        ("/a%2", BadEscape),
        ("/a%zz", BadEscape),
        ("", NotAbsolute),
        ("a/b", NotAbsolute),
        ("*", NotAbsolute),
    ];
    for (input, want) in table {
        assert_eq!(norm(input), Err(*want), "{input:?}");
    }
}

#[test]
fn valid_multibyte_escapes_are_not_overlong() {
    assert_eq!(norm("/%E0%A4%85").as_deref(), Ok("/%E0%A4%85"));
    assert_eq!(norm("/%F0%9F%98%80").as_deref(), Ok("/%F0%9F%98%80"));
    assert_eq!(norm("/%E0/%80").as_deref(), Ok("/%E0/%80"));
}

#[test]
fn escaped_slashes_follow_the_action() {
    use EscapedSlashes::*;
    let table: &[(&str, EscapedSlashes, Result<&str, PathRejection>)] = &[
        ("/a%2fb", KeepUnchanged, Ok("/a%2Fb")),
        ("/a\\b%5c", KeepUnchanged, Ok("/a%5Cb%5C")),
        // Kept encoded, `..%2F` is data, not a dot segment.
        ("/a/..%2Fb", KeepUnchanged, Ok("/a/..%2Fb")),
        ("/a%2Fb", UnescapeAndForward, Ok("/a/b")),
        (
            "/x/..%2F..%5Chealthz",
            UnescapeAndForward,
            Err(PathRejection::AboveRoot),
        ),
        ("/x/y/..%2f..%5chealthz", UnescapeAndForward, Ok("/healthz")),
        ("/a\\\\b", UnescapeAndForward, Ok("/a/b")),
    ];
    for (input, action, want) in table {
        assert_eq!(
            norm_with(input, *action).as_deref(),
            want.as_deref(),
            "{input} {action:?}"
        );
    }
}

#[test]
fn settings_off_leave_what_they_govern() {
    let raw = PathOptions {
        normalize: false,
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::KeepUnchanged,
    };
    let n = |p: &str| normalize_path(p.as_bytes(), &raw).map(Cow::into_owned);
    assert_eq!(n("//a/../%2e/%7e").as_deref(), Ok("//a/../%2e/%7e"));
    // What is never valid stays refused or escaped.
    assert_eq!(n("/a%00"), Err(PathRejection::Nul));
    assert_eq!(n("/a b\\").as_deref(), Ok("/a%20b%5C"));
    let merge_only = PathOptions {
        normalize: false,
        ..PathOptions::default()
    };
    let m = |p: &str| normalize_path(p.as_bytes(), &merge_only).map(Cow::into_owned);
    assert_eq!(m("//a//./b").as_deref(), Ok("/a/./b"));
    let no_merge = PathOptions {
        merge_slashes: false,
        ..PathOptions::default()
    };
    let k = |p: &str| normalize_path(p.as_bytes(), &no_merge).map(Cow::into_owned);
    assert_eq!(k("//a//../b/").as_deref(), Ok("//a/b/"));
}

#[test]
fn prefix_rewrites_stay_inside_their_replacement() {
    use PathRejection::OutsideRewrite;
    // (path, matched prefix, replacement, result)
    let table: &[(&str, &str, &str, Result<&str, PathRejection>)] = &[
        ("/api/users", "/api/", "/", Ok("/users")),
        ("/api/users", "/api", "/v2", Ok("/v2/users")),
        ("/api/users", "/api/", "/v2/", Ok("/v2/users")),
        ("/apix", "/api", "/v2", Ok("/v2x")),
        ("/api", "/api", "", Ok("/")),
        ("/api./x", "/api", "/v2/", Ok("/v2/x")),
        ("/api../secret", "/api", "/v2/", Err(OutsideRewrite)),
        ("/api..", "/api", "/v2/", Err(OutsideRewrite)),
        ("/api..", "/api", "/", Err(OutsideRewrite)),
        ("/api..;x/y", "/api", "/v2/", Err(OutsideRewrite)),
        // A listener without normalisation may route a dotted path; the rewrite still holds.
        ("/api/../x", "/api", "/v2", Err(OutsideRewrite)),
        // Slashes and kept escapes the listener allowed are left alone.
        ("/api//a%2Fb", "/api", "/v2", Ok("/v2//a%2Fb")),
    ];
    for (path, matched, to, want) in table {
        let got = replace_prefix(path, matched.len(), to);
        assert_eq!(got.as_deref(), want.as_deref(), "{path} {matched} -> {to}");
    }
}

// === properties ===

fn options() -> impl Strategy<Value = PathOptions> {
    let slashes = prop_oneof![
        Just(EscapedSlashes::KeepUnchanged),
        Just(EscapedSlashes::RejectRequest),
        Just(EscapedSlashes::UnescapeAndForward),
    ];
    (any::<bool>(), any::<bool>(), slashes).prop_map(
        |(normalize, merge_slashes, escaped_slashes)| PathOptions {
            normalize,
            merge_slashes,
            escaped_slashes,
        },
    )
}

/// Paths made of the pieces that matter (dots, slashes, escapes, params) plus arbitrary bytes.
fn path_bytes() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"/", b".", b"..", b";", b"\\", b"%2e", b"%2E", b"%2f", b"%5C", b"%C0%AE", b"%E0%80",
        b"%00", b"%",
    ];
    let piece = prop_oneof![
        prop::sample::select(PIECES).prop_map(<[u8]>::to_vec),
        "[a-zA-Z0-9~_-]{1,3}".prop_map(String::into_bytes),
        "%[0-9a-fA-F]{2}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| {
        let mut p = b"/".to_vec();
        p.extend(pieces.concat());
        p
    })
}

/// Dot segments resolved, nothing else.
fn resolve(path: &str) -> String {
    let opts = PathOptions {
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::KeepUnchanged,
        ..PathOptions::default()
    };
    normalize_path(path.as_bytes(), &opts)
        .expect("resolvable")
        .into_owned()
}

/// Decodes every escape (what a lenient upstream does), as bytes.
fn decode_all(path: &str) -> Vec<u8> {
    let b = path.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match escape_at(b, i) {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// Spells each unreserved byte of a canonical path at random as itself or as an escape in
/// either case: all spellings of one path.
fn respell(path: &str, choices: &[u8]) -> String {
    let b = path.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // An escape that stays is copied whole: its hex digits are not characters.
            out.push_str(&path[i..i + 3]);
            i += 3;
            continue;
        }
        let pick = choices[i % choices.len()];
        if is_unreserved(b[i]) && !pick.is_multiple_of(3) {
            let e = format!("%{:02X}", b[i]);
            out.push_str(&if pick % 3 == 1 { e.to_lowercase() } else { e });
        } else {
            out.push(char::from(b[i]));
        }
        i += 1;
    }
    out
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_normalise_to_a_fixed_point(path in prop::collection::vec(any::<u8>(), 0..64), opts in options()) {
        if let Ok(once) = normalize_path(&path, &opts) {
            let twice = normalize_path(once.as_bytes(), &opts).expect("a normalised path is accepted");
            prop_assert_eq!(&twice, &once);
        }
    }

    #[test]
    fn normalising_is_idempotent_and_the_fast_path_agrees(path in path_bytes(), opts in options()) {
        let out = normalize_path(&path, &opts).map(Cow::into_owned);
        prop_assert_eq!(&out, &slow(&path, &opts));
        if let Ok(once) = out {
            prop_assert!(once.starts_with('/'));
            prop_assert!(once.is_ascii());
            // Always a valid origin-form path for `http`, with no query or fragment inside.
            let pq = http::uri::PathAndQuery::try_from(once.as_str()).expect("valid path");
            prop_assert_eq!(pq.as_str(), once.as_str());
            prop_assert_eq!(pq.path(), once.as_str());
            let twice = normalize_path(once.as_bytes(), &opts).map(Cow::into_owned);
            prop_assert_eq!(twice, Ok(once));
        }
    }

    #[test]
    fn the_default_leaves_nothing_for_a_decoding_upstream_to_resolve(path in path_bytes()) {
        if let Ok(out) = normalize_path(&path, &PathOptions::default()) {
            let decoded = decode_all(&out);
            prop_assert!(!decoded.contains(&b'\\'), "{}", out);
            prop_assert!(!decoded.contains(&0), "{}", out);
            prop_assert!(!out.contains("//"), "{}", out);
            let segments: Vec<&[u8]> = decoded.split(|&b| b == b'/').collect();
            // Decoding adds no separator: the upstream sees the segments the router saw.
            prop_assert_eq!(segments.len(), out.split('/').count());
            for seg in segments {
                prop_assert!(!is_dotlike(seg), "{} has a dot segment once decoded", out);
            }
        }
    }

    #[test]
    fn every_spelling_of_a_path_normalises_alike(path in path_bytes(), opts in options(), choices in prop::collection::vec(any::<u8>(), 1..16)) {
        let opts = PathOptions { normalize: true, ..opts };
        if let Ok(canonical) = normalize_path(&path, &opts) {
            let spelt = respell(&canonical, &choices);
            let again = normalize_path(spelt.as_bytes(), &opts).map(Cow::into_owned);
            prop_assert_eq!(again, Ok(canonical.into_owned()), "{}", spelt);
        }
    }

    #[test]
    fn a_prefix_rewrite_never_leaves_its_replacement(path in path_bytes(), cut in any::<prop::sample::Index>(), to in "/([a-z]{1,3}/?){0,2}") {
        if let Ok(canonical) = normalize_path(&path, &PathOptions::default()) {
            let len = cut.index(canonical.len() + 1);
            if let Ok(out) = replace_prefix(&canonical, len, &to) {
                prop_assert!(out.starts_with(&to), "{} -> {}", canonical, out);
                prop_assert_eq!(resolve(&out), out.clone());
            }
        }
    }

    #[test]
    fn a_detour_through_a_sibling_changes_nothing(path in path_bytes(), at in any::<prop::sample::Index>(), name in "[a-z]{1,4}") {
        let opts = PathOptions::default();
        if let Ok(canonical) = normalize_path(&path, &opts) {
            let canonical = canonical.into_owned();
            let slashes: Vec<usize> = canonical.match_indices('/').map(|(i, _)| i).collect();
            let i = slashes[at.index(slashes.len())];
            let detour = format!("{}/{name}/%2e%2E/./{}", &canonical[..i], &canonical[i + 1..]);
            let again = normalize_path(detour.as_bytes(), &opts).map(Cow::into_owned);
            prop_assert_eq!(again, Ok(canonical), "{}", detour);
        }
    }
}
