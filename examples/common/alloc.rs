//! The allocator of the demo and the bench binaries (a module they include, not an
//! example of its own).
//!
//! Training frees and reallocates buffers of megabytes every step. glibc's malloc hands
//! those back to the kernel and page-faults them in again (a third of an epoch of
//! network D); mimalloc keeps them. Buffers of several megabytes (LeNet's im2col
//! columns, network C's weight gradients) still go back to the kernel after mimalloc's
//! purge delay of a second, and every epoch faults them in again (7,600 page faults in
//! two epochs of D, about a tenth of its time); `keep_freed_memory` turns that off.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: its position in `mi_option_e` of mimalloc 3's `mimalloc.h`,
/// which `libmimalloc-sys` does not name.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory freed by the program committed for its next allocations instead of
/// returning it to the kernel. Peak memory is unchanged; call it first thing in `main`.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; called at the start of `main`, before any
    // other thread exists (mimalloc's option setter is not thread-safe).
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}
