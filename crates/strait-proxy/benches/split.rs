//! Cost of a route split's choice per request (issue 12: a sticky split at most 1.05x a plain route's CPU): gray overrides that do not match, then the sticky key hashed onto a 95/5 layout.
//!
//! The request carries a browser-like head (a dozen headers, three cookies, a query), so the
//! override scans and the key lookup see what they would on real traffic.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderName, HeaderValue, Request};
use strait_core::split::StickyLayout;
use strait_proxy::split::{Override, OverrideOn, Split, StickyKey};

fn head(user: u32) -> http::request::Parts {
    let (parts, ()) = Request::get(format!("/checkout/cart?item=42&lang=en&u={user}"))
        .header("host", "shop.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
        )
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .header("accept-language", "en-GB,en;q=0.5")
        .header("accept-encoding", "gzip, deflate, br")
        .header("referer", "https://shop.example.com/")
        .header(
            "cookie",
            format!("theme=dark; session=s{user}; consent=yes"),
        )
        .header("x-request-id", "4f89a86bcb9dd8b4ec91d642707156da")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-user-id", format!("user-{user}"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(())
        .unwrap()
        .into_parts();
    parts
}

fn split(sticky: StickyKey) -> Split {
    Split {
        overrides: vec![
            Override {
                on: OverrideOn::Header(HeaderName::from_static("x-canary")),
                value: Some(b"always".to_vec().into_boxed_slice()),
                backend: 1,
            },
            Override {
                on: OverrideOn::Cookie("beta".into()),
                value: Some(b"1".to_vec().into_boxed_slice()),
                backend: 1,
            },
        ]
        .into_boxed_slice(),
        sticky: Some(sticky),
    }
}

fn bench(c: &mut Criterion) {
    let layout = StickyLayout::new(&[95, 5]);
    let heads: Vec<_> = (0..64).map(head).collect();
    let ip = HeaderValue::from_static("203.0.113.7");
    for (name, s) in [
        (
            "header:x-user-id",
            split(StickyKey::Header(HeaderName::from_static("x-user-id"))),
        ),
        ("cookie:session", split(StickyKey::Cookie("session".into()))),
        ("client_ip", split(StickyKey::ClientIp)),
    ] {
        let mut i = 0;
        c.bench_function(&format!("split choose, 2 overrides + sticky {name}"), |b| {
            b.iter(|| {
                i = (i + 1) % heads.len();
                black_box(s.choose(&layout, black_box(&heads[i]), &ip))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
