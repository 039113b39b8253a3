//! `Dropout`: inverted dropout, as PyTorch's `nn.Dropout`. In training each element is
//! zeroed with probability `p` and the others scaled by `1 / (1 - p)`, so that
//! evaluation, where the layer is the identity, needs no rescaling.

use crate::module::Module;
use crate::params::{Bound, Mode};
use autodiff::{Float, Tensor, Var};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// Inverted dropout with drop probability `p`, identity in evaluation.
///
/// The mask is a constant on the tape (the input times a tensor of zeros and
/// `1 / (1 - p)`), so gradients, gradcheck, higher derivatives and per-sample gradients
/// go through it as through any product with a constant. It is drawn from the pass's
/// seed ([`Mode::Train`]) and the layer's name alone: the same seed gives the same mask
/// (a recomputed block redraws exactly the mask its first pass drew), two layers draw
/// independent masks, and a run that seeds each step from its own seed and the step
/// number is reproducible and resumes bit-identically.
///
/// ```
/// use autodiff::{Tape, Tensor};
/// use nn::{Dropout, Module, ParamStore};
///
/// let drop = Dropout::new("drop", 0.5);
/// let store = ParamStore::<f32>::new();
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::ones([2, 4]));
/// // Training: each element is 0 or 2.
/// let y = drop.forward(&store.bind(&tape).train(7), x).value();
/// assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));
/// // Evaluation: the identity.
/// assert_eq!(drop.forward(&store.bind(&tape).eval(), x).value(), Tensor::ones([2, 4]));
/// ```
#[derive(Clone, Debug)]
pub struct Dropout {
    name: String,
    p: f64,
}

impl Dropout {
    /// A dropout layer called `name` (it seeds the layer's masks: give each layer its
    /// own) dropping with probability `p`. Panics unless `0 <= p < 1`.
    #[track_caller]
    pub fn new(name: &str, p: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout {name}: the drop probability must be in [0, 1), got {p}"
        );
        Dropout {
            name: name.to_string(),
            p,
        }
    }

    /// The drop probability.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mask a training pass seeded `seed` multiplies an input of `shape` by: zeros
    /// and `1 / (1 - p)`.
    pub fn mask<T: Float>(&self, seed: u64, shape: &[usize]) -> Tensor<T> {
        let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(self.name.as_bytes()));
        // An element is kept when a uniform 32-bit draw is at least p * 2^32, which
        // keeps it with probability 1 - p (to within 2^-32).
        let threshold = (self.p * 4_294_967_296.0).round() as u64;
        let keep = T::from_f64(1.0 / (1.0 - self.p));
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| {
                if u64::from(rng.next_u32()) >= threshold {
                    keep
                } else {
                    T::zero()
                }
            })
            .collect();
        Tensor::from_vec(data, shape)
    }
}

impl<T: Float> Module<T> for Dropout {
    /// Panics, naming the layer, in a pass bound without a mode.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let what = format!("{} (dropout p = {})", self.name, self.p);
        match params.mode_for(&what) {
            Mode::Train { seed } if self.p > 0.0 => {
                x * x.tape().constant(self.mask(seed, &x.shape()))
            }
            _ => x,
        }
    }
}

/// The 64-bit FNV-1a hash: a layer name's contribution to its masks' seed, the same on
/// every platform and Rust version (std's hashers promise neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamStore;
    use autodiff::Tape;

    #[test]
    fn a_mask_keeps_about_one_minus_p_and_scales_the_kept() {
        let drop = Dropout::new("d", 0.25);
        let mask: Tensor<f64> = drop.mask(3, &[100, 100]);
        let kept = mask.data().iter().filter(|&&v| v != 0.0).count();
        assert!(mask
            .data()
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-15));
        // 10 000 draws: the kept share is 0.75 within five standard deviations.
        let share = kept as f64 / 1e4;
        assert!(
            (share - 0.75).abs() < 5.0 * (0.75f64 * 0.25 / 1e4).sqrt(),
            "{share}"
        );
    }

    #[test]
    fn masks_depend_on_the_seed_and_the_layer_name_only() {
        let a = Dropout::new("a", 0.5);
        let b = Dropout::new("b", 0.5);
        let m = |d: &Dropout, seed| d.mask::<f32>(seed, &[64]);
        assert_eq!(m(&a, 1), m(&a, 1));
        assert_ne!(m(&a, 1), m(&a, 2));
        assert_ne!(m(&a, 1), m(&b, 1));
    }

    #[test]
    fn training_multiplies_by_the_mask_and_evaluation_is_the_identity() {
        let drop = Dropout::new("d", 0.4);
        let store = ParamStore::<f64>::new();
        let tape = Tape::new();
        let xs: Vec<f64> = (0..12).map(|i| i as f64 - 5.5).collect();
        let x = tape.constant(Tensor::from_vec(xs.clone(), [3, 4]));
        let y = drop.forward(&store.bind(&tape).train(9), x).value();
        let mask = drop.mask::<f64>(9, &[3, 4]);
        for ((y, x), m) in y.data().iter().zip(&xs).zip(mask.data()) {
            assert_eq!(*y, x * m);
        }
        let z = drop.forward(&store.bind(&tape).eval(), x).value();
        assert_eq!(z.data(), &xs[..]);
    }

    #[test]
    #[should_panic(expected = "d (dropout p = 0.4) behaves differently in training and evaluation")]
    fn a_pass_without_a_mode_is_refused_naming_the_layer() {
        let store = ParamStore::<f32>::new();
        let tape = Tape::new();
        Dropout::new("d", 0.4).forward(&store.bind(&tape), tape.constant(Tensor::ones([2])));
    }

    #[test]
    #[should_panic(expected = "Dropout d: the drop probability must be in [0, 1), got 1")]
    fn a_drop_probability_of_one_is_refused() {
        Dropout::new("d", 1.0);
    }
}
