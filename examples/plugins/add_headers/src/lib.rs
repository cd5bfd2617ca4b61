//! Adds the headers its configuration names to requests and responses, plus a few from properties.
//!
//! Configuration: `{ "request": { "name": "value" }, "response": { "name": "value" } }`.
//! The request also gets `x-wasm-path`, `x-wasm-method`, `x-wasm-source` and `x-wasm-plugin`
//! from properties, so tests can see what the host answers.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;

type Pairs = Vec<(String, String)>;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { request: Rc::new(Vec::new()), response: Rc::new(Vec::new()) })
    });
}}

struct Root {
    request: Rc<Pairs>,
    response: Rc<Pairs>,
}

fn pairs(v: Option<&serde_json::Value>) -> Pairs {
    v.and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            return true;
        };
        let Ok(config) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            log::error("add_headers: configuration is not JSON");
            return false;
        };
        self.request = Rc::new(pairs(config.get("request")));
        self.response = Rc::new(pairs(config.get("response")));
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AddHeaders {
            request: self.request.clone(),
            response: self.response.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

mod log {
    pub fn error(msg: &str) {
        let _ = proxy_wasm::hostcalls::log(proxy_wasm::types::LogLevel::Error, msg);
    }
}

struct AddHeaders {
    request: Rc<Pairs>,
    response: Rc<Pairs>,
}

impl Context for AddHeaders {}

fn text(v: Option<Vec<u8>>) -> String {
    v.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

impl HttpContext for AddHeaders {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        for (k, v) in self.request.iter() {
            self.add_http_request_header(k, v);
        }
        let path = text(self.get_property(vec!["request", "path"]));
        let method = text(self.get_property(vec!["request", "method"]));
        let source = text(self.get_property(vec!["source", "address"]));
        let plugin = text(self.get_property(vec!["plugin_name"]));
        self.set_http_request_header("x-wasm-path", Some(&path));
        self.set_http_request_header("x-wasm-method", Some(&method));
        self.set_http_request_header("x-wasm-source", Some(&source));
        self.set_http_request_header("x-wasm-plugin", Some(&plugin));
        if let Some(p) = self.get_http_request_header(":path") {
            self.set_http_request_header("x-wasm-pseudo-path", Some(&p));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        for (k, v) in self.response.iter() {
            self.add_http_response_header(k, v);
        }
        Action::Continue
    }
}
