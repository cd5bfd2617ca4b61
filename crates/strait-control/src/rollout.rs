//! The rollout controller: runs the `rollouts:` of the configuration off the request path, judging each interval of the canary's traffic and setting its route's weights by compiling the snapshot again with overridden weights (so `Backends` stay immutable per snapshot).
//!
//! The decisions are `strait_core::rollout`'s; this is their shell: it keeps each rollout's
//! state and metric baseline, stores the state through the provider's [`StateStore`] so a
//! restart resumes at the stored step, logs and counts every transition, and answers the admin
//! API. The async loop that drives it is [`run`] (in `rollout/run.rs`).
//!
//! When the store is shared by a fleet (etcd), one instance leads and the others follow the
//! stored state: see `rollout/fleet.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use strait_config as cfg;
use strait_core::rollout::{Command, Figures, Phase, RolloutState, Step, Totals, Verdict};
use strait_observe::Metrics;

use crate::provider::StateStore;

mod fleet;
mod run;
mod stored;

#[cfg(test)]
mod tests;

pub use fleet::{instance_id, FleetView};
pub use run::run;
use stored::{decode, decode_last, encode, last_json, parse_stored};

/// The name of the stored document.
const STATE: &str = "rollouts";

/// One route's weights as a rollout sets them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// The route.
    pub route: String,
    /// Its stable upstream (gets `100 - weight`).
    pub stable: String,
    /// Its canary upstream (gets `weight`).
    pub canary: String,
    /// The canary's percent.
    pub weight: u32,
}

/// `config` with the weights of `overrides` on their routes' backends; other backends keep theirs.
pub fn apply(config: &cfg::Config, overrides: &[Override]) -> cfg::Config {
    let mut out = config.clone();
    for o in overrides {
        let Some(route) = out.routes.iter_mut().find(|r| r.name == o.route) else {
            continue;
        };
        if let cfg::RouteAction::Forward { backends } = &mut route.action {
            for b in backends.iter_mut() {
                if b.upstream == o.canary {
                    b.weight = o.weight;
                } else if b.upstream == o.stable {
                    b.weight = 100 - o.weight;
                }
            }
        }
    }
    out
}

/// The last analysis of a rollout, as the admin API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct LastAnalysis {
    /// When it ran, seconds since the Unix epoch.
    pub at: f64,
    /// Its outcome.
    pub verdict: Verdict,
    /// The interval's figures.
    pub figures: Figures,
    /// `metrics` (the process's own) or `prometheus`.
    pub source: &'static str,
    /// Why the figures are unknown (a failed PromQL query), if they are.
    pub error: Option<String>,
}

/// One rollout as the admin API shows it.
#[derive(Clone, Debug)]
pub struct RolloutView {
    /// Its name.
    pub name: String,
    /// Its route, stable and canary upstreams.
    pub route: String,
    /// Stable upstream.
    pub stable: String,
    /// Canary upstream.
    pub canary: String,
    /// Where it stands.
    pub phase: Phase,
    /// Current step index, and how many there are.
    pub step: usize,
    /// Number of steps.
    pub steps: usize,
    /// The canary's percent now.
    pub canary_weight: u32,
    /// Conclusive passing analyses during the current step.
    pub passed: u32,
    /// The last analysis.
    pub last: Option<LastAnalysis>,
    /// The instance that leads the fleet's rollouts, when the state is shared and someone
    /// holds the lease.
    pub leader: Option<String>,
}

/// Why an admin command was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No rollout of that name.
    NotFound,
    /// The command does not apply in the rollout's phase.
    Conflict(&'static str),
    /// The shared state could not be read or written.
    Unavailable(String),
}

/// An analysis that is due: the built-in figures of its interval, and the PromQL settings when
/// the figures come from Prometheus.
pub(crate) struct Due {
    pub name: String,
    pub figures: Figures,
    pub prometheus: Option<cfg::PrometheusAnalysis>,
    pub timeout: Duration,
}

struct Entry {
    def: cfg::Rollout,
    steps: Vec<Step>,
    state: RolloutState,
    /// Totals at the start of the running interval.
    baseline: Totals,
    next: Instant,
    last: Option<LastAnalysis>,
}

/// The wall clock the controller reads (a test's own clock in tests).
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The state of every configured rollout.
pub struct Controller {
    store: Box<dyn StateStore>,
    metrics: Arc<Metrics>,
    entries: Vec<Entry>,
    /// This instance's part in a fleet, when the store is shared.
    fleet: Option<fleet::Fleet>,
    clock: Clock,
}

/// What a change of definition is judged by: a different route, upstreams or steps restart the
/// rollout; new analysis settings do not.
fn definition(r: &cfg::Rollout) -> String {
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|s| format!("{}/{}", s.weight, s.pause.as_millis()))
        .collect();
    format!("{}|{}|{}|{}", r.route, r.stable, r.canary, steps.join(","))
}

/// The wall clock as the state machine and the store see it.
pub(crate) fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Controller {
    /// The controller of `config`'s rollouts, resuming each from `store` when its stored
    /// definition is the configured one.
    pub fn new(store: Box<dyn StateStore>, metrics: Arc<Metrics>, config: &cfg::Config) -> Self {
        Self::with_identity(store, metrics, config, instance_id(), Arc::new(wall))
    }

    /// [`Controller::new`] for the instance called `me` (its name in a fleet's lease) reading
    /// time from `clock`.
    pub fn with_identity(
        store: Box<dyn StateStore>,
        metrics: Arc<Metrics>,
        config: &cfg::Config,
        me: String,
        clock: Clock,
    ) -> Self {
        let (text, version) = store.load_versioned(STATE).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the stored rollout state; rollouts start over");
            (None, 0)
        });
        let stored = parse_stored(text.as_deref(), store.as_ref());
        let fleet = store.shared().then(|| {
            tracing::info!(instance = %me, store = %store.describe(), "rollout state is shared: one instance of the fleet leads the rollouts");
            fleet::Fleet::new(me, version, fleet::lease_of(&stored))
        });
        let mut c = Controller {
            store,
            metrics,
            entries: Vec::new(),
            fleet,
            clock,
        };
        let now = c.now();
        for def in &config.rollouts {
            let resumed = stored
                .get("rollouts")
                .and_then(|r| r.get(&def.name))
                .filter(|s| s.get("definition").and_then(Value::as_str) == Some(&definition(def)))
                .and_then(decode);
            let mut entry = c.entry(def, resumed.unwrap_or_else(|| RolloutState::start(now)));
            if resumed.is_some() {
                entry.last = stored
                    .get("rollouts")
                    .and_then(|r| r.get(&def.name))
                    .and_then(decode_last);
            }
            match resumed {
                Some(s) => tracing::info!(
                    rollout = %def.name,
                    phase = s.phase.name(),
                    step = s.step,
                    weight = entry.state.canary_weight(&entry.steps),
                    "rollout resumed from stored state"
                ),
                None => c.count(&entry, Phase::Progressing, "started"),
            }
            c.gauge(&entry);
            c.entries.push(entry);
        }
        // A fleet's state is written by its leader only, once the lease says who that is.
        if c.fleet.is_none() {
            c.persist();
        }
        c
    }

    /// The time now, as the state machine and the store see it.
    fn now(&self) -> Duration {
        (self.clock)()
    }

    fn entry(&self, def: &cfg::Rollout, state: RolloutState) -> Entry {
        let steps = def
            .steps
            .iter()
            .map(|s| Step {
                weight: s.weight,
                pause: s.pause,
            })
            .collect();
        Entry {
            baseline: self.totals(def),
            next: Instant::now() + def.analysis.interval,
            def: def.clone(),
            steps,
            state,
            last: None,
        }
    }

    fn totals(&self, def: &cfg::Rollout) -> Totals {
        let t = self.metrics.upstream_totals(&def.route, &def.canary);
        Totals {
            requests: t.requests,
            errors: t.errors,
            buckets: t.buckets,
        }
    }

    /// The weights every rollout sets now.
    pub fn weights(&self) -> Vec<Override> {
        self.entries.iter().map(Self::weight_of).collect()
    }

    fn weight_of(e: &Entry) -> Override {
        Override {
            route: e.def.route.clone(),
            stable: e.def.stable.clone(),
            canary: e.def.canary.clone(),
            weight: e.state.canary_weight(&e.steps),
        }
    }

    /// The weights the rollouts of `config` would set once it is applied ([`Controller::sync`]):
    /// a rollout whose definition is unchanged keeps its weight, others start at their first step.
    pub fn weights_for(&self, config: &cfg::Config) -> Vec<Override> {
        config
            .rollouts
            .iter()
            .map(|def| match self.same(def) {
                Some(e) => Self::weight_of(e),
                None => Override {
                    route: def.route.clone(),
                    stable: def.stable.clone(),
                    canary: def.canary.clone(),
                    weight: def.steps.first().map_or(0, |s| s.weight),
                },
            })
            .collect()
    }

    fn same(&self, def: &cfg::Rollout) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.def.name == def.name && definition(&e.def) == definition(def))
    }

    /// Takes `config`'s rollouts: unchanged ones continue (with new analysis settings), new or
    /// changed ones start at their first step, removed ones stop (their route keeps its
    /// configured weights).
    pub fn sync(&mut self, config: &cfg::Config) {
        let now = self.now();
        let mut old = std::mem::take(&mut self.entries);
        for def in &config.rollouts {
            let kept = old
                .iter()
                .position(|e| e.def.name == def.name && definition(&e.def) == definition(def))
                .map(|i| old.swap_remove(i));
            let entry = match kept {
                Some(mut e) => {
                    e.def = def.clone();
                    e
                }
                None => {
                    let e = self.entry(def, RolloutState::start(now));
                    let how = if old.iter().any(|o| o.def.name == def.name) {
                        "definition changed: restarted"
                    } else {
                        "started"
                    };
                    self.count(&e, Phase::Progressing, how);
                    e
                }
            };
            self.gauge(&entry);
            self.entries.push(entry);
        }
        for gone in old {
            if !self.entries.iter().any(|e| e.def.name == gone.def.name) {
                tracing::info!(rollout = %gone.def.name, route = %gone.def.route, "rollout removed; the route keeps its configured weights");
                let _ = self
                    .metrics
                    .rollout_canary_weight
                    .remove_label_values(&[&gone.def.name]);
            }
        }
        self.persist();
    }

    /// The analyses due at `now` (rollouts that are progressing or paused), with the built-in
    /// figures of their interval; the next interval starts.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut out = Vec::new();
        if !self.leading() {
            return out;
        }
        for i in 0..self.entries.len() {
            let e = &self.entries[i];
            if e.state.phase.is_final() || e.next > now {
                continue;
            }
            let totals = self.totals(&e.def);
            let e = &mut self.entries[i];
            let figures = totals.since(&e.baseline);
            e.baseline = totals;
            e.next = now + e.def.analysis.interval;
            out.push(Due {
                name: e.def.name.clone(),
                figures,
                prometheus: e.def.analysis.prometheus.clone(),
                timeout: e.def.analysis.interval.min(Duration::from_secs(10)),
            });
        }
        out
    }

    /// Judges an interval's figures and applies the verdict; true when the weights changed.
    pub(crate) fn record(
        &mut self,
        name: &str,
        figures: Figures,
        source: &'static str,
        error: Option<String>,
    ) -> bool {
        let now = self.now();
        // Leadership may have passed on while a PromQL query ran: the new leader judges.
        if !self.leading() {
            return false;
        }
        let Some(i) = self.entries.iter().position(|e| e.def.name == name) else {
            return false;
        };
        let e = &mut self.entries[i];
        let a = &e.def.analysis;
        let thresholds = strait_core::rollout::Thresholds {
            min_requests: a.min_requests,
            max_error_rate: a.max_error_rate,
            max_p99: a.max_p99.map(|d| d.as_secs_f64()),
        };
        let verdict = strait_core::rollout::judge(&figures, &thresholds);
        tracing::debug!(rollout = name, verdict = verdict.name(), requests = figures.requests, error_rate = ?figures.error_rate, p99 = ?figures.p99, source, "rollout analysis");
        e.last = Some(LastAnalysis {
            at: now.as_secs_f64(),
            verdict,
            figures,
            source,
            error,
        });
        let before = e.state.canary_weight(&e.steps);
        let to = e.state.on_analysis(verdict, &e.steps, now);
        let changed = self.after(i, to, before, verdict_reason(verdict));
        self.persist();
        changed
    }

    /// Advances every rollout whose step is done; true when the weights changed.
    pub(crate) fn tick(&mut self) -> bool {
        if !self.leading() {
            return false;
        }
        let now = self.now();
        let mut changed = false;
        for i in 0..self.entries.len() {
            let e = &mut self.entries[i];
            let before = e.state.canary_weight(&e.steps);
            let to = e.state.advance(&e.steps, now);
            if to.is_some() {
                changed |= self.after(i, to, before, "step done");
                self.persist();
            }
        }
        changed
    }

    /// Applies an operator's command; true when the weights changed.
    pub fn command(&mut self, name: &str, cmd: Command) -> Result<bool, CommandError> {
        if self.fleet.is_some() {
            return self.command_shared(name, cmd);
        }
        let now = self.now();
        let i = self
            .entries
            .iter()
            .position(|e| e.def.name == name)
            .ok_or(CommandError::NotFound)?;
        let e = &mut self.entries[i];
        let before = e.state.canary_weight(&e.steps);
        let to = e.state.command(cmd, now).map_err(CommandError::Conflict)?;
        if to == Phase::Progressing {
            // A resumed rollout judges fresh traffic only.
            let totals = self.totals(&self.entries[i].def);
            let e = &mut self.entries[i];
            e.baseline = totals;
            e.next = Instant::now() + e.def.analysis.interval;
        }
        let changed = self.after(i, Some(to), before, "admin");
        self.persist();
        Ok(changed)
    }

    /// Logs and counts a transition of entry `i`; true when its weight changed.
    fn after(&mut self, i: usize, to: Option<Phase>, before: u32, reason: &str) -> bool {
        let Some(to) = to else { return false };
        let e = &self.entries[i];
        self.count(e, to, reason);
        self.gauge(e);
        e.state.canary_weight(&e.steps) != before
    }

    fn count(&self, e: &Entry, to: Phase, reason: &str) {
        let weight = e.state.canary_weight(&e.steps);
        tracing::info!(
            rollout = %e.def.name,
            route = %e.def.route,
            to = to.name(),
            step = e.state.step,
            canary_weight = weight,
            reason,
            "rollout transition"
        );
        self.metrics
            .rollout_transitions
            .with_label_values(&[&e.def.name, to.name()])
            .inc();
    }

    fn gauge(&self, e: &Entry) {
        self.metrics
            .rollout_canary_weight
            .with_label_values(&[&e.def.name])
            .set(i64::from(e.state.canary_weight(&e.steps)));
    }

    /// Every rollout, in configuration order.
    pub fn view(&self) -> Vec<RolloutView> {
        let leader = self.fleet_view().and_then(|f| f.leader);
        self.entries
            .iter()
            .map(|e| RolloutView {
                name: e.def.name.clone(),
                route: e.def.route.clone(),
                stable: e.def.stable.clone(),
                canary: e.def.canary.clone(),
                phase: e.state.phase,
                step: e.state.step,
                steps: e.steps.len(),
                canary_weight: e.state.canary_weight(&e.steps),
                passed: e.state.passed,
                last: e.last.clone(),
                leader: leader.clone(),
            })
            .collect()
    }

    /// Every rollout's stored form, by name.
    fn encoded(&self) -> serde_json::Map<String, Value> {
        self.entries
            .iter()
            .map(|e| {
                (
                    e.def.name.clone(),
                    encode(&e.def, &e.state, e.last.as_ref()),
                )
            })
            .collect()
    }

    /// Stores every rollout's state (a failed write is logged: the rollout goes on in memory).
    /// In a fleet only the leader writes, guarded by the version it last read or wrote.
    fn persist(&mut self) {
        if self.fleet.is_some() {
            if self.leading() {
                self.write_shared();
            }
            return;
        }
        let text = json!({ "rollouts": self.encoded() }).to_string();
        if let Err(e) = self.store.store(STATE, &text) {
            tracing::warn!(error = %e, "cannot store the rollout state; a restart will start rollouts over");
        }
    }
}

fn verdict_reason(v: Verdict) -> &'static str {
    match v {
        Verdict::Breach => "analysis breached its thresholds",
        Verdict::Pass => "analysis passed and the step's pause is over",
        Verdict::Inconclusive => "step's pause is over",
    }
}

/// The view as JSON for `GET /api/rollouts`.
pub fn view_json(v: &RolloutView) -> Value {
    let last = v.last.as_ref().map(last_json);
    json!({
        "name": v.name,
        "route": v.route,
        "stable": v.stable,
        "canary": v.canary,
        "phase": v.phase.name(),
        "step": v.step,
        "steps": v.steps,
        "passed": v.passed,
        "weights": { &v.stable: 100 - v.canary_weight, &v.canary: v.canary_weight },
        "last_analysis": last,
        "leader": v.leader,
    })
}
