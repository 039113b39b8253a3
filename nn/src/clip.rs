//! Gradient clipping by global norm (PyTorch's `torch.nn.utils.clip_grad_norm_`):
//! all gradients scaled by one factor so that, together, their norm is at most a bound.

use crate::params::Grads;
use autodiff::Float;

/// Scales every gradient by `max_norm / (norm + 1e-6)` when that is below 1, where
/// `norm` is the Euclidean norm of all the gradients together (as one vector), and
/// returns `norm` as it was before clipping: PyTorch's `clip_grad_norm_` with its
/// defaults (`norm_type=2`). The norm is summed in f64 whatever `T` is.
///
/// A norm that is not finite (some gradient is infinite or NaN) leaves the gradients as
/// they are and is returned: check it and skip the step, as mixed-precision training
/// does. (PyTorch would scale them by 0 or NaN, or raise with `error_if_nonfinite`.)
///
/// Panics if `max_norm` is negative or NaN (an infinite bound clips nothing).
///
/// ```
/// use autodiff::{Tape, Tensor};
/// use nn::{clip_grad_norm, ParamStore};
///
/// let mut params = ParamStore::<f64>::new();
/// params.insert("w", Tensor::from_vec(vec![1.5, -2.0], [2]));
/// let tape = Tape::new();
/// let bound = params.bind(&tape);
/// // The gradient of sum(w²) is 2w = [3, -4], of norm 5.
/// let mut grads = bound.grads(bound.get("w").square().sum().backward()).unwrap();
/// let norm = clip_grad_norm(&mut grads, 1.0);
/// assert_eq!(norm, 5.0);
/// let g = grads.get("w").unwrap().data();
/// assert!((g[0] - 0.6).abs() < 1e-6 && (g[1] + 0.8).abs() < 1e-6);
/// ```
#[track_caller]
pub fn clip_grad_norm<T: Float>(grads: &mut Grads<T>, max_norm: f64) -> f64 {
    assert!(
        max_norm >= 0.0,
        "clip_grad_norm: max_norm must be at least 0, not {max_norm}"
    );
    let norm = global_norm(grads);
    if !norm.is_finite() {
        return norm;
    }
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        let s = T::from_f64(scale);
        for g in grads.values_mut() {
            for x in g.data_mut() {
                *x *= s;
            }
        }
    }
    norm
}

/// √(Σ g²) over every element of every gradient, in f64. Squares of f64 gradients
/// beyond about 1e154 overflow; the sum is then taken again scaled by the largest
/// magnitude, so that only an infinite or NaN gradient gives a norm that is not finite.
fn global_norm<T: Float>(grads: &Grads<T>) -> f64 {
    let elements = || grads.values().flat_map(|g| g.data()).map(|x| x.as_f64());
    let sum: f64 = elements().map(|x| x * x).sum();
    if sum.is_finite() {
        return sum.sqrt();
    }
    let largest = elements().fold(0.0f64, |m, x| if x.abs() > m { x.abs() } else { m });
    if !largest.is_finite() || elements().any(f64::is_nan) {
        return elements().map(|x| x * x).sum::<f64>().sqrt();
    }
    largest
        * elements()
            .map(|x| (x / largest).powi(2))
            .sum::<f64>()
            .sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Tensor;
    use indexmap::IndexMap;

    fn grads(values: &[(&str, Vec<f64>)]) -> Grads<f64> {
        Grads::from_map(
            values
                .iter()
                .map(|(n, v)| (n.to_string(), Tensor::from_vec(v.clone(), [v.len()])))
                .collect::<IndexMap<_, _>>(),
        )
    }

    #[test]
    fn the_norm_is_over_all_gradients_together_and_clipping_keeps_directions() {
        let mut g = grads(&[("a", vec![1.0, 2.0]), ("b", vec![-2.0, 4.0])]);
        let norm = clip_grad_norm(&mut g, 2.5);
        assert_eq!(norm, 5.0);
        let scale = 2.5 / (5.0 + 1e-6);
        assert_eq!(g.get("a").unwrap().data(), &[scale, 2.0 * scale]);
        assert_eq!(g.get("b").unwrap().data(), &[-2.0 * scale, 4.0 * scale]);
    }

    #[test]
    fn gradients_within_the_bound_are_left_alone() {
        let mut g = grads(&[("a", vec![3.0, 4.0])]);
        // scale = 5 / (5 + 1e-6) < 1: PyTorch clips by a hair here ...
        assert_eq!(clip_grad_norm(&mut g, 5.0), 5.0);
        assert_eq!(g.get("a").unwrap().data()[0], 3.0 * 5.0 / (5.0 + 1e-6));
        // ... and leaves the gradient alone once the bound is above norm + 1e-6.
        let mut g = grads(&[("a", vec![3.0, 4.0])]);
        assert_eq!(clip_grad_norm(&mut g, 6.0), 5.0);
        assert_eq!(g.get("a").unwrap().data(), &[3.0, 4.0]);
    }

    #[test]
    fn non_finite_norms_are_returned_and_nothing_is_scaled() {
        for bad in [f64::INFINITY, f64::NAN] {
            let mut g = grads(&[("a", vec![1.0, bad]), ("b", vec![2.0])]);
            let norm = clip_grad_norm(&mut g, 1.0);
            assert!(!norm.is_finite());
            assert_eq!(norm.is_nan(), bad.is_nan());
            assert_eq!(g.get("b").unwrap().data(), &[2.0]);
        }
    }

    #[test]
    fn huge_finite_gradients_have_a_finite_norm() {
        let mut g = grads(&[("a", vec![3e200, -4e200])]);
        let norm = clip_grad_norm(&mut g, 1.0);
        assert!((norm / 5e200 - 1.0).abs() < 1e-15, "{norm}");
        let a = g.get("a").unwrap().data();
        assert!(
            (a[0] - 0.6).abs() < 1e-12 && (a[1] + 0.8).abs() < 1e-12,
            "{a:?}"
        );
    }

    #[test]
    #[should_panic(expected = "clip_grad_norm: max_norm must be at least 0, not -1")]
    fn a_negative_bound_is_refused() {
        clip_grad_norm(&mut grads(&[("a", vec![1.0])]), -1.0);
    }
}
