//! The `colour` policy: takes a request's colour from a header (or derives it from a user key with a fixed hash and sets the header), and leaves it in the request's extensions so forwarding picks among the endpoints whose label matches.
//!
//! Colours are bounded by the policy's `values`: any other header value counts as absent, so
//! a client cannot make up subsets or metric series.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use prometheus::IntCounter;
use strait_core::colour::{derive_index, ColourCounters, ColourResult, ColourSet};
use strait_core::{Claims, Colour, Consumer, Filter, FilterState, Flow, RequestCtx};

/// The user key a missing colour is derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColourKey {
    /// A request header's (first) value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Box<str>),
    /// A claim of the verified JWT.
    Claim(Box<str>),
    /// The consumer an authentication policy identified.
    Consumer,
    /// The client's IP address.
    ClientIp,
}

/// `strait_colour_requests_total` series of one policy, made at compile time: one counter per
/// colour and result, so counting is one atomic add.
pub struct ColourMetrics(pub Vec<[IntCounter; 4]>);

impl ColourCounters for ColourMetrics {
    fn count(&self, index: usize, result: ColourResult) {
        let r = match result {
            ColourResult::Matched => 0,
            ColourResult::Fallback => 1,
            ColourResult::Rejected => 2,
            ColourResult::Passed => 3,
        };
        if let Some(c) = self.0.get(index) {
            c[r].inc();
        }
    }
}

/// A compiled `colour` policy.
pub struct ColourFilter {
    set: Arc<ColourSet>,
    header: HeaderName,
    derive: Option<ColourKey>,
    /// Each colour as a header value, made once so setting a derived colour copies nothing.
    header_values: Box<[HeaderValue]>,
}

impl ColourFilter {
    /// A filter colouring by `header`, deriving a missing colour from `derive` when set.
    pub fn new(
        set: Arc<ColourSet>,
        header: HeaderName,
        derive: Option<ColourKey>,
    ) -> Result<Self, String> {
        let header_values = set
            .values
            .iter()
            .map(|v| HeaderValue::from_str(v).map_err(|e| format!("colour {v}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(ColourFilter {
            set,
            header,
            derive,
            header_values,
        })
    }

    /// The colour index derived from the request's key, if it has one.
    fn derived(&self, ctx: &RequestCtx<'_>) -> Option<usize> {
        let n = self.set.values.len();
        let head = &*ctx.head;
        let index = |bytes: &[u8]| derive_index(bytes, n);
        match self.derive.as_ref()? {
            ColourKey::Header(h) => head.headers.get(h).map(|v| index(v.as_bytes())),
            ColourKey::Cookie(c) => strait_core::cookie::cookie(&head.headers, c).map(index),
            ColourKey::Claim(c) => head
                .extensions
                .get::<Claims>()
                .and_then(|claims| claims.get(c))
                .map(|v| index(v.as_bytes())),
            ColourKey::Consumer => head
                .extensions
                .get::<Consumer>()
                .map(|c| index(c.0.as_bytes())),
            ColourKey::ClientIp => Some(match strait_core::net::canonical(ctx.client.ip()) {
                IpAddr::V4(v4) => index(&v4.octets()),
                IpAddr::V6(v6) => index(&v6.octets()),
            }),
        }
    }
}

impl Filter for ColourFilter {
    fn name(&self) -> &str {
        &self.set.policy
    }

    fn kind(&self) -> &'static str {
        "colour"
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        let sent = ctx
            .head
            .headers
            .get(&self.header)
            .and_then(|v| self.set.index_of(v.as_bytes()));
        let index = match sent {
            Some(i) => i,
            None => match self.derived(ctx) {
                Some(i) => {
                    // The next hop (another Strait, or a service calling on) sees the colour
                    // chosen here and keeps the whole call chain in it.
                    ctx.head
                        .headers
                        .insert(self.header.clone(), self.header_values[i].clone());
                    i
                }
                None => return Flow::Continue,
            },
        };
        ctx.head.extensions.insert(Colour {
            set: self.set.clone(),
            index,
        });
        Flow::Continue
    }
}

#[cfg(test)]
mod tests;
