//! A sliding window of paired counters in time buckets, updated with atomics.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Buckets per window: the window slides in steps of a tenth of its length.
pub(crate) const BUCKETS: u64 = 10;

struct Bucket {
    /// Which bucket period (`now / bucket_ms`) the counts belong to.
    epoch: AtomicU64,
    a: AtomicU32,
    b: AtomicU32,
}

/// Two counters (e.g. requests and retries) over the last `BUCKETS` bucket periods.
pub(crate) struct Window {
    bucket_ms: u64,
    buckets: Box<[Bucket]>,
}

impl Window {
    /// A window `window_ms` long (at least `BUCKETS` ms).
    pub(crate) fn new(window_ms: u64) -> Self {
        Window {
            bucket_ms: (window_ms / BUCKETS).max(1),
            buckets: (0..BUCKETS)
                .map(|_| Bucket {
                    epoch: AtomicU64::new(u64::MAX),
                    a: AtomicU32::new(0),
                    b: AtomicU32::new(0),
                })
                .collect(),
        }
    }

    fn bucket(&self, now_ms: u64) -> &Bucket {
        let epoch = now_ms / self.bucket_ms;
        let b = &self.buckets[(epoch % BUCKETS) as usize];
        let seen = b.epoch.load(Ordering::Acquire);
        if seen != epoch
            && b.epoch
                .compare_exchange(seen, epoch, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This bucket last counted an older period: start it over.
            b.a.store(0, Ordering::Relaxed);
            b.b.store(0, Ordering::Relaxed);
        }
        b
    }

    /// Adds to the counters of the current bucket.
    pub(crate) fn add(&self, now_ms: u64, a: u32, b: u32) {
        let bucket = self.bucket(now_ms);
        if a > 0 {
            bucket.a.fetch_add(a, Ordering::Relaxed);
        }
        if b > 0 {
            bucket.b.fetch_add(b, Ordering::Relaxed);
        }
    }

    /// The sums over the window ending at `now_ms`.
    pub(crate) fn sum(&self, now_ms: u64) -> (u64, u64) {
        let epoch = now_ms / self.bucket_ms;
        let oldest = epoch.saturating_sub(BUCKETS - 1);
        self.buckets.iter().fold((0, 0), |(a, b), bucket| {
            let e = bucket.epoch.load(Ordering::Acquire);
            if e != u64::MAX && e >= oldest && e <= epoch {
                (
                    a + u64::from(bucket.a.load(Ordering::Relaxed)),
                    b + u64::from(bucket.b.load(Ordering::Relaxed)),
                )
            } else {
                (a, b)
            }
        })
    }

    /// Forgets everything counted.
    pub(crate) fn clear(&self) {
        for b in self.buckets.iter() {
            b.epoch.store(u64::MAX, Ordering::Release);
            b.a.store(0, Ordering::Relaxed);
            b.b.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_after_its_length() {
        let w = Window::new(10_000);
        w.add(0, 3, 1);
        w.add(4_000, 2, 0);
        assert_eq!(w.sum(5_000), (5, 1));
        assert_eq!(w.sum(10_500), (2, 0));
        assert_eq!(w.sum(13_999), (2, 0));
        assert_eq!(w.sum(14_000), (0, 0));
        w.add(20_000, 1, 1);
        assert_eq!(w.sum(20_000), (1, 1));
        w.clear();
        assert_eq!(w.sum(20_000), (0, 0));
    }
}
