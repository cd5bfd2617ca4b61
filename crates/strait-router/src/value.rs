//! Header and query value conditions, matched over every value a name carries.

use crate::ValueMatch;
use regex::bytes::Regex;

/// A compiled [`ValueMatch`].
#[derive(Debug, Clone)]
pub(crate) enum ValueMatcher {
    Exact(Box<[u8]>),
    Regex(Regex),
    Present(bool),
}

// === impl ValueMatcher ===

impl ValueMatcher {
    /// Compiles a value condition; regexes must match a whole value.
    pub(crate) fn compile(value: &ValueMatch) -> Result<Self, regex::Error> {
        Ok(match value {
            ValueMatch::Exact(s) => Self::Exact(s.as_bytes().into()),
            ValueMatch::Regex(r) => Self::Regex(Regex::new(&crate::path::full_match(r)?)?),
            ValueMatch::Present(p) => Self::Present(*p),
        })
    }

    /// Whether the values a name carries satisfy the condition: any value matching is enough,
    /// and `Present(false)` holds only when there is none.
    pub(crate) fn matches<'a>(&self, mut values: impl Iterator<Item = &'a [u8]>) -> bool {
        match self {
            Self::Present(want) => values.next().is_some() == *want,
            Self::Exact(e) => values.any(|v| v == &**e),
            Self::Regex(r) => values.any(|v| r.is_match(v)),
        }
    }
}

/// The raw values of query parameter `name`; a parameter without `=` has the empty value.
pub(crate) fn query_values<'a>(
    query: Option<&'a str>,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then_some(v.as_bytes())
        })
}

/// Whether `implied` holding guarantees that `by` holds for the same name.
pub(crate) fn implies(implied: &ValueMatch, by: &ValueMatch) -> bool {
    implied == by
        || matches!(
            (by, implied),
            (
                ValueMatch::Present(true),
                ValueMatch::Exact(_) | ValueMatch::Regex(_)
            )
        )
}
