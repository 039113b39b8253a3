//! Layer normalisation, composed of the reductions and element-wise ops: no rule of its
//! own, so its fast and recorded vjps, its tangent and its per-sample path are theirs.

use crate::float::Float;
use crate::shape::Dims;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Layer normalisation over the last `axes` axes, `(x - mean) / √(var + eps)` with
    /// the biased variance: PyTorch's `F.layer_norm` with `normalized_shape` those axes
    /// and no weight or bias (`nn::LayerNorm` adds them). Each row of a batch is
    /// normalised on its own, so per-sample gradients keep the batched path.
    ///
    /// ```
    /// use autodiff::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0], [2, 3]));
    /// let y = x.layer_norm(1, 0.0).value();
    /// let s = (1.5f64).sqrt(); // (1, 3, 5): mean 3, variance 8/3
    /// assert!((y.data()[0] + s).abs() < 1e-15 && (y.data()[2] - s).abs() < 1e-15);
    /// ```
    ///
    /// Panics at the caller's line unless `1 <= axes <= rank`.
    #[track_caller]
    pub fn layer_norm(self, axes: usize, eps: T) -> Self {
        let shape = self.shape();
        assert!(
            (1..=shape.len()).contains(&axes),
            "layer_norm: cannot normalise over the last {axes} axes of {}",
            Dims(&shape)
        );
        let over: Vec<usize> = (shape.len() - axes..shape.len()).collect();
        let centred = self - self.mean_axes(&over, true);
        let variance = centred.square().mean_axes(&over, true);
        centred / (variance + eps).sqrt()
    }
}
