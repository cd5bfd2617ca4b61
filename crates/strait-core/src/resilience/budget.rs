//! Retry budgets: retries may be at most a ratio of the requests in a sliding window, plus a small floor per second, so retries cannot multiply load during an outage (as linkerd's and Envoy's budgets do).

use std::time::Duration;

use super::window::Window;

/// A retry budget's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudgetSettings {
    /// Retries allowed per request in the window (0.2 = one retry per five requests).
    pub ratio: f64,
    /// Retries allowed per second regardless of traffic, so a quiet route can still retry.
    pub min_per_second: u32,
    /// The sliding window the ratio is measured over.
    pub window: Duration,
}

impl Default for RetryBudgetSettings {
    fn default() -> Self {
        // linkerd's ratio and window; a lower floor (3 a second, 30 a window), so a total outage
        // adds at most about a quarter of the traffic even at a few hundred requests.
        RetryBudgetSettings {
            ratio: 0.2,
            min_per_second: 3,
            window: Duration::from_secs(10),
        }
    }
}

/// A retry budget shared by every request of the policy that owns it (live state).
pub struct RetryBudget {
    settings: RetryBudgetSettings,
    /// (requests, retries) per bucket.
    counts: Window,
}

impl RetryBudget {
    /// A budget with nothing deposited yet.
    pub fn new(settings: RetryBudgetSettings) -> Self {
        RetryBudget {
            counts: Window::new(settings.window.as_millis() as u64),
            settings,
        }
    }

    /// Counts a request (its first attempt).
    pub fn deposit(&self, now_ms: u64) {
        self.counts.add(now_ms, 1, 0);
    }

    /// Takes one retry from the budget if it allows one; false means do not retry.
    pub fn withdraw(&self, now_ms: u64) -> bool {
        let (requests, retries) = self.counts.sum(now_ms);
        if retries >= self.allowed(requests) {
            return false;
        }
        self.counts.add(now_ms, 0, 1);
        true
    }

    /// Retries allowed in a window holding `requests` requests.
    fn allowed(&self, requests: u64) -> u64 {
        let floor = u64::from(self.settings.min_per_second) * self.settings.window.as_secs().max(1);
        floor + (self.settings.ratio * requests as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(ratio: f64, min: u32) -> RetryBudgetSettings {
        RetryBudgetSettings {
            ratio,
            min_per_second: min,
            window: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_total_outage_retries_at_most_the_ratio_plus_the_floor() {
        let b = RetryBudget::new(settings(0.2, 1));
        let mut retried = 0;
        for i in 0..1000u64 {
            // 100 requests per second for 10 s, each failing and asking for a retry.
            let now = i * 10;
            b.deposit(now);
            if b.withdraw(now) {
                retried += 1;
            }
        }
        assert!(retried <= 200 + 10, "{retried}");
        assert!(retried >= 190, "{retried}");
    }

    #[test]
    fn the_floor_lets_a_quiet_route_retry() {
        let b = RetryBudget::new(settings(0.0, 1));
        assert!(b.withdraw(0));
        let more = (0..20).filter(|_| b.withdraw(0)).count();
        assert_eq!(more, 9, "10 per 10 s window in all");
    }

    #[test]
    fn the_budget_refills_as_the_window_slides() {
        let b = RetryBudget::new(settings(0.0, 1));
        while b.withdraw(0) {}
        assert!(!b.withdraw(9_999));
        assert!(b.withdraw(10_000));
    }

    proptest! {
        /// Whatever the sequence, a retry is only granted while the retries in the window stay
        /// within the ratio of the requests in the window plus the floor.
        #[test]
        fn granted_retries_stay_within_budget(
            steps in proptest::collection::vec((0u64..500, any::<bool>()), 1..400),
            ratio in 0.0f64..1.0,
            min in 0u32..5,
        ) {
            let b = RetryBudget::new(settings(ratio, min));
            let mut now = 0;
            for (dt, retry) in steps {
                now += dt;
                if !retry {
                    b.deposit(now);
                    continue;
                }
                if b.withdraw(now) {
                    let (requests, retries) = b.counts.sum(now);
                    let bound = u64::from(min) * 10 + (ratio * requests as f64) as u64;
                    prop_assert!(retries <= bound, "retries {} > bound {} (requests {})", retries, bound, requests);
                }
            }
        }
    }
}
