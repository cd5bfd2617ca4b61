//! Publishing snapshots: compile off the request path, swap atomically, keep the running one on any error.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use strait_config::Diagnostic;
use strait_config::{Config, Errors};
use strait_core::{LiveState, Snapshot};
use strait_observe::{Metrics, ObserveRuntime};
use strait_proxy::{health::HealthCheckers, Shared};

use crate::compile::compile;

/// Where the configuration comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file, reloaded on SIGHUP.
    File(PathBuf),
    /// The embedded default (nothing to reload).
    Embedded,
}

/// The control plane of one process: owns live state and publishes snapshots into the shared data plane.
pub struct Control {
    /// Data-plane state the snapshots are published into.
    pub shared: Arc<Shared>,
    /// Metric families.
    pub metrics: Arc<Metrics>,
    /// Access log writers and trace exporters shared by snapshots.
    pub observe: ObserveRuntime,
    live: Arc<LiveState>,
    health: Mutex<HealthCheckers>,
    state: Mutex<State>,
    source: Source,
}

struct State {
    version: u64,
    config: Config,
}

impl Control {
    /// Compiles the first snapshot; the caller starts listeners and health checks from it.
    pub fn new(config: Config, source: Source) -> Result<Arc<Self>, Errors> {
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(LiveState::new());
        let observe = ObserveRuntime::new(metrics.clone());
        let mut snap = compile(&config, 1, &live, &metrics)?;
        snap.observe = observe_of(&observe, &config)?;
        let snap = Arc::new(snap);
        metrics.config_applied(1);
        let shared = Arc::new(Shared::new(snap, metrics.clone()));
        Ok(Arc::new(Control {
            shared,
            metrics,
            observe,
            live,
            health: Mutex::new(HealthCheckers::default()),
            state: Mutex::new(State { version: 1, config }),
            source,
        }))
    }

    /// The snapshot being served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// Starts the health checks of the current snapshot (needs a Tokio runtime).
    pub fn start_health_checks(&self) {
        let snap = self.snapshot();
        self.health
            .lock()
            .expect("health lock")
            .update(&self.shared, &snap);
    }

    /// Stops every background check (shutdown).
    pub fn stop_health_checks(&self) {
        self.health.lock().expect("health lock").stop();
    }

    /// Reloads from the source; on error the running snapshot stays and the errors are returned.
    pub fn reload(&self) -> Result<u64, Errors> {
        let result = match &self.source {
            Source::File(path) => strait_config::load_file(path).and_then(|l| self.apply(l.config)),
            Source::Embedded => Ok(self.state.lock().expect("state lock").version),
        };
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        result
    }

    /// Compiles `config` and swaps it in.
    pub fn apply(&self, config: Config) -> Result<u64, Errors> {
        let mut state = self.state.lock().expect("state lock");
        let version = state.version + 1;
        let mut snap = compile(&config, version, &self.live, &self.metrics)?;
        snap.observe = observe_of(&self.observe, &config)?;
        let snap = Arc::new(snap);
        let old = self.snapshot();
        for l in &snap.listeners {
            let same = old
                .listeners
                .iter()
                .any(|o| o.name == l.name && o.addr == l.addr);
            if !same {
                tracing::warn!(listener = %l.name, "listener added or moved: takes effect after a restart");
            }
        }
        self.shared.snapshot.store(snap.clone());
        self.health
            .lock()
            .expect("health lock")
            .update(&self.shared, &snap);
        self.metrics.config_applied(version);
        state.version = version;
        state.config = config;
        tracing::info!(version, "configuration reloaded");
        Ok(version)
    }
}

/// The snapshot's observer: writers and exporters are reused when their settings did not change.
fn observe_of(
    rt: &ObserveRuntime,
    config: &Config,
) -> Result<Option<Arc<strait_observe::Observer>>, Errors> {
    rt.build(&config.observability)
        .map_err(|e| Errors(vec![Diagnostic::new(config.locations.source(), (0, 0), e)]))
}
