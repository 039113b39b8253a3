//! Elementwise binary kernels under NumPy broadcasting, and the one place where
//! broadcasting is undone: a broadcast operand's gradient is summed back to its shape.

use crate::float::Float;
use crate::kernels::reduce;
use crate::shape::{broadcast_shapes, numel, BroadcastOffsets, Shape};
use crate::tensor::Tensor;

/// `f(a, b)` elementwise over the broadcast shape. Panics naming `op` and both shapes
/// when they do not broadcast.
pub(crate) fn binary<T: Float>(
    op: &'static str,
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T,
) -> Tensor<T> {
    let (x, y) = (a.data(), b.data());
    if a.shape() == b.shape() {
        let data = x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect();
        return Tensor::from_parts(a.shape().into(), data);
    }
    let out_shape = match broadcast_shapes(op, a.shape(), b.shape()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let n = numel(&out_shape);
    let data: Vec<T> = if y.len() == 1 && a.numel() == n {
        let q = y[0];
        x.iter().map(|&p| f(p, q)).collect()
    } else if x.len() == 1 && b.numel() == n {
        let p = x[0];
        y.iter().map(|&q| f(p, q)).collect()
    } else if x.len() == n && is_suffix(b.shape(), &out_shape) {
        // The common bias case: b repeats along the leading dimensions of a.
        let m = y.len();
        let mut data = Vec::with_capacity(n);
        for row in x.chunks_exact(m) {
            data.extend(row.iter().zip(y).map(|(&p, &q)| f(p, q)));
        }
        data
    } else if y.len() == n && is_suffix(a.shape(), &out_shape) {
        let m = x.len();
        let mut data = Vec::with_capacity(n);
        for row in y.chunks_exact(m) {
            data.extend(x.iter().zip(row).map(|(&p, &q)| f(p, q)));
        }
        data
    } else {
        BroadcastOffsets::new(&out_shape, a.shape())
            .zip(BroadcastOffsets::new(&out_shape, b.shape()))
            .map(|(i, j)| f(x[i], y[j]))
            .collect()
    };
    Tensor::from_parts(out_shape, data)
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
