//! Matrix products through the `gemm` crate. Operands are described by strides, so the
//! transposed products that backprop needs (`G Bᵀ`, `Aᵀ G`) never copy a transpose.
//!
//! `gemm` was chosen over `matrixmultiply` by measurement on our shapes: about 2x faster
//! on the small products of the 784-16-16-10 network and equal on large ones.

use crate::float::Float;
use gemm::Parallelism;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Products with fewer multiply-adds than this run on one thread: below it, waking a
/// second thread costs more than it saves (measured with `benches/tensor.rs`).
pub const DEFAULT_PARALLEL_THRESHOLD: usize = 1 << 22;

static PARALLEL_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_PARALLEL_THRESHOLD);
static MAX_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets how many threads a large matrix product may use (0: all of rayon's pool).
/// `1` makes every product single-threaded, which also makes results independent of
/// scheduling.
pub fn set_max_threads(threads: usize) {
    MAX_THREADS.store(threads, Ordering::Relaxed);
}

/// Sets the number of multiply-adds from which a product uses several threads.
pub fn set_parallel_threshold(multiply_adds: usize) {
    PARALLEL_THRESHOLD.store(multiply_adds, Ordering::Relaxed);
}

fn parallelism(work: usize) -> Parallelism {
    let max = match MAX_THREADS.load(Ordering::Relaxed) {
        0 => rayon::current_num_threads(),
        n => n.min(rayon::current_num_threads()),
    };
    if max > 1 && work >= PARALLEL_THRESHOLD.load(Ordering::Relaxed) {
        Parallelism::Rayon(max)
    } else {
        Parallelism::None
    }
}

/// A read-only matrix operand: `rows x cols` elements where element (i, j) lies at
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    /// Backing storage.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view: no data moves.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(
                last < self.data.len(),
                "gemm: operand view exceeds its storage"
            );
        }
    }
}

/// `c = a b` (or `c += a b` when `accumulate`), with `c` contiguous row-major.
pub fn matmul_into<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    a.check();
    b.check();
    // SAFETY: every element the kernel touches lies inside the checked slices: `check`
    // bounds the operand views and `c` holds exactly m x n contiguous elements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism(m * n * k),
        )
    }
}

/// Runs `work` on a pool of `threads` threads (the calling thread waits), with large
/// products split across them. Running the whole computation inside the pool matters
/// on small machines: a caller outside it would be one more thread competing for the
/// cores with the pool's idle workers between products.
pub fn with_threads<R: Send>(threads: usize, work: impl FnOnce() -> R + Send) -> R {
    let threads = threads.max(1);
    set_max_threads(threads);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(work),
        // No pool (threads could not be spawned): run here, single-threaded.
        Err(_) => {
            set_max_threads(1);
            work()
        }
    }
}
