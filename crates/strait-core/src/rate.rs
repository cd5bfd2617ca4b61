//! GCRA (the generic cell rate algorithm): the pure arithmetic of a rate limit, shared by the local limiter and the Redis script so both decide alike.
//!
//! A key's whole state is one number, its *theoretical arrival time* (TAT, in microseconds):
//! the time at which the key's bucket would be full again. A request at `now` is admitted when
//! `max(tat, now) - now <= tolerance`, and then moves the TAT one `interval` later. With
//! `interval = per / requests` and `tolerance = (burst - 1) * interval`, a quiet key admits
//! `burst` requests at once, and over any window of length `t` no key is admitted more than
//! `burst + t / interval` times. A refusal changes nothing, so refused traffic costs no state.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Microseconds from the process's rate-limit clock origin to `now` (at least 1, so 0 can mean
/// "no state").
pub fn micros(now: Instant) -> u64 {
    let origin = *ORIGIN.get_or_init(|| now);
    now.saturating_duration_since(origin).as_micros() as u64 + 1
}

/// A rate: `burst` at once, then one request every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gcra {
    /// Microseconds between requests at the sustained rate (at least 1).
    interval: u64,
    /// How far ahead of `now` the TAT may be and still admit: `(burst - 1) * interval`.
    tolerance: u64,
}

/// What a rate limit decided for one request, with what the `RateLimit` headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Requests the key could still make at once.
    pub remaining: u64,
    /// When refused: microseconds until a request would be admitted (0 when admitted).
    pub retry_after: u64,
    /// Microseconds until the key's bucket is full again.
    pub reset: u64,
}

impl Gcra {
    /// `requests` per `per`, up to `burst` at once (both at least 1; the interval is at least
    /// 1 µs).
    pub fn new(requests: u64, per: Duration, burst: u64) -> Gcra {
        let requests = requests.max(1);
        let interval = (per.as_micros() / u128::from(requests)).clamp(1, u128::from(u64::MAX / 4));
        let interval = interval as u64;
        let tolerance = interval.saturating_mul(burst.max(1) - 1);
        Gcra {
            interval,
            tolerance,
        }
    }

    /// Microseconds between requests at the sustained rate.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Microseconds the TAT may run ahead of now: `(burst - 1) * interval`.
    pub fn tolerance(&self) -> u64 {
        self.tolerance
    }

    /// Decides a request at `now` for a key whose stored TAT is `tat` (0 when the key has
    /// none); returns the decision and, when admitted, the TAT to store.
    pub fn check(&self, tat: u64, now: u64) -> (RateDecision, Option<u64>) {
        let tat = tat.max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return (self.refused(ahead), None);
        }
        let next = tat.saturating_add(self.interval);
        (self.admitted(next - now), Some(next))
    }

    /// The decision for an admitted request after which the TAT is `ahead` µs past now (what
    /// the Redis script reports).
    pub fn admitted(&self, ahead: u64) -> RateDecision {
        // Further requests admitted at once: those that keep the TAT within the tolerance.
        let room = self.tolerance.saturating_add(self.interval);
        let remaining = room.saturating_sub(ahead) / self.interval;
        RateDecision {
            allowed: true,
            remaining,
            retry_after: 0,
            reset: ahead,
        }
    }

    /// The decision for a refused request whose key's TAT is `ahead` µs past now (more than the
    /// tolerance).
    pub fn refused(&self, ahead: u64) -> RateDecision {
        RateDecision {
            allowed: false,
            remaining: 0,
            retry_after: ahead.saturating_sub(self.tolerance).max(1),
            reset: ahead,
        }
    }
}

#[cfg(test)]
mod tests;
