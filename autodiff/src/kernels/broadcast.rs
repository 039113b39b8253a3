//! Elementwise binary kernels under NumPy broadcasting, and the one place where
//! broadcasting is undone: a broadcast operand's gradient is summed back to its shape.
//! On slices and shapes; `tensor.rs` wraps them for tensors.

use crate::float::Float;
use crate::kernels::reduce;
use crate::kernels::simd::wide;
use crate::kernels::uninit::vec_written;
use crate::shape::{broadcast_shapes, numel, BroadcastOffsets, Shape};
use std::mem::MaybeUninit;

/// `f(x, y)` elementwise over the broadcast shape of `x` (of shape `a`) and `y` (of
/// shape `b`), with that shape. Panics naming `op` and both shapes when they do not
/// broadcast.
pub(crate) fn binary<T: Float>(
    op: &'static str,
    (x, a): (&[T], &[usize]),
    (y, b): (&[T], &[usize]),
    f: impl Fn(T, T) -> T,
) -> (Shape, Vec<T>) {
    let out_shape = if a == b {
        a.into()
    } else {
        match broadcast_shapes(op, a, b) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    };
    let n = numel(&out_shape);
    // Same shapes, a scalar operand, or one operand repeating along the leading
    // dimensions of the other (the bias case): loops over rows, compiled wide.
    let repeats = |(small, small_shape): (&[T], &[usize]), big: &[T]| {
        big.len() == n && (small.len() == 1 || is_suffix(small_shape, &out_shape))
    };
    if n > 0 && (a == b || repeats((y, b), x) || repeats((x, a), y)) {
        let fill = |out: &mut [MaybeUninit<T>]| {
            wide(
                #[inline(always)]
                || {
                    if x.len() == n {
                        repeat_rows(out, x, y, &f);
                    } else {
                        repeat_rows(out, y, x, |q, p| f(p, q));
                    }
                },
            )
        };
        // SAFETY: `repeat_rows` writes every element of `out` (see its doc).
        return (out_shape, unsafe { vec_written(n, fill) });
    }
    // One operand constant along the trailing axes of the other (a statistic kept per
    // row, `[n, 1]` against `[n, d]`): each of its values meets a run of the other.
    if let (true, Some(run)) = (x.len() == n, prefix_run(b, &out_shape)) {
        return (out_shape, repeat_each(x, y, run, f));
    }
    if let (true, Some(run)) = (y.len() == n, prefix_run(a, &out_shape)) {
        return (out_shape, repeat_each(y, x, run, |q, p| f(p, q)));
    }
    let data: Vec<T> = BroadcastOffsets::new(&out_shape, a)
        .zip(BroadcastOffsets::new(&out_shape, b))
        .map(|(i, j)| f(x[i], y[j]))
        .collect();
    (out_shape, data)
}

/// When `small` (as many axes as `big`, or fewer with leading 1s) equals `big` on its
/// leading axes and is 1 on the rest, the number of elements of `big` each of its
/// values covers (the product of those trailing axes, above 1); otherwise `None`.
fn prefix_run(small: &[usize], big: &[usize]) -> Option<usize> {
    let pad = big.len().checked_sub(small.len())?;
    // Axes of `small` up to its last one above 1, at their places in `big`.
    let keep = small.iter().rposition(|&d| d != 1).map_or(0, |p| p + 1);
    let run: usize = big[pad + keep..].iter().product();
    let leading_ones = keep == 0 || big[..pad].iter().all(|&d| d == 1);
    (leading_ones && small[..keep] == big[pad..pad + keep] && run > 1).then_some(run)
}

/// `out[i] = f(full[i], part[i / run])`: each value of `part` against a run of `full`.
fn repeat_each<T: Float>(full: &[T], part: &[T], run: usize, f: impl Fn(T, T) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(full.len());
    for (chunk, &q) in full.chunks_exact(run).zip(part) {
        out.extend(chunk.iter().map(|&p| f(p, q)));
    }
    out
}

/// Writes every `out[i] = f(full[i], part[i % part.len()])`, where `full` is as long
/// as `out` and `part` is one element or a row that `full` holds a whole number of.
#[inline(always)]
fn repeat_rows<T: Float>(
    out: &mut [MaybeUninit<T>],
    full: &[T],
    part: &[T],
    f: impl Fn(T, T) -> T,
) {
    assert!(
        full.len() == out.len() && !part.is_empty() && out.len().is_multiple_of(part.len()),
        "repeat_rows: {} outputs from {} and {} elements",
        out.len(),
        full.len(),
        part.len()
    );
    if let [q] = *part {
        for (o, &p) in out.iter_mut().zip(full) {
            o.write(f(p, q));
        }
        return;
    }
    let m = part.len();
    for (out, full) in out.chunks_exact_mut(m).zip(full.chunks_exact(m)) {
        for ((o, &p), &q) in out.iter_mut().zip(full).zip(part) {
            o.write(f(p, q));
        }
    }
}

/// True when `small`, ignoring leading 1s, equals the trailing dimensions of `big`.
fn is_suffix(small: &[usize], big: &[usize]) -> bool {
    let trimmed = match small.iter().position(|&d| d != 1) {
        Some(p) => &small[p..],
        None => &[],
    };
    trimmed.len() <= big.len()
        && big[big.len() - trimmed.len()..] == *trimmed
        && !trimmed.is_empty()
}

/// Repeats `src` (of shape `from`) along broadcast dimensions until it has `shape`.
pub(crate) fn broadcast_to<T: Float>(src: &[T], from: &[usize], shape: &[usize]) -> Vec<T> {
    let n = numel(shape);
    if src.len() == 1 {
        vec![src[0]; n]
    } else if is_suffix(from, shape) {
        let mut data = Vec::with_capacity(n);
        for _ in 0..n / src.len() {
            data.extend_from_slice(src);
        }
        data
    } else if let Some(run) = prefix_run(from, shape) {
        // Each value over a run of the trailing axes: a mean's or a norm's gradient.
        let mut data = Vec::with_capacity(n);
        for &v in src {
            data.extend(std::iter::repeat_n(v, run));
        }
        data
    } else {
        BroadcastOffsets::new(shape, from).map(|i| src[i]).collect()
    }
}

/// Sums `grad` (of a broadcast result's shape `from`) back down to `shape`, the shape
/// of the operand that was broadcast. The inverse of [`broadcast_to`] for gradients.
pub(crate) fn sum_to_shape<T: Float>(grad: &[T], from: &[usize], shape: &[usize]) -> Vec<T> {
    let rank = from.len();
    let pad = rank - shape.len();
    let reduced: Vec<bool> = (0..rank)
        .map(|d| d < pad || (shape[d - pad] == 1 && from[d] != 1))
        .collect();
    reduce::sum(grad, from, &reduced)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x op y` by the multi-index walk, the general path.
    fn walked(x: &[f64], a: &[usize], y: &[f64], b: &[usize]) -> Vec<f64> {
        let out = broadcast_shapes("test", a, b).expect("shapes broadcast");
        BroadcastOffsets::new(&out, a)
            .zip(BroadcastOffsets::new(&out, b))
            .map(|(i, j)| x[i] - 3.0 * y[j])
            .collect()
    }

    /// The fast paths (a statistic per row, a bias per column, a scalar) give what the
    /// general walk gives, either operand first; shapes that are neither take the walk.
    #[test]
    fn every_broadcast_path_gives_the_general_walks_values() {
        let values = |n: usize, seed: f64| -> Vec<f64> {
            (0..n).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
        };
        let cases: [(&[usize], &[usize]); 8] = [
            (&[4, 5], &[4, 1]),
            (&[2, 3, 4], &[2, 3, 1]),
            (&[2, 3, 4], &[2, 1, 1]),
            (&[2, 3, 4], &[1, 2, 3, 1]),
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[1]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 3, 4], &[2, 1, 4]),
        ];
        for (a, b) in cases {
            let (x, y) = (values(numel(a), 0.1), values(numel(b), 0.7));
            let (_, got) = binary("sub", (&x, a), (&y, b), |p, q| p - 3.0 * q);
            assert_eq!(got, walked(&x, a, &y, b), "{a:?} op {b:?}");
            let (_, swapped) = binary("sub", (&y, b), (&x, a), |q, p| p - 3.0 * q);
            assert_eq!(swapped, walked(&x, a, &y, b), "{b:?} op {a:?}");
        }
        // broadcast_to's paths against the walk, the same cases (those of `b` no longer
        // than `a`: broadcast_to does not drop axes).
        for (a, b) in cases.into_iter().filter(|(a, b)| b.len() <= a.len()) {
            let y = values(numel(b), 0.7);
            let walk: Vec<f64> = BroadcastOffsets::new(a, b).map(|j| y[j]).collect();
            assert_eq!(broadcast_to(&y, b, a), walk, "{b:?} to {a:?}");
        }
        assert_eq!(prefix_run(&[2, 3, 1], &[2, 3, 4]), Some(4));
        assert_eq!(prefix_run(&[3, 1], &[2, 3, 4]), None);
        assert_eq!(prefix_run(&[2, 1, 4], &[2, 3, 4]), None);
    }
}
