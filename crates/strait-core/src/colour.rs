//! Traffic colouring: the colour a `colour` policy gives a request (kept in its extensions), the fixed hash that derives a colour from a user key, and the precomputed endpoint subsets the balancer picks within.
//!
//! The policy decides the colour; forwarding looks up the upstream's subset for the colour's
//! label and value (built once per snapshot) and balances within it, falling back as the
//! policy says when no endpoint of the subset is available.

use std::sync::Arc;

use crate::balance::{hash_key, Balancer, Policy};

/// What happens when a colour's subset has no available endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColourFallback {
    /// Any endpoint of the upstream (`any`).
    Any,
    /// 503, reason `colour_unavailable` (`reject`).
    Reject,
}

/// How a coloured request was served (the `result` label of `strait_colour_requests_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColourResult {
    /// An endpoint of the colour's subset.
    Matched,
    /// Another endpoint of the upstream, by `fallback: any`.
    Fallback,
    /// Refused with 503 by `fallback: reject`.
    Rejected,
    /// The upstream's endpoints carry no such label: the colour is only passed on (a gateway
    /// in front of another one that honours it).
    Passed,
}

impl ColourResult {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ColourResult::Matched => "matched",
            ColourResult::Fallback => "fallback",
            ColourResult::Rejected => "rejected",
            ColourResult::Passed => "passed",
        }
    }
}

/// Counts coloured requests by colour index and result; counters are made at compile time so
/// a request only increments one.
pub trait ColourCounters: Send + Sync {
    /// Counts one request of colour `index` (into [`ColourSet::values`]) served as `result`.
    fn count(&self, index: usize, result: ColourResult);
}

/// A `colour` policy's compiled settings, shared by every request it colours.
pub struct ColourSet {
    /// Policy name (metric label, access log `policy` on a rejection).
    pub policy: Arc<str>,
    /// The endpoint label whose value is the colour.
    pub label: Arc<str>,
    /// The known colours; anything else counts as no colour.
    pub values: Box<[Arc<str>]>,
    /// When the subset has no available endpoint.
    pub fallback: ColourFallback,
    /// `strait_colour_requests_total` counters.
    pub counters: Box<dyn ColourCounters>,
}

impl ColourSet {
    /// The index of `value` among the known colours.
    pub fn index_of(&self, value: &[u8]) -> Option<usize> {
        self.values.iter().position(|v| v.as_bytes() == value)
    }
}

/// The colour of one request, stored in its extensions by the `colour` policy.
#[derive(Clone)]
pub struct Colour {
    /// The policy's settings.
    pub set: Arc<ColourSet>,
    /// Index of the colour in `set.values`.
    pub index: usize,
}

impl Colour {
    /// The colour's value.
    pub fn value(&self) -> &Arc<str> {
        &self.set.values[self.index]
    }

    /// Counts how the request was served.
    pub fn count(&self, result: ColourResult) {
        self.set.counters.count(self.index, result);
    }
}

impl std::fmt::Debug for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Colour({}={})", self.set.label, self.value())
    }
}

/// The colour index for a user key among `n` colours: a fixed hash (the same on every
/// instance and build), so a call chain through several gateways keeps one colour per user.
pub fn derive_index(key: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    // Multiply-shift maps the 64-bit hash onto 0..n without modulo bias.
    ((u128::from(hash_key(key)) * n as u128) >> 64) as usize
}

/// The endpoints of an upstream that carry one label value, with their own balancer.
pub struct Subset {
    /// Label name.
    pub label: Arc<str>,
    /// Label value.
    pub value: Arc<str>,
    /// Indices into the upstream's endpoints, in configuration order.
    pub members: Box<[u32]>,
    /// Balances among the members (index into `members`).
    pub balancer: Balancer,
}

impl Subset {
    /// A subset of `members` with their `weights` and `keys` (as the upstream's balancer takes them).
    pub fn new(
        label: Arc<str>,
        value: Arc<str>,
        policy: Policy,
        members: Vec<u32>,
        weights: &[u32],
        keys: &[&str],
    ) -> Self {
        Subset {
            label,
            value,
            members: members.into(),
            balancer: Balancer::new(policy, weights, keys),
        }
    }

    /// Picks a member endpoint (its index in the upstream) that is `available`; `None` when
    /// no member is.
    pub fn pick(
        &self,
        available: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> u32,
        hash: Option<u64>,
    ) -> Option<usize> {
        let m = &self.members;
        self.balancer
            .pick(
                m.len(),
                |j| available(m[j] as usize),
                |j| load(m[j] as usize),
                hash,
            )
            .map(|j| m[j] as usize)
    }
}

/// Whether any endpoint (any subset) carries `label`, whatever its value.
pub fn uses_label(subsets: &[Subset], label: &str) -> bool {
    subsets.iter().any(|s| *s.label == *label)
}

/// The subset of `subsets` for `label` = `value`, if any endpoint carries it.
pub fn find<'a>(subsets: &'a [Subset], label: &str, value: &str) -> Option<&'a Subset> {
    subsets
        .iter()
        .find(|s| *s.value == *value && *s.label == *label)
}

/// Groups endpoints by each label they carry: one subset per distinct (label, value), members
/// in endpoint order. `labels[i]` are endpoint `i`'s labels.
pub fn group(labels: &[&[(String, String)]]) -> Vec<(String, String, Vec<u32>)> {
    let mut out: Vec<(String, String, Vec<u32>)> = Vec::new();
    for (i, list) in labels.iter().enumerate() {
        for (k, v) in list.iter() {
            match out.iter_mut().find(|(l, x, _)| l == k && x == v) {
                Some((_, _, members)) => members.push(i as u32),
                None => out.push((k.clone(), v.clone(), vec![i as u32])),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
