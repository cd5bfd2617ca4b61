//! Entry points for the guards' criterion bench (`benches/guards.rs`): not an API.

use crate::h1guard::{H1Limits, Rejection};

/// Checks `response` against `request` as the upstream guard does, in one read: the bytes
/// hyper would be handed.
pub fn upstream_response(request: &[u8], response: &[u8]) -> Result<usize, &'static str> {
    let mut framing = crate::upguard::Framing::new(crate::upguard::MAX_READ_BUF);
    framing.on_written(request);
    let mut out = Vec::with_capacity(2);
    framing.feed(response, &mut out)?;
    Ok(out
        .iter()
        .map(|s| match s {
            crate::upguard::Segment::Pass(r) => r.len(),
            crate::upguard::Segment::Head(h) => h.len(),
        })
        .sum())
}

/// Reads a response head the upstream guard passed as the direct client does (`pool::direct`):
/// its fields, kept in a header map, and the bytes after it.
pub fn direct_response_head(response: &[u8]) -> Option<(usize, usize)> {
    let mut buf = bytes::BytesMut::from(response);
    let parsed = crate::pool::direct::parse(&mut buf).ok()??;
    Some((parsed.headers.len(), buf.len()))
}

/// Checks one request head as the downstream guard does: the bytes it took.
pub fn request_head(head: &[u8]) -> Result<usize, Rejection> {
    let mut parser = crate::h1guard::HeadParser::new(H1Limits::default());
    match parser.feed(head)? {
        (n, Some(_)) => Ok(n),
        (_, None) => Err(Rejection::BadRequest("incomplete head")),
    }
}
