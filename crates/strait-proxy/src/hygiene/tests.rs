//! Head hygiene decisions: methods, the rebuilt URI (absolute-form, query kept), header drops.

use http::{HeaderMap, Method, Uri};
use strait_router::{EscapedSlashes, PathOptions};

use super::*;

#[test]
fn connect_is_refused_with_405_and_wrong_case_standard_methods_with_400() {
    assert_eq!(
        method(&Method::CONNECT).unwrap_err().status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    for m in [
        "get", "Get", "post", "pOST", "delete", "connect", "patch", "options",
    ] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        let r = method(&m).unwrap_err();
        assert_eq!(
            (r.status, r.reason),
            (StatusCode::BAD_REQUEST, "method_case"),
            "{m}"
        );
    }
    for m in ["GET", "POST", "PURGE", "purge", "PROPFIND", "MKCOL", "getx"] {
        let m = Method::from_bytes(m.as_bytes()).unwrap();
        assert_eq!(method(&m), Ok(()), "{m}");
    }
}

#[test]
fn normalised_uri_keeps_scheme_authority_and_query() {
    let opts = PathOptions::default();
    let n = |u: &str| normalized_uri(&u.parse::<Uri>().unwrap(), &opts);
    assert_eq!(n("/a/b?x=../%2e&y=//").unwrap(), None);
    assert_eq!(
        n("/x/../%68ealthz?a=/../b").unwrap().unwrap(),
        "/healthz?a=/../b"
    );
    assert_eq!(
        n("http://h.example:8080/x/../y?q").unwrap().unwrap(),
        "http://h.example:8080/y?q"
    );
    assert_eq!(n("*").unwrap(), None);
    assert_eq!(n("/a%2Fb").unwrap_err().reason, "path_escaped_slash");
    assert_eq!(n("/..").unwrap_err().reason, "path_above_root");
    let keep = PathOptions {
        escaped_slashes: EscapedSlashes::KeepUnchanged,
        ..opts
    };
    let kept = normalized_uri(&"/a%2fb".parse().unwrap(), &keep)
        .unwrap()
        .unwrap();
    assert_eq!(kept, "/a%2Fb");
}

#[test]
fn underscored_names_are_dropped_with_every_value() {
    let mut h = HeaderMap::new();
    h.append("x_forwarded_for", "1.2.3.4".parse().unwrap());
    h.append("x_forwarded_for", "5.6.7.8".parse().unwrap());
    h.append("transfer_encoding", "chunked".parse().unwrap());
    h.append("x-ok", "1".parse().unwrap());
    assert_eq!(drop_underscored(&mut h), 3);
    assert_eq!(h.len(), 1);
    assert!(h.contains_key("x-ok"));
    assert_eq!(drop_underscored(&mut h), 0);
}
