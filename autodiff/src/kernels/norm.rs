//! Layer normalisation's loops: each row of `d` elements normalised on its own, its
//! statistics in f64. The sums run in eight independent lanes (a fixed order, so the
//! results are deterministic) so that they vectorise instead of waiting on one chain of
//! additions.

use crate::float::Float;
use crate::kernels::simd::wide;

/// `f(v)` summed over `xs` in eight lanes, in f64.
#[inline(always)]
fn lane_sum<T: Float>(xs: &[T], f: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v.as_f64());
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|v| f(v.as_f64())).sum();
    lanes.iter().sum::<f64>() + tail
}

/// `Σ g` and `Σ g y` over a row, each in eight lanes, in f64.
#[inline(always)]
fn lane_sums<T: Float>(g: &[T], y: &[T]) -> (f64, f64) {
    let (mut s, mut sy) = ([0.0f64; 8], [0.0f64; 8]);
    let (mut gc, mut yc) = (g.chunks_exact(8), y.chunks_exact(8));
    for (gs, ys) in (&mut gc).zip(&mut yc) {
        for j in 0..8 {
            let g = gs[j].as_f64();
            s[j] += g;
            sy[j] += g * ys[j].as_f64();
        }
    }
    let (mut ts, mut tsy) = (0.0, 0.0);
    for (&g, &y) in gc.remainder().iter().zip(yc.remainder()) {
        ts += g.as_f64();
        tsy += g.as_f64() * y.as_f64();
    }
    (s.iter().sum::<f64>() + ts, sy.iter().sum::<f64>() + tsy)
}

/// Normalises each row of `d` elements of `x` into `y`, `(x - mean) / √(var + eps)`
/// with the biased variance, and writes each row's `1 / √(var + eps)` into `inv_std`.
pub(crate) fn normalize_rows<T: Float>(
    x: &[T],
    d: usize,
    eps: f64,
    y: &mut [T],
    inv_std: &mut [f64],
) {
    wide(
        #[inline(always)]
        || {
            for ((xs, ys), inv) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(inv_std) {
                let mean = lane_sum(xs, |v| v) / d as f64;
                let var = lane_sum(xs, |v| (v - mean) * (v - mean)) / d as f64;
                *inv = 1.0 / (var + eps).sqrt();
                let inv = *inv;
                for (o, &v) in ys.iter_mut().zip(xs) {
                    *o = T::from_f64((v.as_f64() - mean) * inv);
                }
            }
        },
    )
}

/// The gradient of [`normalize_rows`] for rows of `d` elements: `dx = (g - mean(g) - y
/// · mean(g y)) / √(var + eps)`, from the output `y` and each row's `inv_std`.
pub(crate) fn normalize_rows_vjp<T: Float>(
    g: &[T],
    y: &[T],
    d: usize,
    inv_std: &[f64],
    dx: &mut [T],
) {
    wide(
        #[inline(always)]
        || {
            let rows = g.chunks_exact(d).zip(y.chunks_exact(d));
            for (((gs, ys), out), &inv) in rows.zip(dx.chunks_exact_mut(d)).zip(inv_std) {
                let (sg, sgy) = lane_sums(gs, ys);
                let (mg, mgy) = (sg / d as f64, sgy / d as f64);
                for ((o, &g), &y) in out.iter_mut().zip(gs).zip(ys) {
                    *o = T::from_f64((g.as_f64() - mg - y.as_f64() * mgy) * inv);
                }
            }
        },
    )
}
