//! Server-side key exchange cost per TLS 1.3 handshake (issue 14): X25519 against the post-quantum hybrid X25519MLKEM768, from a client share to the server share and secret.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::crypto::ring::kx_group;
use strait_proxy::tls::X25519MLKEM768;

fn server_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("kx_server");
    for (name, group) in [
        ("x25519", kx_group::X25519),
        ("x25519mlkem768", X25519MLKEM768),
        ("secp256r1", kx_group::SECP256R1),
    ] {
        let share = group.start().expect("client share").pub_key().to_vec();
        g.bench_function(name, |b| {
            b.iter(|| {
                group
                    .start_and_complete(black_box(&share))
                    .expect("server completes")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, server_side);
criterion_main!(benches);
