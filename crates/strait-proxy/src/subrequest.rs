//! The upstream client policies use for their own requests (JWKS fetches, forward auth, plugin call-outs, mirrors): one named upstream's balancing, pools, TLS and passive health, with the whole response read under a size cap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Limited};
use strait_core::{clock, filter::BoxFuture, ProxyError, UpstreamClient};
use strait_observe::Metrics;

use crate::{
    body::ProxyBody,
    forward::attempt::{self, AttemptError},
    pool::{Outcome, PooledBody, Pools},
    upstream::Upstream,
};

/// [`UpstreamClient`] for one compiled upstream.
pub struct Client {
    upstream: Arc<Upstream>,
    pools: Arc<Pools>,
    metrics: Arc<Metrics>,
}

impl Client {
    /// A client for `upstream`, sharing the data plane's pools.
    pub fn new(upstream: Arc<Upstream>, pools: Arc<Pools>, metrics: Arc<Metrics>) -> Self {
        Client {
            upstream,
            pools,
            metrics,
        }
    }
}

impl UpstreamClient for Client {
    fn upstream(&self) -> &str {
        &self.upstream.name
    }

    fn send(
        &self,
        req: Request<Bytes>,
        timeout: Duration,
        max_body: usize,
    ) -> BoxFuture<'static, Result<Response<Bytes>, ProxyError>> {
        self.run(req, timeout, ReadBody::Keep(max_body))
    }

    fn send_discarding(
        &self,
        req: Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<StatusCode, ProxyError>> {
        let sent = self.run(req, timeout, ReadBody::Discard);
        Box::pin(async move { sent.await.map(|r| r.status()) })
    }
}

/// What becomes of a response body.
#[derive(Clone, Copy)]
enum ReadBody {
    /// Kept, up to this many bytes (more is an error).
    Keep(usize),
    /// Read to the end and dropped chunk by chunk, so the connection can be pooled again.
    Discard,
}

impl Client {
    fn run(
        &self,
        req: Request<Bytes>,
        timeout: Duration,
        read: ReadBody,
    ) -> BoxFuture<'static, Result<Response<Bytes>, ProxyError>> {
        let (upstream, pools, metrics) = (
            self.upstream.clone(),
            self.pools.clone(),
            self.metrics.clone(),
        );
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let name = upstream.name.to_string();
            match tokio::time::timeout_at(
                deadline,
                exchange(&upstream, &pools, &metrics, req, deadline, read),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(ProxyError::Timeout {
                    upstream: name,
                    endpoint: String::new(),
                    after: timeout,
                }),
            }
        })
    }
}

async fn exchange(
    upstream: &Upstream,
    pools: &Pools,
    metrics: &Metrics,
    req: Request<Bytes>,
    deadline: tokio::time::Instant,
    read: ReadBody,
) -> Result<Response<Bytes>, ProxyError> {
    let (head, body) = req.into_parts();
    let h2 = upstream.protocol.is_h2();
    let mut tried = Vec::new();
    // Like forwarding without a retry policy: a request that was never sent may go to a
    // second endpoint.
    for _ in 0..2 {
        let now_ms = clock::millis(Instant::now());
        let Some((index, endpoint)) = upstream.pick(None, now_ms, |i| !tried.contains(&i)) else {
            break;
        };
        tried.push(index);
        let mut one = head.clone_head();
        prepare(&mut one, upstream, endpoint, h2)?;
        let request = Request::from_parts(one, ProxyBody::Full(Some(body.clone())));
        let pool = pools.of(upstream, endpoint, metrics);
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = attempt::send(pool, upstream, endpoint, request, timeout).await;
        pool.count(match &result {
            Ok(_) => Outcome::Response,
            Err(e) => match e.error {
                ProxyError::Connect { .. } | ProxyError::Overloaded { .. } => Outcome::ConnectError,
                ProxyError::Timeout { .. } => Outcome::Timeout,
                _ => Outcome::Error,
            },
        });
        match result {
            Ok(sent) => {
                let (parts, body) = sent.response.into_parts();
                let ret = sent.conn.map(|c| (c, upstream.pool.max_idle_per_endpoint));
                let body = PooledBody::new(body, upstream.timeouts.idle, ret);
                let failed = |e: &dyn std::fmt::Display| ProxyError::Upstream {
                    upstream: upstream.name.to_string(),
                    endpoint: endpoint.address.to_string(),
                    source: format!("response body: {e}").into(),
                };
                let bytes = match read {
                    ReadBody::Keep(max_body) => Limited::new(body, max_body)
                        .collect()
                        .await
                        .map_err(|e| failed(&e))?
                        .to_bytes(),
                    ReadBody::Discard => {
                        let mut body = body;
                        while let Some(frame) = body.frame().await {
                            frame.map_err(|e| failed(&e))?;
                        }
                        Bytes::new()
                    }
                };
                return Ok(Response::from_parts(parts, bytes));
            }
            Err(AttemptError { error, request }) => {
                if request.is_some() && error.never_sent() {
                    continue;
                }
                return Err(error);
            }
        }
    }
    Err(ProxyError::NoHealthyEndpoint(upstream.name.to_string()))
}

/// Version, Host or authority for the endpoint.
fn prepare(
    head: &mut http::request::Parts,
    upstream: &Upstream,
    endpoint: &crate::upstream::Endpoint,
    h2: bool,
) -> Result<(), ProxyError> {
    let bad = |e: &dyn std::fmt::Display| ProxyError::Upstream {
        upstream: upstream.name.to_string(),
        endpoint: endpoint.address.to_string(),
        source: e.to_string().into(),
    };
    let pq = head
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    if h2 {
        head.version = Version::HTTP_2;
        let authority = head
            .headers
            .remove(header::HOST)
            .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| endpoint.authority.clone());
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(if upstream.tls.is_some() {
            http::uri::Scheme::HTTPS
        } else {
            http::uri::Scheme::HTTP
        });
        parts.authority = Some(authority);
        parts.path_and_query = Some(pq);
        head.uri = http::Uri::from_parts(parts).map_err(|e| bad(&e))?;
    } else {
        head.version = Version::HTTP_11;
        if !head.headers.contains_key(header::HOST) {
            let host = HeaderValue::from_str(endpoint.authority.as_str()).map_err(|e| bad(&e))?;
            head.headers.insert(header::HOST, host);
        }
        head.uri = http::Uri::from(pq);
    }
    Ok(())
}

/// A copy of a request head (extensions are not copied).
trait CloneHead {
    fn clone_head(&self) -> Self;
}

impl CloneHead for http::request::Parts {
    fn clone_head(&self) -> Self {
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req.into_parts().0
    }
}
