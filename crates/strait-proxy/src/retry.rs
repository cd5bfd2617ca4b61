//! The compiled retry policy of a route: which failed attempts are tried again, how often, after which backoff, within which budget.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use prometheus::IntCounter;
use strait_core::resilience::RetryBudget;

/// A retry policy as the attempt loop reads it.
pub struct RetryPolicy {
    /// Policy name (logs, metrics).
    pub name: Arc<str>,
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Retry a connection that failed after the request was sent.
    pub on_reset: bool,
    /// Retry an attempt that exceeded its per-try timeout.
    pub on_timeout: bool,
    /// Bit `s - 400` is set when status `s` is retried.
    statuses: [u64; 4],
    /// Retry methods that are not idempotent too.
    pub non_idempotent: bool,
    /// Bound on each attempt until its response head.
    pub per_try_timeout: Option<Duration>,
    /// First backoff ceiling.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// The budget (live state of the policy: survives reloads while its settings stay).
    pub budget: Arc<RetryBudget>,
    /// Bodies up to this size are kept for a retry.
    pub max_replay_body: u64,
    /// `strait_retry_budget_exhausted_total{policy}`.
    pub exhausted: IntCounter,
}

impl RetryPolicy {
    /// A policy retrying `statuses` (each 400..=655).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: Arc<str>,
        attempts: u32,
        on_reset: bool,
        on_timeout: bool,
        statuses: &[u16],
        non_idempotent: bool,
        per_try_timeout: Option<Duration>,
        backoff: (Duration, Duration),
        budget: Arc<RetryBudget>,
        max_replay_body: u64,
        exhausted: IntCounter,
    ) -> Self {
        let mut bits = [0u64; 4];
        for &s in statuses {
            if let Some(i) = s.checked_sub(400).map(usize::from).filter(|&i| i < 256) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        RetryPolicy {
            name,
            attempts,
            on_reset,
            on_timeout,
            statuses: bits,
            non_idempotent,
            per_try_timeout,
            backoff_base: backoff.0,
            backoff_max: backoff.1,
            budget,
            max_replay_body,
            exhausted,
        }
    }

    /// Whether a response with `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        status
            .checked_sub(400)
            .map(usize::from)
            .filter(|&i| i < 256)
            .is_some_and(|i| self.statuses[i / 64] & (1 << (i % 64)) != 0)
    }

    /// Whether a request with `method` may be sent again after the upstream may have seen it.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.non_idempotent || is_idempotent(method)
    }
}

/// RFC 9110 §9.2.2: methods whose repetition has the effect of one request.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strait_core::resilience::RetryBudgetSettings;

    fn policy(statuses: &[u16]) -> RetryPolicy {
        RetryPolicy::new(
            "p".into(),
            3,
            true,
            false,
            statuses,
            false,
            None,
            (Duration::ZERO, Duration::ZERO),
            Arc::new(RetryBudget::new(RetryBudgetSettings::default())),
            1024,
            IntCounter::new("x", "x").unwrap(),
        )
    }

    #[test]
    fn statuses_are_matched_exactly() {
        let p = policy(&[429, 502, 503, 504, 599]);
        for s in [429, 502, 503, 504, 599] {
            assert!(p.retries_status(s), "{s}");
        }
        for s in [200, 399, 400, 500, 501, 505, 600, 655] {
            assert!(!p.retries_status(s), "{s}");
        }
    }

    #[test]
    fn only_idempotent_methods_by_default() {
        let p = policy(&[]);
        assert!(p.allows_method(&Method::GET) && p.allows_method(&Method::PUT));
        assert!(!p.allows_method(&Method::POST) && !p.allows_method(&Method::PATCH));
    }
}
