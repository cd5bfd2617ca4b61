//! Requests a policy sends itself (key sets, auth decisions, plugin call-outs, mirrors): through Strait's own upstream client, to a named upstream, with its balancing, pools, TLS and health.

use std::time::Duration;

use bytes::Bytes;

use crate::{filter::BoxFuture, ProxyError};

/// A client for one named upstream, handed to policies when they are compiled.
pub trait UpstreamClient: Send + Sync + 'static {
    /// The upstream's name.
    fn upstream(&self) -> &str;

    /// Sends `req` to an endpoint of the upstream and reads the whole response, at most
    /// `max_body` bytes of body, all within `timeout`.
    ///
    /// The URI is origin-form (`/path?query`); a missing `Host` is set to the endpoint's
    /// authority. Fails with [`ProxyError::Timeout`], a connect or upstream error, or
    /// [`ProxyError::Upstream`] when the body is larger than `max_body`.
    fn send(
        &self,
        req: http::Request<Bytes>,
        timeout: Duration,
        max_body: usize,
    ) -> BoxFuture<'static, Result<http::Response<Bytes>, ProxyError>>;
}
