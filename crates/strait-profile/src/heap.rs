//! Heap statistics of the running process: resident memory from the kernel (`/proc/self/status`) and mimalloc's own counters (`mi_stats_get_json`), mimalloc being the global allocator of the `strait` binary.

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Slot};

/// At most one heap read at a time (the allocator's report is cheap, but not free).
static HEAP: Slot = Slot::new();

/// Room for mimalloc's JSON report: about 20 KiB today (its size bins make most of it).
const REPORT_BYTES: usize = 256 * 1024;

/// mimalloc's `mi_option_purge_delay` in the numbering of the mimalloc it builds (v3; the
/// sys crate names only v2's options). A test checks it reads v3's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long memory freed in whole pages stays committed before mimalloc gives it back to the
/// kernel (milliseconds), unless `MIMALLOC_PURGE_DELAY` says otherwise.
///
/// mimalloc v3 waits 1 s, and every free in the meantime pushes the
/// deadline further out; the purge itself runs only inside a later allocator call. So after a
/// burst of connections (each holding hyper's buffers until it parks) an idle proxy kept the
/// burst's memory: 4.3 KB of RSS per parked connection where 1.4 KB are live. At 100 ms (v2's
/// default was 10 ms), with [`collect`] run periodically, it is returned within a second.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Sets the allocator's purge delay to [`PURGE_DELAY_MS`] unless the operator chose one in
/// `MIMALLOC_PURGE_DELAY`. Call once at start, before the runtime's threads exist; then call
/// [`collect`] now and then.
#[allow(unsafe_code)]
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: sets a process-wide option by its index; mimalloc reads options atomically and
    // accepts a change at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

/// Does the allocator's work now rather than when mimalloc next gets round to it (only inside
/// its own calls): purges whose delay has passed and the calling thread's emptied pages, or
/// with `force` every free page at once. `strait` runs the normal one four times a second (a
/// pass over the calling thread's pages: microseconds), so memory freed just before the
/// process went quiet does not stay resident until the next burst; a CPU profile forces one
/// after its own burst of allocation.
#[allow(unsafe_code)]
pub fn collect(force: bool) {
    // SAFETY: no arguments to uphold; `mi_collect` is thread-safe.
    unsafe { libmimalloc_sys::mi_collect(force) };
}

/// The `strait` binary's global allocator: mimalloc, entered through its plain calls when Rust
/// asks for no more than word alignment (nearly always), and through its aligned calls otherwise.
///
/// The `mimalloc` crate's allocator calls `mi_malloc_aligned` for every allocation. For a block
/// over 1 KiB whose size class is not a power of two (hyper's 8 KB buffers, header maps),
/// mimalloc v3 then takes its over-allocating path: `size + align - 1` bytes, a larger size
/// class, and about 400 instructions instead of 30. mimalloc's blocks are always word-aligned,
/// so the plain calls give what such a layout needs.
pub struct Allocator;

/// The alignment every mimalloc block has.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each call hands the layout's size and alignment to mimalloc's matching entry point,
// which returns null on failure or a block of at least that size with at least that alignment
// (word alignment for the plain calls, the requested one for the aligned calls); `mi_free` and
// the reallocation calls accept blocks from any of them.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_malloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_malloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_zalloc(layout.size()).cast()
        } else {
            libmimalloc_sys::mi_zalloc_aligned(layout.size(), layout.align()).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD {
            libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
        }
    }
}

/// What `GET /debug/pprof/heap` reports.
#[derive(Debug, Serialize)]
pub struct HeapStats {
    /// The global allocator whose counters `mimalloc` holds.
    pub allocator: &'static str,
    /// Resident set size now (`VmRSS`), in bytes; null where `/proc` is not readable.
    pub rss_bytes: Option<u64>,
    /// The highest resident set size so far (`VmHWM`), in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Memory the allocator holds committed (read/write mapped) now, in bytes.
    pub committed_bytes: Option<u64>,
    /// The most the allocator has held committed, in bytes.
    pub peak_committed_bytes: Option<u64>,
    /// mimalloc's report as it gives it (`mi_stats_get_json`): process times, page faults,
    /// counters of reserved, committed and reset memory, pages, threads, and per-size bins.
    pub mimalloc: Value,
}

/// Reads the heap statistics now; `Err(Busy)` while another read runs.
pub fn stats() -> Result<HeapStats, Error> {
    let _held = HEAP.take().ok_or(Error::Busy("a heap report"))?;
    let mimalloc = mimalloc_report().unwrap_or(Value::Null);
    let process = |k: &str| mimalloc.pointer(&format!("/process/{k}"))?.as_u64();
    let (rss, peak_rss) = proc_status();
    Ok(HeapStats {
        allocator: "mimalloc",
        rss_bytes: rss,
        peak_rss_bytes: peak_rss,
        committed_bytes: process("commit_current"),
        peak_committed_bytes: process("commit_peak"),
        mimalloc,
    })
}

/// `VmRSS` and `VmHWM` from `/proc/self/status`, in bytes.
fn proc_status() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        let line = text.lines().find_map(|l| l.strip_prefix(name))?;
        let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// mimalloc's JSON report, parsed; `None` if it did not fit or did not parse.
#[allow(unsafe_code)]
fn mimalloc_report() -> Option<Value> {
    // A buffer of ours rather than one mimalloc allocates: nothing to hand back to `mi_free`.
    let mut buf = vec![0u8; REPORT_BYTES];
    // SAFETY: `buf` is writable for `REPORT_BYTES` bytes and outlives the call; mimalloc
    // writes at most that many bytes, NUL-terminated, and keeps no pointer to it.
    let out = unsafe { libmimalloc_sys::mi_stats_get_json(buf.len(), buf.as_mut_ptr().cast()) };
    if out.is_null() {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    // A report cut short at the buffer's end is not valid JSON, so it is refused here.
    serde_json::from_slice(&buf[..len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_allocator_gives_each_layout_its_alignment_through_growth_and_shrinking() {
        use std::alloc::{GlobalAlloc, Layout};
        for align in [1, 2, 8, 16, 64, 128, 4096] {
            for size in [1, 7, 24, 1000, 1025, 8200, 70_000, 3 << 20] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; each block is used within its size, reallocated or
                // freed with the layout it was made with, and not used after.
                unsafe {
                    let p = Allocator.alloc_zeroed(layout);
                    assert!(
                        !p.is_null() && (p as usize).is_multiple_of(align),
                        "{size}/{align}"
                    );
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    p.write_bytes(0xab, size);
                    let grown = size * 3 + 5;
                    let q = Allocator.realloc(p, layout, grown);
                    assert!(
                        !q.is_null() && (q as usize).is_multiple_of(align),
                        "{size}->{grown}/{align}"
                    );
                    assert_eq!((*q, *q.add(size - 1)), (0xab, 0xab), "contents kept");
                    let shrunk = size / 2 + 1;
                    let r = Allocator.realloc(
                        q,
                        Layout::from_size_align(grown, align).unwrap(),
                        shrunk,
                    );
                    assert!(
                        !r.is_null() && (r as usize).is_multiple_of(align),
                        "{grown}->{shrunk}/{align}"
                    );
                    assert_eq!(*r.add(shrunk - 1), 0xab);
                    Allocator.dealloc(r, Layout::from_size_align(shrunk, align).unwrap());
                    let plain = Allocator.alloc(layout);
                    assert!(!plain.is_null() && (plain as usize).is_multiple_of(align));
                    Allocator.dealloc(plain, layout);
                }
            }
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_option_is_v3s_and_takes_the_new_value() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads a process-wide option by its index.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        // v3's default; in v2 this index meant another option.
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 1000, "not the purge delay");
        return_freed_memory_promptly();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        collect(false);
    }
}
