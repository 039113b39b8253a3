//! DP-SGD (Abadi et al., 2016) as a wrapper around any [`Optimizer`]: each example's
//! gradient is scaled into a ball of radius C, the sum gets Gaussian noise, and the
//! noisy mean is the gradient the wrapped optimizer steps with. No example can move a
//! step by more than C / n, whatever it holds.

use crate::error::NnError;
use crate::loss::{Cost, Target};
use crate::model::Model;
use crate::optim::Optimizer;
use crate::params::{Grads, ParamStore};
use crate::per_sample::{per_sample_grads, PerSampleGrads};
use autodiff::{Float, Tensor};
use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Each example's gradient scaled into the ball of radius C, then summed: from
/// [`clipped_sum`].
#[derive(Clone, Debug)]
pub struct ClippedSum<T: Float = f32> {
    /// `Σ_i min(1, C / ‖g_i‖) g_i`, one tensor per parameter, in store order.
    pub sum: Grads<T>,
    /// Each example's gradient norm over all parameters, `‖g_i‖`, before clipping.
    pub norms: Vec<f64>,
    /// The factor `min(1, C / ‖g_i‖)` example `i`'s gradient was scaled by (1: left
    /// as it was).
    pub scales: Vec<f64>,
}

impl<T: Float> ClippedSum<T> {
    /// How many examples were scaled down (their norm was above C).
    pub fn clipped(&self) -> usize {
        count_clipped(&self.scales)
    }
}

fn count_clipped(scales: &[f64]) -> usize {
    scales.iter().filter(|&&s| s < 1.0).count()
}

/// Scales each example's whole gradient (all parameters together) by `min(1, C / ‖g_i‖)`
/// with `C = max_grad_norm`, so that no example contributes a vector longer than C, and
/// sums them. Replacing one example of the batch by any other moves the sum by at most
/// 2C: the bound DP-SGD's noise is sized for.
///
/// Refuses (with [`NnError::Optimizer`]) a C that is not finite and positive, an empty
/// batch, and an example whose cost or gradient is not finite (clipping would turn an
/// infinite gradient into NaN, and NaN is no bound).
pub fn clipped_sum<T: Float>(
    each: &PerSampleGrads<T>,
    max_grad_norm: f64,
) -> Result<ClippedSum<T>, NnError> {
    check_max_grad_norm(max_grad_norm)?;
    let sums = clip_and_sum(each, max_grad_norm)?;
    Ok(ClippedSum {
        sum: Grads::from_map(
            sums.tensors
                .into_iter()
                .map(|(name, shape, sum)| {
                    let data = sum.into_iter().map(T::from_f64).collect();
                    (name, Tensor::from_vec(data, shape))
                })
                .collect(),
        ),
        norms: sums.norms,
        scales: sums.scales,
    })
}

/// The clipped sum in f64, before it is rounded to `T` or gets noise.
struct Sums {
    /// (name, parameter shape, clipped sum) in store order.
    tensors: Vec<(String, Vec<usize>, Vec<f64>)>,
    norms: Vec<f64>,
    scales: Vec<f64>,
}

fn clip_and_sum<T: Float>(each: &PerSampleGrads<T>, max_grad_norm: f64) -> Result<Sums, NnError> {
    let n = each.len();
    if n == 0 {
        return Err(dp_error("the batch is empty: there is no gradient to clip"));
    }
    if let Some(i) = each
        .costs
        .data()
        .iter()
        .position(|c| !c.as_f64().is_finite())
    {
        return Err(dp_error(format!(
            "example {i}'s cost is {}: refusing to step on it",
            each.costs.data()[i].as_f64()
        )));
    }
    let norms = each.norms();
    if let Some(i) = norms.iter().position(|g| !g.is_finite()) {
        return Err(dp_error(format!(
            "example {i}'s gradient has norm {}: refusing to step on it",
            norms[i]
        )));
    }
    // A zero gradient has nothing to clip (C / 0 is infinite, and the minimum is 1).
    let scales: Vec<f64> = norms
        .iter()
        .map(|&g| (max_grad_norm / g).min(1.0))
        .collect();
    let tensors = each
        .iter()
        .map(|(name, g)| {
            let shape = g.shape()[1..].to_vec();
            let per = g.numel() / n;
            let mut sum = vec![0.0f64; per];
            for (row, &s) in g.data().chunks_exact(per.max(1)).zip(&scales) {
                for (acc, &v) in sum.iter_mut().zip(row) {
                    *acc += s * v.as_f64();
                }
            }
            (name.to_string(), shape, sum)
        })
        .collect();
    Ok(Sums {
        tensors,
        norms,
        scales,
    })
}

fn dp_error(message: impl std::fmt::Display) -> NnError {
    NnError::Optimizer(format!("DP-SGD: {message}"))
}

fn check_max_grad_norm(c: f64) -> Result<(), NnError> {
    if c.is_finite() && c > 0.0 {
        Ok(())
    } else {
        Err(dp_error(format!(
            "the clipping norm C must be finite and above 0, not {c}"
        )))
    }
}

fn check_noise_multiplier(sigma: f64) -> Result<(), NnError> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(dp_error(format!(
            "the noise multiplier σ must be finite and at least 0, not {sigma}"
        )))
    }
}

/// What one [`DpSgd`] step did.
#[derive(Clone, Debug, PartialEq)]
pub struct DpStep {
    /// The batch's mean cost before the step.
    pub cost: f64,
    /// Each example's gradient norm before clipping.
    pub norms: Vec<f64>,
    /// How many examples were scaled down to norm C.
    pub clipped: usize,
    /// The standard deviation of the noise in each coordinate of the gradient the
    /// wrapped optimizer received: `σ C / n`.
    pub noise_std: f64,
}

/// DP-SGD around any optimizer `O`: each step clips every example's gradient to norm
/// at most `max_grad_norm` (C, over all parameters together), sums them, adds noise
/// drawn from N(0, σ²C²) to every coordinate (σ = `noise_multiplier`), divides by the
/// batch size n, and hands that gradient to `O`'s step.
///
/// The noise is reproducible: it comes from a generator seeded with the seed and the
/// number of steps taken, so two wrappers with the same seed give the same parameters.
/// A refused step (bad settings, an empty batch, a non-finite gradient, an error of the
/// wrapped optimizer) changes neither the parameters nor the step count.
///
/// Privacy accounting is not included: turning σ, the sampling rate and the number of
/// steps into an (ε, δ) guarantee needs an accountant (the moments accountant, RDP),
/// and the guarantee also assumes batches drawn by Poisson sampling, which is the
/// caller's business. What this type guarantees is the mechanism: one example moves
/// the clipped sum by at most C (2C when it replaces another), and the noise is sized
/// to that.
///
/// ```
/// use autodiff::Tensor;
/// use nn::{Activation, DpSgd, Init, Model, Quadratic, Sgd};
///
/// let mut model = Model::<f64>::new(&[4, 8, 2], Activation::Sigmoid, Activation::Sigmoid, Init::ScaledNormal, 1);
/// let x = Tensor::from_vec(vec![0.0, 1.0, 0.5, 0.2, 1.0, 0.0, 0.3, 0.9, 0.7, 0.7, 0.1, 0.4], [3, 4]);
/// let labels = [1, 0, 1];
/// // Clip every example's gradient to norm 0.05, noise σ = 1.1, plain SGD underneath.
/// let mut dp = DpSgd::new(Sgd::new(0.5), 0.05, 1.1, 7);
/// let step = dp.step_on_batch(&mut model, &Quadratic, &x, &labels).unwrap();
/// assert_eq!(step.norms.len(), 3);
/// assert!((step.noise_std - 1.1 * 0.05 / 3.0).abs() < 1e-15);
/// assert_eq!(dp.steps(), 1);
///
/// // Settings that bound nothing are refused, and nothing moves.
/// let before = model.params().clone();
/// dp.max_grad_norm = 0.0;
/// assert!(dp.step_on_batch(&mut model, &Quadratic, &x, &labels).is_err());
/// assert_eq!(model.params(), &before);
/// ```
#[derive(Clone, Debug)]
pub struct DpSgd<O> {
    inner: O,
    /// C: the largest norm one example's gradient may have (finite, above 0).
    pub max_grad_norm: f64,
    /// σ: the noise's standard deviation in units of C (finite, at least 0; 0 gives
    /// clipping without noise).
    pub noise_multiplier: f64,
    seed: u64,
    steps: u64,
}

impl<O> DpSgd<O> {
    /// Wraps `inner`, clipping to `max_grad_norm` (C) with noise `noise_multiplier` (σ)
    /// drawn from a generator seeded with `seed`. The settings are checked at each step.
    pub fn new(inner: O, max_grad_norm: f64, noise_multiplier: f64, seed: u64) -> Self {
        DpSgd {
            inner,
            max_grad_norm,
            noise_multiplier,
            seed,
            steps: 0,
        }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimizer, mutably (to set its learning rate, say).
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// Unwraps the optimizer.
    pub fn into_inner(self) -> O {
        self.inner
    }

    /// Steps taken so far (refused ones do not count).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The noise's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// One step from the per-example gradients `each` of the parameters `params`
    /// (from [`per_sample_grads`]): the way to use DP-SGD with a model whose
    /// parameters are stored apart from it.
    pub fn step<T: Float>(
        &mut self,
        params: &mut ParamStore<T>,
        each: &PerSampleGrads<T>,
    ) -> Result<DpStep, NnError>
    where
        O: Optimizer<T>,
    {
        let (c, sigma) = (self.max_grad_norm, self.noise_multiplier);
        check_max_grad_norm(c)?;
        check_noise_multiplier(sigma)?;
        let sums = clip_and_sum(each, c)?;
        let n = each.len() as f64;
        let std = sigma * c;
        // (seed, step) as the key: every pair gets its own stream.
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&self.seed.to_le_bytes());
        key[8..16].copy_from_slice(&self.steps.to_le_bytes());
        let mut rng = StdRng::from_seed(key);
        let mean = sums
            .tensors
            .into_iter()
            .map(|(name, shape, sum)| {
                let data = sum
                    .into_iter()
                    .map(|s| {
                        let noise = if std > 0.0 {
                            let z: f64 = StandardNormal.sample(&mut rng);
                            std * z
                        } else {
                            0.0
                        };
                        T::from_f64((s + noise) / n)
                    })
                    .collect();
                (name, Tensor::from_vec(data, shape))
            })
            .collect::<IndexMap<_, _>>();
        self.inner.step(params, &Grads::from_map(mean))?;
        self.steps += 1;
        let clipped = count_clipped(&sums.scales);
        Ok(DpStep {
            cost: each.costs.data().iter().map(|c| c.as_f64()).sum::<f64>() / n,
            norms: sums.norms,
            clipped,
            noise_std: std / n,
        })
    }

    /// One step of `model` on the batch `x` (examples on the first axis) against
    /// `target`, by `cost`'s per-example form: [`per_sample_grads`] then
    /// [`DpSgd::step`].
    #[track_caller]
    pub fn step_on_batch<'a, T: Float + 'a>(
        &mut self,
        model: &mut Model<T>,
        cost: &(impl Cost<T> + ?Sized),
        x: &Tensor<T>,
        target: impl Into<Target<'a, T>>,
    ) -> Result<DpStep, NnError>
    where
        O: Optimizer<T>,
    {
        let each = per_sample_grads(model, model.params(), cost, x, target);
        self.step(model.params_mut(), &each)
    }
}
