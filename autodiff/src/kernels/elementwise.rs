//! Elementwise loops into new buffers: each result is computed in one piece, or for a
//! large matrix in one band of rows per thread (the bands a split matrix product of the
//! result uses, so each core finds its band in its own cache for the next product). The
//! loops run inside [`wide`], so the compiler vectorises the inlined function
//! sixteen lanes wide where the CPU has AVX-512.

use super::pool;
use super::schedule::elementwise_parts;
use super::simd::wide;
use super::uninit::vec_written;
use crate::float::Float;
use std::mem::MaybeUninit;
use std::ops::Range;

/// An elementwise function as the loops here call it per element; the unary ops and
/// the activations implement it in `ops/` (the kernels know no op by name).
pub(crate) trait ElementFn<T>: Copy + Sync {
    /// The function at `x`.
    fn f(self, x: T) -> T;
    /// The input's gradient `g * dy/dx` at input `x` with output `y = f(x)`.
    fn vjp(self, x: T, y: T, g: T) -> T;
    /// `body(self)` with `self` a constant in an arm of its own variant, so that after
    /// inlining `f` and `vjp` are straight-line code inside `body`'s loop instead of a
    /// `match` per element.
    fn per_variant<R>(self, body: impl FnOnce(Self) -> R) -> R;
}

/// `op(x[i])` for every element of `x`, a tensor of `shape`.
pub(crate) fn unary<T: Float, F: ElementFn<T>>(op: F, x: &[T], shape: &[usize]) -> Vec<T> {
    // SAFETY: `write_each` writes every element of its band (it asserts the lengths).
    unsafe {
        banded(
            op,
            x.len(),
            shape,
            #[inline(always)]
            |o, range, out| {
                let x = &x[range];
                write_each(
                    out,
                    x,
                    #[inline(always)]
                    |v| o.f(v),
                )
            },
        )
    }
}

/// The input's gradient of `op` for every element: inputs `x`, outputs `y`, output
/// gradients `g`, all of `shape`.
pub(crate) fn unary_vjp<T: Float, F: ElementFn<T>>(
    op: F,
    x: &[T],
    y: &[T],
    g: &[T],
    shape: &[usize],
) -> Vec<T> {
    // SAFETY: `write_each3` writes every element of its band (it asserts the lengths).
    unsafe {
        banded(
            op,
            x.len(),
            shape,
            #[inline(always)]
            |o, range, out| {
                let (x, y, g) = (&x[range.clone()], &y[range.clone()], &g[range]);
                write_each3(
                    out,
                    x,
                    y,
                    g,
                    #[inline(always)]
                    |x, y, g| o.vjp(x, y, g),
                )
            },
        )
    }
}

/// A new vector of `n` elements (a tensor of `shape`) written by `band(op, range, out)`
/// inside [`wide`]: in one piece, or in the bands of rows [`elementwise_parts`]
/// chooses. The op is matched here ([`ElementFn::per_variant`]), once per band, so in
/// each arm it is a constant and `band`'s loop is straight-line code.
///
/// # Safety
/// `band` writes every element of the `out` it is given.
#[inline(always)]
unsafe fn banded<T: Send, F: ElementFn<T>>(
    op: F,
    n: usize,
    shape: &[usize],
    band: impl Fn(F, Range<usize>, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let in_wide = |range: Range<usize>, out: &mut [MaybeUninit<T>]| {
        wide(
            #[inline(always)]
            || {
                op.per_variant(
                    #[inline(always)]
                    |o| band(o, range, out),
                )
            },
        )
    };
    let fill = |out: &mut [MaybeUninit<T>]| {
        let rows = shape.first().copied().unwrap_or(1);
        let parts = elementwise_parts(n, shape);
        if parts <= 1 {
            return in_wide(0..n, out);
        }
        let row_len = n / rows;
        pool::for_row_bands(out, rows, parts, |rows, out| {
            in_wide(rows.start * row_len..rows.end * row_len, out)
        });
    };
    // SAFETY: the bands cover all `n` elements, and the caller promises `band` writes
    // every element of each.
    unsafe { vec_written(n, fill) }
}

/// `out[i] = f(x[i])` for every element of `out` (as long as `x`). The loops are plain
/// functions with their slices as parameters, so that inlined into `wide` the compiler
/// still knows the output aliases no input.
#[inline(always)]
fn write_each<T: Copy>(out: &mut [MaybeUninit<T>], x: &[T], f: impl Fn(T) -> T) {
    assert_eq!(out.len(), x.len(), "write_each: lengths differ");
    for (out, &v) in out.iter_mut().zip(x) {
        out.write(f(v));
    }
}

/// `out[i] = f(x[i], y[i], g[i])` for every element of `out` (as long as each input).
#[inline(always)]
fn write_each3<T: Copy>(
    out: &mut [MaybeUninit<T>],
    x: &[T],
    y: &[T],
    g: &[T],
    f: impl Fn(T, T, T) -> T,
) {
    let n = out.len();
    assert!(
        x.len() == n && y.len() == n && g.len() == n,
        "write_each3: lengths differ"
    );
    for (((out, &x), &y), &g) in out.iter_mut().zip(x).zip(y).zip(g) {
        out.write(f(x, y, g));
    }
}
