//! Asks an auth service (a named upstream) about each request and waits for the answer: a 200 lets the request through with `x-user` copied from the answer, anything else (or no answer) is a 403.
//!
//! Configuration: `{ "upstream": "auth", "path": "/check", "timeout_ms": 1000 }`. The
//! request's `authorization` header is passed on.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: Rc::new(Config::default()) })
    });
}}

struct Config {
    upstream: String,
    path: String,
    timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { upstream: "auth".into(), path: "/check".into(), timeout: Duration::from_secs(1) }
    }
}

struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let mut c = Config::default();
        if let Some(v) = self
            .get_plugin_configuration()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            if let Some(u) = v.get("upstream").and_then(|u| u.as_str()) {
                c.upstream = u.to_owned();
            }
            if let Some(p) = v.get("path").and_then(|p| p.as_str()) {
                c.path = p.to_owned();
            }
            if let Some(t) = v.get("timeout_ms").and_then(|t| t.as_u64()) {
                c.timeout = Duration::from_millis(t);
            }
        }
        self.config = Rc::new(c);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Auth { config: self.config.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Auth {
    config: Rc<Config>,
}

impl HttpContext for Auth {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        let auth = self.get_http_request_header("authorization").unwrap_or_default();
        let c = self.config.clone();
        let headers = vec![
            (":method", "GET"),
            (":path", c.path.as_str()),
            (":authority", c.upstream.as_str()),
            ("authorization", auth.as_str()),
        ];
        match self.dispatch_http_call(&c.upstream, headers, None, vec![], c.timeout) {
            Ok(_) => Action::Pause,
            Err(_) => {
                self.send_http_response(503, vec![], Some(b"auth unavailable\n"));
                Action::Pause
            }
        }
    }
}

impl Context for Auth {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body: usize, _trailers: usize) {
        let status = self.get_http_call_response_header(":status");
        if status.as_deref() == Some("200") {
            if let Some(user) = self.get_http_call_response_header("x-user") {
                self.set_http_request_header("x-user", Some(&user));
            }
            self.resume_http_request();
        } else {
            self.send_http_response(403, vec![("x-denied-by", "auth_callout")], Some(b"forbidden\n"));
        }
    }
}
