//! The one filter model: every policy is a `Filter` with request and response hooks, compiled per route into a `Chain`.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use bytes::Bytes;

/// What the request sees of the connection and route while filters run.
pub struct RequestCtx<'a> {
    /// Request head; filters may rewrite headers and URI.
    pub head: &'a mut http::request::Parts,
    /// Downstream peer address.
    pub client: SocketAddr,
    /// Name of the matched route.
    pub route: &'a str,
}

/// A filter's decision about a request.
pub enum Verdict {
    /// Go on to the next filter, then forward.
    Continue,
    /// Answer the client with this response; the upstream is not called.
    Respond(http::Response<Bytes>),
    /// The decision needs I/O (e.g. a remote rate-limit counter); the chain awaits it.
    Wait(Pin<Box<dyn Future<Output = Verdict> + Send>>),
}

/// A policy attached to a route.
pub trait Filter: Send + Sync + 'static {
    /// Short name for logs and metrics (e.g. `request_headers`).
    fn name(&self) -> &'static str;

    /// Called before the request is forwarded.
    fn on_request(&self, _ctx: &mut RequestCtx<'_>) -> Verdict {
        Verdict::Continue
    }

    /// Called with the response head before it is sent to the client.
    fn on_response(&self, _head: &mut http::response::Parts) {}
}

/// The filters of one route, in order; built once per snapshot.
#[derive(Clone, Default)]
pub struct Chain(Arc<[Arc<dyn Filter>]>);

impl Chain {
    /// Builds a chain from filters in execution order.
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        Chain(filters.into())
    }

    /// Whether the chain has no filters (lets the request path skip work).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The filters in order.
    pub fn filters(&self) -> &[Arc<dyn Filter>] {
        &self.0
    }

    /// Runs the request hooks in order; stops at the first filter that answers.
    pub async fn on_request(&self, ctx: &mut RequestCtx<'_>) -> Option<http::Response<Bytes>> {
        for f in self.0.iter() {
            let mut verdict = f.on_request(ctx);
            loop {
                match verdict {
                    Verdict::Continue => break,
                    Verdict::Respond(r) => return Some(r),
                    Verdict::Wait(fut) => verdict = fut.await,
                }
            }
        }
        None
    }

    /// Runs the response hooks in reverse order, as the response travels back out.
    pub fn on_response(&self, head: &mut http::response::Parts) {
        for f in self.0.iter().rev() {
            f.on_response(head);
        }
    }
}
