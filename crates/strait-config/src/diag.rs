//! Diagnostics (`FILE:LINE:COL: message`) and the source locations kept for later stages.

use std::fmt;

/// A position in the config source as `(line, column)`, both 1-based; `(0, 0)` means unknown.
pub type Pos = (u64, u64);

/// One error or warning about the configuration, tied to a place in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The config's name as given to [`crate::parse`] (usually its file path).
    pub source: String,
    /// 1-based line; 0 when the problem has no position (e.g. the file could not be read).
    pub line: u64,
    /// 1-based column, counted in characters; 0 when unknown.
    pub column: u64,
    /// What is wrong, in one line.
    pub message: String,
}

impl Diagnostic {
    /// Builds a diagnostic at `at` in `source`.
    pub fn new(source: impl Into<String>, at: Pos, message: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            line: at.0,
            column: at.1,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.source, self.line, self.column, self.message
        )
    }
}

/// Every error found in a config; never empty when returned by [`crate::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct Errors(pub Vec<Diagnostic>);

fn lines(diags: &[Diagnostic]) -> String {
    let all: Vec<String> = diags.iter().map(ToString::to_string).collect();
    all.join("\n")
}

/// Where each configured item was written, so stages after parsing (e.g. the snapshot
/// compiler failing to load a certificate) can still point at the offending node.
///
/// Indexes follow the order items are written in the file (the order of `Config`'s
/// vectors). An index out of range yields `(0, 0)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locations {
    pub(crate) source: String,
    pub(crate) admin: Pos,
    pub(crate) listeners: Vec<ListenerLocs>,
    pub(crate) routes: Vec<RouteLocs>,
    pub(crate) upstreams: Vec<UpstreamLocs>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListenerLocs {
    pub at: Pos,
    pub listen: Pos,
    /// `(cert, key)` node positions for each certificate.
    pub certificates: Vec<(Pos, Pos)>,
    /// The `tls.client_auth.ca` value.
    pub client_ca: Pos,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RouteLocs {
    pub at: Pos,
    pub action: Pos,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamLocs {
    pub at: Pos,
    pub endpoints: Vec<Pos>,
    pub ca: Pos,
    /// The `tls.cert` value (the client certificate).
    pub cert: Pos,
}

// === impl Locations ===

impl Locations {
    /// Moves every position through `f` (from expanded text to the text as written).
    pub(crate) fn remap(&mut self, f: impl Fn(Pos) -> Pos) {
        self.admin = f(self.admin);
        for l in &mut self.listeners {
            l.at = f(l.at);
            l.listen = f(l.listen);
            l.client_ca = f(l.client_ca);
            for (cert, key) in &mut l.certificates {
                (*cert, *key) = (f(*cert), f(*key));
            }
        }
        for r in &mut self.routes {
            (r.at, r.action) = (f(r.at), f(r.action));
        }
        for u in &mut self.upstreams {
            (u.at, u.ca, u.cert) = (f(u.at), f(u.ca), f(u.cert));
            u.endpoints.iter_mut().for_each(|e| *e = f(*e));
        }
    }

    /// The config's name, as passed to [`crate::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Builds a diagnostic at `at` in this config's source.
    pub fn diag(&self, at: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(self.source.clone(), at, message)
    }

    /// The `admin.listen` value (or `(0, 0)` when the default is used).
    pub fn admin(&self) -> Pos {
        self.admin
    }

    /// The `i`-th listener's entry.
    pub fn listener(&self, i: usize) -> Pos {
        self.listeners.get(i).map_or((0, 0), |l| l.at)
    }

    /// The `i`-th listener's `listen` value (to report a bind failure).
    pub fn listener_listen(&self, i: usize) -> Pos {
        self.listeners.get(i).map_or((0, 0), |l| l.listen)
    }

    /// The `cert` and `key` values of certificate `j` of listener `i`.
    pub fn certificate(&self, i: usize, j: usize) -> (Pos, Pos) {
        self.listeners
            .get(i)
            .and_then(|l| l.certificates.get(j).copied())
            .unwrap_or(((0, 0), (0, 0)))
    }

    /// The `tls.client_auth.ca` value of listener `i`.
    pub fn listener_client_ca(&self, i: usize) -> Pos {
        self.listeners.get(i).map_or((0, 0), |l| l.client_ca)
    }

    /// The `i`-th route's entry.
    pub fn route(&self, i: usize) -> Pos {
        self.routes.get(i).map_or((0, 0), |r| r.at)
    }

    /// The `i`-th route's action node (`upstream:`, `respond:` or `redirect:` value).
    pub fn route_action(&self, i: usize) -> Pos {
        self.routes.get(i).map_or((0, 0), |r| r.action)
    }

    /// The `i`-th upstream's entry.
    pub fn upstream(&self, i: usize) -> Pos {
        self.upstreams.get(i).map_or((0, 0), |u| u.at)
    }

    /// Endpoint `j` of upstream `i`.
    pub fn endpoint(&self, i: usize, j: usize) -> Pos {
        self.upstreams
            .get(i)
            .and_then(|u| u.endpoints.get(j).copied())
            .unwrap_or((0, 0))
    }

    /// The `tls.ca` value of upstream `i`.
    pub fn upstream_ca(&self, i: usize) -> Pos {
        self.upstreams.get(i).map_or((0, 0), |u| u.ca)
    }

    /// The `tls.cert` value (client certificate) of upstream `i`.
    pub fn upstream_cert(&self, i: usize) -> Pos {
        self.upstreams.get(i).map_or((0, 0), |u| u.cert)
    }
}
