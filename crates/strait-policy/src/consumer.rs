//! Consumers: who an auth policy identified, left in the request's extensions, sent to the upstream in a header and counted per configured consumer.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use strait_core::Consumer;

/// Counts one request of a consumer (a metric handle bound at compile time).
pub type Count = Arc<dyn Fn() + Send + Sync>;

/// A configured consumer, ready to be applied to a request without allocating.
#[derive(Clone)]
pub struct ConsumerTag {
    consumer: Consumer,
    value: HeaderValue,
    count: Count,
}

impl ConsumerTag {
    /// The consumer `name` (a valid header value), counted by `count`.
    pub fn new(name: &str, count: Count) -> Result<Self, String> {
        let value = HeaderValue::from_str(name)
            .map_err(|_| format!("consumer `{name}`: not a valid header value"))?;
        Ok(ConsumerTag {
            consumer: Consumer(Arc::from(name)),
            value,
            count,
        })
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.consumer.0
    }

    /// Marks `head` as coming from this consumer: extension, upstream header and metric.
    pub fn apply(&self, head: &mut http::request::Parts, header: &HeaderName) {
        head.headers.insert(header.clone(), self.value.clone());
        head.extensions.insert(self.consumer.clone());
        (self.count)();
    }
}

/// SHA-256 of `parts` fed in order.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// A per-process random salt, so cache keys derived from credentials are not plain SHA-256
/// of them (precomputed tables are useless against a memory dump).
pub(crate) fn salt() -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&strait_core::rand::next_u64().to_le_bytes());
    s[8..].copy_from_slice(&strait_core::rand::next_u64().to_le_bytes());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_is_equality() {
        let a = sha256(&[b"a"]);
        let b = sha256(&[b"b"]);
        assert!(ct_eq(&a, &a));
        assert!(!ct_eq(&a, &b));
        assert_eq!(sha256(&[b"ab"]), sha256(&[b"a", b"b"]));
    }
}
