//! Sampling decisions as pure functions: parent-based ratio at the start, error/latency tail at the end, and an adaptive ratio controller.
//!
//! The start decision is what the upstream is told (`sampled` flag); the end decision can only
//! add traces (a 5xx or a slow request is exported even if the start said no), so such a
//! trace may lack the upstream's own spans.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a finished request's spans are exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The start decision sampled it.
    Sampled,
    /// It ended with a 5xx (or failed upstream) and `always_on_error` is set.
    Error,
    /// It took at least `latency_threshold`.
    Slow,
}

/// A ratio as a threshold on a uniform random u64: sampled when `r < threshold`; 1.0 always samples.
pub fn ratio_threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio <= 0.0 || ratio.is_nan() {
        0
    } else {
        (ratio * 18_446_744_073_709_551_616.0) as u64
    }
}

/// The start decision: the caller's flag when parent-based and present, else the ratio draw `r`.
pub fn start(parent: Option<bool>, parent_based: bool, threshold: u64, r: u64) -> bool {
    if parent_based {
        if let Some(sampled) = parent {
            return sampled;
        }
    }
    threshold == u64::MAX || r < threshold
}

/// The end decision; `None` means the spans are dropped.
pub fn end(
    started: bool,
    status: u16,
    elapsed: Duration,
    always_on_error: bool,
    latency: Option<Duration>,
) -> Option<Keep> {
    if started {
        Some(Keep::Sampled)
    } else if always_on_error && status >= 500 {
        Some(Keep::Error)
    } else if latency.is_some_and(|l| elapsed >= l) {
        Some(Keep::Slow)
    } else {
        None
    }
}

/// The adaptive ratio for the next window: aims at `target` new sampled traces per second given
/// `decisions` ratio draws in the last `window`, never above `max` (the configured ratio).
///
/// Half of the step is taken each window so a burst does not swing the ratio to its extremes.
pub fn adapt(current: f64, max: f64, target: f64, decisions: u64, window: Duration) -> f64 {
    let max = max.clamp(0.0, 1.0);
    if target <= 0.0 {
        return max;
    }
    let secs = window.as_secs_f64();
    if decisions == 0 || secs <= 0.0 {
        // No load: move back towards the configured ratio.
        return (current + (max - current) * 0.5).clamp(0.0, max);
    }
    let rate = decisions as f64 / secs;
    let wanted = (target / rate).min(max);
    (current + (wanted - current) * 0.5).clamp(0.0, max)
}

/// The live ratio: read per request (one relaxed load), written by the controller once per window.
#[derive(Debug)]
pub struct LiveRatio {
    threshold: AtomicU64,
    ratio_bits: AtomicU64,
    /// Ratio draws since the controller last looked (only counted when a target is set).
    pub decisions: AtomicU64,
}

impl LiveRatio {
    /// Starts at `ratio`.
    pub fn new(ratio: f64) -> Self {
        LiveRatio {
            threshold: AtomicU64::new(ratio_threshold(ratio)),
            ratio_bits: AtomicU64::new(ratio.to_bits()),
            decisions: AtomicU64::new(0),
        }
    }

    /// The threshold for [`start`].
    pub fn threshold(&self) -> u64 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// The ratio in force.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio_bits.load(Ordering::Relaxed))
    }

    /// Sets the ratio in force.
    pub fn set(&self, ratio: f64) {
        self.ratio_bits.store(ratio.to_bits(), Ordering::Relaxed);
        self.threshold
            .store(ratio_threshold(ratio), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ratio_one_and_zero_are_exact() {
        assert!(start(None, true, ratio_threshold(1.0), u64::MAX));
        assert!(!start(None, true, ratio_threshold(0.0), 0));
    }

    #[test]
    fn errors_and_slow_requests_are_kept_even_when_the_start_said_no() {
        assert_eq!(end(false, 503, S, true, None), Some(Keep::Error));
        assert_eq!(end(false, 503, S, false, None), None);
        assert_eq!(end(false, 200, S, true, Some(S)), Some(Keep::Slow));
        assert_eq!(end(false, 200, S / 2, true, Some(S)), None);
        assert_eq!(end(true, 200, S, true, None), Some(Keep::Sampled));
    }

    #[test]
    fn adaptive_ratio_converges_to_the_target() {
        // 1000 req/s, target 10/s, configured max 0.5: the ratio settles near 0.01.
        let mut r = 0.5;
        for _ in 0..30 {
            r = adapt(r, 0.5, 10.0, 1000, S);
        }
        assert!((r - 0.01).abs() < 1e-4, "{r}");
        // Load below target: back to the configured ratio.
        for _ in 0..30 {
            r = adapt(r, 0.5, 10.0, 5, S);
        }
        assert!((r - 0.5).abs() < 1e-4, "{r}");
    }

    proptest! {
        #[test]
        fn parent_flag_wins_when_parent_based(p: bool, t: u64, r: u64) {
            prop_assert_eq!(start(Some(p), true, t, r), p);
        }

        #[test]
        fn sampled_share_tracks_the_ratio(ratio in 0.0f64..=1.0, seed: u64) {
            let t = ratio_threshold(ratio);
            let mut x = seed | 1;
            let mut n = 0u32;
            for _ in 0..4000 {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                n += u32::from(start(None, true, t, x));
            }
            let share = f64::from(n) / 4000.0;
            prop_assert!((share - ratio).abs() < 0.05, "ratio {} share {}", ratio, share);
        }

        #[test]
        fn started_traces_are_always_kept(status in 100u16..600, ms in 0u64..10_000, e: bool) {
            prop_assert_eq!(end(true, status, Duration::from_millis(ms), e, None), Some(Keep::Sampled));
        }

        #[test]
        fn five_hundreds_are_kept_when_asked(status in 500u16..600, ms in 0u64..10_000) {
            prop_assert!(end(false, status, Duration::from_millis(ms), true, None).is_some());
        }

        #[test]
        fn adapted_ratio_stays_within_zero_and_max(
            cur in 0.0f64..=1.0, max in 0.0f64..=1.0, target in 0.0f64..1e6, n in 0u64..10_000_000
        ) {
            let r = adapt(cur.min(max), max, target, n, S);
            prop_assert!((0.0..=max).contains(&r), "{}", r);
        }
    }
}
