//! A CPU profile being taken: sampling starts with [`CpuProfile::start`] and stops when the profile is finished (symbolised, encoded, gzipped) or dropped.

use crate::{encode, Error, Held, Slot};

/// One CPU profile at a time: the SIGPROF handler and its sample store are process-wide.
static CPU: Slot = Slot::new();

/// Samples a second unless asked otherwise: 99, not 100, so sampling does not run in lockstep
/// with work that runs every 10 ms.
pub const DEFAULT_FREQUENCY: u32 = 99;

/// The highest sampling rate accepted: each sample unwinds a stack inside a signal handler,
/// and past 1 kHz that cost starts to show in what is measured.
pub const MAX_FREQUENCY: u32 = 1000;

/// Samples landing in these shared objects are dropped: unwinding from inside them can take
/// a lock the interrupted code holds (pprof-rs's advice); vdso's unwind tables are unreliable.
/// A static (musl) binary has none of them.
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// A CPU profile in progress; sampling stops when it is finished or dropped.
pub struct CpuProfile {
    guard: pprof::ProfilerGuard<'static>,
    _held: Held,
}

// === impl CpuProfile ===

impl CpuProfile {
    /// Starts sampling every thread at `frequency` Hz (1 to [`MAX_FREQUENCY`]; the caller
    /// checks the range). Blocking: the first start loads the binary's symbol tables.
    pub fn start(frequency: u32) -> Result<CpuProfile, Error> {
        let held = CPU.take().ok_or(Error::Busy("a CPU profile"))?;
        let frequency = frequency.clamp(1, MAX_FREQUENCY) as i32;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(frequency)
            .blocklist(BLOCKLIST)
            .build()
            .map_err(Error::Profiler)?;
        build_unwinder();
        Ok(CpuProfile { guard, _held: held })
    }

    /// Stops sampling and returns the profile: gzip-compressed `profile.proto`. Blocking:
    /// symbolising the stacks reads the binary's debug information.
    pub fn finish(self) -> Result<Vec<u8>, Error> {
        let report = self.guard.report().build();
        // Sampling stops here, before the encoding work, which would otherwise be sampled.
        drop(self);
        // The parsed debug information stays cached otherwise: hundreds of MiB for a debug
        // build, tens for a release one, for a profile taken once in a while.
        backtrace::clear_symbol_cache();
        crate::heap::collect(true);
        encode::gzip(&encode::profile(&report.map_err(Error::Profiler)?))
    }
}

/// Takes the first sample on this thread, now: framehop (the unwinder on musl) builds its
/// tables from the binary on first use, allocating, and that must not happen in a signal
/// handler that interrupted an allocation. The timer's first tick is a period away.
#[cfg(target_env = "musl")]
#[allow(unsafe_code)]
fn build_unwinder() {
    // SAFETY: raise has no memory-safety preconditions; pprof-rs's handler for SIGPROF is
    // installed (the guard was just built), so the signal samples this thread and returns.
    unsafe {
        libc::raise(libc::SIGPROF);
    }
}

/// backtrace-rs, the unwinder elsewhere, is readied by pprof-rs before the timer starts.
#[cfg(not(target_env = "musl"))]
fn build_unwinder() {}
