//! A plugin: a compiled module with its policy's settings, the pool of idle instances requests borrow, and the root instance that receives ticks and queue notifications; held as live state by policy name.
//!
//! A request borrows one instance for its whole life (its HTTP context lives there) and gives
//! it back at the end, unless a callback failed: then the instance is dropped and the next
//! request gets a fresh one. So a trap, a loop or a memory bomb costs one request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
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

/// Idle instances kept per plugin; more are made when requests need them and dropped after.
pub const MAX_IDLE: usize = 64;

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
    idle: Mutex<Vec<Vm>>,
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
        Ok(Arc::new_cyclic(|weak: &Weak<Plugin>| {
            let mut idle = Vec::new();
            let root_task = match (wants_root, handle) {
                (true, Some(h)) => Some(h.spawn(root_loop(weak.clone(), first, rx))),
                _ => {
                    idle.push(first);
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
                idle: Mutex::new(idle),
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

    /// An idle instance, or a new one.
    pub(crate) fn checkout(&self) -> Result<Vm, Fault> {
        if let Some(vm) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(vm);
        }
        self.fresh()
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

    /// Takes back an instance after a request; a failed one is dropped.
    pub(crate) fn checkin(&self, mut vm: Vm) {
        if vm.dead {
            return;
        }
        vm.store.data_mut().reset();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(vm);
        }
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

async fn sleep_or_never(period: Option<Duration>) {
    match period {
        Some(p) => tokio::time::sleep(p).await,
        None => std::future::pending().await,
    }
}
