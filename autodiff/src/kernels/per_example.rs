//! Per-example weight gradients: one outer product per example, written straight into
//! the `[n, k, p]` result (no zeroing pass first: the result is the size of `n` copies of
//! the weights, and writing it is most of the work).

use super::pool;
use super::schedule::example_parts;
use super::simd::wide;
use super::uninit::vec_written;
use crate::float::Float;
use std::mem::MaybeUninit;

/// `out[e][r][c] = x[e][r] * g[e][c]` for `x` of `n` rows of `k` and `g` of `n` rows of
/// `p`: `n` outer products in bands of examples, one band a part.
pub(crate) fn outer_products<T: Float>(x: &[T], g: &[T], n: usize, k: usize, p: usize) -> Vec<T> {
    assert!(
        x.len() == n * k && g.len() == n * p,
        "outer_products: {} and {} values for {n} examples of {k} and {p}",
        x.len(),
        g.len()
    );
    let fill = |out: &mut [MaybeUninit<T>]| {
        pool::for_row_bands(out, n, example_parts(n), |examples, out| {
            wide(
                #[inline(always)]
                || {
                    let rows = examples.clone().flat_map(|e| {
                        let ge = &g[e * p..(e + 1) * p];
                        x[e * k..(e + 1) * k].iter().map(move |&xv| (xv, ge))
                    });
                    for (row, (xv, ge)) in out.chunks_exact_mut(p.max(1)).zip(rows) {
                        write_scaled(row, ge, xv);
                    }
                },
            )
        });
    };
    // SAFETY: the bands of `for_row_bands` cover all `n` examples; in each band the rows
    // `(e, r)` pair one to one with the band's `k`-row blocks, and `write_scaled` writes
    // all `p` elements of each row (it asserts the lengths).
    unsafe { vec_written(n * k * p, fill) }
}

/// `out[c] = s * g[c]` for every element of `out` (as long as `g`).
#[inline(always)]
fn write_scaled<T: Float>(out: &mut [MaybeUninit<T>], g: &[T], s: T) {
    assert_eq!(out.len(), g.len(), "write_scaled: lengths differ");
    for (o, &v) in out.iter_mut().zip(g) {
        o.write(s * v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_products_are_each_examples_own() {
        let (n, k, p) = (5, 3, 4);
        let x: Vec<f64> = (0..n * k).map(|i| i as f64 * 0.5 - 3.0).collect();
        let g: Vec<f64> = (0..n * p).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        for threads in [1, 2, 3] {
            let out = pool::with_threads(threads, || outer_products(&x, &g, n, k, p));
            for e in 0..n {
                for r in 0..k {
                    for c in 0..p {
                        assert_eq!(out[(e * k + r) * p + c], x[e * k + r] * g[e * p + c]);
                    }
                }
            }
        }
    }
}
