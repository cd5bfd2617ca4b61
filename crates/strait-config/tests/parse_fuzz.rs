//! Property-based fuzzing of config parsing: arbitrary bytes and generated YAML-shaped documents never panic, and every error carries a position.
//!
//! `cargo test -p strait-config --test parse_fuzz` runs 256 cases per property; set
//! `PROPTEST_CASES=100000` for a long run.

use proptest::prelude::*;

/// Keys of the schema at every level, and a few that are not.
const KEYS: &[&str] = &[
    "admin",
    "listen",
    "token",
    "listeners",
    "name",
    "protocols",
    "tls",
    "cert",
    "key",
    "certificates",
    "min_version",
    "limits",
    "max_connections",
    "max_request_body",
    "header_read_timeout",
    "routes",
    "match",
    "host",
    "path",
    "path_prefix",
    "path_regex",
    "path_template",
    "methods",
    "headers",
    "query",
    "regex",
    "present",
    "priority",
    "upstream",
    "respond",
    "status",
    "body",
    "redirect",
    "scheme",
    "port",
    "rewrite",
    "request_headers",
    "response_headers",
    "add",
    "set",
    "remove",
    "upstreams",
    "endpoints",
    "address",
    "weight",
    "protocol",
    "timeouts",
    "connect",
    "request",
    "idle",
    "pool",
    "load_balancer",
    "hash_on",
    "health_check",
    "type",
    "interval",
    "server",
    "drain_timeout",
    "worker_threads",
    "wasm_cache_dir",
    "config",
    "provider",
    "prefix",
    "observability",
    "access_log",
    "tracing",
    "otlp",
    "sampling",
    "ratio",
    "fields",
    "bogus",
    "",
    "<<",
];

/// Scalars that mean something somewhere, and some that mean nothing anywhere.
const SCALARS: &[&str] = &[
    "web",
    "127.0.0.1:0",
    "0.0.0.0:8080",
    "[::]:1",
    "[::1]:0",
    "h:1",
    "15s",
    "1m30s",
    "0s",
    "64KiB",
    "2GiB",
    "1G",
    "204",
    "100",
    "600",
    "-1",
    "0",
    "99999999999999999999",
    "GET",
    "get",
    "/",
    "/v1/",
    "{id}",
    "/a/{*rest}",
    "*.example.com",
    "http1",
    "h2",
    "h2c",
    "true",
    "null",
    "~",
    "\"\"",
    "'x'",
    "\"\\u0000\"",
    "${HOME}",
    "${STRAIT_FUZZ_UNSET}",
    "${X:-127.0.0.1:0}",
    "$${",
    "é",
    "a: b",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "!!binary AAAA",
    "|",
    ">",
    "#",
    "- x",
    "\t",
    "%YAML 1.2",
    "---",
];

#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        4 => prop::sample::select(SCALARS).prop_map(|s| Node::Scalar(s.to_string())),
        1 => "[ -~]{0,12}".prop_map(Node::Scalar),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::List),
            prop::collection::vec(
                (prop::sample::select(KEYS).prop_map(str::to_string), inner),
                0..6
            )
            .prop_map(Node::Map),
        ]
    })
}

/// Renders `node` after a key or dash: block style, or flow style when `flow` says so.
fn render(node: &Node, indent: usize, flow: &mut impl Iterator<Item = bool>, out: &mut String) {
    let pad = " ".repeat(indent);
    let as_flow = match node {
        Node::Scalar(_) => true,
        Node::List(items) => items.is_empty() || flow.next().unwrap_or(false),
        Node::Map(pairs) => pairs.is_empty() || flow.next().unwrap_or(false),
    };
    if as_flow {
        out.push(' ');
        out.push_str(&inline(node));
        out.push('\n');
        return;
    }
    out.push('\n');
    match node {
        Node::List(items) => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                render(item, indent + 2, flow, out);
            }
        }
        Node::Map(pairs) => {
            for (k, v) in pairs {
                out.push_str(&format!("{pad}{k}:"));
                render(v, indent + 2, flow, out);
            }
        }
        Node::Scalar(_) => {}
    }
}

fn inline(node: &Node) -> String {
    match node {
        Node::Scalar(s) => s.clone(),
        Node::List(items) => {
            let parts: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", parts.join(", "))
        }
        Node::Map(pairs) => {
            let parts: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}: {}", inline(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A document: a top-level map, rendered, then maybe cut short or with a character inserted.
fn document() -> impl Strategy<Value = String> {
    let top = prop::collection::vec(
        (prop::sample::select(KEYS).prop_map(str::to_string), node()),
        1..6,
    );
    let flows = prop::collection::vec(any::<bool>(), 64);
    (top, flows, any::<u16>(), 0u8..4, any::<char>()).prop_map(|(pairs, flows, at, mutation, c)| {
        let mut text = String::new();
        let mut flow = flows.into_iter();
        for (k, v) in &pairs {
            text.push_str(&format!("{k}:"));
            render(v, 2, &mut flow, &mut text);
        }
        let n = text.chars().count().max(1);
        let cut = text
            .char_indices()
            .map(|(i, _)| i)
            .nth(at as usize % n)
            .unwrap_or(0);
        match mutation {
            1 => text.truncate(cut),
            2 => text.insert(cut, c),
            _ => {}
        }
        text
    })
}

/// The example configs and the built-in default: real documents to mutate, so that most
/// cases get past YAML and deep into validation.
fn seeds() -> &'static [String] {
    static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(read_seeds)
}

fn read_seeds() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut out = vec![strait_config::DEFAULT_CONFIG.to_string()];
    for entry in std::fs::read_dir(dir).expect("examples dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            out.push(std::fs::read_to_string(path).expect("read example"));
        }
    }
    out.sort();
    out
}

/// One edit of a line-oriented document.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace what follows the first `: ` on line N with a scalar.
    Value(usize, &'static str),
    /// Delete line N.
    Delete(usize),
    /// Copy line N after line M.
    Copy(usize, usize),
    /// Insert a character at byte offset N (rounded to a character boundary).
    Insert(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), prop::sample::select(SCALARS)).prop_map(|(n, v)| Edit::Value(n, v)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(n, m)| Edit::Copy(n, m)),
        1 => (any::<usize>(), any::<char>()).prop_map(|(n, c)| Edit::Insert(n, c)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let n = lines.len().max(1);
    match *e {
        Edit::Value(i, v) => {
            if let Some(l) = lines.get_mut(i % n) {
                if let Some(at) = l.find(": ") {
                    l.truncate(at + 2);
                    l.push_str(v);
                }
            }
        }
        Edit::Delete(i) if !lines.is_empty() => {
            lines.remove(i % n);
        }
        Edit::Copy(i, j) if !lines.is_empty() => {
            let l = lines[i % n].clone();
            lines.insert(j % n, l);
        }
        Edit::Insert(i, c) => {
            let mut t = lines.join("\n");
            let mut at = i % (t.len() + 1);
            while !t.is_char_boundary(at) {
                at -= 1;
            }
            t.insert(at, c);
            return t;
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// Parses `text` both ways (as an admin/etcd document and as a file) and checks the outcome.
fn check(text: &str) -> Result<(), TestCaseError> {
    for parsed in [
        strait_config::parse("fuzz.yaml", text, None),
        strait_config::parse_with_env("fuzz.yaml", text, None),
    ] {
        match parsed {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    prop_assert!(
                        w.line >= 1 && w.column >= 1,
                        "warning without a position: {w}\n{text}"
                    );
                }
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for d in &errors.0 {
                    prop_assert!(
                        d.line >= 1 && d.column >= 1,
                        "error without a position: {d}\n{text}"
                    );
                    prop_assert!(!d.message.is_empty());
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_errors_have_positions(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn yaml_shaped_documents_never_panic_and_errors_have_positions(text in document()) {
        check(&text)?;
    }

    #[test]
    fn edited_example_configs_never_panic_and_errors_have_positions(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let seeds = seeds();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text)?;
    }
}
