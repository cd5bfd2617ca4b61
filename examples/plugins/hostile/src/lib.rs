//! A plugin that misbehaves on request, for the sandbox tests: with `x-hostile: loop|memory|trap|oob` it loops forever, allocates without end, panics, or calls host functions with out-of-bounds pointers, in the callback `x-hostile-phase` names (`request_headers` by default, or `request_body`, `response_headers`, `response_body`, `log`, `http_call`). Requests without the header pass untouched but for `x-hostile-seen: 1` on the response.
//!
//! `oob` answers in `x-oob` with the status each bad call returned (6 is `InvalidMemoryAccess`).
//! Configuration `{ "fail_configure": true }` makes `on_configure` trap.

use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::hint::black_box;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

#[link(wasm_import_module = "env")]
extern "C" {
    #[link_name = "proxy_log"]
    fn raw_log(level: u32, ptr: *const u8, len: usize) -> u32;
    #[link_name = "proxy_get_header_map_value"]
    fn raw_get_header(map: u32, key: *const u8, key_len: usize, ret: *mut *mut u8, ret_len: *mut usize) -> u32;
    #[link_name = "proxy_set_shared_data"]
    fn raw_set_shared(key: *const u8, key_len: usize, v: *const u8, v_len: usize, cas: u32) -> u32;
    #[link_name = "proxy_get_property"]
    fn raw_get_property(path: *const u8, path_len: usize, ret: *mut *mut u8, ret_len: *mut usize) -> u32;
    #[link_name = "proxy_get_buffer_bytes"]
    fn raw_get_buffer(ty: u32, start: usize, max: usize, ret: *mut *mut u8, ret_len: *mut usize) -> u32;
    #[link_name = "proxy_replace_header_map_value"]
    fn raw_set_header(map: u32, key: *const u8, key_len: usize, v: *const u8, v_len: usize) -> u32;
    #[link_name = "proxy_remove_header_map_value"]
    fn raw_remove_header(map: u32, key: *const u8, key_len: usize) -> u32;
}

/// An address past any memory a plugin has.
const BAD: usize = 0xFFFF_FF00;

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let fail = self
            .get_plugin_configuration()
            .is_some_and(|b| String::from_utf8_lossy(&b).contains("\"fail_configure\":true"));
        if fail {
            panic!("configured to fail");
        }
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Hostile { mode: String::new(), phase: String::new(), oob: String::new() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Hostile {
    mode: String,
    phase: String,
    oob: String,
}

fn misbehave(mode: &str) -> String {
    match mode {
        "loop" => {
            let mut i: u64 = 0;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Blocks larger than any test's cap: the first growth is refused at once, so the
                // outcome never depends on how fast pages are handed out (on a loaded machine the
                // CPU deadline could otherwise come first).
                hoard.push(black_box(vec![0u8; 64 << 20]));
            }
        }
        "trap" => panic!("hostile plugin trap"),
        "oob" => oob(),
        _ => String::new(),
    }
}

/// Host calls with bad pointers; each status is collected.
fn oob() -> String {
    let bad = BAD as *mut u8;
    let mut ptr: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    let key = b"host";
    let path = b"plugin_name";
    let statuses = unsafe {
        [
            raw_log(2, bad, 100),
            raw_get_header(0, key.as_ptr(), key.len(), BAD as *mut *mut u8, &mut len),
            raw_get_header(0, key.as_ptr(), key.len(), &mut ptr, BAD as *mut usize),
            raw_get_header(0, bad, 1 << 20, &mut ptr, &mut len),
            raw_set_shared(bad, 8, key.as_ptr(), key.len(), 0),
            raw_get_property(path.as_ptr(), path.len(), BAD as *mut *mut u8, &mut len),
            raw_get_buffer(7, 0, 10, BAD as *mut *mut u8, &mut len),
            raw_set_header(0, key.as_ptr(), key.len(), bad, 1 << 20),
            raw_set_header(0, bad, 16, key.as_ptr(), key.len()),
            raw_remove_header(0, bad, 16),
            raw_get_property(bad, 64, &mut ptr, &mut len),
        ]
    };
    statuses.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",")
}

impl Hostile {
    fn at(&mut self, phase: &str) {
        if self.phase == phase {
            let r = misbehave(&self.mode);
            if !r.is_empty() {
                self.oob = r;
            }
        }
    }
}

impl Context for Hostile {
    fn on_http_call_response(&mut self, _t: u32, _h: usize, _b: usize, _tr: usize) {
        self.at("http_call");
        self.resume_http_request();
    }
}

impl HttpContext for Hostile {
    fn on_http_request_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.mode = self.get_http_request_header("x-hostile").unwrap_or_default();
        self.phase = self
            .get_http_request_header("x-hostile-phase")
            .unwrap_or_else(|| "request_headers".into());
        if self.mode.is_empty() {
            return Action::Continue;
        }
        if self.phase == "http_call" {
            let up = self.get_http_request_header("x-hostile-upstream").unwrap_or_default();
            let headers = vec![(":method", "GET"), (":path", "/"), (":authority", "x")];
            if self
                .dispatch_http_call(&up, headers, None, vec![], std::time::Duration::from_secs(1))
                .is_ok()
            {
                return Action::Pause;
            }
        }
        self.at("request_headers");
        Action::Continue
    }

    fn on_http_request_body(&mut self, _size: usize, _end: bool) -> Action {
        self.at("request_body");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _end: bool) -> Action {
        self.at("response_headers");
        // Shows that the response phase ran (in a fresh context, when another request's
        // failure replaced the instance this one started in).
        self.set_http_response_header("x-hostile-seen", Some("1"));
        if !self.oob.is_empty() {
            let oob = self.oob.clone();
            self.set_http_response_header("x-oob", Some(&oob));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, _size: usize, _end: bool) -> Action {
        self.at("response_body");
        Action::Continue
    }

    fn on_log(&mut self) {
        self.at("log");
    }
}
