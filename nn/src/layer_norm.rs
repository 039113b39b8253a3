//! `LayerNorm`: each example normalised over its last axes, then scaled and shifted
//! per element, as PyTorch's `nn.LayerNorm`.

use crate::module::Module;
use crate::params::{Bound, ParamStore};
use autodiff::{Float, Tensor, Var};

/// Layer normalisation over the last axes (`shape`), with an element-wise weight
/// (`{prefix}.weight`, ones) and bias (`{prefix}.bias`, zeros) of that shape, and
/// `eps` 1e-5, PyTorch's defaults.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: String,
    bias: String,
    shape: Vec<usize>,
    eps: f64,
}

impl LayerNorm {
    /// Creates the layer and registers its weight and bias in `store`.
    pub fn new<T: Float>(store: &mut ParamStore<T>, prefix: &str, shape: &[usize]) -> Self {
        assert!(
            !shape.is_empty() && shape.iter().all(|&d| d > 0),
            "LayerNorm {prefix}: needs a shape of positive sizes, got {shape:?}"
        );
        let (weight, bias) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        let n = shape.iter().product();
        store.insert(weight.clone(), Tensor::from_vec(vec![T::one(); n], shape));
        store.insert(bias.clone(), Tensor::zeros(shape));
        LayerNorm {
            weight,
            bias,
            shape: shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// The same layer with `eps` added to the variance.
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }

    /// The normalised axes' sizes.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The weight's parameter name.
    pub fn weight_name(&self) -> &str {
        &self.weight
    }

    /// The bias's parameter name.
    pub fn bias_name(&self) -> &str {
        &self.bias
    }

    /// The layer's name: the prefix of its parameters' names.
    pub fn name(&self) -> &str {
        self.weight.strip_suffix(".weight").unwrap_or(&self.weight)
    }
}

impl<T: Float> Module<T> for LayerNorm {
    /// Panics, naming the layer, unless the input ends in the layer's shape.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        assert!(
            shape.ends_with(&self.shape),
            "{} (layer norm over {:?}): input {:?} does not end in {:?}",
            self.name(),
            self.shape,
            shape.as_slice(),
            self.shape
        );
        let y = x.layer_norm(self.shape.len(), T::from_f64(self.eps));
        y * params.get(&self.weight) + params.get(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Tape;

    /// Each row of a `[2, 4]` batch against its mean and biased variance computed here,
    /// then scaled and shifted by a weight and bias set in the store.
    #[test]
    fn layer_norm_layer_normalises_each_row_then_scales_and_shifts() {
        let mut store = ParamStore::<f64>::new();
        let layer = LayerNorm::new(&mut store, "ln", &[4]);
        assert_eq!(
            (layer.weight_name(), layer.bias_name()),
            ("ln.weight", "ln.bias")
        );
        let (w, b) = ([0.5, -1.0, 2.0, 1.0], [0.1, 0.2, 0.3, 0.4]);
        assert_eq!(store.get("ln.weight").unwrap().data(), &[1.0; 4]);
        assert_eq!(store.get("ln.bias").unwrap().data(), &[0.0; 4]);
        *store.get_mut("ln.weight").unwrap() = Tensor::from_vec(w.to_vec(), [4]);
        *store.get_mut("ln.bias").unwrap() = Tensor::from_vec(b.to_vec(), [4]);
        let x = [1.0, 2.0, 4.0, 9.0, -3.0, 0.5, 0.25, 7.0];
        let tape = Tape::new();
        let y = layer
            .forward(
                &store.bind(&tape),
                tape.constant(Tensor::from_vec(x.to_vec(), [2, 4])),
            )
            .value();
        for row in 0..2 {
            let r = &x[row * 4..][..4];
            let mean = r.iter().sum::<f64>() / 4.0;
            let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
            for k in 0..4 {
                let want = (r[k] - mean) / (var + 1e-5).sqrt() * w[k] + b[k];
                assert!((y.data()[row * 4 + k] - want).abs() < 1e-14, "{row} {k}");
            }
        }
    }
}
