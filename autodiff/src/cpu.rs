//! Running on the CPU: how many threads the engine's kernels use, and the few safe
//! building blocks that code outside the engine (an optimizer, a data loader) needs to
//! run elementwise loops as fast as the engine's own: wide vector code, parallel
//! updates over disjoint pieces of tensors, a matrix written by rows in parallel.
//!
//! The thread count is a scope of the calling thread ([`with_threads`]), never a
//! process-wide setting: a test that compares thread counts cannot be disturbed by
//! another running beside it.

pub use crate::kernels::pool::{threads, with_threads};
pub use crate::kernels::rows::{fill_rows, RowWriter};
pub use crate::kernels::simd::{prefetch, wide};

use crate::kernels::{pool, schedule};
use smallvec::SmallVec;

/// One tensor's share of an elementwise update: its values, its gradient, and `N` state
/// buffers (moments, velocity), all of the same length.
pub struct UpdateSlices<'a, T, const N: usize> {
    /// The values updated in place.
    pub values: &'a mut [T],
    /// The gradient, read.
    pub grad: &'a [T],
    /// State buffers updated in place.
    pub states: [&'a mut [T]; N],
}

/// Applies `update(values, grad, states)` over every tensor, as one parallel job: a
/// tensor large enough is split into one contiguous range per thread, the smaller ones
/// go whole to the last part. One job for all tensors (the "foreach" form of other
/// frameworks' optimizers), since each job costs a hand-over between cores. Each
/// element sees the same arithmetic whatever the split, so results do not depend on the
/// thread count.
///
/// Panics if a gradient or state buffer is not as long as its values.
///
/// ```
/// use autodiff::cpu::{update_in_parallel, UpdateSlices};
/// let (mut w, g) = (vec![1.0f32; 10_000], vec![0.5f32; 10_000]);
/// let mut velocity = vec![0.0f32; 10_000];
/// let tensors = vec![UpdateSlices { values: &mut w, grad: &g, states: [&mut velocity] }];
/// update_in_parallel(tensors, |w, g, [v]| {
///     for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
///         *v = 0.9 * *v + g;
///         *w -= 0.1 * *v;
///     }
/// });
/// assert_eq!(w[9_999], 0.95);
/// ```
pub fn update_in_parallel<T: Send + Sync, const N: usize>(
    tensors: Vec<UpdateSlices<'_, T, N>>,
    update: impl Fn(&mut [T], &[T], [&mut [T]; N]) + Sync,
) {
    let split: Vec<usize> = tensors
        .iter()
        .map(|t| schedule::update_parts(t.values.len()))
        .collect();
    let parts = split.iter().copied().max().unwrap_or(1);
    // Part i's pieces, in the order of the tensors: range i of each tensor split into
    // more than i ranges, and every whole one in the last part.
    let mut pieces: SmallVec<[Vec<UpdateSlices<'_, T, N>>; 8]> =
        (0..parts).map(|_| Vec::new()).collect();
    for (t, n) in tensors.into_iter().zip(split) {
        let len = t.values.len();
        assert!(
            t.grad.len() == len && t.states.iter().all(|s| s.len() == len),
            "update_in_parallel: a gradient or state of another length than its {len} values"
        );
        if n == 1 {
            pieces[parts - 1].push(t);
            continue;
        }
        let (mut values, mut grad, mut states) = (t.values, t.grad, t.states);
        for (i, part) in pieces.iter_mut().enumerate().take(n) {
            let take = pool::part_range(len, n, i).len();
            let (v, v_rest) = std::mem::take(&mut values).split_at_mut(take);
            let (g, g_rest) = grad.split_at(take);
            let mut s_here: [&mut [T]; N] = std::array::from_fn(|_| <&mut [T]>::default());
            for (here, rest) in s_here.iter_mut().zip(states.iter_mut()) {
                let (a, b) = std::mem::take(rest).split_at_mut(take);
                (*here, *rest) = (a, b);
            }
            part.push(UpdateSlices {
                values: v,
                grad: g,
                states: s_here,
            });
            (values, grad) = (v_rest, g_rest);
        }
    }
    if parts < 2 {
        for piece in pieces.into_iter().flatten() {
            update(piece.values, piece.grad, piece.states);
        }
        return;
    }
    pool::for_each_owned(pieces, |_, part| {
        for piece in part {
            update(piece.values, piece.grad, piece.states);
        }
    });
}
