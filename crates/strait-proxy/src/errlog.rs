//! Rate-limited warn lines for failed requests: the detail clients never see (upstream, endpoint, cause) reaches operators without letting a dead upstream flood the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use strait_core::clock;

/// Lines allowed per second before the rest are counted and summarised.
const PER_SECOND: u64 = 10;

/// A per-second budget of log lines, lock-free.
pub struct LogLimiter {
    /// The second (clock millis / 1000) the count belongs to, in the high 32 bits; the count below.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// A limiter with nothing logged yet.
    pub const fn new() -> Self {
        LogLimiter {
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be written now; when it may, also how many were suppressed since
    /// the last one written.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let second = clock::millis(now) / 1000 + 1;
        let r = self
            .window
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let (s, n) = (w >> 32, w & 0xffff_ffff);
                if s != second {
                    Some(second << 32 | 1)
                } else if n < PER_SECOND {
                    Some(w + 1)
                } else {
                    None
                }
            });
        match r {
            Ok(_) => Some(self.suppressed.swap(0, Ordering::AcqRel)),
            Err(_) => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ten_lines_a_second_then_a_count_of_the_rest() {
        let l = LogLimiter::new();
        let t = Instant::now();
        for _ in 0..PER_SECOND {
            assert_eq!(l.allow(t), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(l.allow(t), None);
        }
        assert_eq!(l.allow(t + Duration::from_secs(1)), Some(5));
        assert_eq!(l.allow(t + Duration::from_secs(1)), Some(0));
    }
}
