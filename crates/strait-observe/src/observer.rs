//! The observer of one snapshot (access log sink, tracer) and the runtime that builds it, reusing writers and exporters across reloads.
//!
//! Reload semantics: sampling, propagation and the access log's field list apply to the next
//! request; a changed access log path opens a new writer; a changed exporter (endpoint,
//! protocol, headers, timeout, service name, queue or batch) starts a new exporter task. Old
//! writers and exporters flush and stop once the last snapshot using them is gone.

use std::sync::{Arc, Mutex};

use strait_config::{Observability, Tracing};

use crate::access_log::AccessLogSink;
use crate::record::RequestRecord;
use crate::trace::sampler::Keep;
use crate::trace::{export, sampler, Policy, Tracer};
use crate::Metrics;

/// What the request path uses to log and trace; `None` in the snapshot when neither is configured.
pub struct Observer {
    access_log: Option<Arc<AccessLogSink>>,
    tracer: Option<Tracer>,
}

impl Observer {
    /// Tracing, when configured.
    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_ref()
    }

    /// Completes a request: byte counters, the end sampling decision, the access log line.
    pub fn finish(&self, mut rec: RequestRecord) {
        rec.duration = rec.start.elapsed();
        if let Some(s) = &rec.stats {
            s.add_bytes(rec.bytes_in, rec.bytes_out);
        }
        let keep = match (&self.tracer, &rec.trace) {
            (Some(t), Some(c)) => sampler::end(
                c.sampled,
                rec.status,
                rec.duration,
                t.policy.always_on_error,
                t.policy.latency,
            ),
            _ => None,
        };
        if let (Some(Keep::Error | Keep::Slow), Some(s), Some(t)) = (keep, &rec.stats, &rec.trace) {
            s.offer_exemplar(&rec.method, rec.status, rec.head.as_secs_f64(), t.trace_id);
        }
        let export = keep.is_some();
        if !export && self.access_log.is_none() {
            return;
        }
        let rec = Arc::new(rec);
        if export {
            if let Some(t) = &self.tracer {
                t.queue.offer(rec.clone());
            }
        }
        if let Some(l) = &self.access_log {
            l.send(rec);
        }
    }
}

/// Builds observers for snapshots; owns the writers and exporters they share.
pub struct ObserveRuntime {
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    log: Option<Arc<AccessLogSink>>,
    exporter: Option<Exporter>,
}

struct Exporter {
    config: Tracing,
    queue: export::ExportQueue,
    policy: Arc<Mutex<Arc<Policy>>>,
}

impl ObserveRuntime {
    /// A runtime recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ObserveRuntime {
            metrics,
            state: Mutex::new(State::default()),
        }
    }

    /// The observer for `cfg`, or `None` when neither access log nor tracing is on.
    pub fn build(&self, cfg: &Observability) -> Result<Option<Arc<Observer>>, String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let access_log = match &cfg.access_log {
            None => None,
            Some(a) => match &st.log {
                Some(sink) if sink.target == a.path => {
                    sink.set_fields(&a.fields);
                    Some(sink.clone())
                }
                _ => {
                    let sink = AccessLogSink::start(
                        a.path.clone(),
                        &a.fields,
                        a.buffer,
                        self.metrics.access_log_dropped.clone(),
                    )
                    .map_err(|e| {
                        format!(
                            "observability.access_log.path: cannot open {:?}: {e}",
                            a.path
                        )
                    })?;
                    Some(Arc::new(sink))
                }
            },
        };
        st.log = access_log.clone();
        let tracer = match &cfg.tracing {
            None => {
                st.exporter = None;
                None
            }
            Some(t) => {
                let policy = Arc::new(Policy::new(&t.sampling));
                self.metrics.sampling_ratio.set(t.sampling.ratio);
                let reuse = st
                    .exporter
                    .as_ref()
                    .is_some_and(|e| same_exporter(&e.config, t));
                if reuse {
                    if let Some(e) = &st.exporter {
                        if let Ok(mut p) = e.policy.lock() {
                            *p = policy.clone();
                        }
                    }
                } else {
                    let shared = Arc::new(Mutex::new(policy.clone()));
                    st.exporter =
                        export::start(t, self.metrics.clone(), shared.clone()).map(|queue| {
                            Exporter {
                                config: t.clone(),
                                queue,
                                policy: shared,
                            }
                        });
                }
                st.exporter.as_ref().map(|e| Tracer {
                    policy,
                    w3c: t.propagation.w3c,
                    b3: t.propagation.b3,
                    queue: e.queue.clone(),
                })
            }
        };
        if access_log.is_none() && tracer.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(Observer { access_log, tracer })))
    }

    /// Waits briefly for the access log writer and the span exporter to send what is queued
    /// (before the process exits); bounded by 500 ms plus the OTLP timeout.
    pub fn flush_wait(&self) {
        let (log, exporter) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let e = st
                .exporter
                .as_ref()
                .map(|e| (e.queue.clone(), e.config.otlp.timeout));
            (st.log.clone(), e)
        };
        let limit = std::time::Duration::from_millis(500);
        if let Some((queue, timeout)) = exporter {
            queue.flush_wait(limit + timeout);
        }
        if let Some(l) = log {
            l.flush_wait(limit);
        }
    }

    /// Reopens the access log file (SIGUSR1).
    pub fn reopen_logs(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = &st.log {
            l.reopen();
        }
    }
}

fn same_exporter(a: &Tracing, b: &Tracing) -> bool {
    a.otlp == b.otlp && a.service_name == b.service_name && a.queue == b.queue && a.batch == b.batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use strait_config::{
        AccessLog, AccessLogField, Batch, LogTarget, Otlp, OtlpProtocol, Propagation, Sampling,
    };

    fn config(
        log: &std::path::Path,
        fields: &[AccessLogField],
        ratio: f64,
        port: u16,
    ) -> Observability {
        Observability {
            access_log: Some(AccessLog {
                path: LogTarget::File(log.to_path_buf()),
                fields: fields.to_vec(),
                buffer: 16,
            }),
            tracing: Some(Tracing {
                otlp: Otlp {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    protocol: OtlpProtocol::Grpc,
                    timeout: Duration::from_secs(1),
                    headers: Vec::new(),
                },
                service_name: "s".into(),
                sampling: Sampling {
                    ratio,
                    parent_based: true,
                    always_on_error: true,
                    latency_threshold: None,
                    target_per_second: 0.0,
                },
                propagation: Propagation {
                    w3c: true,
                    b3: false,
                },
                queue: 8,
                batch: Batch {
                    size: 8,
                    interval: Duration::from_secs(1),
                },
            }),
        }
    }

    #[tokio::test]
    async fn reloads_reuse_writer_and_exporter_unless_their_settings_change() {
        let dir = std::env::temp_dir().join(format!("strait-observer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("a.log");
        let rt = ObserveRuntime::new(Arc::new(Metrics::new()));
        let a = rt
            .build(&config(&log, &AccessLogField::ALL, 0.1, 1))
            .unwrap()
            .unwrap();
        // Sampling and fields change: same writer, same exporter, new ratio.
        let b = rt
            .build(&config(&log, &[AccessLogField::Status], 1.0, 1))
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(
            a.access_log.as_ref().unwrap(),
            b.access_log.as_ref().unwrap()
        ));
        let (ta, tb) = (a.tracer().unwrap(), b.tracer().unwrap());
        assert!(ta.queue.same(&tb.queue));
        assert_eq!(tb.policy.live.ratio(), 1.0);
        // The collector and the log path change: new exporter and writer.
        let c = rt
            .build(&config(
                &dir.join("b.log"),
                &[AccessLogField::Status],
                1.0,
                2,
            ))
            .unwrap()
            .unwrap();
        assert!(!Arc::ptr_eq(
            b.access_log.as_ref().unwrap(),
            c.access_log.as_ref().unwrap()
        ));
        assert!(!tb.queue.same(&c.tracer().unwrap().queue));
        // Nothing configured: no observer at all.
        assert!(rt.build(&Observability::default()).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
