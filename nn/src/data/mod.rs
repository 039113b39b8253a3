//! Data: the IDX reader, MNIST location/fetching/verification, and seeded minibatches.

pub mod idx;
pub mod mnist;

use autodiff::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;

/// Examples as rows of `images` (`[n, features]`, pixels in [0, 1]) with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `[n, features]`
    pub images: Tensor<f32>,
    /// One class index per row.
    pub labels: Vec<usize>,
}

/// A minibatch: copied rows and their labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[batch, features]`
    pub images: Tensor<f32>,
    /// One class index per row.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per example (784 for MNIST).
    pub fn features(&self) -> usize {
        self.images.shape().get(1).copied().unwrap_or(0)
    }

    /// The examples `start..end` as one batch, in order.
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let indices: Vec<usize> = (start..end.min(self.len())).collect();
        self.gather(&indices)
    }

    /// The examples at `indices`, as one batch.
    pub fn gather(&self, indices: &[usize]) -> Batch {
        let f = self.features();
        let src = self.images.data();
        let mut data = Vec::with_capacity(indices.len() * f);
        for &i in indices {
            data.extend_from_slice(&src[i * f..(i + 1) * f]);
        }
        Batch {
            images: Tensor::from_vec(data, [indices.len(), f]),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// The first `n` examples (all of them if there are fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let b = self.slice(0, n);
        Dataset {
            images: b.images,
            labels: b.labels,
        }
    }

    /// Shuffles the examples with `rng` and yields batches of `batch_size` (the last
    /// one may be smaller). The same seed gives the same order.
    pub fn batches<'a, R: Rng + ?Sized>(
        &'a self,
        batch_size: usize,
        rng: &mut R,
    ) -> impl Iterator<Item = Batch> + 'a {
        assert!(batch_size > 0, "batches: batch size must be positive");
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(rng);
        let chunks: Vec<Vec<usize>> = order.chunks(batch_size).map(<[usize]>::to_vec).collect();
        chunks.into_iter().map(move |idx| self.gather(&idx))
    }

    /// Number of batches of `batch_size` in one pass.
    pub fn num_batches(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size.max(1))
    }
}
