//! Endpoint selection for one attempt: among all of the upstream's endpoints, or, for a coloured request, among its colour's subset first, with the policy's fallback when none of the subset is available.

use std::sync::Arc;

use strait_core::colour::{self, ColourFallback, ColourResult, Subset};
use strait_core::{Colour, ProxyError};

use crate::upstream::{Endpoint, Upstream};

/// A coloured request's selection state; counts how it was served
/// (`strait_colour_requests_total`) once, when forwarding ends.
pub(super) struct Coloured<'u> {
    colour: Colour,
    /// The upstream's endpoints with the colour's label value (`None`: no endpoint has it).
    subset: Option<&'u Subset>,
    /// No endpoint of the upstream carries the label: every endpoint serves, the colour is
    /// only passed on.
    passed: bool,
    /// Whether the subset had no available endpoint and the whole upstream is used.
    pub fell_back: bool,
    rejected: bool,
}

impl<'u> Coloured<'u> {
    /// The selection state of a request of `colour` towards `upstream`.
    pub fn new(colour: Colour, upstream: &'u Upstream) -> Self {
        let subset = upstream.subset(&colour.set.label, colour.value());
        let passed = !colour::uses_label(&upstream.subsets, &colour.set.label);
        Coloured {
            colour,
            subset,
            passed,
            fell_back: false,
            rejected: false,
        }
    }

    /// The colour.
    pub fn colour(&self) -> &Colour {
        &self.colour
    }
}

impl Drop for Coloured<'_> {
    fn drop(&mut self) {
        self.colour.count(if self.passed {
            ColourResult::Passed
        } else if self.rejected {
            ColourResult::Rejected
        } else if self.fell_back {
            ColourResult::Fallback
        } else {
            ColourResult::Matched
        });
    }
}

/// Picks the next attempt's endpoint: one not `tried` yet, or (when `again`, a retry policy's
/// later attempt) any available one. A coloured request stays in its subset while the subset
/// has one; then `fallback: any` widens to the whole upstream and `fallback: reject` refuses
/// the request (if no attempt was made yet; otherwise forwarding ends with the last failure).
pub(super) fn pick<'u>(
    upstream: &'u Upstream,
    coloured: Option<&mut Coloured<'u>>,
    hash: Option<u64>,
    now_ms: u64,
    tried: impl Fn(usize) -> bool,
    again: bool,
    first: bool,
) -> Result<Option<(usize, &'u Arc<Endpoint>)>, ProxyError> {
    let all = || {
        upstream.pick(hash, now_ms, |i| !tried(i)).or_else(|| {
            again
                .then(|| upstream.pick(hash, now_ms, |_| true))
                .flatten()
        })
    };
    let Some(c) = coloured.filter(|c| !c.fell_back && !c.passed) else {
        return Ok(all());
    };
    if let Some(s) = c.subset {
        let picked = upstream
            .pick_in(s, hash, now_ms, |i| !tried(i))
            .or_else(|| {
                again
                    .then(|| upstream.pick_in(s, hash, now_ms, |_| true))
                    .flatten()
            });
        if picked.is_some() {
            return Ok(picked);
        }
    }
    match c.colour.set.fallback {
        ColourFallback::Any => {
            c.fell_back = true;
            Ok(all())
        }
        ColourFallback::Reject if first => {
            c.rejected = true;
            Err(ProxyError::ColourUnavailable {
                upstream: upstream.name.to_string(),
                label: c.colour.set.label.to_string(),
                colour: c.colour.value().to_string(),
            })
        }
        ColourFallback::Reject => Ok(None),
    }
}
