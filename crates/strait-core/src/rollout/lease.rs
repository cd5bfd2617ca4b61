//! Leadership of the rollout controller across a fleet that shares one stored state document: who holds the lease, when an instance may act on it, renew it or take it over; pure, with wall-clock time passed in.
//!
//! The lease is two fields of the stored document, `leader` and `lease_until` (wall-clock time
//! since the Unix epoch), written only with a compare-and-swap on the document's version, so
//! of two instances that try to take or renew it at once exactly one succeeds. Wall clocks
//! are compared across machines: the design assumes they agree within [`Timing::skew`]. A
//! leader stops acting `skew` before its lease ends and another instance takes over only
//! once it has ended, so with clocks within `skew` of each other two instances never act at
//! once; with worse clocks they may briefly, and the compare-and-swap still lets only one of
//! them write.

use std::time::Duration;

/// The lease as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The instance that leads.
    pub holder: String,
    /// When the lease ends, as time since the Unix epoch.
    pub until: Duration,
}

/// How long a lease lasts and when it is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease granted now lasts: the longest a fleet goes without a leader after
    /// the leader dies (plus one poll).
    pub ttl: Duration,
    /// A leader renews once less than `ttl - renew_every` is left.
    pub renew_every: Duration,
    /// The largest difference between two instances' wall clocks the design allows.
    pub skew: Duration,
}

/// The timing the controller uses: a lease of 6 s renewed every 2 s, clocks within 1 s.
pub const TIMING: Timing = Timing {
    ttl: Duration::from_secs(6),
    renew_every: Duration::from_secs(2),
    skew: Duration::from_secs(1),
};

/// What an instance does with the lease it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Another instance leads: follow the stored state.
    Follow,
    /// This instance leads and the lease has time left: nothing to write.
    Keep,
    /// This instance leads and the lease is due for renewal: write [`grant`]'s lease.
    Renew,
    /// Nobody leads (no lease, or it ended): try to take it by writing [`grant`]'s lease.
    Take,
}

/// What `me` does at `now` about the `stored` lease.
pub fn decide(stored: Option<&Lease>, me: &str, now: Duration, t: &Timing) -> Decision {
    let Some(l) = stored else {
        return Decision::Take;
    };
    if now >= l.until {
        return Decision::Take;
    }
    if l.holder != me {
        return Decision::Follow;
    }
    if l.until - now < t.ttl.saturating_sub(t.renew_every) {
        Decision::Renew
    } else {
        Decision::Keep
    }
}

/// The lease `me` writes to take or renew leadership at `now`.
pub fn grant(me: &str, now: Duration, t: &Timing) -> Lease {
    Lease {
        holder: me.to_owned(),
        until: now + t.ttl,
    }
}

/// Whether `me` may act as leader at `now` (run analyses, advance steps) under the lease it
/// last wrote or read: it holds it and more than the allowed clock skew is left, so nobody
/// whose clock is within `skew` of this one can have taken it over yet.
pub fn acts(lease: Option<&Lease>, me: &str, now: Duration, t: &Timing) -> bool {
    lease.is_some_and(|l| l.holder == me && now + t.skew < l.until)
}

#[cfg(test)]
mod tests;
