//! Denies requests that carry a header: answers 403 with a body and a header of its own.
//!
//! Configuration: `{ "header": "x-deny", "status": 403, "body": "denied by plugin\n" }`
//! (these are the defaults). A value given as `"value"` must match too.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: Rc::new(Config::default()) })
    });
}}

struct Config {
    header: String,
    value: Option<String>,
    status: u32,
    body: String,
}

impl Default for Config {
    fn default() -> Self {
        Config { header: "x-deny".into(), value: None, status: 403, body: "denied by plugin\n".into() }
    }
}

struct Root {
    config: Rc<Config>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            return true;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return false;
        };
        let mut c = Config::default();
        if let Some(h) = v.get("header").and_then(|h| h.as_str()) {
            c.header = h.to_owned();
        }
        c.value = v.get("value").and_then(|h| h.as_str()).map(str::to_owned);
        if let Some(s) = v.get("status").and_then(|s| s.as_u64()) {
            c.status = s as u32;
        }
        if let Some(b) = v.get("body").and_then(|b| b.as_str()) {
            c.body = b.to_owned();
        }
        self.config = Rc::new(c);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Deny { config: self.config.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Deny {
    config: Rc<Config>,
}

impl Context for Deny {}

impl HttpContext for Deny {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        let Some(v) = self.get_http_request_header(&self.config.header) else {
            return Action::Continue;
        };
        if self.config.value.as_ref().is_some_and(|want| *want != v) {
            return Action::Continue;
        }
        self.send_http_response(
            self.config.status,
            vec![("x-denied-by", "deny_header"), ("content-type", "text/plain")],
            Some(self.config.body.as_bytes()),
        );
        Action::Pause
    }
}
