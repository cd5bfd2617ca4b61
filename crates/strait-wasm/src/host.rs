//! The host side of one plugin instance: what a callback may see and change (the request or response head, a body, trailers, a call-out's answer), the guest memory helpers every host call uses, and the resource limiter.
//!
//! The filter moves the request or response head into [`HostState`] before a callback and
//! takes it back after, so host calls edit the real head without copies or locks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use wasmtime::{Caller, Memory, ResourceLimiter, StoreLimits, StoreLimitsBuilder, TypedFunc};

use crate::abi::Status;
use crate::plugin::PluginShared;

pub(crate) mod imports;
pub(crate) mod maps;
pub(crate) mod properties;
pub(crate) mod wasi;

/// A host call's result: a status for the guest, or a trap.
pub(crate) type HostResult = wasmtime::Result<i32>;

/// The request head while a request-phase callback runs.
pub(crate) struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// The response head while a response-phase callback runs.
pub(crate) struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// What a request looked like when it arrived, for properties in every phase.
pub(crate) struct RequestInfo {
    pub method: Method,
    pub uri: Uri,
    pub host: Option<http::HeaderValue>,
    pub client: SocketAddr,
    pub listener: Arc<str>,
    pub route: Arc<str>,
    pub tls: bool,
    pub version: http::Version,
    /// The request headers as forwarded, readable (not writable) in later phases.
    pub headers: HeaderMap,
    /// Status sent to the client, once known (response and log phases).
    pub status: Option<u16>,
}

/// A `proxy_http_call` waiting to be sent.
pub(crate) struct PendingCall {
    pub token: u32,
    pub upstream: String,
    pub request: http::Request<Bytes>,
    pub timeout: Duration,
}

/// The answer to a call-out, while `proxy_on_http_call_response` runs.
pub(crate) struct CallResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Per-request data visible to host calls.
#[derive(Default)]
pub(crate) struct Stream {
    pub request: Option<RequestHead>,
    pub response: Option<ResponseHead>,
    pub request_trailers: Option<HeaderMap>,
    pub response_trailers: Option<HeaderMap>,
    /// The body buffer being shown, with its buffer type.
    pub body: Option<(i32, Bytes)>,
    pub info: Option<RequestInfo>,
    pub call_response: Option<CallResponse>,
    /// Properties the plugin set on this request.
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request has a body (judged before the plugin ran: it may remove the framing).
    pub request_body: bool,
}

/// The store's data: the plugin's shared parts and the current request's.
pub(crate) struct HostState {
    pub plugin: Arc<PluginShared>,
    limits: StoreLimits,
    /// Set when a memory growth was refused (so the trap is reported as the memory cap).
    pub memory_exceeded: bool,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    pub stream: Box<Stream>,
    /// A local response the plugin asked for.
    pub local: Option<http::Response<Bytes>>,
    /// The plugin resumed the stream (`proxy_continue_stream`).
    pub resumed: bool,
    pub calls: Vec<PendingCall>,
    next_token: u32,
    /// Tick period the plugin set; zero = none.
    pub tick_period: Duration,
    /// Queues the plugin registered (so the root instance is told about items).
    pub queues_registered: bool,
    /// `proc_exit` code, when the guest called it.
    pub exit: Option<i32>,
    /// Partial lines written to stdout and stderr.
    pub out: [Vec<u8>; 2],
}

impl HostState {
    /// Fresh state for an instance of `plugin`, its memory capped at `memory_limit` bytes.
    pub fn new(plugin: Arc<PluginShared>, memory_limit: usize) -> Self {
        HostState {
            plugin,
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .table_elements(100_000)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            memory_exceeded: false,
            memory: None,
            alloc: None,
            stream: Box::default(),
            local: None,
            resumed: false,
            calls: Vec::new(),
            next_token: 1,
            tick_period: Duration::ZERO,
            queues_registered: false,
            exit: None,
            out: [Vec::new(), Vec::new()],
        }
    }

    /// A token for a new call-out.
    pub fn token(&mut self) -> u32 {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        t
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.limits.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_exceeded = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

// === guest memory ===

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>, Status> {
    let mem = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(len).ok_or(Status::InvalidMemoryAccess)?;
    mem.data(&*caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Runs `f` on the guest's bytes at `a` and `b` (pointer, length) and the host state together,
/// without copying them out: a header edit needs both, once per host call.
pub(crate) fn with_guest<R>(
    caller: &mut Caller<'_, HostState>,
    a: (i32, i32),
    b: (i32, i32),
    f: impl FnOnce(&[u8], &[u8], &mut HostState) -> R,
) -> Result<R, Status> {
    let mem = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let (data, state) = mem.data_and_store_mut(&mut *caller);
    let slice = |(ptr, len): (i32, i32)| {
        let start = ptr as u32 as usize;
        let end = start.checked_add(len as u32 as usize)?;
        data.get(start..end)
    };
    match (slice(a), slice(b)) {
        (Some(x), Some(y)) => Ok(f(x, y, state)),
        _ => Err(Status::InvalidMemoryAccess),
    }
}

/// Writes `bytes` at `ptr` in guest memory.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    bytes: &[u8],
) -> Result<(), Status> {
    let mem = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data_mut(&mut *caller)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?
        .copy_from_slice(bytes);
    Ok(())
}

/// `InvalidMemoryAccess` unless `len` bytes at `ptr` lie in guest memory.
pub(crate) fn in_bounds(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: usize,
) -> Result<(), Status> {
    let mem = caller.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let end = (ptr as u32 as usize)
        .checked_add(len)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > mem.data_size(&*caller) {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    v: u32,
) -> Result<(), Status> {
    write(caller, ptr, &v.to_le_bytes())
}

/// Hands `data` to the guest: allocated with its allocator, pointer and length written at
/// `ret_ptr` and `ret_len` (null and 0 for empty data, which every SDK reads as empty).
pub(crate) fn give(
    caller: &mut Caller<'_, HostState>,
    data: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    // The return slots are checked before the guest allocates anything.
    if let Err(s) = write_u32(caller, ret_ptr, 0).and_then(|_| write_u32(caller, ret_len, 0)) {
        return Ok(s.code());
    }
    if data.is_empty() {
        return Ok(Status::Ok.code());
    }
    // Taken out for the call and put back (a clone would copy its registered type).
    let Some(alloc) = caller.data_mut().alloc.take() else {
        return Ok(Status::InternalFailure.code());
    };
    let ptr = alloc.call(&mut *caller, data.len() as i32);
    caller.data_mut().alloc = Some(alloc);
    let ptr = ptr?;
    if ptr == 0 {
        return Ok(Status::InternalFailure.code());
    }
    let r = write(caller, ptr, data)
        .and_then(|_| write_u32(caller, ret_ptr, ptr as u32))
        .and_then(|_| write_u32(caller, ret_len, data.len() as u32));
    Ok(status(r))
}

/// `Ok` as its status, or the error's.
pub(crate) fn status(r: Result<(), Status>) -> i32 {
    match r {
        Ok(()) => Status::Ok.code(),
        Err(s) => s.code(),
    }
}

/// Reads a UTF-8 string from guest memory.
pub(crate) fn read_str(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<String, Status> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}
