//! The rollout controller across a fleet that shares one stored state document (the etcd provider): one instance leads under a lease kept in the document and runs the analyses, advances steps and writes the state; the others read the document every second and set their weights from it, and apply admin commands to it with a compare-and-swap.
//!
//! The document is the file provider's (`{"rollouts": {NAME: state}}`) plus the lease,
//! `leader` and `lease_until_ms`. Every write is a compare-and-swap on the version last read
//! or written ([`StateStore::store_if`]), so:
//! - of two instances that take an ended lease at once, one wins and the other follows;
//! - a leader's write after another instance's admin command fails, and the leader reads the
//!   document again (adopting the command) before its next decision; a decision lost that way
//!   is made again at the next analysis interval;
//! - an old leader that was cut off cannot overwrite its successor's state.
//!
//! The lease decisions are pure ([`strait_core::rollout::lease`]), including the clock-skew
//! assumption: instances' wall clocks agree within [`TIMING`]'s `skew` (1 s).
//!
//! [`StateStore::store_if`]: crate::provider::StateStore::store_if

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strait_core::rollout::lease::{self, Decision, Lease, TIMING};
use strait_core::rollout::Phase;

use super::{decode, decode_last, definition, encode, parse_stored, CommandError, Controller};
use super::{Command, STATE};

/// How often every instance reads the shared document (followers take the leader's weights
/// within about this long).
pub(crate) const ROUND: Duration = Duration::from_secs(1);

/// How many times an admin command is tried against a document that keeps changing.
const COMMAND_TRIES: usize = 5;

/// This instance's part in a fleet.
pub(crate) struct Fleet {
    /// Its name in the lease.
    me: String,
    /// The lease as last read or written; `None` after a write lost a race (until read again).
    lease: Option<Lease>,
    /// The document's version as last read or written; -1 forces the next read to be adopted.
    version: i64,
    /// Whether it acted as leader at the last round (transitions are logged).
    leading: bool,
    /// When the next round is due.
    next_round: Instant,
    /// Set at shutdown: no more rounds, never leads again.
    stopped: bool,
}

impl Fleet {
    /// The part of `me`, having read the document at `version` with `lease` in it.
    pub(crate) fn new(me: String, version: i64, lease: Option<Lease>) -> Self {
        Fleet {
            me,
            lease,
            version,
            leading: false,
            next_round: Instant::now(),
            stopped: false,
        }
    }
}

/// Who this instance is and who leads, for `GET /api/rollouts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetView {
    /// This instance's name in the lease.
    pub instance: String,
    /// The instance holding an unexpired lease, if any.
    pub leader: Option<String>,
}

/// This instance's name in a fleet: `STRAIT_INSTANCE_ID` when set, else `HOSTNAME:PID`.
pub fn instance_id() -> String {
    if let Ok(id) = std::env::var("STRAIT_INSTANCE_ID") {
        if !id.trim().is_empty() {
            return id.trim().to_owned();
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "strait".into());
    format!("{host}:{}", std::process::id())
}

/// The lease stored in `doc`, if it has a well-formed one.
pub(crate) fn lease_of(doc: &Value) -> Option<Lease> {
    Some(Lease {
        holder: doc.get("leader")?.as_str()?.to_owned(),
        until: Duration::from_millis(doc.get("lease_until_ms")?.as_u64()?),
    })
}

// === impl Controller ===

impl Controller {
    /// Whether this instance acts on the rollouts now: always without a fleet, else while it
    /// holds the lease (see [`lease::acts`]).
    pub(crate) fn leading(&self) -> bool {
        match &self.fleet {
            None => true,
            Some(f) => !f.stopped && lease::acts(f.lease.as_ref(), &f.me, self.now(), &TIMING),
        }
    }

    /// Who this instance is and who leads; `None` when the state is not shared.
    pub fn fleet_view(&self) -> Option<FleetView> {
        let f = self.fleet.as_ref()?;
        let now = self.now();
        Some(FleetView {
            instance: f.me.clone(),
            leader: f
                .lease
                .as_ref()
                .filter(|l| now < l.until)
                .map(|l| l.holder.clone()),
        })
    }

    /// Runs a round when one is due (see [`Controller::round`]); true when the weights changed.
    /// Without rollouts there is nothing to lead: no reads, no lease writes (a lease held runs
    /// out).
    pub(crate) fn round_if_due(&mut self, at: Instant) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        match &mut self.fleet {
            Some(f) if f.next_round <= at => f.next_round = at + ROUND,
            _ => return false,
        }
        let now = self.now();
        self.round(now)
    }

    /// Reads the shared document: takes over what another instance wrote (a follower's
    /// weights, an admin command), then takes, renews or keeps the lease, or follows. True
    /// when the weights changed. Blocking (a read, maybe a write).
    pub(crate) fn round(&mut self, now: Duration) -> bool {
        let Some(f) = self.fleet.as_ref().filter(|f| !f.stopped) else {
            return false;
        };
        let (me, known) = (f.me.clone(), f.version);
        let (text, version) = match self.store.load_versioned(STATE) {
            Ok(read) => read,
            Err(e) => {
                // The lease as last read still holds: a leader goes on until it runs out.
                tracing::warn!(error = %e, "cannot read the shared rollout state");
                self.note_leadership();
                return false;
            }
        };
        let doc = parse_stored(text.as_deref(), self.store.as_ref());
        let stored = lease_of(&doc);
        let changed = version != known && self.adopt(&doc);
        let f = self.fleet.as_mut().expect("fleet");
        f.version = version;
        f.lease = stored.clone();
        match lease::decide(stored.as_ref(), &me, now, &TIMING) {
            Decision::Follow | Decision::Keep => {}
            Decision::Renew | Decision::Take => {
                f.lease = Some(lease::grant(&me, now, &TIMING));
                self.write_shared();
            }
        }
        self.note_leadership();
        changed
    }

    /// At shutdown: stops taking part, and a leader ends its lease in the store so another
    /// instance takes over at its next read instead of when the lease runs out. Blocking.
    pub fn release(&mut self) {
        let leading = self.leading();
        let Some(f) = &mut self.fleet else { return };
        f.stopped = true;
        if !leading {
            return;
        }
        f.lease = Some(Lease {
            holder: f.me.clone(),
            until: Duration::ZERO,
        });
        if self.write_shared() {
            tracing::info!("rollout leadership released");
        }
    }

    /// Logs a change of leadership; a new leader judges only traffic from now on.
    fn note_leadership(&mut self) {
        let leading = self.leading();
        let Some(f) = &mut self.fleet else { return };
        if leading == f.leading {
            return;
        }
        f.leading = leading;
        let holder = f.lease.as_ref().map(|l| l.holder.clone());
        if leading {
            tracing::info!(instance = %f.me, "this instance leads the fleet's rollouts");
            for i in 0..self.entries.len() {
                let totals = self.totals(&self.entries[i].def);
                let e = &mut self.entries[i];
                e.baseline = totals;
                e.next = Instant::now() + e.def.analysis.interval;
            }
        } else {
            tracing::info!(instance = %f.me, leader = ?holder, "this instance follows the fleet's rollouts");
        }
    }

    /// Takes the states of `doc` for the rollouts whose stored definition is the configured
    /// one; true when a weight changed.
    fn adopt(&mut self, doc: &Value) -> bool {
        let mut changed = false;
        for i in 0..self.entries.len() {
            let def = &self.entries[i].def;
            let Some(stored) = doc.get("rollouts").and_then(|r| r.get(&def.name)) else {
                continue;
            };
            if stored.get("definition").and_then(Value::as_str) != Some(&definition(def)) {
                // Another definition (a config change not seen here yet, or not there yet).
                continue;
            }
            let Some(state) = decode(stored) else {
                continue;
            };
            let totals = self.totals(def);
            let e = &mut self.entries[i];
            if let Some(last) = decode_last(stored) {
                e.last = Some(last);
            }
            if state == e.state {
                continue;
            }
            let before = e.state.canary_weight(&e.steps);
            if (state.phase, state.step) != (e.state.phase, e.state.step) {
                // A step or phase begun elsewhere: judge its traffic from now on.
                e.baseline = totals;
                e.next = Instant::now() + e.def.analysis.interval;
            }
            e.state = state;
            let weight = e.state.canary_weight(&e.steps);
            tracing::info!(
                rollout = %e.def.name,
                phase = e.state.phase.name(),
                step = e.state.step,
                canary_weight = weight,
                "rollout state taken from the shared store"
            );
            changed |= weight != before;
            let e = &self.entries[i];
            self.gauge(e);
        }
        changed
    }

    /// The whole document this instance writes as leader: every rollout and `lease`.
    fn document(&self, lease: Option<&Lease>) -> String {
        let mut doc = json!({ "rollouts": self.encoded() });
        if let Some(l) = lease {
            doc["leader"] = json!(l.holder);
            doc["lease_until_ms"] = json!(l.until.as_millis() as u64);
        }
        doc.to_string()
    }

    /// Writes the document with this instance's lease, guarded by the version last seen;
    /// true when it was written. A lost race drops the lease until the next round, due now.
    pub(super) fn write_shared(&mut self) -> bool {
        let Some(f) = &self.fleet else { return false };
        let text = self.document(f.lease.as_ref());
        let version = f.version;
        let result = self.store.store_if(STATE, &text, version);
        let f = self.fleet.as_mut().expect("fleet");
        match result {
            Ok(Some(v)) => {
                f.version = v;
                true
            }
            Ok(None) => {
                tracing::info!(
                    "the shared rollout state changed since it was read; reading it again"
                );
                f.lease = None;
                f.version = -1;
                f.next_round = Instant::now();
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the shared rollout state");
                false
            }
        }
    }

    /// An admin command in a fleet: read the document, apply the command to the stored state,
    /// write it back if nobody wrote in between (else again). Any instance can take it; the
    /// leader adopts it at its next read. True when this instance's weights changed.
    pub(super) fn command_shared(
        &mut self,
        name: &str,
        cmd: Command,
    ) -> Result<bool, CommandError> {
        let i = self
            .entries
            .iter()
            .position(|e| e.def.name == name)
            .ok_or(CommandError::NotFound)?;
        let before = self.entries[i].state.canary_weight(&self.entries[i].steps);
        for _ in 0..COMMAND_TRIES {
            let (text, version) = self
                .store
                .load_versioned(STATE)
                .map_err(CommandError::Unavailable)?;
            let mut doc = parse_stored(text.as_deref(), self.store.as_ref());
            if !doc.is_object() {
                doc = json!({});
            }
            let f = self.fleet.as_mut().expect("fleet");
            if version != f.version {
                f.version = version;
                f.lease = lease_of(&doc);
                self.adopt(&doc);
            }
            let now = self.now();
            let e = &self.entries[i];
            let mut state = e.state;
            let to = state.command(cmd, now).map_err(CommandError::Conflict)?;
            if !doc.get("rollouts").is_some_and(Value::is_object) {
                doc["rollouts"] = json!({});
            }
            doc["rollouts"][name] = encode(&e.def, &state, e.last.as_ref());
            let written = self
                .store
                .store_if(STATE, &doc.to_string(), version)
                .map_err(CommandError::Unavailable)?;
            let Some(v) = written else { continue };
            self.fleet.as_mut().expect("fleet").version = v;
            let totals = self.totals(&self.entries[i].def);
            let e = &mut self.entries[i];
            e.state = state;
            if to == Phase::Progressing {
                // A resumed rollout judges fresh traffic only.
                e.baseline = totals;
                e.next = Instant::now() + e.def.analysis.interval;
            }
            self.after(i, Some(to), before, "admin");
            let e = &self.entries[i];
            return Ok(e.state.canary_weight(&e.steps) != before);
        }
        Err(CommandError::Unavailable(
            "the shared rollout state kept changing; try again".into(),
        ))
    }
}

#[cfg(test)]
mod tests;
