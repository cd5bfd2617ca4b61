//! Clients: hyper HTTP/1.1 and h2c (prior knowledge) connections with exact
//! control of headers, a reqwest client, and raw TCP for malformed input.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BoxError;

/// Request body type used by the hyper clients.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body with fixed contents.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// Which protocol a hyper client connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1
    H1,
    /// HTTP/2 over cleartext with prior knowledge (h2c).
    H2c,
}

/// A single client connection (HTTP/1.1 or h2c) to `addr`.
pub enum Conn {
    /// HTTP/1.1 sender.
    H1(hyper::client::conn::http1::SendRequest<Body>),
    /// HTTP/2 sender.
    H2(hyper::client::conn::http2::SendRequest<Body>),
}

impl Conn {
    /// Connect to `addr` with `proto`.
    pub async fn connect(addr: SocketAddr, proto: Proto) -> Result<Conn, BoxError> {
        let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
        let io = TokioIo::new(tcp);
        Ok(match proto {
            Proto::H1 => {
                let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                });
                Conn::H1(sender)
            }
            Proto::H2c => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Conn::H2(sender)
            }
        })
    }

    /// Send a request; returns the response with its body still streaming.
    /// HTTP/1.1 requests should use origin-form URIs plus a Host header; h2
    /// requests need an absolute URI (it becomes :authority).
    pub async fn send(&mut self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        match self {
            Conn::H1(s) => {
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
            Conn::H2(s) => {
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
        }
    }
}

/// Send one request on a fresh connection and collect the whole response
/// (bounded to 30 s).
pub async fn send(
    addr: SocketAddr,
    proto: Proto,
    mut req: Request<Body>,
) -> Result<Response<Bytes>, BoxError> {
    if proto == Proto::H2c {
        *req.version_mut() = Version::HTTP_2;
    }
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut conn = Conn::connect(addr, proto).await?;
        let resp = conn.send(req).await?;
        collect(resp).await
    })
    .await
    .map_err(|_| BoxError::from("request timed out after 30s"))?
}

/// The status of `req` sent over HTTP/1.1 to `addr`; panics when no response arrives.
pub async fn status(addr: SocketAddr, req: Request<Body>) -> u16 {
    send(addr, Proto::H1, req)
        .await
        .expect("response")
        .status()
        .as_u16()
}

/// Collect a streaming response body.
pub async fn collect(resp: Response<Incoming>) -> Result<Response<Bytes>, BoxError> {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok(Response::from_parts(parts, bytes))
}

/// `GET path` over HTTP/1.1 with `Host: ADDR`.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response<Bytes>, BoxError> {
    send(addr, Proto::H1, get_req(addr, path)).await
}

/// `GET path` with a custom Host header over HTTP/1.1.
pub async fn get_host(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<Response<Bytes>, BoxError> {
    let req = Request::get(path)
        .header("host", host)
        .body(empty())
        .expect("request");
    send(addr, Proto::H1, req).await
}

/// A `GET path` request (origin-form, Host = addr).
pub fn get_req(addr: SocketAddr, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", addr.to_string())
        .body(empty())
        .expect("request")
}

/// The response body as a UTF-8 string.
pub fn text(resp: &Response<Bytes>) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

/// A header value as a string ("" if missing).
pub fn header<B>(resp: &Response<B>, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

/// A reqwest client for plain HTTP (no proxy from the environment).
pub fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// What came back on a raw TCP connection.
#[derive(Debug)]
pub struct RawReply {
    /// Everything read until close or timeout.
    pub bytes: Vec<u8>,
    /// Whether the peer closed (EOF or reset) before the timeout.
    pub closed: bool,
}

impl RawReply {
    /// The status code of the first response's status line, if any.
    pub fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        let line = text.lines().next()?;
        let mut parts = line.split(' ');
        let version = parts.next()?;
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }

    /// The reply as lossy text (for assertion messages).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Number of status lines (responses) in the reply.
    pub fn response_count(&self) -> usize {
        self.text().matches("HTTP/1.1 ").count()
    }
}

/// Write `data` to a new connection to `addr`, then read until the peer closes
/// or `limit` elapses.
pub async fn raw_exchange(addr: SocketAddr, data: &[u8], limit: Duration) -> RawReply {
    let mut tcp = crate::within(
        Duration::from_secs(5),
        "raw connect",
        TcpStream::connect(addr),
    )
    .await
    .expect("raw connect");
    // The server may reject early and close while we still write; that is fine.
    let _ = tcp.write_all(data).await;
    read_until_close(&mut tcp, limit).await
}

/// Read from `tcp` until EOF/reset or until `limit` elapses.
pub async fn read_until_close(tcp: &mut TcpStream, limit: Duration) -> RawReply {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => {
                return RawReply {
                    bytes,
                    closed: false,
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes,
                    closed: true,
                }
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}
