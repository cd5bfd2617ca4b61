//! The stored form of the rollout state: each rollout's phase, step, step start and passes under its definition, with the last analysis so that every instance of a fleet can show the leader's.

use std::time::Duration;

use serde_json::{json, Value};
use strait_config as cfg;
use strait_core::rollout::{Figures, Phase, RolloutState, Verdict};

use super::{definition, LastAnalysis};
use crate::provider::StateStore;

/// The stored document, or `Null` when there is none or it is unreadable (rollouts start over).
pub(super) fn parse_stored(text: Option<&str>, store: &dyn StateStore) -> Value {
    let Some(text) = text else {
        return Value::Null;
    };
    serde_json::from_str::<Value>(text).unwrap_or_else(|e| {
        tracing::warn!(store = %store.describe(), error = %e, "stored rollout state is not JSON; rollouts start over");
        Value::Null
    })
}

pub(super) fn encode(def: &cfg::Rollout, s: &RolloutState, last: Option<&LastAnalysis>) -> Value {
    let mut v = json!({
        "definition": definition(def),
        "phase": s.phase.name(),
        "step": s.step,
        "step_started_ms": s.step_started.as_millis() as u64,
        "passed": s.passed,
    });
    // Stored so that every instance of a fleet shows the leader's last analysis.
    if let Some(last) = last {
        v["last_analysis"] = last_json(last);
    }
    v
}

pub(super) fn last_json(a: &LastAnalysis) -> Value {
    json!({
        "time": a.at,
        "verdict": a.verdict.name(),
        "source": a.source,
        "requests": a.figures.requests,
        "error_rate": a.figures.error_rate.filter(|x| x.is_finite()),
        "p99_seconds": a.figures.p99.filter(|x| x.is_finite()),
        "error": a.error,
    })
}

/// The last analysis stored with a rollout's state, if any.
pub(super) fn decode_last(v: &Value) -> Option<LastAnalysis> {
    let a = v.get("last_analysis")?;
    let source = match a.get("source")?.as_str()? {
        "prometheus" => "prometheus",
        _ => "metrics",
    };
    Some(LastAnalysis {
        at: a.get("time")?.as_f64()?,
        verdict: Verdict::from_name(a.get("verdict")?.as_str()?)?,
        figures: Figures {
            requests: a.get("requests")?.as_u64()?,
            error_rate: a.get("error_rate").and_then(Value::as_f64),
            p99: a.get("p99_seconds").and_then(Value::as_f64),
        },
        source,
        error: a.get("error").and_then(Value::as_str).map(str::to_owned),
    })
}

pub(super) fn decode(v: &Value) -> Option<RolloutState> {
    Some(RolloutState {
        phase: Phase::from_name(v.get("phase")?.as_str()?)?,
        step: usize::try_from(v.get("step")?.as_u64()?).ok()?,
        step_started: Duration::from_millis(v.get("step_started_ms")?.as_u64()?),
        passed: u32::try_from(v.get("passed")?.as_u64()?).ok()?,
    })
}
