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
    // Walk the output in order, a run along its last axis at a time: the source offset
    // of each run's start advances by the permuted strides of the axes before it.
    let permuted_strides: Shape = perm.iter().map(|&p| in_strides[p]).collect();
    let rank = out_shape.len();
    if rank == 0 || src.is_empty() {
        return (out_shape, src.to_vec());
    }
    let (last, step) = (out_shape[rank - 1], permuted_strides[rank - 1]);
    let mut data = Vec::with_capacity(src.len());
    for start in
        BroadcastOffsets::with_strides(&out_shape[..rank - 1], &permuted_strides[..rank - 1])
    {
        if step == 1 {
            data.extend_from_slice(&src[start..start + last]);
        } else {
            data.extend((0..last).map(|j| src[start + j * step]));
        }
    }
    (out_shape, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every permutation of a `[2, 3, 4, 5]` array (and of smaller ranks) puts each
    /// value where index arithmetic says.
    #[test]
    fn permutations_move_every_value_to_its_index() {
        let shape = [2usize, 3, 4, 5];
        let src: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let perms: [&[usize]; 6] = [
            &[0, 1, 2, 3],
            &[3, 2, 1, 0],
            &[0, 2, 1, 3],
            &[2, 0, 3, 1],
            &[1, 3, 0, 2],
            &[0, 1, 3, 2],
        ];
        let in_strides = strides(&shape);
        for perm in perms {
            let (out_shape, out) = permute(&src, &shape, perm);
            let out_strides = strides(&out_shape);
            for (flat, &v) in out.iter().enumerate() {
                // Output index d is input index perm[d].
                let source: usize = (0..4)
                    .map(|d| (flat / out_strides[d]) % out_shape[d] * in_strides[perm[d]])
                    .sum();
                assert_eq!(v, src[source], "{perm:?} at {flat}");
            }
        }
        let (shape1, one) = permute(&src[..5], &[5], &[0]);
        assert_eq!((shape1.as_slice(), one.as_slice()), (&[5][..], &src[..5]));
    }
}
