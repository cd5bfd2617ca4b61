//! Pure route matching: host, path (exact, prefix, template, regex), method, headers and query.
//!
//! This crate sits between the connection and the filter chain: the data plane hands it a
//! borrowed view of a request ([`Request`]) and gets back the index of the winning route
//! ([`Match`]). It does no I/O and no async work, and [`Router::lookup`] does not allocate.
//!
//! The contract is simple: routes are tried in *try order* (higher `priority` first, then the
//! order written) and the first route whose every condition matches wins. [`Router`] indexes
//! routes by host and path so that lookup cost does not grow with the number of routes, but its
//! answer always equals a linear scan over [`Router::order`].
//!
//! [`normalize_path`] turns a request path into its one canonical spelling before lookup, so
//! that no encoding of a path can reach a route other than the one its canonical form reaches.
//!
//! [`shadowed`] finds routes that can never win because an earlier-tried route matches
//! everything they match; `strait validate` reports them as warnings.
#![forbid(unsafe_code)]

mod error;
mod host;
mod hostmap;
pub mod normalize;
mod path;
mod router;
mod shadow;
mod trie;
mod value;

#[cfg(test)]
mod tests;

pub use error::RouterError;
pub use normalize::{normalize_path, replace_prefix, EscapedSlashes, PathOptions, PathRejection};
pub use router::Router;
pub use shadow::{shadowed, Shadow};

/// One route's match conditions, as written in configuration.
///
/// Every condition must hold for the route to match; an empty list means "no constraint".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSpec {
    /// Host patterns: empty or containing `"*"` matches any host; `"*.example.com"` matches any
    /// host with at least one more label (not `example.com` itself); anything else is exact.
    /// Case-insensitive; a request's `:port` is ignored.
    pub hosts: Vec<String>,
    /// The path condition.
    pub path: PathSpec,
    /// Allowed methods; empty allows any.
    pub methods: Vec<http::Method>,
    /// Header conditions; all must hold. A header with several values matches if any does.
    pub headers: Vec<(http::HeaderName, ValueMatch)>,
    /// Query parameter conditions on raw (not percent-decoded) names and values; same semantics
    /// as `headers`. A parameter without `=` has the empty value.
    pub query: Vec<(String, ValueMatch)>,
    /// Client certificate URI SAN patterns (SPIFFE IDs): exact, or a prefix when ending with
    /// `*`. One of the connection's verified URIs must match one; empty means no constraint.
    pub client_uris: Vec<String>,
    /// Higher is tried first; equal priorities keep the order written.
    pub priority: i32,
}

/// How a route matches the request path (which excludes the query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PathSpec {
    /// Any path.
    #[default]
    Any,
    /// The path equals this string exactly (case-sensitive).
    Exact(String),
    /// The path starts with this string (a plain string prefix, as Envoy's `prefix`:
    /// `/v1` matches `/v1x`).
    Prefix(String),
    /// A template such as `/users/{id}/posts/{pid}`: `{name}` matches one non-empty segment,
    /// `{*rest}` (last only) matches the remainder, possibly empty. Each `{..}` must be a
    /// whole segment.
    Template(String),
    /// A regular expression that must match the whole path.
    Regex(String),
}

/// How a header or query parameter value matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueMatch {
    /// Some value equals this string exactly (case-sensitive).
    Exact(String),
    /// Some value matches this regular expression in full.
    Regex(String),
    /// `true`: the header or parameter is present; `false`: it is absent.
    Present(bool),
}

/// A borrowed view of the parts of a request that routing reads.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Host` header or `:authority`, possibly with a `:port` (ignored).
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query string, without the leading `?`.
    pub query: Option<&'a str>,
    /// The request method.
    pub method: &'a http::Method,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// URI SANs of the connection's verified client certificate (none without one).
    pub client_uris: &'a [Box<str>],
}

/// The winning route of a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the route in the `specs` given to [`Router::build`].
    pub index: usize,
    /// For [`PathSpec::Prefix`] routes the length of the matched prefix, else 0; prefix
    /// rewrite replaces `path[..prefix_len]`.
    pub prefix_len: usize,
}
