//! Tests of the `colour` filter: a known header colour is kept, an unknown one counts as absent, a derived one is stable and set on the request.

use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;
use strait_core::colour::{ColourCounters, ColourFallback, ColourResult, ColourSet};

use super::*;

struct NoCounters;

impl ColourCounters for NoCounters {
    fn count(&self, _: usize, _: ColourResult) {}
}

fn filter(derive: Option<ColourKey>) -> ColourFilter {
    let set = ColourSet {
        policy: "region".into(),
        label: "region".into(),
        values: vec![Arc::from("eu"), Arc::from("us")].into(),
        fallback: ColourFallback::Any,
        counters: Box::new(NoCounters),
    };
    ColourFilter::new(Arc::new(set), HeaderName::from_static("x-region"), derive).unwrap()
}

/// Runs the filter on a GET with `headers`; returns the request head after it.
fn run(f: &ColourFilter, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::get("/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (mut head, ()) = b.body(()).unwrap().into_parts();
    let mut ctx = RequestCtx {
        head: &mut head,
        client: SocketAddr::from(([127, 0, 0, 1], 1000)),
        listener: "web",
        route: "r",
        tls: false,
        peer: None,
    };
    let mut state = FilterState::default();
    assert!(matches!(f.on_request(&mut ctx, &mut state), Flow::Continue));
    head
}

fn colour(head: &Parts) -> Option<&str> {
    head.extensions.get::<Colour>().map(|c| &**c.value())
}

#[test]
fn a_known_header_colour_is_kept_and_forwarded_unchanged() {
    let f = filter(Some(ColourKey::Header(HeaderName::from_static("x-user"))));
    let head = run(&f, &[("x-region", "us"), ("x-user", "alice")]);
    assert_eq!(colour(&head), Some("us"));
    assert_eq!(head.headers["x-region"], "us");
}

#[test]
fn an_unknown_colour_counts_as_absent() {
    let f = filter(None);
    let head = run(&f, &[("x-region", "mars")]);
    assert_eq!(colour(&head), None);
    assert_eq!(head.headers["x-region"], "mars");
    assert_eq!(colour(&run(&f, &[])), None);
}

#[test]
fn a_derived_colour_is_stable_per_user_and_set_on_the_request() {
    let f = filter(Some(ColourKey::Header(HeaderName::from_static("x-user"))));
    let mut seen = std::collections::HashSet::new();
    for u in 0..64 {
        let user = format!("user-{u}");
        let a = run(&f, &[("x-user", &user)]);
        let b = run(&f, &[("x-user", &user), ("x-region", "mars")]);
        let c = colour(&a).unwrap().to_owned();
        assert_eq!(colour(&b), Some(c.as_str()));
        assert_eq!(a.headers["x-region"], c.as_str());
        assert_eq!(b.headers["x-region"], c.as_str());
        seen.insert(c);
    }
    assert_eq!(seen.len(), 2, "64 users spread over both colours");
    // No key, no colour: the request uses every endpoint.
    assert_eq!(colour(&run(&f, &[])), None);
}

#[test]
fn a_cookie_key_derives_a_colour() {
    let f = filter(Some(ColourKey::Cookie("uid".into())));
    let head = run(&f, &[("cookie", "a=1; uid=42")]);
    assert!(colour(&head).is_some());
    assert!(head.headers.contains_key("x-region"));
}
