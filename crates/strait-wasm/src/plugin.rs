//! A plugin: a compiled module with its policy's settings, one shared instance per worker thread holding the HTTP contexts of many requests (Envoy's model), and the root instance that receives ticks and queue notifications; held as live state by policy name.
//!
//! A request creates its HTTP context in the instance of the thread it arrives on and keeps
//! using that instance (locked only while one of its callbacks runs) until its end. A callback
//! that traps, loops or hits the memory cap fails its own request and the instance is
//! replaced; other requests whose contexts were in it carry on in a fresh context of the
//! replacement (counted as `context_lost`), so they are not failed for another's fault.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use prometheus::IntCounterVec;
use strait_core::{Hooks, UpstreamClient};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use wasmtime::{InstancePre, Linker};

use crate::engine::{CompiledModule, Runtime};
use crate::host::{self, HostState};
use crate::vm::{Callback, Fault, Vm, ROOT_CONTEXT};
use crate::Error;

/// Clients of the upstreams call-outs may go to, by name.
pub type Clients = HashMap<String, Arc<dyn UpstreamClient>>;

/// One shared instance and its generation (bumped each time the instance is replaced, so a
/// request can tell that its context went with the old one).
#[derive(Default)]
struct Shard {
    vm: Option<Vm>,
    generation: u64,
}

/// What a request keeps between its callbacks: where its context lives and the stream data
/// host calls see (moved into the instance only while a callback runs).
pub(crate) struct Attached {
    plugin: Arc<Plugin>,
    shard: usize,
    generation: u64,
    /// The HTTP context id; 0 before the first callback.
    pub context: i32,
    /// Per-request data visible to host calls.
    pub stream: Box<host::Stream>,
    /// A local response the plugin asked for in the last callback.
    pub local: Option<http::Response<Bytes>>,
    /// Call-outs the plugin made and that are not sent yet.
    pub calls: Vec<host::PendingCall>,
    /// The plugin failed for this request: it is out of the picture until the end.
    pub gone: bool,
}

/// The result of running a request's callback.
pub(crate) enum Ran {
    /// The callback returned this action.
    Done(i32),
    /// The plugin failed (the request's failure mode applies).
    Failed(Fault),
    /// Nothing ran: the plugin is out of the picture for this request.
    Skipped,
}

impl Drop for Attached {
    /// Ends the context (`on_done`, `on_delete`) however the request ended, so an aborted
    /// request leaves nothing behind in the shared instance.
    fn drop(&mut self) {
        if self.context == 0 {
            return;
        }
        let mut shard = self.plugin.lock_shard(self.shard);
        if shard.generation != self.generation {
            return;
        }
        if let Some(vm) = shard.vm.as_mut() {
            if let Err(f) = vm.finish_context(self.context) {
                shard.vm = None;
                shard.generation += 1;
                self.plugin.failed(&f);
            }
        }
    }
}

/// This thread's index, assigned on first use: a request's context goes to the instance of
/// the thread it arrives on, so threads rarely wait for each other.
fn thread_index() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    INDEX.with(|i| *i)
}

/// A plugin's settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The policy's name (`plugin_name`, metric labels, logs).
    pub name: String,
    /// The root id the plugin is told (`plugin_root_id`).
    pub root_id: String,
    /// The plugin configuration handed to `on_configure`.
    pub config: Bytes,
    /// Memory cap per instance, bytes.
    pub memory_limit: usize,
    /// CPU deadline per callback.
    pub cpu_limit: Duration,
    /// Skip the plugin when it fails (instead of answering 500).
    pub fail_open: bool,
    /// Largest body a plugin may hold back (buffer) at once.
    pub max_body: usize,
}

/// What every instance of a plugin shares.
pub struct PluginShared {
    /// Policy name.
    pub name: String,
    /// Root id.
    pub root_id: String,
    /// Plugin configuration bytes.
    pub config: Bytes,
    /// The engine, shared data, queues and metrics.
    pub runtime: Arc<Runtime>,
    /// Upstreams call-outs may go to, by name (those of the latest snapshot).
    pub clients: Mutex<Arc<Clients>>,
    /// Where queue items for this plugin are announced.
    pub queue_ready: UnboundedSender<u32>,
}

impl PluginShared {
    /// The client of upstream `name`, if the snapshot has it.
    pub fn client(&self, name: &str) -> Option<Arc<dyn UpstreamClient>> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.get(name).cloned()
    }
}

/// The counters a plugin reports into.
#[derive(Clone)]
pub struct Counters {
    /// `strait_wasm_failures_total{policy,reason}`.
    pub failures: IntCounterVec,
    /// `strait_wasm_instances_created_total{policy}`.
    pub instances: IntCounterVec,
}

/// A loaded plugin.
pub struct Plugin {
    pub(crate) shared: Arc<PluginShared>,
    pre: InstancePre<HostState>,
    pub(crate) settings: Settings,
    shards: Box<[Mutex<Shard>]>,
    pub(crate) counters: Counters,
    pub(crate) hooks: Hooks,
    module: Arc<CompiledModule>,
    root_task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(t) = &self.root_task {
            t.abort();
        }
    }
}

impl Plugin {
    /// Links `module` and starts a first instance (so a plugin that rejects its
    /// configuration is an error here, not on the first request); ticks and queue
    /// notifications start when that instance asks for them.
    pub fn new(
        runtime: Arc<Runtime>,
        module: Arc<CompiledModule>,
        settings: Settings,
        clients: Clients,
        counters: Counters,
    ) -> Result<Arc<Plugin>, Error> {
        let mut linker = Linker::new(runtime.engine());
        host::imports::link(&mut linker).map_err(|e| Error::Link(e.to_string()))?;
        host::wasi::link(&mut linker).map_err(|e| Error::Link(e.to_string()))?;
        host::wasi::stubs(&mut linker, &module.module);
        let pre = linker
            .instantiate_pre(&module.module)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let (tx, rx) = unbounded_channel();
        let shared = Arc::new(PluginShared {
            name: settings.name.clone(),
            root_id: settings.root_id.clone(),
            config: settings.config.clone(),
            runtime,
            clients: Mutex::new(Arc::new(clients)),
            queue_ready: tx,
        });
        let first = Vm::start(
            &pre,
            shared.clone(),
            settings.memory_limit,
            settings.cpu_limit,
        )
        .map_err(|f| Error::Start(f.to_string()))?;
        let hooks = Hooks {
            response: first.has(Callback::ResponseHeaders),
            end: true,
            request_body: first.has(Callback::RequestBody) || first.has(Callback::RequestTrailers),
            response_body: first.has(Callback::ResponseBody)
                || first.has(Callback::ResponseTrailers),
        };
        let wants_root =
            !first.store.data().tick_period.is_zero() || first.store.data().queues_registered;
        let handle = tokio::runtime::Handle::try_current().ok();
        // One instance per worker thread, made when a request first needs it.
        let workers = handle.as_ref().map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |h| h.metrics().num_workers(),
        );
        let shards: Box<[Mutex<Shard>]> = (0..workers.max(1)).map(|_| Mutex::default()).collect();
        Ok(Arc::new_cyclic(|weak: &Weak<Plugin>| {
            let root_task = match (wants_root, handle) {
                (true, Some(h)) => Some(h.spawn(root_loop(weak.clone(), first, rx))),
                _ => {
                    lock(&shards[0]).vm = Some(first);
                    None
                }
            };
            counters
                .instances
                .with_label_values(&[settings.name.as_str()])
                .inc();
            Plugin {
                shared,
                pre,
                settings,
                shards,
                counters,
                hooks,
                module,
                root_task,
            }
        }))
    }

    /// The module's ABI version.
    pub fn abi(&self) -> &'static str {
        self.module.abi
    }

    /// The SHA-256 of the module's bytes.
    pub fn digest(&self) -> [u8; 32] {
        self.module.digest
    }

    /// Points call-outs at the upstreams of a new snapshot.
    pub fn set_clients(&self, clients: Clients) {
        *self
            .shared
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(clients);
    }

    /// Starts a fresh instance and drops it: what a request pays when no idle instance is
    /// left (benchmarks measure it).
    pub fn cold_start(&self) -> Result<(), Fault> {
        self.fresh().map(drop)
    }

    /// The state of a request that is to run this plugin, its context in the instance of
    /// the current thread.
    pub(crate) fn attach(self: &Arc<Self>) -> Attached {
        Attached {
            plugin: self.clone(),
            shard: thread_index() % self.shards.len(),
            generation: 0,
            context: 0,
            stream: Box::default(),
            local: None,
            calls: Vec::new(),
            gone: false,
        }
    }

    fn lock_shard(&self, i: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[i])
    }

    /// Runs `cb` in `a`'s HTTP context with `rest` after the context id, the request's stream
    /// data moved into the instance for the call. The context is created on the first call
    /// and again in a replacement instance when its own was replaced, unless `attach` is
    /// false (the end of a request: nothing is worth a new context then).
    pub(crate) fn run(&self, a: &mut Attached, cb: Callback, rest: &[i32], attach: bool) -> Ran {
        if a.gone {
            return Ran::Skipped;
        }
        let mut shard = self.lock_shard(a.shard);
        let current = a.context != 0 && a.generation == shard.generation && shard.vm.is_some();
        if !current {
            if !attach {
                return Ran::Skipped;
            }
            if shard.vm.is_none() {
                match self.fresh() {
                    Ok(vm) => shard.vm = Some(vm),
                    Err(f) => {
                        a.gone = true;
                        return Ran::Failed(f);
                    }
                }
            }
            if a.context != 0 {
                self.counters
                    .failures
                    .with_label_values(&[self.settings.name.as_str(), "context_lost"])
                    .inc();
            }
            let generation = shard.generation;
            let created = shard.vm.as_mut().map(Vm::create_context);
            match created {
                Some(Ok(id)) => (a.context, a.generation) = (id, generation),
                Some(Err(f)) => {
                    replace(&mut shard);
                    a.gone = true;
                    a.context = 0;
                    return Ran::Failed(f);
                }
                None => return Ran::Skipped,
            }
        }
        let Some(vm) = shard.vm.as_mut() else {
            return Ran::Skipped;
        };
        let mut args = [0i32; 5];
        args[0] = a.context;
        let n = rest.len().min(4);
        args[1..=n].copy_from_slice(&rest[..n]);
        std::mem::swap(&mut vm.store.data_mut().stream, &mut a.stream);
        let r = vm.run(cb, &args[..=n]);
        let h = vm.store.data_mut();
        std::mem::swap(&mut h.stream, &mut a.stream);
        if let Some(local) = h.local.take() {
            a.local = Some(local);
        }
        a.calls.append(&mut h.calls);
        h.resumed = false;
        match r {
            Ok(action) => Ran::Done(action),
            Err(f) => {
                replace(&mut shard);
                a.gone = true;
                a.context = 0;
                Ran::Failed(f)
            }
        }
    }

    fn fresh(&self) -> Result<Vm, Fault> {
        let vm = Vm::start(
            &self.pre,
            self.shared.clone(),
            self.settings.memory_limit,
            self.settings.cpu_limit,
        )?;
        self.counters
            .instances
            .with_label_values(&[self.settings.name.as_str()])
            .inc();
        Ok(vm)
    }

    /// Counts a failure of the plugin.
    pub(crate) fn failed(&self, fault: &Fault) {
        self.counters
            .failures
            .with_label_values(&[self.settings.name.as_str(), fault.reason()])
            .inc();
        tracing::warn!(policy = %self.settings.name, error = %fault, "wasm plugin failed");
    }

    /// Sends the call-outs `vm` queued and runs `on_http_call_response` for each in
    /// `context`, with `load`/`unload` moving the stream's head in and out around it.
    pub(crate) async fn send_call(&self, call: host::PendingCall) -> Option<host::CallResponse> {
        let client = self.shared.client(&call.upstream)?;
        match client.send(call.request, call.timeout, 1 << 20).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                Some(host::CallResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            Err(e) => {
                tracing::debug!(policy = %self.settings.name, upstream = %call.upstream, error = %e, "wasm call-out failed");
                None
            }
        }
    }
}

/// Drives the root instance: ticks at the period it set, queue notifications, and the
/// call-outs those callbacks make. Ends when the plugin is dropped.
async fn root_loop(plugin: Weak<Plugin>, vm: Vm, mut rx: UnboundedReceiver<u32>) {
    let mut vm = Some(vm);
    loop {
        let period = vm
            .as_ref()
            .map(|v| v.store.data().tick_period)
            .filter(|p| !p.is_zero());
        let cb = tokio::select! {
            _ = sleep_or_never(period) => (Callback::Tick, vec![ROOT_CONTEXT]),
            id = rx.recv() => match id {
                Some(id) => (Callback::QueueReady, vec![ROOT_CONTEXT, id as i32]),
                None => return,
            },
        };
        let Some(p) = plugin.upgrade() else { return };
        let mut current = match vm.take() {
            Some(v) if !v.dead => v,
            _ => match p.fresh() {
                Ok(v) => v,
                Err(f) => {
                    p.failed(&f);
                    continue;
                }
            },
        };
        if let Err(f) = current.run(cb.0, &cb.1) {
            p.failed(&f);
        }
        // Call-outs made from the root context are answered to it.
        loop {
            let calls = std::mem::take(&mut current.store.data_mut().calls);
            if calls.is_empty() || current.dead {
                break;
            }
            for call in calls {
                let token = call.token as i32;
                let resp = p.send_call(call).await;
                let args = crate::filter::call_args(ROOT_CONTEXT, token, resp.as_ref());
                current.store.data_mut().stream.call_response = resp;
                if let Err(f) = current.run(Callback::HttpCallResponse, &args) {
                    p.failed(&f);
                    break;
                }
                current.store.data_mut().stream.call_response = None;
            }
        }
        vm = Some(current);
        drop(p);
    }
}

/// Drops a failed instance; the next request that needs one makes a fresh one.
fn replace(shard: &mut Shard) {
    shard.vm = None;
    shard.generation += 1;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sleep_or_never(period: Option<Duration>) {
    match period {
        Some(p) => tokio::time::sleep(p).await,
        None => std::future::pending().await,
    }
}
