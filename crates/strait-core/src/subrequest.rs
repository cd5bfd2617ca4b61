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

    /// Sends `req` like [`UpstreamClient::send`] but reads the response body to its end
    /// without keeping it (any size: a fire-and-forget copy such as a mirror's), all within
    /// `timeout`; returns the status.
    ///
    /// The default keeps at most 64 KiB and fails on a larger body; clients that can drain a
    /// body override it.
    fn send_discarding(
        &self,
        req: http::Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<http::StatusCode, ProxyError>> {
        let sent = self.send(req, timeout, 64 * 1024);
        Box::pin(async move { sent.await.map(|r| r.status()) })
    }
}
