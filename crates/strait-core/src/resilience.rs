//! Pure, lock-free decisions that keep a failing upstream from hurting everyone: retry budgets and backoff, outlier ejection, circuit breakers.
//!
//! Each takes `now` in milliseconds from [`crate::clock::millis`] and keeps its state in atomics,
//! so the request path never locks and tests drive time by hand. Races between threads can
//! admit a request or two more than a limit at the instant it changes; no counter is ever lost
//! for good.

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod outlier;
mod window;

pub use backoff::backoff;
pub use breaker::{Admission, Breaker, BreakerSettings, BreakerState};
pub use budget::{RetryBudget, RetryBudgetSettings};
pub use outlier::{AttemptResult, Outlier, OutlierSettings};
