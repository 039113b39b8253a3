//! Matrix products: f32 products with at most sixteen output columns on our own
//! AVX-512 kernel (`kernels/narrow.rs`), all others through the `gemm` crate. Operands are
//! described by strides, so most transposed products that backprop needs (`Aᵀ G`) read
//! a transposed view; a large column-major right operand (`G Wᵀ`) is copied first, as
//! `gemm` runs at half rate on it (see `product`).
//!
//! `gemm` was chosen over `matrixmultiply` by measurement on our shapes: about 2x faster
//! on the small products of the 784-16-16-10 network and equal on large ones.

use super::narrow;
use super::pool::{self, SharedMut};
use crate::float::{with_scratch, Float};
use gemm::Parallelism;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Products with fewer multiply-adds than this run on one thread; larger ones are split
/// into one band of output rows (or columns) per thread, or, for a weight gradient `Xᵀ
/// G` or a product `X W` with a large `W`, either with a small output, into one band of
/// the inner dimension per thread, run by the spinning helpers of [`pool`]. Measured
/// with the bench harness on this project's networks: network A's 100x784x16 products
/// (1.25 M multiply-adds, about 12 µs) gain from the split. A product split along the
/// inner dimension adds its partial sums in a fixed order, so results are deterministic
/// for a given thread count, and bit-identical across machines only with the same count
/// (`set_max_threads(1)` for runs that must match anywhere).
pub const DEFAULT_PARALLEL_THRESHOLD: usize = 1 << 17;

static PARALLEL_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_PARALLEL_THRESHOLD);

/// Sets how many threads a large matrix product (and every other split kernel) may use,
/// the calling one included (0: one per core). `1` makes every product single-threaded.
pub fn set_max_threads(threads: usize) {
    pool::set_threads(threads);
}

/// Sets the number of multiply-adds from which a product uses several threads.
pub fn set_parallel_threshold(multiply_adds: usize) {
    PARALLEL_THRESHOLD.store(multiply_adds, Ordering::Relaxed);
}

/// Outputs of at most this many elements with a transposed left operand are split
/// along the inner dimension (see `multiply`); larger ones by rows.
const SPLIT_K_MAX_OUTPUT: usize = 1 << 15;
/// The smallest right operand split along the inner dimension for its own sake: network
/// A's 784x16 first layer (12544 elements) ran 13% slower split that way, B's 784x128
/// (100352) 6% faster (epoch 0.197 -> 0.185 s).
const SPLIT_K_MIN_RIGHT: usize = 1 << 16;

/// Outputs wider than tall are split by bands of rows, not columns, when the inner
/// dimension is at most this. By rows, on two threads: 256x10x1024 5x faster,
/// 256x64x1024 1.4x, 256x128x1024 4%; from 256 on, bands of columns were 2% faster
/// (256x256x1024, 256x400x1024). Each band must then have at least
/// `ROW_SPLIT_MIN_ROWS` rows: LeNet's convolutions (6 or 16 output rows) lost time
/// split into bands of three.
const ROW_SPLIT_MIN_ROWS: usize = 64;
const ROW_SPLIT_MAX_K: usize = 128;

/// How many parts a product of `work` multiply-adds is split into (1: not split): two
/// from the threshold, one more per four thresholds' worth, up to the thread count (so
/// a many-core machine does not cut a small product into slivers).
fn parallelism(work: usize) -> usize {
    let threshold = PARALLEL_THRESHOLD.load(Ordering::Relaxed).max(1);
    let threads = pool::threads();
    if work < threshold || threads < 2 || pool::in_part() {
        1
    } else {
        (work / threshold / 4).clamp(2, threads)
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

/// What a product's output starts as before `a b` is added to it.
#[derive(Clone, Copy)]
enum Start<'a, T> {
    /// Nothing: `c = a b`, every element written.
    Zero,
    /// Its own values: `c += a b` (then `c` must be initialised).
    Keep,
    /// The same row (a bias) on every row: `c = a b + bias`, every element written.
    Row(&'a [T]),
}

impl<'a, T: Float> Start<'a, T> {
    fn from_accumulate(accumulate: bool) -> Self {
        if accumulate {
            Start::Keep
        } else {
            Start::Zero
        }
    }

    /// The start of the output columns `cols` (the bias's matching elements).
    fn columns(self, cols: std::ops::Range<usize>) -> Self {
        match self {
            Start::Row(row) => Start::Row(&row[cols]),
            other => other,
        }
    }

    /// Writes the start into `c` (`m` rows of `n`, `row_stride` apart), for a kernel
    /// that can only overwrite or accumulate; returns whether it must accumulate.
    fn apply(self, c: &mut [MaybeUninit<T>], m: usize, n: usize, row_stride: usize) -> bool {
        match self {
            Start::Zero => false,
            Start::Keep => true,
            Start::Row(row) => {
                for i in 0..m {
                    for (c, &v) in c[i * row_stride..][..n].iter_mut().zip(row) {
                        c.write(v);
                    }
                }
                true
            }
        }
    }
}

/// A function applied in place to finished pieces of a product's output, by the thread
/// that computed them while they are still in its cache: an activation fused into a
/// layer's forward pass. Each piece is part of one row.
pub type Finish<'a, T> = Option<&'a (dyn Fn(&mut [T]) + Sync)>;

/// `c = a b` (or `c += a b` when `accumulate`), with `c` contiguous row-major.
pub fn matmul_into<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    product(a, b, as_uninit(c), Start::from_accumulate(accumulate), None);
}

/// Applies `finish`, if any, to output values a kernel has written.
///
/// # Safety
/// Every element of `values` must have been written.
unsafe fn finish_written<T>(finish: Finish<'_, T>, values: &mut [MaybeUninit<T>]) {
    if let Some(f) = finish {
        // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the caller promises that
        // every element is initialised.
        f(unsafe { &mut *(std::ptr::from_mut(values) as *mut [T]) });
    }
}

/// Initialised values viewed as an output the products write (sound as long as only
/// values are written through it, which is all the `gemm` crate and this module do).
fn as_uninit<T>(values: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`.
    unsafe { &mut *(std::ptr::from_mut(values) as *mut [MaybeUninit<T>]) }
}

/// `a b` in a new row-major vector. Unlike a zeroed buffer passed to [`matmul_into`],
/// the output is written once (zeroing a weight gradient's buffer first was a tenth of
/// the main thread's time in network B).
pub fn matmul_vec<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Vec<T> {
    product_vec(a, b, Start::Zero, None)
}

/// `a b + bias` (the bias added to every row) in a new row-major vector: a fully
/// connected layer. Each part of a split product starts its own rows from the bias, so
/// they are written by the core that computes them (filling every row first on the
/// calling thread left the helper's rows in the caller's cache).
///
/// Panics unless `bias` has `b.cols` elements.
pub fn matmul_bias_vec<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, bias: &[T]) -> Vec<T> {
    bias_product_vec(a, b, bias, None)
}

/// `f(a b + bias)`: [`matmul_bias_vec`] with `finish` applied to every element of the
/// result (an activation, elementwise), each piece by the thread that computed it right
/// after computing it. Saves the activation its own pass over the output and its own
/// split job.
pub fn matmul_bias_finish_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bias: &[T],
    finish: &(dyn Fn(&mut [T]) + Sync),
) -> Vec<T> {
    bias_product_vec(a, b, bias, Some(finish))
}

fn bias_product_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bias: &[T],
    finish: Finish<'_, T>,
) -> Vec<T> {
    assert_eq!(
        bias.len(),
        b.cols,
        "gemm: bias length differs from the output width"
    );
    product_vec(a, b, Start::Row(bias), finish)
}

fn product_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    start: Start<'_, T>,
    finish: Finish<'_, T>,
) -> Vec<T> {
    let len = a.rows * b.cols;
    let mut out = Vec::with_capacity(len);
    product(a, b, &mut out.spare_capacity_mut()[..len], start, finish);
    // SAFETY: starting from zero or a row, `product` writes every element of its output.
    unsafe { out.set_len(len) };
    out
}

/// `c = finish(start + a b)`.
fn product<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [MaybeUninit<T>],
    start: Start<'_, T>,
    finish: Finish<'_, T>,
) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !start.apply(c, m, n, n) {
            c.fill(MaybeUninit::new(T::zero()));
        }
        // SAFETY: every element was just written.
        unsafe { finish_written(finish, c) };
        return;
    }
    a.check();
    b.check();
    // The `gemm` crate runs at about half its rate when the right operand is column-major
    // (both operands contiguous along k: the `G Wᵀ` of every backward pass): 256x1024x1024
    // takes 5.1 ms against 2.9 ms with the same right operand row-major, on two cores. A
    // row-major copy of it costs 0.35 ms there, so large enough products make one; below
    // about 100 rows of output the copy costs more than it saves. A small one is copied
    // too when the copy lets the narrow kernel take the product (the `G Wᵀ` of a narrow
    // layer, 100x16x16 in network A): the `gemm` crate's setup alone cost more.
    let parts = parallelism(m * n * k);
    let large = m >= TRANSPOSE_MIN_ROWS
        && k * n >= TRANSPOSE_MIN_ELEMENTS
        && (parts > 1 || k * n > TRANSPOSE_ONE_THREAD_MIN);
    let for_narrow = k * n <= NARROW_COPY_MAX && narrow_f32::<T>(n, 1);
    if b.row_stride == 1 && b.col_stride != 1 && (large || for_narrow) {
        // When the left operand is row-major and copying it plus the output moves fewer
        // elements than copying `b` (network C's `G W2ᵀ`: 256x1024 and 256x1024 against
        // 1024x1024), the product is taken the other way round: `cᵀ = bᵀ aᵀ`, where
        // `bᵀ` is already row-major and `aᵀ` is copied, into a scratch `cᵀ` that is then
        // written into `c` transposed.
        if let Start::Zero = start {
            if a.col_stride == 1 && m * k + m * n < k * n {
                return with_scratch(k * m, |copy: &mut [T]| {
                    transpose_into(a.t(), as_uninit(copy), parts);
                    with_scratch(n * m, |ct: &mut [T]| {
                        multiply(
                            b.t(),
                            MatRef::row_major(copy, k, m),
                            as_uninit(ct),
                            Start::Zero,
                            None,
                            parts,
                        );
                        transpose_into(MatRef::row_major(ct, n, m).t(), c, parts);
                    });
                    // SAFETY: the transposed copy wrote every element of `c`.
                    unsafe { finish_written(finish, c) };
                });
            }
        }
        return with_scratch(k * n, |copy: &mut [T]| {
            transpose_into(b, as_uninit(copy), parts);
            multiply(a, MatRef::row_major(copy, k, n), c, start, finish, parts);
        });
    }
    multiply(a, b, c, start, finish, parts);
}

/// Column-major right operands of at most this many elements are copied for the
/// narrow kernel (see `product`).
const NARROW_COPY_MAX: usize = 1024;

/// Whether an f32 product with this right operand goes to the narrow kernel.
fn narrow_f32<T: 'static>(n: usize, b_col_stride: usize) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && narrow::applies(n, b_col_stride)
}

/// Products with at least this many output rows get a row-major copy of a column-major
/// right operand (see `product`).
const TRANSPOSE_MIN_ROWS: usize = 96;
/// ... and a right operand of at least this many elements,
const TRANSPOSE_MIN_ELEMENTS: usize = 1 << 14;
/// ... more than this many when the product runs on one thread: the `G W2ᵀ` of network
/// B's 128x128 layer, computed whole beside its `dW2` (see `ops::matmul`), took 49 µs
/// with the copy and 43 without (the copy is not split then, and a 64 KiB operand
/// stays in L2 however it is read).
const TRANSPOSE_ONE_THREAD_MIN: usize = 1 << 16;

/// Writes the elements of a column-major `b` (`row_stride` 1) into `out` as a contiguous
/// row-major `b.rows x b.cols` matrix, eight output rows at a time: each column of `b`
/// gives a run of eight contiguous reads, and the eight rows being written stay in L1.
/// (Panels of sixteen and 8x8 tiles measured no faster on 1024x1024.)
fn transpose_into<T: Float>(b: MatRef<'_, T>, out: &mut [MaybeUninit<T>], parts: usize) {
    const PANEL: usize = 8;
    let cols = b.cols;
    debug_assert!(b.row_stride == 1 && out.len() == b.rows * cols);
    let panels = b.rows.div_ceil(PANEL);
    let shared = SharedMut::new(out);
    pool::for_parts(parts, &|i| {
        let range = pool::part_range(panels, parts, i);
        let rows = range.start * PANEL..(range.end * PANEL).min(b.rows);
        // SAFETY: the parts' row ranges are disjoint.
        let dst = unsafe { shared.range(rows.start * cols..rows.end * cols) };
        for (j, dst) in dst.chunks_mut(PANEL * cols).enumerate() {
            let first = (range.start + j) * PANEL;
            let height = dst.len() / cols;
            for col in 0..cols {
                let src = &b.data[col * b.col_stride + first..][..height];
                for (r, &v) in src.iter().enumerate() {
                    dst[r * cols + col] = MaybeUninit::new(v);
                }
            }
        }
    });
}

fn multiply<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [MaybeUninit<T>],
    start: Start<'_, T>,
    finish: Finish<'_, T>,
    parts: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    match parts {
        1 => {
            gemm_call(a, b, c, n, start);
            // SAFETY: the product wrote every element of `c`.
            unsafe { finish_written(finish, c) };
        }
        // Split along the inner dimension in two cases:
        // - `Xᵀ G` (a weight gradient) with a small output: each part sums over its own
        //   band of the batch, the rows of X and G that the same part of the forward
        //   pass used;
        // - `X W` with a large `W` taller than the output has rows (every first layer
        //   here): each part reads only its own band of W's rows, the band that the
        //   same part of the optimizer's update writes (by contiguous ranges). Split by
        //   output rows (network B) or columns (network C), each core read what the
        //   other had just written, or the other way round: in B, Adam's update of W
        //   then took 38 µs a step instead of 15 (over 200 in this machine's slow
        //   phases); in C, the steps of its two large layers, split this way, ran
        //   150 µs (1.2%) shorter than split by columns.
        // Then the partial products are added in part order.
        _ if ((a.row_stride == 1 && m * n <= SPLIT_K_MAX_OUTPUT)
            || (a.row_stride != 1 && k > m && k * n >= SPLIT_K_MIN_RIGHT))
            && k >= 16 * parts =>
        {
            // A bias is added with the partial sums, not by part 0's product: part 0 then
            // runs the same plain product as the others (starting from the bias, it
            // finished last: 120 µs against 116 in network B's first layer, and the
            // step took 3 µs longer).
            let (first, bias) = match start {
                Start::Row(row) => (Start::Zero, Some(row)),
                other => (other, None),
            };
            with_scratch((parts - 1) * m * n, |partials: &mut [T]| {
                let partials = as_uninit(partials);
                let (out, rest) = (SharedMut::new(c), SharedMut::new(partials));
                pool::for_parts(parts, &|i| {
                    let ks = pool::part_range(k, parts, i);
                    let a = MatRef {
                        data: &a.data[ks.start * a.col_stride..],
                        cols: ks.len(),
                        ..a
                    };
                    let b = MatRef {
                        data: &b.data[ks.start * b.row_stride..],
                        rows: ks.len(),
                        ..b
                    };
                    // SAFETY: part 0 alone writes `c`, part i > 0 its own partial.
                    match i {
                        0 => gemm_call(a, b, unsafe { out.range(0..m * n) }, n, first),
                        _ => gemm_call(a, b, unsafe { rest.chunk(i - 1, m * n) }, n, Start::Zero),
                    }
                });
                // SAFETY: part 0 wrote (or accumulated into) every element of `c`, and
                // each partial was written whole (gemm writes every element it is
                // given when not accumulating).
                let (c, partials) = unsafe {
                    (
                        &mut *(std::ptr::from_mut(c) as *mut [T]),
                        &*(std::ptr::from_ref(partials) as *const [T]),
                    )
                };
                // The sum is split too, by contiguous ranges: an optimizer update split
                // the same way then finds its piece of the gradient in its own cache.
                pool::for_row_bands(c, m * n, parts, |range, c| {
                    for partial in partials.chunks_exact(m * n) {
                        for (c, p) in c.iter_mut().zip(&partial[range.clone()]) {
                            *c += *p;
                        }
                    }
                    if let Some(row) = bias {
                        add_row(c, range.start % n, row);
                    }
                    if let Some(f) = finish {
                        f(c);
                    }
                });
            })
        }
        // Each part is the product of a band of rows of `a` and writes only its own band
        // of `c`: when the output is taller than wide; when it is wider but the inner
        // dimension is short, so that writing the output is most of the work (C's
        // 256x10x1024 `G W3ᵀ` took 147 µs split by columns, 57 on one thread and 29
        // split by rows); and for a large weight gradient `Xᵀ G`, whose bands of rows
        // are the bands of the weight that the optimizer's parts update (C's 784x1024
        // first-layer gradient, split by columns before, measured with the change above),
        _ if m >= n
            || (k <= ROW_SPLIT_MAX_K && m >= ROW_SPLIT_MIN_ROWS * parts)
            || (a.row_stride == 1 && m >= ROW_SPLIT_MIN_ROWS * parts) =>
        {
            pool::for_row_bands(c, m, parts, |rows, c| {
                let a = MatRef {
                    data: &a.data[(rows.start * a.row_stride).min(a.data.len())..],
                    rows: rows.len(),
                    ..a
                };
                gemm_call(a, b, c, n, start);
                // SAFETY: the product wrote this band whole.
                unsafe { finish_written(finish, c) };
            })
        }
        // ... or, when the output is wider than tall, of a band of columns of `b`.
        _ => {
            let shared = SharedMut::new(c);
            pool::for_parts(parts, &|i| {
                let cols = pool::part_range(n, parts, i);
                if cols.is_empty() {
                    return;
                }
                let b = MatRef {
                    data: &b.data[cols.start * b.col_stride..],
                    cols: cols.len(),
                    ..b
                };
                // SAFETY: this part writes columns `cols` of every row, a set no other
                // part touches; the slice spans them with row stride `n`.
                let c = unsafe { shared.range(cols.start..(m - 1) * n + cols.end) };
                gemm_call(a, b, c, n, start.columns(cols.clone()));
                if finish.is_some() {
                    for row in 0..m {
                        let piece = &mut c[row * n..row * n + cols.len()];
                        // SAFETY: the product wrote these columns of every row.
                        unsafe { finish_written(finish, piece) };
                    }
                }
            });
        }
    }
}

/// Adds `row` to `c`, the elements of consecutive rows of `row.len()` starting at
/// column `col` (a band of a row-major matrix that may begin and end inside a row).
fn add_row<T: Float>(c: &mut [T], col: usize, row: &[T]) {
    let (first, rest) = c.split_at_mut((row.len() - col).min(c.len()));
    for (c, &b) in first.iter_mut().zip(&row[col..]) {
        *c += b;
    }
    for piece in rest.chunks_mut(row.len()) {
        for (c, &b) in piece.iter_mut().zip(row) {
            *c += b;
        }
    }
}

/// One call of the `gemm` crate: `c` holds `a.rows` rows `row_stride` apart, each of
/// `b.cols` contiguous elements.
fn gemm_call<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [MaybeUninit<T>],
    row_stride: usize,
    start: Start<'_, T>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    debug_assert!(c.len() > (m - 1) * row_stride + n - 1);
    a.check();
    b.check();
    if narrow_f32::<T>(n, b.col_stride) {
        let start = match start {
            Start::Zero => narrow::Start::Zero,
            Start::Keep => narrow::Start::Keep,
            Start::Row(row) => narrow::Start::Row(row.as_ptr().cast::<f32>()),
        };
        let view = |x: MatRef<'_, T>| narrow::Strided {
            ptr: x.data.as_ptr().cast::<f32>(),
            row_stride: x.row_stride,
            col_stride: x.col_stride,
        };
        let job = narrow::Product {
            m,
            k,
            n,
            a: view(a),
            b: view(b),
            c: narrow::Out {
                ptr: c.as_mut_ptr().cast::<f32>(),
                row_stride,
            },
            start,
        };
        // SAFETY: `T` is `f32`; `applies` held; the views and `c` are bounded as below.
        return unsafe { job.run() };
    }
    let accumulate = start.apply(c, m, n, row_stride);
    // SAFETY: every element the kernel touches lies inside the checked slices: `check`
    // bounds the operand views and `c` holds the last element of the last row.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr().cast::<T>(),
            1,
            row_stride as isize,
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
            Parallelism::None,
        )
    }
}

/// Runs `work` on the calling thread with kernels split over `threads` threads (the
/// calling one and `threads - 1` spinning helpers, see [`pool`]), then returns its
/// result. The setting is global and stays in force afterwards.
pub fn with_threads<R>(threads: usize, work: impl FnOnce() -> R) -> R {
    set_max_threads(threads.max(1));
    work()
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

    fn to32(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }

    /// `values` (rows of `bias.len()`) with `bias` added to every row.
    fn plus_bias(values: Vec<f64>, bias: &[f64]) -> Vec<f64> {
        let n = bias.len();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % n])
            .collect()
    }

    /// Asserts an f32 result equals `want` to within `tol`, naming `what`.
    fn assert_close_f32(got: &[f32], want: &[f64], tol: f64, what: &str) {
        for (got, want) in got.iter().zip(want) {
            assert!((*got as f64 - want).abs() < tol, "{what}: {got} vs {want}");
        }
    }

    fn filled(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 37 + seed * 11) % 101) as f64 / 50.0 - 1.0)
            .collect()
    }

    /// Column-major right operands large enough to be copied row-major first, or
    /// products taken the other way round (`cᵀ = bᵀ aᵀ`) when copying the left operand
    /// and the output is cheaper, give the products of the plain loops (panels of eight
    /// and a ragged last one), overwriting or accumulating.
    #[test]
    fn column_major_right_operand_copied_before_the_product() {
        // The last two copy the left operand and the output instead (fewer elements).
        for (m, k, n) in [
            (100, 130, 140),
            (256, 203, 100),
            (96, 128, 128),
            (100, 300, 400),
            (97, 250, 333),
        ] {
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

    fn matmul_with_parts(
        a: MatRef<'_, f64>,
        b: MatRef<'_, f64>,
        c: &mut [f64],
        acc: bool,
        parts: usize,
    ) {
        multiply(a, b, as_uninit(c), Start::from_accumulate(acc), None, parts);
    }

    /// Products split into bands of rows (tall outputs, wide ones with a short inner
    /// dimension and enough rows: 200x12x300, and large ones with a transposed left
    /// operand: 200x150x300), of columns (other wide ones) or of the inner dimension
    /// (transposed left operand and small output, or a large right operand taller than
    /// the output has rows; 16x1100x60 takes the latter with both layouts, 20x1100x1700
    /// with a row-major left operand), with transposed operand views and a ragged last
    /// band, give the plain loops' products, overwriting or accumulating.
    #[test]
    fn split_products_match_the_plain_loops() {
        pool::set_threads(3);
        for (m, k, n) in [
            (37, 20, 5),
            (5, 20, 37),
            (64, 9, 64),
            (1, 3, 2),
            (30, 100, 8),
            (16, 1100, 60),
            (200, 12, 300),
            (200, 150, 300),
            (20, 1100, 1700),
        ] {
            let (a_data, b_data) = (filled(m * k, 3), filled(k * n, 4));
            let layouts = [
                (
                    MatRef::row_major(&a_data, m, k),
                    MatRef::row_major(&b_data, k, n),
                ),
                (
                    MatRef::row_major(&a_data, k, m).t(),
                    MatRef::row_major(&b_data, n, k).t(),
                ),
            ];
            for (a, b) in layouts {
                let want = naive(a, b);
                for parts in [1, 2, 3] {
                    let mut c = vec![0.5; m * n];
                    matmul_with_parts(a, b, &mut c, false, parts);
                    matmul_with_parts(a, b, &mut c, true, parts);
                    for (got, want) in c.iter().zip(&want) {
                        assert!(
                            (got - 2.0 * want).abs() < 1e-12,
                            "{m}x{k}x{n} in {parts} parts: {got} vs {}",
                            2.0 * want
                        );
                    }
                }
            }
        }
    }

    /// Products starting from a bias row, split by rows, by columns (the bias cut to
    /// each band's columns) or along the inner dimension (the bias added with the
    /// partial sums, bands starting inside a row), in f64 (the `gemm` crate) and f32
    /// (narrow outputs take this module's own kernel), and through the public
    /// `matmul_bias_vec` (whose large column-major right operand is copied first): the
    /// plain loops plus the bias. With a finishing function, each element is finished
    /// exactly once, whichever way the product was split.
    #[test]
    fn products_from_a_bias_row_match_the_plain_loops() {
        pool::set_threads(3);
        for (m, k, n) in [
            (37, 20, 5),
            (5, 20, 37),
            (30, 100, 8),
            (1, 3, 2),
            (100, 140, 130),
        ] {
            let (a_data, b_data) = (filled(m * k, 7), filled(k * n, 8));
            let bias = filled(n, 9);
            let a = MatRef::row_major(&a_data, k, m).t();
            let b = MatRef::row_major(&b_data, n, k).t();
            let want = plus_bias(naive(a, b), &bias);
            let check = |got: &[f64], how: &str| {
                for (got, want) in got.iter().zip(&want) {
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{m}x{k}x{n} {how}: {got} vs {want}"
                    );
                }
            };
            let finish = |c: &mut [f64]| c.iter_mut().for_each(|v| *v = *v * 3.0 - 1.0);
            let finished: Vec<f64> = want.iter().map(|v| v * 3.0 - 1.0).collect();
            for parts in [1, 2, 3] {
                let mut c = vec![0.0; m * n];
                multiply(a, b, as_uninit(&mut c), Start::Row(&bias), None, parts);
                check(&c, &format!("in {parts} parts"));
                multiply(
                    a,
                    b,
                    as_uninit(&mut c),
                    Start::Row(&bias),
                    Some(&finish),
                    parts,
                );
                for (got, want) in c.iter().zip(&finished) {
                    assert!(
                        (got - want).abs() < 1e-11,
                        "{m}x{k}x{n} finished in {parts} parts: {got} vs {want}"
                    );
                }
            }
            check(&matmul_bias_vec(a, b, &bias), "matmul_bias_vec");
            let got = matmul_bias_finish_vec(a, b, &bias, &finish);
            for (got, want) in got.iter().zip(&finished) {
                assert!(
                    (got - want).abs() < 1e-11,
                    "{m}x{k}x{n} matmul_bias_finish_vec: {got} vs {want}"
                );
            }
            let (a32, b32, bias32) = (to32(&a_data), to32(&b_data), to32(&bias));
            let got = matmul_bias_vec(
                MatRef::row_major(&a32, k, m).t(),
                MatRef::row_major(&b32, k, n),
                &bias32,
            );
            let want32 = plus_bias(naive(a, MatRef::row_major(&b_data, k, n)), &bias);
            assert_close_f32(&got, &want32, 1e-3, &format!("{m}x{k}x{n} f32"));
        }
    }

    /// f32 products with a narrow output and a small column-major right operand (a
    /// narrow layer's `G Wᵀ`, copied for the narrow kernel) and with one too large to
    /// copy: the plain loops' values.
    #[test]
    fn narrow_f32_products_with_a_transposed_right_operand() {
        for (m, k, n) in [(100, 16, 16), (37, 10, 16), (5, 3, 1), (64, 100, 12)] {
            let (a_data, w_data) = (filled(m * k, 10), filled(n * k, 11));
            let a64 = MatRef::row_major(&a_data, m, k);
            let b64 = MatRef::row_major(&w_data, n, k).t();
            let want = naive(a64, b64);
            let (a32, w32) = (to32(&a_data), to32(&w_data));
            let got = matmul_vec(
                MatRef::row_major(&a32, m, k),
                MatRef::row_major(&w32, n, k).t(),
            );
            assert_close_f32(&got, &want, 1e-4, &format!("{m}x{k}x{n}"));
        }
    }

    /// A product into a fresh vector writes every element: split or not, transposed
    /// operands, and an empty inner dimension (all zeros).
    #[test]
    fn products_into_new_vectors_match_the_plain_loops() {
        for (m, k, n) in [(30, 100, 8), (7, 5, 3), (4, 0, 6), (128, 128, 128)] {
            let (a_data, b_data) = (filled(m * k, 5), filled(k * n, 6));
            let a = MatRef::row_major(&a_data, k, m).t();
            let b = MatRef::row_major(&b_data, k, n);
            let got = matmul_vec(a, b);
            let want = naive(a, b);
            assert_eq!(got.len(), want.len());
            for (got, want) in got.iter().zip(&want) {
                assert!((got - want).abs() < 1e-12, "{m}x{k}x{n}: {got} vs {want}");
            }
        }
    }
}
