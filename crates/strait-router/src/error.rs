//! The one error type of route compilation: which route failed and why.

/// Why [`Router::build`](crate::Router::build) rejected a route table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A host pattern is malformed.
    #[error("route {index}: bad host pattern {pattern:?}: {reason}")]
    BadHost {
        /// Index of the route in the specs.
        index: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path template is malformed.
    #[error("route {index}: bad path template {template:?}: {reason}")]
    BadTemplate {
        /// Index of the route in the specs.
        index: usize,
        /// The template as written.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A regular expression (path, header or query) does not compile.
    #[error("route {index}: bad regex for {field}: {pattern:?}")]
    BadRegex {
        /// Index of the route in the specs.
        index: usize,
        /// Where the regex is used: `path`, `header NAME` or `query NAME`.
        field: String,
        /// The regex as written.
        pattern: String,
        /// The regex compiler's explanation.
        #[source]
        source: regex::Error,
    },
    /// More routes than the index can address.
    #[error("too many routes: {count} (at most {max})")]
    TooManyRoutes {
        /// How many routes were given.
        count: usize,
        /// The most the router accepts.
        max: usize,
    },
}

// === impl RouterError ===

impl RouterError {
    /// The index of the offending route, when one route is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::BadHost { index, .. }
            | Self::BadTemplate { index, .. }
            | Self::BadRegex { index, .. } => Some(*index),
            Self::TooManyRoutes { .. } => None,
        }
    }
}
