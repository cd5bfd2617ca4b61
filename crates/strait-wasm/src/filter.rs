//! The `wasm` policy's filter: runs a plugin's HTTP context through a request's phases (headers, bodies, trailers, call-outs, log) and turns faults into the policy's failure mode.
//!
//! A request's HTTP context lives in a shared instance (see [`crate::plugin`]); between hooks
//! the request's side of it ([`Attached`]: context id, stream data, pending call-outs) sits in
//! the filter's per-request state behind a mutex that is only taken while a callback runs
//! (never across an await), shared with the body filters. Dropping it ends the context.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use http::{HeaderMap, StatusCode};
use strait_core::{
    BodyFilter, BodyFlow, Decision, Filter, FilterState, Flow, Hooks, Outcome, Reply, RequestCtx,
    ResponseCtx,
};

use crate::abi::{action, buffer};
use crate::host::{CallResponse, RequestHead, RequestInfo, ResponseHead, Stream};
use crate::plugin::{Attached, Plugin, Ran};
use crate::vm::{Callback, Fault};

/// A plugin as a filter.
pub struct WasmFilter {
    plugin: Arc<Plugin>,
}

impl WasmFilter {
    /// The filter running `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        WasmFilter { plugin }
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Counts `fault` and answers as the policy's failure mode says.
    fn fail(&self, fault: &Fault) -> Decision {
        self.plugin.failed(fault);
        if self.plugin.settings.fail_open {
            return Decision::Continue;
        }
        let reason = match fault {
            Fault::Trap(_) => "wasm_trap",
            Fault::Timeout => "wasm_timeout",
            Fault::Memory => "wasm_memory",
            Fault::Rejected(_) => "wasm_rejected",
            Fault::Unavailable(_) => "wasm_unavailable",
        };
        Decision::Reply(Reply::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin failed\n",
            reason,
        ))
    }

    fn flow(d: Decision) -> Flow<'static> {
        match d {
            Decision::Continue => Flow::Continue,
            Decision::Reply(r) => Flow::Reply(r),
        }
    }

    /// What the plugin decided in the callback that just ran for `a`.
    fn after(&self, a: &mut Attached, ran: Ran) -> Next {
        match ran {
            Ran::Failed(f) => return Next::Decided(self.fail(&f)),
            Ran::Skipped => return Next::Decided(Decision::Continue),
            Ran::Done(_) => {}
        }
        if let Some(resp) = a.local.take() {
            a.calls.clear();
            return Next::Decided(Decision::Reply(Reply {
                response: resp,
                reason: "wasm",
            }));
        }
        if a.calls.is_empty() {
            Next::Decided(Decision::Continue)
        } else {
            Next::Wait
        }
    }

    /// Sends the plugin's call-outs and runs their callbacks until none is left (the plugin
    /// resumed, answered, or simply made no more).
    async fn drive(&self, slot: Slot, mut head: Head<'_>) -> Decision {
        loop {
            let calls = std::mem::take(&mut lock(&slot).calls);
            if calls.is_empty() {
                return Decision::Continue;
            }
            for call in calls {
                let token = call.token as i32;
                let resp = self.plugin.send_call(call).await;
                let mut a = lock(&slot);
                if a.gone {
                    return Decision::Continue;
                }
                let args = call_args(0, token, resp.as_ref());
                a.stream.call_response = resp;
                head.load(&mut a.stream);
                // An answer for a context that went with a replaced instance has nobody
                // to go to: the request gets the failure mode.
                let r = match self
                    .plugin
                    .run(&mut a, Callback::HttpCallResponse, &args[1..], false)
                {
                    Ran::Skipped => Ran::Failed(Fault::Unavailable(
                        "the plugin instance was replaced during a call-out".into(),
                    )),
                    r => r,
                };
                head.unload(&mut a.stream);
                a.stream.call_response = None;
                match self.after(&mut a, r) {
                    Next::Decided(Decision::Continue) | Next::Wait => {}
                    Next::Decided(reply) => return reply,
                }
            }
        }
    }
}

/// The arguments of `proxy_on_http_call_response` (all counts 0 when the call failed).
pub(crate) fn call_args(context: i32, token: i32, resp: Option<&CallResponse>) -> Vec<i32> {
    match resp {
        Some(r) => vec![
            context,
            token,
            r.headers.len() as i32 + 1,
            r.body.len() as i32,
            0,
        ],
        None => vec![context, token, 0, 0, 0],
    }
}

enum Next {
    Decided(Decision),
    Wait,
}

/// A request's side of its HTTP context, shared with its body filters.
type Slot = Arc<Mutex<Attached>>;

fn lock(slot: &Slot) -> MutexGuard<'_, Attached> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The head a callback may edit, moved into the host around each callback.
enum Head<'a> {
    Request(&'a mut http::request::Parts),
    Response(&'a mut http::response::Parts),
}

impl Head<'_> {
    fn load(&mut self, s: &mut Stream) {
        match self {
            Head::Request(p) => {
                s.request = Some(RequestHead {
                    method: p.method.clone(),
                    uri: std::mem::take(&mut p.uri),
                    headers: std::mem::take(&mut p.headers),
                })
            }
            Head::Response(p) => {
                s.response = Some(ResponseHead {
                    status: p.status,
                    headers: std::mem::take(&mut p.headers),
                })
            }
        }
    }

    fn unload(&mut self, s: &mut Stream) {
        match self {
            Head::Request(p) => {
                if let Some(r) = s.request.take() {
                    (p.method, p.uri, p.headers) = (r.method, r.uri, r.headers);
                    // Later phases read the request headers as forwarded.
                    if let Some(info) = s.info.as_mut() {
                        info.headers = p.headers.clone();
                    }
                }
            }
            Head::Response(p) => {
                if let Some(r) = s.response.take() {
                    (p.status, p.headers) = (r.status, r.headers);
                }
            }
        }
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether a request with this head has a body to come.
fn request_has_body(p: &http::request::Parts) -> bool {
    match content_length(&p.headers) {
        Some(n) => n > 0,
        None if p.headers.contains_key(http::header::TRANSFER_ENCODING) => true,
        // HTTP/1 without framing headers has no body; HTTP/2 may stream one without a length.
        None => {
            p.version >= http::Version::HTTP_2
                && !matches!(p.method, http::Method::GET | http::Method::HEAD)
        }
    }
}

/// Whether a response with this head has a body to come.
fn response_has_body(p: &http::response::Parts, method: &http::Method) -> bool {
    if method == http::Method::HEAD
        || p.status.is_informational()
        || p.status == StatusCode::NO_CONTENT
        || p.status == StatusCode::NOT_MODIFIED
    {
        return false;
    }
    content_length(&p.headers) != Some(0)
}

impl Filter for WasmFilter {
    fn name(&self) -> &str {
        &self.plugin.settings.name
    }

    fn kind(&self) -> &'static str {
        "wasm"
    }

    fn hooks(&self) -> Hooks {
        self.plugin.hooks
    }

    fn on_request<'a>(
        &'a self,
        ctx: &'a mut RequestCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let mut a = self.plugin.attach();
        a.stream.info = Some(RequestInfo {
            method: ctx.head.method.clone(),
            uri: ctx.head.uri.clone(),
            host: ctx.head.headers.get(http::header::HOST).cloned(),
            client: ctx.client,
            listener: Arc::from(ctx.listener),
            route: Arc::from(ctx.route),
            tls: ctx.tls,
            version: ctx.head.version,
            headers: HeaderMap::new(),
            status: None,
        });
        let end = !request_has_body(ctx.head);
        a.stream.request_body = !end;
        let n = ctx.head.headers.len() as i32 + 4;
        let mut head = Head::Request(ctx.head);
        head.load(&mut a.stream);
        let r = self
            .plugin
            .run(&mut a, Callback::RequestHeaders, &[n, end as i32], true);
        head.unload(&mut a.stream);
        let next = self.after(&mut a, r);
        let slot: Slot = Arc::new(Mutex::new(a));
        state.set(slot.clone());
        match next {
            Next::Decided(d) => Self::flow(d),
            Next::Wait => Flow::wait(self.drive(slot, head)),
        }
    }

    fn on_response<'a>(
        &'a self,
        ctx: &'a mut ResponseCtx<'_>,
        state: &'a mut FilterState,
    ) -> Flow<'a> {
        let Some(slot) = state.get::<Slot>().cloned() else {
            return Flow::Continue;
        };
        let next = {
            let mut a = lock(&slot);
            if a.gone {
                return Flow::Continue;
            }
            if let Some(info) = a.stream.info.as_mut() {
                info.status = Some(ctx.head.status.as_u16());
            }
            let end = !response_has_body(ctx.head, ctx.method);
            let n = ctx.head.headers.len() as i32 + 1;
            let mut head = Head::Response(&mut *ctx.head);
            head.load(&mut a.stream);
            let r = self
                .plugin
                .run(&mut a, Callback::ResponseHeaders, &[n, end as i32], true);
            head.unload(&mut a.stream);
            self.after(&mut a, r)
        };
        match next {
            Next::Decided(d) => Self::flow(d),
            Next::Wait => Flow::wait(self.drive(slot, Head::Response(ctx.head))),
        }
    }

    fn on_end(&self, outcome: &Outcome<'_>, state: &mut FilterState) {
        let Some(slot) = state.take::<Slot>() else {
            return;
        };
        let mut a = lock(&slot);
        if let Some(info) = a.stream.info.as_mut() {
            info.status = Some(outcome.status);
        }
        // The response is out: a failure is only counted. `on_done` and `on_delete` follow
        // when the last holder of the slot lets go.
        if let Ran::Failed(f) = self.plugin.run(&mut a, Callback::Log, &[], false) {
            self.plugin.failed(&f);
        }
    }

    fn request_body(
        &self,
        ctx: &RequestCtx<'_>,
        state: &mut FilterState,
    ) -> Option<Box<dyn BodyFilter>> {
        let slot = state.get::<Slot>()?.clone();
        if !lock(&slot).stream.request_body {
            return None;
        }
        Some(Box::new(WasmBody::new(
            self.plugin.clone(),
            slot,
            true,
            ctx.head.headers.contains_key(http::header::CONTENT_LENGTH),
        )))
    }

    fn response_body(
        &self,
        ctx: &ResponseCtx<'_>,
        state: &mut FilterState,
    ) -> Option<Box<dyn BodyFilter>> {
        if !response_has_body(ctx.head, ctx.method) {
            return None;
        }
        let slot = state.get::<Slot>()?.clone();
        Some(Box::new(WasmBody::new(
            self.plugin.clone(),
            slot,
            false,
            ctx.head.headers.contains_key(http::header::CONTENT_LENGTH),
        )))
    }
}

/// A request or response body through the plugin's body and trailers callbacks.
struct WasmBody {
    plugin: Arc<Plugin>,
    slot: Slot,
    request: bool,
    /// The message keeps its `Content-Length` (the plugin did not remove it, as Envoy
    /// plugins do before changing a body's length), so the body is only looked at.
    framed: bool,
    /// What the plugin held back (it paused on an earlier chunk), shown again with the next.
    held: BytesMut,
    /// The plugin is out of the picture (failed open, or gone): pass everything.
    done: bool,
}

impl WasmBody {
    fn new(plugin: Arc<Plugin>, slot: Slot, request: bool, framed: bool) -> Self {
        WasmBody {
            plugin,
            slot,
            request,
            framed,
            held: BytesMut::new(),
            done: false,
        }
    }
}

impl BodyFilter for WasmBody {
    fn on_data(&mut self, data: bytes::Bytes, end: bool) -> BodyFlow {
        if self.done {
            return BodyFlow::Pass(data);
        }
        if self.held.len() + data.len() > self.plugin.settings.max_body {
            self.plugin
                .failed(&Fault::Trap("body held back past max_body".into()));
            return BodyFlow::Abort("wasm_body_too_large");
        }
        // The chunk itself is shown unless something is held: no copy on the common path.
        let body = if self.held.is_empty() {
            data
        } else {
            self.held.extend_from_slice(&data);
            self.held.split().freeze()
        };
        let (ty, cb) = match self.request {
            true => (buffer::REQUEST_BODY, Callback::RequestBody),
            false => (buffer::RESPONSE_BODY, Callback::ResponseBody),
        };
        let mut a = lock(&self.slot);
        if a.gone {
            self.done = true;
            return BodyFlow::Pass(body);
        }
        let len = body.len() as i32;
        a.stream.body = Some((ty, body));
        let r = self.plugin.run(&mut a, cb, &[len, end as i32], true);
        let body = a.stream.body.take().map(|(_, b)| b).unwrap_or_default();
        let local = a.local.take();
        match r {
            Ran::Failed(f) => {
                self.plugin.failed(&f);
                if self.plugin.settings.fail_open {
                    self.done = true;
                    return BodyFlow::Pass(body);
                }
                BodyFlow::Abort("wasm_failure")
            }
            Ran::Skipped => {
                self.done = true;
                BodyFlow::Pass(body)
            }
            // Too late to answer in place of the upstream: the stream is cut instead.
            Ran::Done(_) if local.is_some() => BodyFlow::Abort("wasm_local_response"),
            Ran::Done(action::PAUSE) if !end => {
                self.held.extend_from_slice(&body);
                BodyFlow::Hold
            }
            Ran::Done(_) => BodyFlow::Pass(body),
        }
    }

    fn on_trailers(&mut self, trailers: &mut HeaderMap) {
        if self.done {
            return;
        }
        let mut a = lock(&self.slot);
        if a.gone {
            return;
        }
        let n = trailers.len() as i32;
        let cb = if self.request {
            a.stream.request_trailers = Some(std::mem::take(trailers));
            Callback::RequestTrailers
        } else {
            a.stream.response_trailers = Some(std::mem::take(trailers));
            Callback::ResponseTrailers
        };
        let r = self.plugin.run(&mut a, cb, &[n], true);
        if let Some(t) = a
            .stream
            .request_trailers
            .take()
            .or(a.stream.response_trailers.take())
        {
            *trailers = t;
        }
        if let Ran::Failed(f) = r {
            self.plugin.failed(&f);
        }
    }

    fn observes_only(&self) -> bool {
        self.framed
    }
}
