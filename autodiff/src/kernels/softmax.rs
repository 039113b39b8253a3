//! Stable softmax and log-softmax along one axis: the maximum is subtracted first,
//! so logits of any size give finite results, and every `exp` is of a value <= 0,
//! computed by the inline `exp_nonpositive` (which vectorises) instead of libm's.

use crate::float::{exp_nonpositive, Float};
use crate::kernels::simd::wide;
use crate::kernels::{pool, schedule};
use crate::shape::split_at_axis;

/// Calls `f(lane)` with a gather/scatter view of each 1-D lane along `axis` of `src`, a
/// tensor of `shape`.
fn for_each_lane<T: Float>(
    src: &[T],
    shape: &[usize],
    axis: usize,
    mut f: impl FnMut(&[T], &mut [T]),
) -> Vec<T> {
    let (outer, len, inner) = split_at_axis(shape, axis);
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
    out
}

fn lane_max<T: Float>(lane: &[T]) -> T {
    lane.iter().copied().fold(T::neg_infinity(), T::max)
}

/// softmax(x)_j = exp(x_j - m) / sum_k exp(x_k - m), m = max_k x_k.
pub(crate) fn softmax<T: Float>(x: &[T], shape: &[usize], axis: usize) -> Vec<T> {
    if axis + 1 == shape.len() {
        // The same arithmetic in passes over the whole tensor (the exponentials
        // vectorise): the same bits.
        if let (_, Some(p)) = log_softmax_rows(x, shape, true) {
            return p;
        }
    }
    softmax_lanes(x, shape, axis)
}

/// [`softmax`] lane by lane, along any axis.
fn softmax_lanes<T: Float>(x: &[T], shape: &[usize], axis: usize) -> Vec<T> {
    for_each_lane(x, shape, axis, |lane, out| {
        let m = lane_max(lane);
        let mut total = T::zero();
        for (o, &v) in out.iter_mut().zip(lane) {
            *o = exp_nonpositive(v - m);
            total += *o;
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    })
}

/// log_softmax(x)_j = x_j - m - ln sum_k exp(x_k - m).
pub(crate) fn log_softmax<T: Float>(x: &[T], shape: &[usize], axis: usize) -> Vec<T> {
    if axis + 1 == shape.len() {
        return log_softmax_rows(x, shape, false).0;
    }
    for_each_lane(x, shape, axis, |lane, out| {
        let m = lane_max(lane);
        let total: T = lane.iter().map(|&v| exp_nonpositive(v - m)).sum();
        let lse = m + total.ln();
        for (o, &v) in out.iter_mut().zip(lane) {
            *o = v - lse;
        }
    })
}

/// Log-softmax along the last axis, and the softmax too when `probs`, in passes over
/// the whole tensor rather than lane by lane: the shifted values `x_j - m` of every
/// lane first, then one `exp` pass over all of them, which vectorises (lane by lane it
/// stays scalar; docs/performance.md), then per lane `ln` of the sum. The softmax is `e / sum`, the exponentials already at hand.
pub(crate) fn log_softmax_rows<T: Float>(
    src: &[T],
    shape: &[usize],
    probs: bool,
) -> (Vec<T>, Option<Vec<T>>) {
    let len = shape.last().copied().unwrap_or(1).max(1);
    let mut shifted = Vec::with_capacity(src.len());
    for lane in src.chunks_exact(len) {
        let m = lane_max(lane);
        shifted.extend(lane.iter().map(|&v| v - m));
    }
    let mut e = exp_all(&shifted);
    for (logp, e) in shifted.chunks_exact_mut(len).zip(e.chunks_exact_mut(len)) {
        let total: T = e.iter().copied().sum();
        let ln_total = total.ln();
        for v in logp.iter_mut() {
            *v -= ln_total;
        }
        if probs {
            for v in e.iter_mut() {
                *v /= total;
            }
        }
    }
    (shifted, probs.then_some(e))
}

/// `exp` of every value (all <= 0), in one pass that vectorises.
fn exp_all<T: Float>(shifted: &[T]) -> Vec<T> {
    let mut e = shifted.to_vec();
    exp_in_place(&mut e);
    e
}

/// [`exp_all`] in place.
fn exp_in_place<T: Float>(values: &mut [T]) {
    wide(
        #[inline(always)]
        || {
            for v in values.iter_mut() {
                *v = exp_nonpositive(*v);
            }
        },
    );
}

/// Softmax along the last axis (lanes of `len`) over the positions where `mask` is
/// false, 0 where it is true; the mask covers the last axes (a whole number of lanes)
/// and repeats over the rest. The same bits as [`softmax`] of the input with `-inf` at
/// the masked positions, without writing that input: the masked values enter the
/// maximum and the sum as `-inf` and `e^-inf = 0` would.
pub(crate) fn masked_softmax_rows<T: Float>(src: &[T], len: usize, mask: &[bool]) -> Vec<T> {
    let len = len.max(1);
    let lanes_per_mask = (mask.len() / len).max(1);
    let mut out = vec![T::zero(); src.len()];
    // Bands of whole lanes across threads, each its three passes in its own cache.
    for_lane_bands(&mut out, src.len() / len, |first, band| {
        let src = &src[first * len..][..band.len()];
        let masks = mask.chunks_exact(len).cycle().skip(first % lanes_per_mask);
        let lanes = src.chunks_exact(len).zip(masks);
        for ((lane, masked), out) in lanes.zip(band.chunks_exact_mut(len)) {
            let m = lane.iter().zip(masked).fold(
                T::neg_infinity(),
                |m, (&v, &k)| if k { m } else { m.max(v) },
            );
            for ((o, &v), &k) in out.iter_mut().zip(lane).zip(masked) {
                *o = if k { T::neg_infinity() } else { v - m };
            }
        }
        exp_in_place(band);
        for e in band.chunks_exact_mut(len) {
            let total: T = e.iter().copied().sum();
            for v in e.iter_mut() {
                *v /= total;
            }
        }
    });
    out
}

/// Combines a lane-wise gradient rule: `out_j = f(y_j, g_j, s)` with `s = sum_k h(y_k, g_k)`.
pub(crate) fn lane_vjp<T: Float>(
    (ys, gs): (&[T], &[T]),
    shape: &[usize],
    axis: usize,
    h: impl Fn(T, T) -> T + Sync,
    f: impl Fn(T, T, T) -> T + Sync,
) -> Vec<T> {
    let (outer, len, inner) = split_at_axis(shape, axis);
    let mut out = vec![T::zero(); ys.len()];
    // Bands of whole lanes across threads: each lane's arithmetic is the same anywhere.
    for_lane_bands(&mut out, outer, |first, band| {
        for (local, piece) in band.chunks_exact_mut(len * inner).enumerate() {
            let o = first + local;
            for i in 0..inner {
                let at = |j: usize| (o * len + j) * inner + i;
                let s: T = (0..len).map(|j| h(ys[at(j)], gs[at(j)])).sum();
                for j in 0..len {
                    piece[j * inner + i] = f(ys[at(j)], gs[at(j)], s);
                }
            }
        }
    });
    out
}

/// Runs `f(first, band)` over `out` cut into `outer` equal blocks, in bands of whole
/// blocks across threads when it is large enough to be worth a hand-over (16k elements
/// a part), `first` being the band's first block.
fn for_lane_bands<T: Float>(out: &mut [T], outer: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if out.is_empty() || outer == 0 {
        return;
    }
    let parts = schedule::row_band_parts(out.len(), outer);
    if parts == 1 {
        return f(0, out);
    }
    pool::for_row_bands(out, outer, parts, |rows, band| f(rows.start, band));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ln softmax` of one lane in f64, the plain way.
    fn reference(lane: &[f32]) -> Vec<f64> {
        let m = lane
            .iter()
            .map(|&v| f64::from(v))
            .fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = lane.iter().map(|&v| (f64::from(v) - m).exp()).sum();
        lane.iter()
            .map(|&v| f64::from(v) - m - total.ln())
            .collect()
    }

    /// The whole-tensor passes give each lane's log-softmax and softmax to within a few
    /// f32 rounding errors, for large, tiny and infinitely negative logits; a lane with
    /// a NaN is NaN throughout and leaves the other lanes alone.
    #[test]
    fn rows_match_the_lane_by_lane_formula() {
        let mut data: Vec<f32> = (0..7 * 10)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
            .collect();
        data[10..20]
            .copy_from_slice(&[80.0, -80.0, 79.5, 0.0, 1e-30, -1e-30, 3.0, 80.0, -5.0, 2.0]);
        data[25] = f32::NEG_INFINITY;
        data[33] = f32::NAN;
        let (logp, probs) = log_softmax_rows(&data, &[7, 10], true);
        let probs = probs.expect("asked for the probabilities");
        assert_eq!(logp.len(), 70);
        for (row, lane) in data.chunks_exact(10).enumerate() {
            let (got, p) = (&logp[row * 10..][..10], &probs[row * 10..][..10]);
            if lane.iter().any(|v| v.is_nan()) {
                assert!(
                    got.iter().chain(p).all(|v| v.is_nan()),
                    "row {row}: {got:?}"
                );
                continue;
            }
            for ((&g, &p), want) in got.iter().zip(p).zip(reference(lane)) {
                let tol = 4.0 * f64::from(f32::EPSILON) * want.abs().max(1.0);
                let close = f64::from(g) == want || (f64::from(g) - want).abs() <= tol;
                assert!(close, "row {row}: {g} vs {want}");
                assert!(
                    (f64::from(p) - want.exp()).abs() <= 4e-7,
                    "row {row}: p {p}"
                );
            }
            let sum: f32 = p.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "row {row}: probabilities sum to {sum}"
            );
        }
        // The log-softmax alone gives the same values, and an axis other than the
        // last still goes lane by lane to the same formula.
        let bits = |t: &[f32]| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&log_softmax(&data, &[7, 10], 1)), bits(&logp));
        let by_lane = log_softmax(&data[..20], &[10, 2], 0);
        let column: Vec<f32> = (0..10).map(|i| data[2 * i]).collect();
        for (i, want) in reference(&column).into_iter().enumerate() {
            assert!((f64::from(by_lane[2 * i]) - want).abs() < 1e-5);
        }
    }

    /// Along the last axis, softmax takes the whole-tensor passes: the bits of the lane
    /// by lane loop, for ordinary, extreme, infinite and NaN logits.
    #[test]
    fn last_axis_softmax_gives_the_lane_by_lane_bits() {
        let mut data: Vec<f32> = (0..6 * 9)
            .map(|i| ((i * 29 % 31) as f32 - 15.0) * 1.3)
            .collect();
        data[9..13].copy_from_slice(&[88.0, -88.0, 1e-30, 0.0]);
        data[20] = f32::NEG_INFINITY;
        data[40] = f32::NAN;
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(
            bits(softmax(&data, &[6, 9], 1)),
            bits(softmax_lanes(&data, &[6, 9], 1))
        );
        assert_eq!(
            bits(softmax(&data, &[2, 3, 9], 2)),
            bits(softmax_lanes(&data, &[2, 3, 9], 2))
        );
    }
}
