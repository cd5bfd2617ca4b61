//! On-demand profiling of the running process for the admin listener: CPU profiles in pprof's format (gzip-compressed `profile.proto`, as Go's net/http/pprof serves them) and heap statistics from the allocator.
//!
//! Both are process-wide, so each runs one at a time: a second request while one runs gets
//! [`Error::Busy`]. A CPU profile samples while its [`cpu::CpuProfile`] lives (SIGPROF from
//! `setitimer`, stacks unwound by pprof-rs) and stops when it is finished or dropped, so a
//! caller that goes away stops the sampling with it. The async shell (duration, parameters,
//! authorization) is the admin crate's.

// Denied, not forbidden: `heap::mimalloc_report` calls into mimalloc, the one `unsafe` call,
// allowed there with its reasons.
#![deny(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};

pub mod cpu;
mod encode;
pub mod heap;
pub mod proto;

/// Why a profile or a report could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another one of the same kind is running (the profiler is process-wide).
    #[error("{0} is already running; try again when it has finished")]
    Busy(&'static str),
    /// The sampler could not be started or read (signal handler, timer, its sample store).
    #[error("the CPU profiler failed: {0}")]
    Profiler(#[source] pprof::Error),
    /// The profile could not be compressed.
    #[error("the profile could not be encoded: {0}")]
    Encode(#[source] std::io::Error),
}

/// A process-wide "one at a time" flag.
struct Slot(AtomicBool);

/// A taken [`Slot`], given back when dropped.
struct Held(&'static Slot);

// === impl Slot ===

impl Slot {
    const fn new() -> Self {
        Slot(AtomicBool::new(false))
    }

    fn take(&'static self) -> Option<Held> {
        self.0
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Held(self))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0 .0.store(false, Ordering::Release);
    }
}
