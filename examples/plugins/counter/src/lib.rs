//! Counts requests in shared data (compare-and-swap, so every instance adds to one count), ticks, and exports metrics.
//!
//! Each response gets `x-count` (this request's number) and `x-ticks` (ticks so far). The root
//! context ticks every `tick_ms` milliseconds (configuration, default 50) and counts its ticks
//! in shared data. Metrics: counter `counter_requests`, gauge `counter_last`, histogram
//! `counter_path_len`.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::time::Duration;

const COUNT: &str = "counter.requests";
const TICKS: &str = "counter.ticks";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { metrics: None }) });
}}

#[derive(Clone, Copy)]
struct Metrics {
    requests: u32,
    last: u32,
    path_len: u32,
}

struct Root {
    metrics: Option<Metrics>,
}

/// Adds one to `key`, retrying when another instance wrote in between.
fn bump(key: &str) -> u64 {
    loop {
        let (value, cas) = hostcalls::get_shared_data(key).unwrap_or((None, None));
        let n = value
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        match hostcalls::set_shared_data(key, Some(n.to_string().as_bytes()), cas) {
            Ok(()) => return n,
            Err(Status::CasMismatch) => continue,
            Err(_) => return 0,
        }
    }
}

fn read(key: &str) -> u64 {
    hostcalls::get_shared_data(key)
        .ok()
        .and_then(|(v, _)| v)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let tick_ms = self
            .get_plugin_configuration()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("tick_ms").and_then(|t| t.as_u64()))
            .unwrap_or(50);
        self.set_tick_period(Duration::from_millis(tick_ms));
        self.metrics = Some(Metrics {
            requests: hostcalls::define_metric(MetricType::Counter, "counter_requests").unwrap(),
            last: hostcalls::define_metric(MetricType::Gauge, "counter_last").unwrap(),
            path_len: hostcalls::define_metric(MetricType::Histogram, "counter_path_len").unwrap(),
        });
        true
    }

    fn on_tick(&mut self) {
        bump(TICKS);
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Count { metrics: self.metrics, n: 0 }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Count {
    metrics: Option<Metrics>,
    n: u64,
}

impl Context for Count {}

impl HttpContext for Count {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.n = bump(COUNT);
        if let Some(m) = self.metrics {
            let _ = hostcalls::increment_metric(m.requests, 1);
            let _ = hostcalls::record_metric(m.last, self.n);
            let len = self.get_http_request_header(":path").map_or(0, |p| p.len());
            let _ = hostcalls::record_metric(m.path_len, len as u64);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.set_http_response_header("x-count", Some(&self.n.to_string()));
        self.set_http_response_header("x-ticks", Some(&read(TICKS).to_string()));
        Action::Continue
    }
}
