//! Stable softmax and log-softmax along one axis: the maximum is subtracted first,
//! so logits of any size give finite results.

use crate::float::Float;
use crate::shape::split_at_axis;
use crate::tensor::Tensor;

/// Calls `f(lane)` with a gather/scatter view of each 1-D lane along `axis`.
fn for_each_lane<T: Float>(
    x: &Tensor<T>,
    axis: usize,
    mut f: impl FnMut(&[T], &mut [T]),
) -> Tensor<T> {
    let (outer, len, inner) = split_at_axis(x.shape(), axis);
    let src = x.data();
    let mut out = vec![T::zero(); src.len()];
    if inner == 1 {
        for (lane, dst) in src
            .chunks_exact(len.max(1))
            .zip(out.chunks_exact_mut(len.max(1)))
        {
            f(lane, dst);
        }
    } else {
        let mut lane = vec![T::zero(); len];
        let mut dst = vec![T::zero(); len];
        for o in 0..outer {
            for i in 0..inner {
                for j in 0..len {
                    lane[j] = src[(o * len + j) * inner + i];
                }
                f(&lane, &mut dst);
                for j in 0..len {
                    out[(o * len + j) * inner + i] = dst[j];
                }
            }
        }
    }
    Tensor::from_parts(x.shape().into(), out)
}

fn lane_max<T: Float>(lane: &[T]) -> T {
    lane.iter().copied().fold(T::neg_infinity(), T::max)
}

/// softmax(x)_j = exp(x_j - m) / sum_k exp(x_k - m), m = max_k x_k.
pub(crate) fn softmax<T: Float>(x: &Tensor<T>, axis: usize) -> Tensor<T> {
    for_each_lane(x, axis, |lane, out| {
        let m = lane_max(lane);
        let mut total = T::zero();
        for (o, &v) in out.iter_mut().zip(lane) {
            *o = (v - m).exp();
            total += *o;
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    })
}

/// log_softmax(x)_j = x_j - m - ln sum_k exp(x_k - m).
pub(crate) fn log_softmax<T: Float>(x: &Tensor<T>, axis: usize) -> Tensor<T> {
    for_each_lane(x, axis, |lane, out| {
        let m = lane_max(lane);
        let total: T = lane.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + total.ln();
        for (o, &v) in out.iter_mut().zip(lane) {
            *o = v - lse;
        }
    })
}

/// Combines a lane-wise gradient rule: `out_j = f(y_j, g_j, s)` with `s = sum_k h(y_k, g_k)`.
pub(crate) fn lane_vjp<T: Float>(
    y: &Tensor<T>,
    g: &Tensor<T>,
    axis: usize,
    h: impl Fn(T, T) -> T,
    f: impl Fn(T, T, T) -> T,
) -> Tensor<T> {
    let (outer, len, inner) = split_at_axis(y.shape(), axis);
    let (ys, gs) = (y.data(), g.data());
    let mut out = vec![T::zero(); ys.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let s: T = (0..len).map(|j| h(ys[at(j)], gs[at(j)])).sum();
            for j in 0..len {
                out[at(j)] = f(ys[at(j)], gs[at(j)], s);
            }
        }
    }
    Tensor::from_parts(y.shape().into(), out)
}
