//! Exponential backoff with full jitter between retries (as Envoy's and the AWS architecture blog's).

use std::time::Duration;

/// The wait before retry number `retry` (1 for the first retry): uniform in
/// `[0, min(max, base * 2^(retry-1))]`, drawn from `random`.
pub fn backoff(retry: u32, base: Duration, max: Duration, random: u64) -> Duration {
    let shift = retry.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << shift).min(max);
    let nanos = ceiling.as_nanos() as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(random % (nanos + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let (b, m) = (Duration::from_millis(25), Duration::from_millis(250));
        assert_eq!(
            backoff(1, b, m, u64::MAX),
            Duration::from_nanos(u64::MAX % 25_000_001)
        );
        assert_eq!(backoff(1, b, m, 25_000_000), b);
        assert_eq!(backoff(2, b, m, 50_000_000), Duration::from_millis(50));
        assert_eq!(backoff(9, b, m, 250_000_000), m);
    }

    proptest! {
        #[test]
        fn never_above_the_ceiling(retry in 0u32..100, random in any::<u64>(), base in 0u64..1_000, max in 0u64..10_000) {
            let (b, m) = (Duration::from_millis(base), Duration::from_millis(max));
            prop_assert!(backoff(retry, b, m, random) <= m);
        }
    }
}
