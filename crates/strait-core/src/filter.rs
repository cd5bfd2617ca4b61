//! The one filter model: every policy is a [`Filter`] with an async request hook over borrowed context and its own per-request state, a response hook, an end-of-request hook and optional body hooks.
//!
//! A filter decides synchronously when it can ([`Flow::Continue`], [`Flow::Reply`]) and returns
//! [`Flow::Wait`] with a future that borrows the request and its state when it must wait for
//! I/O (a key fetch, a remote counter), so it can edit the request once the answer is in. The
//! [`crate::Chain`] runs the hooks; see its docs for the order and which hooks run.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use crate::error::{ErrorKind, Side};

/// A boxed, sendable future borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a request hook sees: the request head (editable) and where it came from.
pub struct RequestCtx<'a> {
    /// Request head; filters may rewrite headers and the URI, and keep values for later
    /// filters in `head.extensions` (e.g. the consumer an auth filter identified).
    pub head: &'a mut http::request::Parts,
    /// The client's address: the peer's, or the one the listener's trusted proxies vouch for
    /// (`X-Forwarded-For`, PROXY protocol).
    pub client: SocketAddr,
    /// Listener name.
    pub listener: &'a str,
    /// Name of the matched route.
    pub route: &'a str,
    /// Whether the downstream connection is TLS.
    pub tls: bool,
    /// The client certificate the TLS handshake verified (mutual TLS), if any.
    pub peer: Option<&'a crate::PeerCert>,
}

/// What a response hook sees: the response head (editable) and the request it answers.
pub struct ResponseCtx<'a> {
    /// Response head.
    pub head: &'a mut http::response::Parts,
    /// Request method.
    pub method: &'a Method,
    /// Request target as forwarded (after normalisation and filters).
    pub uri: &'a Uri,
    /// Name of the matched route.
    pub route: &'a str,
    /// Upstream that answered, if one did.
    pub upstream: Option<&'a str>,
    /// True when Strait made the response itself (an error or a filter's reply).
    pub local: bool,
}

/// How a request ended, as the end-of-request hook sees it.
#[derive(Clone, Debug, Default)]
pub struct Outcome<'a> {
    /// Status sent to the client.
    pub status: u16,
    /// The failure, if the request failed.
    pub error: Option<(ErrorKind, Side)>,
    /// Attempts sent towards upstream endpoints (0 when answered locally).
    pub attempts: u32,
    /// From the request head to the end of the response body.
    pub duration: Duration,
    /// Upstream of the last attempt.
    pub upstream: Option<&'a str>,
    /// Endpoint of the last attempt.
    pub endpoint: Option<&'a str>,
    /// The filter that answered in place of the upstream, if any.
    pub denied_by: Option<&'a str>,
    /// Response body bytes sent (when the body was observed to its end).
    pub bytes_out: u64,
}

/// A response a filter sends in place of the upstream's (a denial, a preflight answer, a redirect).
#[derive(Debug)]
pub struct Reply {
    /// The response.
    pub response: http::Response<Bytes>,
    /// Why, as a short bounded label (`strait_policy_denials_total{reason}`), e.g. `missing_token`.
    pub reason: &'static str,
}

impl Reply {
    /// A plain-text reply with `status`, `body` and a `reason` label.
    pub fn text(status: StatusCode, body: &'static str, reason: &'static str) -> Self {
        let mut response = http::Response::new(Bytes::from_static(body.as_bytes()));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Reply { response, reason }
    }
}

/// The result of a hook that had to wait.
#[derive(Debug)]
pub enum Decision {
    /// Go on.
    Continue,
    /// Answer with this response.
    Reply(Reply),
}

/// A hook's decision: now, or after a future resolves.
pub enum Flow<'a> {
    /// Go on to the next filter.
    Continue,
    /// Answer with this response; later filters and the upstream are not called.
    Reply(Reply),
    /// Decide after this future, which may borrow the request and the filter's state.
    Wait(BoxFuture<'a, Decision>),
}

impl<'a> Flow<'a> {
    /// Waits for `fut` (boxing it; only hooks that really wait pay for the allocation).
    pub fn wait(fut: impl Future<Output = Decision> + Send + 'a) -> Self {
        Flow::Wait(Box::pin(fut))
    }
}

/// Which hooks beyond the request hook a filter wants; the chain skips the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hooks {
    /// [`Filter::on_response`].
    pub response: bool,
    /// [`Filter::on_end`] (the chain's state then lives until the response body ends).
    pub end: bool,
    /// [`Filter::request_body`].
    pub request_body: bool,
    /// [`Filter::response_body`].
    pub response_body: bool,
}

impl Hooks {
    /// Only the request hook.
    pub const REQUEST: Hooks = Hooks {
        response: false,
        end: false,
        request_body: false,
        response_body: false,
    };

    /// Every hook a filter in `self` or `other` wants.
    pub fn union(self, other: Hooks) -> Hooks {
        Hooks {
            response: self.response || other.response,
            end: self.end || other.end,
            request_body: self.request_body || other.request_body,
            response_body: self.response_body || other.response_body,
        }
    }
}

/// A filter's own per-request state, kept between its hooks; empty (and free) until used.
#[derive(Default)]
pub struct FilterState(Option<Box<dyn Any + Send>>);

impl FilterState {
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The stored value, if it is a `T`.
    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.0.as_ref()?.downcast_ref()
    }

    /// The stored value mutably, if it is a `T`.
    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.0.as_mut()?.downcast_mut()
    }

    /// The stored `T`, storing `init()` first when there is none (or another type).
    pub fn get_or_insert_with<T: Any + Send>(&mut self, init: impl FnOnce() -> T) -> &mut T {
        if !self.0.as_ref().is_some_and(|b| b.is::<T>()) {
            self.0 = Some(Box::new(init()));
        }
        self.0
            .as_mut()
            .and_then(|b| b.downcast_mut())
            .expect("stored just above")
    }

    /// Stores `value`, replacing anything stored.
    pub fn set<T: Any + Send>(&mut self, value: T) {
        self.0 = Some(Box::new(value));
    }

    /// Takes the stored value out, if it is a `T`.
    pub fn take<T: Any + Send>(&mut self) -> Option<T> {
        match self.0.take()?.downcast::<T>() {
            Ok(b) => Some(*b),
            Err(other) => {
                self.0 = Some(other);
                None
            }
        }
    }
}

/// What a body filter does with a chunk of data.
#[derive(Debug)]
pub enum BodyFlow {
    /// Pass these bytes on (the chunk as given, changed, or what the filter held so far).
    Pass(Bytes),
    /// Keep the chunk; the filter passes it (or a replacement) later, at the latest with the end.
    Hold,
    /// Stop the stream: the request fails (or the response is cut), counted under this reason.
    Abort(&'static str),
}

/// A stream transformer a filter attaches to one request's or response's body.
pub trait BodyFilter: Send {
    /// Called with each data chunk; `end` is true for the last one (possibly empty).
    fn on_data(&mut self, data: Bytes, end: bool) -> BodyFlow;

    /// Called with the trailers, if the body has any.
    fn on_trailers(&mut self, _trailers: &mut HeaderMap) {}

    /// True for a filter that only looks: it passes every chunk on unchanged at once (a tee,
    /// such as the `mirror` policy's). When every body filter of a request only looks, the
    /// request keeps its framing (`Content-Length`), and a body that has already ended is
    /// shown to the filters as one empty last chunk instead of being streamed through them.
    fn observes_only(&self) -> bool {
        false
    }
}

/// A policy attached to routes: compiled once per snapshot, shared by every request.
pub trait Filter: Send + Sync + 'static {
    /// The policy's name: the denying policy in metrics, access logs and spans.
    fn name(&self) -> &str;

    /// The policy kind (`headers`, `jwt`, ...).
    fn kind(&self) -> &'static str;

    /// The hooks beyond `on_request` this filter needs.
    fn hooks(&self) -> Hooks {
        Hooks::REQUEST
    }

    /// Called before the request is forwarded (or answered by the route).
    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a>;

    /// Called with the response head before it is sent (when [`Hooks::response`]); a
    /// [`Flow::Reply`] replaces the response.
    fn on_response<'a>(
        &'a self,
        _ctx: &'a mut ResponseCtx<'_>,
        _state: &'a mut FilterState,
    ) -> Flow<'a> {
        Flow::Continue
    }

    /// Called once the response body has ended or the client went away (when [`Hooks::end`]).
    fn on_end(&self, _outcome: &Outcome<'_>, _state: &mut FilterState) {}

    /// A transformer for the request body (when [`Hooks::request_body`]), made after the
    /// request hooks ran; `None` leaves the body alone.
    fn request_body(
        &self,
        _ctx: &RequestCtx<'_>,
        _state: &mut FilterState,
    ) -> Option<Box<dyn BodyFilter>> {
        None
    }

    /// A transformer for the response body (when [`Hooks::response_body`]), made after the
    /// response hooks ran.
    fn response_body(
        &self,
        _ctx: &ResponseCtx<'_>,
        _state: &mut FilterState,
    ) -> Option<Box<dyn BodyFilter>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_state_is_typed_and_free_until_used() {
        let mut s = FilterState::default();
        assert!(s.is_empty());
        *s.get_or_insert_with(|| 1u32) += 1;
        assert_eq!(s.get::<u32>(), Some(&2));
        assert_eq!(s.get::<String>(), None);
        assert_eq!(s.take::<String>(), None);
        assert_eq!(s.take::<u32>(), Some(2));
        assert!(s.is_empty());
    }
}
