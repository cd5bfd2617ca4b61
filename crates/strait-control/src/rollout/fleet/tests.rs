//! Tests of the rollout controller in a fleet, without sockets: two controllers share one store and one test clock; one leads, the other follows its weights, takes over from the stored step when the lease ends, and pauses the fleet through a compare-and-swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strait_core::rollout::{Command, Phase};
use strait_observe::Metrics;

use super::super::tests::{config, pass};
use super::super::Controller;
use crate::provider::{MemoryStore, StateStore};

/// A store every controller of a test shares, saying so, as etcd is shared by a fleet.
#[derive(Clone, Default)]
struct Fleetwide(Arc<MemoryStore>);

impl StateStore for Fleetwide {
    fn describe(&self) -> String {
        "fleet".into()
    }
    fn load(&self, name: &str) -> Result<Option<String>, String> {
        self.0.load(name)
    }
    fn store(&self, name: &str, text: &str) -> Result<(), String> {
        self.0.store(name, text)
    }
    fn shared(&self) -> bool {
        true
    }
    fn load_versioned(&self, name: &str) -> Result<(Option<String>, i64), String> {
        self.0.load_versioned(name)
    }
    fn store_if(&self, name: &str, text: &str, version: i64) -> Result<Option<i64>, String> {
        self.0.store_if(name, text, version)
    }
}

/// Two instances, `a` and `b`, of a three-step rollout (pauses of 0 s) on one store and clock.
struct Pair {
    a: Controller,
    b: Controller,
    clock: Arc<AtomicU64>,
}

impl Pair {
    fn new() -> Self {
        let store = Fleetwide::default();
        let clock = Arc::new(AtomicU64::new(1_000_000));
        let c = config(
            "[{ weight: 5, pause: 0s }, { weight: 20, pause: 0s }, { weight: 50, pause: 0s }]",
        );
        let make = |me: &str| {
            let clock = clock.clone();
            Controller::with_identity(
                Box::new(store.clone()),
                Arc::new(Metrics::new()),
                &c,
                me.into(),
                Arc::new(move || Duration::from_millis(clock.load(Ordering::SeqCst))),
            )
        };
        Pair {
            a: make("a"),
            b: make("b"),
            clock,
        }
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.clock.load(Ordering::SeqCst))
    }

    fn pass_time(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }

    /// A round on each, `a` first.
    fn rounds(&mut self) -> (bool, bool) {
        let now = self.now();
        (self.a.round(now), self.b.round(now))
    }
}

fn weight(c: &Controller) -> u32 {
    c.weights()[0].weight
}

fn leader(c: &Controller) -> Option<String> {
    c.fleet_view().and_then(|f| f.leader)
}

#[test]
fn one_instance_leads_and_the_other_follows_its_weights() {
    let mut p = Pair::new();
    p.rounds();
    assert!(p.a.leading() && !p.b.leading());
    assert_eq!(leader(&p.a).as_deref(), Some("a"));
    assert_eq!(leader(&p.b).as_deref(), Some("a"));
    // Only the leader judges and advances.
    assert!(!p.b.record("c", pass(), "metrics", None));
    assert_eq!(weight(&p.b), 5);
    assert!(p.a.record("c", pass(), "metrics", None));
    assert_eq!(weight(&p.a), 20);
    p.pass_time(1000);
    let (_, b_changed) = p.rounds();
    assert!(b_changed, "the follower takes the leader's step");
    assert_eq!((p.b.view()[0].step, weight(&p.b)), (1, 20));
    assert_eq!(
        p.b.view()[0].last.as_ref().map(|l| l.source),
        Some("metrics")
    );
    assert_eq!(p.b.view()[0].leader.as_deref(), Some("a"));
}

#[test]
fn a_follower_takes_over_from_the_stored_step_when_the_lease_ends() {
    let mut p = Pair::new();
    p.rounds();
    p.a.record("c", pass(), "metrics", None);
    // `a` dies: nobody renews. `b` follows until the lease has ended.
    for _ in 0..5 {
        p.pass_time(1000);
        let now = p.now();
        p.b.round(now);
        assert!(!p.b.leading());
    }
    p.pass_time(1000);
    let now = p.now();
    p.b.round(now);
    assert!(p.b.leading(), "takes over once the lease ended");
    assert_eq!((p.b.view()[0].step, weight(&p.b)), (1, 20));
    assert!(p.b.record("c", pass(), "metrics", None));
    assert_eq!(weight(&p.b), 50);
    // `a` comes back and finds it follows now.
    let now = p.now();
    assert!(p.a.round(now));
    assert!(!p.a.leading());
    assert_eq!((leader(&p.a).as_deref(), weight(&p.a)), (Some("b"), 50));
}

#[test]
fn a_leader_that_keeps_renewing_keeps_leading() {
    let mut p = Pair::new();
    for _ in 0..30 {
        p.rounds();
        assert!(p.a.leading() && !p.b.leading());
        p.pass_time(1000);
    }
}

#[test]
fn a_pause_on_the_follower_pauses_the_fleet_and_the_leaders_lost_write_is_made_again() {
    let mut p = Pair::new();
    p.rounds();
    assert_eq!(p.b.command("c", Command::Pause), Ok(false));
    assert_eq!(p.b.view()[0].phase, Phase::Paused);
    // The leader has not read it yet: it advances, but its write loses the race.
    assert!(p.a.record("c", pass(), "metrics", None));
    assert!(
        !p.a.leading(),
        "a lost write drops the lease until the next read"
    );
    let now = p.now();
    p.a.round(now);
    assert!(p.a.leading());
    assert_eq!((p.a.view()[0].phase, weight(&p.a)), (Phase::Paused, 5));
    assert!(!p.a.record("c", pass(), "metrics", None), "paused: no step");
    assert!(!p.a.tick());
    // Resume on the follower; the leader picks it up and advances again.
    assert_eq!(p.b.command("c", Command::Resume), Ok(false));
    p.pass_time(1000);
    p.rounds();
    assert_eq!(p.a.view()[0].phase, Phase::Progressing);
    assert!(p.a.record("c", pass(), "metrics", None));
    assert_eq!(weight(&p.a), 20);
}

#[test]
fn two_instances_taking_an_ended_lease_at_once_leave_one_leader() {
    let mut p = Pair::new();
    // Both read the empty store before either writes: `b`'s write loses.
    let now = p.now();
    p.a.round(now);
    p.b.round(now);
    assert!(p.a.leading() ^ p.b.leading());
    p.pass_time(7000);
    p.rounds();
    assert!(p.a.leading() ^ p.b.leading());
}

#[test]
fn a_leader_stopping_hands_the_lease_over_at_once() {
    let mut p = Pair::new();
    p.rounds();
    assert!(p.a.leading());
    p.a.release();
    assert!(!p.a.leading());
    p.pass_time(1000);
    p.rounds();
    assert!(
        p.b.leading(),
        "the lease ended with the release, not 6 s later"
    );
    assert!(!p.a.round_if_due(std::time::Instant::now()) && !p.a.leading());
}

#[test]
fn a_fleet_without_rollouts_takes_no_lease() {
    let mut p = Pair::new();
    let mut without = config("[{ weight: 5, pause: 0s }]");
    without.rollouts.clear();
    p.a.sync(&without);
    p.b.sync(&without);
    let at = std::time::Instant::now();
    assert!(!p.a.round_if_due(at) && !p.b.round_if_due(at));
    assert_eq!(p.a.fleet_view().and_then(|f| f.leader), None);
    assert_eq!(p.b.fleet_view().and_then(|f| f.leader), None);
}
