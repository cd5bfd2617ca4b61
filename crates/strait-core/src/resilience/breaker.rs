//! Circuit breakers: an upstream that fails too often is cut off for a while (fast 503s), then probed with a few requests before it gets all its traffic back.
//!
//! Closed → Open when, over a sliding window with at least `min_requests`, the failure ratio
//! reaches `failure_ratio`, or after `consecutive_failures` in a row. Open → HalfOpen once
//! `open_for` has passed; HalfOpen admits `half_open_requests` probes: all succeed → Closed,
//! one fails → Open again.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use super::window::Window;

/// A breaker's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Failures per request in the window that open the breaker (0.5 = half); 0 = off.
    pub failure_ratio: f64,
    /// Requests the window must hold before the ratio counts.
    pub min_requests: u32,
    /// The sliding window.
    pub window: Duration,
    /// Failures in a row that open the breaker; 0 = off.
    pub consecutive_failures: u32,
    /// How long it stays open before probing.
    pub open_for: Duration,
    /// Probes admitted while half-open; all must succeed to close.
    pub half_open_requests: u32,
}

/// The breaker's state (the value of `strait_circuit_breaker_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed = 0,
    /// Requests get a fast 503.
    Open = 1,
    /// A few probes are let through.
    HalfOpen = 2,
}

impl BreakerState {
    /// The state's name, for the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

/// How a request was admitted; hand it back to [`Breaker::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Normal traffic.
    Closed,
    /// A half-open probe.
    Probe,
    /// Refused: answer 503 at once.
    Rejected,
}

/// One breaker (live state of an upstream).
pub struct Breaker {
    settings: BreakerSettings,
    state: AtomicU8,
    opened_at: AtomicU64,
    /// (requests, failures) while closed.
    counts: Window,
    consecutive: AtomicU32,
    probes: AtomicU32,
    probes_ok: AtomicU32,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            state: AtomicU8::new(BreakerState::Closed as u8),
            opened_at: AtomicU64::new(0),
            counts: Window::new(settings.window.as_millis() as u64),
            consecutive: AtomicU32::new(0),
            probes: AtomicU32::new(0),
            probes_ok: AtomicU32::new(0),
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    /// The state as last recorded (an open breaker whose time is up reads as open until asked).
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Whether [`Breaker::admit`] would refuse at `now_ms`, without admitting anything
    /// (for skipping an endpoint while balancing).
    pub fn blocks(&self, now_ms: u64) -> bool {
        match self.state() {
            BreakerState::Closed => false,
            BreakerState::Open => {
                now_ms
                    < self.opened_at.load(Ordering::Acquire)
                        + self.settings.open_for.as_millis() as u64
            }
            BreakerState::HalfOpen => {
                self.probes.load(Ordering::Acquire) >= self.settings.half_open_requests.max(1)
            }
        }
    }

    /// Decides whether a request may go to the upstream at `now_ms`.
    pub fn admit(&self, now_ms: u64) -> Admission {
        loop {
            match self.state() {
                BreakerState::Closed => return Admission::Closed,
                BreakerState::Open => {
                    let opened = self.opened_at.load(Ordering::Acquire);
                    if now_ms < opened + self.settings.open_for.as_millis() as u64 {
                        return Admission::Rejected;
                    }
                    self.probes.store(0, Ordering::Relaxed);
                    self.probes_ok.store(0, Ordering::Relaxed);
                    let _ = self.transition(BreakerState::Open, BreakerState::HalfOpen);
                }
                BreakerState::HalfOpen => {
                    let n = self.probes.fetch_add(1, Ordering::AcqRel);
                    return if n < self.settings.half_open_requests.max(1) {
                        Admission::Probe
                    } else {
                        Admission::Rejected
                    };
                }
            }
        }
    }

    /// Records the result of an admitted request; returns the new state if it changed.
    pub fn record(&self, admission: Admission, success: bool, now_ms: u64) -> Option<BreakerState> {
        match admission {
            Admission::Rejected => None,
            Admission::Closed => {
                if self.state() != BreakerState::Closed {
                    // Sent before the breaker opened: its result says nothing new.
                    return None;
                }
                self.counts.add(now_ms, 1, u32::from(!success));
                let run = if success {
                    self.consecutive.store(0, Ordering::Relaxed);
                    0
                } else {
                    self.consecutive.fetch_add(1, Ordering::Relaxed) + 1
                };
                if success || !self.trips(run, now_ms) {
                    return None;
                }
                self.open(BreakerState::Closed, now_ms)
            }
            Admission::Probe => {
                if !success {
                    return self.open(BreakerState::HalfOpen, now_ms);
                }
                let ok = self.probes_ok.fetch_add(1, Ordering::AcqRel) + 1;
                if ok < self.settings.half_open_requests.max(1) {
                    return None;
                }
                self.counts.clear();
                self.consecutive.store(0, Ordering::Relaxed);
                self.transition(BreakerState::HalfOpen, BreakerState::Closed)
                    .then_some(BreakerState::Closed)
            }
        }
    }

    fn trips(&self, run: u32, now_ms: u64) -> bool {
        let s = &self.settings;
        if s.consecutive_failures > 0 && run >= s.consecutive_failures {
            return true;
        }
        if s.failure_ratio <= 0.0 {
            return false;
        }
        let (requests, failures) = self.counts.sum(now_ms);
        requests >= u64::from(s.min_requests.max(1))
            && failures as f64 >= s.failure_ratio * requests as f64
    }

    fn open(&self, from: BreakerState, now_ms: u64) -> Option<BreakerState> {
        self.opened_at.store(now_ms, Ordering::Release);
        self.transition(from, BreakerState::Open)
            .then_some(BreakerState::Open)
    }

    fn transition(&self, from: BreakerState, to: BreakerState) -> bool {
        self.state
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_ratio: 0.5,
            min_requests: 10,
            window: Duration::from_secs(10),
            consecutive_failures: 0,
            open_for: Duration::from_secs(5),
            half_open_requests: 2,
        }
    }

    fn send(b: &Breaker, ok: bool, now: u64) -> (Admission, Option<BreakerState>) {
        let a = b.admit(now);
        (a, b.record(a, ok, now))
    }

    #[test]
    fn closed_open_half_open_closed() {
        let b = Breaker::new(settings());
        for i in 0..9 {
            assert_eq!(send(&b, i % 2 == 0, 0).1, None, "below min_requests");
        }
        assert_eq!(
            send(&b, false, 0),
            (Admission::Closed, Some(BreakerState::Open))
        );
        assert_eq!(b.admit(4_999), Admission::Rejected);
        assert_eq!(send(&b, true, 5_000), (Admission::Probe, None));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(5_000), Admission::Probe);
        assert_eq!(b.admit(5_000), Admission::Rejected, "only two probes");
        assert_eq!(
            b.record(Admission::Probe, true, 5_001),
            Some(BreakerState::Closed)
        );
        assert_eq!(send(&b, false, 5_002).1, None, "window starts over");
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let mut s = settings();
        s.consecutive_failures = 3;
        let b = Breaker::new(s);
        send(&b, false, 0);
        send(&b, false, 0);
        assert_eq!(send(&b, false, 0).1, Some(BreakerState::Open));
        assert_eq!(
            send(&b, false, 6_000),
            (Admission::Probe, Some(BreakerState::Open))
        );
        assert_eq!(b.admit(10_999), Admission::Rejected);
        assert_eq!(b.admit(11_000), Admission::Probe);
    }

    #[test]
    fn results_of_requests_sent_before_opening_are_ignored() {
        let b = Breaker::new(settings());
        let early = b.admit(0);
        for _ in 0..10 {
            send(&b, false, 0);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.record(early, true, 1), None);
        assert_eq!(b.state(), BreakerState::Open);
    }

    proptest! {
        /// While open and before `open_for` passes nothing is admitted; half-open admits at
        /// most `half_open_requests` probes per opening.
        #[test]
        fn admissions_follow_the_state(steps in proptest::collection::vec((0u64..2_000, any::<bool>()), 1..300)) {
            let s = settings();
            let b = Breaker::new(s);
            let mut now = 0;
            let mut probes_this_opening = 0;
            for (dt, ok) in steps {
                now += dt;
                let before = b.state();
                let opened_at = b.opened_at.load(Ordering::Relaxed);
                let a = b.admit(now);
                if before == BreakerState::Open && now < opened_at + 5_000 {
                    prop_assert_eq!(a, Admission::Rejected);
                }
                if a == Admission::Probe { probes_this_opening += 1; }
                prop_assert!(probes_this_opening <= 2);
                if let Some(BreakerState::Open) = b.record(a, ok, now) { probes_this_opening = 0; }
                if b.state() == BreakerState::Closed { probes_this_opening = 0; }
            }
        }
    }
}
