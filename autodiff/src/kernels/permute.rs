//! Copying a tensor's values into a permuted axis order. On slices and shapes;
//! `tensor.rs` wraps it for tensors.

use crate::float::Float;
use crate::shape::{strides, BroadcastOffsets, Shape};

/// The values and shape of the array whose axis `d` is axis `perm[d]` of `src` (of
/// `shape`), stored contiguously.
pub(crate) fn permute<T: Float>(src: &[T], shape: &[usize], perm: &[usize]) -> (Shape, Vec<T>) {
    let in_strides = strides(shape);
    let out_shape: Shape = perm.iter().map(|&p| shape[p]).collect();
    if shape.len() == 2 && perm == [1, 0] {
        let (rows, cols) = (shape[0], shape[1]);
        let mut out = Vec::with_capacity(src.len());
        for c in 0..cols {
            out.extend((0..rows).map(|r| src[r * cols + c]));
        }
        return (out_shape, out);
    }
    // Walk the output in order; the source offset advances by the permuted strides.
    let permuted_strides: Shape = perm.iter().map(|&p| in_strides[p]).collect();
    let data = BroadcastOffsets::with_strides(&out_shape, &permuted_strides)
        .map(|i| src[i])
        .collect();
    (out_shape, data)
}
