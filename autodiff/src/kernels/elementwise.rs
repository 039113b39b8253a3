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
use crate::ops::activation::{per_activation, Activation};
use crate::ops::elementwise::{per_op, UnaryOp};
use std::mem::MaybeUninit;
use std::ops::Range;

/// `op(x[i])` for every element of `x`, a tensor of `shape`.
pub(crate) fn unary<T: Float>(op: UnaryOp<T>, x: &[T], shape: &[usize]) -> Vec<T> {
    // SAFETY: `write_each` writes every element of its band (it asserts the lengths).
    unsafe {
        banded(
            x.len(),
            shape,
            #[inline(always)]
            |range, out| {
                let x = &x[range];
                per_op!(op, |o| write_each(
                    out,
                    x,
                    #[inline(always)]
                    |v| o.f(v)
                ))
            },
        )
    }
}

/// The input's gradient of `op` for every element: inputs `x`, outputs `y`, output
/// gradients `g`, all of `shape`.
pub(crate) fn unary_vjp<T: Float>(
    op: UnaryOp<T>,
    x: &[T],
    y: &[T],
    g: &[T],
    shape: &[usize],
) -> Vec<T> {
    // SAFETY: `write_each3` writes every element of its band (it asserts the lengths).
    unsafe {
        banded(
            x.len(),
            shape,
            #[inline(always)]
            |range, out| {
                let (x, y, g) = (&x[range.clone()], &y[range.clone()], &g[range]);
                per_op!(op, |o| write_each3(
                    out,
                    x,
                    y,
                    g,
                    #[inline(always)]
                    |x, y, g| o.vjp(x, y, g)
                ))
            },
        )
    }
}

/// The input's gradient of an activation from its outputs `y` and their gradients `g`
/// alone, for every element (a fused layer's backward pass).
pub(crate) fn activation_vjp<T: Float>(
    act: Activation,
    y: &[T],
    g: &[T],
    shape: &[usize],
) -> Vec<T> {
    // SAFETY: `write_each3` writes every element of its band (it asserts the lengths).
    unsafe {
        banded(
            y.len(),
            shape,
            #[inline(always)]
            |range, out| {
                let (y, g) = (&y[range.clone()], &g[range]);
                per_activation!(act, |a| write_each3(
                    out,
                    y,
                    y,
                    g,
                    #[inline(always)]
                    |_, y, g| a.vjp_from_output(y, g)
                ))
            },
        )
    }
}

/// A new vector of `n` elements (a tensor of `shape`) written by `band(range, out)`
/// inside [`wide`]: in one piece, or in the bands of rows [`elementwise_parts`]
/// chooses. The op is matched inside `band`, once per band, so in each arm it is a
/// constant and the loop is straight-line code.
///
/// # Safety
/// `band` writes every element of the `out` it is given.
#[inline(always)]
unsafe fn banded<T: Send>(
    n: usize,
    shape: &[usize],
    band: impl Fn(Range<usize>, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let in_wide = |range: Range<usize>, out: &mut [MaybeUninit<T>]| {
        wide(
            #[inline(always)]
            || band(range, out),
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
