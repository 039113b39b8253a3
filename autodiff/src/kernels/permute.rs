//! Copying a tensor into a permuted axis order.

use crate::float::Float;
use crate::shape::{strides, BroadcastOffsets, Shape};
use crate::tensor::Tensor;

/// The tensor whose axis `d` is axis `perm[d]` of `x`, stored contiguously.
pub(crate) fn permute<T: Float>(x: &Tensor<T>, perm: &[usize]) -> Tensor<T> {
    let in_strides = strides(x.shape());
    let out_shape: Shape = perm.iter().map(|&p| x.shape()[p]).collect();
    let src = x.data();
    if x.rank() == 2 && perm == [1, 0] {
        let (rows, cols) = (x.shape()[0], x.shape()[1]);
        let mut out = Vec::with_capacity(src.len());
        for c in 0..cols {
            out.extend((0..rows).map(|r| src[r * cols + c]));
        }
        return Tensor::from_parts(out_shape, out);
    }
    // Walk the output in order; the source offset advances by the permuted strides.
    let permuted_strides: Shape = perm.iter().map(|&p| in_strides[p]).collect();
    let data = BroadcastOffsets::with_strides(&out_shape, &permuted_strides)
        .map(|i| src[i])
        .collect();
    Tensor::from_parts(out_shape, data)
}
