//! The proxy-wasm ABI's numbers (v0.2.0 and v0.2.1): status codes, map and buffer types, actions, log levels and metric types, as the SDKs define them.

/// A host call's result, as the guest reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The key, property, queue or map entry does not exist.
    NotFound = 1,
    /// An argument is out of range or malformed.
    BadArgument = 2,
    /// The data could not be serialised.
    SerializationFailure = 3,
    /// The data could not be parsed.
    ParseFailure = 4,
    /// A queue exists but holds nothing.
    Empty = 7,
    /// A pointer or length reaches outside the guest's memory.
    InvalidMemoryAccess = 6,
    /// Shared data was changed since the caller read it.
    CasMismatch = 8,
    /// The host failed.
    InternalFailure = 10,
    /// The call is not available in this host or in this phase.
    Unimplemented = 12,
}

impl Status {
    /// As the guest receives it.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Header map types (`proxy_get_header_map_*`).
pub mod map {
    /// The request's headers.
    pub const REQUEST_HEADERS: i32 = 0;
    /// The request's trailers.
    pub const REQUEST_TRAILERS: i32 = 1;
    /// The response's headers.
    pub const RESPONSE_HEADERS: i32 = 2;
    /// The response's trailers.
    pub const RESPONSE_TRAILERS: i32 = 3;
    /// Headers of a `proxy_http_call` response.
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    /// Trailers of a `proxy_http_call` response.
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// Buffer types (`proxy_get_buffer_bytes`).
pub mod buffer {
    /// The request body (the part seen so far).
    pub const REQUEST_BODY: i32 = 0;
    /// The response body (the part seen so far).
    pub const RESPONSE_BODY: i32 = 1;
    /// Body of a `proxy_http_call` response.
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    /// The VM configuration (always empty here).
    pub const VM_CONFIGURATION: i32 = 6;
    /// The plugin configuration (the policy's `config`, as JSON).
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

/// A stream callback's answer.
pub mod action {
    /// Go on.
    pub const CONTINUE: i32 = 0;
    /// Stop here (headers: until resumed; body: buffer this chunk).
    pub const PAUSE: i32 = 1;
}

/// Stream types of `proxy_continue_stream` / `proxy_close_stream` (v0.2.1).
pub mod stream {
    /// The request.
    pub const REQUEST: i32 = 0;
    /// The response.
    pub const RESPONSE: i32 = 1;
}

/// Metric types of `proxy_define_metric`.
pub mod metric {
    /// Only grows.
    pub const COUNTER: i32 = 0;
    /// Goes up and down.
    pub const GAUGE: i32 = 1;
    /// Records values into buckets.
    pub const HISTOGRAM: i32 = 2;
}

/// The export that marks a module's ABI version; the first one found wins.
pub const ABI_MARKERS: [(&str, &str); 2] = [
    ("proxy_abi_version_0_2_1", "0.2.1"),
    ("proxy_abi_version_0_2_0", "0.2.0"),
];

/// WASI error numbers the sandbox answers with.
pub mod errno {
    /// Success.
    pub const SUCCESS: i32 = 0;
    /// Bad file descriptor (anything but stdout and stderr).
    pub const BADF: i32 = 8;
    /// Invalid argument.
    pub const INVAL: i32 = 28;
    /// Out-of-bounds pointer.
    pub const FAULT: i32 = 21;
    /// Denied by the sandbox (files, sockets, ...).
    pub const NOTCAPABLE: i32 = 76;
}
