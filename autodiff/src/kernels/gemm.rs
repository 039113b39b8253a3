//! Matrix products: f32 products with at most sixteen output columns on our own
//! AVX-512 kernel (`kernels/few_columns.rs`), all others through the `gemm` crate. Operands are
//! described by strides, so most transposed products that backprop needs (`Aᵀ G`) read
//! a transposed view; a large column-major right operand (`G Wᵀ`) is copied first, as
//! `gemm` runs at half rate on it (see `product`).
//!
//! `gemm` was chosen over `matrixmultiply` by measurement on our shapes (see
//! docs/performance.md). How products are split over threads is decided with the
//! constants of `schedule.rs`.

use super::few_columns;
use super::pool;
use super::schedule::{
    gemm_parts, FEW_COLUMNS_COPY_MAX, ROW_SPLIT_MAX_K, ROW_SPLIT_MIN_ROWS, SPLIT_K_MAX_OUTPUT,
    SPLIT_K_MIN_RIGHT, TRANSPOSE_MIN_ELEMENTS, TRANSPOSE_MIN_ROWS, TRANSPOSE_ONE_THREAD_MIN,
};
use super::uninit::{as_uninit, assume_init_mut, vec_written};
use crate::float::{with_scratch, Float};
use gemm::Parallelism;
use smallvec::SmallVec;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

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

/// What the output holds before the product is added, in GEMM's terms `c = a b + β c`.
#[derive(Clone, Copy)]
enum Beta<'a, T> {
    /// β = 0: `c = a b`, every element written.
    Zero,
    /// β = 1: `c += a b` (then `c` must be initialised).
    One,
    /// β = 0 and the same row (a bias) on every row: `c = a b + bias`, every element
    /// written.
    Bias(&'a [T]),
}

impl<'a, T: Float> Beta<'a, T> {
    fn from_accumulate(accumulate: bool) -> Self {
        if accumulate {
            Beta::One
        } else {
            Beta::Zero
        }
    }

    /// The beta of the output columns `cols` (the bias's matching elements).
    fn columns(self, cols: std::ops::Range<usize>) -> Self {
        match self {
            Beta::Bias(row) => Beta::Bias(&row[cols]),
            other => other,
        }
    }

    /// Writes the bias into `c`, for a kernel that can only overwrite or accumulate;
    /// returns whether it must accumulate.
    fn apply(self, c: &mut OutView<'_, T>) -> bool {
        match self {
            Beta::Zero => false,
            Beta::One => true,
            Beta::Bias(row) => {
                for i in 0..c.rows {
                    for (c, &v) in c.row(i).iter_mut().zip(row) {
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
/// layer's forward pass (an epilogue, in GEMM libraries' words). Each piece is part of
/// one row, or whole rows.
pub(crate) type Epilogue<'a, T> = Option<&'a (dyn Fn(&mut [T]) + Sync)>;

/// A product's output: `rows` rows of `cols` elements, `row_stride` apart, written
/// through a raw pointer. A view is the unique borrow of exactly the elements it
/// describes: [`OutView::new`] takes a whole contiguous output, and
/// [`OutView::split_columns`] cuts one into views of disjoint bands of columns, so the
/// parts of a job can write their columns of the same rows at once. A `&mut` slice is
/// only ever made of one view's piece of one row (or of a whole contiguous view).
struct OutView<'a, T> {
    ptr: *mut MaybeUninit<T>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    _borrow: PhantomData<&'a mut [MaybeUninit<T>]>,
}

// SAFETY: a view is a unique borrow of its elements (no other view or slice reaches
// them while it lives), so sending it to another thread is sending a `&mut` of them.
unsafe impl<T: Send> Send for OutView<'_, T> {}

impl<'a, T> OutView<'a, T> {
    /// All of `c`, a contiguous row-major `rows x cols` output.
    fn new(c: &'a mut [MaybeUninit<T>], rows: usize, cols: usize) -> Self {
        assert_eq!(c.len(), rows * cols, "gemm: output has the wrong length");
        OutView {
            ptr: c.as_mut_ptr(),
            rows,
            cols,
            row_stride: cols,
            _borrow: PhantomData,
        }
    }

    /// The view cut into `parts` views of consecutive bands of columns
    /// ([`pool::part_range`] of the columns), which together borrow what it borrowed.
    fn split_columns(self, parts: usize) -> SmallVec<[OutView<'a, T>; 8]> {
        (0..parts)
            .map(|i| {
                let cols = pool::part_range(self.cols, parts, i);
                OutView {
                    // At most one past the end of the first row (`cols.start <= cols`).
                    ptr: self.ptr.wrapping_add(cols.start),
                    rows: self.rows,
                    cols: cols.len(),
                    row_stride: self.row_stride,
                    _borrow: PhantomData,
                }
            })
            .collect()
    }

    /// Row `i`'s elements of this view.
    fn row(&mut self, i: usize) -> &mut [MaybeUninit<T>] {
        assert!(
            i < self.rows,
            "gemm: row {i} of a view of {} rows",
            self.rows
        );
        // SAFETY: the `cols` elements at `i * row_stride` from `ptr` lie in the output
        // this view borrows (`new` checked its length; a column band's rows lie inside
        // its parent's), and no other view or slice reaches them while `self` is
        // borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.row_stride), self.cols) }
    }

    /// The whole view as one slice, when its rows are contiguous.
    fn contiguous(&mut self) -> Option<&mut [MaybeUninit<T>]> {
        (self.row_stride == self.cols).then(|| {
            // SAFETY: rows `row_stride == cols` apart make one run of `rows * cols`
            // elements, all borrowed by this view alone (see `row`).
            unsafe { std::slice::from_raw_parts_mut(self.ptr, self.rows * self.cols) }
        })
    }
}

/// Applies `epilogue`, if any, to every element of `c`, which the product has written
/// whole.
fn finish<T>(epilogue: Epilogue<'_, T>, c: &mut OutView<'_, T>) {
    let Some(f) = epilogue else { return };
    if let Some(all) = c.contiguous() {
        // SAFETY: the product wrote every element of its output.
        return f(unsafe { assume_init_mut(all) });
    }
    for i in 0..c.rows {
        // SAFETY: the product wrote every element of its output.
        f(unsafe { assume_init_mut(c.row(i)) });
    }
}

/// `c = a b` (or `c += a b` when `accumulate`), with `c` contiguous row-major.
pub fn matmul_into<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    // SAFETY: `product` writes only values into its output.
    let c = unsafe { as_uninit(c) };
    product(a, b, c, Beta::from_accumulate(accumulate), None);
}

/// `a b` in a new row-major vector. Unlike a zeroed buffer passed to [`matmul_into`],
/// the output is written once.
pub(crate) fn matmul_vec<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>) -> Vec<T> {
    product_vec(a, b, Beta::Zero, None)
}

/// `a b + bias` (the bias added to every row) in a new row-major vector: a fully
/// connected layer. Each part of a split product starts its own rows from the bias, so
/// they are written by the core that computes them.
///
/// Panics unless `bias` has `b.cols` elements.
pub(crate) fn matmul_bias_vec<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, bias: &[T]) -> Vec<T> {
    bias_product_vec(a, b, bias, None)
}

/// `f(a b + bias)`: [`matmul_bias_vec`] with the epilogue `f` applied to every element
/// of the result (an activation, elementwise), each piece by the thread that computed
/// it right after computing it. Saves the activation its own pass over the output and
/// its own split job.
pub(crate) fn matmul_bias_epilogue_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bias: &[T],
    f: &(dyn Fn(&mut [T]) + Sync),
) -> Vec<T> {
    bias_product_vec(a, b, bias, Some(f))
}

fn bias_product_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bias: &[T],
    epilogue: Epilogue<'_, T>,
) -> Vec<T> {
    assert_eq!(
        bias.len(),
        b.cols,
        "gemm: bias length differs from the output width"
    );
    product_vec(a, b, Beta::Bias(bias), epilogue)
}

fn product_vec<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: Beta<'_, T>,
    epilogue: Epilogue<'_, T>,
) -> Vec<T> {
    // SAFETY: with β = 0 or a bias row, `product` writes every element of its output.
    unsafe { vec_written(a.rows * b.cols, |c| product(a, b, c, beta, epilogue)) }
}

/// `c = epilogue(a b + β c)`.
fn product<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [MaybeUninit<T>],
    beta: Beta<'_, T>,
    epilogue: Epilogue<'_, T>,
) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(c.len(), m * n, "gemm: output has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        let mut view = OutView::new(c, m, n);
        if !beta.apply(&mut view) {
            for i in 0..m {
                view.row(i).fill(MaybeUninit::new(T::zero()));
            }
        }
        return finish(epilogue, &mut view);
    }
    a.check();
    b.check();
    // The `gemm` crate runs at about half its rate when the right operand is column-major
    // (both operands contiguous along k: the `G Wᵀ` of every backward pass), so large
    // enough products copy it row-major first; below about a hundred rows of output the
    // copy costs more than it saves. A small one is copied too when the copy lets the
    // few-columns kernel take the product (the `G Wᵀ` of a narrow layer): the `gemm`
    // crate's setup alone costs more. Measurements: docs/performance.md.
    let parts = gemm_parts(m * n * k);
    let large = m >= TRANSPOSE_MIN_ROWS
        && k * n >= TRANSPOSE_MIN_ELEMENTS
        && (parts > 1 || k * n > TRANSPOSE_ONE_THREAD_MIN);
    let for_few_columns = k * n <= FEW_COLUMNS_COPY_MAX && few_columns_f32::<T>(n, 1);
    if b.row_stride == 1 && b.col_stride != 1 && (large || for_few_columns) {
        // When the left operand is row-major and copying it plus the output moves fewer
        // elements than copying `b`, the product is taken the other way round:
        // `cᵀ = bᵀ aᵀ`, where `bᵀ` is already row-major and `aᵀ` is copied, into a
        // scratch `cᵀ` that is then written into `c` transposed.
        if let Beta::Zero = beta {
            if a.col_stride == 1 && m * k + m * n < k * n {
                return with_scratch(k * m, |copy: &mut [T]| {
                    // SAFETY: `transpose_into` and `multiply` write only values.
                    transpose_into(a.t(), unsafe { as_uninit(copy) }, parts);
                    with_scratch(n * m, |ct: &mut [T]| {
                        multiply(
                            b.t(),
                            MatRef::row_major(copy, k, m),
                            // SAFETY: as above.
                            unsafe { as_uninit(ct) },
                            Beta::Zero,
                            None,
                            parts,
                        );
                        transpose_into(MatRef::row_major(ct, n, m).t(), c, parts);
                    });
                    finish(epilogue, &mut OutView::new(c, m, n));
                });
            }
        }
        return with_scratch(k * n, |copy: &mut [T]| {
            // SAFETY: `transpose_into` writes only values.
            transpose_into(b, unsafe { as_uninit(copy) }, parts);
            multiply(a, MatRef::row_major(copy, k, n), c, beta, epilogue, parts);
        });
    }
    multiply(a, b, c, beta, epilogue, parts);
}

/// Whether an f32 product with this right operand goes to the few-columns kernel.
fn few_columns_f32<T: 'static>(n: usize, b_col_stride: usize) -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && few_columns::applies(n, b_col_stride)
}

/// Writes the elements of a column-major `b` (`row_stride` 1) into `out` as a contiguous
/// row-major `b.rows x b.cols` matrix, eight output rows at a time: each column of `b`
/// gives a run of eight contiguous reads, and the eight rows being written stay in L1.
fn transpose_into<T: Float>(b: MatRef<'_, T>, out: &mut [MaybeUninit<T>], parts: usize) {
    const PANEL: usize = 8;
    let cols = b.cols;
    debug_assert!(b.row_stride == 1 && out.len() == b.rows * cols);
    let panels = b.rows.div_ceil(PANEL);
    // Part i writes the rows of its range of panels: consecutive, disjoint slices.
    let mut bands = SmallVec::new();
    let mut rest = out;
    for i in 0..parts {
        let range = pool::part_range(panels, parts, i);
        let rows = (range.start * PANEL).min(b.rows)..(range.end * PANEL).min(b.rows);
        let (band, tail) = rest.split_at_mut(rows.len() * cols);
        bands.push((range.start * PANEL, band));
        rest = tail;
    }
    pool::for_each_owned(bands, |_, (first_row, dst)| {
        for (j, dst) in dst.chunks_mut(PANEL * cols).enumerate() {
            let first = first_row + j * PANEL;
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
    beta: Beta<'_, T>,
    epilogue: Epilogue<'_, T>,
    parts: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    match parts {
        1 => {
            let mut c = OutView::new(c, m, n);
            gemm_call(a, b, &mut c, beta);
            finish(epilogue, &mut c);
        }
        // Split along the inner dimension in two cases:
        // - `Xᵀ G` (a weight gradient) with a small output: each part sums over its own
        //   band of the batch, the rows of X and G that the same part of the forward
        //   pass used;
        // - `X W` with a large `W` taller than the output has rows (a first layer):
        //   each part reads only its own band of W's rows, the band that the same part
        //   of the optimizer's update writes.
        // Then the partial products are added in part order.
        _ if ((a.row_stride == 1 && m * n <= SPLIT_K_MAX_OUTPUT)
            || (a.row_stride != 1 && k > m && k * n >= SPLIT_K_MIN_RIGHT))
            && k >= 16 * parts =>
        {
            // A bias is added with the partial sums, not by part 0's product, so that
            // part 0 runs the same plain product as the others.
            let (first, bias) = match beta {
                Beta::Bias(row) => (Beta::Zero, Some(row)),
                other => (other, None),
            };
            with_scratch((parts - 1) * m * n, |partials: &mut [T]| {
                // Part 0 writes `c`, part i > 0 its own piece of the scratch.
                let mut outs: SmallVec<[&mut [MaybeUninit<T>]; 8]> = SmallVec::new();
                outs.push(&mut *c);
                // SAFETY: the products write only values into the scratch.
                outs.extend(unsafe { as_uninit(partials) }.chunks_mut(m * n));
                pool::for_each_owned(outs, |i, out| {
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
                    let beta = if i == 0 { first } else { Beta::Zero };
                    gemm_call(a, b, &mut OutView::new(out, m, n), beta);
                });
                // SAFETY: part 0 wrote (or accumulated into) every element of `c`.
                let c = unsafe { assume_init_mut(c) };
                let partials = &*partials;
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
                    if let Some(f) = epilogue {
                        f(c);
                    }
                });
            })
        }
        // Each part is the product of a band of rows of `a` and writes only its own band
        // of `c`: when the output is taller than wide; when it is wider but the inner
        // dimension is short, so that writing the output is most of the work; and for a
        // large weight gradient `Xᵀ G`, whose bands of rows are the bands of the weight
        // that the optimizer's parts update.
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
                let mut c = OutView::new(c, rows.len(), n);
                gemm_call(a, b, &mut c, beta);
                finish(epilogue, &mut c);
            })
        }
        // ... or, when the output is wider than tall, of a band of columns of `b`: each
        // part writes its columns of every row through its own view.
        _ => {
            let bands = OutView::new(c, m, n).split_columns(parts);
            pool::for_each_owned(bands, |i, mut c| {
                let cols = pool::part_range(n, parts, i);
                if cols.is_empty() {
                    return;
                }
                let b = MatRef {
                    data: &b.data[cols.start * b.col_stride..],
                    cols: cols.len(),
                    ..b
                };
                gemm_call(a, b, &mut c, beta.columns(cols));
                finish(epilogue, &mut c);
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

/// One call of the `gemm` crate (or of the few-columns kernel) writing `c`, which must
/// have `a.rows` rows of `b.cols` elements.
fn gemm_call<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut OutView<'_, T>,
    beta: Beta<'_, T>,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        c.rows == m && c.cols == n,
        "gemm: output view differs from the product's shape"
    );
    if m == 0 || n == 0 {
        return;
    }
    a.check();
    b.check();
    if few_columns_f32::<T>(n, b.col_stride) {
        let beta = match beta {
            Beta::Zero => few_columns::Beta::Zero,
            Beta::One => few_columns::Beta::One,
            Beta::Bias(row) => few_columns::Beta::Bias(row.as_ptr().cast::<f32>()),
        };
        let view = |x: MatRef<'_, T>| few_columns::Strided {
            ptr: x.data.as_ptr().cast::<f32>(),
            row_stride: x.row_stride,
            col_stride: x.col_stride,
        };
        let job = few_columns::Product {
            m,
            k,
            n,
            a: view(a),
            b: view(b),
            c: few_columns::Out {
                ptr: c.ptr.cast::<f32>(),
                row_stride: c.row_stride,
            },
            beta,
        };
        // SAFETY: `T` is `f32` and `applies` held (`few_columns_f32`); `check` bounds the
        // operand views, `c` is the unique borrow of `m` rows of `n` elements
        // `row_stride` apart (initialised when β = 1, as `Beta::One` requires), and a
        // bias row has `n` elements (`bias_product_vec`, `Beta::columns`).
        return unsafe { job.run() };
    }
    let accumulate = beta.apply(c);
    // SAFETY: every element the kernel touches lies inside the checked operand views
    // and the `m x n` output view, which `c` borrows uniquely; with `accumulate` every
    // element of it has been initialised (β = 1, or the bias just written).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.ptr.cast::<T>(),
            1,
            c.row_stride as isize,
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
        // SAFETY: `multiply` writes only values.
        let c = unsafe { as_uninit(c) };
        multiply(a, b, c, Beta::from_accumulate(acc), None, parts);
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
        pool::with_threads(3, split_products_match_here);
    }

    fn split_products_match_here() {
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

    /// Small products that take the column-band split (wide outputs, too few rows to
    /// split by rows), on two threads: each part writes its columns of every row
    /// through its own view. Small enough for Miri, which checks that no two parts
    /// hold overlapping mutable borrows (the opt-in run in docs/soundness.md).
    #[test]
    fn column_band_products_match_the_plain_loops() {
        pool::with_threads(2, || {
            for (m, k, n) in [(3, 8, 12), (5, 20, 37)] {
                assert!(
                    m < n && m < ROW_SPLIT_MIN_ROWS * 2,
                    "takes the column split"
                );
                let (a_data, b_data) = (filled(m * k, 12), filled(k * n, 13));
                let a = MatRef::row_major(&a_data, m, k);
                let b = MatRef::row_major(&b_data, k, n);
                let want = naive(a, b);
                let mut c = vec![0.5; m * n];
                matmul_with_parts(a, b, &mut c, false, 2);
                matmul_with_parts(a, b, &mut c, true, 2);
                for (got, want) in c.iter().zip(&want) {
                    assert!(
                        (got - 2.0 * want).abs() < 1e-12,
                        "{m}x{k}x{n}: {got} vs {want}"
                    );
                }
            }
        })
    }

    /// Products starting from a bias row, split by rows, by columns (the bias cut to
    /// each band's columns) or along the inner dimension (the bias added with the
    /// partial sums, bands starting inside a row), in f64 (the `gemm` crate) and f32
    /// (outputs of few columns take the few-columns kernel), and through the public
    /// `matmul_bias_vec` (whose large column-major right operand is copied first): the
    /// plain loops plus the bias. With a finishing function, each element is finished
    /// exactly once, whichever way the product was split.
    #[test]
    fn products_from_a_bias_row_match_the_plain_loops() {
        pool::with_threads(3, products_from_a_bias_row_here);
    }

    fn products_from_a_bias_row_here() {
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
                // SAFETY: `multiply` writes only values.
                multiply(
                    a,
                    b,
                    unsafe { as_uninit(&mut c) },
                    Beta::Bias(&bias),
                    None,
                    parts,
                );
                check(&c, &format!("in {parts} parts"));
                multiply(
                    a,
                    b,
                    // SAFETY: as above.
                    unsafe { as_uninit(&mut c) },
                    Beta::Bias(&bias),
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
            let got = matmul_bias_epilogue_vec(a, b, &bias, &finish);
            for (got, want) in got.iter().zip(&finished) {
                assert!(
                    (got - want).abs() < 1e-11,
                    "{m}x{k}x{n} matmul_bias_epilogue_vec: {got} vs {want}"
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

    /// f32 products with few output columns and a small column-major right operand (a
    /// narrow layer's `G Wᵀ`, copied for the few-columns kernel) and with one too large to
    /// copy: the plain loops' values.
    #[test]
    fn few_column_f32_products_with_a_transposed_right_operand() {
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
