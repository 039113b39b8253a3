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
    // SAFETY: `by_row_bands` hands out bands covering all `x.len()` elements, and
    // `write_each` writes every element of its band (it asserts the lengths match).
    unsafe {
        vec_written(x.len(), |out| {
            by_row_bands(out, shape, |range, out| {
                let x = &x[range];
                // The op is matched inside the wide function, once per band: in each
                // arm it is a constant, so the loop is straight-line code.
                wide(
                    #[inline(always)]
                    || {
                        per_op!(op, |o| write_each(
                            out,
                            x,
                            #[inline(always)]
                            |v| o.f(v)
                        ))
                    },
                )
            })
        })
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
    map3(
        x,
        y,
        g,
        shape,
        #[inline(always)]
        |out, x, y, g| {
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

/// The input's gradient of an activation from its outputs `y` and their gradients `g`
/// alone, for every element (a fused layer's backward pass).
pub(crate) fn activation_vjp<T: Float>(
    act: Activation,
    y: &[T],
    g: &[T],
    shape: &[usize],
) -> Vec<T> {
    map3(
        y,
        y,
        g,
        shape,
        #[inline(always)]
        |out, _, y, g| {
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

/// Runs `band(out, x, y, g)` inside [`wide`] over bands of three tensors of `shape`
/// and their new output; `band` must write every element of its `out` (both callers
/// pass `write_each3`, which does).
#[inline(always)]
fn map3<T: Copy + Send + Sync>(
    x: &[T],
    y: &[T],
    g: &[T],
    shape: &[usize],
    band: impl Fn(&mut [MaybeUninit<T>], &[T], &[T], &[T]) + Sync,
) -> Vec<T> {
    let n = x.len();
    assert!(
        y.len() == n && g.len() == n,
        "elementwise: operand lengths differ"
    );
    // SAFETY: `by_row_bands` hands out bands covering all `n` elements, and `band` is
    // one of this module's two callers' `write_each3`, which writes every element of
    // its band (it asserts the lengths match).
    unsafe {
        vec_written(n, |out| {
            by_row_bands(out, shape, |range, out| {
                let (x, y, g) = (&x[range.clone()], &y[range.clone()], &g[range]);
                wide(
                    #[inline(always)]
                    || band(out, x, y, g),
                )
            })
        })
    }
}

/// Runs `f(range, out[range])` over the whole of `out` (the elements of a tensor of
/// `shape`), in the bands [`elementwise_parts`] chooses.
fn by_row_bands<T: Send>(
    out: &mut [MaybeUninit<T>],
    shape: &[usize],
    f: impl Fn(Range<usize>, &mut [MaybeUninit<T>]) + Sync,
) {
    let n = out.len();
    let rows = shape.first().copied().unwrap_or(1);
    let parts = elementwise_parts(n, shape);
    if parts <= 1 {
        return f(0..n, out);
    }
    let row_len = n / rows;
    pool::for_row_bands(out, rows, parts, |band, out| {
        f(band.start * row_len..band.end * row_len, out)
    });
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
