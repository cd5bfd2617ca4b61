//! The `env` imports of the proxy-wasm ABI: logging, time, ticks, buffers, header maps, properties, shared data and queues, stream control, local responses, HTTP call-outs and metrics.
//!
//! Every pointer is checked against guest memory: a bad one yields `InvalidMemoryAccess`,
//! never success. Calls that exist in the ABI but not in this host (gRPC, foreign functions)
//! are linked by [`super::wasi::stubs`] and answer `Unimplemented`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use wasmtime::{Caller, Linker};

use super::maps::{self, decode_pairs, encode_pairs, Edit};
use super::{
    give, in_bounds, read, read_str, status, with_guest, write, write_u32, HostResult, HostState,
    PendingCall,
};
use crate::abi::{buffer, Status};

type C<'a> = Caller<'a, HostState>;

fn ok() -> HostResult {
    Ok(Status::Ok.code())
}

fn st(s: Status) -> HostResult {
    Ok(s.code())
}

/// Links every implemented `env` function into `linker`.
pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link_basics(linker)?;
    link_maps(linker)?;
    link_shared(linker)?;
    link_stream(linker)?;
    link_metrics(linker)?;
    Ok(())
}

fn link_basics(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: C, level: i32, ptr: i32, len: i32| -> HostResult {
            let msg = match read(&mut c, ptr, len) {
                Ok(m) => m,
                Err(s) => return st(s),
            };
            crate::log::plugin_log(&c.data().plugin.name, level, &String::from_utf8_lossy(&msg));
            ok()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: C, ret: i32| -> HostResult {
            Ok(status(write_u32(
                &mut c,
                ret,
                crate::log::current_level() as u32,
            )))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C, ret: i32| -> HostResult {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            Ok(status(write(&mut c, ret, &now.to_le_bytes())))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C, ms: i32| -> HostResult {
            c.data_mut().tick_period = Duration::from_millis(ms as u32 as u64);
            ok()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C, ty: i32, start: i32, max: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let data: Bytes = {
                let h = c.data();
                let whole: &[u8] = match ty {
                    buffer::PLUGIN_CONFIGURATION => &h.plugin.config,
                    buffer::VM_CONFIGURATION => &[],
                    buffer::HTTP_CALL_RESPONSE_BODY => match &h.stream.call_response {
                        Some(r) => &r.body,
                        None => return st(Status::NotFound),
                    },
                    buffer::REQUEST_BODY | buffer::RESPONSE_BODY => match &h.stream.body {
                        Some((t, b)) if *t == ty => b,
                        _ => return st(Status::NotFound),
                    },
                    _ => return st(Status::Unimplemented),
                };
                let start = start as u32 as usize;
                if start > whole.len() {
                    return st(Status::BadArgument);
                }
                let end = whole.len().min(start.saturating_add(max as u32 as usize));
                Bytes::copy_from_slice(&whole[start..end])
            };
            // An empty range writes nothing, as on Envoy: AssemblyScript's SDK passes the
            // configuration's size where the length slot belongs and reads its own slots
            // back, so zeroing them would make it decode a null buffer. Every other SDK sets
            // its slots to null and 0 before the call.
            if data.is_empty() {
                return Ok(status(
                    in_bounds(&mut c, ret_ptr, 4).and_then(|_| in_bounds(&mut c, ret_len, 4)),
                ));
            }
            give(&mut c, &data, ret_ptr, ret_len)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: C, ty: i32, ret_len: i32, ret_flags: i32| -> HostResult {
            let len = match (ty, &c.data().stream.body) {
                (buffer::PLUGIN_CONFIGURATION, _) => c.data().plugin.config.len(),
                (_, Some((t, b))) if *t == ty => b.len(),
                _ => return st(Status::NotFound),
            };
            Ok(status(
                write_u32(&mut c, ret_len, len as u32)
                    .and_then(|_| write_u32(&mut c, ret_flags, 0)),
            ))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C, ty: i32, start: i32, size: i32, ptr: i32, len: i32| -> HostResult {
            let data = match read(&mut c, ptr, len) {
                Ok(d) => d,
                Err(s) => return st(s),
            };
            let Some((t, body)) = c.data_mut().stream.body.as_mut() else {
                return st(Status::NotFound);
            };
            if *t != ty {
                return st(Status::NotFound);
            }
            let (start, size) = (start as u32 as usize, size as u32 as usize);
            if start > body.len() {
                return st(Status::BadArgument);
            }
            let end = body.len().min(start.saturating_add(size));
            let mut next = BytesMut::with_capacity(body.len() - (end - start) + data.len());
            next.extend_from_slice(&body[..start]);
            next.extend_from_slice(&data);
            next.extend_from_slice(&body[end..]);
            *body = next.freeze();
            ok()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C, ptr: i32, len: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            match with_guest(&mut c, (ptr, len), (0, 0), |p, _, h| {
                super::properties::get(h, p)
            }) {
                Ok(Some(v)) => give(&mut c, &v, ret_ptr, ret_len),
                Ok(None) => st(Status::NotFound),
                Err(s) => st(s),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C, ptr: i32, len: i32, vptr: i32, vlen: i32| -> HostResult {
            let (path, value) = match (read(&mut c, ptr, len), read(&mut c, vptr, vlen)) {
                (Ok(p), Ok(v)) => (p, v),
                (Err(s), _) | (_, Err(s)) => return st(s),
            };
            let props = &mut c.data_mut().stream.properties;
            props.retain(|(k, _)| *k != path);
            // Bounded: a plugin cannot grow a request's state without limit.
            if props.len() >= 64 {
                return st(Status::InternalFailure);
            }
            props.push((path, value));
            ok()
        },
    )?;
    Ok(())
}

fn link_maps(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C, ty: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let pairs = match maps::pairs(&c.data().stream, ty) {
                Ok(p) => p,
                Err(s) => return st(s),
            };
            let data = encode_pairs(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            give(&mut c, &data, ret_ptr, ret_len)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: C, ty: i32, ret: i32| -> HostResult {
            let n = match maps::pairs(&c.data().stream, ty) {
                Ok(p) => p.len(),
                Err(s) => return st(s),
            };
            Ok(status(write_u32(&mut c, ret, n as u32)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C, ty: i32, ptr: i32, len: i32| -> HostResult {
            let data = match read(&mut c, ptr, len) {
                Ok(d) => d,
                Err(s) => return st(s),
            };
            let Some(pairs) = decode_pairs(&data) else {
                return st(Status::ParseFailure);
            };
            st(maps::set_pairs(&mut c.data_mut().stream, ty, &pairs))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C, ty: i32, kptr: i32, klen: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            match with_guest(&mut c, (kptr, klen), (0, 0), |k, _, h| {
                maps::get(&h.stream, ty, k)
            }) {
                Ok(Ok(Some(v))) => give(&mut c, &v, ret_ptr, ret_len),
                Ok(Ok(None)) => st(Status::NotFound),
                Ok(Err(s)) | Err(s) => st(s),
            }
        },
    )?;
    for (name, how) in [
        ("proxy_replace_header_map_value", Edit::Replace),
        ("proxy_add_header_map_value", Edit::Add),
    ] {
        l.func_wrap(
            "env",
            name,
            move |mut c: C, ty: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> HostResult {
                match with_guest(&mut c, (kptr, klen), (vptr, vlen), |k, v, h| {
                    maps::edit(&mut h.stream, ty, k, v, how)
                }) {
                    Ok(s) | Err(s) => st(s),
                }
            },
        )?;
    }
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C, ty: i32, kptr: i32, klen: i32| -> HostResult {
            match with_guest(&mut c, (kptr, klen), (0, 0), |k, _, h| {
                maps::edit(&mut h.stream, ty, k, &[], Edit::Remove)
            }) {
                Ok(s) | Err(s) => st(s),
            }
        },
    )?;
    Ok(())
}

fn link_shared(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C, kptr: i32, klen: i32, ret_ptr: i32, ret_len: i32, ret_cas: i32| -> HostResult {
            let key = match read(&mut c, kptr, klen) {
                Ok(k) => k,
                Err(s) => return st(s),
            };
            let Some((value, cas)) = c.data().plugin.runtime.shared_data.get(&key) else {
                return st(Status::NotFound);
            };
            if let Err(s) = write_u32(&mut c, ret_cas, cas) {
                return st(s);
            }
            give(&mut c, &value, ret_ptr, ret_len)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> HostResult {
            let (k, v) = match (read(&mut c, kptr, klen), read(&mut c, vptr, vlen)) {
                (Ok(k), Ok(v)) => (k, v),
                (Err(s), _) | (_, Err(s)) => return st(s),
            };
            st(c.data().plugin.runtime.shared_data.set(&k, &v, cas as u32))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: C, nptr: i32, nlen: i32, ret: i32| -> HostResult {
            let name = match read_str(&mut c, nptr, nlen) {
                Ok(n) => n,
                Err(s) => return st(s),
            };
            let h = c.data_mut();
            h.queues_registered = true;
            let tx = h.plugin.queue_ready.clone();
            let id = h.plugin.runtime.queues.register(&name, Some(tx));
            Ok(status(write_u32(&mut c, ret, id)))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C, _vptr: i32, _vlen: i32, nptr: i32, nlen: i32, ret: i32| -> HostResult {
            let name = match read_str(&mut c, nptr, nlen) {
                Ok(n) => n,
                Err(s) => return st(s),
            };
            match c.data().plugin.runtime.queues.resolve(&name) {
                Some(id) => Ok(status(write_u32(&mut c, ret, id))),
                None => st(Status::NotFound),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: C, id: i32, ptr: i32, len: i32| -> HostResult {
            let item = match read(&mut c, ptr, len) {
                Ok(i) => i,
                Err(s) => return st(s),
            };
            st(c.data().plugin.runtime.queues.enqueue(id as u32, &item))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C, id: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            match c.data().plugin.runtime.queues.dequeue(id as u32) {
                Ok(item) => give(&mut c, &item, ret_ptr, ret_len),
                Err(s) => st(s),
            }
        },
    )?;
    Ok(())
}

fn link_stream(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: C, _ty: i32| -> HostResult {
            c.data_mut().resumed = true;
            ok()
        },
    )?;
    for name in ["proxy_continue_request", "proxy_continue_response"] {
        l.func_wrap("env", name, |mut c: C| -> HostResult {
            c.data_mut().resumed = true;
            ok()
        })?;
    }
    // Closing a stream is answered as a reset would be: the request fails.
    l.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: C, _ty: i32| -> HostResult {
            if c.data().local.is_none() {
                c.data_mut().local = Some(local(
                    StatusCode::BAD_GATEWAY,
                    Default::default(),
                    Bytes::new(),
                ));
            }
            ok()
        },
    )?;
    l.func_wrap("env", "proxy_clear_route_cache", |_c: C| -> HostResult {
        ok()
    })?;
    l.func_wrap("env", "proxy_done", |_c: C| -> HostResult { ok() })?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |_c: C, _id: i32| -> HostResult { ok() },
    )?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C,
         code: i32,
         _dptr: i32,
         _dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         _grpc: i32|
         -> HostResult {
            let (body, hdrs) = match (read(&mut c, bptr, blen), read(&mut c, hptr, hlen)) {
                (Ok(b), Ok(h)) => (b, h),
                (Err(s), _) | (_, Err(s)) => return st(s),
            };
            let Ok(code) = StatusCode::from_u16(code as u32 as u16)
                .map_err(drop)
                .and_then(|s| if (code as u32) < 1000 { Ok(s) } else { Err(()) })
            else {
                return st(Status::BadArgument);
            };
            let Some(pairs) = decode_pairs(&hdrs) else {
                return st(Status::ParseFailure);
            };
            let headers = match maps::header_map(&pairs) {
                Ok(h) => h,
                Err(s) => return st(s),
            };
            c.data_mut().local = Some(local(code, headers, Bytes::from(body)));
            ok()
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         _tptr: i32,
         _tlen: i32,
         timeout_ms: i32,
         ret: i32|
         -> HostResult {
            let (upstream, hdrs, body) = match (
                read_str(&mut c, uptr, ulen),
                read(&mut c, hptr, hlen),
                read(&mut c, bptr, blen),
            ) {
                (Ok(u), Ok(h), Ok(b)) => (u, h, b),
                (Err(s), _, _) | (_, Err(s), _) | (_, _, Err(s)) => return st(s),
            };
            if c.data().plugin.client(&upstream).is_none() {
                return st(Status::BadArgument);
            }
            if c.data().calls.len() >= 16 {
                return st(Status::InternalFailure);
            }
            let Some(pairs) = decode_pairs(&hdrs) else {
                return st(Status::ParseFailure);
            };
            let request = match call_request(&pairs, body) {
                Ok(r) => r,
                Err(s) => return st(s),
            };
            let timeout = Duration::from_millis((timeout_ms as u32).clamp(1, 60_000) as u64);
            if let Err(s) = write_u32(&mut c, ret, 0) {
                return st(s);
            }
            let token = c.data_mut().token();
            c.data_mut().calls.push(PendingCall {
                token,
                upstream,
                request,
                timeout,
            });
            Ok(status(write_u32(&mut c, ret, token)))
        },
    )?;
    Ok(())
}

fn link_metrics(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C, ty: i32, nptr: i32, nlen: i32, ret: i32| -> HostResult {
            let name = match read_str(&mut c, nptr, nlen) {
                Ok(n) => n,
                Err(s) => return st(s),
            };
            let h = c.data();
            match h.plugin.runtime.metrics.define(&h.plugin.name, ty, &name) {
                Ok(id) => Ok(status(write_u32(&mut c, ret, id))),
                Err(s) => st(s),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: C, id: i32, by: i64| -> HostResult {
            st(c.data().plugin.runtime.metrics.increment(id as u32, by))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |c: C, id: i32, v: i64| -> HostResult {
            st(c.data().plugin.runtime.metrics.record(id as u32, v as u64))
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: C, id: i32, ret: i32| -> HostResult {
            match c.data().plugin.runtime.metrics.get(id as u32) {
                Ok(v) => Ok(status(write(&mut c, ret, &v.to_le_bytes()))),
                Err(s) => st(s),
            }
        },
    )?;
    Ok(())
}

fn local(status: StatusCode, headers: http::HeaderMap, body: Bytes) -> http::Response<Bytes> {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A call-out's request from its pairs (`:method`, `:path`, `:authority` and headers).
fn call_request(pairs: &[(&[u8], &[u8])], body: Vec<u8>) -> Result<http::Request<Bytes>, Status> {
    let find = |name: &[u8]| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let method = match find(b":method") {
        Some(m) => Method::from_bytes(m).map_err(|_| Status::BadArgument)?,
        None => Method::GET,
    };
    let path = find(b":path").ok_or(Status::BadArgument)?;
    let uri = http::Uri::try_from(path).map_err(|_| Status::BadArgument)?;
    let mut req = http::Request::new(Bytes::from(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = maps::header_map(pairs)?;
    if let Some(a) = find(b":authority") {
        let v = http::HeaderValue::from_bytes(a).map_err(|_| Status::BadArgument)?;
        req.headers_mut().insert(http::header::HOST, v);
    }
    Ok(req)
}
