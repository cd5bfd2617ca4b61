//! Milliseconds since a process-wide origin: the time unit the lock-free resilience state stores in atomics.

use std::sync::OnceLock;
use std::time::Instant;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Milliseconds from the process's clock origin to `now` (0 for instants before it).
///
/// The origin is fixed by the first call, so values from different calls compare.
pub fn millis(now: Instant) -> u64 {
    let origin = *ORIGIN.get_or_init(|| now);
    now.saturating_duration_since(origin).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_instants_give_larger_millis() {
        let t = Instant::now();
        let a = millis(t);
        let b = millis(t + Duration::from_millis(1500));
        assert_eq!(b - a, 1500);
    }
}
