//! What each example wants: every parameter's gradient per example of a batch, by name
//! ([`per_sample_grads`]), over `autodiff::func::per_sample`.

use crate::loss::{Cost, Target};
use crate::module::Module;
use crate::params::ParamStore;
use autodiff::func::{per_sample, PerSamplePath};
use autodiff::{Float, Tensor};
use indexmap::IndexMap;

/// Per-sample costs and gradients of a model on one batch, from [`per_sample_grads`]:
/// `autodiff::func::PerSample` (gradients by position) with each parameter's gradients
/// under its name in the store.
#[derive(Clone, Debug)]
pub struct PerSampleGrads<T: Float = f32> {
    /// Each example's cost, `[n]` (their mean is the batch's cost).
    pub costs: Tensor<T>,
    grads: IndexMap<String, Tensor<T>>,
    batched: bool,
}

impl<T: Float> PerSampleGrads<T> {
    /// Parameter `name`'s gradients, `[n, ..parameter's shape]`: row `i` is example `i`'s.
    pub fn get(&self, name: &str) -> Option<&Tensor<T>> {
        self.grads.get(name)
    }

    /// (name, per-example gradients) pairs in store order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor<T>)> {
        self.grads.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The per-example gradients in store order, without their names.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Tensor<T>> + DoubleEndedIterator {
        self.grads.values()
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.costs.numel()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each example's gradient norm over all parameters, `‖∇θ C_i‖₂`.
    pub fn norms(&self) -> Vec<f64> {
        let mut sq = vec![0.0f64; self.len()];
        for g in self.grads.values() {
            let per = g.numel() / self.len().max(1);
            for (s, row) in sq.iter_mut().zip(g.data().chunks_exact(per.max(1))) {
                *s += row.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>();
            }
        }
        sq.into_iter().map(f64::sqrt).collect()
    }

    /// Whether one batched pass computed them (else one pass per example: the model
    /// has an op with no per-example rule; `autodiff::func::per_sample` says which).
    pub fn batched(&self) -> bool {
        self.batched
    }
}

/// Each example's gradient of `cost` (its [`Cost::per_sample_of`]) for `model` with
/// parameters `params` on the batch `x` (examples on the first axis) against `target`
/// (labels, or a tensor with the examples on its first axis). The mean of the rows is
/// the batch gradient that `cost.cost(..).backward()` gives.
///
/// ```
/// use autodiff::Tensor;
/// use nn::{per_sample_grads, Activation, CrossEntropy, Init, Model};
///
/// let model = Model::<f64>::new(&[3, 4, 2], Activation::Relu, Activation::Identity, Init::He, 1);
/// let x = Tensor::from_vec(vec![0.1, 0.9, 0.4, 0.2, 0.5, 0.7], [2, 3]);
/// let each = per_sample_grads(&model, model.params(), &CrossEntropy, &x, &[1, 0]);
/// assert_eq!(each.get("layers.0.weight").unwrap().shape(), &[2, 3, 4]);
/// assert_eq!(each.norms().len(), 2);
/// ```
#[track_caller]
pub fn per_sample_grads<'a, T: Float + 'a>(
    model: &impl Module<T>,
    params: &ParamStore<T>,
    cost: &(impl Cost<T> + ?Sized),
    x: &Tensor<T>,
    target: impl Into<Target<'a, T>>,
) -> PerSampleGrads<T> {
    // The target travels as a second input, so that each example gets its own row.
    let (target, labels) = match target.into() {
        Target::Labels(l) => (
            Tensor::from_vec(l.iter().map(|&c| T::from_usize(c)).collect(), [l.len()]),
            true,
        ),
        Target::Values(y) => (y.clone(), false),
    };
    assert!(
        x.rank() >= 1 && target.shape().first() == x.shape().first(),
        "per_sample_grads: a batch of shape {:?} with targets of shape {:?}: they need one \
         row per example each",
        x.shape(),
        target.shape()
    );
    let values = params.to_values();
    let result = per_sample(
        |_, p, batch| {
            let bound = params.bind_vars(p);
            let out = model.forward(&bound, batch[0]);
            if labels {
                let l: Vec<usize> = batch[1]
                    .with_value(|t| t.data().iter().map(|&c| c.as_f64() as usize).collect());
                cost.per_sample_of(out, Target::Labels(&l))
            } else {
                cost.per_sample_of(out, Target::Values(&batch[1].value()))
            }
        },
        &values,
        &[x.clone(), target],
        PerSamplePath::Auto,
    );
    PerSampleGrads {
        costs: result.losses,
        grads: params
            .iter()
            .map(|(name, _)| name.to_string())
            .zip(result.grads)
            .collect(),
        batched: result.batched,
    }
}
