//! Upstream HTTP/1 responses checked with the rigour of the request guard (placeholder).

/// Largest read buffer of an upstream HTTP/1 connection (and so its longest response head): what
/// a response whose client stopped reading can pin, besides one chunk in flight.
pub(crate) const MAX_READ_BUF: usize = 16 * 1024;
