//! Elementwise binary kernels under NumPy broadcasting, and the one place where
//! broadcasting is undone: a broadcast operand's gradient is summed back to its shape.

use crate::float::Float;
use crate::kernels::reduce;
use crate::kernels::simd::wide;
use crate::kernels::uninit::vec_written;
use crate::shape::{broadcast_shapes, numel, BroadcastOffsets, Shape};
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

/// `f(a, b)` elementwise over the broadcast shape. Panics naming `op` and both shapes
/// when they do not broadcast.
pub(crate) fn binary<T: Float>(
    op: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) -> Tensor<T> {
    let (x, y) = (a.data(), b.data());
    let out_shape = if a.shape() == b.shape() {
        a.shape().into()
    } else {
        match broadcast_shapes(op, a.shape(), b.shape()) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    };
    let n = numel(&out_shape);
    // Same shapes, a scalar operand, or one operand repeating along the leading
    // dimensions of the other (the bias case): loops over rows, compiled wide.
    let repeats = |small: &Tensor<T>, big: &Tensor<T>| {
        big.numel() == n && (small.numel() == 1 || is_suffix(small.shape(), &out_shape))
    };
    if n > 0 && (a.shape() == b.shape() || repeats(b, a) || repeats(a, b)) {
        let fill = |out: &mut [MaybeUninit<T>]| {
            wide(
                #[inline(always)]
                || {
                    if x.len() == n {
                        repeat_rows(out, x, y, &f);
                    } else {
                        repeat_rows(out, y, x, |q, p| f(p, q));
                    }
                },
            )
        };
        // SAFETY: `repeat_rows` writes every element of `out` (see its doc).
        let data = unsafe { vec_written(n, fill) };
        return Tensor::from_parts(out_shape, data);
    }
    let data: Vec<T> = BroadcastOffsets::new(&out_shape, a.shape())
        .zip(BroadcastOffsets::new(&out_shape, b.shape()))
        .map(|(i, j)| f(x[i], y[j]))
        .collect();
    Tensor::from_parts(out_shape, data)
}

/// Writes every `out[i] = f(full[i], part[i % part.len()])`, where `full` is as long
/// as `out` and `part` is one element or a row that `full` holds a whole number of.
#[inline(always)]
fn repeat_rows<T: Float>(
    out: &mut [MaybeUninit<T>],
    full: &[T],
    part: &[T],
    f: impl Fn(T, T) -> T,
) {
    assert!(
        full.len() == out.len() && !part.is_empty() && out.len().is_multiple_of(part.len()),
        "repeat_rows: {} outputs from {} and {} elements",
        out.len(),
        full.len(),
        part.len()
    );
    if let [q] = *part {
        for (o, &p) in out.iter_mut().zip(full) {
            o.write(f(p, q));
        }
        return;
    }
    let m = part.len();
    for (out, full) in out.chunks_exact_mut(m).zip(full.chunks_exact(m)) {
        for ((o, &p), &q) in out.iter_mut().zip(full).zip(part) {
            o.write(f(p, q));
        }
    }
}

/// True when `small`, ignoring leading 1s, equals the trailing dimensions of `big`.
fn is_suffix(small: &[usize], big: &[usize]) -> bool {
    let trimmed = match small.iter().position(|&d| d != 1) {
        Some(p) => &small[p..],
        None => &[],
    };
    trimmed.len() <= big.len()
        && big[big.len() - trimmed.len()..] == *trimmed
        && !trimmed.is_empty()
}

/// Repeats `x` along broadcast dimensions until it has `shape`.
pub(crate) fn broadcast_to<T: Float>(x: &Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if x.shape() == shape {
        return x.clone();
    }
    let src = x.data();
    let n = numel(shape);
    let data: Vec<T> = if src.len() == 1 {
        vec![src[0]; n]
    } else if is_suffix(x.shape(), shape) {
        let mut data = Vec::with_capacity(n);
        for _ in 0..n / src.len() {
            data.extend_from_slice(src);
        }
        data
    } else {
        BroadcastOffsets::new(shape, x.shape())
            .map(|i| src[i])
            .collect()
    };
    Tensor::from_parts(shape.into(), data)
}

/// Sums `grad` (of a broadcast result's shape) back down to `shape`, the shape of the
/// operand that was broadcast. The inverse of [`broadcast_to`] for gradients.
pub(crate) fn sum_to_shape<T: Float>(grad: Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if grad.shape() == shape {
        return grad;
    }
    let rank = grad.rank();
    let pad = rank - shape.len();
    let reduced: Vec<bool> = (0..rank)
        .map(|d| d < pad || (shape[d - pad] == 1 && grad.shape()[d] != 1))
        .collect();
    let summed = reduce::sum(&grad, &reduced);
    Tensor::from_parts(Shape::from_slice(shape), summed.into_vec())
}
