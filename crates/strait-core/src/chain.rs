//! A route's filters in order, and the runner of their hooks for one request.
//!
//! The rules, which `docs/request-path.md` states for users:
//! - Request hooks run in chain order; the first filter that replies stops the chain, and the
//!   upstream (or the route's own answer) is not called. That filter is the request's
//!   *denying filter* ([`ChainRun::denied_by`]).
//! - Only filters whose request hook ran are *ran*. Response hooks, body hooks and end hooks
//!   run for those alone, the denying filter included, in reverse order (as the response
//!   travels back out).
//! - A filter's [`FilterState`] lives from its request hook to its end hook; a filter that
//!   never stores anything costs no allocation.

use std::sync::Arc;

use crate::filter::{
    BodyFilter, Decision, Filter, FilterState, Flow, Hooks, Outcome, Reply, RequestCtx, ResponseCtx,
};

/// The filters of one route (listener policies first, then the route's), built once per snapshot.
#[derive(Clone, Default)]
pub struct Chain {
    filters: Arc<[Arc<dyn Filter>]>,
    hooks: Hooks,
}

/// One request's progress through a chain: how many filters ran, which one replied, and
/// each filter's per-request state.
#[derive(Default)]
pub struct ChainRun {
    /// Per-filter state by chain index; grows only when a filter keeps something.
    states: Vec<FilterState>,
    ran: usize,
    denied: Option<usize>,
    reason: Option<&'static str>,
}

// === impl Chain ===

impl Chain {
    /// Builds a chain from filters in execution order.
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        let hooks = filters
            .iter()
            .fold(Hooks::REQUEST, |h, f| h.union(f.hooks()));
        Chain {
            filters: filters.into(),
            hooks,
        }
    }

    /// Whether the chain has no filters (the request path then skips it).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filters in order.
    pub fn filters(&self) -> &[Arc<dyn Filter>] {
        &self.filters
    }

    /// The hooks any filter of the chain wants.
    pub fn hooks(&self) -> Hooks {
        self.hooks
    }

    /// Runs the request hooks in order; returns the first reply, which ends the chain.
    pub async fn on_request(&self, ctx: &mut RequestCtx<'_>, run: &mut ChainRun) -> Option<Reply> {
        for (i, f) in self.filters.iter().enumerate() {
            run.ran = i + 1;
            let mut state = run.take(i);
            let decision = match f.on_request(ctx, &mut state) {
                Flow::Continue => Decision::Continue,
                Flow::Reply(r) => Decision::Reply(r),
                Flow::Wait(fut) => fut.await,
            };
            run.put(i, state);
            if let Decision::Reply(r) = decision {
                run.denied = Some(i);
                run.reason = Some(r.reason);
                return Some(r);
            }
        }
        None
    }

    /// Runs the response hooks of the filters that ran, in reverse order. A reply replaces the
    /// response: its head is put in `ctx.head` (so the remaining hooks see the replacement) and
    /// its body is returned for the caller to send instead.
    pub async fn on_response(
        &self,
        ctx: &mut ResponseCtx<'_>,
        run: &mut ChainRun,
    ) -> Option<bytes::Bytes> {
        if !self.hooks.response {
            return None;
        }
        let mut body = None;
        for i in (0..run.ran).rev() {
            let f = &self.filters[i];
            if !f.hooks().response {
                continue;
            }
            let mut state = run.take(i);
            let decision = match f.on_response(ctx, &mut state) {
                Flow::Continue => Decision::Continue,
                Flow::Reply(r) => Decision::Reply(r),
                Flow::Wait(fut) => fut.await,
            };
            run.put(i, state);
            if let Decision::Reply(r) = decision {
                if run.denied.is_none() {
                    run.denied = Some(i);
                    run.reason = Some(r.reason);
                }
                let (parts, b) = r.response.into_parts();
                *ctx.head = parts;
                ctx.local = true;
                body = Some(b);
            }
        }
        body
    }

    /// Runs the end hooks of the filters that ran, in reverse order.
    pub fn on_end(&self, outcome: &Outcome<'_>, run: &mut ChainRun) {
        if !self.hooks.end {
            return;
        }
        for i in (0..run.ran).rev() {
            let f = &self.filters[i];
            if f.hooks().end {
                let mut state = run.take(i);
                f.on_end(outcome, &mut state);
                run.put(i, state);
            }
        }
    }

    /// The request body transformers of the filters that ran, in chain order.
    pub fn request_body(
        &self,
        ctx: &RequestCtx<'_>,
        run: &mut ChainRun,
    ) -> Vec<Box<dyn BodyFilter>> {
        let mut out = Vec::new();
        if self.hooks.request_body {
            for i in 0..run.ran {
                let f = &self.filters[i];
                if f.hooks().request_body {
                    let mut state = run.take(i);
                    out.extend(f.request_body(ctx, &mut state));
                    run.put(i, state);
                }
            }
        }
        out
    }

    /// The response body transformers of the filters that ran, in reverse order.
    pub fn response_body(
        &self,
        ctx: &ResponseCtx<'_>,
        run: &mut ChainRun,
    ) -> Vec<Box<dyn BodyFilter>> {
        let mut out = Vec::new();
        if self.hooks.response_body {
            for i in (0..run.ran).rev() {
                let f = &self.filters[i];
                if f.hooks().response_body {
                    let mut state = run.take(i);
                    out.extend(f.response_body(ctx, &mut state));
                    run.put(i, state);
                }
            }
        }
        out
    }

    /// The name of the filter that replied, if one did.
    pub fn denied_by(&self, run: &ChainRun) -> Option<&str> {
        run.denied.map(|i| self.filters[i].name())
    }
}

// === impl ChainRun ===

impl ChainRun {
    /// How many filters' request hooks ran.
    pub fn ran(&self) -> usize {
        self.ran
    }

    /// The chain index of the filter that replied, if one did.
    pub fn denied_index(&self) -> Option<usize> {
        self.denied
    }

    /// The reason label of the reply that ended the chain, if one did.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    fn take(&mut self, i: usize) -> FilterState {
        self.states
            .get_mut(i)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn put(&mut self, i: usize, state: FilterState) {
        if state.is_empty() {
            return;
        }
        if self.states.len() <= i {
            self.states.resize_with(i + 1, FilterState::default);
        }
        self.states[i] = state;
    }
}

#[cfg(test)]
mod tests;
