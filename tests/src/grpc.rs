//! A gRPC echo service (tonic + prost, messages written by hand, no protoc)
//! served over h2c by an in-process hyper server, and a tonic client for it.
//!
//! Methods of `strait.test.Echo`: `Unary` echoes the message; `Stream`
//! answers `count` messages, then ends with OK, or with `DATA_LOSS` in the
//! trailers when the message is "fail".

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::server::{Grpc, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

/// Path of the unary method.
pub const UNARY: &str = "/strait.test.Echo/Unary";
/// Path of the server-streaming method.
pub const STREAM: &str = "/strait.test.Echo/Stream";

/// Request message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// Text to echo.
    #[prost(string, tag = "1")]
    pub message: String,
    /// Number of stream replies.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// Reply message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    /// Echoed text.
    #[prost(string, tag = "1")]
    pub message: String,
    /// Position in the stream (0 for unary).
    #[prost(uint32, tag = "2")]
    pub index: u32,
}

type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

struct UnarySvc;

impl UnaryService<EchoRequest> for UnarySvc {
    type Response = EchoReply;
    type Future = BoxFut<Result<Response<EchoReply>, Status>>;

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let msg = req.into_inner().message;
        Box::pin(async move {
            if msg == "fail" {
                return Err(Status::not_found("no such echo"));
            }
            Ok(Response::new(EchoReply {
                message: msg,
                index: 0,
            }))
        })
    }
}

struct StreamSvc;

impl ServerStreamingService<EchoRequest> for StreamSvc {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = BoxFut<Result<Response<ReplyStream>, Status>>;

    fn call(&mut self, req: Request<EchoRequest>) -> Self::Future {
        let r = req.into_inner();
        Box::pin(async move {
            let fail = r.message == "fail";
            let mut items: Vec<Result<EchoReply, Status>> = (0..r.count)
                .map(|i| {
                    Ok(EchoReply {
                        message: format!("{}-{i}", r.message),
                        index: i,
                    })
                })
                .collect();
            if fail {
                items.push(Err(Status::data_loss("stream ended badly")));
            }
            let s: ReplyStream = Box::pin(futures_util::stream::iter(items));
            Ok(Response::new(s))
        })
    }
}

/// A running gRPC echo upstream that records request headers.
pub struct GrpcUpstream {
    addr: SocketAddr,
    headers: Arc<Mutex<Vec<(String, http::HeaderMap, http::Version)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcUpstream {
    /// Start on a free loopback port (h2c, prior knowledge).
    pub async fn start() -> GrpcUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind grpc");
        let addr = listener.local_addr().expect("local_addr");
        let headers = Arc::new(Mutex::new(Vec::new()));
        let rec = headers.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let rec = rec.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                        rec.lock().unwrap().push((
                            req.uri().path().to_string(),
                            req.headers().clone(),
                            req.version(),
                        ));
                        dispatch(req)
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        GrpcUpstream {
            addr,
            headers,
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// (path, headers, version) of every request received.
    pub fn requests(&self) -> Vec<(String, http::HeaderMap, http::Version)> {
        self.headers.lock().unwrap().clone()
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn dispatch(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    let codec = ProstCodec::<EchoReply, EchoRequest>::default();
    let resp = match req.uri().path() {
        UNARY => Grpc::new(codec).unary(UnarySvc, req).await,
        STREAM => Grpc::new(codec).server_streaming(StreamSvc, req).await,
        _ => Status::unimplemented("no such method").into_http(),
    };
    Ok(resp)
}

/// A tonic client connected (h2c prior knowledge) to `addr`.
pub struct EchoClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl EchoClient {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<EchoClient, tonic::transport::Error> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("valid uri")
            .connect()
            .await?;
        Ok(EchoClient {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// Call `Unary`.
    pub async fn unary(&mut self, message: &str) -> Result<Response<EchoReply>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let req = EchoRequest {
            message: message.into(),
            count: 0,
        };
        self.grpc
            .unary(
                Request::new(req),
                PathAndQuery::from_static(UNARY),
                ProstCodec::<EchoRequest, EchoReply>::default(),
            )
            .await
    }

    /// Call `Stream`.
    pub async fn stream(
        &mut self,
        message: &str,
        count: u32,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let req = EchoRequest {
            message: message.into(),
            count,
        };
        self.grpc
            .server_streaming(
                Request::new(req),
                PathAndQuery::from_static(STREAM),
                ProstCodec::<EchoRequest, EchoReply>::default(),
            )
            .await
    }
}
