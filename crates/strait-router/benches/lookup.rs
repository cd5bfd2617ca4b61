//! Lookup cost among 10 routes versus 10,000: the index should keep them close.
//!
//! Both tables come from one deterministic generator with a realistic mix: many exact hosts,
//! some wildcard and any-host routes, mostly prefixes, some exact paths and templates, a few
//! header and method conditions and a rare regex. Requests are derived from routes in the table
//! (so most hit) plus some misses.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use strait_router::{PathSpec, Request, RouteSpec, Router, ValueMatch};

/// A small xorshift generator, so the tables are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const RESOURCES: &[&str] = &[
    "users", "orders", "items", "carts", "payments", "invoices", "search", "reports", "events",
    "sessions", "files", "images", "teams", "projects", "tickets", "metrics",
];

fn table(count: usize, rng: &mut Rng) -> Vec<RouteSpec> {
    // Scale the host pool with the table so each host has a handful of routes.
    let hosts = (count as u64 / 8).max(2);
    (0..count)
        .map(|i| {
            // Host kinds by position, not by draw: every ten routes hold exactly one wildcard
            // and one any-host route, so the 10-route table has the same mix as the large one
            // (a random draw gave it neither, and so skipped work every large-table lookup does).
            let host = match i % 10 {
                0 => vec![format!("*.t{}.example.net", rng.below(hosts / 4 + 1))],
                1 => vec![],
                _ => vec![format!("svc{}.example.com", rng.below(hosts))],
            };
            let res = RESOURCES[rng.below(RESOURCES.len() as u64) as usize];
            let path = match rng.below(1000) {
                0..=499 => {
                    PathSpec::Prefix(format!("/api/v{}/{res}{}", rng.below(3), rng.below(50)))
                }
                500..=699 => PathSpec::Exact(format!("/health/{res}/{i}")),
                700..=899 => PathSpec::Template(format!("/{res}{}/{{id}}/items/{{item}}", i % 97)),
                900..=998 => PathSpec::Prefix(format!("/static/{res}/{i}/")),
                _ => PathSpec::Regex(format!("/legacy/{res}/[0-9]+")),
            };
            let mut spec = RouteSpec {
                hosts: host,
                path,
                ..RouteSpec::default()
            };
            if rng.below(10) == 0 {
                spec.headers = vec![(
                    HeaderName::from_static("x-env"),
                    ValueMatch::Exact("canary".into()),
                )];
            }
            if rng.below(5) == 0 {
                spec.methods = vec![Method::GET, Method::HEAD];
            }
            spec
        })
        .collect()
}

/// An owned request that satisfies `spec`.
struct Owned {
    host: String,
    path: String,
    method: Method,
    headers: HeaderMap,
}

fn request_for(spec: &RouteSpec, rng: &mut Rng) -> Owned {
    let host = match spec.hosts.first() {
        None => format!("other{}.example.org", rng.below(100)),
        Some(h) => h.replace("*.", "www."),
    };
    let path = match &spec.path {
        PathSpec::Any => "/".to_string(),
        PathSpec::Exact(e) => e.clone(),
        PathSpec::Prefix(p) => format!("{p}/list/page-2"),
        PathSpec::Template(t) => t.replace("{id}", "12345").replace("{item}", "9"),
        PathSpec::Regex(_) => "/legacy/none/123".to_string(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    if !spec.headers.is_empty() {
        headers.insert("x-env", HeaderValue::from_static("canary"));
    }
    Owned {
        host: format!("{host}:8080"),
        path,
        method: Method::GET,
        headers,
    }
}

fn requests(specs: &[RouteSpec], rng: &mut Rng) -> Vec<Owned> {
    let mut out: Vec<Owned> = (0..56)
        .map(|_| request_for(&specs[rng.below(specs.len() as u64) as usize], rng))
        .collect();
    // Misses: unknown hosts and unknown paths on known hosts.
    for i in 0..8 {
        let mut miss = request_for(&specs[i % specs.len()], rng);
        if i % 2 == 0 {
            miss.host = format!("unknown{i}.example.io");
        }
        miss.path = format!("/nowhere/{i}");
        out.push(miss);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    for count in [10, 10_000] {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let specs = table(count, &mut rng);
        let router = Router::build(&specs).expect("bench routes compile");
        let owned = requests(&specs, &mut rng);
        let reqs: Vec<Request<'_>> = owned
            .iter()
            .map(|o| Request {
                host: &o.host,
                path: &o.path,
                query: Some("page=2&sort=asc"),
                method: &o.method,
                headers: &o.headers,
                client_uris: &[],
            })
            .collect();
        let hits = reqs.iter().filter(|r| router.lookup(r).is_some()).count();
        eprintln!("{count} routes: {hits}/{} requests hit", reqs.len());
        group.throughput(Throughput::Elements(reqs.len() as u64));
        group.bench_function(format!("{count}_routes"), |b| {
            b.iter(|| {
                for req in &reqs {
                    black_box(router.lookup(black_box(req)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
