//! Tests of the split choice on request heads: overrides by header, cookie and query, and sticky keys from each source.

use super::*;
use std::sync::Arc;

fn head(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::builder().uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn rule(on: OverrideOn, value: Option<&str>, backend: usize) -> Override {
    Override {
        on,
        value: value.map(|v| v.as_bytes().into()),
        backend,
    }
}

/// The backend `s` chooses for `h`, if it chooses.
fn chosen(s: &Split, h: &Parts) -> Option<usize> {
    s.choose(&layout(), h, &ip()).map(|(i, _)| i)
}

fn ip() -> HeaderValue {
    HeaderValue::from_static("10.0.0.7")
}

/// 50/50 over backends 0 and 1, with a weight-0 backend 2 reachable only by override.
fn layout() -> StickyLayout {
    StickyLayout::new(&[1, 1, 0])
}

fn gray() -> Split {
    Split {
        overrides: vec![
            rule(
                OverrideOn::Header(HeaderName::from_static("x-canary")),
                Some("always"),
                1,
            ),
            rule(OverrideOn::Cookie("beta".into()), Some("1"), 1),
            rule(OverrideOn::Query("dark".into()), None, 2),
        ]
        .into(),
        sticky: None,
    }
}

#[test]
fn overrides_match_header_cookie_and_query_values() {
    let s = gray();
    let pick = |h: &Parts| chosen(&s, h);
    assert_eq!(pick(&head("/", &[("x-canary", "always")])), Some(1));
    assert_eq!(pick(&head("/", &[("x-canary", "sometimes")])), None);
    assert_eq!(pick(&head("/", &[("cookie", "a=2; beta=1")])), Some(1));
    assert_eq!(pick(&head("/", &[("cookie", "beta=10")])), None);
    assert_eq!(pick(&head("/p?x=1&dark", &[])), Some(2));
    assert_eq!(pick(&head("/p?dark=anything", &[])), Some(2));
    assert_eq!(pick(&head("/p?darker=1", &[])), None);
    assert_eq!(pick(&head("/", &[])), None);
}

#[test]
fn the_choice_says_which_mechanism_chose() {
    let h = head("/?dark", &[("x-user-id", "u")]);
    assert_eq!(
        gray().choose(&layout(), &h, &ip()).unwrap().1,
        Choice::Override
    );
    let s = sticky(StickyKey::Header(HeaderName::from_static("x-user-id")));
    assert_eq!(s.choose(&layout(), &h, &ip()).unwrap().1, Choice::Sticky);
}

#[test]
fn the_first_matching_override_wins() {
    let s = gray();
    let h = head("/?dark", &[("x-canary", "always")]);
    assert_eq!(chosen(&s, &h), Some(1));
}

#[test]
fn any_value_of_a_repeated_header_can_match() {
    let s = gray();
    let h = head("/", &[("x-canary", "no"), ("x-canary", "always")]);
    assert_eq!(chosen(&s, &h), Some(1));
}

fn sticky(key: StickyKey) -> Split {
    Split {
        overrides: Box::new([]),
        sticky: Some(key),
    }
}

#[test]
fn sticky_keys_give_every_user_the_same_backend_every_time() {
    let s = sticky(StickyKey::Header(HeaderName::from_static("x-user-id")));
    let mut seen = [0usize; 3];
    for user in 0..200 {
        let id = format!("user-{user}");
        let h = head("/", &[("x-user-id", &id)]);
        let first = chosen(&s, &h).unwrap();
        for _ in 0..3 {
            assert_eq!(chosen(&s, &h), Some(first));
        }
        seen[first] += 1;
    }
    assert!(seen[0] > 50 && seen[1] > 50 && seen[2] == 0, "{seen:?}");
}

#[test]
fn a_missing_or_empty_key_leaves_the_choice_to_the_weights() {
    let s = sticky(StickyKey::Header(HeaderName::from_static("x-user-id")));
    assert_eq!(s.choose(&layout(), &head("/", &[]), &ip()), None);
    assert_eq!(
        s.choose(&layout(), &head("/", &[("x-user-id", "")]), &ip()),
        None
    );
    let s = sticky(StickyKey::Claim("sub".into()));
    assert_eq!(s.choose(&layout(), &head("/", &[]), &ip()), None);
}

#[test]
fn cookie_claim_and_client_ip_keys_hash_their_value() {
    let want = layout().pick(key_hash(b"alice"));
    let s = sticky(StickyKey::Cookie("sid".into()));
    let h = head("/", &[("cookie", "x=1; sid=alice")]);
    assert_eq!(chosen(&s, &h), want);

    let s = sticky(StickyKey::Claim("sub".into()));
    let mut h = head("/", &[]);
    h.extensions
        .insert(Claims(Arc::new(vec![("sub".into(), "alice".into())])));
    assert_eq!(chosen(&s, &h), want);

    let s = sticky(StickyKey::ClientIp);
    let h = head("/", &[]);
    let want = layout().pick(key_hash(b"10.0.0.7"));
    assert_eq!(chosen(&s, &h), want);
}

#[test]
fn query_values_are_compared_as_sent() {
    assert_eq!(query_param(Some("a=1&b=%41"), "b"), Some(&b"%41"[..]));
    assert_eq!(query_param(Some("a=1&b"), "b"), Some(&b""[..]));
    assert_eq!(query_param(Some("ab=1"), "a"), None);
    assert_eq!(query_param(None, "a"), None);
}
