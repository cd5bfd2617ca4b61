//! The span exporter: a task that drains the bounded queue, batches by size and time, and sends over OTLP gRPC or HTTP/protobuf.
//!
//! The request path only `try_send`s into the queue; when the collector is slow or down the
//! queue fills and finished requests are dropped and counted (`strait_trace_spans_dropped_total`),
//! requests never wait. An export that fails or times out is counted and not retried: the
//! next batch is fresh data. The task also runs the adaptive sampling controller once per second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_client::TraceServiceClient, ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use strait_config::{OtlpProtocol, Tracing};
use tokio::sync::mpsc;

use crate::record::RequestRecord;
use crate::trace::{otlp, sampler, Policy};
use crate::Metrics;

/// How often the task looks at the queue (it never parks on it, so senders never wake it).
const POLL: Duration = Duration::from_millis(20);

/// The queue side the request path writes to; dropping every clone ends the task after a last flush.
#[derive(Clone)]
pub struct ExportQueue {
    tx: mpsc::Sender<Arc<RequestRecord>>,
    /// `strait_trace_spans_dropped_total{reason="queue_full"}`, resolved once.
    queue_full: prometheus::IntCounter,
    flush: Arc<Flush>,
}

/// Shutdown handshake: a request to send partial batches now, and a count of finished passes.
#[derive(Default)]
struct Flush {
    now: std::sync::atomic::AtomicBool,
    passes: std::sync::atomic::AtomicU64,
}

impl ExportQueue {
    /// Sends what is queued without waiting for the batch interval, and waits (at most `limit`)
    /// until that is done; for shutdown.
    pub fn flush_wait(&self, limit: Duration) {
        use std::sync::atomic::Ordering;
        let target = self.flush.passes.load(Ordering::Acquire) + 2;
        self.flush.now.store(true, Ordering::Release);
        let deadline = Instant::now() + limit;
        while self.flush.passes.load(Ordering::Acquire) < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Offers a finished request for export; counts its spans as dropped when the queue is full.
    pub fn offer(&self, rec: Arc<RequestRecord>) {
        let spans = 1 + rec.attempts.len() as u64;
        if self.tx.try_send(rec).is_err() {
            self.queue_full.inc_by(spans);
        }
    }
}

impl ExportQueue {
    /// Whether both feed the same exporter task.
    #[cfg(test)]
    pub(crate) fn same(&self, other: &ExportQueue) -> bool {
        self.tx.same_channel(&other.tx)
    }
}

/// Starts the exporter task on the current Tokio runtime; `policy` is read for the adaptive controller.
pub fn start(
    cfg: &Tracing,
    metrics: Arc<Metrics>,
    policy: Arc<Mutex<Arc<Policy>>>,
) -> Option<ExportQueue> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (tx, rx) = mpsc::channel(cfg.queue);
    let sender = Sender::new(cfg);
    let flush = Arc::new(Flush::default());
    let task = Task {
        flush: flush.clone(),
        rx,
        metrics: metrics.clone(),
        sender,
        service: cfg.service_name.clone(),
        batch_size: cfg.batch.size,
        interval: cfg.batch.interval,
        policy,
    };
    handle.spawn(task.run());
    let queue_full = metrics.spans_dropped.with_label_values(&["queue_full"]);
    Some(ExportQueue {
        tx,
        queue_full,
        flush,
    })
}

struct Task {
    rx: mpsc::Receiver<Arc<RequestRecord>>,
    metrics: Arc<Metrics>,
    sender: Sender,
    service: String,
    batch_size: usize,
    interval: Duration,
    policy: Arc<Mutex<Arc<Policy>>>,
    flush: Arc<Flush>,
}

impl Task {
    async fn run(mut self) {
        let mut batch: Vec<Span> = Vec::with_capacity(self.batch_size);
        let mut last_send = Instant::now();
        let mut last_adapt = Instant::now();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let mut closed = false;
            loop {
                match self.rx.try_recv() {
                    Ok(rec) => {
                        otlp::spans(&rec, &mut batch);
                        if batch.len() >= self.batch_size {
                            self.send(&mut batch).await;
                            last_send = Instant::now();
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let flush = self
                .flush
                .now
                .swap(false, std::sync::atomic::Ordering::AcqRel);
            if !batch.is_empty() && (closed || flush || last_send.elapsed() >= self.interval) {
                self.send(&mut batch).await;
                last_send = Instant::now();
            }
            self.flush
                .passes
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            if last_adapt.elapsed() >= Duration::from_secs(1) {
                self.adapt(last_adapt.elapsed());
                last_adapt = Instant::now();
            }
            if closed {
                return;
            }
        }
    }

    fn adapt(&self, window: Duration) {
        let policy = self.policy.lock().map(|p| p.clone());
        let Ok(p) = policy else { return };
        if p.target_per_second > 0.0 {
            let n = p
                .live
                .decisions
                .swap(0, std::sync::atomic::Ordering::Relaxed);
            let r = sampler::adapt(p.live.ratio(), p.ratio, p.target_per_second, n, window);
            p.live.set(r);
        }
        self.metrics.sampling_ratio.set(p.live.ratio());
    }

    async fn send(&mut self, batch: &mut Vec<Span>) {
        let spans = std::mem::take(batch);
        let n = spans.len() as u64;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![otlp::resource_spans(&self.service, spans)],
        };
        match self.sender.send(req).await {
            Ok(()) => self.metrics.spans_exported.inc_by(n),
            Err(e) => {
                self.metrics
                    .spans_dropped
                    .with_label_values(&["export_failed"])
                    .inc_by(n);
                tracing::debug!(error = %e, spans = n, "span export failed");
            }
        }
    }
}

enum Sender {
    Grpc {
        client: Option<TraceServiceClient<tonic::transport::Channel>>,
        endpoint: String,
        timeout: Duration,
        headers: Vec<(String, String)>,
    },
    Http {
        authority: String,
        uri: http::Uri,
        timeout: Duration,
        headers: Vec<(String, String)>,
    },
}

impl Sender {
    fn new(cfg: &Tracing) -> Sender {
        let o = &cfg.otlp;
        match o.protocol {
            OtlpProtocol::Grpc => Sender::Grpc {
                client: None,
                endpoint: o.endpoint.clone(),
                timeout: o.timeout,
                headers: o.headers.clone(),
            },
            OtlpProtocol::Http => {
                let base: http::Uri = o.endpoint.parse().unwrap_or_default();
                let path = match base.path() {
                    "" | "/" => "/v1/traces",
                    p => p,
                };
                let authority = base.authority().map(|a| a.to_string()).unwrap_or_default();
                // Origin-form (`POST /v1/traces`), with the authority in Host: RFC 9112 §3.2.1
                // keeps absolute-form for requests to proxies, and strict collectors answer 404.
                let uri = http::Uri::builder()
                    .path_and_query(path)
                    .build()
                    .unwrap_or_default();
                Sender::Http {
                    authority,
                    uri,
                    timeout: o.timeout,
                    headers: o.headers.clone(),
                }
            }
        }
    }

    async fn send(&mut self, req: ExportTraceServiceRequest) -> Result<(), String> {
        match self {
            Sender::Grpc {
                client,
                endpoint,
                timeout,
                headers,
            } => {
                if client.is_none() {
                    let ch = tonic::transport::Endpoint::from_shared(endpoint.clone())
                        .map_err(|e| e.to_string())?
                        .connect_timeout(*timeout)
                        .timeout(*timeout)
                        .connect_lazy();
                    *client = Some(TraceServiceClient::new(ch));
                }
                let Some(c) = client.as_mut() else {
                    return Err("no client".into());
                };
                let mut r = tonic::Request::new(req);
                for (k, v) in headers.iter() {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                        v.parse(),
                    ) {
                        r.metadata_mut().insert(k, v);
                    }
                }
                match tokio::time::timeout(*timeout, c.export(r)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(status)) => Err(status.to_string()),
                    Err(_) => Err("export timed out".into()),
                }
            }
            Sender::Http {
                authority,
                uri,
                timeout,
                headers,
            } => {
                let body = Bytes::from(req.encode_to_vec());
                let fut = post(authority, uri, headers, body);
                match tokio::time::timeout(*timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err("export timed out".into()),
                }
            }
        }
    }
}

/// One OTLP/HTTP POST on a fresh connection (batches are at most a few per second).
async fn post(
    authority: &str,
    uri: &http::Uri,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = http::Request::post(uri.clone())
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf");
    for (k, v) in headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("collector answered {status}"))
    }
}
