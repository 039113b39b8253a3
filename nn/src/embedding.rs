//! `Embedding`: a table of learned vectors, one per id (a token, a character), looked
//! up by index, as PyTorch's `nn.Embedding`. Its gradient adds into the rows used.

use crate::init::Init;
use crate::module::Module;
use crate::params::{Bound, ParamStore};
use autodiff::{Float, Var};
use rand::Rng;

/// A `[num_embeddings, dim]` table under `{prefix}.weight`, initialised N(0, 1) as
/// PyTorch's. As a [`Module`] its input holds the ids as whole-number values, of any
/// shape (`[batch, time]`, say), and its output adds an axis of `dim`.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: String,
    num_embeddings: usize,
    dim: usize,
}

impl Embedding {
    /// Creates the layer and registers its initialised table in `store`.
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        prefix: &str,
        num_embeddings: usize,
        dim: usize,
        rng: &mut R,
    ) -> Self {
        assert!(
            num_embeddings > 0 && dim > 0,
            "Embedding {prefix}: sizes must be positive, got {num_embeddings} x {dim}"
        );
        let weight = format!("{prefix}.weight");
        let table = Init::StandardNormal.weight(num_embeddings, dim, rng);
        store.insert(weight.clone(), table);
        Embedding {
            weight,
            num_embeddings,
            dim,
        }
    }

    /// How many ids the table has rows for.
    pub fn num_embeddings(&self) -> usize {
        self.num_embeddings
    }

    /// The length of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The table's parameter name.
    pub fn weight_name(&self) -> &str {
        &self.weight
    }

    /// The layer's name: the prefix of its parameter's name.
    pub fn name(&self) -> &str {
        self.weight.strip_suffix(".weight").unwrap_or(&self.weight)
    }

    /// The vectors of `ids`, as `[ids.len(), dim]`.
    ///
    /// Panics at the caller's line when an id is `num_embeddings` or more.
    #[track_caller]
    pub fn lookup<'t, T: Float>(&self, params: &Bound<'t, T>, ids: &[usize]) -> Var<'t, T> {
        params.get(&self.weight).embedding(ids)
    }
}

impl<T: Float> Module<T> for Embedding {
    /// The vectors of the ids `x` holds: `x`'s shape plus an axis of `dim`.
    fn forward<'t>(&self, params: &Bound<'t, T>, x: Var<'t, T>) -> Var<'t, T> {
        params.get(&self.weight).embedding_of(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{Tape, Tensor};
    use rand::SeedableRng;

    /// The table is registered under its name with N(0, 1) values; looking ids up by
    /// slice or as a `[batch, time]` input gives the table's rows, and the gradient of a
    /// repeated id is the sum of its uses.
    #[test]
    fn embedding_layer_looks_rows_up_and_sums_repeated_gradients() {
        let mut store = ParamStore::<f64>::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let layer = Embedding::new(&mut store, "tok", 1000, 8, &mut rng);
        assert_eq!((layer.name(), layer.weight_name()), ("tok", "tok.weight"));
        let table = store.get("tok.weight").expect("registered").clone();
        assert_eq!(table.shape(), &[1000, 8]);
        let n = table.numel() as f64;
        let mean = table.data().iter().sum::<f64>() / n;
        let var = table.data().iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );

        let tape = Tape::new();
        let bound = store.bind(&tape);
        let ids = Tensor::from_vec(vec![5.0, 999.0, 5.0, 0.0], [2, 2]);
        let y = layer.forward(&bound, tape.constant(ids));
        assert_eq!(y.shape().as_slice(), &[2, 2, 8]);
        let rows = layer.lookup(&bound, &[5, 999, 5, 0]).value();
        assert_eq!(y.value().data(), rows.data());
        assert_eq!(&rows.data()[8..16], &table.data()[999 * 8..1000 * 8]);
        let grads = bound.grads(y.sum().backward()).unwrap();
        let g = grads.get("tok.weight").expect("a gradient");
        assert_eq!((g.data()[5 * 8], g.data()[0], g.data()[8]), (2.0, 1.0, 0.0));
    }
}
