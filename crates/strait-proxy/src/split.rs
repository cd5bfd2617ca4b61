//! Route splits at the first step of forwarding: a gray override, else a sticky key, chooses among a route's weighted backends before the smooth weighted round robin.
//!
//! The choice runs after the policy chain, so a `jwt` policy's verified claims are in the
//! request's extensions. It reads the request head in place: header lookups, a cookie scan and
//! a query scan, with no allocation.

use http::{request::Parts, HeaderName, HeaderValue};
use strait_core::split::{key_hash, StickyLayout};
use strait_core::Claims;

/// A route's split settings, upstream names resolved to backend indices.
pub struct Split {
    /// Gray routing rules in written order; the first match wins.
    pub overrides: Box<[Override]>,
    /// The user key assignment is sticky on, if any.
    pub sticky: Option<StickyKey>,
}

/// A gray routing rule.
pub struct Override {
    /// Where the value is read.
    pub on: OverrideOn,
    /// The exact value required; `None` = presence is enough.
    pub value: Option<Box<[u8]>>,
    /// The backend forced (index into the route's backends).
    pub backend: usize,
}

/// Where an override reads its value.
pub enum OverrideOn {
    /// A request header; any of its values may match.
    Header(HeaderName),
    /// A cookie.
    Cookie(Box<str>),
    /// A query parameter, compared as sent (not percent-decoded).
    Query(Box<str>),
}

/// Where a sticky key is read.
pub enum StickyKey {
    /// A request header's first value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Box<str>),
    /// A verified JWT claim.
    Claim(Box<str>),
    /// The client's IP address.
    ClientIp,
}

/// How a backend was chosen (the access log's `split` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// A gray override matched.
    Override,
    /// The sticky key's hash.
    Sticky,
    /// The weighted round robin.
    Weights,
}

impl Choice {
    /// The access log value.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Override => "override",
            Choice::Sticky => "sticky",
            Choice::Weights => "weights",
        }
    }
}

// === impl Split ===

impl Split {
    /// The backend an override or the sticky key (placed on the backends' `layout`) chooses;
    /// `None` leaves the choice to the weights (no rule matched, the key is absent or empty).
    pub fn choose(
        &self,
        layout: &StickyLayout,
        head: &Parts,
        client_ip: &HeaderValue,
    ) -> Option<(usize, Choice)> {
        if let Some(o) = self.overrides.iter().find(|o| o.matches(head)) {
            return Some((o.backend, Choice::Override));
        }
        let key = self.sticky.as_ref()?.read(head, client_ip)?;
        if key.is_empty() {
            // An empty key would pin every such request to one backend.
            return None;
        }
        layout.pick(key_hash(key)).map(|i| (i, Choice::Sticky))
    }
}

// === impl Override ===

impl Override {
    fn matches(&self, head: &Parts) -> bool {
        let want = self.value.as_deref();
        let is = |v: &[u8]| want.is_none_or(|w| w == v);
        match &self.on {
            OverrideOn::Header(name) => head.headers.get_all(name).iter().any(|v| is(v.as_bytes())),
            OverrideOn::Cookie(name) => {
                strait_core::cookie::cookie(&head.headers, name).is_some_and(is)
            }
            OverrideOn::Query(name) => query_param(head.uri.query(), name).is_some_and(is),
        }
    }
}

// === impl StickyKey ===

impl StickyKey {
    fn read<'a>(&self, head: &'a Parts, client_ip: &'a HeaderValue) -> Option<&'a [u8]> {
        match self {
            StickyKey::Header(name) => head.headers.get(name).map(HeaderValue::as_bytes),
            StickyKey::Cookie(name) => strait_core::cookie::cookie(&head.headers, name),
            StickyKey::Claim(name) => head
                .extensions
                .get::<Claims>()
                .and_then(|c| c.get(name))
                .map(str::as_bytes),
            StickyKey::ClientIp => Some(client_ip.as_bytes()),
        }
    }
}

/// The first value of query parameter `name` (`name` alone counts as an empty value).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a [u8]> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v.as_bytes())
    })
}

#[cfg(test)]
mod tests;
