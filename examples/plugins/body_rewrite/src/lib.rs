//! Rewrites bodies: every `from` becomes `to` in request and response bodies (buffered to their end, so a match across chunks is found).
//!
//! Configuration: `{ "from": "hello", "to": "HELLO" }`. Like Envoy plugins that change a body's
//! length, it removes `content-length` in the headers callbacks.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { rule: Rc::new(("hello".into(), "HELLO".into())) })
    });
}}

struct Root {
    rule: Rc<(String, String)>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Some(v) = self
            .get_plugin_configuration()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            let get = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
            if let (Some(from), Some(to)) = (get("from"), get("to")) {
                if from.is_empty() {
                    return false;
                }
                self.rule = Rc::new((from, to));
            }
        }
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Rewrite { rule: self.rule.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Rewrite {
    rule: Rc<(String, String)>,
}

impl Context for Rewrite {}

impl Rewrite {
    fn rewrite(&self, body: &[u8]) -> Vec<u8> {
        String::from_utf8_lossy(body).replace(&self.rule.0, &self.rule.1).into_bytes()
    }
}

impl HttpContext for Rewrite {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.set_http_request_header("content-length", None);
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        if !end {
            return Action::Pause;
        }
        if let Some(body) = self.get_http_request_body(0, size) {
            let new = self.rewrite(&body);
            self.set_http_request_body(0, size, &new);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.set_http_response_header("content-length", None);
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        if !end {
            return Action::Pause;
        }
        if let Some(body) = self.get_http_response_body(0, size) {
            let new = self.rewrite(&body);
            self.set_http_response_body(0, size, &new);
        }
        Action::Continue
    }
}
