//! One plugin instance: its store and exports, the root context's start (`_initialize`, `on_vm_start`, `on_configure`), and callbacks run under the CPU deadline with faults classified.
//!
//! A callback that traps, runs past its deadline or hits the memory cap marks the instance
//! dead: the caller drops it and the pool makes a fresh one, so one bad request never
//! leaves broken state behind for the next.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Func, InstancePre, Store, Trap, TypedFunc, Val};

use crate::engine::{deadline_ticks, fit_epoch_tick};
use crate::host::wasi::ProcExit;
use crate::host::HostState;
use crate::plugin::PluginShared;

/// The root context's id; HTTP contexts count up from 2.
pub const ROOT_CONTEXT: i32 = 1;

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest trapped (a panic, `unreachable`, a bad access, `proc_exit`).
    Trap(String),
    /// A callback ran past the CPU deadline.
    Timeout,
    /// The guest asked for more memory than its cap.
    Memory,
    /// `on_vm_start` or `on_configure` returned false.
    Rejected(&'static str),
    /// No instance could be made (the instance pool is full, say).
    Unavailable(String),
}

impl Fault {
    /// A short bounded label: `trap`, `timeout`, `memory`, `rejected`, `unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Fault::Trap(_) => "trap",
            Fault::Timeout => "timeout",
            Fault::Memory => "memory",
            Fault::Rejected(_) => "rejected",
            Fault::Unavailable(_) => "unavailable",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Trap(m) => write!(f, "plugin trapped: {m}"),
            Fault::Timeout => write!(f, "plugin callback ran past its CPU deadline"),
            Fault::Memory => write!(f, "plugin exceeded its memory limit"),
            Fault::Rejected(what) => write!(f, "plugin {what} returned false"),
            Fault::Unavailable(m) => write!(f, "no plugin instance: {m}"),
        }
    }
}

/// An export with its arity.
#[derive(Clone, Copy)]
struct Export {
    func: Func,
    params: usize,
    results: usize,
    /// Index of the same function typed in [`Vm::typed`].
    typed: usize,
}

/// A callback export typed by its arity (every proxy-wasm callback takes `i32`s and returns
/// nothing or one `i32`): calls through it skip the per-call type checks of [`Func::call`].
enum Typed {
    P0R0(TypedFunc<(), ()>),
    P1R0(TypedFunc<i32, ()>),
    P1R1(TypedFunc<i32, i32>),
    P2R0(TypedFunc<(i32, i32), ()>),
    P2R1(TypedFunc<(i32, i32), i32>),
    P3R0(TypedFunc<(i32, i32, i32), ()>),
    P3R1(TypedFunc<(i32, i32, i32), i32>),
    P4R0(TypedFunc<(i32, i32, i32, i32), ()>),
    P4R1(TypedFunc<(i32, i32, i32, i32), i32>),
    P5R0(TypedFunc<(i32, i32, i32, i32, i32), ()>),
    P5R1(TypedFunc<(i32, i32, i32, i32, i32), i32>),
}

impl Typed {
    /// `func` typed, when its signature is one of the callback shapes.
    fn of(store: &Store<HostState>, func: Func, params: usize, results: usize) -> Option<Typed> {
        Some(match (params, results) {
            (0, 0) => Typed::P0R0(func.typed(store).ok()?),
            (1, 0) => Typed::P1R0(func.typed(store).ok()?),
            (1, 1) => Typed::P1R1(func.typed(store).ok()?),
            (2, 0) => Typed::P2R0(func.typed(store).ok()?),
            (2, 1) => Typed::P2R1(func.typed(store).ok()?),
            (3, 0) => Typed::P3R0(func.typed(store).ok()?),
            (3, 1) => Typed::P3R1(func.typed(store).ok()?),
            (4, 0) => Typed::P4R0(func.typed(store).ok()?),
            (4, 1) => Typed::P4R1(func.typed(store).ok()?),
            (5, 0) => Typed::P5R0(func.typed(store).ok()?),
            (5, 1) => Typed::P5R1(func.typed(store).ok()?),
            _ => return None,
        })
    }

    /// Calls with `a` (missing arguments are 0); a function without a result returns 0.
    fn call(&self, store: &mut Store<HostState>, a: [i32; 5]) -> wasmtime::Result<i32> {
        let none = |r: wasmtime::Result<()>| r.map(|()| 0);
        match self {
            Typed::P0R0(f) => none(f.call(store, ())),
            Typed::P1R0(f) => none(f.call(store, a[0])),
            Typed::P1R1(f) => f.call(store, a[0]),
            Typed::P2R0(f) => none(f.call(store, (a[0], a[1]))),
            Typed::P2R1(f) => f.call(store, (a[0], a[1])),
            Typed::P3R0(f) => none(f.call(store, (a[0], a[1], a[2]))),
            Typed::P3R1(f) => f.call(store, (a[0], a[1], a[2])),
            Typed::P4R0(f) => none(f.call(store, (a[0], a[1], a[2], a[3]))),
            Typed::P4R1(f) => f.call(store, (a[0], a[1], a[2], a[3])),
            Typed::P5R0(f) => none(f.call(store, (a[0], a[1], a[2], a[3], a[4]))),
            Typed::P5R1(f) => f.call(store, (a[0], a[1], a[2], a[3], a[4])),
        }
    }
}

/// The callbacks a module exports (each optional).
#[derive(Default)]
pub(crate) struct Exports {
    on_context_create: Option<Export>,
    on_vm_start: Option<Export>,
    on_configure: Option<Export>,
    on_tick: Option<Export>,
    on_queue_ready: Option<Export>,
    on_request_headers: Option<Export>,
    on_request_body: Option<Export>,
    on_request_trailers: Option<Export>,
    on_response_headers: Option<Export>,
    on_response_body: Option<Export>,
    on_response_trailers: Option<Export>,
    on_http_call_response: Option<Export>,
    on_log: Option<Export>,
    on_done: Option<Export>,
    on_delete: Option<Export>,
}

/// Which callback to run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Callback {
    Tick,
    QueueReady,
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    HttpCallResponse,
    Log,
}

/// A live instance.
pub struct Vm {
    pub(crate) store: Store<HostState>,
    typed: Vec<Option<Typed>>,
    exports: Exports,
    next_context: i32,
    /// The per-callback limit, turned into epochs at each call (the tick may get finer).
    cpu_limit: Duration,
    /// A callback failed: the instance must not be used again.
    pub dead: bool,
}

impl Vm {
    /// Instantiates `pre` and starts its root context with the plugin's configuration.
    pub(crate) fn start(
        pre: &InstancePre<HostState>,
        plugin: Arc<PluginShared>,
        memory_limit: usize,
        cpu_limit: Duration,
    ) -> Result<Vm, Fault> {
        let config_len = plugin.config.len() as i32;
        let mut store = Store::new(pre.module().engine(), HostState::new(plugin, memory_limit));
        store.limiter(|h| h);
        store.epoch_deadline_trap();
        fit_epoch_tick(cpu_limit);
        store.set_epoch_deadline(deadline_ticks(cpu_limit));
        let instance =
            pre.instantiate(&mut store)
                .map_err(|e| match classify(&e, store.data()) {
                    Fault::Trap(m) => Fault::Unavailable(m),
                    other => other,
                })?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = ["proxy_on_memory_allocate", "malloc"]
            .iter()
            .find_map(|n| instance.get_typed_func::<i32, i32>(&mut store, n).ok());
        store.data_mut().memory = memory;
        store.data_mut().alloc = alloc;
        let mut typed = Vec::new();
        let mut get = |name: &str| {
            let func = instance.get_func(&mut store, name)?;
            let ty = func.ty(&store);
            let (params, results) = (ty.params().len(), ty.results().len());
            typed.push(Typed::of(&store, func, params, results));
            Some(Export {
                func,
                params,
                results,
                typed: typed.len() - 1,
            })
        };
        let exports = Exports {
            on_context_create: get("proxy_on_context_create"),
            on_vm_start: get("proxy_on_vm_start"),
            on_configure: get("proxy_on_configure"),
            on_tick: get("proxy_on_tick"),
            on_queue_ready: get("proxy_on_queue_ready"),
            on_request_headers: get("proxy_on_request_headers"),
            on_request_body: get("proxy_on_request_body"),
            on_request_trailers: get("proxy_on_request_trailers"),
            on_response_headers: get("proxy_on_response_headers"),
            on_response_body: get("proxy_on_response_body"),
            on_response_trailers: get("proxy_on_response_trailers"),
            on_http_call_response: get("proxy_on_http_call_response"),
            on_log: get("proxy_on_log"),
            on_done: get("proxy_on_done"),
            on_delete: get("proxy_on_delete"),
        };
        let init = get("_initialize").or_else(|| get("_start"));
        let mut vm = Vm {
            store,
            typed,
            exports,
            next_context: ROOT_CONTEXT + 1,
            cpu_limit,
            dead: false,
        };
        if let Some(init) = init {
            match vm.call(Some(init), &[]) {
                Ok(_) => {}
                // A command's main may end with proc_exit(0): that is a clean start.
                Err(_) if vm.store.data().exit == Some(0) => vm.dead = false,
                Err(f) => return Err(f),
            }
        }
        vm.call(vm.exports.on_context_create, &[ROOT_CONTEXT, 0])?;
        if vm.exports.on_vm_start.is_some()
            && vm.call(vm.exports.on_vm_start, &[ROOT_CONTEXT, 0])? == 0
        {
            return Err(Fault::Rejected("on_vm_start"));
        }
        if vm.exports.on_configure.is_some()
            && vm.call(vm.exports.on_configure, &[ROOT_CONTEXT, config_len])? == 0
        {
            return Err(Fault::Rejected("on_configure"));
        }
        Ok(vm)
    }

    /// Whether the module exports `cb`.
    pub(crate) fn has(&self, cb: Callback) -> bool {
        self.export(cb).is_some()
    }

    fn export(&self, cb: Callback) -> Option<Export> {
        let e = &self.exports;
        match cb {
            Callback::Tick => e.on_tick,
            Callback::QueueReady => e.on_queue_ready,
            Callback::RequestHeaders => e.on_request_headers,
            Callback::RequestBody => e.on_request_body,
            Callback::RequestTrailers => e.on_request_trailers,
            Callback::ResponseHeaders => e.on_response_headers,
            Callback::ResponseBody => e.on_response_body,
            Callback::ResponseTrailers => e.on_response_trailers,
            Callback::HttpCallResponse => e.on_http_call_response,
            Callback::Log => e.on_log,
        }
    }

    /// Runs `cb` with `args` (cut to the export's arity, so 0.2.0 and 0.2.1 signatures both
    /// work); 0 (`Continue`) when the module does not export it.
    pub(crate) fn run(&mut self, cb: Callback, args: &[i32]) -> Result<i32, Fault> {
        self.call(self.export(cb), args)
    }

    /// A new HTTP context under the root context.
    pub(crate) fn create_context(&mut self) -> Result<i32, Fault> {
        let id = self.next_context;
        self.next_context = self.next_context.wrapping_add(1).max(ROOT_CONTEXT + 1);
        self.call(self.exports.on_context_create, &[id, ROOT_CONTEXT])?;
        Ok(id)
    }

    /// Ends HTTP context `id`: `on_done` then `on_delete` (`on_log` is the caller's).
    pub(crate) fn finish_context(&mut self, id: i32) -> Result<(), Fault> {
        self.call(self.exports.on_done, &[id])?;
        self.call(self.exports.on_delete, &[id])?;
        Ok(())
    }

    fn call(&mut self, export: Option<Export>, args: &[i32]) -> Result<i32, Fault> {
        let Some(e) = export else {
            return Ok(0);
        };
        if self.dead {
            return Err(Fault::Unavailable("instance failed earlier".into()));
        }
        self.store
            .set_epoch_deadline(deadline_ticks(self.cpu_limit));
        if let Some(t) = &self.typed[e.typed] {
            let mut a = [0i32; 5];
            for (p, v) in a.iter_mut().zip(args) {
                *p = *v;
            }
            return t.call(&mut self.store, a).map_err(|err| {
                self.dead = true;
                classify(&err, self.store.data())
            });
        }
        let mut params = [Val::I32(0); 8];
        for (p, a) in params.iter_mut().zip(args) {
            *p = Val::I32(*a);
        }
        let mut results = [Val::I32(0)];
        let n = e.params.min(params.len());
        let r = e.results.min(1);
        match e
            .func
            .call(&mut self.store, &params[..n], &mut results[..r])
        {
            Ok(()) => Ok(if r == 1 {
                results[0].i32().unwrap_or(0)
            } else {
                0
            }),
            Err(err) => {
                self.dead = true;
                Err(classify(&err, self.store.data()))
            }
        }
    }
}

fn classify(err: &wasmtime::Error, h: &HostState) -> Fault {
    if h.memory_exceeded {
        return Fault::Memory;
    }
    if let Some(Trap::Interrupt) = err.downcast_ref::<Trap>() {
        return Fault::Timeout;
    }
    if let Some(p) = err.downcast_ref::<ProcExit>() {
        return Fault::Trap(p.to_string());
    }
    Fault::Trap(
        format!("{err:#}")
            .lines()
            .next()
            .unwrap_or("trap")
            .to_owned(),
    )
}
