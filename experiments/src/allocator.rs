//! Settings for mimalloc, the global allocator of `train` and `grove-bench`.
//!
//! The workspace builds mimalloc's v2 line (the `v2` feature of the `mimalloc` crate), not the
//! crate's default v3: on the BERT-mini step v3 kept 339 MB resident against v2's 287 MB, at
//! the same speed and page-fault count (2 vCPU of an AMD EPYC, AVX-512).

use std::ffi::c_long;

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

/// mimalloc's `mi_option_purge_delay`: the same index in its v2 and v3 headers, for which
/// libmimalloc-sys exports no constant.
const PURGE_DELAY: mi_option_t = 15;

/// Keeps memory that a run frees mapped, for reuse. By default mimalloc returns freed pages
/// to the OS shortly after they fall empty (10 ms in v2, 1 s in v3); a training step frees
/// its activations and allocates them again in the next step, so every step faulted them
/// back in (about 4 000 page faults per BERT-mini step with v3, against none once this is
/// set). The process's peak memory is unchanged: it only stops giving back what it will need
/// again.
///
/// It also installs mimalloc's collection of other threads' frees (`mi_collect` on the calling
/// thread's heap) as the run's memory reclaim.
///
/// Call it first thing in `main`, before any other thread starts (mimalloc's option setters
/// are not thread-safe). It has no effect unless mimalloc is the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: a plain option store, done before other threads exist (see above).
    unsafe { mi_option_set(PURGE_DELAY, -1) }
    grove_core::runtime::set_memory_reclaim(collect_remote_frees);
}

/// Makes the blocks other threads freed to this thread's heap reusable by it
/// (`grove_core::runtime::set_memory_reclaim`).
fn collect_remote_frees() {
    // SAFETY: mi_collect only walks the calling thread's own heap.
    unsafe { mi_collect(false) }
}

/// mimalloc's current purge delay in milliseconds (-1: freed memory is never returned).
pub fn purge_delay_ms() -> c_long {
    // SAFETY: a plain option read.
    unsafe { mi_option_get(PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_freed_memory_sets_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // mimalloc v2's default for this option is 10 ms; its neighbours' defaults are
            // 1 and 0, so a wrong index reads another value.
            assert_eq!(purge_delay_ms(), 10);
        }
        keep_freed_memory();
        assert_eq!(purge_delay_ms(), -1);
    }
}
