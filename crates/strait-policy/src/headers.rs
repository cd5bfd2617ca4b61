//! The `headers` policy (and a route's `request_headers` / `response_headers`): remove, then set, then add.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use strait_core::{Filter, FilterState, Flow, Hooks, RequestCtx, ResponseCtx};

/// Header edits, already validated and parsed.
#[derive(Clone, Debug, Default)]
pub struct HeaderOps {
    /// Headers removed.
    pub remove: Vec<HeaderName>,
    /// Headers replaced (or inserted).
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Headers appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

/// Edits request headers before forwarding and response headers before answering.
pub struct HeadersFilter {
    name: Arc<str>,
    request: HeaderOps,
    response: HeaderOps,
}

impl HeadersFilter {
    /// A filter called `name` applying `request` and `response` edits.
    pub fn new(name: &str, request: HeaderOps, response: HeaderOps) -> Self {
        HeadersFilter {
            name: Arc::from(name),
            request,
            response,
        }
    }
}

impl Filter for HeadersFilter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "headers"
    }

    fn hooks(&self) -> Hooks {
        Hooks {
            response: !self.response.is_empty(),
            ..Hooks::REQUEST
        }
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        self.request.apply(&mut ctx.head.headers);
        Flow::Continue
    }

    fn on_response<'a>(
        &'a self,
        ctx: &'a mut ResponseCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        self.response.apply(&mut ctx.head.headers);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_then_set_then_add() {
        let ops = HeaderOps {
            remove: vec![HeaderName::from_static("x-a")],
            set: vec![(
                HeaderName::from_static("x-b"),
                HeaderValue::from_static("set"),
            )],
            add: vec![(
                HeaderName::from_static("x-b"),
                HeaderValue::from_static("added"),
            )],
        };
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-b", HeaderValue::from_static("old"));
        ops.apply(&mut h);
        assert!(h.get("x-a").is_none());
        let b: Vec<_> = h.get_all("x-b").iter().collect();
        assert_eq!(b, vec!["set", "added"]);
    }
}
