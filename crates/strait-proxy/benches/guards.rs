//! Cost of the HTTP/1 guards per exchange (issue 15): a browser-like request head through the
//! downstream guard, nginx's answer (head and 1 KiB body, one read) through the upstream guard, and
//! that head read into a header map as the direct upstream client reads it.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strait_proxy::guard_bench::{direct_response_head, request_head, upstream_response};

/// What hyper writes upstream for a proxied GET.
const UPSTREAM_REQUEST: &[u8] = b"GET /1k HTTP/1.1\r\nhost: 127.0.0.1:18400\r\nuser-agent: wrk\r\n\
x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-request-id: 4f89a86bcb9dd8b4ec91d642707156da\r\n\r\n";

/// A browser's request head, as it reaches the listener.
const BROWSER_HEAD: &[u8] =
    b"GET /checkout/cart?item=42&lang=en HTTP/1.1\r\nHost: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
Referer: https://shop.example.com/\r\nCookie: theme=dark; session=s1234; consent=yes\r\n\
Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\r\n";

fn nginx_response() -> Vec<u8> {
    let mut r =
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.26.3\r\nDate: Sun, 06 Dec 2026 20:00:00 GMT\r\n\
Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n\
Last-Modified: Sat, 05 Dec 2026 10:00:00 GMT\r\nConnection: keep-alive\r\n\
ETag: \"6751a2b0-400\"\r\nAccept-Ranges: bytes\r\n\r\n"
            .to_vec();
    r.resize(r.len() + 1024, b'x');
    r
}

fn guards(c: &mut Criterion) {
    let response = nginx_response();
    assert_eq!(
        upstream_response(UPSTREAM_REQUEST, &response),
        Ok(response.len())
    );
    assert_eq!(request_head(BROWSER_HEAD), Ok(BROWSER_HEAD.len()));
    // Connection is left out: the strip would remove it.
    assert_eq!(direct_response_head(&response), Some((7, 1024)));

    let mut g = c.benchmark_group("guards");
    g.throughput(Throughput::Elements(1));
    g.bench_function("upstream_response_1k", |b| {
        b.iter(|| upstream_response(black_box(UPSTREAM_REQUEST), black_box(&response)))
    });
    // The copy into a buffer is part of the figure (about 300 bytes: the head alone).
    let head = &response[..response.len() - 1024];
    g.bench_function("direct_response_head_nginx", |b| {
        b.iter(|| direct_response_head(black_box(head)))
    });
    g.bench_function("request_head_browser", |b| {
        b.iter(|| request_head(black_box(BROWSER_HEAD)))
    });
    g.finish();
}

criterion_group!(benches, guards);
criterion_main!(benches);
