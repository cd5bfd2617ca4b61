//! A real OTLP trace receiver: a tonic gRPC server implementing the collector's `TraceService`
//! (from the `opentelemetry-proto` definitions), or an OTLP/HTTP server decoding protobuf
//! `POST /v1/traces` bodies. It records every span it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_server::{TraceService, TraceServiceServer},
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::codegen::Service;

/// One received span with its resource's `service.name`.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The span.
    pub span: Span,
    /// `service.name` of its resource.
    pub service: String,
}

impl ReceivedSpan {
    /// Trace id as lowercase hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// Span id as lowercase hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// Parent span id as lowercase hex ("" for a root span).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// A string or int attribute, rendered as a string.
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }

    /// Whether this is a server span (kind 2) rather than a client span (kind 3).
    pub fn is_server(&self) -> bool {
        self.span.kind == 2
    }
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    })
}

type Store = Arc<Mutex<Vec<ReceivedSpan>>>;

fn record(store: &Store, req: ExportTraceServiceRequest) {
    let mut s = store.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for span in ss.spans {
                s.push(ReceivedSpan {
                    span,
                    service: service.clone(),
                });
            }
        }
    }
}

#[derive(Clone)]
struct Receiver(Store);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running OTLP receiver; stops (closing its port and connections) on [`OtlpReceiver::stop`] or drop.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Store,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// OTLP/gRPC on a free loopback port.
    pub async fn grpc() -> OtlpReceiver {
        Self::spawn(true).await
    }

    /// OTLP/HTTP (protobuf) on a free loopback port.
    pub async fn http() -> OtlpReceiver {
        Self::spawn(false).await
    }

    async fn spawn(grpc: bool) -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind otlp");
        let addr = listener.local_addr().expect("local_addr");
        let spans: Store = Arc::default();
        let store = spans.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let store = store.clone();
                conns.spawn(async move {
                    if grpc {
                        let svc = TraceServiceServer::new(Receiver(store));
                        let svc = hyper::service::service_fn(move |req| {
                            let mut svc = svc.clone();
                            async move { svc.call(req).await }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    } else {
                        let svc = hyper::service::service_fn(move |req| {
                            let store = store.clone();
                            async move { http_export(store, req).await }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        OtlpReceiver {
            addr,
            spans,
            task: Some(task),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` for the config's `otlp.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// Spans of one trace (hex id).
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id() == trace_id)
            .collect()
    }

    /// Stops serving: the port is closed and open connections are dropped.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn http_export(
    store: Store,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    // Strict as an origin server must be: an absolute-form target (`POST http://host/v1/traces`)
    // is for proxies (RFC 9112 §3.2.1), and strict collectors answer it with 404.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        return Ok(http::Response::builder()
            .status(404)
            .body(Full::new(Bytes::from_static(
                b"absolute-form target refused",
            )))
            .unwrap());
    }
    let ok_path = req.uri().path() == "/v1/traces" && req.method() == http::Method::POST;
    let ct_ok = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let status = match (ok_path && ct_ok, body) {
        (true, Ok(b)) => match ExportTraceServiceRequest::decode(b) {
            Ok(r) => {
                record(&store, r);
                200
            }
            Err(_) => 400,
        },
        _ => 400,
    };
    let resp_body = ExportTraceServiceResponse {
        partial_success: None,
    }
    .encode_to_vec();
    Ok(http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::from(resp_body)))
        .unwrap())
}
