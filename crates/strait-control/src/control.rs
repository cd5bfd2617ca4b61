//! Publishing snapshots: documents from the provider are parsed, compiled and checked off the request path, then swapped in atomically; on any error the running one stays.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use strait_config::{Config, Diagnostic, Errors, PathPolicy, PathScope};
use strait_core::LiveState;
use strait_observe::{InUse, Metrics, ObserveRuntime};
use strait_proxy::Snapshot;
use strait_proxy::{health::HealthCheckers, server::Tracker, Shared};
use tokio::runtime::Handle;

mod write;

pub use write::{WriteError, Written};

use crate::{
    admin_listener::{AdminBinding, AdminSlot, PreparedAdmin, HANDOFF_NAME},
    compile::{compile, compile_after, Previous},
    files::FileStamps,
    listeners::{ListenerSet, Prepared},
    provider::{Document, Provider},
    restart::Started,
    rollout::{apply, CommandError, Controller, RolloutView},
};

/// How many applied versions are kept for `GET /api/versions` and rollback.
pub const HISTORY: usize = 32;

/// One applied configuration.
#[derive(Clone, Debug)]
pub struct Version {
    /// Monotonic version number of this process (also `strait_config_version`).
    pub version: u64,
    /// When it was applied, in seconds since the Unix epoch.
    pub applied_at: f64,
    /// What brought it: `file`, `etcd`, `embedded`, `admin`, `rollback`, `certificates`.
    pub origin: String,
    /// The document text.
    pub text: Arc<str>,
}

/// What the process was started with, besides its provider.
pub struct Options {
    /// Where file paths in a document from the admin API or etcd may point.
    pub paths: PathPolicy,
    /// The `server.worker_threads` the runtime was built from; `None` when the configuration
    /// did not decide it (with etcd the runtime starts before the configuration is read).
    pub worker_threads: Option<usize>,
}

/// The control plane of one process: owns live state and listeners, publishes snapshots.
pub struct Control {
    /// Data-plane state the snapshots are published into.
    pub shared: Arc<Shared>,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Open downstream connections (drain waits on it).
    pub tracker: Arc<Tracker>,
    /// Access log writers and trace exporters shared by snapshots.
    pub observe: ObserveRuntime,
    live: Arc<LiveState>,
    health: Mutex<HealthCheckers>,
    listeners: Mutex<ListenerSet>,
    state: Mutex<State>,
    provider: Arc<dyn Provider>,
    admin: Mutex<AdminSlot>,
    paths: PathPolicy,
    started: Started,
    /// Held while a snapshot is stored and while unused series are removed, so a removal never
    /// judges by a snapshot older than one that requests already record under.
    series: Mutex<()>,
    /// Answers for endpoints given as DNS names (held here, found by the compiler in `live`).
    dns: Arc<crate::dns::DnsCache>,
    /// The rollouts and the weights they set; every compile applies them. Taken after `state`
    /// when both are held.
    rollouts: Mutex<Controller>,
}

struct State {
    version: u64,
    config: Config,
    doc: Document,
    tree: serde_json::Value,
    history: VecDeque<Version>,
    last_error: Option<Vec<String>>,
    /// The certificate files `config` read, as they were when it was compiled.
    files: FileStamps,
    /// The running document's warnings.
    warnings: Vec<Diagnostic>,
    /// The running document's settings that wait for a restart.
    pending_restart: Vec<String>,
}

impl Control {
    /// Compiles the first document of `provider`, binds its listeners and publishes it; the
    /// caller then starts health checks. Must run inside a Tokio runtime (off its workers is fine).
    pub fn start(
        provider: Arc<dyn Provider>,
        handle: Handle,
        mut inherited: Vec<(String, std::net::SocketAddr, std::net::TcpListener)>,
        options: Options,
    ) -> Result<Arc<Self>, Errors> {
        let doc = provider.load()?;
        let policy = remote_scope(provider.as_ref()).map(|s| options.paths.with_scope(s));
        let loaded = doc.parse_restricted(policy.as_ref())?;
        let tree = doc.tree()?;
        let warnings = warnings_of(&loaded);
        for w in &warnings {
            tracing::warn!(%w, "configuration warning");
        }
        let files = FileStamps::read(&loaded.config);
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(LiveState::new());
        let dns = live.get_or_insert(crate::dns::KIND, "", 0, crate::dns::DnsCache::default);
        let observe = ObserveRuntime::new(metrics.clone());
        let rollouts = Controller::new(provider.state_store(), metrics.clone(), &loaded.config);
        let overridden = apply(&loaded.config, &rollouts.weights());
        let mut snap = compile(&overridden, 1, &live, &metrics)?;
        snap.observe = observe_of(&observe, &loaded.config)?;
        let snap = Arc::new(snap);
        let tracker = Arc::new(Tracker::default());
        let admin_socket = inherited
            .iter()
            .position(|(n, _, _)| n == HANDOFF_NAME)
            .map(|i| inherited.swap_remove(i))
            .map(|(_, a, s)| (a, s));
        // The admin socket first: during an upgrade the traffic sockets are shared with the old
        // process, and failing after accepting connections from them would drop those.
        let mut admin = AdminSlot::new(handle.clone(), admin_socket);
        let admin_prepared = admin
            .prepare(&loaded.config.admin)
            .map_err(|msg| admin_error(&loaded.config, msg))?;
        let mut listeners = ListenerSet::new(handle, tracker.clone());
        listeners.inherit(inherited);
        let prepared = listeners
            .prepare(&snap)
            .map_err(|(i, msg)| bind_error(&loaded.config, i, msg))?;
        let shared = Arc::new(Shared::new(
            snap.clone(),
            metrics.clone(),
            crate::compile::pools(&live),
        ));
        admin.commit(&loaded.config.admin, admin_prepared);
        listeners.commit(&shared, &snap, prepared);
        let started = Started {
            worker_threads: options.worker_threads,
            provider: loaded.config.provider.clone(),
        };
        let pending_restart = started.pending(&loaded.config);
        log_pending(&pending_restart);
        metrics.config_applied(1);
        let origin = provider.kind().to_string();
        Ok(Arc::new(Control {
            shared,
            metrics,
            tracker,
            observe,
            live,
            health: Mutex::new(HealthCheckers::default()),
            listeners: Mutex::new(listeners),
            admin: Mutex::new(admin),
            paths: options.paths,
            started,
            series: Mutex::new(()),
            dns,
            rollouts: Mutex::new(rollouts),
            state: Mutex::new(State {
                version: 1,
                history: VecDeque::from([Version {
                    version: 1,
                    applied_at: now(),
                    origin,
                    text: doc.text.as_str().into(),
                }]),
                config: loaded.config,
                doc,
                tree,
                last_error: None,
                files,
                warnings,
                pending_restart,
            }),
            provider,
        }))
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Removes the metric series of listeners, routes, upstreams and endpoints nothing uses any
    /// more (see `strait_observe::InUse`). Runs after each reload and before each scrape, so
    /// `/metrics` shows what exists and endpoint churn does not grow it.
    pub fn drop_unused_series(&self) -> usize {
        let _series = self.series.lock().expect("series lock");
        self.retain_series(&self.snapshot())
    }

    fn retain_series(&self, snap: &Snapshot) -> usize {
        let mut in_use = InUse::default();
        for l in &snap.listeners {
            in_use.listener(&l.name);
        }
        for table in snap.routes.iter().flatten() {
            for entry in &table.routes {
                in_use.route(&entry.route.name);
            }
        }
        for u in &snap.upstreams {
            in_use.upstream(&u.name);
        }
        self.live.in_use::<strait_proxy::upstream::EndpointState>(
            crate::compile::ENDPOINT,
            |key| {
                if let Some((u, a)) = key.split_once('|') {
                    in_use.endpoint(u, a);
                }
            },
        );
        let removed = self.metrics.retain(&in_use);
        if removed > 0 {
            tracing::debug!(removed, "unused metric series removed");
        }
        removed
    }

    /// The DNS names the running configuration resolves, with their refresh intervals.
    pub fn dns_names(&self) -> Vec<(String, std::time::Duration)> {
        crate::dns::names(&self.lock().config)
    }

    /// The DNS answers the compiler expands names from.
    pub fn dns_cache(&self) -> Arc<crate::dns::DnsCache> {
        self.dns.clone()
    }

    /// Compiles the running configuration again under its version (new DNS answers), keeping
    /// live state as any reload does; an error keeps the running snapshot.
    pub fn recompile(&self, origin: &str) {
        let state = self.lock();
        let running = self.snapshot();
        let previous = Previous {
            config: &state.config,
            snapshot: &running,
            files_changed: false,
        };
        let overridden = apply(&state.config, &self.rollouts().weights());
        let compiled = compile_after(
            &overridden,
            state.version,
            &self.live,
            &self.metrics,
            Some(previous),
        );
        let mut snap = match compiled {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(origin, error = %e, "recompile failed; the running snapshot stays");
                return;
            }
        };
        snap.observe = running.observe.clone();
        let prepared = match self
            .listeners
            .lock()
            .expect("listeners lock")
            .prepare(&snap)
        {
            Ok(p) => p,
            Err((_, msg)) => {
                tracing::warn!(origin, error = %msg, "recompile failed; the running snapshot stays");
                return;
            }
        };
        let snap = Arc::new(snap);
        let series = self.series.lock().expect("series lock");
        let mut listeners = self.listeners.lock().expect("listeners lock");
        self.shared.snapshot.store(snap.clone());
        listeners.commit(&self.shared, &snap, prepared);
        drop(listeners);
        self.health
            .lock()
            .expect("health lock")
            .update(&self.shared, &snap);
        self.retain_series(&snap);
        drop(series);
        drop(state);
        tracing::info!(origin, version = snap.version, "snapshot compiled again");
    }

    /// The provider behind this process.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Starts the health checks of the current snapshot (needs a Tokio runtime).
    pub fn start_health_checks(&self) {
        let snap = self.snapshot();
        self.health
            .lock()
            .expect("health lock")
            .update(&self.shared, &snap);
    }

    /// Stops accepting and every background check (shutdown); open connections drain.
    pub fn stop(&self) {
        self.health.lock().expect("health lock").stop();
        self.listeners.lock().expect("listeners lock").stop_all();
    }

    /// Runs `f` over the listener set (socket hand-off, addresses).
    pub fn with_listeners<R>(&self, f: impl FnOnce(&ListenerSet) -> R) -> R {
        f(&self.listeners.lock().expect("listeners lock"))
    }

    /// The admin socket and settings, replaced when a change moves `admin.listen`.
    pub fn admin_binding(&self) -> tokio::sync::watch::Receiver<Option<AdminBinding>> {
        self.admin.lock().expect("admin lock").subscribe()
    }

    /// Duplicates of every listening socket (traffic listeners and the admin listener, named
    /// [`HANDOFF_NAME`]) with their configured addresses, for a new process.
    pub fn handoff_sockets(&self) -> Vec<(String, std::net::SocketAddr, std::net::TcpListener)> {
        let mut v: Vec<_> = self.with_listeners(|l| {
            l.sockets()
                .into_iter()
                .filter_map(|(n, a, s)| s.try_clone().ok().map(|s| (n, a, s)))
                .collect()
        });
        let admin = self.admin.lock().expect("admin lock").socket();
        if let Some((addr, s)) = admin {
            if let Ok(s) = s.try_clone() {
                v.push((HANDOFF_NAME.to_string(), addr, s));
            }
        }
        v
    }

    /// Reloads from the provider. A document equal to the running one is skipped unless
    /// `force` (certificate files changed underneath an unchanged document, or SIGHUP);
    /// `origin` names the cause in the version history (default: the provider's kind). Blocking.
    pub fn reload(&self, force: bool, origin: Option<&str>) -> Result<u64, Errors> {
        // Read under the lock: admin writes store and apply under it too, so a document read
        // here can never be older than one already applied.
        let mut state = self.lock();
        let origin = origin.unwrap_or(self.provider.kind());
        let policy = remote_scope(self.provider.as_ref()).map(|s| self.paths.with_scope(s));
        let result = self
            .provider
            .load()
            .and_then(|doc| self.apply_locked(&mut state, doc, origin, force, policy.as_ref()));
        drop(state);
        self.count(&result);
        result
    }

    /// The running version, its document and its tree.
    pub fn current(&self) -> (u64, Document, serde_json::Value) {
        let s = self.lock();
        (s.version, s.doc.clone(), s.tree.clone())
    }

    /// The running version and its validated configuration (every default filled in).
    pub fn config(&self) -> (u64, Config) {
        let s = self.lock();
        (s.version, s.config.clone())
    }

    /// Recent versions, oldest first.
    pub fn versions(&self) -> Vec<Version> {
        self.lock().history.iter().cloned().collect()
    }

    /// The errors of the last rejected reload, if the last reload was rejected.
    pub fn last_error(&self) -> Option<Vec<String>> {
        self.lock().last_error.clone()
    }

    /// The running document's warnings.
    pub fn warnings(&self) -> Vec<Diagnostic> {
        self.lock().warnings.clone()
    }

    /// The running document's settings that wait for a restart.
    pub fn pending_restart(&self) -> Vec<String> {
        self.lock().pending_restart.clone()
    }

    /// Certificate and key files the running configuration reads (watched for rotation).
    pub fn certificate_files(&self) -> Vec<std::path::PathBuf> {
        let s = self.lock();
        crate::compile::certificate_files(&s.config)
    }

    /// Every rollout: phase, step, weights and last analysis.
    pub fn rollout_view(&self) -> Vec<RolloutView> {
        self.rollouts().view()
    }

    /// At shutdown: a fleet's rollout leader hands the lease back so another instance takes
    /// over within a second. Blocking.
    pub fn rollout_release(&self) {
        self.rollouts().release();
    }

    /// This instance and the fleet's rollout leader, when the rollout state is shared.
    pub fn rollout_fleet(&self) -> Option<crate::rollout::FleetView> {
        self.rollouts().fleet_view()
    }

    /// Applies an admin command to rollout `name`, publishing new weights when it changes them;
    /// the rollout afterwards. Blocking.
    pub fn rollout_command(
        &self,
        name: &str,
        cmd: strait_core::rollout::Command,
    ) -> Result<RolloutView, CommandError> {
        let changed = self.rollouts().command(name, cmd)?;
        if changed {
            self.recompile("rollout");
        }
        self.rollouts()
            .view()
            .into_iter()
            .find(|v| v.name == name)
            .ok_or(CommandError::NotFound)
    }

    pub(crate) fn rollouts(&self) -> MutexGuard<'_, Controller> {
        self.rollouts.lock().expect("rollouts lock")
    }

    pub(crate) fn live(&self) -> &LiveState {
        &self.live
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("state lock")
    }

    fn count(&self, result: &Result<u64, Errors>) {
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
    }

    fn apply_locked(
        &self,
        state: &mut State,
        doc: Document,
        origin: &str,
        force: bool,
        policy: Option<&PathPolicy>,
    ) -> Result<u64, Errors> {
        let result = match self.stage(state, doc, force, policy) {
            Ok(Some(staged)) => self.publish(state, *staged, origin),
            Ok(None) => Ok(state.version),
            Err(e) => Err(e),
        };
        state.last_error = result
            .as_ref()
            .err()
            .map(|e| e.0.iter().map(ToString::to_string).collect());
        result
    }

    /// Parses and compiles `doc` and binds the listeners it adds or moves, publishing nothing;
    /// `None` when it is the running document. With `force` (SIGHUP, a certificate watch) the
    /// files it reads are compared too, and a change in them is a change.
    fn stage(
        &self,
        state: &mut State,
        doc: Document,
        force: bool,
        policy: Option<&PathPolicy>,
    ) -> Result<Option<Box<Staged>>, Errors> {
        let tree = if doc.text == state.doc.text {
            state.tree.clone()
        } else {
            doc.tree()?
        };
        // The same document re-read (our own write echoed by the watcher, reformatted by
        // etcd, or a SIGHUP with nothing changed) must not create a version.
        if tree == state.tree && (!force || FileStamps::read(&state.config) == state.files) {
            state.doc = doc;
            return Ok(None);
        }
        let loaded = self.parse(&doc, policy)?;
        let warnings = warnings_of(&loaded);
        for w in &warnings {
            tracing::warn!(%w, "configuration warning");
        }
        // Read before compiling: a file that changes in between is seen as changed next time.
        let files = FileStamps::read(&loaded.config);
        let version = state.version + 1;
        let running = self.snapshot();
        let previous = Previous {
            config: &state.config,
            snapshot: &running,
            files_changed: force,
        };
        let overridden = apply(&loaded.config, &self.rollouts().weights_for(&loaded.config));
        let snap = compile_after(
            &overridden,
            version,
            &self.live,
            &self.metrics,
            Some(previous),
        )?;
        let admin = self
            .admin
            .lock()
            .expect("admin lock")
            .prepare(&loaded.config.admin)
            .map_err(|msg| admin_error(&loaded.config, msg))?;
        let prepared = self
            .listeners
            .lock()
            .expect("listeners lock")
            .prepare(&snap)
            .map_err(|(i, msg)| bind_error(&loaded.config, i, msg))?;
        Ok(Some(Box::new(Staged {
            config: loaded.config,
            doc,
            tree,
            snap,
            prepared,
            admin,
            files,
            warnings,
        })))
    }

    /// Swaps a staged change in: the snapshot, its listeners, health checks, history.
    fn publish(&self, state: &mut State, staged: Staged, origin: &str) -> Result<u64, Errors> {
        let Staged {
            config,
            doc,
            tree,
            mut snap,
            prepared,
            admin,
            files,
            warnings,
        } = staged;
        let version = snap.version;
        // Last, because building the observer changes shared writers and sampling: nothing
        // after it may fail.
        snap.observe = observe_of(&self.observe, &config)?;
        let snap = Arc::new(snap);
        let series = self.series.lock().expect("series lock");
        let mut listeners = self.listeners.lock().expect("listeners lock");
        self.shared.snapshot.store(snap.clone());
        listeners.commit(&self.shared, &snap, prepared);
        drop(listeners);
        self.admin
            .lock()
            .expect("admin lock")
            .commit(&config.admin, admin);
        self.health
            .lock()
            .expect("health lock")
            .update(&self.shared, &snap);
        self.metrics.config_applied(version);
        self.retain_series(&snap);
        drop(series);
        state.history.push_back(Version {
            version,
            applied_at: now(),
            origin: origin.to_string(),
            text: doc.text.as_str().into(),
        });
        while state.history.len() > HISTORY {
            state.history.pop_front();
        }
        self.rollouts().sync(&config);
        state.pending_restart = self.started.pending(&config);
        state.version = version;
        state.config = config;
        state.doc = doc;
        state.tree = tree;
        state.files = files;
        state.warnings = warnings;
        tracing::info!(version, origin, "configuration applied");
        log_pending(&state.pending_restart);
        Ok(version)
    }
}

/// A change compiled and with its new listeners bound, not yet published.
struct Staged {
    config: Config,
    doc: Document,
    tree: serde_json::Value,
    snap: Snapshot,
    prepared: Prepared,
    admin: PreparedAdmin,
    files: FileStamps,
    warnings: Vec<Diagnostic>,
}

/// Which sections of `provider`'s documents are remote, so their paths are restricted; `None`
/// for the operator's own file. Any provider other than a local file is remote: a new one is
/// restricted unless it is known not to need it.
fn remote_scope(provider: &dyn Provider) -> Option<PathScope> {
    match provider.kind() {
        "file" | "embedded" => None,
        // etcd supplies listeners, routes, upstreams, policies, rollouts and `server`; the rest is its bootstrap file.
        _ => Some(PathScope::Shared),
    }
}

/// The document's warnings, the router's shadowing warnings and certificate expiry warnings, in source order.
fn warnings_of(loaded: &strait_config::Loaded) -> Vec<Diagnostic> {
    let mut all = loaded.warnings.clone();
    all.extend(crate::shadow::shadow_warnings(&loaded.config));
    all.extend(crate::certs::expiry_warnings(
        &loaded.config,
        std::time::SystemTime::now(),
    ));
    all.sort_by_key(|d| (d.line, d.column));
    all
}

fn log_pending(pending: &[String]) {
    for p in pending {
        tracing::warn!(setting = %p, "{p}");
    }
}

fn admin_error(config: &Config, msg: String) -> Errors {
    let loc = &config.locations;
    Errors(vec![Diagnostic::new(loc.source(), loc.admin(), msg)])
}

fn bind_error(config: &Config, i: usize, msg: String) -> Errors {
    let loc = &config.locations;
    Errors(vec![Diagnostic::new(
        loc.source(),
        loc.listener_listen(i),
        msg,
    )])
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The snapshot's observer: writers and exporters are reused when their settings did not change.
fn observe_of(
    rt: &ObserveRuntime,
    config: &Config,
) -> Result<Option<Arc<strait_observe::Observer>>, Errors> {
    rt.build(&config.observability)
        .map_err(|e| Errors(vec![Diagnostic::new(config.locations.source(), (0, 0), e)]))
}
