//! Path normalisation cost per request: a canonical path (the common case, no allocation) versus
//! paths that need decoding, merging and dot-segment removal.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use strait_router::{normalize_path, PathOptions};

fn normalize(c: &mut Criterion) {
    let opts = PathOptions::default();
    let mut g = c.benchmark_group("normalize_path");
    for (name, path) in [
        ("canonical", "/api/v1/users/12345/orders/67890/items"),
        ("escapes", "/api/v1/us%65rs/caf%c3%a9/%7Euser/items"),
        ("dots_and_slashes", "/api//v1/./users/x/../12345//orders/"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| normalize_path(black_box(path.as_bytes()), &opts).map(|p| p.len()))
        });
    }
    g.finish();
}

criterion_group!(benches, normalize);
criterion_main!(benches);
