//! Loops compiled for the widest vectors the CPU has. The build targets baseline x86-64
//! (SSE2, four f32 lanes) so that one binary runs anywhere; [`wide`] runs a closure
//! inside a function compiled for AVX-512 (or AVX2) when the CPU has it, so the compiler
//! vectorises the closure's loops (once inlined there) sixteen (or eight) lanes wide.
//!
//! Only the vector width changes, not the arithmetic: the compiler does not fuse a
//! multiply and an add it was not asked to, and IEEE division and square root are exact
//! at every width, so results are the same bits on every path.

/// Runs `f`, compiled for AVX-512 (else AVX2) where the CPU supports it. Only code
/// inlined into the wide function is compiled wide, so mark the closure
/// `#[inline(always)]` (the compiler declines to inline a large one otherwise) and write
/// its loops in it or in `#[inline(always)]` functions taking their slices as
/// parameters (so the compiler still knows an output aliases no input); a call that is
/// not inlined runs baseline code.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, checked just above.
        return unsafe { avx512(f) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// `f` compiled with AVX2 enabled.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` compiled with AVX-512F enabled.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Hints the processor to bring `data` into cache (for rows read in random order, a
/// few rows ahead of their use); a no-op off x86-64.
#[inline]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(64 / std::mem::size_of::<T>().max(1)) {
        // SAFETY: prefetching is a hint that never faults, and the pointer is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_loop_gives_the_plain_loops_values() {
        let x: Vec<f32> = (0..1003).map(|i| i as f32 * 0.25).collect();
        let mut y = vec![0.0f32; x.len()];
        wide(
            #[inline(always)]
            || {
                for (y, x) in y.iter_mut().zip(&x) {
                    *y = x.sqrt() * 2.0;
                }
            },
        );
        let plain: Vec<f32> = x.iter().map(|x| x.sqrt() * 2.0).collect();
        assert_eq!(y, plain);
        prefetch(&x);
    }
}
