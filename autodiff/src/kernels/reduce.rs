//! Reductions (sum, max) over any set of axes, producing the keepdim shape. On slices
//! and shapes; `tensor.rs` wraps them for tensors.

use crate::float::Float;
use crate::shape::{BroadcastOffsets, Shape};

/// The keepdim shape of reducing `shape` over the axes marked in `reduced`.
pub(crate) fn kept_shape(shape: &[usize], reduced: &[bool]) -> Shape {
    shape
        .iter()
        .zip(reduced)
        .map(|(&d, &r)| if r { 1 } else { d })
        .collect()
}

/// When the reduced axes form one contiguous block, returns (outer, reduced, inner) sizes.
fn contiguous_block(shape: &[usize], reduced: &[bool]) -> Option<(usize, usize, usize)> {
    let first = reduced.iter().position(|&r| r)?;
    let last = reduced.iter().rposition(|&r| r)?;
    if reduced[first..=last].iter().all(|&r| r) {
        let outer = shape[..first].iter().product();
        let mid = shape[first..=last].iter().product();
        let inner = shape[last + 1..].iter().product();
        Some((outer, mid, inner))
    } else {
        None
    }
}

/// Sum of `src` (of `shape`) over the marked axes, in the order of [`kept_shape`].
pub(crate) fn sum<T: Float>(src: &[T], shape: &[usize], reduced: &[bool]) -> Vec<T> {
    if !reduced.iter().any(|&r| r) {
        return src.to_vec();
    }
    let out_shape = kept_shape(shape, reduced);
    let out_len = out_shape.iter().product();
    let mut out = vec![T::zero(); out_len];
    match contiguous_block(shape, reduced) {
        Some((_, mid, 1)) if mid > 0 => {
            for (o, row) in out.iter_mut().zip(src.chunks_exact(mid)) {
                *o = row.iter().copied().sum();
            }
        }
        Some((outer, mid, inner)) => {
            for o in 0..outer {
                let acc = &mut out[o * inner..(o + 1) * inner];
                for j in 0..mid {
                    let row = &src[(o * mid + j) * inner..(o * mid + j + 1) * inner];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
            }
        }
        None => {
            for (&v, i) in src.iter().zip(BroadcastOffsets::new(shape, &out_shape)) {
                out[i] += v;
            }
        }
    }
    out
}

/// Max of `src` (of `shape`) over the marked axes, in the order of [`kept_shape`], with
/// the flat index of the first maximum of each group (so ties send the gradient to one
/// element, deterministically). NaN wins over numbers.
pub(crate) fn max<T: Float>(src: &[T], shape: &[usize], reduced: &[bool]) -> (Vec<T>, Vec<usize>) {
    let out_shape = kept_shape(shape, reduced);
    let out_len: usize = out_shape.iter().product();
    let mut out = vec![T::neg_infinity(); out_len];
    let mut arg = vec![usize::MAX; out_len];
    for ((flat, &v), i) in src
        .iter()
        .enumerate()
        .zip(BroadcastOffsets::new(shape, &out_shape))
    {
        if arg[i] == usize::MAX || v > out[i] || (v.is_nan() && !out[i].is_nan()) {
            out[i] = v;
            arg[i] = flat;
        }
    }
    (out, arg)
}
