//! Instance cold start and the per-request CPU cost of a no-op plugin (the host's own overhead), with the example plugins built by scripts/build-plugins.sh.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use prometheus::{IntCounterVec, Opts};
use strait_core::{Filter, FilterState, Flow, Outcome, RequestCtx, ResponseCtx};
use strait_wasm::{Counters, Plugin, Settings, WasmFilter};

/// The built plugin `name`: `$STRAIT_WASM_PLUGINS` or `$CARGO_TARGET_DIR/wasm32-wasip1/release`.
fn module(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("STRAIT_WASM_PLUGINS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| PathBuf::from(d).join("wasm32-wasip1/release"))
        })
        .unwrap_or_else(|| PathBuf::from("../../examples/plugins/target/wasm32-wasip1/release"));
    std::fs::read(dir.join(format!("{name}.wasm")))
        .expect("example plugins not built: run scripts/build-plugins.sh")
}

fn plugin(name: &str) -> std::sync::Arc<Plugin> {
    let rt = strait_wasm::runtime().unwrap();
    let module = rt.compile(&module(name)).unwrap();
    let counter = |n: &str, labels: &[&str]| IntCounterVec::new(Opts::new(n, n), labels).unwrap();
    Plugin::new(
        rt,
        module,
        Settings {
            name: name.into(),
            root_id: String::new(),
            config: Default::default(),
            memory_limit: 64 << 20,
            cpu_limit: Duration::from_millis(10),
            fail_open: false,
            max_body: 1 << 20,
        },
        HashMap::new(),
        Counters {
            failures: counter("f", &["policy", "reason"]),
            instances: counter("i", &["policy"]),
        },
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let noop = plugin("noop");
    c.bench_function("wasm_instance_cold_start_noop", |b| {
        b.iter(|| noop.cold_start().unwrap())
    });
    let adds = plugin("add_headers");
    c.bench_function("wasm_instance_cold_start_add_headers", |b| {
        b.iter(|| adds.cold_start().unwrap())
    });
    for (label, p) in [("noop", noop), ("add_headers", adds)] {
        let filter = WasmFilter::new(p);
        let (mut head, _) = http::Request::get("/api/items?id=7")
            .header("host", "api.example.com")
            .header("user-agent", "bench")
            .header("accept", "*/*")
            .body(())
            .unwrap()
            .into_parts();
        let (mut resp, _) = http::Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .header("content-length", "0")
            .body(())
            .unwrap()
            .into_parts();
        let client = "127.0.0.1:40000".parse().unwrap();
        c.bench_function(&format!("wasm_request_overhead_{label}"), |b| {
            b.iter(|| {
                let mut state = FilterState::default();
                let mut ctx = RequestCtx {
                    head: &mut head,
                    client,
                    listener: "web",
                    route: "api",
                    tls: false,
                    peer: None,
                };
                assert!(matches!(
                    filter.on_request(&mut ctx, &mut state),
                    Flow::Continue
                ));
                let mut rctx = ResponseCtx {
                    head: &mut resp,
                    method: &http::Method::GET,
                    uri: &"/api/items?id=7".parse().unwrap(),
                    route: "api",
                    upstream: Some("app"),
                    local: false,
                };
                assert!(matches!(
                    filter.on_response(&mut rctx, &mut state),
                    Flow::Continue
                ));
                let outcome = Outcome {
                    status: 200,
                    ..Default::default()
                };
                filter.on_end(&outcome, &mut state);
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
