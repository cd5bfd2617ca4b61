//! Listen addresses that cannot be bound together: the admin listener's and every traffic listener's, checked before `run` meets EADDRINUSE.

use std::net::{IpAddr, SocketAddr};

use crate::diag::Pos;

#[cfg(test)]
mod tests;

/// Whether binding `a` and then `b` in one process fails with EADDRINUSE.
///
/// Listeners set SO_REUSEADDR and not SO_REUSEPORT or IPV6_V6ONLY, so on Linux a wildcard
/// (`0.0.0.0:P`) takes port P on every IPv4 address, and `[::]:P` takes it on every IPv6
/// *and* IPv4 address (the kernel's default `bindv6only = 0`). Port 0 picks a fresh port and
/// never collides.
pub(crate) fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() == 0 || a.port() != b.port() {
        return false;
    }
    let (a, b) = (canonical(a.ip()), canonical(b.ip()));
    if a == b {
        return true;
    }
    match (a, b) {
        (IpAddr::V6(x), _) | (_, IpAddr::V6(x)) if x.is_unspecified() => true,
        (IpAddr::V4(x), IpAddr::V4(_)) | (IpAddr::V4(_), IpAddr::V4(x)) if x.is_unspecified() => {
            true
        }
        _ => false,
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) binds the IPv4 address it maps.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Addresses seen so far and where they were written, to report the second of two that clash.
#[derive(Default)]
pub(crate) struct Binds(Vec<(SocketAddr, Pos, String)>);

impl Binds {
    /// Records `addr` (written at `at`, by `what`) and returns why it clashes with an earlier one, if it does.
    pub(crate) fn add(&mut self, addr: SocketAddr, at: Pos, what: String) -> Option<String> {
        let clash = self.0.iter().find(|(a, _, _)| overlaps(*a, addr)).map(|(a, p, w)| {
            // The admin listener's default address is written nowhere.
            let place = match p.0 {
                0 => format!("({w})"),
                line => format!("at line {line} ({w})"),
            };
            if *a == addr {
                format!("address {addr} is already used {place}")
            } else {
                format!(
                    "address {addr} overlaps {a} {place}: a wildcard address takes the port on every address, so both cannot be bound"
                )
            }
        });
        self.0.push((addr, at, what));
        clash
    }
}
