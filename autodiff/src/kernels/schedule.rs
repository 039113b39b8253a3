//! How work is split over threads: every constant that decides how work is cut, and
//! every decision that depends on the thread count, in one place (the pool's own
//! mechanism, how long an idle helper spins, stays in `pool.rs`). Each constant says in
//! a line what it trades; the measurements behind them are in docs/performance.md
//! ("Tuning constants"). Kernels ask this module how many parts to cut their work
//! into; what a part computes never depends on the answer, except where a sum is split
//! (the inner dimension of a product), which is why results are bit-identical for a
//! given thread count.

use super::pool;

/// Matrix products of fewer multiply-adds run on one thread: below it, handing half a
/// product to a helper costs more than the half.
pub(crate) const GEMM_SPLIT_MIN_WORK: usize = 1 << 17;

/// A transposed left operand (`Xᵀ G`, a weight gradient) with an output of at most this
/// many elements is split along the inner dimension (partial sums added after) rather
/// than by rows: a small output cut into bands leaves each part too little to do.
pub(crate) const SPLIT_K_MAX_OUTPUT: usize = 1 << 15;

/// A product `X W` whose `W` (taller than the output has rows) has at least this many
/// elements is split along the inner dimension, each part reading the band of `W` its
/// optimizer part writes; below it the extra sum costs more than the cache it saves.
pub(crate) const SPLIT_K_MIN_RIGHT: usize = 1 << 16;

/// A wide output with an inner dimension of at most this is split by rows, not
/// columns: writing the output is then most of the work, and rows write contiguously.
pub(crate) const ROW_SPLIT_MAX_K: usize = 128;

/// ... if each band then has at least this many rows: thinner bands (a convolution's
/// few output channels) lose more to the split than they gain.
pub(crate) const ROW_SPLIT_MIN_ROWS: usize = 64;

/// Column-major right operands of at most this many elements are copied row-major so
/// that the few-columns kernel can take the product: the copy is cheaper than the
/// `gemm` crate's setup for such a small product.
pub(crate) const FEW_COLUMNS_COPY_MAX: usize = 1024;

/// Products with at least this many output rows copy a large column-major right operand
/// row-major first (the `gemm` crate runs at half rate on it); fewer rows do not repay
/// the copy.
pub(crate) const TRANSPOSE_MIN_ROWS: usize = 96;

/// ... and only a right operand of at least this many elements,
pub(crate) const TRANSPOSE_MIN_ELEMENTS: usize = 1 << 14;

/// ... and, when the product runs on one thread, of more than this many: an operand
/// that stays in L2 reads fast enough either way, and the copy is not split then.
pub(crate) const TRANSPOSE_ONE_THREAD_MIN: usize = 1 << 16;

/// Layer backward passes of at least this many multiply-adds (and at most
/// [`SIDE_BY_SIDE_MAX`]) compute `dx` and `dw` side by side, one whole product per
/// thread, on two threads: one hand-over instead of one per split product.
const SIDE_BY_SIDE_MIN: usize = 1 << 16;

/// ... above it, splitting each product over both threads is faster.
const SIDE_BY_SIDE_MAX: usize = 1 << 22;

/// ... and only when `dx` has at most this many elements: a wide `dx` with a short
/// inner dimension is mostly writes, which split by rows go twice as fast.
const SIDE_BY_SIDE_MAX_DX: usize = 1 << 16;

/// Elementwise results (matrices) of at least this many elements are computed in one
/// band of rows per thread, the bands the next product uses; smaller ones are not
/// worth a hand-over.
pub(crate) const ELEMENTWISE_SPLIT_MIN: usize = 1 << 14;

/// Images (or pooling planes) of a convolution are cut into this many parts, whatever
/// the thread count, so that the sums over a batch are the same on any machine; more
/// parts balance better, fewer cost fewer hand-overs.
pub(crate) const CONV_PARTS: usize = 8;

/// Largest im2col matrix (elements) kept from a convolution's forward pass for its
/// weight gradient: memory against building the columns again in the backward pass.
pub(crate) const KEEP_COLS_MAX: usize = 1 << 21;

/// Fewest elements of a tensor per thread when an optimizer's update is split: a
/// smaller piece is not worth a hand-over.
const UPDATE_CHUNK: usize = 1 << 12;

/// Fewest values per thread when a batch of rows is gathered on several threads.
const GATHER_SPLIT_MIN: usize = 1 << 14;

/// How many parts a matrix product of `work` multiply-adds is split into (1: not
/// split): two from the threshold, one more per four thresholds' worth, up to the
/// thread count (so a many-core machine does not cut a small product into slivers).
pub(crate) fn gemm_parts(work: usize) -> usize {
    let threads = pool::threads();
    let min = gemm_split_min_work();
    if work < min || threads < 2 || pool::in_part() {
        1
    } else {
        (work / min.max(1) / 4).clamp(2, threads)
    }
}

#[cfg(not(feature = "internals"))]
fn gemm_split_min_work() -> usize {
    GEMM_SPLIT_MIN_WORK
}

#[cfg(feature = "internals")]
thread_local! {
    static GEMM_SPLIT_MIN_WORK_HERE: std::cell::Cell<usize> =
        const { std::cell::Cell::new(GEMM_SPLIT_MIN_WORK) };
}

#[cfg(feature = "internals")]
fn gemm_split_min_work() -> usize {
    GEMM_SPLIT_MIN_WORK_HERE.with(std::cell::Cell::get)
}

/// Runs `work` with [`GEMM_SPLIT_MIN_WORK`] replaced by `multiply_adds` on this thread
/// (benchmarks that look for where a second thread starts to pay).
#[cfg(feature = "internals")]
pub fn with_gemm_split_min_work<R>(multiply_adds: usize, work: impl FnOnce() -> R) -> R {
    let old = GEMM_SPLIT_MIN_WORK_HERE.with(|c| c.replace(multiply_adds));
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            GEMM_SPLIT_MIN_WORK_HERE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(old);
    work()
}

/// Whether a linear layer's backward pass computes `dx` (of `dx_len` elements) and `dw`
/// side by side, one whole product on each of two threads, for products of `work`
/// multiply-adds. Only with exactly two threads: with more, splitting each product
/// keeps them all busy. The products then run unsplit, so the values are those of a
/// one-thread run.
pub(crate) fn side_by_side(work: usize, dx_len: usize) -> bool {
    (SIDE_BY_SIDE_MIN..=SIDE_BY_SIDE_MAX).contains(&work)
        && dx_len <= SIDE_BY_SIDE_MAX_DX
        && pool::threads() == 2
        && !pool::in_part()
}

/// How many bands of rows an elementwise result of `len` elements and this shape is
/// computed in: one per thread for large matrices (the bands a product of the result
/// uses), else one. Convolution outputs (4-D) stay whole: the convolutions split the
/// batch their own way.
pub(crate) fn elementwise_parts(len: usize, shape: &[usize]) -> usize {
    let rows = shape.first().copied().unwrap_or(1);
    if len >= ELEMENTWISE_SPLIT_MIN && shape.len() == 2 {
        pool::threads().min(rows)
    } else {
        1
    }
}

/// How many contiguous ranges an optimizer splits a tensor of `len` elements into.
pub(crate) fn update_parts(len: usize) -> usize {
    pool::threads().min(len / UPDATE_CHUNK).max(1)
}

/// How many bands of rows a batch of `len` gathered values is written in.
pub(crate) fn gather_parts(len: usize) -> usize {
    pool::threads().min(len / GATHER_SPLIT_MIN).max(1)
}

/// Fewest elements a part when a result made of independent rows (softmax lanes, layer
/// norm rows) is split across threads: a hand-over costs about as much as that many.
const ROW_BAND_MIN: usize = 1 << 14;

/// How many bands of whole rows a result of `len` elements in `rows` independent rows
/// is computed in (each row's arithmetic is the same in any band).
pub(crate) fn row_band_parts(len: usize, rows: usize) -> usize {
    pool::threads().min(rows).min(len / ROW_BAND_MIN).max(1)
}

/// Images per part when `n` images are cut into [`CONV_PARTS`] parts (the last may
/// hold fewer).
pub(crate) fn conv_part_len(n: usize) -> usize {
    n.div_ceil(CONV_PARTS).max(1)
}

/// Examples per part when per-example gradients of `n` examples are cut into one part
/// per thread (each part a band of whole examples, so a result never depends on the
/// thread count).
pub(crate) fn examples_per_part(n: usize) -> usize {
    n.div_ceil(pool::threads().max(1)).max(1)
}

/// How many bands of whole examples `n` per-example results are written in.
pub(crate) fn example_parts(n: usize) -> usize {
    pool::threads().min(n).max(1)
}
