//! The compiled router: routes in try order, indexed by host and then by path.
//!
//! Lookup visits only the host buckets the request host can reach (its exact host, each
//! wildcard suffix, and any-host) and, in each, only the trie nodes along the request path.
//! Every candidate list is sorted by try order, so the first full match in a list is that
//! list's best, and the overall winner is the lowest rank across lists.

use std::collections::HashMap;

use http::{HeaderName, Method};
use regex::Regex;

use crate::host::{self, HostPattern, MAX_HOST};
use crate::hostmap::HostMap;
use crate::path::{self, Template};
use crate::trie::{Best, Entry, Forest, Kind, Root};
use crate::value::{self, ValueMatcher};
use crate::{Match, PathSpec, Request, RouteSpec, RouterError};

/// An immutable, compiled route table.
#[derive(Debug)]
pub struct Router {
    /// Compiled routes, indexed by rank (position in try order).
    routes: Box<[Compiled]>,
    /// Spec index of each rank.
    order: Box<[usize]>,
    exact: HostMap,
    suffix: HostMap,
    /// Bit `n` set when some wildcard suffix is `n` bytes long, so most request hosts skip the
    /// suffix map entirely.
    suffix_lens: [u64; MAX_HOST / 64],
    any: Root,
    forest: Forest,
}

/// One host bucket's routes before indexing: path key and entry.
type Items<'a> = Vec<(&'a [u8], Entry)>;

/// The parts of a route the index does not already guarantee.
#[derive(Debug)]
struct Compiled {
    index: usize,
    path: PathCheck,
    methods: Box<[Method]>,
    headers: Box<[(HeaderName, ValueMatcher)]>,
    query: Box<[(Box<str>, ValueMatcher)]>,
    client_uris: Box<[Box<str>]>,
}

#[derive(Debug)]
enum PathCheck {
    /// The trie position decides.
    None,
    Template(Template),
    Regex(Regex),
}

// === impl Router ===

impl Router {
    /// Compiles `specs`; the error names the first route that does not compile.
    pub fn build(specs: &[RouteSpec]) -> Result<Router, RouterError> {
        // Ranks are u32 and u32::MAX means "no match".
        let max = u32::MAX as usize - 1;
        if specs.len() > max {
            return Err(RouterError::TooManyRoutes {
                count: specs.len(),
                max,
            });
        }
        let order = try_order(specs);

        let mut routes = Vec::with_capacity(specs.len());
        let mut exact: HashMap<Box<[u8]>, Items<'_>> = HashMap::new();
        let mut suffix: HashMap<Box<[u8]>, Items<'_>> = HashMap::new();
        let mut any = Vec::new();
        for (rank, &index) in order.iter().enumerate() {
            let spec = &specs[index];
            let hosts = compile_hosts(index, &spec.hosts)?;
            let (compiled, key, kind) = compile(index, spec)?;
            // Standard methods are checked from the entry itself, without touching the route.
            let methods = compiled
                .methods
                .iter()
                .fold(0, |mask, m| mask | method_bit(m).unwrap_or(OTHER_METHOD));
            let extra = methods & OTHER_METHOD != 0
                || !(compiled.headers.is_empty()
                    && compiled.query.is_empty()
                    && compiled.client_uris.is_empty());
            routes.push(compiled);
            let item = (
                key,
                Entry {
                    rank: rank as u32,
                    kind,
                    methods,
                    extra,
                },
            );
            if hosts.contains(&HostPattern::Any) || hosts.is_empty() {
                any.push(item);
                continue;
            }
            for host in hosts {
                match host {
                    HostPattern::Exact(h) => exact.entry(h).or_default().push(item),
                    HostPattern::Suffix(s) => suffix.entry(s).or_default().push(item),
                    HostPattern::Any => unreachable!("handled above"),
                }
            }
        }
        let mut forest = Forest::default();
        let mut suffix_lens = [0u64; MAX_HOST / 64];
        for key in suffix.keys() {
            suffix_lens[key.len() / 64] |= 1 << (key.len() % 64);
        }
        let mut tries = |map: HashMap<Box<[u8]>, Vec<_>>| {
            HostMap::new(
                map.into_iter()
                    .map(|(k, items)| (k, forest.add(items)))
                    .collect(),
            )
        };
        let (exact, suffix) = (tries(exact), tries(suffix));
        let any = forest.add(any);
        Ok(Router {
            routes: routes.into(),
            order: order.into(),
            exact,
            suffix,
            suffix_lens,
            any,
            forest,
        })
    }

    /// The first route in try order that matches `req`, without allocating.
    pub fn lookup(&self, req: &Request<'_>) -> Option<Match> {
        let mut best = Best::NONE;
        let path = req.path.as_bytes();
        let method = method_bit(req.method).unwrap_or(OTHER_METHOD);
        let mut visit = |entries: &[Entry], depth: usize, best: &mut Best| {
            self.visit(entries, depth, req, method, best)
        };
        if !(self.exact.is_empty() && self.suffix.is_empty()) {
            let mut buf = [0u8; MAX_HOST];
            if let Some(host) = host::normalize(req.host, &mut buf) {
                if let Some(root) = self.exact.get(host) {
                    self.forest.walk(root, path, &mut best, &mut visit);
                }
                if !self.suffix.is_empty() {
                    for suffix in host::suffixes(host) {
                        let n = suffix.len();
                        if self.suffix_lens[n / 64] & (1 << (n % 64)) == 0 {
                            continue;
                        }
                        if let Some(root) = self.suffix.get(suffix) {
                            self.forest.walk(root, path, &mut best, &mut visit);
                        }
                    }
                }
            }
        }
        self.forest.walk(self.any, path, &mut best, &mut visit);
        let route = self.routes.get(best.rank as usize)?;
        Some(Match {
            index: route.index,
            prefix_len: best.prefix_len,
        })
    }

    /// Checks one trie node's entries (sorted by rank) and records the first that matches.
    fn visit(
        &self,
        entries: &[Entry],
        depth: usize,
        req: &Request<'_>,
        method: u16,
        best: &mut Best,
    ) {
        let at_end = depth == req.path.len();
        for entry in entries {
            if entry.rank >= best.rank {
                return;
            }
            let path_ok = match entry.kind {
                Kind::Exact => at_end,
                Kind::Prefix | Kind::Any => true,
                Kind::Check => self.routes[entry.rank as usize].path_matches(req.path),
            };
            let method_ok = entry.methods == 0 || entry.methods & method != 0;
            if !path_ok
                || !method_ok
                || (entry.extra && !self.routes[entry.rank as usize].rest_matches(req))
            {
                continue;
            }
            best.rank = entry.rank;
            best.prefix_len = if entry.kind == Kind::Prefix { depth } else { 0 };
            return;
        }
    }

    /// How many routes the router holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the router holds no routes (every lookup misses).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Route indices in the order they are tried: priority descending, then as written.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

/// Set in a route's method mask when it lists a non-standard method, which only the full
/// check can compare.
const OTHER_METHOD: u16 = 1 << 15;

/// One bit per standard method, so method checks need not touch the route.
pub(crate) fn method_bit(method: &Method) -> Option<u16> {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD.iter().position(|m| m == method).map(|i| 1 << i)
}

/// Route indices sorted by priority descending; the sort is stable, so ties keep written order.
pub(crate) fn try_order(specs: &[RouteSpec]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(specs[i].priority));
    order
}

pub(crate) fn compile_hosts(
    index: usize,
    hosts: &[String],
) -> Result<Vec<HostPattern>, RouterError> {
    hosts
        .iter()
        .map(|h| {
            HostPattern::parse(h).map_err(|reason| RouterError::BadHost {
                index,
                pattern: h.clone(),
                reason,
            })
        })
        .collect()
}

/// Compiles a route's non-host conditions and says where its path puts it in the trie.
fn compile(index: usize, spec: &RouteSpec) -> Result<(Compiled, &[u8], Kind), RouterError> {
    let (path, key, kind): (_, &[u8], _) = match &spec.path {
        PathSpec::Any => (PathCheck::None, b"", Kind::Any),
        PathSpec::Exact(e) => (PathCheck::None, e.as_bytes(), Kind::Exact),
        PathSpec::Prefix(p) => (PathCheck::None, p.as_bytes(), Kind::Prefix),
        PathSpec::Template(t) => {
            let template = Template::parse(t).map_err(|reason| RouterError::BadTemplate {
                index,
                template: t.clone(),
                reason,
            })?;
            let key = &t.as_bytes()[..template.literal_len()];
            (PathCheck::Template(template), key, Kind::Check)
        }
        PathSpec::Regex(r) => {
            let regex = path::compile_regex(r).map_err(|source| RouterError::BadRegex {
                index,
                field: "path".into(),
                pattern: r.clone(),
                source,
            })?;
            let key = path::regex_literal_prefix(r).as_bytes();
            (PathCheck::Regex(regex), key, Kind::Check)
        }
    };
    let value = |field: String, v: &crate::ValueMatch| {
        ValueMatcher::compile(v).map_err(|source| {
            let pattern = match v {
                crate::ValueMatch::Regex(r) => r.clone(),
                _ => String::new(),
            };
            RouterError::BadRegex {
                index,
                field,
                pattern,
                source,
            }
        })
    };
    let headers = spec
        .headers
        .iter()
        .map(|(name, v)| Ok((name.clone(), value(format!("header {name}"), v)?)))
        .collect::<Result<_, RouterError>>()?;
    let query = spec
        .query
        .iter()
        .map(|(name, v)| Ok((name.as_str().into(), value(format!("query {name}"), v)?)))
        .collect::<Result<_, RouterError>>()?;
    let compiled = Compiled {
        index,
        path,
        methods: spec.methods.clone().into(),
        headers,
        query,
        client_uris: spec.client_uris.iter().map(|u| u.as_str().into()).collect(),
    };
    Ok((compiled, key, kind))
}

// === impl Compiled ===

impl Compiled {
    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathCheck::None => true,
            PathCheck::Template(t) => t.matches(path),
            PathCheck::Regex(r) => r.is_match(path),
        }
    }

    /// Method, header and query conditions; cheapest first.
    fn rest_matches(&self, req: &Request<'_>) -> bool {
        (self.methods.is_empty() || self.methods.contains(req.method))
            && self
                .headers
                .iter()
                .all(|(name, m)| m.matches(req.headers.get_all(name).iter().map(|v| v.as_bytes())))
            && self
                .query
                .iter()
                .all(|(name, m)| m.matches(value::query_values(req.query, name)))
            && (self.client_uris.is_empty()
                || req
                    .client_uris
                    .iter()
                    .any(|uri| self.client_uris.iter().any(|p| uri_matches(p, uri))))
    }
}

/// A client URI pattern: exact, or a prefix when it ends with `*` (as the `client_cert` policy).
pub(crate) fn uri_matches(pattern: &str, uri: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => uri.starts_with(prefix),
        None => pattern == uri,
    }
}
