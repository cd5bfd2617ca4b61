//! Rollout decisions: judging one analysis interval of a canary's traffic against its thresholds, and the rollout state machine (steps, pauses, promotion, rollback); pure, with time passed in.
//!
//! The control plane's rollout controller is the thin shell around this: it reads the metric
//! totals (or asks Prometheus), calls [`judge`], feeds the verdict to [`RolloutState`] and
//! publishes the canary weight it returns.

use std::time::Duration;

pub mod lease;

#[cfg(test)]
mod tests;

// === analysis ===

/// What an interval must show for the canary to pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Fewer canary requests than this in an interval: inconclusive.
    pub min_requests: u64,
    /// Highest share of 5xx responses, 0..=1.
    pub max_error_rate: f64,
    /// Highest p99 latency in seconds; `None` does not check latency.
    pub max_p99: Option<f64>,
}

/// The figures of one analysis interval of the canary's traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Requests the canary answered in the interval.
    pub requests: u64,
    /// Share of them that were 5xx; `None` (or NaN) when unknown.
    pub error_rate: Option<f64>,
    /// p99 latency in seconds; `None` (or NaN) when unknown.
    pub p99: Option<f64>,
}

/// The outcome of one analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every threshold held on enough traffic.
    Pass,
    /// A threshold was exceeded: roll back.
    Breach,
    /// Too little traffic, or a figure is unknown: neither advance nor roll back.
    Inconclusive,
}

impl Verdict {
    /// Lower-case name (admin API, logs).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Breach => "breach",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The verdict called `name` (stored state).
    pub fn from_name(name: &str) -> Option<Verdict> {
        [Verdict::Pass, Verdict::Breach, Verdict::Inconclusive]
            .into_iter()
            .find(|v| v.name() == name)
    }
}

/// Judges an interval: too few requests is inconclusive; any known figure over its threshold is
/// a breach; otherwise an unknown figure that is checked is inconclusive, and the rest passes.
pub fn judge(f: &Figures, t: &Thresholds) -> Verdict {
    if f.requests < t.min_requests {
        return Verdict::Inconclusive;
    }
    let known = |v: Option<f64>| v.filter(|x| x.is_finite());
    let error_rate = known(f.error_rate);
    let p99 = t.max_p99.map(|max| (known(f.p99), max));
    if error_rate.is_some_and(|e| e > t.max_error_rate)
        || p99.is_some_and(|(p, max)| p.is_some_and(|p| p > max))
    {
        return Verdict::Breach;
    }
    if error_rate.is_none() || p99.is_some_and(|(p, _)| p.is_none()) {
        return Verdict::Inconclusive;
    }
    Verdict::Pass
}

/// Cumulative counters of the canary at one moment (summed over listeners, methods and codes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Requests answered.
    pub requests: u64,
    /// Of which 5xx.
    pub errors: u64,
    /// Duration histogram: (upper bound in seconds, cumulative count), ascending, the last +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl Totals {
    /// The figures of the interval from `earlier` to `self`. A counter that went down was reset
    /// (its series removed and created again), so then `self` alone is the interval.
    pub fn since(&self, earlier: &Totals) -> Figures {
        let reset = self.requests < earlier.requests
            || self.errors < earlier.errors
            || self.buckets.len() != earlier.buckets.len()
            || self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .any(|((le, c), (le0, c0))| le != le0 || c < c0);
        let base = if reset { &Totals::default() } else { earlier };
        let requests = self.requests - base.requests;
        let errors = self.errors - base.errors;
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &(le, c))| (le, c - base.buckets.get(i).map_or(0, |b| b.1)))
            .collect();
        Figures {
            requests,
            error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
            p99: quantile(0.99, &buckets),
        }
    }
}

/// The `q` quantile of a cumulative histogram, interpolated linearly within its bucket as
/// Prometheus's `histogram_quantile` does; `None` when it has no observations or no +Inf bucket.
/// A quantile in the +Inf bucket is the highest finite bound.
pub fn quantile(q: f64, buckets: &[(f64, u64)]) -> Option<f64> {
    let (&(last_le, count), finite) = buckets.split_last()?;
    if last_le != f64::INFINITY || count == 0 || finite.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * count as f64;
    let b = buckets.iter().position(|&(_, c)| c as f64 >= rank)?;
    if b == buckets.len() - 1 {
        return Some(finite[finite.len() - 1].0);
    }
    let (end, c_end) = buckets[b];
    let (start, c_start) = match b {
        0 if end <= 0.0 => return Some(end),
        0 => (0.0, 0),
        _ => buckets[b - 1],
    };
    let in_bucket = (c_end - c_start) as f64;
    if in_bucket == 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * ((rank - c_start as f64) / in_bucket))
}

// === state machine ===

/// One step: the canary's share of traffic and how long it holds before advancing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Canary weight in percent, 0..=100 (the stable upstream gets the rest).
    pub weight: u32,
    /// Least time at this step; it advances once this has passed and an analysis passed.
    pub pause: Duration,
}

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// At a step, analysing.
    Progressing,
    /// Held at its step by an operator; analyses are shown but not acted on.
    Paused,
    /// Done: the canary takes all traffic.
    Promoted,
    /// Rolled back by a breached analysis: the canary takes none.
    Failed,
    /// Rolled back by an operator: the canary takes none.
    Aborted,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 5] = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Promoted,
        Phase::Failed,
        Phase::Aborted,
    ];

    /// Lower-case name (admin API, stored state, the metric's `to` label).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Promoted => "promoted",
            Phase::Failed => "failed",
            Phase::Aborted => "aborted",
        }
    }

    /// The phase called `name`.
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether nothing but an operator changes it any more.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Promoted | Phase::Failed | Phase::Aborted)
    }
}

/// An operator's command (admin API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Hold at the current step.
    Pause,
    /// Continue a paused rollout (its step's pause starts again), or start a failed or aborted
    /// one again from the first step.
    Resume,
    /// Roll back now: canary 0%.
    Abort,
    /// Skip the remaining steps: canary 100%.
    Promote,
}

impl Command {
    /// The command called `name` (the admin API path segment).
    pub fn from_name(name: &str) -> Option<Command> {
        match name {
            "pause" => Some(Command::Pause),
            "resume" => Some(Command::Resume),
            "abort" => Some(Command::Abort),
            "promote" => Some(Command::Promote),
            _ => None,
        }
    }
}

/// The state of one rollout; `now` is time since the Unix epoch, so it can be stored and read
/// back by another process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolloutState {
    /// Where it stands.
    pub phase: Phase,
    /// Index of the current step (meaningful while progressing or paused).
    pub step: usize,
    /// When the current step (or the resumed pause) started.
    pub step_started: Duration,
    /// Conclusive analyses that passed during the current step.
    pub passed: u32,
}

impl RolloutState {
    /// A rollout starting at its first step.
    pub fn start(now: Duration) -> Self {
        RolloutState {
            phase: Phase::Progressing,
            step: 0,
            step_started: now,
            passed: 0,
        }
    }

    /// The canary's weight in percent.
    pub fn canary_weight(&self, steps: &[Step]) -> u32 {
        match self.phase {
            Phase::Progressing | Phase::Paused => steps.get(self.step).map_or(0, |s| s.weight),
            Phase::Promoted => 100,
            Phase::Failed | Phase::Aborted => 0,
        }
    }

    /// Applies an analysis verdict, then advances if the step is done; the phase entered, if
    /// the phase or step changed. Only a progressing rollout acts on analyses.
    pub fn on_analysis(
        &mut self,
        verdict: Verdict,
        steps: &[Step],
        now: Duration,
    ) -> Option<Phase> {
        if self.phase != Phase::Progressing {
            return None;
        }
        match verdict {
            Verdict::Breach => {
                self.phase = Phase::Failed;
                return Some(Phase::Failed);
            }
            Verdict::Pass => self.passed = self.passed.saturating_add(1),
            Verdict::Inconclusive => {}
        }
        self.advance(steps, now)
    }

    /// Moves to the next step (or promotes after the last) once the step's pause has passed and
    /// at least one analysis during it passed; the phase entered when it moved.
    pub fn advance(&mut self, steps: &[Step], now: Duration) -> Option<Phase> {
        if self.phase != Phase::Progressing || self.passed == 0 {
            return None;
        }
        let pause = steps.get(self.step).map_or(Duration::ZERO, |s| s.pause);
        if now.saturating_sub(self.step_started) < pause {
            return None;
        }
        if self.step + 1 >= steps.len() {
            self.phase = Phase::Promoted;
            return Some(Phase::Promoted);
        }
        self.step += 1;
        self.step_started = now;
        self.passed = 0;
        Some(Phase::Progressing)
    }

    /// Applies an operator's command; the phase entered, or why the command does not apply.
    pub fn command(&mut self, cmd: Command, now: Duration) -> Result<Phase, &'static str> {
        let to = match (cmd, self.phase) {
            (Command::Pause, Phase::Progressing) => Phase::Paused,
            (Command::Pause, _) => return Err("only a progressing rollout can be paused"),
            (Command::Resume, Phase::Paused) => {
                self.step_started = now;
                self.passed = 0;
                Phase::Progressing
            }
            (Command::Resume, Phase::Failed | Phase::Aborted) => {
                *self = RolloutState::start(now);
                Phase::Progressing
            }
            (Command::Resume, _) => {
                return Err("only a paused, failed or aborted rollout can be resumed")
            }
            (Command::Abort, Phase::Progressing | Phase::Paused) => Phase::Aborted,
            (Command::Abort, _) => {
                return Err("only a progressing or paused rollout can be aborted")
            }
            (Command::Promote, Phase::Promoted) => return Err("the rollout is already promoted"),
            (Command::Promote, _) => Phase::Promoted,
        };
        self.phase = to;
        Ok(to)
    }
}
