//! Passive health (outlier ejection): consecutive failures of an endpoint eject it for a time that grows with repeats, as Envoy's outlier detection and nginx's `max_fails` do.
//!
//! The per-endpoint counters live here; the cap on how many endpoints of an upstream may be
//! ejected at once needs the upstream's view, so [`Outlier::record`] only says when an endpoint
//! crossed a threshold and the caller decides with [`may_eject`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Outlier-detection settings of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutlierSettings {
    /// Consecutive gateway failures (connect failure, reset, timeout, 502/503/504) that eject; 0 = off.
    pub consecutive_gateway_failures: u32,
    /// Consecutive 5xx of any kind (gateway failures included) that eject; 0 = off.
    pub consecutive_5xx: u32,
    /// The first ejection's length; the n-th lasts n times as long.
    pub base_ejection: Duration,
    /// The longest an ejection lasts.
    pub max_ejection: Duration,
    /// The most endpoints of an upstream ejected at once, in percent (rounded down: one
    /// endpoint alone is never ejected at 50 %).
    pub max_ejected_percent: u32,
}

/// What one attempt to an endpoint said about its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// Any response below 500.
    Success,
    /// No connection, a reset, a timeout, or 502/503/504.
    GatewayFailure,
    /// Another 5xx.
    ServerError,
}

impl AttemptResult {
    /// Classifies a response status.
    pub fn of_status(status: u16) -> Self {
        match status {
            502..=504 => AttemptResult::GatewayFailure,
            500..=599 => AttemptResult::ServerError,
            _ => AttemptResult::Success,
        }
    }
}

/// The passive-health state of one endpoint (live state: it survives reloads).
#[derive(Debug, Default)]
pub struct Outlier {
    gateway: AtomicU32,
    errors: AtomicU32,
    /// Millisecond clock value until which the endpoint is ejected (0 = never ejected).
    ejected_until: AtomicU64,
    /// Ejections so far, less one per healthy period since: the multiplier of the next one.
    times: AtomicU32,
    ejections: AtomicU64,
}

impl Outlier {
    /// Whether the endpoint is ejected at `now_ms`.
    pub fn is_ejected(&self, now_ms: u64) -> bool {
        now_ms < self.ejected_until.load(Ordering::Relaxed)
    }

    /// How many times the endpoint has been ejected since it was first used.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// The clock value the current (or last) ejection ends at; 0 if never ejected.
    pub fn ejected_until(&self) -> u64 {
        self.ejected_until.load(Ordering::Relaxed)
    }

    /// Counts an attempt; true when the endpoint just crossed a threshold and should be ejected.
    pub fn record(&self, s: &OutlierSettings, r: AttemptResult, now_ms: u64) -> bool {
        match r {
            AttemptResult::Success => {
                self.gateway.store(0, Ordering::Relaxed);
                self.errors.store(0, Ordering::Relaxed);
                self.decay(s, now_ms);
                false
            }
            AttemptResult::GatewayFailure => {
                let g = self.gateway.fetch_add(1, Ordering::Relaxed) + 1;
                let e = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                crossed(s.consecutive_gateway_failures, g) || crossed(s.consecutive_5xx, e)
            }
            AttemptResult::ServerError => {
                self.gateway.store(0, Ordering::Relaxed);
                let e = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
                crossed(s.consecutive_5xx, e)
            }
        }
    }

    /// Ejects the endpoint from `now_ms`; returns for how long.
    pub fn eject(&self, s: &OutlierSettings, now_ms: u64) -> Duration {
        let times = self.times.fetch_add(1, Ordering::Relaxed) + 1;
        let length = s
            .base_ejection
            .saturating_mul(times)
            .min(s.max_ejection.max(s.base_ejection));
        self.ejected_until
            .store(now_ms + length.as_millis() as u64, Ordering::Relaxed);
        self.gateway.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        length
    }

    /// Ends an ejection now (an active health check passed, as Envoy's
    /// `successful_active_health_check_uneject_host`); true if the endpoint was ejected.
    pub fn uneject(&self, now_ms: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        now_ms < until
            && self
                .ejected_until
                .compare_exchange(until, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// A success a base ejection time after the last ejection ended lowers the multiplier.
    fn decay(&self, s: &OutlierSettings, now_ms: u64) {
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until == 0 || self.times.load(Ordering::Relaxed) == 0 {
            return;
        }
        let healthy_since = until + s.base_ejection.as_millis() as u64;
        if now_ms >= healthy_since {
            // Restart the healthy period, so each one earns one step down (once, if racing).
            if self
                .ejected_until
                .compare_exchange(until, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                let _ = self
                    .times
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1));
            }
        }
    }
}

fn crossed(threshold: u32, count: u32) -> bool {
    threshold > 0 && count >= threshold
}

/// Whether one more endpoint of `total` may be ejected while `ejected` already are.
pub fn may_eject(s: &OutlierSettings, ejected: usize, total: usize) -> bool {
    let cap = total * s.max_ejected_percent as usize / 100;
    ejected < cap
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            consecutive_gateway_failures: 3,
            consecutive_5xx: 0,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }

    #[test]
    fn consecutive_gateway_failures_eject_and_a_success_resets_the_count() {
        let s = settings();
        let o = Outlier::default();
        assert!(!o.record(&s, AttemptResult::GatewayFailure, 0));
        assert!(!o.record(&s, AttemptResult::GatewayFailure, 0));
        assert!(!o.record(&s, AttemptResult::Success, 0));
        assert!(!o.record(&s, AttemptResult::GatewayFailure, 0));
        assert!(!o.record(&s, AttemptResult::GatewayFailure, 0));
        assert!(o.record(&s, AttemptResult::GatewayFailure, 0));
        assert_eq!(o.eject(&s, 1_000), Duration::from_secs(30));
        assert!(o.is_ejected(30_999));
        assert!(!o.is_ejected(31_000));
    }

    #[test]
    fn repeated_ejections_last_longer_up_to_the_maximum() {
        let s = settings();
        let o = Outlier::default();
        let lengths: Vec<u64> = (0..12).map(|i| o.eject(&s, i).as_secs()).collect();
        assert_eq!(&lengths[..4], [30, 60, 90, 120]);
        assert_eq!(lengths[11], 300);
    }

    #[test]
    fn healthy_periods_bring_the_multiplier_down() {
        let s = settings();
        let o = Outlier::default();
        o.eject(&s, 0);
        o.eject(&s, 0); // second: 60 s, until 60_000
        o.record(&s, AttemptResult::Success, 60_000 + 30_000);
        assert_eq!(o.eject(&s, 100_000), Duration::from_secs(60));
    }

    #[test]
    fn server_errors_count_only_with_consecutive_5xx() {
        let mut s = settings();
        let o = Outlier::default();
        for _ in 0..10 {
            assert!(!o.record(&s, AttemptResult::ServerError, 0));
        }
        s.consecutive_5xx = 2;
        let o = Outlier::default();
        assert!(!o.record(&s, AttemptResult::ServerError, 0));
        assert!(o.record(&s, AttemptResult::GatewayFailure, 0));
    }

    #[test]
    fn an_uneject_ends_the_ejection_at_once() {
        let s = settings();
        let o = Outlier::default();
        assert!(!o.uneject(0));
        o.eject(&s, 0);
        assert!(o.is_ejected(10));
        assert!(o.uneject(10));
        assert!(!o.is_ejected(10));
    }

    #[test]
    fn the_cap_rounds_down() {
        let s = settings();
        assert!(!may_eject(&s, 0, 1));
        assert!(may_eject(&s, 0, 2));
        assert!(!may_eject(&s, 1, 2));
        assert!(may_eject(&s, 4, 10));
        assert!(!may_eject(&s, 5, 10));
    }

    proptest! {
        /// Never ejected without a threshold crossed, and an ejection always ends.
        #[test]
        fn ejection_follows_thresholds(results in proptest::collection::vec(0u8..3, 0..200)) {
            let s = settings();
            let o = Outlier::default();
            let mut consecutive = 0;
            let mut now = 0u64;
            for r in results {
                now += 100;
                let r = [AttemptResult::Success, AttemptResult::GatewayFailure, AttemptResult::ServerError][r as usize];
                consecutive = if r == AttemptResult::GatewayFailure { consecutive + 1 } else { 0 };
                let crossed = o.record(&s, r, now);
                prop_assert_eq!(crossed, consecutive >= 3);
                if crossed {
                    let len = o.eject(&s, now);
                    prop_assert!(len <= s.max_ejection);
                    prop_assert!(!o.is_ejected(now + len.as_millis() as u64));
                    consecutive = 0;
                }
            }
        }
    }
}
