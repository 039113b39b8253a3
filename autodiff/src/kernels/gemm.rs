//! Matrix products through the `gemm` crate. Operands are described by strides, so the
//! transposed products that backprop needs (`G Bᵀ`, `Aᵀ G`) never copy a transpose.
//!
//! `gemm` was chosen over `matrixmultiply` by measurement on our shapes: about 2x faster
//! on the small products of the 784-16-16-10 network and equal on large ones.

use crate::float::{with_scratch, Float};
use gemm::Parallelism;
use rayon::prelude::*;
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
    // The `gemm` crate runs at about half its rate when the right operand is column-major
    // (both operands contiguous along k: the `G Wᵀ` of every backward pass): 256x1024x1024
    // takes 5.1 ms against 2.9 ms with the same right operand row-major, on two cores. A
    // row-major copy of it costs 0.35 ms there, so large enough products make one; below
    // about 100 rows of output the copy costs more than it saves.
    if b.row_stride == 1
        && b.col_stride != 1
        && m >= TRANSPOSE_MIN_ROWS
        && k * n >= TRANSPOSE_MIN_ELEMENTS
    {
        let threads = parallelism(m * n * k);
        return with_scratch(k * n, |copy: &mut [T]| {
            transpose_into(b, copy, threads);
            multiply(a, MatRef::row_major(copy, k, n), c, accumulate, threads);
        });
    }
    multiply(a, b, c, accumulate, parallelism(m * n * k));
}

/// Products with at least this many output rows get a row-major copy of a column-major
/// right operand (see `matmul_into`).
const TRANSPOSE_MIN_ROWS: usize = 96;
/// ... and a right operand of at least this many elements.
const TRANSPOSE_MIN_ELEMENTS: usize = 1 << 14;

/// Writes the elements of a column-major `b` (`row_stride` 1) into `out` as a contiguous
/// row-major `b.rows x b.cols` matrix, eight output rows at a time: each column of `b`
/// gives a run of eight contiguous reads, and the eight rows being written stay in L1.
/// (Panels of sixteen and 8x8 tiles measured no faster on 1024x1024.)
fn transpose_into<T: Float>(b: MatRef<'_, T>, out: &mut [T], threads: Parallelism) {
    const PANEL: usize = 8;
    let cols = b.cols;
    debug_assert!(b.row_stride == 1 && out.len() == b.rows * cols);
    let panel = |(index, dst): (usize, &mut [T])| {
        let first = index * PANEL;
        let height = dst.len() / cols;
        for j in 0..cols {
            let src = &b.data[j * b.col_stride + first..][..height];
            for (r, &v) in src.iter().enumerate() {
                dst[r * cols + j] = v;
            }
        }
    };
    match threads {
        Parallelism::None => out.chunks_mut(PANEL * cols).enumerate().for_each(panel),
        _ => out.par_chunks_mut(PANEL * cols).enumerate().for_each(panel),
    }
}

fn multiply<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    accumulate: bool,
    threads: Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
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
            threads,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols)
                    .map(|p| {
                        a.data[i * a.row_stride + p * a.col_stride]
                            * b.data[p * b.row_stride + j * b.col_stride]
                    })
                    .sum();
            }
        }
        c
    }

    fn filled(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 37 + seed * 11) % 101) as f64 / 50.0 - 1.0)
            .collect()
    }

    /// Column-major right operands large enough to be copied row-major first (on one
    /// thread and on several, panels of eight and a ragged last one) give the products
    /// of the plain loops, overwriting or accumulating.
    #[test]
    fn column_major_right_operand_copied_before_the_product() {
        for (m, k, n) in [(100, 130, 140), (256, 203, 100), (96, 128, 128)] {
            assert!(m >= TRANSPOSE_MIN_ROWS && k * n >= TRANSPOSE_MIN_ELEMENTS);
            let (a_data, w_data) = (filled(m * k, 1), filled(n * k, 2));
            let a = MatRef::row_major(&a_data, m, k);
            // b = wᵀ with w stored row-major n x k: b is k x n, column-major.
            let b = MatRef::row_major(&w_data, n, k).t();
            let want = naive(a, b);
            let mut c = vec![0.0; m * n];
            matmul_into(a, b, &mut c, false);
            for (got, want) in c.iter().zip(&want) {
                assert!((got - want).abs() < 1e-12, "{m}x{k}x{n}: {got} vs {want}");
            }
            matmul_into(a, b, &mut c, true);
            for (got, want) in c.iter().zip(&want) {
                assert!(
                    (got - 2.0 * want).abs() < 1e-12,
                    "{m}x{k}x{n} accumulated: {got} vs {want}"
                );
            }
        }
    }
}
