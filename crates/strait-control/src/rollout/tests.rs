//! Tests of the rollout controller without sockets: weights applied to routes, state stored and resumed, definitions that change restart, and PromQL answers read.

use std::sync::Arc;

use serde_json::json;
use strait_core::rollout::{Command, Figures, Phase};
use strait_observe::Metrics;

use super::*;
use crate::provider::{MemoryStore, StateStore};

pub(super) fn config(steps: &str) -> cfg::Config {
    let yaml = format!(
        "listeners:\n  - name: web\n    listen: 127.0.0.1:0\n\
upstreams:\n  - {{ name: v1, endpoints: [\"127.0.0.1:1\"] }}\n  - {{ name: v2, endpoints: [\"127.0.0.1:2\"] }}\n\
routes:\n  - name: checkout\n    upstreams: [v1, v2]\n\
rollouts:\n  - name: c\n    route: checkout\n    stable: v1\n    canary: v2\n    steps: {steps}\n    analysis: {{ interval: 1s, min_requests: 1 }}\n"
    );
    cfg::parse("t.yaml", &yaml, None).unwrap().config
}

/// A store shared between two controllers, as a file is between two processes.
#[derive(Clone, Default)]
struct Shared(Arc<MemoryStore>);

impl StateStore for Shared {
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn load(&self, name: &str) -> Result<Option<String>, String> {
        self.0.load(name)
    }
    fn store(&self, name: &str, text: &str) -> Result<(), String> {
        self.0.store(name, text)
    }
}

pub(super) fn pass() -> Figures {
    Figures {
        requests: 100,
        error_rate: Some(0.0),
        p99: None,
    }
}

fn backends(c: &cfg::Config) -> Vec<(String, u32)> {
    match &c.routes[0].action {
        cfg::RouteAction::Forward { backends } => backends
            .iter()
            .map(|b| (b.upstream.clone(), b.weight))
            .collect(),
        _ => panic!("forward route"),
    }
}

#[test]
fn weights_are_applied_to_the_routes_backends() {
    let c = config("[{ weight: 5, pause: 0s }, { weight: 50, pause: 0s }]");
    let r = Controller::new(
        Box::new(MemoryStore::default()),
        Arc::new(Metrics::new()),
        &c,
    );
    let applied = apply(&c, &r.weights());
    assert_eq!(
        backends(&applied),
        [("v1".to_string(), 95), ("v2".to_string(), 5)]
    );
}

#[test]
fn a_restart_resumes_the_stored_step_and_a_changed_definition_starts_over() {
    let store = Shared::default();
    let metrics = Arc::new(Metrics::new());
    let c = config("[{ weight: 5, pause: 0s }, { weight: 50, pause: 0s }]");
    let mut r = Controller::new(Box::new(store.clone()), metrics.clone(), &c);
    assert!(r.record("c", pass(), "metrics", None));
    assert_eq!(r.weights()[0].weight, 50);

    let again = Controller::new(Box::new(store.clone()), metrics.clone(), &c);
    assert_eq!(again.weights()[0].weight, 50);
    assert_eq!(again.view()[0].step, 1);

    let changed = config("[{ weight: 10, pause: 0s }, { weight: 50, pause: 0s }]");
    assert_eq!(again.weights_for(&changed)[0].weight, 10);
    let fresh = Controller::new(Box::new(store), metrics, &changed);
    assert_eq!((fresh.view()[0].step, fresh.weights()[0].weight), (0, 10));
}

#[test]
fn commands_and_a_breach_move_the_weights_and_are_counted() {
    let metrics = Arc::new(Metrics::new());
    let c = config("[{ weight: 20, pause: 0s }]");
    let mut r = Controller::new(Box::new(MemoryStore::default()), metrics.clone(), &c);
    assert_eq!(r.command("c", Command::Pause), Ok(false));
    assert_eq!(
        r.command("nope", Command::Pause),
        Err(CommandError::NotFound)
    );
    assert!(matches!(
        r.command("c", Command::Pause),
        Err(CommandError::Conflict(_))
    ));
    assert_eq!(r.command("c", Command::Resume), Ok(false));
    let breach = Figures {
        error_rate: Some(0.5),
        ..pass()
    };
    assert!(r.record("c", breach, "metrics", None));
    assert_eq!(r.view()[0].phase, Phase::Failed);
    assert_eq!(r.weights()[0].weight, 0);
    assert_eq!(r.command("c", Command::Promote), Ok(true));
    assert_eq!(r.weights()[0].weight, 100);
    let failed = metrics
        .rollout_transitions
        .with_label_values(&["c", "failed"])
        .get();
    assert_eq!(failed, 1);
    assert_eq!(
        metrics
            .rollout_canary_weight
            .with_label_values(&["c"])
            .get(),
        100
    );
}

#[test]
fn removing_a_rollout_leaves_the_configured_weights() {
    let c = config("[{ weight: 20, pause: 0s }]");
    let mut r = Controller::new(
        Box::new(MemoryStore::default()),
        Arc::new(Metrics::new()),
        &c,
    );
    let mut without = c.clone();
    without.rollouts.clear();
    r.sync(&without);
    assert!(r.weights().is_empty());
    assert_eq!(
        backends(&apply(&without, &r.weights())),
        [("v1".to_string(), 1), ("v2".to_string(), 1)]
    );
}

#[test]
fn promql_answers_are_read_and_nan_or_empty_is_unknown() {
    let vector = |v: &str| json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.0, v]}]}});
    assert_eq!(run::sample(&vector("0.25")), Ok(Some(0.25)));
    assert_eq!(run::sample(&vector("NaN")), Ok(None));
    let empty = json!({"status":"success","data":{"resultType":"vector","result":[]}});
    assert_eq!(run::sample(&empty), Ok(None));
    let scalar = json!({"status":"success","data":{"resultType":"scalar","result":[1.0, "0.5"]}});
    assert_eq!(run::sample(&scalar), Ok(Some(0.5)));
    let bad = json!({"status":"error","error":"parse error"});
    assert!(run::sample(&bad).unwrap_err().contains("parse error"));
}
