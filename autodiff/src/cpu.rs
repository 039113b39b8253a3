//! Running on the CPU: how many threads the engine's kernels use ([`with_threads`]), and
//! an element-wise update of many tensors in one parallel job ([`update_in_parallel`]),
//! the loop an optimizer runs, as fast as the engine's own kernels.
//!
//! The thread count is a scope of the calling thread ([`with_threads`]), never a
//! process-wide setting: a test that compares thread counts cannot be disturbed by
//! another running beside it.

pub use crate::kernels::pool::{threads, with_threads};

use crate::float::Float;
use crate::kernels::simd::wide;
use crate::kernels::{pool, schedule};
use crate::tensor::Tensor;
use smallvec::SmallVec;

/// One tensor's share of an element-wise update ([`update_in_parallel`]): the tensor
/// updated in place, the tensor it reads (a gradient), and `N` state tensors updated in
/// place beside it (an optimizer's moments or velocity), all of one shape.
pub struct TensorUpdate<'a, T: Float, const N: usize> {
    /// The values updated in place.
    pub values: &'a mut Tensor<T>,
    /// The gradient, read.
    pub grad: &'a Tensor<T>,
    /// State updated in place.
    pub states: [&'a mut Tensor<T>; N],
}

/// One contiguous piece of a [`TensorUpdate`]: the same range of each of its tensors.
struct Piece<'a, T, const N: usize> {
    values: &'a mut [T],
    grad: &'a [T],
    states: [&'a mut [T]; N],
}

/// Applies `update(values, grad, states)` to the elements of every tensor, as one
/// parallel job: the "foreach" form of other frameworks' optimizers, since each job
/// costs a hand-over between cores. A tensor large enough is split into one contiguous
/// range per thread ([`with_threads`] sets how many), the smaller ones go whole to the
/// last part, and `update` sees the same range of a tensor's values, gradient and
/// states at once. Each element sees the same arithmetic whatever the split, so results
/// do not depend on the thread count.
///
/// `update` runs compiled for the widest vectors the CPU has (AVX-512, else AVX2) where
/// it is inlined: mark the closure `#[inline(always)]`, and the functions it calls with
/// its slices too, to have its loops vectorised that wide (the values are the same bits
/// either way).
///
/// Panics if a gradient or state has another shape than its values.
///
/// ```
/// use autodiff::{update_in_parallel, Tensor, TensorUpdate};
///
/// // SGD with momentum over two parameters: v = 0.9 v + g, w -= 0.1 v.
/// let mut w = [Tensor::<f32>::ones([100, 100]), Tensor::ones([100])];
/// let g = [Tensor::full([100, 100], 0.5), Tensor::full([100], 0.5)];
/// let mut velocity = [Tensor::zeros([100, 100]), Tensor::zeros([100])];
/// let tensors = w
///     .iter_mut()
///     .zip(&g)
///     .zip(&mut velocity)
///     .map(|((values, grad), v)| TensorUpdate { values, grad, states: [v] })
///     .collect();
/// update_in_parallel(
///     tensors,
///     #[inline(always)]
///     |w, g, [v]| {
///         for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
///             *v = 0.9 * *v + g;
///             *w -= 0.1 * *v;
///         }
///     },
/// );
/// assert_eq!(w[0].get(&[99, 99]), 0.95);
/// assert_eq!(velocity[1].get(&[0]), 0.5);
/// ```
#[track_caller]
pub fn update_in_parallel<T: Float, const N: usize>(
    tensors: Vec<TensorUpdate<'_, T, N>>,
    update: impl Fn(&mut [T], &[T], [&mut [T]; N]) + Sync,
) {
    for (i, t) in tensors.iter().enumerate() {
        let shape = t.values.shape();
        assert!(
            t.grad.shape() == shape && t.states.iter().all(|s| s.shape() == shape),
            "update_in_parallel: tensor {i} has values of shape {:?}, gradient {:?} and states {:?}: \
             they need one shape",
            shape,
            t.grad.shape(),
            t.states.iter().map(|s| s.shape()).collect::<Vec<_>>()
        );
    }
    let tensors: Vec<Piece<'_, T, N>> = tensors
        .into_iter()
        .map(|t| Piece {
            values: t.values.data_mut(),
            grad: t.grad.data(),
            states: t.states.map(|s| s.data_mut()),
        })
        .collect();
    let split: Vec<usize> = tensors
        .iter()
        .map(|t| schedule::update_parts(t.values.len()))
        .collect();
    let parts = split.iter().copied().max().unwrap_or(1);
    // Part i's pieces, in the order of the tensors: range i of each tensor split into
    // more than i ranges, and every whole one in the last part.
    let mut pieces: SmallVec<[Vec<Piece<'_, T, N>>; 8]> = (0..parts).map(|_| Vec::new()).collect();
    for (t, n) in tensors.into_iter().zip(split) {
        if n == 1 {
            pieces[parts - 1].push(t);
            continue;
        }
        let len = t.values.len();
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
            part.push(Piece {
                values: v,
                grad: g,
                states: s_here,
            });
            (values, grad) = (v_rest, g_rest);
        }
    }
    let run = |piece: Piece<'_, T, N>| {
        wide(
            #[inline(always)]
            || update(piece.values, piece.grad, piece.states),
        )
    };
    if parts < 2 {
        pieces.into_iter().flatten().for_each(run);
        return;
    }
    pool::for_each_owned(pieces, |_, part| part.into_iter().for_each(run));
}

/// The f32 multiply-add throughput of the threads in scope ([`with_threads`]), in
/// GFLOP/s (two flops per fused multiply-add), measured now: independent chains of
/// fused multiply-adds on registers, the widest vectors the CPU has (AVX-512, else
/// AVX2), one chain set per thread, the best of several tries of about 10 ms each.
///
/// This is the ceiling of any f32 kernel on this machine at this thread count (a
/// matrix product does at best this), so a speed divided by it is a share of the
/// machine comparable across CPUs. It is measured rather than computed from a
/// datasheet because the clock under vector load is what counts, and it varies.
///
/// ```
/// let one = autodiff::with_threads(1, autodiff::peak_gflops);
/// assert!(one.is_finite() && one > 0.0);
/// ```
pub fn peak_gflops() -> f64 {
    use crate::kernels::peak::fma_chains;
    use std::sync::Mutex;
    let parts = threads();
    let rounds = 1 << 22;
    let mut best = 0.0f64;
    let mut tries = 0;
    // A few more tries than kept: the first wake the helper threads and the vector
    // units' clock.
    while tries < 6 {
        let flops = Mutex::new(0.0f64);
        let start = std::time::Instant::now();
        pool::for_parts(parts, &|_| {
            let (done, sum) = fma_chains(rounds, 0.999_9, 1e-3);
            std::hint::black_box(sum);
            *flops.lock().unwrap_or_else(|e| e.into_inner()) += done;
        });
        let seconds = start.elapsed().as_secs_f64();
        let flops = flops.into_inner().unwrap_or_else(|e| e.into_inner());
        best = best.max(flops / seconds / 1e9);
        tries += 1;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tensor of `len` distinct values.
    fn counting(len: usize, seed: f64) -> Tensor<f64> {
        Tensor::from_vec(
            (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect(),
            [len],
        )
    }

    fn adam_like(w: &mut [f64], g: &[f64], [m, v]: [&mut [f64]; 2]) {
        for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = 0.9 * *m + 0.1 * g;
            *v = 0.99 * *v + 0.01 * g * g;
            *w -= 0.01 * *m / (v.sqrt() + 1e-8);
        }
    }

    #[test]
    fn every_element_gets_the_same_bits_on_any_thread_count() {
        // Sizes below, at and far above the split threshold, and an empty one.
        let sizes = [3, 0, 10_000, 100_003, 7];
        let run = |threads: usize| {
            let mut w: Vec<_> = sizes.iter().map(|&n| counting(n, 1.0)).collect();
            let g: Vec<_> = sizes.iter().map(|&n| counting(n, 2.0)).collect();
            let mut m: Vec<_> = sizes.iter().map(|&n| counting(n, 3.0)).collect();
            let mut v: Vec<_> = sizes
                .iter()
                .map(|&n| counting(n, 4.0).map(f64::abs))
                .collect();
            let tensors = w
                .iter_mut()
                .zip(&g)
                .zip(m.iter_mut().zip(v.iter_mut()))
                .map(|((values, grad), (m, v))| TensorUpdate {
                    values,
                    grad,
                    states: [m, v],
                })
                .collect();
            with_threads(threads, || update_in_parallel(tensors, adam_like));
            (w, m, v)
        };
        // The plain loop over whole tensors, on this thread.
        let mut w: Vec<_> = sizes.iter().map(|&n| counting(n, 1.0)).collect();
        let mut m: Vec<_> = sizes.iter().map(|&n| counting(n, 3.0)).collect();
        let mut v: Vec<_> = sizes
            .iter()
            .map(|&n| counting(n, 4.0).map(f64::abs))
            .collect();
        for (i, &n) in sizes.iter().enumerate() {
            let g = counting(n, 2.0);
            let (m, v) = (m[i].data_mut(), v[i].data_mut());
            adam_like(w[i].data_mut(), g.data(), [m, v]);
        }
        let bits = |ts: &[Tensor<f64>]| -> Vec<Vec<u64>> {
            ts.iter()
                .map(|t| t.data().iter().map(|x| x.to_bits()).collect())
                .collect()
        };
        for threads in [1, 2, 3, 8] {
            let (w2, m2, v2) = run(threads);
            assert_eq!(bits(&w2), bits(&w), "{threads} threads");
            assert_eq!(bits(&m2), bits(&m), "{threads} threads");
            assert_eq!(bits(&v2), bits(&v), "{threads} threads");
        }
    }

    #[test]
    #[should_panic(expected = "update_in_parallel: tensor 1 has values of shape [3]")]
    fn a_gradient_of_another_shape_is_refused() {
        let (mut a, mut b) = (Tensor::<f32>::zeros([2]), Tensor::<f32>::zeros([3]));
        let (ga, gb) = (Tensor::zeros([2]), Tensor::zeros([1, 3]));
        let tensors = vec![
            TensorUpdate {
                values: &mut a,
                grad: &ga,
                states: [],
            },
            TensorUpdate {
                values: &mut b,
                grad: &gb,
                states: [],
            },
        ];
        update_in_parallel(tensors, |_, _, []| {});
    }
}
